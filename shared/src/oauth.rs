//! OAuth 2.0 client credentials (RFC 6749 §4.4): a tenant's clients, each with a role and up to
//! [`MAX_SECRETS`] secrets of their own expiry (stored only as SHA-256, like API keys), the
//! server's ES256 signing keys, and access tokens as signed JWTs (RFC 9068) that authentication
//! verifies with the cached public key — no store read for the token itself. A revoked client or
//! secret is listed in its tenant's record (read for every request anyway) until its last token
//! expires. The HTTP face (the token endpoint and discovery) is `token_endpoint`.

use crate::crypto::{b64, b64_decode, hex, random_bytes, same_bytes};
use crate::error::{Result, ScimError};
use crate::jwt::{self, Jwk, Signer};
use crate::store::layout::Layout;
use crate::tenancy::{TenantRecord, hash_secret, require_tenant};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Active (unrevoked, unexpired) secrets a client may hold at once: enough to rotate without
/// downtime.
pub const MAX_SECRETS: usize = 5;
/// A secret's lifetime when none is given, in days (two years).
pub const DEFAULT_SECRET_DAYS: u32 = 730;
/// The longest a secret may last, in days (three years).
pub const MAX_SECRET_DAYS: u32 = 1095;
pub use crate::tenancy::{DEFAULT_TOKEN_MINUTES, TOKEN_MINUTES};
/// Attempts of one client recorded in its tenant's log per minute (every failure and every
/// 429 up to this many; past it they are counted, not logged, so a flood cannot fill the log).
pub const LOGGED_FAILURES_PER_MINUTE: i64 = 60;
/// Failed client authentications per client within a minute (the current and the previous
/// minute's counts together, so a burst across a minute's end counts whole) before the
/// endpoint answers 429.
pub const FAILURES_PER_MINUTE: i64 = 10;
/// How long a retired signing key still verifies (and stays in the JWKS): the longest token
/// lifetime, so no token outlives the key that signed it.
pub const RETIRED_KEY_SECONDS: i64 = 360 * 60;
/// The `typ` of an access token (RFC 9068 §2.1).
pub const TOKEN_TYP: &str = "at+jwt";
/// The scope every token carries: the SCIM API, as the key's role allows.
pub const SCOPE: &str = "scim";
/// The token endpoint's path from the API root (served by `token_endpoint`).
pub const TOKEN_PATH: &str = "/oauth2/token";

/// One client secret: only its hash is stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// The secret's id (8 hex digits), by which it is listed and revoked.
    pub id: String,
    /// The SHA-256 of the secret, in hex.
    pub hash: String,
    /// When it was made (RFC 3339, UTC).
    pub created: String,
    /// When it stops working (Unix seconds).
    pub expires_at: i64,
    /// When it was revoked (RFC 3339, UTC), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

impl SecretRecord {
    fn active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// An OAuth client's record (`OAUTH#<client id>` / `CLIENT`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The client id (`client_id`, RFC 6749 §2.2): 20 hex digits.
    pub client_id: String,
    /// The client's tenant.
    pub tenant: String,
    /// The role its tokens carry: built-in or one of the tenant's custom roles.
    pub role: String,
    /// When the client was made (RFC 3339, UTC).
    pub created: String,
    /// When the client was revoked (RFC 3339, UTC), if it was: no secret of it works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Its secrets, newest last.
    #[serde(default)]
    pub secrets: Vec<SecretRecord>,
    /// For a federated client, what its assertions must be (it has no secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<crate::federation::Federation>,
}

/// A client secret as made: shown once, never stored or logged.
#[derive(Debug)]
pub struct NewSecret {
    /// The client's id.
    pub client_id: String,
    /// The secret's id.
    pub secret_id: String,
    /// The secret itself.
    pub secret: String,
    /// When it expires (Unix seconds).
    pub expires_at: i64,
}

/// A secret lifetime in days: 1 to [`MAX_SECRET_DAYS`] (`None`: [`DEFAULT_SECRET_DAYS`]).
fn secret_expiry(days: Option<u32>, now: i64) -> Result<i64> {
    let days = days.unwrap_or(DEFAULT_SECRET_DAYS);
    if !(1..=MAX_SECRET_DAYS).contains(&days) {
        return Err(ScimError::invalid_value(format!("a client secret lasts 1 to {MAX_SECRET_DAYS} days, not {days}")));
    }
    Ok(now + i64::from(days) * 86_400)
}

fn new_secret(days: Option<u32>, now: i64) -> Result<(SecretRecord, String)> {
    let secret = b64(&random_bytes(32));
    let rec = SecretRecord {
        id: hex(&random_bytes(4)),
        hash: hash_secret(&secret),
        created: crate::time::now(),
        expires_at: secret_expiry(days, now)?,
        revoked_at: None,
    };
    Ok((rec, secret))
}

/// Whether a string could be a client id (20 hex digits), checked before any read.
pub fn valid_client_id(id: &str) -> bool {
    let hex = match crate::tenancy::id_tenant(id) {
        Some(t) => &id[t.len() + 1..],
        None => id,
    };
    hex.len() == 20 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A client id as it is since layout 5 (`<tenant>.<20 hex>`): one of an older layout is the
/// one the upgrade renamed it to.
fn current_client_id<'a>(tenant: &str, client_id: &'a str) -> std::borrow::Cow<'a, str> {
    match crate::tenancy::id_tenant(client_id) {
        Some(_) => client_id.into(),
        None => format!("{tenant}.{client_id}").into(),
    }
}

/// The token endpoint's answer to a store failure.
fn internal(e: ScimError) -> Refused {
    (TokenError { status: 500, ..TokenError::bad("server_error", e.client_detail()) }, None)
}

/// The token endpoint's answer to a client id nobody holds (the same as to a wrong secret).
fn unknown_client() -> Refused {
    (TokenError::client("client authentication failed", false), None)
}

/// Makes an OAuth client of a tenant with a role and its first secret (`days`: its lifetime).
pub async fn create_client(layout: &Layout, tenant_id: &str, role: &str, days: Option<u32>) -> Result<NewSecret> {
    let tenant = require_tenant(layout, tenant_id).await?;
    if tenant.permissions_of(role).is_none() {
        return Err(ScimError::invalid_value(format!(
            "unknown role '{role}' (admin, provisioner, reader, or a custom role of the tenant)"
        )));
    }
    let now = crate::time::unix_now();
    let (secret_rec, secret) = new_secret(days, now)?;
    let client_id = crate::tenancy::new_id(tenant_id, 10);
    let rec = ClientRecord {
        client_id: client_id.clone(),
        tenant: tenant_id.into(),
        role: role.into(),
        created: crate::time::now(),
        revoked_at: None,
        secrets: vec![secret_rec.clone()],
        federation: None,
    };
    layout.create_oauth_client(tenant_id, &client_id, &rec).await?;
    Ok(NewSecret { client_id, secret_id: secret_rec.id, secret, expires_at: secret_rec.expires_at })
}

/// A client as listings show it: no hashes.
pub fn public_view(rec: &ClientRecord) -> Value {
    let secrets: Vec<Value> = rec
        .secrets
        .iter()
        .map(|s| json!({"id": s.id, "created": s.created, "expires_at": s.expires_at, "revoked_at": s.revoked_at}))
        .collect();
    json!({"client_id": rec.client_id, "tenant": rec.tenant, "role": rec.role, "created": rec.created,
           "revoked_at": rec.revoked_at, "secrets": secrets, "federation": rec.federation})
}

/// A tenant's clients, without their hashes.
pub async fn list_clients(layout: &Layout, tenant_id: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for id in layout.oauth_client_ids(tenant_id, 1000).await? {
        if let Some((rec, _)) = layout.oauth_client::<ClientRecord>(&id).await? {
            out.push(public_view(&rec));
        }
    }
    Ok(out)
}

/// A client's record, or 404 naming it.
pub async fn get_client(layout: &Layout, client_id: &str) -> Result<ClientRecord> {
    let found = if valid_client_id(client_id) { layout.oauth_client::<ClientRecord>(client_id).await? } else { None };
    found.map(|(r, _)| r).ok_or_else(|| ScimError::NotFound(format!("no OAuth client '{client_id}'")))
}

/// Adds a secret to an active client (at most [`MAX_SECRETS`] active at once).
pub async fn add_secret(layout: &Layout, client_id: &str, days: Option<u32>) -> Result<NewSecret> {
    let client = get_client(layout, client_id).await?;
    if client.revoked_at.is_some() {
        return Err(ScimError::Conflict(format!("OAuth client '{client_id}' is revoked")));
    }
    if client.federation.is_some() {
        return Err(ScimError::Conflict(format!("OAuth client '{client_id}' is federated: it authenticates with assertions, not secrets")));
    }
    let now = crate::time::unix_now();
    let (secret_rec, secret) = new_secret(days, now)?;
    let mut refused = None;
    layout
        .modify_oauth_client::<ClientRecord>(client_id, |rec| {
            let active = rec.secrets.iter().filter(|s| s.active(now)).count();
            if rec.revoked_at.is_some() || active >= MAX_SECRETS {
                refused = Some(active);
                return false;
            }
            // expired and revoked secrets past any token's life are dropped from the record
            rec.secrets.retain(|s| s.active(now) || s.expires_at > now - RETIRED_KEY_SECONDS);
            rec.secrets.push(secret_rec.clone());
            refused = None;
            true
        })
        .await?;
    if let Some(active) = refused {
        return Err(ScimError::Conflict(format!(
            "OAuth client '{client_id}' has {active} active secrets (at most {MAX_SECRETS}); revoke one first"
        )));
    }
    Ok(NewSecret { client_id: client_id.into(), secret_id: secret_rec.id, secret, expires_at: secret_rec.expires_at })
}

/// Revokes one secret of a client (`Some`) or the whole client (`None`): no new token from it
/// at once, and its tokens refused from the tenant's next record read.
pub async fn revoke(layout: &Layout, client_id: &str, secret_id: Option<&str>) -> Result<Value> {
    let client = get_client(layout, client_id).await?;
    if let Some(sid) = secret_id
        && !client.secrets.iter().any(|s| s.id == sid)
    {
        return Err(ScimError::NotFound(format!("OAuth client '{client_id}' has no secret '{sid}'")));
    }
    let at = crate::time::now();
    let updated = layout
        .modify_oauth_client::<ClientRecord>(client_id, |rec| {
            let target = match secret_id {
                Some(sid) => rec.secrets.iter_mut().find(|s| s.id == sid).map(|s| &mut s.revoked_at),
                None => Some(&mut rec.revoked_at),
            };
            match target {
                Some(slot) if slot.is_none() => {
                    *slot = Some(at.clone());
                    true
                }
                _ => false,
            }
        })
        .await?
        .ok_or_else(|| ScimError::NotFound(format!("no OAuth client '{client_id}'")))?;
    let source = secret_id.map_or_else(|| client_id.to_string(), |sid| format!("{client_id}/{sid}"));
    let until = crate::time::unix_now() + i64::from(*TOKEN_MINUTES.end()) * 60;
    layout
        .modify_tenant_record::<TenantRecord>(&client.tenant, |t| {
            let now = crate::time::unix_now();
            t.revoked_token_sources.retain(|_, u| *u > now);
            t.revoked_token_sources.insert(source.clone(), until);
            true
        })
        .await?;
    Ok(public_view(&updated))
}

/// The signing keys as stored (`SERVER` / `TOKENKEYS`): locally the private keys are in the
/// store; the newest unretired key signs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyRing {
    /// The keys, oldest first.
    pub keys: Vec<StoredKey>,
}

/// One signing key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredKey {
    /// The key id (`kid`).
    pub kid: String,
    /// The PKCS #8 private key, base64url.
    pub pkcs8: String,
    /// When it was made (Unix seconds).
    pub created: i64,
    /// When a newer key took over (Unix seconds); it verifies for [`RETIRED_KEY_SECONDS`] more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<i64>,
}

impl KeyRing {
    fn signer(&self) -> Option<Signer> {
        let k = self.keys.iter().rev().find(|k| k.retired.is_none())?;
        Signer::from_pkcs8(&k.kid, &b64_decode(&k.pkcs8)?)
    }

    /// The public keys that verify now (the JWKS).
    pub fn public_keys(&self, now: i64) -> Vec<Jwk> {
        self.keys
            .iter()
            .filter(|k| k.retired.is_none_or(|r| now - r < RETIRED_KEY_SECONDS))
            .filter_map(|k| Signer::from_pkcs8(&k.kid, &b64_decode(&k.pkcs8)?).map(|s| s.public_jwk()))
            .collect()
    }
}

/// Where access tokens are signed and their public keys come from: the store's [`KeyRing`]
/// locally ([`StoreKeys`]), a KMS key in AWS (the private key never leaves it).
#[async_trait::async_trait]
pub trait SigningKeys: Send + Sync {
    /// The public keys that verify now (the JWKS), read from their source.
    async fn public_keys(&self) -> Result<Vec<Jwk>>;
    /// The claims signed as an access token (a compact JWS naming the current key).
    async fn sign(&self, claims: &Claims) -> Result<String>;
}

/// Signing keys kept in the store (`SERVER` / `TOKENKEYS`): scim-local's and the tests'.
pub struct StoreKeys(pub Layout);

#[async_trait::async_trait]
impl SigningKeys for StoreKeys {
    async fn public_keys(&self) -> Result<Vec<Jwk>> {
        Ok(self.0.token_keys::<KeyRing>().await?.map(|(r, _)| r.public_keys(crate::time::unix_now())).unwrap_or_default())
    }

    async fn sign(&self, claims: &Claims) -> Result<String> {
        let ring = self.0.token_keys::<KeyRing>().await?.map(|(r, _)| r);
        let signer = ring
            .and_then(|r| r.signer())
            .ok_or_else(|| ScimError::Internal("no token signing key: run `scim-admin oauth-key rotate`".into()))?;
        Ok(signer.sign(TOKEN_TYP, claims))
    }
}

fn new_key(now: i64) -> StoredKey {
    StoredKey { kid: hex(&random_bytes(8)), pkcs8: b64(&jwt::generate_pkcs8()), created: now, retired: None }
}

/// Makes the first signing key when there is none (the operator's tools and `scim-local`, never a
/// request path); idempotent.
pub async fn ensure_signing_key(layout: &Layout) -> Result<()> {
    if layout.token_keys::<KeyRing>().await?.is_some() {
        return Ok(());
    }
    let ring = KeyRing { keys: vec![new_key(crate::time::unix_now())] };
    layout.put_token_keys(&ring, None).await?;
    Ok(())
}

/// Rotates the signing key: a new key signs from now on, the old one verifies until its tokens
/// expire; keys retired longer than that are dropped. Returns the new key id.
pub async fn rotate_signing_key(layout: &Layout) -> Result<String> {
    for _ in 0..3 {
        let (mut ring, version) = match layout.token_keys::<KeyRing>().await? {
            Some((r, v)) => (r, Some(v)),
            None => (KeyRing::default(), None),
        };
        let now = crate::time::unix_now();
        ring.keys.retain(|k| k.retired.is_none_or(|r| now - r < RETIRED_KEY_SECONDS));
        for k in ring.keys.iter_mut().filter(|k| k.retired.is_none()) {
            k.retired = Some(now);
        }
        let key = new_key(now);
        let kid = key.kid.clone();
        ring.keys.push(key);
        if layout.put_token_keys(&ring, version).await? {
            return Ok(kid);
        }
    }
    Err(ScimError::Conflict("the signing keys changed during the rotation; try again".into()))
}

/// The claims of an access token (RFC 9068 §2.2, and the tenant and role this service needs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer: the API's root URL.
    pub iss: String,
    /// The client id.
    pub sub: String,
    /// The audience: the SCIM base URL.
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// The token's unique id.
    pub jti: String,
    /// The client id (RFC 9068 §2.2).
    pub client_id: String,
    /// The scope granted.
    pub scope: String,
    /// The tenant the client belongs to.
    pub tenant: String,
    /// The client's role when the token was issued.
    pub role: String,
    /// The id of the secret the token was obtained with.
    pub sid: String,
}

/// Clock skew tolerated on `iat` (seconds).
const SKEW: i64 = 300;

/// A token request's outcome the endpoint renders (RFC 6749 §5.1) or its error (§5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// The `error` code.
    pub error: &'static str,
    /// The `error_description` (never a secret, never the token).
    pub description: String,
    /// The HTTP status.
    pub status: u16,
    /// Seconds before trying again (429 only).
    pub retry_after: Option<u64>,
    /// The sender proved it holds a real credential of the client (a revoked or expired
    /// secret, an assertion the issuer signed): its refusal is attributed, with its User-Agent.
    /// Otherwise the sender proved nothing, and the tenant's log says so.
    pub proven: bool,
    /// This answer is the first 429 of a client's throttled minute (one `ThrottledClients`
    /// data point per client and minute).
    pub throttle_started: bool,
}

impl TokenError {
    /// A 400 with an error code.
    pub fn bad(error: &'static str, description: impl Into<String>) -> TokenError {
        TokenError { error, description: description.into(), status: 400, retry_after: None, proven: false, throttle_started: false }
    }
    fn client(description: &str, proven: bool) -> TokenError {
        TokenError {
            error: "invalid_client",
            description: description.into(),
            status: 401,
            retry_after: None,
            proven,
            throttle_started: false,
        }
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Debug)]
pub enum Credentials<'a> {
    /// `client_secret_basic` or `client_secret_post` (RFC 6749 §2.3.1).
    Secret {
        /// The client id.
        client_id: &'a str,
        /// The secret (never logged).
        secret: &'a str,
    },
    /// A JWT client assertion (RFC 7523 §2.2): workload identity federation.
    Assertion {
        /// The client id.
        client_id: &'a str,
        /// The assertion (never logged).
        assertion: &'a str,
    },
}

impl Credentials<'_> {
    /// The client id presented.
    pub fn client_id(&self) -> &str {
        match self {
            Credentials::Secret { client_id, .. } | Credentials::Assertion { client_id, .. } => client_id,
        }
    }
}

/// What the endpoint issued: the token and the figures of its response.
#[derive(Debug)]
pub struct Issued {
    /// The access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The tenant it is for (for the activity log).
    pub tenant: String,
}

/// What checks a client's credentials: the signing keys and the federator (JWKS documents).
pub struct Issuer<'a> {
    /// The store.
    pub layout: &'a Layout,
    /// Where tokens are signed.
    pub keys: &'a dyn SigningKeys,
    /// Where identity providers' keys come from.
    pub federator: &'a crate::federation::Federator,
}

/// A refusal, with the tenant when the client is a real one (so it is recorded in its log).
type Refused = (TokenError, Option<String>);

impl Issuer<'_> {
    /// Checks a client's credentials and issues a token for `audience` by `issuer`. Failed
    /// authentications are counted per client; past [`FAILURES_PER_MINUTE`] within a minute the
    /// client is answered 429 whatever it sends.
    pub async fn issue(&self, creds: &Credentials<'_>, issuer: &str, audience: &str) -> std::result::Result<Issued, Refused> {
        let unknown = unknown_client;
        let presented = creds.client_id();
        if !valid_client_id(presented) {
            return Err(unknown());
        }
        let id = match crate::tenancy::id_tenant(presented) {
            Some(_) => presented.to_string(),
            // a client made before layout 5: the upgrade renamed it and left where it went
            None => match self.layout.moved_oauth_client(presented).await.map_err(|e| internal(e.into()))? {
                Some(new) => new,
                None => return Err(self.unknown_legacy_client().await),
            },
        };
        // the id names the tenant: everything from here acts for it (`store::scope`)
        let tenant = crate::tenancy::id_tenant(&id).ok_or_else(unknown)?.to_string();
        crate::store::scope::acting_for(&tenant, self.issue_as(&id, &tenant, creds, issuer, audience)).await
    }

    /// A client id of layout 4 or older with no pointer to a new one: no such client, or — the
    /// table not yet upgraded — one that works again after `scim-admin migrate` (503).
    async fn unknown_legacy_client(&self) -> Refused {
        match self.layout.at_current_layout().await {
            Ok(true) => unknown_client(),
            _ => {
                tracing::error!("an OAuth client of an older layout was presented: run `scim-admin migrate`");
                let e = TokenError::bad("temporarily_unavailable", "this service is being upgraded; retry shortly");
                (TokenError { status: 503, retry_after: Some(30), ..e }, None)
            }
        }
    }

    /// [`Issuer::issue`] for the client `id` of `tenant`, acting for that tenant.
    async fn issue_as(
        &self,
        id: &str,
        tenant: &str,
        creds: &Credentials<'_>,
        issuer: &str,
        audience: &str,
    ) -> std::result::Result<Issued, Refused> {
        let now = crate::time::unix_now();
        let unknown = unknown_client;
        let Some((client, _)) = self.layout.oauth_client::<ClientRecord>(id).await.map_err(|e| internal(e.into()))? else {
            return Err(unknown());
        };
        if client.tenant != tenant {
            return Err(unknown());
        }
        let tenant = Some(client.tenant.clone());
        if self.layout.client_failures(id, now).await.map_err(|e| internal(e.into()))? >= FAILURES_PER_MINUTE {
            let slow =
                TokenError { status: 429, retry_after: Some(60), ..TokenError::bad("slow_down", "too many failed attempts; retry later") };
            // counted too: every attempt is recorded up to LOGGED_FAILURES_PER_MINUTE (the log
            // stays bounded), and the first 429 is the brute-force signal
            let n = self.layout.count_client_failure(id, now).await.unwrap_or(i64::MAX);
            let slow = TokenError { throttle_started: n == FAILURES_PER_MINUTE + 1, ..slow };
            return Err((slow, tenant.filter(|_| n <= LOGGED_FAILURES_PER_MINUTE)));
        }
        let secret_id = match self.authenticate(&client, creds, now).await {
            Ok(sid) => sid,
            Err(e) => {
                let n = self.layout.count_client_failure(id, now).await.unwrap_or(0);
                return Err((e, tenant.filter(|_| n <= LOGGED_FAILURES_PER_MINUTE)));
            }
        };
        let record = require_tenant(self.layout, &client.tenant).await.map_err(internal)?;
        if !record.is_active() {
            return Err((TokenError::bad("unauthorized_client", "the client's tenant is suspended"), tenant));
        }
        let minutes = token_minutes(&record);
        let claims = Claims {
            iss: issuer.into(),
            sub: client.client_id.clone(),
            aud: audience.into(),
            exp: now + i64::from(minutes) * 60,
            iat: now,
            jti: uuid::Uuid::now_v7().to_string(),
            client_id: client.client_id.clone(),
            scope: SCOPE.into(),
            tenant: client.tenant.clone(),
            role: client.role.clone(),
            sid: secret_id,
        };
        let access_token = self.keys.sign(&claims).await.map_err(internal)?;
        Ok(Issued { access_token, expires_in: i64::from(minutes) * 60, tenant: client.tenant })
    }

    /// The id of the credential that authenticated the client (a secret's id, or
    /// [`FEDERATED`]), or why it did not.
    async fn authenticate(&self, client: &ClientRecord, creds: &Credentials<'_>, now: i64) -> std::result::Result<String, TokenError> {
        match creds {
            Credentials::Secret { secret, .. } => {
                let hash = hash_secret(secret);
                let Some(s) = client.secrets.iter().find(|s| same_bytes(s.hash.as_bytes(), hash.as_bytes())) else {
                    return Err(TokenError::client("client authentication failed", false));
                };
                match () {
                    () if client.revoked_at.is_some() => Err(TokenError::client("the client is revoked", true)),
                    () if s.revoked_at.is_some() => Err(TokenError::client("the client secret is revoked", true)),
                    () if s.expires_at <= now => Err(TokenError::client("the client secret has expired", true)),
                    () => Ok(s.id.clone()),
                }
            }
            Credentials::Assertion { assertion, .. } => {
                let Some(fed) = &client.federation else {
                    return Err(TokenError::client("this client authenticates with a secret, not an assertion", false));
                };
                let claims = self.federator.verify(fed, assertion, now).await.map_err(|why| {
                    // a refusal after the signature verified concerns what the issuer signed
                    let signed = !why.contains("signature") && !why.contains("key") && !why.contains("JWS") && !why.contains("algorithm");
                    TokenError::client(why, signed)
                })?;
                if client.revoked_at.is_some() {
                    return Err(TokenError::client("the client is revoked", true));
                }
                let key = crate::federation::replay_key(&claims, assertion);
                let uses = self.layout.count_assertion_use(&client.client_id, &key, claims.exp + crate::federation::SKEW_SECONDS).await;
                match uses {
                    Ok(1) => Ok(FEDERATED.to_string()),
                    Ok(_) => Err(TokenError::client("the assertion was used before", true)),
                    Err(e) => Err(TokenError { status: 500, ..TokenError::bad("server_error", ScimError::from(e).client_detail()) }),
                }
            }
        }
    }
}

/// The `sid` of a token obtained with a client assertion.
pub const FEDERATED: &str = "federated";

/// Makes a federated OAuth client of a tenant with a role: it authenticates with assertions the
/// federation's issuer signs, and has no secret.
pub async fn create_federated_client(layout: &Layout, tenant_id: &str, role: &str, fed: crate::federation::Federation) -> Result<String> {
    fed.validate()?;
    let tenant = require_tenant(layout, tenant_id).await?;
    if tenant.permissions_of(role).is_none() {
        return Err(ScimError::invalid_value(format!(
            "unknown role '{role}' (admin, provisioner, reader, or a custom role of the tenant)"
        )));
    }
    let client_id = crate::tenancy::new_id(tenant_id, 10);
    let rec = ClientRecord {
        client_id: client_id.clone(),
        tenant: tenant_id.into(),
        role: role.into(),
        created: crate::time::now(),
        revoked_at: None,
        secrets: Vec::new(),
        federation: Some(fed),
    };
    layout.create_oauth_client(tenant_id, &client_id, &rec).await?;
    Ok(client_id)
}

/// The tenant's access-token lifetime in minutes, within [`TOKEN_MINUTES`].
pub fn token_minutes(t: &TenantRecord) -> u32 {
    t.token_lifetime_minutes.filter(|m| TOKEN_MINUTES.contains(m)).unwrap_or(DEFAULT_TOKEN_MINUTES)
}

/// The public keys a process verifies tokens with: read from the store once, and again when a
/// token names a key it does not hold (a rotation) — once per unknown key id per
/// [`REFRESH_SECONDS`], so forged key ids cost at most one read each, as unknown API key ids do.
///
/// A token whose signature verified is remembered with its claims (an IdP sends one token for
/// an hour of requests, and an ECDSA verification costs more than the rest of a GET): later
/// requests with it check only the claims (expiry, audience) again.
#[derive(Debug, Default)]
pub struct Verifier {
    keys: std::sync::Mutex<Vec<Jwk>>,
    tried: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    refresh: tokio::sync::Mutex<()>,
    /// A verified token's signature part → the token and its claims.
    verified: std::sync::Mutex<std::collections::HashMap<String, (String, std::sync::Arc<Claims>)>>,
}

/// Verified tokens remembered per process; past this the memo starts over.
const VERIFIED_KEPT: usize = 4096;

/// How long an unknown key id is not looked up again.
pub const REFRESH_SECONDS: i64 = 30;
/// Unknown key ids remembered; past this the memo starts over.
const TRIED_KEPT: usize = 1024;

impl Verifier {
    fn held(&self) -> Vec<Jwk> {
        self.keys.lock().map(|k| k.clone()).unwrap_or_default()
    }

    /// Whether an unknown key id may be looked up now (and remembers that it was).
    fn may_refresh(&self, kid: &str, now: i64) -> bool {
        let Ok(mut tried) = self.tried.lock() else { return false };
        if tried.get(kid).is_some_and(|t| now - t < REFRESH_SECONDS) {
            return false;
        }
        if tried.len() >= TRIED_KEPT {
            tried.clear();
        }
        tried.insert(kid.to_string(), now);
        true
    }

    /// Verifies a token whose key id the held keys lack: one caller at a time looks again
    /// (another may just have read the keys: then the held ones do), and reads the keys when
    /// this key id was not looked up in the last [`REFRESH_SECONDS`].
    async fn verify_unknown(&self, keys: &dyn SigningKeys, token: &str, now: i64) -> std::result::Result<jwt::Verified, jwt::Refusal> {
        let _one = self.refresh.lock().await;
        match jwt::verify(token, &self.held()) {
            Err(jwt::Refusal::UnknownKey) => {}
            done => return done,
        }
        let Some(kid) = jwt::header(token).and_then(|h| h.kid).filter(|k| self.may_refresh(k, now)) else {
            return Err(jwt::Refusal::UnknownKey);
        };
        let fresh = match keys.public_keys().await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, kid, "the token signing keys could not be read");
                return Err(jwt::Refusal::UnknownKey);
            }
        };
        if let Ok(mut k) = self.keys.lock() {
            k.clone_from(&fresh);
        }
        jwt::verify(token, &fresh)
    }

    /// Verifies a token's signature and claims for `audience` at `now`; the reason on refusal.
    pub async fn verify(
        &self,
        keys: &dyn SigningKeys,
        token: &str,
        audience: &str,
        now: i64,
    ) -> std::result::Result<std::sync::Arc<Claims>, &'static str> {
        // keyed by the signature part (short); the whole token must match, so a signature seen
        // elsewhere buys nothing
        let signature = token.rsplit('.').next().unwrap_or_default();
        let known = self.verified.lock().ok().and_then(|m| m.get(signature).filter(|(t, _)| t == token).map(|(_, c)| c.clone()));
        let claims = match known {
            Some(c) => c,
            None => self.verify_signature(keys, token, now).await?,
        };
        if claims.aud != audience {
            return Err("token for another audience");
        }
        // the issuer is the API root the audience (the SCIM base URL) is under
        if Some(claims.iss.as_str()) != audience.strip_suffix(crate::BASE_PATH) {
            return Err("token from another issuer");
        }
        if claims.exp <= now {
            return Err("expired token");
        }
        if claims.iat > now + SKEW {
            return Err("token not yet valid");
        }
        Ok(claims)
    }

    /// The claims of a token whose signature and type verify (remembered for next time).
    async fn verify_signature(
        &self,
        keys: &dyn SigningKeys,
        token: &str,
        now: i64,
    ) -> std::result::Result<std::sync::Arc<Claims>, &'static str> {
        let verified = match jwt::verify(token, &self.held()) {
            Err(jwt::Refusal::UnknownKey) => self.verify_unknown(keys, token, now).await,
            other => other,
        };
        let verified = verified.map_err(|r| match r {
            jwt::Refusal::Malformed => "malformed token",
            jwt::Refusal::Algorithm => "token algorithm not accepted",
            jwt::Refusal::UnknownKey => "token signed by an unknown key",
            jwt::Refusal::Signature => "bad token signature",
        })?;
        if verified
            .header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case(TOKEN_TYP) && !t.eq_ignore_ascii_case("application/at+jwt"))
        {
            return Err("not an access token");
        }
        let claims: std::sync::Arc<Claims> =
            std::sync::Arc::new(serde_json::from_slice(&verified.claims).map_err(|_| "token claims unreadable")?);
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= VERIFIED_KEPT {
                m.clear();
            }
            let signature = token.rsplit('.').next().unwrap_or_default().to_string();
            m.insert(signature, (token.to_string(), claims.clone()));
        }
        Ok(claims)
    }
}

/// Whether the tenant's record revokes a token's client or secret.
pub fn revoked(t: &TenantRecord, claims: &Claims, now: i64) -> bool {
    // a token issued before the upgrade to layout 5 names its client by the old id
    let client_id = current_client_id(&claims.tenant, &claims.client_id);
    let secret = [&*client_id, "/", claims.sid.as_str()].concat();
    [&*client_id, secret.as_str()].iter().any(|s| t.revoked_token_sources.get(*s).is_some_and(|u| *u > now))
}
