//! The route table: the one place routes are defined. Each row says what a route is (method,
//! path under the base URL), where it runs (its Lambda function), what it may do (permission,
//! whether it writes, the body it reads) and what it does (its [`Op`]): dispatch is a match on
//! the operation, so a route is one row, and an app can be given other rows (`App::with_routes`).
//! The functions, the local server and the SAM template are checked against [`ROUTES`].

use crate::error::{Result, ScimError};
use crate::kind::Kind;
use crate::roles::Permission;
use crate::service::SettingsOp;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST` a resource (RFC 7644 §3.3).
    Create(Kind),
    /// `GET` a collection with a query (§3.4.2).
    List(Kind),
    /// `POST /.search` on a collection (§3.4.3).
    Search(Kind),
    /// `GET` one resource (§3.4.1).
    Get(Kind),
    /// `PUT` (§3.5.1).
    Replace(Kind),
    /// `PATCH` (§3.5.2).
    Patch(Kind),
    /// `DELETE` (§3.6).
    Delete(Kind),
    /// `POST /.search` across every resource type.
    RootSearch,
    /// `/ServiceProviderConfig` (§4).
    ServiceProviderConfig,
    /// `/ResourceTypes`.
    ResourceTypes,
    /// `/ResourceTypes/{name}`.
    ResourceType,
    /// `/Schemas`.
    Schemas,
    /// `/Schemas/{urn}`.
    Schema,
    /// `POST /Bulk` (§3.7): each operation run as its own request.
    Bulk,
    /// The tenant's own configuration.
    Settings(SettingsOp),
}

/// One row of the route table: everything dispatch, permission, rate limit and audit need.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// The HTTP method, exactly (methods are case-sensitive tokens, RFC 9110 §9.1).
    pub method: &'static str,
    /// Path under the base URL (`/scim/v2`), `{id}` for the resource id.
    pub path: &'static str,
    /// The Lambda binary serving it (also its SAM function, in PascalCase + `Function`).
    pub function: &'static str,
    /// The permission the key's role must hold to call it (403 otherwise).
    pub permission: Permission,
    /// Whether the route can change stored data (every attempt on it is audited).
    pub mutating: bool,
    /// The body it reads, decoded once before dispatch.
    pub body: BodyUse,
    /// What it does.
    pub op: Op,
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

/// A row that reads.
pub const fn read(op: Op, method: &'static str, path: &'static str, function: &'static str, permission: Permission) -> RouteSpec {
    RouteSpec { op, method, path, function, permission, mutating: false, body: body_of(method) }
}

/// A row that can write (every attempt audited).
pub const fn write(op: Op, method: &'static str, path: &'static str, function: &'static str, permission: Permission) -> RouteSpec {
    RouteSpec { op, method, path, function, permission, mutating: true, body: body_of(method) }
}

impl RouteSpec {
    /// The same row, its body optional.
    pub const fn body_optional(self) -> RouteSpec {
        RouteSpec { body: BodyUse::OptionalJson, ..self }
    }
}

/// The route table.
pub const ROUTES: &[RouteSpec] = &[
    write(Op::Create(User), "POST", "/Users", "users-create", ScimWrite),
    read(Op::List(User), "GET", "/Users", "users-list", ScimRead),
    read(Op::Search(User), "POST", "/Users/.search", "users-search", ScimRead),
    read(Op::Get(User), "GET", "/Users/{id}", "users-get", ScimRead),
    write(Op::Replace(User), "PUT", "/Users/{id}", "users-replace", ScimWrite),
    write(Op::Patch(User), "PATCH", "/Users/{id}", "users-patch", ScimWrite),
    write(Op::Delete(User), "DELETE", "/Users/{id}", "users-delete", ScimWrite),
    write(Op::Create(Group), "POST", "/Groups", "groups-create", ScimWrite),
    read(Op::List(Group), "GET", "/Groups", "groups-list", ScimRead),
    read(Op::Search(Group), "POST", "/Groups/.search", "groups-search", ScimRead),
    read(Op::Get(Group), "GET", "/Groups/{id}", "groups-get", ScimRead),
    write(Op::Replace(Group), "PUT", "/Groups/{id}", "groups-replace", ScimWrite),
    write(Op::Patch(Group), "PATCH", "/Groups/{id}", "groups-patch", ScimWrite),
    write(Op::Delete(Group), "DELETE", "/Groups/{id}", "groups-delete", ScimWrite),
    // the tenant's declared resource types, at the endpoints it declared (`{type}` is never a
    // segment of the rows above: see `RESERVED_ENDPOINTS`)
    write(Op::Create(DECLARED), "POST", "/{type}", "resources", ScimWrite),
    read(Op::List(DECLARED), "GET", "/{type}", "resources", ScimRead),
    read(Op::Search(DECLARED), "POST", "/{type}/.search", "resources", ScimRead),
    read(Op::Get(DECLARED), "GET", "/{type}/{id}", "resources", ScimRead),
    write(Op::Replace(DECLARED), "PUT", "/{type}/{id}", "resources", ScimWrite),
    write(Op::Patch(DECLARED), "PATCH", "/{type}/{id}", "resources", ScimWrite),
    write(Op::Delete(DECLARED), "DELETE", "/{type}/{id}", "resources", ScimWrite),
    read(Op::RootSearch, "POST", "/.search", "search", ScimRead),
    write(Op::Bulk, "POST", "/Bulk", "bulk", ScimWrite),
    read(Op::ServiceProviderConfig, "GET", "/ServiceProviderConfig", "discovery", ScimRead),
    read(Op::ResourceTypes, "GET", "/ResourceTypes", "discovery", ScimRead),
    read(Op::ResourceType, "GET", "/ResourceTypes/{id}", "discovery", ScimRead),
    read(Op::Schemas, "GET", "/Schemas", "discovery", ScimRead),
    read(Op::Schema, "GET", "/Schemas/{id}", "discovery", ScimRead),
    read(Op::Settings(SettingsOp::View), "GET", "/Settings", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::Change), "PATCH", "/Settings", "settings", ConfigureScim),
    read(Op::Settings(SettingsOp::RoleMappings), "GET", "/Settings/RoleMappings", "settings", ManageMappings),
    write(Op::Settings(SettingsOp::ReplaceRoleMappings), "PUT", "/Settings/RoleMappings", "settings", ManageMappings),
    write(Op::Settings(SettingsOp::DeleteRoleMappings), "DELETE", "/Settings/RoleMappings", "settings", ManageMappings),
    read(Op::Settings(SettingsOp::SchemaDeclarations), "GET", "/Settings/Schemas", "settings", ConfigureScim),
    read(Op::Settings(SettingsOp::SchemaDeclaration), "GET", "/Settings/Schemas/{id}", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::PutSchemaDeclaration), "PUT", "/Settings/Schemas/{id}", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::DeleteSchemaDeclaration), "DELETE", "/Settings/Schemas/{id}", "settings", ConfigureScim),
    read(Op::Settings(SettingsOp::ResourceTypeDeclarations), "GET", "/Settings/ResourceTypes", "settings", ConfigureScim),
    read(Op::Settings(SettingsOp::ResourceTypeDeclaration), "GET", "/Settings/ResourceTypes/{id}", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::PutResourceTypeDeclaration), "PUT", "/Settings/ResourceTypes/{id}", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::DeleteResourceTypeDeclaration), "DELETE", "/Settings/ResourceTypes/{id}", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::CreatePortalLink), "POST", "/Settings/PortalLinks", "settings", ConfigureScim).body_optional(),
    write(Op::Settings(SettingsOp::RevokePortalLinks), "DELETE", "/Settings/PortalLinks", "settings", ConfigureScim),
    read(Op::Settings(SettingsOp::OAuthClients), "GET", "/Settings/OAuthClients", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::CreateOAuthClient), "POST", "/Settings/OAuthClients", "settings", ConfigureScim).body_optional(),
    read(Op::Settings(SettingsOp::OAuthClient), "GET", "/Settings/OAuthClients/{id}", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::ChangeOAuthClient), "PATCH", "/Settings/OAuthClients/{id}", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::RevokeOAuthClient), "DELETE", "/Settings/OAuthClients/{id}", "settings", ConfigureScim),
    read(Op::Settings(SettingsOp::OAuthFederations), "GET", "/Settings/OAuthFederation", "settings", ConfigureScim),
    write(Op::Settings(SettingsOp::CreateOAuthFederation), "POST", "/Settings/OAuthFederation", "settings", ConfigureScim),
];

const DECLARED: Kind = Kind::DECLARED;
use Kind::{Group, User};
use Permission::{ConfigureScim, ManageMappings, ScimRead, ScimWrite};

/// The functions the table names, each once, in table order.
pub fn functions() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in ROUTES {
        if !out.contains(&r.function) {
            out.push(r.function);
        }
    }
    out
}

/// A request matched to its route: the table row and the decoded resource id.
#[derive(Debug, Clone)]
pub struct Matched {
    /// The route table row the method and path matched.
    pub spec: &'static RouteSpec,
    /// The resource id from the path's `{id}` segment, percent-decoded; `None` if it has none.
    pub id: Option<String>,
    /// The collection from the path's `{type}` segment (a declared type's endpoint, resolved
    /// against the tenant's types before anything runs); `None` if it has none.
    pub collection: Option<String>,
}

/// Whether a path segment can name a declared type's collection: not a `.search`-like segment,
/// not one the server serves itself.
fn declarable(segment: &str) -> bool {
    !segment.starts_with('.') && !crate::resource_types::RESERVED_ENDPOINTS.iter().any(|r| r.eq_ignore_ascii_case(segment))
}

/// Matches a method and a path under the base URL against `routes`. The method exactly
/// (methods are case-sensitive tokens, as API Gateway treats them: `post` is not `POST`); path
/// segments ignoring ASCII case (Microsoft's tooling sends `/users`). 404 for unknown paths,
/// 405 for a known path with any other method.
pub fn match_route(routes: &'static [RouteSpec], method: &str, path: &str) -> Result<Matched> {
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
    for spec in routes {
        let (mut id, mut collection) = (None, None);
        let mut segs = given.iter().copied();
        let mut pat = spec.path.split('/').filter(|s| !s.is_empty());
        let fits = loop {
            match (pat.next(), segs.next()) {
                (None, None) => break true,
                // ".search" is a route of its own, never an id
                (Some("{id}"), Some(s)) if !s.starts_with('.') => id = Some(s),
                (Some("{type}"), Some(s)) if declarable(s) => collection = Some(s),
                (Some(p), Some(s)) if p.eq_ignore_ascii_case(s) => {}
                _ => break false,
            }
        };
        if !fits {
            continue;
        }
        path_known |= collection.is_none();
        if spec.method == method {
            return Ok(Matched { spec, id: id.map(percent_decode), collection: collection.map(str::to_string) });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn op(m: &str, p: &str) -> Result<Op> {
        match_route(ROUTES, m, p).map(|m| m.spec.op)
    }

    #[test]
    fn routes_match_exactly_with_404_and_405() {
        assert_eq!(op("GET", "/Users").unwrap(), Op::List(User));
        assert_eq!(op("POST", "/Users/.search").unwrap(), Op::Search(User));
        let m = match_route(ROUTES, "PATCH", "/Users/abc%2Fd").unwrap();
        assert_eq!((m.spec.op, m.id.as_deref()), (Op::Patch(User), Some("abc/d")));
        assert_eq!(op("GET", "/Nope/a/b").unwrap_err().status(), 404);
        // a path only a declared collection could be: 404 for other methods (whether the tenant
        // declares it is known only once its types are read)
        assert_eq!(op("DELETE", "/Nope").unwrap_err().status(), 404);
        assert_eq!(op("GET", "/Users/a/b").unwrap_err().status(), 404);
        assert_eq!(op("GET", "/Settings/Schemas/a/b").unwrap_err().status(), 404);
        assert_eq!(op("GET", "//Users//a//").unwrap(), Op::Get(User));
        assert_eq!(op("DELETE", "/Users").unwrap_err().status(), 405);
        assert_eq!(op("GET", "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").unwrap(), Op::Schema);
        // methods are case-sensitive tokens: a lower-case method matches no route (API Gateway
        // does the same), whatever route its upper-case form names; paths ignore case
        for r in ROUTES {
            let path = r.path.replace("{id}", "x").replace("{type}", "Widgets");
            let wrong_method = if r.path.starts_with("/{type}") { 404 } else { 405 };
            assert_eq!(op(&r.method.to_ascii_lowercase(), &path).unwrap_err().status(), wrong_method, "{} {}", r.method, r.path);
            assert_eq!(op(r.method, &path.to_ascii_lowercase()).unwrap(), r.op, "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn a_declared_collection_is_any_segment_the_server_does_not_serve_itself() {
        let m = match_route(ROUTES, "GET", "/Agents/a1").unwrap();
        assert_eq!((m.spec.op, m.id.as_deref(), m.collection.as_deref()), (Op::Get(DECLARED), Some("a1"), Some("Agents")));
        assert_eq!(op("POST", "/Agents/.search").unwrap(), Op::Search(DECLARED));
        // the server's own paths keep their 404 and 405: never a declared collection
        assert_eq!(op("GET", "/Bulk").unwrap_err().status(), 405);
        assert_eq!(op("PUT", "/users").unwrap_err().status(), 405);
        assert_eq!(op("GET", "/Me").unwrap_err().status(), 404);
        assert_eq!(op("GET", "/Agents/a/b").unwrap_err().status(), 404);
        // every literal first segment of the table is reserved, so no declaration can take it
        for r in ROUTES {
            let first = r.path.split('/').find(|s| !s.is_empty()).unwrap_or_default();
            if !first.starts_with('{') && !first.starts_with('.') {
                assert!(!declarable(first), "{first} must be in RESERVED_ENDPOINTS");
            }
        }
    }

    #[test]
    fn every_operation_and_every_method_and_path_is_in_the_table_once() {
        for r in ROUTES {
            assert_eq!(ROUTES.iter().filter(|x| x.op == r.op).count(), 1, "{:?}", r.op);
            assert_eq!(ROUTES.iter().filter(|x| (x.method, x.path) == (r.method, r.path)).count(), 1, "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn the_routes_that_read_a_body_are_the_ones_whose_method_carries_one() {
        for r in ROUTES {
            let carries = matches!(r.method, "POST" | "PUT" | "PATCH");
            assert_eq!(r.body != BodyUse::Ignored, carries, "{} {}", r.method, r.path);
        }
        let optional: Vec<Op> = ROUTES.iter().filter(|r| r.body == BodyUse::OptionalJson).map(|r| r.op).collect();
        // a setup link and an OAuth client have defaults for everything
        let expected = [Op::Settings(SettingsOp::CreatePortalLink), Op::Settings(SettingsOp::CreateOAuthClient)];
        assert_eq!(optional, expected, "only a setup link and an OAuth client may be asked for without a body");
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
