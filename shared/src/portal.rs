//! The setup portal for a tenant's IT admin: one page (`/portal`) that shows the Tenant URL,
//! makes and revokes provisioner keys, runs the IdP's *Test Connection*, and lists the tenant's
//! provisioning activity (failures first) — reached by a **setup link**, never by a SCIM key.
//!
//! The page reads the link's token from the URL fragment (`crate::setup_link`), removes it from
//! the address bar and sends it in an `Authorization: Portal <token>` header. Cross-site requests cannot set that header without a CORS preflight, which is never granted
//! (no cookie is ever used): the API is safe against CSRF by construction; framing is refused.

use crate::edge::{HttpRequest, Response};
use crate::error::{Result, ScimError};
use crate::setup_link::{Session, root_path, verify};
use crate::store::layout::{Kind, Layout};
use crate::tenancy;
use serde_json::{Value, json};

const HTML: &str = include_str!("../portal/index.html");
const JS: &str = include_str!("../portal/app.js");
const CSS: &str = include_str!("../portal/app.css");

/// Every portal response's security headers: scripts and styles from this origin only (no
/// inline script), no framing, no referrer, no sniffing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn with_security_headers(mut r: Response, cache: bool) -> Response {
    use http::{HeaderValue, header};
    r.headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r.headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r.headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r.headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(if cache { "public, max-age=300" } else { "no-store" }));
    r
}

fn asset(content_type: &'static str, body: &str) -> Response {
    with_security_headers(Response::with_type(200, content_type, body.as_bytes().to_vec()), true)
}

/// A portal request as the portal reads it: the `http` request (its path from the API root,
/// `/portal…`), with the query decoded once.
struct PortalRequest<'a> {
    http: &'a HttpRequest,
    method: &'a str,
    path: &'a str,
    query: Vec<(String, String)>,
    body: &'a [u8],
}

impl<'a> PortalRequest<'a> {
    fn of(http: &'a HttpRequest) -> PortalRequest<'a> {
        PortalRequest {
            http,
            method: http.method().as_str(),
            path: http.uri().path(),
            query: http.uri().query().map(crate::edge::parse_query).unwrap_or_default(),
            body: http.body(),
        }
    }

    fn header(&self, name: &str) -> Option<&'a str> {
        self.http.headers().get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the portal serves: the page, its two assets and its API (paths under the API's root).
/// The SAM template wires exactly these to the portal function (a test compares them).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/portal"),
    ("GET", "/portal/app.js"),
    ("GET", "/portal/app.css"),
    ("GET", "/portal/api/session"),
    ("GET", "/portal/api/keys"),
    ("POST", "/portal/api/keys"),
    ("DELETE", "/portal/api/keys/{id}"),
    ("GET", "/portal/api/activity"),
    ("GET", "/portal/api/oauth"),
    ("POST", "/portal/api/oauth"),
    ("DELETE", "/portal/api/oauth/{id}"),
];

/// The route of a method and path: its index in [`ROUTES`] and the `{id}` it carries; 404 for a
/// path the portal does not have, 405 for one it has with another method.
fn match_route<'p>(method: &str, path: &'p str) -> Result<(usize, Option<&'p str>)> {
    let fits = |pattern: &str| match pattern.strip_suffix("{id}") {
        Some(prefix) => path.strip_prefix(prefix).filter(|id| !id.is_empty() && !id.contains('/')).map(Some),
        None => (pattern == path).then_some(None),
    };
    let mut known_path = false;
    for (i, (m, pattern)) in ROUTES.iter().enumerate() {
        if let Some(id) = fits(pattern) {
            if *m == method {
                return Ok((i, id));
            }
            known_path = true;
        }
    }
    if known_path {
        return Err(ScimError::MethodNotAllowed(format!("{method} is not allowed on {path}")));
    }
    Err(ScimError::NotFound(format!("no portal page at {path}")))
}

/// Serves one portal request: the page and its assets to anyone (they hold nothing of a
/// tenant), the API to a valid link. `scim_base_url` is the Tenant URL shown to the admin.
pub async fn handle(layout: &Layout, req: &HttpRequest, scim_base_url: &str) -> Response {
    let req = &PortalRequest::of(req);
    let path = req.path.trim_end_matches('/');
    let r = match match_route(req.method, path) {
        Ok((0, _)) => return asset("text/html; charset=utf-8", &HTML.replace("{{root}}", &root_path(scim_base_url))),
        Ok((1, _)) => return asset("text/javascript; charset=utf-8", JS),
        Ok((2, _)) => return asset("text/css; charset=utf-8", CSS),
        Ok((_, id)) => api(layout, req, &path["/portal/api".len()..], id, scim_base_url).await,
        Err(e) => Err(e),
    };
    with_security_headers(r.unwrap_or_else(|e| Response::error(&e)), false)
}

fn json_response(status: u16, v: &Value) -> Response {
    Response::with_type(status, "application/json", crate::json_text(v).into_bytes())
}

async fn api(layout: &Layout, req: &PortalRequest<'_>, path: &str, id: Option<&str>, scim_base_url: &str) -> Result<Response> {
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Portal ").map(str::to_string))
        .ok_or_else(|| ScimError::Unauthorized("open the page from its setup link".into()))?;
    let session = verify(layout, &token).await?;
    // everything the page does acts for the link's tenant (`store::scope`: in AWS, with
    // credentials that reach that tenant's keys, clients and records only)
    crate::store::scope::acting_for(&session.tenant, serve(layout, req, path, id, scim_base_url, &session)).await
}

/// The page's API for a verified link.
async fn serve(
    layout: &Layout,
    req: &PortalRequest<'_>,
    path: &str,
    id: Option<&str>,
    scim_base_url: &str,
    session: &Session,
) -> Result<Response> {
    let tenant = session.tenant.as_str();
    match (req.method, path) {
        ("GET", "/session") => {
            let rec = tenancy::require_tenant(layout, tenant).await?;
            Ok(json_response(
                200,
                &json!({"tenant": tenant, "name": rec.name, "tenantUrl": scim_base_url, "tokenEndpoint": token_endpoint(scim_base_url),
                    "expires": session.expires,
                    "expiresAt": crate::time::format_unix_millis(session.expires * 1000),
                    "maxKeyLifetimeDays": rec.max_key_lifetime_days}),
            ))
        }
        ("GET", "/keys") => Ok(json_response(200, &json!({"keys": keys(layout, tenant).await?}))),
        ("POST", "/keys") => {
            let rec = tenancy::require_tenant(layout, tenant).await?;
            let days = new_key_days(req.body, rec.max_key_lifetime_days)?;
            let k =
                tenancy::create_key(layout, tenant, "provisioner", days.map(|d| crate::time::unix_now() + i64::from(d) * 86_400)).await?;
            note(layout, tenant, "POST", "/portal/api/keys", Some(&k.key_id), 201).await;
            Ok(json_response(201, &json!({"id": k.key_id, "token": k.token, "role": PORTAL_ROLE})))
        }
        ("GET", "/oauth") => {
            Ok(json_response(200, &json!({"tokenEndpoint": token_endpoint(scim_base_url), "clients": clients(layout, tenant).await?})))
        }
        ("POST", "/oauth") => new_secret(layout, tenant, req.body, scim_base_url).await,
        ("DELETE", p) if p.starts_with("/oauth/") => revoke_secret(layout, tenant, id.unwrap_or_default(), p).await,
        ("DELETE", p) => {
            let id = id.unwrap_or_default();
            // only a key of this tenant: another tenant's key id is as unknown as a made-up one
            let keys = tenancy::list_keys(layout, tenant).await?;
            let Some(key) = keys.iter().find(|k| k["key_id"] == id) else {
                return Err(ScimError::NotFound(format!("no key '{id}'")));
            };
            if !manageable(key) {
                return Err(ScimError::Forbidden(format!(
                    "key {id} has the role '{}': the portal manages provisioner keys only; ask your operator",
                    key["role"].as_str().unwrap_or_default()
                )));
            }
            tenancy::revoke_key(layout, id).await?;
            note(layout, tenant, "DELETE", &format!("/portal/api{p}"), Some(id), 204).await;
            Ok(Response::empty(204))
        }
        ("GET", "/activity") => Ok(json_response(200, &activity(layout, tenant, &req.query).await?)),
        (m, p) => Err(ScimError::Internal(format!("the portal route table has {m} {p} but nothing serves it"))),
    }
}

/// How long a key the page asks for lasts, in days (`None`: it never expires): `expiresInDays`
/// of the body, a whole number from 1 to the tenant's maximum (or ten years); absent or null,
/// the tenant's maximum when it has one, else never. Anything else is `400` naming the field.
fn new_key_days(body: &[u8], max: Option<u32>) -> Result<Option<u32>> {
    let body: Value = match body.iter().all(u8::is_ascii_whitespace) {
        true => Value::Null,
        false => crate::json::parse(body)?,
    };
    if !(body.is_null() || body.is_object()) {
        return Err(ScimError::invalid_syntax("send a JSON object, e.g. {\"expiresInDays\": 365}"));
    }
    let days = match body.get("expiresInDays") {
        None | Some(Value::Null) => return Ok(max),
        Some(v) => tenancy::key_days("expiresInDays", v)?,
    };
    match max {
        Some(m) if days > m => {
            Err(ScimError::invalid_value(format!("expiresInDays is at most {m}: this tenant's keys last at most {m} days")))
        }
        _ => Ok(Some(days)),
    }
}

/// The token endpoint beside a Tenant URL.
fn token_endpoint(scim_base_url: &str) -> String {
    [scim_base_url.strip_suffix(crate::BASE_PATH).unwrap_or(scim_base_url), crate::oauth::TOKEN_PATH].concat()
}

/// Whether the page may give secrets to a client and revoke them: a provisioner client with
/// secrets (a federated client, or one of another role, is the operator's).
fn manageable_client(c: &crate::oauth::ClientRecord) -> bool {
    c.role == PORTAL_ROLE && c.federation.is_none()
}

async fn tenant_clients(layout: &Layout, tenant: &str) -> Result<Vec<crate::oauth::ClientRecord>> {
    let mut out = Vec::new();
    for id in layout.oauth_client_ids(tenant, 1000).await? {
        if let Some((c, _)) = layout.oauth_client::<crate::oauth::ClientRecord>(&id).await? {
            out.push(c);
        }
    }
    Ok(out)
}

/// The tenant's OAuth clients for the page: id, role, secrets (never a hash), and whether the
/// page may manage it.
async fn clients(layout: &Layout, tenant: &str) -> Result<Vec<Value>> {
    let now = crate::time::unix_now();
    Ok(tenant_clients(layout, tenant)
        .await?
        .iter()
        .map(|c| {
            let secrets: Vec<Value> = c
                .secrets
                .iter()
                .map(|s| {
                    let state = if s.revoked_at.is_some() { "revoked" } else if s.expires_at <= now { "expired" } else { "active" };
                    json!({"id": s.id, "created": s.created, "expires": crate::time::format_unix_millis(s.expires_at * 1000), "state": state})
                })
                .collect();
            json!({"clientId": c.client_id, "role": c.role, "created": c.created, "revoked": c.revoked_at.is_some(),
                "federated": c.federation.is_some(), "manageable": manageable_client(c), "secrets": secrets})
        })
        .collect())
}

/// `POST /portal/api/oauth` (`{"expiresInDays": n}`): a new secret for the tenant's provisioner
/// client (made now when it has none), shown once. It lasts `expiresInDays` (default two years),
/// within three years and the tenant's maximum key lifetime.
async fn new_secret(layout: &Layout, tenant: &str, body: &[u8], scim_base_url: &str) -> Result<Response> {
    let rec = tenancy::require_tenant(layout, tenant).await?;
    let max = rec.max_key_lifetime_days.map_or(crate::oauth::MAX_SECRET_DAYS, |m| m.min(crate::oauth::MAX_SECRET_DAYS));
    let days = new_key_days(body, Some(max))?.map(|d| if body_names_days(body) { d } else { d.min(crate::oauth::DEFAULT_SECRET_DAYS) });
    let current = tenant_clients(layout, tenant).await?.into_iter().rev().find(|c| manageable_client(c) && c.revoked_at.is_none());
    let made = match current {
        Some(c) => crate::oauth::add_secret(layout, &c.client_id, days).await?,
        None => crate::oauth::create_client(layout, tenant, PORTAL_ROLE, days).await?,
    };
    note(layout, tenant, "POST", "/portal/api/oauth", Some(&made.client_id), 201).await;
    Ok(json_response(
        201,
        &json!({"clientId": made.client_id, "clientSecret": made.secret, "secretId": made.secret_id,
            "expires": crate::time::format_unix_millis(made.expires_at * 1000), "tokenEndpoint": token_endpoint(scim_base_url)}),
    ))
}

fn body_names_days(body: &[u8]) -> bool {
    crate::json::parse(body).ok().is_some_and(|v: Value| v.get("expiresInDays").is_some_and(|d| !d.is_null()))
}

/// `DELETE /portal/api/oauth/{secret id}`: one secret of the tenant's provisioner client
/// revoked (its tokens stop as a revoked key's do).
async fn revoke_secret(layout: &Layout, tenant: &str, secret_id: &str, path: &str) -> Result<Response> {
    let clients = tenant_clients(layout, tenant).await?;
    let Some(c) = clients.iter().find(|c| c.secrets.iter().any(|s| s.id == secret_id)) else {
        return Err(ScimError::NotFound(format!("no client secret '{secret_id}'")));
    };
    if !manageable_client(c) {
        return Err(ScimError::Forbidden(format!("client {} is your operator's: ask them", c.client_id)));
    }
    crate::oauth::revoke(layout, &c.client_id, Some(secret_id)).await?;
    note(layout, tenant, "DELETE", &format!("/portal/api{path}"), Some(secret_id), 204).await;
    Ok(Response::empty(204))
}

/// The role of the keys the portal makes, and the only keys it may revoke (an operator's admin
/// key is listed, marked, but not the IT admin's to revoke).
const PORTAL_ROLE: &str = "provisioner";

fn manageable(key: &Value) -> bool {
    key["role"] == PORTAL_ROLE
}

/// The tenant's keys for the page: id, role, created, last used, expiry, revoked, and whether
/// the page may revoke it.
async fn keys(layout: &Layout, tenant: &str) -> Result<Vec<Value>> {
    Ok(tenancy::list_keys(layout, tenant)
        .await?
        .into_iter()
        .map(|k| {
            json!({"id": k["key_id"], "role": k["role"], "created": k["created"], "lastUsed": k["last_used_at"],
                "expires": k["expires_at"].as_i64().and_then(|x| crate::time::format_unix_millis(x * 1000)),
                "revoked": k["revoked"].as_bool().unwrap_or(false), "manageable": manageable(&k)})
        })
        .collect())
}

/// A portal action in the tenant's audit log (as the admin's key changes would be).
async fn note(layout: &Layout, tenant: &str, method: &str, path: &str, id: Option<&str>, status: u16) {
    let entry =
        crate::activity::Entry { key_id: "portal", route: Some("portal"), method, path, resource_id: id, status, ..Default::default() };
    crate::activity::record(layout, tenant, entry).await;
}

/// Which identity provider a User-Agent names (a heuristic on the names they send), or the
/// User-Agent's first word.
pub fn idp_of(user_agent: &str) -> String {
    let ua = user_agent.to_ascii_lowercase();
    let known = [
        ("okta", "Okta"),
        ("microsoft", "Microsoft Entra ID"),
        ("azure", "Microsoft Entra ID"),
        ("aad", "Microsoft Entra ID"),
        ("entra", "Microsoft Entra ID"),
        ("onelogin", "OneLogin"),
        ("jumpcloud", "JumpCloud"),
        ("google", "Google Workspace"),
    ];
    known.iter().find(|(k, _)| ua.contains(k)).map(|(_, n)| n.to_string()).unwrap_or_else(|| {
        user_agent
            .split(|c: char| c == '/' || c.is_whitespace())
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .chars()
            .take(40)
            .collect()
    })
}

/// Days of the activity log read for the page: today and the day before.
const ACTIVITY_DAYS: i64 = 2;
/// Entries read per day.
const ACTIVITY_PER_DAY: usize = 200;

/// The tenant's recent activity (failures first unless `order=time`; `failures=only` keeps
/// failures; `q=` filters by text), never bodies or secrets, and its counts.
async fn activity(layout: &Layout, tenant: &str, query: &[(String, String)]) -> Result<Value> {
    let param = |n: &str| query.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    let mut entries = Vec::new();
    for back in 0..ACTIVITY_DAYS {
        let day = crate::time::format_unix_millis((crate::time::unix_now() - back * 86_400) * 1000).unwrap_or_default();
        entries.extend(layout.recent_audit_entries(tenant, day.get(..10).unwrap_or_default(), ACTIVITY_PER_DAY).await?);
    }
    let mut last_by_idp = serde_json::Map::new();
    for e in &entries {
        if let Some(ua) = e["user_agent"].as_str() {
            let idp = idp_of(ua);
            let t = e["time"].as_str().unwrap_or_default();
            if last_by_idp.get(&idp).and_then(Value::as_str).is_none_or(|seen| seen < t) {
                last_by_idp.insert(idp, json!(t));
            }
        }
    }
    let failed = |e: &Value| e["status"].as_u64().unwrap_or(0) >= 400;
    if param("failures") == Some("only") {
        entries.retain(failed);
    }
    if let Some(q) = param("q").map(str::to_lowercase).filter(|q| !q.is_empty()) {
        entries.retain(|e| crate::json_text(e).to_lowercase().contains(&q));
    }
    if param("order") != Some("time") {
        // failures first, each group newest first (the sort is stable)
        entries.sort_by_key(|e| !failed(e));
    }
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({"time": e["time"], "idp": e["user_agent"].as_str().map(idp_of), "unauthenticated": e["unauthenticated"] == true,
                "method": e["method"], "path": e["path"],
                "status": e["status"], "scimType": e["scim_type"], "detail": e["detail"], "resourceId": e["resource_id"],
                "undeclaredExtensions": e["undeclared_extensions"]})
        })
        .collect();
    let (users, groups) = (layout.counts(tenant, Kind::User).await?, layout.counts(tenant, Kind::Group).await?);
    Ok(json!({
        "entries": rows,
        "counts": {"usersActive": users.total.saturating_sub(users.inactive), "usersInactive": users.inactive, "groups": groups.total,
            "lastRequestByIdp": last_by_idp},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portal_routes_match_exactly() {
        assert_eq!(match_route("GET", "/portal").unwrap(), (0, None));
        assert_eq!(match_route("DELETE", "/portal/api/keys/abc").unwrap(), (6, Some("abc")));
        assert_eq!(match_route("DELETE", "/portal/api/oauth/abc").unwrap(), (10, Some("abc")));
        assert_eq!(match_route("PUT", "/portal/api/keys").unwrap_err().status(), 405);
        assert_eq!(match_route("get", "/portal").unwrap_err().status(), 405);
        assert_eq!(match_route("DELETE", "/portal/api/keys/a/b").unwrap_err().status(), 404);
        assert_eq!(match_route("GET", "/portal/admin").unwrap_err().status(), 404);
    }

    #[test]
    fn identity_providers_are_named_from_their_user_agents() {
        assert_eq!(idp_of("Okta SCIM Client 1.0.0"), "Okta");
        assert_eq!(idp_of("Microsoft.Azure.ActiveDirectory.Provisioning"), "Microsoft Entra ID");
        assert_eq!(idp_of("curl/8.5.0"), "curl");
        assert_eq!(idp_of(""), "unknown");
    }
}
