//! A tenant's OAuth clients over HTTP (`/Settings/OAuthClients`, permission `scim:configure`):
//! list, make (a client and its first secret, shown once), add or revoke a secret, revoke the
//! client. A key may only make a client whose role holds no permission the key lacks, and only
//! ever sees its own tenant's clients (another tenant's id is a 404).

use crate::auth::Principal;
use crate::error::{Result, ScimError, ScimType};
use crate::oauth::{self, ClientRecord, MAX_SECRET_DAYS, NewSecret};
use crate::store::layout::Layout;
use crate::tenancy::require_tenant;
use serde_json::{Map, Value, json};

/// The `schemas` value of an OAuth client document.
pub const URN_OAUTH_CLIENT: &str = "urn:scim-serverless:api:messages:1.0:OAuthClient";

fn location(base_url: &str, id: &str) -> String {
    format!("{base_url}/Settings/OAuthClients/{id}")
}

fn token_endpoint(base_url: &str) -> String {
    [base_url.strip_suffix(crate::BASE_PATH).unwrap_or(base_url), oauth::TOKEN_PATH].concat()
}

fn time(unix: i64) -> Value {
    crate::time::format_unix_millis(unix.saturating_mul(1000)).map_or(Value::Null, Value::String)
}

/// A client as the API shows it: never a secret's hash.
fn render(c: &ClientRecord, base_url: &str) -> Value {
    let now = crate::time::unix_now();
    let secrets: Vec<Value> = c
        .secrets
        .iter()
        .map(|s| {
            let state = match (&s.revoked_at, s.expires_at > now) {
                (Some(_), _) => "revoked",
                (None, false) => "expired",
                (None, true) => "active",
            };
            json!({"id": s.id, "created": s.created, "expiresAt": time(s.expires_at), "state": state})
        })
        .collect();
    json!({
        "schemas": [URN_OAUTH_CLIENT],
        "id": c.client_id,
        "clientId": c.client_id,
        "role": c.role,
        "created": c.created,
        "revoked": c.revoked_at.is_some(),
        "revokedAt": c.revoked_at,
        "secrets": secrets,
        "federation": c.federation.as_ref().map(|f| json!({"issuer": f.issuer, "subject": f.subject, "audiences": f.audiences, "jwksUrl": f.jwks_url})),
        "tokenEndpoint": token_endpoint(base_url),
        "meta": {"resourceType": "OAuthClient", "location": location(base_url, &c.client_id)},
    })
}

/// A client document with the secret just made, shown this once.
fn with_secret(mut view: Value, n: &NewSecret) -> Value {
    if let Some(o) = view.as_object_mut() {
        o.insert("clientSecret".into(), json!(n.secret));
        o.insert("secretId".into(), json!(n.secret_id));
        o.insert("secretExpiresAt".into(), time(n.expires_at));
    }
    view
}

/// `GET /Settings/OAuthClients` (every client) or `GET /Settings/OAuthFederation` (the
/// federated ones): a ListResponse.
pub async fn list(layout: &Layout, tenant: &str, base_url: &str, federated_only: bool) -> Result<Value> {
    let mut out = Vec::new();
    for id in layout.oauth_client_ids(tenant, 1000).await? {
        if let Some((c, _)) = layout.oauth_client::<ClientRecord>(&id).await?
            && (!federated_only || c.federation.is_some())
        {
            out.push(render(&c, base_url));
        }
    }
    Ok(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": out.len(),
              "itemsPerPage": out.len(), "startIndex": 1, "Resources": out}))
}

/// A client of the tenant, or 404 (another tenant's client is not there).
async fn own(layout: &Layout, tenant: &str, id: &str) -> Result<ClientRecord> {
    let c = oauth::get_client(layout, id).await?;
    if c.tenant != tenant {
        return Err(ScimError::NotFound(format!("no OAuth client '{id}'")));
    }
    Ok(c)
}

/// The members of a body, `schemas` and `meta` left out.
fn members(body: Option<&Value>) -> Result<Map<String, Value>> {
    let mut m = match body {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err(ScimError::invalid_syntax("send a JSON object")),
    };
    m.retain(|k, _| !k.eq_ignore_ascii_case("schemas") && !k.eq_ignore_ascii_case("meta"));
    Ok(m)
}

/// `expiresInDays`: a whole number from 1 to [`MAX_SECRET_DAYS`], or absent (the default).
fn days(v: Option<&Value>) -> Result<Option<u32>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|d| u32::try_from(d).ok())
            .filter(|d| (1..=MAX_SECRET_DAYS).contains(d))
            .map(Some)
            .ok_or_else(|| ScimError::invalid_value(format!("expiresInDays is a whole number of days from 1 to {MAX_SECRET_DAYS}"))),
    }
}

fn unknown(k: &str, allowed: &str) -> ScimError {
    ScimError::bad(ScimType::InvalidPath, format!("'{k:.40}' is not a member here; send {allowed}"))
}

/// `POST /Settings/OAuthClients` with `role` (default `provisioner`) and `expiresInDays`: the
/// client and its first secret. The role may hold only permissions the caller holds.
pub async fn create(layout: &Layout, principal: &Principal, base_url: &str, body: Option<&Value>) -> Result<Value> {
    let m = members(body)?;
    if let Some(k) = m.keys().find(|k| !["role", "expiresInDays"].contains(&k.as_str())) {
        return Err(unknown(k, "role and expiresInDays"));
    }
    let role = match m.get("role") {
        None | Some(Value::Null) => "provisioner",
        Some(Value::String(r)) => r.as_str(),
        Some(_) => return Err(ScimError::invalid_value("role is the name of a role")),
    };
    let tenant = require_tenant(layout, &principal.tenant_id).await?;
    let wanted = tenant.permissions_of(role).ok_or_else(|| ScimError::invalid_value(format!("unknown role '{role:.40}'")))?;
    if let Some(p) = wanted.iter().find(|p| !principal.may(**p)) {
        return Err(ScimError::Forbidden(format!("a client of role '{role}' could {}, which this key may not", p.as_str())));
    }
    let n = oauth::create_client(layout, &principal.tenant_id, role, days(m.get("expiresInDays"))?).await?;
    Ok(with_secret(render(&own(layout, &principal.tenant_id, &n.client_id).await?, base_url), &n))
}

/// `POST /Settings/OAuthFederation` with `issuer`, `subject`, `audience` (one or several),
/// `jwksUrl` and `role` (default `provisioner`): a federated client, which authenticates with
/// the issuer's signed assertions and has no secret (workload identity federation).
pub async fn create_federated(layout: &Layout, principal: &Principal, base_url: &str, body: Option<&Value>) -> Result<Value> {
    let m = members(body)?;
    let allowed = ["issuer", "subject", "audience", "jwksUrl", "role"];
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(unknown(k, "issuer, subject, audience, jwksUrl and role"));
    }
    let text = |k: &str| match m.get(k) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(ScimError::invalid_value(format!("{k} is required, a string"))),
    };
    let audiences = match m.get("audience") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => return Err(ScimError::invalid_value("audience is required: a string or a list of strings")),
    };
    let fed = crate::federation::Federation { issuer: text("issuer")?, subject: text("subject")?, audiences, jwks_url: text("jwksUrl")? };
    let role = match m.get("role") {
        None | Some(Value::Null) => "provisioner".to_string(),
        Some(Value::String(r)) => r.clone(),
        Some(_) => return Err(ScimError::invalid_value("role is the name of a role")),
    };
    let tenant = require_tenant(layout, &principal.tenant_id).await?;
    let wanted = tenant.permissions_of(&role).ok_or_else(|| ScimError::invalid_value(format!("unknown role '{role:.40}'")))?;
    if let Some(p) = wanted.iter().find(|p| !principal.may(**p)) {
        return Err(ScimError::Forbidden(format!("a client of role '{role}' could {}, which this key may not", p.as_str())));
    }
    let id = oauth::create_federated_client(layout, &principal.tenant_id, &role, fed).await?;
    get(layout, &principal.tenant_id, base_url, &id).await
}

/// `GET /Settings/OAuthClients/{id}`.
pub async fn get(layout: &Layout, tenant: &str, base_url: &str, id: &str) -> Result<Value> {
    Ok(render(&own(layout, tenant, id).await?, base_url))
}

/// `PATCH /Settings/OAuthClients/{id}` with `{"addSecret": {"expiresInDays": n}}` (or `true`)
/// or `{"revokeSecret": "<secret id>"}`: one change, the client after it (with a new secret,
/// shown once).
pub async fn change(layout: &Layout, tenant: &str, base_url: &str, id: &str, body: &Value) -> Result<Value> {
    let m = members(Some(body))?;
    own(layout, tenant, id).await?;
    let (k, v) = match (m.len(), m.iter().next()) {
        (1, Some(kv)) => kv,
        _ => return Err(ScimError::invalid_syntax("send one change: addSecret or revokeSecret")),
    };
    match (k.as_str(), v) {
        ("addSecret", Value::Bool(true) | Value::Null) => add(layout, tenant, base_url, id, None).await,
        ("addSecret", Value::Object(o)) => add(layout, tenant, base_url, id, days(o.get("expiresInDays"))?).await,
        ("revokeSecret", Value::String(sid)) => {
            oauth::revoke(layout, id, Some(sid)).await?;
            get(layout, tenant, base_url, id).await
        }
        ("addSecret" | "revokeSecret", _) => Err(ScimError::invalid_value(format!("'{k}' has the wrong type"))),
        _ => Err(unknown(k, "addSecret or revokeSecret")),
    }
}

async fn add(layout: &Layout, tenant: &str, base_url: &str, id: &str, days: Option<u32>) -> Result<Value> {
    let n = oauth::add_secret(layout, id, days).await?;
    Ok(with_secret(render(&own(layout, tenant, id).await?, base_url), &n))
}

/// `DELETE /Settings/OAuthClients/{id}`: the client revoked (its record kept, listed as revoked).
pub async fn revoke(layout: &Layout, tenant: &str, id: &str) -> Result<()> {
    own(layout, tenant, id).await?;
    oauth::revoke(layout, id, None).await?;
    Ok(())
}
