//! The HTTP edge, free of any server or Lambda type: the route table (the one place routes are
//! defined — the functions, the local server and the SAM template are checked against it),
//! request and response values, and `App::handle`, which turns a request into a SCIM response
//! and never fails: every error becomes a SCIM Error body.

use crate::activity;
use crate::auth::{self, Principal};
use crate::declarations;
use crate::discovery::{self, MAX_PAYLOAD};
use crate::error::{Result, ScimError};
use crate::list_query::ListQuery;
use crate::projection::Projection;
use crate::roles::Permission;
use crate::service::{Ctx, Service, Written, etag};
use crate::settings;
use crate::store::Table;
use crate::store::layout::{Kind, Layout, Stored};
use serde_json::Value;
use std::sync::Arc;

/// Declares `Route` and `Route::ALL` from one list, so no variant can be missing from `ALL`
/// (and the route table is checked against `ALL`).
macro_rules! routes {
    ($($(#[$doc:meta])* $variant:ident,)*) => {
        /// Every SCIM route.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Route {
            $($(#[$doc])* $variant,)*
        }

        impl Route {
            /// Every variant, in declaration order.
            pub const ALL: &[Route] = &[$(Route::$variant),*];
        }
    };
}

routes! {
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
    /// The tenant's schema extensions (`scim:configure`).
    SchemaDeclarationsList,
    SchemaDeclarationGet,
    SchemaDeclarationPut,
    SchemaDeclarationDelete,
    /// Setup links to the portal for the tenant's IT admin (`scim:configure`).
    PortalLinkCreate,
    PortalLinksRevoke,
}

impl Route {
    /// The resource type a Users or Groups route serves; `None` for every other route.
    pub fn kind(self) -> Option<Kind> {
        use Route::*;
        match self {
            UsersCreate | UsersList | UsersSearch | UsersGet | UsersReplace | UsersPatch | UsersDelete => Some(Kind::User),
            GroupsCreate | GroupsList | GroupsSearch | GroupsGet | GroupsReplace | GroupsPatch | GroupsDelete => Some(Kind::Group),
            _ => None,
        }
    }
}

/// One row of the route table: everything dispatch, permission, rate limit and audit need.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub route: Route,
    /// The HTTP method, exactly (methods are case-sensitive tokens, RFC 9110 §9.1).
    pub method: &'static str,
    /// Path under the base URL (`/scim/v2`), `{id}` for the resource id.
    pub path: &'static str,
    /// The Lambda binary serving it (also its SAM function, in PascalCase + `Function`).
    pub function: &'static str,
    pub permission: Permission,
    /// Whether the route can change stored data (every attempt on it is audited).
    pub mutating: bool,
    /// The body it reads, decoded once before dispatch.
    pub body: BodyUse,
}

/// What a route does with the request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyUse {
    /// Nothing: a body sent anyway is ignored.
    Ignored,
    /// A JSON document it cannot do without (an empty body is `400 invalidSyntax`).
    Json,
    /// A JSON document, or nothing at all.
    OptionalJson,
}

/// Whether `a` and `b` are the same text (`==` on `str` is not `const`).
const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The methods whose requests carry the document the route works on.
const fn body_of(method: &str) -> BodyUse {
    if same(method, "POST") || same(method, "PUT") || same(method, "PATCH") { BodyUse::Json } else { BodyUse::Ignored }
}

const fn read(route: Route, method: &'static str, path: &'static str, function: &'static str, permission: Permission) -> RouteSpec {
    RouteSpec { route, method, path, function, permission, mutating: false, body: body_of(method) }
}

const fn write(route: Route, method: &'static str, path: &'static str, function: &'static str, permission: Permission) -> RouteSpec {
    RouteSpec { route, method, path, function, permission, mutating: true, body: body_of(method) }
}

impl RouteSpec {
    /// The same row, its body optional.
    const fn body_optional(self) -> RouteSpec {
        RouteSpec { body: BodyUse::OptionalJson, ..self }
    }
}

/// The route table.
pub const ROUTES: &[RouteSpec] = &[
    write(Route::UsersCreate, "POST", "/Users", "users-create", Permission::ScimWrite),
    read(Route::UsersList, "GET", "/Users", "users-list", Permission::ScimRead),
    read(Route::UsersSearch, "POST", "/Users/.search", "users-search", Permission::ScimRead),
    read(Route::UsersGet, "GET", "/Users/{id}", "users-get", Permission::ScimRead),
    write(Route::UsersReplace, "PUT", "/Users/{id}", "users-replace", Permission::ScimWrite),
    write(Route::UsersPatch, "PATCH", "/Users/{id}", "users-patch", Permission::ScimWrite),
    write(Route::UsersDelete, "DELETE", "/Users/{id}", "users-delete", Permission::ScimWrite),
    write(Route::GroupsCreate, "POST", "/Groups", "groups-create", Permission::ScimWrite),
    read(Route::GroupsList, "GET", "/Groups", "groups-list", Permission::ScimRead),
    read(Route::GroupsSearch, "POST", "/Groups/.search", "groups-search", Permission::ScimRead),
    read(Route::GroupsGet, "GET", "/Groups/{id}", "groups-get", Permission::ScimRead),
    write(Route::GroupsReplace, "PUT", "/Groups/{id}", "groups-replace", Permission::ScimWrite),
    write(Route::GroupsPatch, "PATCH", "/Groups/{id}", "groups-patch", Permission::ScimWrite),
    write(Route::GroupsDelete, "DELETE", "/Groups/{id}", "groups-delete", Permission::ScimWrite),
    read(Route::RootSearch, "POST", "/.search", "search", Permission::ScimRead),
    read(Route::ServiceProviderConfig, "GET", "/ServiceProviderConfig", "discovery", Permission::ScimRead),
    read(Route::ResourceTypes, "GET", "/ResourceTypes", "discovery", Permission::ScimRead),
    read(Route::ResourceType, "GET", "/ResourceTypes/{id}", "discovery", Permission::ScimRead),
    read(Route::Schemas, "GET", "/Schemas", "discovery", Permission::ScimRead),
    read(Route::Schema, "GET", "/Schemas/{id}", "discovery", Permission::ScimRead),
    read(Route::SettingsGet, "GET", "/Settings", "settings", Permission::ConfigureScim),
    write(Route::SettingsPatch, "PATCH", "/Settings", "settings", Permission::ConfigureScim),
    read(Route::RoleMappingsGet, "GET", "/Settings/RoleMappings", "settings", Permission::ManageMappings),
    write(Route::RoleMappingsReplace, "PUT", "/Settings/RoleMappings", "settings", Permission::ManageMappings),
    write(Route::RoleMappingsDelete, "DELETE", "/Settings/RoleMappings", "settings", Permission::ManageMappings),
    read(Route::SchemaDeclarationsList, "GET", "/Settings/Schemas", "settings", Permission::ConfigureScim),
    read(Route::SchemaDeclarationGet, "GET", "/Settings/Schemas/{id}", "settings", Permission::ConfigureScim),
    write(Route::SchemaDeclarationPut, "PUT", "/Settings/Schemas/{id}", "settings", Permission::ConfigureScim),
    write(Route::SchemaDeclarationDelete, "DELETE", "/Settings/Schemas/{id}", "settings", Permission::ConfigureScim),
    write(Route::PortalLinkCreate, "POST", "/Settings/PortalLinks", "settings", Permission::ConfigureScim).body_optional(),
    write(Route::PortalLinksRevoke, "DELETE", "/Settings/PortalLinks", "settings", Permission::ConfigureScim),
];

/// The routes a function binary serves.
pub fn routes_of(function: &str) -> Vec<Route> {
    ROUTES.iter().filter(|r| r.function == function).map(|r| r.route).collect()
}

/// A request matched to its route: the table row and the decoded resource id.
#[derive(Debug, Clone)]
pub struct Matched {
    pub spec: &'static RouteSpec,
    pub id: Option<String>,
}

/// Matches a method and a path under the base URL. The method exactly (methods are
/// case-sensitive tokens, as API Gateway treats them: `post` is not `POST`); path segments
/// ignoring ASCII case (Microsoft's tooling sends `/users`). 404 for unknown paths, 405 for a
/// known path with any other method.
pub fn match_route(method: &str, path: &str) -> Result<Matched> {
    let path = path.trim_end_matches('/');
    let mut path_known = false;
    // the path's segments, split once; no route has more than three
    let mut given = [""; 3];
    let mut count = 0;
    for s in path.split('/').filter(|s| !s.is_empty()) {
        let Some(slot) = given.get_mut(count) else {
            return Err(ScimError::NotFound(format!("no endpoint at {path}")));
        };
        *slot = s;
        count += 1;
    }
    let given = &given[..count];
    for spec in ROUTES {
        let mut id = None;
        let mut segs = given.iter().copied();
        let mut pat = spec.path.split('/').filter(|s| !s.is_empty());
        let fits = loop {
            match (pat.next(), segs.next()) {
                (None, None) => break true,
                // ".search" is a route of its own, never an id
                (Some("{id}"), Some(s)) if !s.starts_with('.') => id = Some(s),
                (Some(p), Some(s)) if p.eq_ignore_ascii_case(s) => {}
                _ => break false,
            }
        };
        if !fits {
            continue;
        }
        path_known = true;
        if spec.method == method {
            return Ok(Matched { spec, id: id.map(percent_decode) });
        }
    }
    let shown: String = method.chars().take(16).collect();
    if path_known {
        Err(ScimError::MethodNotAllowed(format!("{shown} is not allowed on {path}")))
    } else {
        Err(ScimError::NotFound(format!("no endpoint at {path}")))
    }
}

/// Decodes %XX escapes in a path segment (RFC 3986 §2.1; bytes that are not UTF-8 become U+FFFD,
/// which matches no id).
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Decodes a query string (`a=b&c=d`, `+` as space: application/x-www-form-urlencoded) into pairs.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

/// A request as the edge reads it: the HTTP request both entry points hand over (`http` types,
/// what `lambda_http` speaks and hyper serves), its path under the base URL (`/Users/123`),
/// with the query decoded once.
#[derive(Debug)]
pub struct Request<'a> {
    http: &'a HttpRequest,
    /// The method, exactly as sent (methods are case-sensitive tokens).
    pub method: &'a str,
    /// Path under the base URL, e.g. `/Users/123`.
    pub path: &'a str,
    pub query: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// What the entry points hand the edge: an HTTP request (for [`App::handle`], with a URI
/// relative to the base URL; [`App::handle_under`] is told the path under it instead).
pub type HttpRequest = http::Request<bytes::Bytes>;

/// The URI an entry point hands over: `path` (already rebased on the base URL or the portal's
/// root) with the query as sent. An empty path (the base URL itself) or one that does not parse
/// becomes `/`, which matches no route, like any other unknown path.
pub fn rebased_uri(path: &str, query: Option<&str>) -> http::Uri {
    let uri = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    uri.parse().unwrap_or_else(|_| http::Uri::from_static("/"))
}

/// A request as a SCIM client sends it — `method`, a URI relative to the base URL, a JSON body
/// (or none) as `application/scim+json` — for tools and tests that call the edge in process. A
/// method or URI that does not parse becomes `GET /`, which matches no route.
pub fn json_request(method: &str, uri: &str, body: Option<&Value>) -> HttpRequest {
    let mut r = http::Request::new(body.map(|b| bytes::Bytes::from(crate::json_text(b))).unwrap_or_default());
    *r.method_mut() = http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::GET);
    *r.uri_mut() = uri.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(SCIM_JSON));
    r
}

impl<'a> Request<'a> {
    /// The edge's view of an HTTP request whose path under the base URL is `path`.
    fn of(http: &'a HttpRequest, path: &'a str) -> Request<'a> {
        Request {
            http,
            method: http.method().as_str(),
            path,
            query: http.uri().query().map(parse_query).unwrap_or_default(),
            body: http.body(),
        }
    }

    /// A header value by name (a constant of `http::header`, or any string, case-insensitive); a
    /// value that is not visible ASCII reads as absent.
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&'a str> {
        self.http.headers().get(name).and_then(|v| v.to_str().ok())
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    /// The resource a create made (or, under `relink`, took over): for the audit entry, never
    /// sent as such.
    pub created: Option<String>,
}

/// The media type of every body we send.
pub const SCIM_JSON: &str = "application/scim+json";

impl Response {
    fn json(status: u16, v: &Value) -> Response {
        Response::json_body(status, crate::json_text(v).into_bytes())
    }
    fn json_body(status: u16, body: Vec<u8>) -> Response {
        Response::with_type(status, SCIM_JSON, body)
    }
    /// A response with a body of a (constant) media type.
    pub fn with_type(status: u16, media_type: &'static str, body: Vec<u8>) -> Response {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(media_type));
        Response { status, headers, body, created: None }
    }
    /// A response without a body.
    pub fn empty(status: u16) -> Response {
        Response { status, headers: http::HeaderMap::new(), body: Vec::new(), created: None }
    }
    /// Sets a header whose value is made at run time; a value that is not a valid header value
    /// (none of ours: ETags, URLs, seconds) is left out rather than failing the response.
    pub fn set_header(&mut self, name: http::HeaderName, value: String) {
        if let Ok(v) = http::HeaderValue::try_from(value) {
            self.headers.insert(name, v);
        }
    }
    /// The SCIM Error response for an error.
    pub fn error(e: &ScimError) -> Response {
        if let ScimError::Internal(cause) = e {
            tracing::error!(%cause, "internal error");
        }
        let mut r = Response::json(e.status(), &e.to_json());
        if let Some(s) = e.retry_after() {
            r.set_header(http::header::RETRY_AFTER, s.to_string());
        }
        r
    }
    /// A header value by name (a constant of `http::header`, or any string, case-insensitive).
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The response in `http` types, for either entry point.
    pub fn into_http(self) -> http::Response<bytes::Bytes> {
        let mut r = http::Response::new(bytes::Bytes::from(self.body));
        *r.status_mut() = http::StatusCode::from_u16(self.status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        *r.headers_mut() = self.headers;
        r
    }
}

/// What an audited request was about: the route it matched (with the id in its path), and the
/// resource a create made.
#[derive(Clone, Copy)]
struct Target<'a> {
    matched: Option<&'a Matched>,
    created: Option<&'a str>,
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

    /// [`App::authenticate`] for a request: a refused key of a known tenant is recorded in that
    /// tenant's activity log.
    pub async fn authenticate_attempt(
        &self,
        authorization: Option<&str>,
        source_ip: Option<std::net::IpAddr>,
        attempt: auth::Attempt<'_>,
    ) -> Result<Principal> {
        auth::authenticate_attempt(&self.service.layout, authorization, source_ip, Some(attempt)).await
    }

    /// Serves one request for an authenticated principal. `only` limits the routes (a function
    /// serves its own routes and answers 404 for anything else).
    pub async fn handle(&self, principal: &Principal, req: &HttpRequest, base_url: &str, only: Option<&[Route]>) -> Response {
        self.handle_under(principal, req, req.uri().path(), base_url, only).await
    }

    /// [`App::handle`] for a request with the URI its client sent: `path` is the part of it
    /// under the base URL (the entry point cut off what precedes it); the query is the URI's.
    /// No URI is rebuilt.
    pub async fn handle_under(
        &self,
        principal: &Principal,
        req: &HttpRequest,
        path: &str,
        base_url: &str,
        only: Option<&[Route]>,
    ) -> Response {
        let req = &Request::of(req, path);
        let matched = match_route(req.method, req.path);
        let undeclared = crate::resource::Undeclared::new(principal.unknown_extensions == crate::tenancy::UnknownExtensions::Reject);
        let outcome = match &matched {
            Ok(m) => self.dispatch(principal, req, base_url, only, m, &undeclared).await,
            Err(e) => Err(e.clone()),
        };
        let (resp, failure) = match outcome {
            Ok(r) => (r, None),
            Err(e) => (Response::error(&e), Some(e)),
        };
        // The tenant's activity log: every attempt on a mutating route whatever its outcome
        // (refusals included), anything that matched no route (an unknown method or path is an
        // attempt too), and every failed request on any route. A read that succeeded writes
        // nothing.
        let record = match &matched {
            Ok(m) => m.spec.mutating || failure.is_some(),
            Err(_) => true,
        };
        if record {
            let target = Target { matched: matched.as_ref().ok(), created: resp.created.as_deref() };
            self.audit(principal, req, target, resp.status, failure.as_ref(), undeclared.urns()).await;
        }
        resp
    }

    /// Answers a request its entry point refused before the edge could read it whole (a body
    /// over the limit, a body whose framing is broken): the SCIM error for `e`, and the attempt
    /// in the tenant's audit log like any other refusal of a recognised key. `req` carries no
    /// body.
    pub async fn refuse_under(&self, principal: &Principal, req: &HttpRequest, path: &str, e: &ScimError) -> Response {
        let req = &Request::of(req, path);
        let matched = match_route(req.method, req.path).ok();
        let resp = Response::error(e);
        self.audit(principal, req, Target { matched: matched.as_ref(), created: None }, resp.status, Some(e), Vec::new()).await;
        resp
    }

    /// Records an attempt in the tenant's activity (audit) log: who (key id, the client's
    /// User-Agent), what (route, method, path, resource id), outcome (status, and for a failure
    /// its scimType and detail), when. Never bodies or secrets; the client's text is cut to a
    /// bounded length. Failing to record does not fail the request; it is logged.
    async fn audit(
        &self,
        principal: &Principal,
        req: &Request<'_>,
        target: Target<'_>,
        status: u16,
        failure: Option<&ScimError>,
        undeclared: Vec<String>,
    ) {
        let detail = failure.map(|e| e.client_detail());
        let entry = activity::Entry {
            key_id: &principal.key_id,
            route: target.matched.map(|m| m.spec.function),
            method: req.method,
            path: req.path,
            resource_id: target.created.or(target.matched.and_then(|m| m.id.as_deref())),
            status,
            scim_type: failure.and_then(ScimError::scim_type).map(|t| t.as_str()),
            detail: detail.as_deref(),
            user_agent: req.header(http::header::USER_AGENT),
            undeclared_extensions: &undeclared,
            unauthenticated: false,
        };
        activity::record(&self.service.layout, &principal.tenant_id, entry).await;
    }

    /// Whether this request may run at all: the route is one this function serves, the key's
    /// role has the route's permission, and the tenant is within its request limit.
    async fn admit(&self, principal: &Principal, req: &Request<'_>, spec: &RouteSpec, only: Option<&[Route]>) -> Result<()> {
        if only.is_some_and(|o| !o.contains(&spec.route)) {
            return Err(ScimError::NotFound(format!("no endpoint at {}", req.path)));
        }
        if !principal.may(spec.permission) {
            return Err(ScimError::Forbidden(format!(
                "the key's role '{}' may not {} {} (it needs {})",
                principal.role,
                spec.method,
                spec.path,
                spec.permission.as_str()
            )));
        }
        // per-tenant request limit (discovery is static and exempt); the limiter fails open
        let Some(limit) = principal.rate_limit.filter(|_| spec.function != "discovery") else { return Ok(()) };
        match self.service.layout.tick(&principal.tenant_id).await {
            Ok(n) if n > i64::from(limit) => {
                Err(ScimError::TooManyRequests { detail: format!("this tenant is limited to {limit} requests per second"), retry_after: 1 })
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "rate limiter unavailable; request allowed");
                Ok(())
            }
        }
    }

    async fn dispatch(
        &self,
        principal: &Principal,
        req: &Request<'_>,
        base_url: &str,
        only: Option<&[Route]>,
        m: &Matched,
        undeclared: &crate::resource::Undeclared,
    ) -> Result<Response> {
        self.admit(principal, req, m.spec, only).await?;
        let doc = body(req, m.spec.body)?;
        let types = self.service.tenant_types(&principal.tenant_id, principal.schemas_version).await?;
        let ctx = Ctx { principal, base_url, types: &types, undeclared };
        let id = m.id.as_deref().unwrap_or_default();
        if let Some(kind) = m.spec.route.kind() {
            return self.resource_route(ctx, req, &doc, m.spec.route, kind, id).await;
        }
        let roles = ctx.roles().is_some();
        Ok(match m.spec.route {
            Route::RootSearch => Response::json(200, &self.root_search(ctx, &ListQuery::from_search(&doc)?).await?),
            Route::ServiceProviderConfig => Response::json(200, &discovery::service_provider_config(base_url)),
            Route::ResourceTypes => Response::json(200, &discovery::resource_type_list(base_url, &types, roles)),
            Route::ResourceType => Response::json(200, &discovery::resource_type(base_url, &types, id, roles)?),
            Route::Schemas => Response::json(200, &discovery::schema_list(base_url, &types, roles)),
            Route::Schema => Response::json(200, &discovery::schema(base_url, &types, id, roles)?),
            route => self.configuration_route(ctx.tenant(), &doc, base_url, route, id).await?,
        })
    }

    /// The Users and Groups routes (RFC 7644 §3.3–3.6).
    async fn resource_route(&self, ctx: Ctx<'_>, req: &Request<'_>, doc: &Value, route: Route, kind: Kind, id: &str) -> Result<Response> {
        let (svc, if_match) = (&self.service, req.header(http::header::IF_MATCH));
        let rt = ctx.types.of(kind);
        let projection = &Projection::new(rt, query(req, "attributes"), query(req, "excludedAttributes"));
        let render = |s: Stored, status: u16, written: Written| async move {
            let (version, location) = (s.version, (status == 201).then(|| format!("{}{}/{}", ctx.base_url, rt.endpoint, s.id())));
            let doc = svc.render(ctx, kind, s, projection, written).await?;
            let mut r = Response::json(status, &Value::Object(doc));
            r.set_header(http::header::ETAG, etag(version));
            if let Some(l) = location {
                r.set_header(http::header::LOCATION, l);
            }
            Ok::<Response, ScimError>(r)
        };
        let bodiless = |status: u16, version: u64| {
            let mut r = Response::empty(status);
            r.set_header(http::header::ETAG, etag(version));
            r
        };
        Ok(match route {
            Route::UsersCreate | Route::GroupsCreate => {
                let (stored, written) = svc.create(ctx, kind, doc).await?;
                let id = stored.id().to_string();
                Response { created: Some(id), ..render(stored, 201, written).await? }
            }
            Route::UsersGet | Route::GroupsGet => {
                let s = svc.get_text(ctx, kind, id).await?;
                let tag = etag(s.version);
                // A group's version covers its own attributes, not its member items (adding one
                // member must not contend on the group item), so only users answer 304.
                let mut r = match kind == Kind::User
                    && req.header(http::header::IF_NONE_MATCH).is_some_and(|h| h.split(',').any(|t| t.trim() == tag))
                {
                    true => Response::empty(304),
                    false => Response::json_body(200, svc.read(ctx, kind, &s, projection).await?),
                };
                r.set_header(http::header::ETAG, tag);
                r
            }
            Route::UsersReplace | Route::GroupsReplace => {
                render(svc.replace(ctx, kind, id, doc, if_match).await?, 200, Written::Changed).await?
            }
            Route::UsersPatch => render(svc.patch(ctx, kind, id, doc, if_match).await?, 200, Written::Changed).await?,
            // Group PATCH answers 204 (a large group's members are not sent back) unless the
            // client asks for attributes.
            Route::GroupsPatch => {
                let s = svc.patch(ctx, kind, id, doc, if_match).await?;
                match query(req, "attributes").is_some() || query(req, "excludedAttributes").is_some() {
                    true => render(s, 200, Written::Changed).await?,
                    false => bodiless(204, s.version),
                }
            }
            Route::UsersDelete | Route::GroupsDelete => {
                svc.delete(ctx, kind, id, if_match).await?;
                Response::empty(204)
            }
            Route::UsersList | Route::GroupsList => {
                Response::json(200, &svc.list_response(ctx, kind, &ListQuery::from_params(&req.query)?).await?)
            }
            Route::UsersSearch | Route::GroupsSearch => {
                Response::json(200, &svc.list_response(ctx, kind, &ListQuery::from_search(doc)?).await?)
            }
            other => return Err(ScimError::Internal(format!("{other:?} is not a resource route"))),
        })
    }

    /// The tenant's own configuration: settings, role mappings, schema declarations, setup links.
    async fn configuration_route(&self, tenant: &str, doc: &Value, base_url: &str, route: Route, id: &str) -> Result<Response> {
        let layout = &self.service.layout;
        Ok(match route {
            Route::SettingsGet => Response::json(200, &settings::view(layout, tenant, base_url).await?),
            Route::SettingsPatch => Response::json(200, &settings::patch(layout, tenant, base_url, doc).await?),
            Route::RoleMappingsGet => Response::json(200, &settings::role_mappings(layout, tenant).await?),
            Route::RoleMappingsReplace => Response::json(200, &settings::replace_role_mappings(layout, tenant, doc).await?),
            Route::RoleMappingsDelete => {
                settings::delete_role_mappings(layout, tenant).await?;
                Response::empty(204)
            }
            Route::SchemaDeclarationsList => Response::json(200, &declarations::list(layout, tenant).await?),
            Route::SchemaDeclarationGet => Response::json(200, &declarations::get(layout, tenant, id).await?),
            Route::SchemaDeclarationPut => {
                let (decl, is_new) = declarations::put(layout, tenant, id, doc).await?;
                Response::json(if is_new { 201 } else { 200 }, &decl)
            }
            Route::SchemaDeclarationDelete => {
                declarations::delete(layout, tenant, id).await?;
                Response::empty(204)
            }
            Route::PortalLinkCreate => {
                Response::json(201, &settings::create_portal_link(layout, tenant, base_url, (!doc.is_null()).then_some(doc)).await?)
            }
            Route::PortalLinksRevoke => {
                settings::revoke_portal_links(layout, tenant).await?;
                Response::empty(204)
            }
            other => return Err(ScimError::Internal(format!("{other:?} is not a configuration route"))),
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
            let rt = ctx.types.of(kind);
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

fn query<'a>(req: &'a Request<'_>, name: &str) -> Option<&'a str> {
    crate::names::pair(&req.query, name)
}

/// The request body as the route reads it (`Null` when it reads none, or an optional one is
/// absent): size, media type and syntax checked, each with its own error. A body naming one
/// member twice is refused ([`crate::json`]).
fn body(req: &Request<'_>, reads: BodyUse) -> Result<Value> {
    if reads == BodyUse::Ignored {
        return Ok(Value::Null);
    }
    let blank = req.body.iter().all(u8::is_ascii_whitespace);
    if reads == BodyUse::OptionalJson && blank {
        return Ok(Value::Null);
    }
    if req.body.len() > MAX_PAYLOAD {
        return Err(ScimError::PayloadTooLarge(format!("request body over {MAX_PAYLOAD} bytes")));
    }
    if let Some(ct) = req.header(http::header::CONTENT_TYPE)
        && !is_json_media_type(ct)
    {
        let media = ct.split(';').next().unwrap_or_default().trim();
        return Err(ScimError::UnsupportedMediaType(format!(
            "send Content-Type: application/scim+json (or application/json), not {media}"
        )));
    }
    if blank {
        return Err(ScimError::invalid_syntax("the request body is empty"));
    }
    crate::json::parse(req.body)
}

/// Whether a Content-Type names a JSON body SCIM accepts: `application/scim+json` (RFC 7644
/// §3.1) or `application/json`, in any case, with any parameters (`; charset=utf-8`).
pub fn is_json_media_type(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case(SCIM_JSON) || media.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_exactly_with_404_and_405() {
        let route = |m: &str, p: &str| match_route(m, p).map(|m| m.spec.route);
        assert_eq!(route("GET", "/Users").unwrap(), Route::UsersList);
        assert_eq!(route("POST", "/Users/.search").unwrap(), Route::UsersSearch);
        let m = match_route("PATCH", "/Users/abc%2Fd").unwrap();
        assert_eq!((m.spec.route, m.id.as_deref()), (Route::UsersPatch, Some("abc/d")));
        assert_eq!(route("GET", "/Nope").unwrap_err().status(), 404);
        assert_eq!(route("GET", "/Users/a/b").unwrap_err().status(), 404);
        assert_eq!(route("GET", "/Settings/Schemas/a/b").unwrap_err().status(), 404);
        assert_eq!(route("GET", "//Users//a//").unwrap(), Route::UsersGet);
        assert_eq!(route("DELETE", "/Users").unwrap_err().status(), 405);
        assert_eq!(route("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").unwrap(), Route::Schema);
        // methods are case-sensitive tokens: a lower-case method matches no route (API Gateway
        // does the same), whatever route its upper-case form names; paths ignore case
        for r in ROUTES {
            let path = r.path.replace("{id}", "x");
            assert_eq!(route(&r.method.to_ascii_lowercase(), &path).unwrap_err().status(), 405, "{} {}", r.method, r.path);
            assert_eq!(route(r.method, &path.to_ascii_lowercase()).unwrap(), r.route, "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn every_route_variant_is_in_the_table_once() {
        for r in Route::ALL {
            assert_eq!(ROUTES.iter().filter(|x| x.route == *r).count(), 1, "{r:?}");
        }
        assert_eq!(ROUTES.len(), Route::ALL.len());
    }

    #[test]
    fn the_routes_that_read_a_body_are_the_ones_whose_method_carries_one() {
        for r in ROUTES {
            let carries = matches!(r.method, "POST" | "PUT" | "PATCH");
            assert_eq!(r.body != BodyUse::Ignored, carries, "{} {}", r.method, r.path);
        }
        let optional: Vec<Route> = ROUTES.iter().filter(|r| r.body == BodyUse::OptionalJson).map(|r| r.route).collect();
        assert_eq!(optional, [Route::PortalLinkCreate], "only a setup link may be asked for without a body");
    }

    #[test]
    fn mutating_is_what_the_method_and_path_say() {
        // the audit relies on this flag: every route that can write says so
        for r in ROUTES {
            let writes = r.method != "GET" && !r.path.ends_with(".search");
            assert_eq!(r.mutating, writes, "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn only_json_media_types_are_bodies() {
        for ok in ["application/scim+json", "application/json", "Application/SCIM+JSON; charset=utf-8", " application/json ;x=y"] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for no in
            ["text/plain", "*/*", "application/x-amz-json-1.0", "application/jsonx", "text/json", "", "application/x-www-form-urlencoded"]
        {
            assert!(!is_json_media_type(no), "{no}");
        }
    }

    #[test]
    fn query_strings_decode() {
        let q = parse_query("filter=userName+eq+%22a%40b.c%22&count=10");
        assert_eq!(q[0].1, "userName eq \"a@b.c\"");
        assert_eq!(q[1], ("count".into(), "10".into()));
        assert_eq!(parse_query("a&&b=%zz&c=%4"), [("a".into(), "".into()), ("b".into(), "%zz".into()), ("c".into(), "%4".into())]);
        assert_eq!(percent_decode("Jos%C3%A9"), "José");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}", "not UTF-8: matches no id");
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("2819c223-7f76-453a-919d"), "2819c223-7f76-453a-919d");
    }
}
