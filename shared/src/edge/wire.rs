//! Requests and responses as the edge reads and writes them, on `http` types (what
//! `lambda_http` speaks and hyper serves), and the base URL both entry points build.

use crate::error::ScimError;
use serde_json::Value;

/// The base URL of the SCIM API at `origin` (`https://host`), under `root` (a stage or base
/// path such as `/v1`, or empty): `https://host/v1/scim/v2`. Every entry point builds it here.
pub fn base_url(origin: &str, root: &str) -> String {
    [origin.trim_end_matches('/'), root.trim_end_matches('/'), crate::BASE_PATH].concat()
}

/// The part of a request path under the base path, whatever root precedes it (a stage, a
/// custom domain's base path): `/v1/scim/v2/Users` → `/Users`, `/scim/v2` → ``. `None` for a
/// path that is not under it (`/scim/v2Users` is not). Every entry point cuts it here.
pub fn path_under_base(path: &str) -> Option<&str> {
    let base = crate::BASE_PATH;
    let under = |rest: &&str| rest.is_empty() || rest.starts_with('/');
    // the common case (no root before the base path) without a substring search
    if let Some(rest) = path.strip_prefix(base).filter(under) {
        return Some(rest);
    }
    path.match_indices(base).map(|(i, _)| &path[i + base.len()..]).find(under)
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
    /// The query string's name/value pairs, form-decoded, in the order sent.
    pub query: Vec<(String, String)>,
    /// The request body's raw bytes (empty when none was sent).
    pub body: &'a [u8],
}

/// What the entry points hand the edge: an HTTP request (for [`App::handle`](super::App::handle), with a URI
/// relative to the base URL; [`App::handle_under`](super::App::handle_under) is told the path under it instead).
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
    pub(super) fn of(http: &'a HttpRequest, path: &'a str) -> Request<'a> {
        Request {
            http,
            method: http.method().as_str(),
            path,
            query: http.uri().query().map(super::parse_query).unwrap_or_default(),
            body: http.body(),
        }
    }

    /// A header value by name (a constant of `http::header`, or any string, case-insensitive); a
    /// value that is not visible ASCII reads as absent.
    pub fn header(&self, name: impl http::header::AsHeaderName) -> Option<&'a str> {
        self.http.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// When the entry point must have answered, if it said (a Lambda invocation's deadline).
    pub fn deadline(&self) -> Option<super::bulk::Deadline> {
        self.http.extensions().get::<super::bulk::Deadline>().copied()
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The response headers: `Content-Type`, and `ETag`, `Location` or `Retry-After` when set.
    pub headers: http::HeaderMap,
    /// The body as sent (a SCIM resource, ListResponse or Error, or a portal page); empty if none.
    pub body: Vec<u8>,
    /// The resource a create made (or, under `relink`, took over): for the audit entry, never
    /// sent as such.
    pub created: Option<String>,
}

/// The media type of every body we send.
pub const SCIM_JSON: &str = "application/scim+json";

impl Response {
    /// A SCIM JSON response of a serializable body.
    pub fn json(status: u16, v: &impl serde::Serialize) -> Response {
        Response::json_body(status, crate::json_text(v).into_bytes())
    }
    /// A SCIM JSON response of a body already written.
    pub fn json_body(status: u16, body: Vec<u8>) -> Response {
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
    /// The SCIM Error response for an error; a 401 names the scheme to retry with (RFC 6750
    /// §3: bearer tokens, as a REST API's gateway response does).
    pub fn error(e: &ScimError) -> Response {
        if let ScimError::Internal(cause) = e {
            tracing::error!(%cause, "internal error");
        }
        let mut r = Response::json(e.status(), &e.to_json());
        if let Some(s) = e.retry_after() {
            r.set_header(http::header::RETRY_AFTER, s.to_string());
        }
        if e.status() == 401 {
            r.headers.insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer realm=\"scim\""));
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

/// Whether a Content-Type names a JSON body SCIM accepts: `application/scim+json` (RFC 7644
/// §3.1) or `application/json`, in any case, with any parameters (`; charset=utf-8`).
pub fn is_json_media_type(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case(SCIM_JSON) || media.eq_ignore_ascii_case("application/json")
}
