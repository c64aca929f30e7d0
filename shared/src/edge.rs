//! The HTTP edge, free of any server or Lambda type: the route table (the one place routes are
//! defined — the functions, the local server and the SAM template are checked against it),
//! request and response values, and `App::handle`, which turns a request into a SCIM response
//! and never fails: every error becomes a SCIM Error body.

use crate::auth::{self, Permission, Principal};
use crate::discovery::{self, MAX_PAYLOAD};
use crate::error::{Result, ScimError};
use crate::list_query::ListQuery;
use crate::projection::Projection;
use crate::service::{Ctx, Service, Written, etag, resource_type};
use crate::settings;
use crate::store::Table;
use crate::store::layout::{Kind, Layout, Stored};
use serde_json::Value;
use std::sync::Arc;

/// Every SCIM route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    UsersCreate,
    UsersList,
    UsersSearch,
    UsersGet,
    UsersReplace,
    UsersPatch,
    UsersDelete,
    GroupsCreate,
    GroupsList,
    GroupsSearch,
    GroupsGet,
    GroupsReplace,
    GroupsPatch,
    GroupsDelete,
    /// `POST /.search` across every resource type (RFC 7644 §3.4.3).
    RootSearch,
    ServiceProviderConfig,
    ResourceTypes,
    ResourceType,
    Schemas,
    Schema,
    /// The tenant's own settings (`scim:configure`).
    SettingsGet,
    SettingsPatch,
    /// The tenant's role mappings (`mappings:manage`).
    RoleMappingsGet,
    RoleMappingsReplace,
    RoleMappingsDelete,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub route: Route,
    pub method: &'static str,
    /// Path under the base URL (`/scim/v2`), `{id}` for the resource id.
    pub path: &'static str,
    /// The Lambda binary serving it (also its SAM function, in PascalCase + `Function`).
    pub function: &'static str,
    pub permission: Permission,
}

const fn spec(route: Route, method: &'static str, path: &'static str, function: &'static str, permission: Permission) -> RouteSpec {
    RouteSpec { route, method, path, function, permission }
}

/// The route table.
pub const ROUTES: &[RouteSpec] = &[
    spec(Route::UsersCreate, "POST", "/Users", "users-create", Permission::ScimWrite),
    spec(Route::UsersList, "GET", "/Users", "users-list", Permission::ScimRead),
    spec(Route::UsersSearch, "POST", "/Users/.search", "users-search", Permission::ScimRead),
    spec(Route::UsersGet, "GET", "/Users/{id}", "users-get", Permission::ScimRead),
    spec(Route::UsersReplace, "PUT", "/Users/{id}", "users-replace", Permission::ScimWrite),
    spec(Route::UsersPatch, "PATCH", "/Users/{id}", "users-patch", Permission::ScimWrite),
    spec(Route::UsersDelete, "DELETE", "/Users/{id}", "users-delete", Permission::ScimWrite),
    spec(Route::GroupsCreate, "POST", "/Groups", "groups-create", Permission::ScimWrite),
    spec(Route::GroupsList, "GET", "/Groups", "groups-list", Permission::ScimRead),
    spec(Route::GroupsSearch, "POST", "/Groups/.search", "groups-search", Permission::ScimRead),
    spec(Route::GroupsGet, "GET", "/Groups/{id}", "groups-get", Permission::ScimRead),
    spec(Route::GroupsReplace, "PUT", "/Groups/{id}", "groups-replace", Permission::ScimWrite),
    spec(Route::GroupsPatch, "PATCH", "/Groups/{id}", "groups-patch", Permission::ScimWrite),
    spec(Route::GroupsDelete, "DELETE", "/Groups/{id}", "groups-delete", Permission::ScimWrite),
    spec(Route::RootSearch, "POST", "/.search", "search", Permission::ScimRead),
    spec(Route::ServiceProviderConfig, "GET", "/ServiceProviderConfig", "discovery", Permission::ScimRead),
    spec(Route::ResourceTypes, "GET", "/ResourceTypes", "discovery", Permission::ScimRead),
    spec(Route::ResourceType, "GET", "/ResourceTypes/{id}", "discovery", Permission::ScimRead),
    spec(Route::Schemas, "GET", "/Schemas", "discovery", Permission::ScimRead),
    spec(Route::Schema, "GET", "/Schemas/{id}", "discovery", Permission::ScimRead),
    spec(Route::SettingsGet, "GET", "/Settings", "settings", Permission::ConfigureScim),
    spec(Route::SettingsPatch, "PATCH", "/Settings", "settings", Permission::ConfigureScim),
    spec(Route::RoleMappingsGet, "GET", "/Settings/RoleMappings", "settings", Permission::ManageMappings),
    spec(Route::RoleMappingsReplace, "PUT", "/Settings/RoleMappings", "settings", Permission::ManageMappings),
    spec(Route::RoleMappingsDelete, "DELETE", "/Settings/RoleMappings", "settings", Permission::ManageMappings),
];

/// The routes a function binary serves.
pub fn routes_of(function: &str) -> Vec<Route> {
    ROUTES.iter().filter(|r| r.function == function).map(|r| r.route).collect()
}

fn spec_of(route: Route) -> &'static RouteSpec {
    // ROUTES lists every Route variant; the fallback is never reached.
    ROUTES.iter().find(|r| r.route == route).unwrap_or(&ROUTES[0])
}

/// Matches a method and a path under the base URL. 404 for unknown paths, 405 for a known path
/// with another method.
pub fn match_route(method: &str, path: &str) -> Result<(Route, Option<String>)> {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut path_known = false;
    for r in ROUTES {
        let pat = r.path.split('/').filter(|s| !s.is_empty());
        if pat.clone().count() != segs.len() {
            continue;
        }
        let mut id = None;
        let fits = pat.zip(&segs).all(|(p, s)| {
            if p == "{id}" {
                // ".search" is a route of its own, never an id
                if s.starts_with('.') {
                    return false;
                }
                id = Some(*s);
                true
            } else {
                p.eq_ignore_ascii_case(s)
            }
        });
        if !fits {
            continue;
        }
        path_known = true;
        if r.method.eq_ignore_ascii_case(method) {
            return Ok((r.route, id.map(percent_decode)));
        }
    }
    if path_known {
        Err(ScimError::MethodNotAllowed(format!("{method} is not allowed on {path}")))
    } else {
        Err(ScimError::NotFound(format!("no endpoint at {path}")))
    }
}

/// Decodes %XX escapes in a path segment (ids are ASCII; anything undecodable stays as is).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

/// Decodes a query string (`a=b&c=d`, `+` as space) into pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// An HTTP request, as the edge sees it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Path under the base URL, e.g. `/Users/123`.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One audit entry as stored (and read back by `scim-admin audit`).
#[derive(serde::Serialize)]
struct AuditEntry<'a> {
    time: &'a str,
    key_id: &'a str,
    method: &'a str,
    path: &'a str,
    resource_id: Option<String>,
    status: u16,
}

/// How long audit entries are kept.
pub const AUDIT_RETENTION_DAYS: i64 = 90;

/// The media type of every body we send.
pub const SCIM_JSON: &str = "application/scim+json";

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response { status, headers: vec![("content-type".into(), SCIM_JSON.into())], body: serde_json::to_vec(v).unwrap_or_default() }
    }
    fn empty(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }
    /// The SCIM Error response for an error.
    pub fn error(e: &ScimError) -> Response {
        if let ScimError::Internal(cause) = e {
            tracing::error!(%cause, "internal error");
        }
        let mut r = Response::json(e.status(), &e.to_json());
        if let Some(s) = e.retry_after() {
            r.headers.push(("retry-after".into(), s.to_string()));
        }
        r
    }
    /// A header value by name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The application: the service plus request decoding and response rendering.
pub struct App {
    pub service: Service,
}

impl App {
    /// An app over a table.
    pub fn new(table: Arc<dyn Table>) -> App {
        App { service: Service::new(Layout { table }) }
    }

    /// The layout (for bootstrap and admin tasks).
    pub fn layout(&self) -> &Layout {
        &self.service.layout
    }

    /// Authenticates a request's bearer key (the authorizer's job; in process when local).
    pub async fn authenticate(&self, authorization: Option<&str>, source_ip: Option<std::net::IpAddr>) -> Result<Principal> {
        auth::authenticate(&self.service.layout, authorization, source_ip).await
    }

    /// Serves one request for an authenticated principal. `only` limits the routes (a function
    /// serves its own routes and answers 404 for anything else).
    pub async fn handle(&self, principal: &Principal, req: &Request, base_url: &str, only: Option<&[Route]>) -> Response {
        let matched = match_route(&req.method, &req.path);
        let resource_id = matched.as_ref().ok().and_then(|(_, id)| id.clone());
        let resp = match matched {
            Ok(m) => self.dispatch(principal, req, base_url, only, m).await,
            Err(e) => Err(e),
        };
        let resp = resp.unwrap_or_else(|e| Response::error(&e));
        self.audit(principal, req, resource_id, resp.status).await;
        resp
    }

    /// Records a mutation in the tenant's audit log: who (key id), what (method, path, resource
    /// id), outcome (status), when. Never bodies or secrets. Failing to audit does not fail the
    /// request; it is logged.
    async fn audit(&self, principal: &Principal, req: &Request, resource_id: Option<String>, status: u16) {
        let mutating = matches!(req.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") && !req.path.ends_with(".search");
        if !mutating {
            return;
        }
        let time = crate::time::now();
        let entry = AuditEntry { time: &time, key_id: &principal.key_id, method: &req.method, path: &req.path, resource_id, status };
        if let Err(e) = self.service.layout.audit(&principal.tenant_id, &time, &entry, AUDIT_RETENTION_DAYS).await {
            tracing::warn!(error = %e, "audit entry not written");
        }
    }

    async fn dispatch(
        &self,
        principal: &Principal,
        req: &Request,
        base_url: &str,
        only: Option<&[Route]>,
        (route, id): (Route, Option<String>),
    ) -> Result<Response> {
        if only.is_some_and(|o| !o.contains(&route)) {
            return Err(ScimError::NotFound(format!("no endpoint at {}", req.path)));
        }
        if !principal.may(spec_of(route).permission) {
            return Err(ScimError::Forbidden(format!("the key's role '{}' may not {} {}", principal.role, req.method, req.path)));
        }
        // per-tenant request limit (discovery is static and exempt); the limiter fails open
        if let Some(limit) = principal.rate_limit
            && spec_of(route).function != "discovery"
        {
            match self.service.layout.tick(&principal.tenant_id).await {
                Ok(n) if n > i64::from(limit) => {
                    return Err(ScimError::TooManyRequests {
                        detail: format!("this tenant is limited to {limit} requests per second"),
                        retry_after: 1,
                    });
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "rate limiter unavailable; request allowed"),
            }
        }
        if matches!(route, Route::UsersCreate | Route::UsersReplace | Route::UsersPatch)
            && !principal.may(Permission::EditRoles)
            && touches_roles(route, &req.body)
        {
            return Err(ScimError::Forbidden(format!("the key's role '{}' may not set user roles (it needs roles:edit)", principal.role)));
        }
        let ctx =
            Ctx { tenant: &principal.tenant_id, base_url, roles: principal.roles_policy.as_ref(), deactivation: principal.deactivation };
        let id = id.unwrap_or_default();
        let if_match = req.header("if-match");
        let svc = &self.service;
        let kind = match route {
            Route::GroupsCreate
            | Route::GroupsList
            | Route::GroupsSearch
            | Route::GroupsGet
            | Route::GroupsReplace
            | Route::GroupsPatch
            | Route::GroupsDelete => Kind::Group,
            _ => Kind::User,
        };
        let rt = resource_type(kind);
        let projection = Projection::new(rt, query(req, "attributes"), query(req, "excludedAttributes"));
        let render = |s: Stored, status: u16, written: Written| async move {
            let (version, location) = (s.version, (status == 201).then(|| format!("{base_url}{}/{}", rt.endpoint, s.id())));
            let doc = svc.render(ctx, kind, s, &projection, written).await?;
            let mut r = Response::json(status, &Value::Object(doc));
            r.headers.push(("etag".into(), etag(version)));
            if let Some(l) = location {
                r.headers.push(("location".into(), l));
            }
            Ok::<Response, ScimError>(r)
        };
        Ok(match route {
            Route::UsersCreate | Route::GroupsCreate => render(svc.create(ctx, kind, &body(req)?).await?, 201, Written::Created).await?,
            Route::UsersGet | Route::GroupsGet => {
                let s = svc.get(ctx, kind, &id).await?;
                // A group's version covers its own attributes, not its member items (adding one
                // member must not contend on the group item), so only users answer 304.
                if kind == Kind::User && req.header("if-none-match").is_some_and(|h| h.split(',').any(|t| t.trim() == etag(s.version))) {
                    let mut r = Response::empty(304);
                    r.headers.push(("etag".into(), etag(s.version)));
                    r
                } else {
                    render(s, 200, Written::No).await?
                }
            }
            Route::UsersReplace | Route::GroupsReplace => {
                render(svc.replace(ctx, kind, &id, &body(req)?, if_match).await?, 200, Written::Changed).await?
            }
            Route::UsersPatch => render(svc.patch(ctx, kind, &id, &body(req)?, if_match).await?, 200, Written::Changed).await?,
            // Group PATCH answers 204 (a large group's members are not sent back) unless the
            // client asks for attributes.
            Route::GroupsPatch => {
                let s = svc.patch(ctx, kind, &id, &body(req)?, if_match).await?;
                if query(req, "attributes").is_some() || query(req, "excludedAttributes").is_some() {
                    render(s, 200, Written::Changed).await?
                } else {
                    let mut r = Response::empty(204);
                    r.headers.push(("etag".into(), etag(s.version)));
                    r
                }
            }
            Route::UsersDelete | Route::GroupsDelete => {
                svc.delete(ctx, kind, &id, if_match).await?;
                Response::empty(204)
            }
            Route::UsersList | Route::GroupsList => {
                Response::json(200, &svc.list_response(ctx, kind, &ListQuery::from_params(&req.query)?).await?)
            }
            Route::UsersSearch | Route::GroupsSearch => {
                Response::json(200, &svc.list_response(ctx, kind, &ListQuery::from_search(&body(req)?)?).await?)
            }
            Route::RootSearch => Response::json(200, &self.root_search(ctx, &ListQuery::from_search(&body(req)?)?).await?),
            Route::ServiceProviderConfig => Response::json(200, &discovery::service_provider_config(base_url)),
            Route::ResourceTypes => Response::json(200, &discovery::resource_type_list(base_url, ctx.roles.is_some())),
            Route::ResourceType => Response::json(200, &discovery::resource_type(base_url, &id, ctx.roles.is_some())?),
            Route::Schemas => Response::json(200, &discovery::schema_list(base_url, ctx.roles.is_some())),
            Route::Schema => Response::json(200, &discovery::schema(base_url, &id, ctx.roles.is_some())?),
            Route::SettingsGet => Response::json(200, &settings::view(&svc.layout, ctx.tenant, base_url).await?),
            Route::SettingsPatch => Response::json(200, &settings::patch(&svc.layout, ctx.tenant, base_url, &body(req)?).await?),
            Route::RoleMappingsGet => Response::json(200, &settings::role_mappings(&svc.layout, ctx.tenant).await?),
            Route::RoleMappingsReplace => {
                Response::json(200, &settings::replace_role_mappings(&svc.layout, ctx.tenant, &body(req)?).await?)
            }
            Route::RoleMappingsDelete => {
                settings::delete_role_mappings(&svc.layout, ctx.tenant).await?;
                Response::empty(204)
            }
        })
    }

    /// `POST /.search`: Users then Groups, paged together. A filter naming attributes of one
    /// type simply matches nothing of the other.
    async fn root_search(&self, ctx: Ctx<'_>, q: &ListQuery) -> Result<Value> {
        if q.cursor.is_some() {
            return Err(ScimError::invalid_value("cursor pagination is not offered on /.search; use /Users or /Groups"));
        }
        let mut all: Vec<Value> = Vec::new();
        let mut total = 0u64;
        for kind in [Kind::User, Kind::Group] {
            let rt = resource_type(kind);
            // a sort attribute of the other type sorts nothing here
            let sort_by = q.sort_by.clone().filter(|s| crate::path::AttrPath::parse(s).ok().and_then(|p| p.resolve(rt)).is_some());
            let whole = ListQuery { start_index: 1, count: crate::list_query::MAX_COUNT, sort_by, ..q.clone() };
            let page = self.service.list_response(ctx, kind, &whole).await?;
            total += page["totalResults"].as_u64().unwrap_or(0);
            all.extend(page["Resources"].as_array().cloned().unwrap_or_default());
        }
        let start = q.start_index.max(1);
        let resources: Vec<Value> = all.into_iter().skip((start - 1) as usize).take(q.count as usize).collect();
        Ok(serde_json::json!({
            "schemas": [crate::schema::URN_LIST],
            "totalResults": total,
            "itemsPerPage": resources.len(),
            "startIndex": start,
            "Resources": resources,
        }))
    }
}

/// Whether a user body sets `roles` (a create/replace body member, or a PATCH operation whose
/// path or path-less value names it). Unparseable bodies are left to the normal 400s.
fn touches_roles(route: Route, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    let names_roles = |k: &str| {
        k.eq_ignore_ascii_case("roles") || k.to_ascii_lowercase().starts_with("roles[") || k.to_ascii_lowercase().starts_with("roles.")
    };
    match route {
        Route::UsersPatch => v.get("Operations").or_else(|| v.get("operations")).and_then(Value::as_array).is_some_and(|ops| {
            ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str).is_some_and(|p| names_roles(p.trim()))
                    || op.get("value").and_then(Value::as_object).is_some_and(|o| o.keys().any(|k| names_roles(k)))
            })
        }),
        _ => v
            .as_object()
            .is_some_and(|o| o.iter().any(|(k, x)| names_roles(k) && !x.is_null() && x.as_array().is_none_or(|a| !a.is_empty()))),
    }
}

fn query<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Decodes a JSON request body: size, media type and syntax checked, each with its own error.
fn body(req: &Request) -> Result<Value> {
    if req.body.len() > MAX_PAYLOAD {
        return Err(ScimError::PayloadTooLarge(format!("request body over {MAX_PAYLOAD} bytes")));
    }
    if let Some(ct) = req.header("content-type") {
        let media = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if !(media.is_empty() || media.contains("json") || media == "text/plain" || media == "*/*") {
            return Err(ScimError::UnsupportedMediaType(format!("send application/scim+json, not {media}")));
        }
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Err(ScimError::invalid_syntax("the request body is empty"));
    }
    serde_json::from_slice(&req.body).map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_404_and_405() {
        assert_eq!(match_route("GET", "/Users").unwrap().0, Route::UsersList);
        assert_eq!(match_route("post", "/Users/.search").unwrap().0, Route::UsersSearch);
        let (r, id) = match_route("PATCH", "/Users/abc%2Fd").unwrap();
        assert_eq!((r, id.as_deref()), (Route::UsersPatch, Some("abc/d")));
        assert_eq!(match_route("GET", "/Nope").unwrap_err().status(), 404);
        assert_eq!(match_route("DELETE", "/Users").unwrap_err().status(), 405);
        assert_eq!(match_route("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").unwrap().0, Route::Schema);
    }

    #[test]
    fn every_route_variant_is_in_the_table_once() {
        for r in ROUTES {
            assert_eq!(ROUTES.iter().filter(|x| x.route == r.route).count(), 1);
        }
        assert_eq!(ROUTES.len(), 25);
    }

    #[test]
    fn query_strings_decode() {
        let q = parse_query("filter=userName+eq+%22a%40b.c%22&count=10");
        assert_eq!(q[0].1, "userName eq \"a@b.c\"");
        assert_eq!(q[1], ("count".into(), "10".into()));
    }
}
