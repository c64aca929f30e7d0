//! Authentication and the principal. A key is `scim_<key id>_<secret>`: the id finds the record
//! (one read), the secret (256 random bits) is stored only as its SHA-256 and compared in
//! constant time. The full key is returned once, at creation (`tenancy`), and never logged.

use crate::error::{Result, ScimError};
use crate::roles::{Permission, RolesPolicy};
use crate::store::layout::{KEY_USE_UNIX, Layout};
use crate::store::{Item, StoreError};
use crate::tenancy::{Deactivation, ExternalIdPolicy, KeyRecord, TenantRecord, UnknownExtensions, hash_secret, parse_cidr};
use std::net::IpAddr;
use std::sync::Arc;

/// Who is calling: built only by authentication (the authorizer in AWS, the same code in
/// process locally), and carried to the route functions whole, as one encoded context field
/// ([`Principal::to_context`], [`Principal::from_context`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    /// The tenant the key belongs to; every operation is scoped to it.
    pub tenant_id: String,
    /// The id of the API key presented (the `<key id>` part of `scim_<key id>_<secret>`).
    pub key_id: String,
    /// The name of the key's role: built-in (`admin`, `provisioner`, `reader`) or one of the
    /// tenant's custom roles.
    pub role: String,
    /// The tenant's request limit per second, if it has one.
    pub rate_limit: Option<u32>,
    /// The tenant's role policy, if it has one.
    pub roles_policy: Option<RolesPolicy>,
    /// What the key's role may do (built-in or the tenant's custom role).
    pub permissions: Vec<Permission>,
    /// What deactivating a user does to its group memberships.
    pub deactivation: Deactivation,
    /// Whether externalIds are unique, and what a create with a held one does.
    pub external_id_policy: ExternalIdPolicy,
    /// What happens to extension URNs the tenant has not declared.
    pub unknown_extensions: UnknownExtensions,
    /// The version of the tenant's schema declarations (0: it has none, no read needed).
    pub schemas_version: u64,
}

/// The most bytes the encoded principal may take in the authorizer's context. API Gateway
/// documents no limit for a REST API's context but 8 KB for a WebSocket API's whole answer; the
/// principal stays well inside the smaller, by construction (tenant ids, role names and the role
/// policy are bounded: `RolesPolicy::validate`).
pub const MAX_CONTEXT_BYTES: usize = 4096;

impl Principal {
    /// Whether the principal's role holds a permission.
    pub fn may(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// The principal as one authorizer context value (JSON text), or an error when it would
    /// not fit in [`MAX_CONTEXT_BYTES`].
    pub fn to_context(&self) -> Result<String> {
        let text = crate::json_text(self);
        if text.len() > MAX_CONTEXT_BYTES {
            return Err(ScimError::Internal(format!("the principal of tenant '{}' takes {} bytes", self.tenant_id, text.len())));
        }
        Ok(text)
    }

    /// The principal from its context value; `None` when it is not one.
    pub fn from_context(text: &str) -> Option<Principal> {
        serde_json::from_str(text).ok()
    }
}

/// Splits `scim_<id>_<secret>`: the id is `<tenant>.<16 hex>` (layout 5) or 16 hex alone (a
/// key made before); the tenant may contain `_`, so the id ends at the `_` after its hex; the
/// secret is base64url and may contain `_`.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("scim_")?;
    let hex16 = |s: Option<&str>| s.is_some_and(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    let id_len = match rest.split_once('.') {
        Some((tenant, after))
            if crate::tenancy::valid_tenant_id(tenant) && hex16(after.get(..16)) && after.as_bytes().get(16) == Some(&b'_') =>
        {
            tenant.len() + 17
        }
        _ => 16,
    };
    let (id, secret) = (rest.get(..id_len)?, rest.get(id_len..)?.strip_prefix('_')?);
    if !hex16(id.get(id_len - 16..)) || secret.len() < 32 || secret.len() > 128 {
        return None;
    }
    Some((id, secret))
}

/// How often a key's last use is stamped, at most (seconds): authentication does not write on
/// every request.
const LAST_USE_EVERY: i64 = 900;

/// Checks a bearer token: format, record, hash (constant time), revocation, expiry; then the
/// tenant: it must be active and, when it has an IP allowlist, `source_ip` must be in it.
/// Key failures are the same 401 to the client (the reason is logged, never the token); tenant
/// refusals are 403. Two round trips: the key record, then its tenant's record together with
/// the key's last-use stamp (so a settings change applies to the next request).
pub async fn authenticate(layout: &Layout, authorization: Option<&str>, source_ip: Option<IpAddr>) -> Result<Principal> {
    authenticate_attempt(layout, authorization, source_ip, None).await
}

/// The request a key is presented with, for the tenant's activity log: a refused key whose
/// tenant is known (a revoked, expired or wrongly completed key of a real key id; a suspended
/// tenant; an address outside the allowlist) is recorded there, so the tenant's admin sees why
/// its identity provider is failing. A key id nobody holds names no tenant: nothing to record.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The request's HTTP method.
    pub method: &'a str,
    /// The request's path under the base URL.
    pub path: &'a str,
    /// The client's User-Agent header, if it sent one.
    pub user_agent: Option<&'a str>,
    /// The SCIM base URL the request arrived at: an OAuth access token must name it as its
    /// audience (`aud`). Empty: no token is accepted.
    pub audience: &'a str,
}

/// [`authenticate`], recording refusals of a known key in its tenant's activity log.
pub async fn authenticate_attempt(
    layout: &Layout,
    authorization: Option<&str>,
    source_ip: Option<IpAddr>,
    attempt: Option<Attempt<'_>>,
) -> Result<Principal> {
    let mut refused_key: Option<(String, String)> = None;
    let reason = std::sync::OnceLock::new();
    let result = authenticate_key(layout, authorization, source_ip, &mut refused_key, &reason).await;
    if let (Err(e), Some((tenant, key_id)), Some(a)) = (&result, &refused_key, attempt) {
        // the tenant's own log says why (the client is told only that the key is not valid)
        let why = if e.status() == 401 { reason.get().copied().unwrap_or("not valid") } else { "" };
        let why = if why.is_empty() { e.client_detail() } else { why.to_string() };
        // a wrong secret proves nothing about the sender: anyone who saw a key id can send one
        let unauthenticated = reason.get() == Some(&WRONG_SECRET);
        let record = record_refusal(layout, tenant, key_id, a, e.status(), &why, unauthenticated);
        crate::store::scope::acting_for(tenant, record).await;
    }
    result
}

const WRONG_SECRET: &str = "wrong secret";

/// Records a refusal of a known key in its tenant's log. A refusal whose sender proved nothing
/// (a wrong secret beside a real key id) is marked unauthenticated, carries no User-Agent (so
/// the portal names no IdP of the sender's choosing), and is bounded: at most one per key id
/// per [`UNAUTHENTICATED_EVERY`] per process, and [`UNAUTHENTICATED_PER_HOUR`] per tenant.
async fn record_refusal(layout: &Layout, tenant: &str, key_id: &str, a: Attempt<'_>, status: u16, why: &str, unauthenticated: bool) {
    if unauthenticated && !unauthenticated_row_allowed(layout, tenant, key_id).await {
        return;
    }
    let detail = format!("key refused: {why}");
    let entry = crate::activity::Entry {
        key_id,
        method: a.method,
        path: a.path,
        status,
        detail: Some(&detail),
        user_agent: if unauthenticated { None } else { a.user_agent },
        unauthenticated,
        ..Default::default()
    };
    crate::activity::record(layout, tenant, entry).await;
}

/// Seconds between two unauthenticated refusal rows of one key id, per process.
pub const UNAUTHENTICATED_EVERY: i64 = 60;
/// Unauthenticated refusal rows a tenant's log takes per hour, whatever the number of senders.
pub const UNAUTHENTICATED_PER_HOUR: i64 = 60;
/// Key ids the per-process limiter remembers; past this it starts over.
const LIMITER_KEPT: usize = 4096;

/// Whether another unauthenticated refusal row may be written for a key: the process's own
/// limit first (no store call when it says no), then the tenant's hourly count in the store.
async fn unauthenticated_row_allowed(layout: &Layout, tenant: &str, key_id: &str) -> bool {
    static LAST: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, i64>>> = std::sync::OnceLock::new();
    let now = crate::time::unix_now();
    {
        let Ok(mut last) = LAST.get_or_init(Default::default).lock() else { return false };
        if last.get(key_id).is_some_and(|t| now - t < UNAUTHENTICATED_EVERY) {
            return false;
        }
        if last.len() >= LIMITER_KEPT {
            last.clear();
        }
        last.insert(key_id.to_string(), now);
    }
    match layout.count_refusal(tenant, now).await {
        Ok(n) => n <= UNAUTHENTICATED_PER_HOUR,
        Err(e) => {
            tracing::debug!(error = %e, "refusal counter unavailable; row skipped");
            false
        }
    }
}

async fn authenticate_key(
    layout: &Layout,
    authorization: Option<&str>,
    source_ip: Option<IpAddr>,
    refused_key: &mut Option<(String, String)>,
    reason: &std::sync::OnceLock<&'static str>,
) -> Result<Principal> {
    let deny = |why: &'static str| {
        let _ = reason.set(why);
        tracing::info!(reason = why, "authentication failed");
        ScimError::Unauthorized("a valid bearer API key is required".into())
    };
    let header = authorization.ok_or_else(|| deny("no Authorization header"))?;
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| deny("not a Bearer credential"))?;
    let (key_id, secret) = parse_token(token).ok_or_else(|| deny("malformed key"))?;
    let key_id = match crate::tenancy::id_tenant(key_id) {
        Some(_) => key_id.to_string(),
        // a key made before layout 5: the upgrade renamed it and left where it went
        None => match layout.moved_key(key_id).await? {
            Some(new) => new,
            None => return Err(missing_or_upgrading(layout, "a key of an older layout", "unknown key id", deny).await),
        },
    };
    // the id names the tenant: everything from here acts for it (`store::scope`)
    let tenant_id = crate::tenancy::id_tenant(&key_id).ok_or_else(|| deny("malformed key"))?.to_string();
    let check = check_key(layout, &key_id, &tenant_id, secret, source_ip, refused_key, &deny);
    crate::store::scope::acting_for(&tenant_id, check).await
}

/// A key of `tenant_id` (its id names it): its record, the tenant's record and the key's
/// last-use stamp in one round trip, then the checks.
async fn check_key(
    layout: &Layout,
    key_id: &str,
    tenant_id: &str,
    secret: &str,
    source_ip: Option<IpAddr>,
    refused_key: &mut Option<(String, String)>,
    deny: &impl Fn(&'static str) -> ScimError,
) -> Result<Principal> {
    let items = layout.key_items(key_id, tenant_id).await?;
    let item = items.key.ok_or_else(|| deny("unknown key id"))?;
    let key_view = KEY_VIEWS.view(key_id, item.doc.as_deref().ok_or_else(|| deny("unknown key id"))?)?;
    let key = &key_view.1;
    if key.tenant.as_deref() != Some(tenant_id) {
        return Err(deny("key without tenant"));
    }
    // from here a refusal concerns a real key of a known tenant
    *refused_key = Some((tenant_id.to_string(), key_id.to_string()));
    if !crate::crypto::same_bytes(key.hash.as_bytes(), hash_secret(secret).as_bytes()) {
        return Err(deny(WRONG_SECRET));
    }
    if key.revoked {
        return Err(deny("revoked key"));
    }
    let now = crate::time::unix_now();
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(deny("expired key"));
    }
    let Some(text) = items.tenant.as_ref().and_then(|i| i.doc.as_deref()) else {
        return Err(missing_or_upgrading(layout, tenant_id, "the key's tenant does not exist", deny).await);
    };
    let tenant_view = TENANT_VIEWS.view(tenant_id, text)?;
    let principal = admit(tenant_id, &tenant_view.1, source_ip, key_id, &key.role)?;
    *refused_key = None;
    stamp_last_use(layout, key_id, items.stamp.as_deref(), now).await;
    Ok(principal)
}

/// The principal of a credential (an API key or an OAuth client, `id`) with a role, once the
/// credential is good: the tenant must be active and, with an allowlist, `source_ip` in it.
fn admit(tenant_id: &str, tenant: &TenantRecord, source_ip: Option<IpAddr>, id: &str, role: &str) -> Result<Principal> {
    if !tenant.is_active() {
        return Err(ScimError::Forbidden("this tenant is suspended".into()));
    }
    if !tenant.ip_allowlist.is_empty() && !source_ip.is_some_and(|ip| ip_allowed(&tenant.ip_allowlist, ip)) {
        tracing::info!(tenant = tenant_id, "source address not in the tenant's allowlist");
        return Err(ScimError::Forbidden("the source address is not in this tenant's IP allowlist".into()));
    }
    Ok(Principal {
        tenant_id: tenant_id.to_string(),
        key_id: id.to_string(),
        role: role.to_string(),
        rate_limit: tenant.rate_limit,
        roles_policy: tenant.roles_policy.clone(),
        // a custom role deleted after the key was made leaves the key with no permission at all
        permissions: tenant.permissions_of(role).unwrap_or_default(),
        deactivation: tenant.deactivation,
        external_id_policy: tenant.external_id_policy,
        unknown_extensions: tenant.unknown_extensions,
        schemas_version: tenant.schemas_version,
    })
}

/// Authenticates an OAuth access token ([`crate::oauth`]): the signature with the verifier's
/// cached public key, the claims against `attempt`'s audience; then the token's tenant (one
/// read, the record every request reads): its client or secret must not be revoked, and the
/// tenant is admitted as for a key. A refusal of a verified token is recorded in its tenant's
/// log; an unverified one names no tenant.
pub async fn authenticate_token(
    layout: &Layout,
    keys: &dyn crate::oauth::SigningKeys,
    verifier: &crate::oauth::Verifier,
    token: &str,
    source_ip: Option<IpAddr>,
    attempt: Option<Attempt<'_>>,
) -> Result<Principal> {
    let deny = |why: &'static str| {
        tracing::info!(reason = why, "token refused");
        ScimError::Unauthorized("a valid bearer API key or access token is required".into())
    };
    let audience = attempt.map(|a| a.audience).filter(|a| !a.is_empty()).ok_or_else(|| deny("no audience to check"))?;
    let now = crate::time::unix_now();
    let claims = verifier.verify(keys, token, audience, now).await.map_err(deny)?;
    // a verified token names its tenant: what follows acts for it (`store::scope`)
    let work = async {
        let result = admit_token(layout, &claims, source_ip, now, deny).await;
        if let (Err(e), Some(a)) = (&result, attempt) {
            let why = if e.status() == 401 { "token of a revoked client or secret".to_string() } else { e.client_detail() };
            record_refusal(layout, &claims.tenant, &claims.client_id, a, e.status(), &why, false).await;
        }
        result
    };
    crate::store::scope::acting_for(&claims.tenant, work).await
}

async fn admit_token(
    layout: &Layout,
    claims: &crate::oauth::Claims,
    source_ip: Option<IpAddr>,
    now: i64,
    deny: impl Fn(&'static str) -> ScimError,
) -> Result<Principal> {
    let item = layout.tenant_item(&claims.tenant).await?;
    let Some(text) = item.as_ref().and_then(|i| i.doc.as_deref()) else {
        return Err(missing_or_upgrading(layout, &claims.tenant, "the key's tenant does not exist", deny).await);
    };
    let tenant_view = TENANT_VIEWS.view(&claims.tenant, text)?;
    if crate::oauth::revoked(&tenant_view.1, claims, now) {
        return Err(deny("token of a revoked client or secret"));
    }
    admit(&claims.tenant, &tenant_view.1, source_ip, &claims.client_id, &claims.role)
}

/// A credential whose record is missing (`what`: the key's tenant, a key id of layout 4 or older
/// without a pointer): gone (401, `deny(why)`), or the table not yet upgraded to this layout (503:
/// the operator must run `scim-admin migrate`; an IdP told "unauthorized" would disable
/// provisioning, one told "retry" comes back once it has run).
async fn missing_or_upgrading(layout: &Layout, what: &str, why: &'static str, deny: impl Fn(&'static str) -> ScimError) -> ScimError {
    match layout.at_current_layout().await {
        Ok(true) => deny(why),
        Ok(false) => {
            tracing::error!(missing = what, "the table is at an older layout: run `scim-admin migrate`");
            ScimError::Unavailable { detail: "this service is being upgraded; retry shortly".into(), retry_after: 30 }
        }
        Err(e) => e.into(),
    }
}

/// Stamps a key's last use, at most every [`LAST_USE_EVERY`] seconds, in an item of its own
/// (the authorizer never writes the key record). Best effort: a failed stamp fails nothing.
async fn stamp_last_use(layout: &Layout, key_id: &str, stamp: Option<&Item>, now: i64) {
    // the time is also a number of the item (read on every request without parsing its text)
    let last = stamp.and_then(|i| {
        i.nums.get(KEY_USE_UNIX).copied().or_else(|| {
            i.doc.as_deref().and_then(|d| serde_json::from_str::<crate::tenancy::KeyUse>(d).ok()).and_then(|u| u.last_used_unix)
        })
    });
    if last.is_some_and(|t| now - t <= LAST_USE_EVERY) {
        return;
    }
    let record = crate::tenancy::KeyUse { last_used_unix: Some(now), last_used_at: Some(crate::time::now()) };
    if let Err(e) = layout.stamp_key_use(key_id, &record, now).await {
        tracing::debug!(error = %e, "last-use stamp skipped");
    }
}

/// Parsed records kept per process, each with the text it came from: every request reads the
/// records (so a revocation or a settings change applies to the next request), but only a
/// record whose text changed is parsed again.
struct Views<T> {
    map: std::sync::OnceLock<std::sync::Mutex<ViewMap<T>>>,
}

/// Record id → (the text a view was parsed from, the view).
type ViewMap<T> = std::collections::HashMap<String, Arc<(String, T)>>;

/// Views kept per kind; past this many the memo starts over (a process serves a few).
const VIEWS_KEPT: usize = 1024;

impl<T> Views<T> {
    const fn new() -> Self {
        Views { map: std::sync::OnceLock::new() }
    }

    fn view(&self, id: &str, text: &str) -> Result<Arc<(String, T)>>
    where
        T: serde::de::DeserializeOwned,
    {
        let map = self.map.get_or_init(Default::default);
        if let Ok(m) = map.lock()
            && let Some(v) = m.get(id).filter(|v| v.0 == text)
        {
            return Ok(v.clone());
        }
        let rec: T = serde_json::from_str(text).map_err(|e| StoreError::caused(format!("corrupt record of '{id}'"), e))?;
        let view = Arc::new((text.to_string(), rec));
        if let Ok(mut m) = map.lock() {
            if m.len() >= VIEWS_KEPT {
                m.clear();
            }
            m.insert(id.to_string(), view.clone());
        }
        Ok(view)
    }
}

static KEY_VIEWS: Views<KeyRecord> = Views::new();
static TENANT_VIEWS: Views<TenantRecord> = Views::new();

/// Whether `ip` is inside any of the CIDRs (IPv4-mapped IPv6 addresses count as IPv4).
pub fn ip_allowed(cidrs: &[String], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    cidrs.iter().filter_map(|c| parse_cidr(c)).any(|(net, bits)| match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_key_and_its_tenant_or_are_of_an_older_layout() {
        let secret = "Ab_c-".repeat(9);
        let id_of = |t: &str| parse_token(t).map(|(id, s)| (id.to_string(), s.to_string()));
        assert_eq!(id_of(&format!("scim_acme.0123456789abcdef_{secret}")), Some(("acme.0123456789abcdef".into(), secret.clone())));
        // a tenant with '_' and '-', a secret with '_'
        let t = format!("scim_a_b-c.0123456789abcdef_{secret}");
        assert_eq!(id_of(&t), Some(("a_b-c.0123456789abcdef".into(), secret.clone())));
        assert_eq!(id_of(&format!("scim_0123456789abcdef_{secret}")), Some(("0123456789abcdef".into(), secret.clone())));
        for bad in [
            format!("scim_acme.0123456789abcde_{secret}"),
            format!("scim_ac#me.0123456789abcdef_{secret}"),
            format!("scim_.0123456789abcdef_{secret}"),
            format!("scim_acme.0123456789abcdefg_{secret}"),
            format!("scim_acme.0123456789abcdef_{}", "x".repeat(31)),
            format!("scim_acme.0123456789abcdéf_{secret}"),
            "scim_".to_string(),
            format!("key_acme.0123456789abcdef_{secret}"),
        ] {
            assert_eq!(id_of(&bad), None, "{bad}");
        }
        // what is parsed is an id whose tenant the id names, or a hex id of an older layout
        for t in ["scim_acme.0123456789abcdef_", "scim_0123456789abcdef_"] {
            let token = format!("{t}{secret}");
            let (id, _) = parse_token(&token).unwrap();
            assert_eq!(crate::tenancy::id_tenant(id).is_some(), id.contains('.'));
        }
    }
    use crate::store::embedded::EmbeddedTable;
    use crate::tenancy::*;
    use std::sync::Arc;

    /// The largest principal the bounds allow (a 64-byte tenant id and role name, a role policy
    /// of the most and longest roles, every permission) fits the authorizer's context, and the
    /// context decodes to the same principal.
    #[test]
    fn the_largest_principal_fits_the_context_and_round_trips() {
        use crate::roles::{ALL_PERMISSIONS, MAX_POLICY_ROLES, MAX_ROLE_NAME, MAX_RULE};
        let roles: Vec<String> = (0..MAX_POLICY_ROLES).map(|i| format!("{i:0>width$}", width = MAX_ROLE_NAME)).collect();
        let policy = RolesPolicy {
            default_role: roles[0].clone(),
            user_roles: roles.clone(),
            group_rule: Some(format!("{}{{workspace}}-{{role}}", "r".repeat(MAX_RULE - 18))),
            group_roles: roles,
        };
        policy.validate().unwrap();
        let p = Principal {
            tenant_id: "t".repeat(64),
            key_id: "0".repeat(16),
            role: "r".repeat(64),
            rate_limit: Some(u32::MAX),
            roles_policy: Some(policy),
            permissions: ALL_PERMISSIONS.to_vec(),
            deactivation: Deactivation::KeepMemberships,
            external_id_policy: ExternalIdPolicy::Relink,
            unknown_extensions: UnknownExtensions::Reject,
            schemas_version: u64::MAX,
        };
        let text = p.to_context().unwrap();
        assert!(text.len() <= MAX_CONTEXT_BYTES, "{}", text.len());
        assert_eq!(Principal::from_context(&text), Some(p));
        assert_eq!(Principal::from_context("{\"tenant_id\": 1}"), None);
    }

    /// Moves a key's expiry into the past, as time would.
    async fn expire(layout: &Layout, key_id: &str) {
        layout
            .modify_key_record::<KeyRecord>(key_id, |r| {
                r.expires_at = Some(crate::time::unix_now() - 1);
                true
            })
            .await
            .unwrap();
    }

    /// Rotation makes a working key only from a working key, and the new key's expiry is its own
    /// (it used to copy the old key's date, so a key rotated the day before dies with it).
    #[tokio::test]
    async fn rotation_refuses_dead_keys_and_gives_the_new_key_its_own_expiry() {
        let layout = Layout::new(Arc::new(EmbeddedTable::in_memory()));
        create_tenant(&layout, "acme", "Acme").await.unwrap();
        let now = crate::time::unix_now();
        let works = |token: String| {
            let layout = &layout;
            async move { authenticate(layout, Some(&format!("Bearer {token}")), None).await.is_ok() }
        };
        let revoked = create_key(&layout, "acme", "provisioner", None).await.unwrap();
        revoke_key(&layout, &revoked.key_id).await.unwrap();
        assert_eq!(rotate_key(&layout, &revoked.key_id, None).await.err().map(|e| e.status()), Some(409));
        let expired = create_key(&layout, "acme", "provisioner", Some(now + 60)).await.unwrap();
        expire(&layout, &expired.key_id).await;
        assert_eq!(rotate_key(&layout, &expired.key_id, None).await.err().map(|e| e.status()), Some(409));
        assert_eq!(list_keys(&layout, "acme").await.unwrap().len(), 2, "a refused rotation makes no key");
        // a 30-day key rotated a day before it expires: the new one lasts 30 days from now
        let old = create_key(&layout, "acme", "provisioner", Some(now + 86_400)).await.unwrap();
        layout
            .modify_key_record::<KeyRecord>(&old.key_id, |r| {
                r.created = crate::time::format_unix_millis((now - 29 * 86_400) * 1000).unwrap();
                true
            })
            .await
            .unwrap();
        let new = rotate_key(&layout, &old.key_id, None).await.unwrap();
        let (rec, _) = layout.key_record::<KeyRecord>(&new.key_id).await.unwrap().unwrap();
        let left = rec.expires_at.unwrap() - crate::time::unix_now();
        assert!((30 * 86_400 - 5..=30 * 86_400).contains(&left), "{left}");
        assert!(works(new.token.clone()).await && works(old.token.clone()).await);
        // an explicit expiry wins; never, when the tenant allows it
        let forever = rotate_key(&layout, &new.key_id, Some(None)).await.unwrap();
        let (rec, _) = layout.key_record::<KeyRecord>(&forever.key_id).await.unwrap().unwrap();
        assert_eq!(rec.expires_at, None);
        // a tenant maximum: no key beyond it, none that never expires; rotation keeps within it
        let max = TenantChange { max_key_lifetime_days: Some(Some(10)), ..Default::default() };
        update_tenant(&layout, "acme", &max).await.unwrap();
        assert_eq!(create_key(&layout, "acme", "provisioner", None).await.err().map(|e| e.status()), Some(400));
        assert!(create_key(&layout, "acme", "provisioner", Some(now + 11 * 86_400)).await.is_err());
        let capped = rotate_key(&layout, &forever.key_id, None).await.unwrap();
        let (rec, _) = layout.key_record::<KeyRecord>(&capped.key_id).await.unwrap().unwrap();
        assert!(rec.expires_at.is_some_and(|t| t <= crate::time::unix_now() + 10 * 86_400));
        assert!(works(capped.token).await);
    }

    /// A key's id names its tenant, so even a key this process has never seen costs one read
    /// (its record, its tenant's record and its stamp together), acting for that tenant.
    #[tokio::test]
    async fn a_key_never_seen_costs_one_read() {
        let metered = Arc::new(crate::store::metered::Metered::new(Arc::new(EmbeddedTable::in_memory())));
        let layout = Layout::new(metered.clone());
        create_tenant(&layout, "acme", "Acme").await.unwrap();
        let k = create_key(&layout, "acme", "admin", None).await.unwrap();
        let before = metered.counts();
        authenticate(&layout, Some(&format!("Bearer {}", k.token)), None).await.unwrap();
        let after = metered.counts();
        assert_eq!((after.get - before.get, after.get_many - before.get_many, after.query - before.query), (0, 1, 0));
        assert_eq!(after.write - before.write, 1, "the first use is stamped");
        authenticate(&layout, Some(&format!("Bearer {}", k.token)), None).await.unwrap();
        assert_eq!(metered.counts().total() - after.total(), 1, "a later use: the one read, no stamp");
    }

    #[tokio::test]
    async fn keys_authenticate_and_are_stored_hashed() {
        let layout = Layout::new(Arc::new(EmbeddedTable::in_memory()));
        assert!(create_tenant(&layout, "acme", "Acme").await.unwrap());
        assert!(!create_tenant(&layout, "acme", "Acme").await.unwrap());
        let k = create_key(&layout, "acme", "admin", None).await.unwrap();
        let p = authenticate(&layout, Some(&format!("Bearer {}", k.token)), None).await.unwrap();
        assert_eq!(p.tenant_id, "acme");
        let (rec, _) = layout.key_record::<serde_json::Value>(&k.key_id).await.unwrap().unwrap();
        // the secret is base64url, which may hold `_` itself: cut the known prefix, not at a `_`
        let secret = k.token.strip_prefix(&format!("scim_{}_", k.key_id)).expect("scim_<key id>_<secret>");
        assert!(secret.len() >= 43, "{secret}");
        assert!(!rec.to_string().contains(secret), "the secret is never stored");
        let wrong = format!("Bearer scim_{}_{}", k.key_id, "A".repeat(43));
        assert_eq!(authenticate(&layout, Some(&wrong), None).await.unwrap_err().status(), 401);
        assert_eq!(authenticate(&layout, Some("Bearer nope"), None).await.unwrap_err().status(), 401);
        assert_eq!(authenticate(&layout, None, None).await.unwrap_err().status(), 401);
        assert!(create_key(&layout, "acme", "root", None).await.is_err());
        // listing never shows hashes; rotation keeps both keys valid until revocation
        let listed = list_keys(&layout, "acme").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].get("hash").is_none());
        let k2 = rotate_key(&layout, &k.key_id, None).await.unwrap();
        assert!(authenticate(&layout, Some(&format!("Bearer {}", k.token)), None).await.is_ok());
        assert!(authenticate(&layout, Some(&format!("Bearer {}", k2.token)), None).await.is_ok());
        revoke_key(&layout, &k.key_id).await.unwrap();
        assert_eq!(authenticate(&layout, Some(&format!("Bearer {}", k.token)), None).await.unwrap_err().status(), 401);
        assert!(authenticate(&layout, Some(&format!("Bearer {}", k2.token)), None).await.is_ok());
        assert!(create_key(&layout, "acme", "reader", Some(crate::time::unix_now() - 1)).await.is_err(), "a key born expired");
        let expired = create_key(&layout, "acme", "reader", Some(crate::time::unix_now() + 60)).await.unwrap();
        expire(&layout, &expired.key_id).await;
        assert_eq!(authenticate(&layout, Some(&format!("Bearer {}", expired.token)), None).await.unwrap_err().status(), 401);
        assert_eq!(list_tenants(&layout).await.unwrap().len(), 1);
        // custom roles: made of permissions, usable for keys, reserved names refused
        set_custom_role(&layout, "acme", "syncer", Some(&[Permission::ScimRead, Permission::ScimWrite])).await.unwrap();
        assert!(set_custom_role(&layout, "acme", "admin", Some(&[Permission::ScimRead])).await.is_err());
        let sk = create_key(&layout, "acme", "syncer", None).await.unwrap();
        let p = authenticate(&layout, Some(&format!("Bearer {}", sk.token)), None).await.unwrap();
        assert!(p.may(Permission::ScimWrite) && !p.may(Permission::EditRoles));
        set_custom_role(&layout, "acme", "syncer", None).await.unwrap();
        let p = authenticate(&layout, Some(&format!("Bearer {}", sk.token)), None).await.unwrap();
        assert!(!p.may(Permission::ScimRead), "a deleted custom role grants nothing");
        // allowlist and suspension are 403s
        let bearer = format!("Bearer {}", k2.token);
        let allow = |l: &[&str]| TenantChange { ip_allowlist: Some(l.iter().map(|s| s.to_string()).collect()), ..Default::default() };
        update_tenant(&layout, "acme", &allow(&["203.0.113.0/24", "2001:db8::/32"])).await.unwrap();
        let inside: IpAddr = "203.0.113.7".parse().unwrap();
        let outside: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(authenticate(&layout, Some(&bearer), Some(inside)).await.is_ok());
        assert!(authenticate(&layout, Some(&bearer), Some("::ffff:203.0.113.9".parse().unwrap())).await.is_ok());
        assert_eq!(authenticate(&layout, Some(&bearer), Some(outside)).await.unwrap_err().status(), 403);
        assert_eq!(authenticate(&layout, Some(&bearer), None).await.unwrap_err().status(), 403);
        assert!(update_tenant(&layout, "acme", &allow(&["nope"])).await.is_err());
        let suspend = TenantChange {
            status: Some("suspended".into()),
            rate_limit: Some(5),
            deactivation: Some(Deactivation::KeepMemberships),
            ..allow(&[])
        };
        update_tenant(&layout, "acme", &suspend).await.unwrap();
        assert_eq!(authenticate(&layout, Some(&bearer), Some(outside)).await.unwrap_err().status(), 403);
        update_tenant(&layout, "acme", &TenantChange { status: Some("active".into()), ..Default::default() }).await.unwrap();
        let p = authenticate(&layout, Some(&bearer), Some(outside)).await.unwrap();
        assert_eq!((p.rate_limit, p.deactivation), (Some(5), Deactivation::KeepMemberships), "settings are read with the key");
    }
}
