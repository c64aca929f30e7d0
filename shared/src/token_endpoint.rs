//! The OAuth 2.0 token endpoint and its discovery documents, outside the SCIM base path and
//! behind no authorizer: `POST /oauth2/token` (client credentials, RFC 6749 §4.4; the client
//! authenticated by `client_secret_basic` or `client_secret_post`, §2.3.1), the authorization
//! server metadata (RFC 8414) at `/.well-known/oauth-authorization-server` and the signing keys
//! at `/.well-known/jwks.json`. Errors are RFC 6749 §5.2 JSON, never a SCIM Error: IdPs read
//! them as OAuth. Every issuance and every refusal of a real client is recorded in its tenant's
//! activity log (the client id, never the secret or the token).

use crate::edge::{HttpRequest, Response};
use crate::oauth::{self, Credentials, TokenError};
use crate::service::Service;
use http::{HeaderValue, header};
use serde_json::json;

pub use crate::oauth::TOKEN_PATH;
/// The metadata document's path (RFC 8414 §3).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// The signing keys' path.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The largest token request body read (a form of a few short fields).
pub const MAX_FORM_BYTES: usize = 8192;

/// The routes of the token function (method, path from the API root), for the template check.
pub const ROUTES: &[(&str, &str)] = &[("POST", TOKEN_PATH), ("GET", METADATA_PATH), ("GET", JWKS_PATH)];

/// Whether a path from the API root is one this module serves.
pub fn serves(path: &str) -> bool {
    ROUTES.iter().any(|(_, p)| *p == path)
}

/// What the endpoint answered, and whether the answer throttled a client for the first time
/// this minute (the Lambda counts that as a `ThrottledClients` data point: a brute-force
/// signal, alarmed on; ordinary refusals are not).
#[derive(Debug)]
pub struct Answer {
    /// The response to send.
    pub response: Response,
    /// A client was throttled, for the first time this minute.
    pub throttled: bool,
}

/// Serves a request whose path (from the API root, whatever stage precedes it) is one of
/// [`serves`]'s; `root` is the API root URL (`https://host/stage`), the SCIM base URL below it.
pub async fn handle(service: &Service, req: &HttpRequest, path: &str, root: &str) -> Answer {
    let root = root.trim_end_matches('/');
    let response = match (path, req.method().as_str()) {
        (TOKEN_PATH, "POST") => return token(service, req, root).await,
        (METADATA_PATH, "GET") => public_json(&metadata(root)),
        (JWKS_PATH, "GET") => jwks(service).await,
        (TOKEN_PATH, _) => error(&TokenError { status: 405, ..TokenError::bad("invalid_request", "the token endpoint takes POST") }),
        _ => error(&TokenError { status: 405, ..TokenError::bad("invalid_request", "this document is read with GET") }),
    };
    Answer { response, throttled: false }
}

/// The RFC 8414 metadata of this authorization server.
pub fn metadata(root: &str) -> serde_json::Value {
    let (token_endpoint, jwks_uri) = ([root, TOKEN_PATH].concat(), [root, JWKS_PATH].concat());
    json!({
        "issuer": root,
        "token_endpoint": token_endpoint,
        "jwks_uri": jwks_uri,
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": [oauth::SCOPE],
        "response_types_supported": [],
    })
}

fn public_json(v: &serde_json::Value) -> Response {
    let mut r = Response::with_type(200, "application/json", crate::json_text(v).into_bytes());
    r.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    r
}

async fn jwks(service: &Service) -> Response {
    match service.signing_keys().public_keys().await {
        Ok(keys) => public_json(&json!({"keys": keys})),
        Err(e) => error(&TokenError { status: 500, ..TokenError::bad("server_error", e.client_detail()) }),
    }
}

/// An RFC 6749 §5.2 error response (`WWW-Authenticate` on 401, `Retry-After` on 429).
pub fn error(e: &TokenError) -> Response {
    let mut r = Response::with_type(
        e.status,
        "application/json",
        crate::json_text(&json!({"error": e.error, "error_description": e.description})).into_bytes(),
    );
    no_store(&mut r);
    if e.status == 401 {
        r.headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"oauth2\", charset=\"UTF-8\""));
    }
    if let Some(s) = e.retry_after {
        r.set_header(header::RETRY_AFTER, s.to_string());
    }
    r
}

fn no_store(r: &mut Response) {
    r.headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

async fn token(service: &Service, req: &HttpRequest, root: &str) -> Answer {
    let refused = |e: TokenError| Answer { response: error(&e), throttled: false };
    let form = match read_form(req) {
        Ok(f) => f,
        Err(e) => return refused(e),
    };
    let creds = match credentials(req, &form) {
        Ok(c) => c,
        Err(e) => return refused(e),
    };
    if let Err(e) = check_grant(&form) {
        return refused(e);
    }
    let c = match &creds {
        Presented::Secret(id, secret) => Credentials::Secret { client_id: id, secret },
        Presented::Assertion(id, assertion) => Credentials::Assertion { client_id: id, assertion },
    };
    let audience = [root, crate::BASE_PATH].concat();
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok());
    let issuer = oauth::Issuer { layout: service.layout(), keys: service.signing_keys(), federator: service.federator() };
    match issuer.issue(&c, root, &audience).await {
        Ok(issued) => {
            let how = if matches!(c, Credentials::Assertion { .. }) {
                "access token issued for a client assertion"
            } else {
                "access token issued"
            };
            audit(service, &issued.tenant, c.client_id(), 200, how, user_agent, false).await;
            let body = json!({"access_token": issued.access_token, "token_type": "Bearer", "expires_in": issued.expires_in, "scope": oauth::SCOPE});
            let mut r = Response::with_type(200, "application/json", crate::json_text(&body).into_bytes());
            no_store(&mut r);
            Answer { response: r, throttled: false }
        }
        Err((e, tenant)) => {
            let throttled = e.throttle_started;
            if let Some(t) = tenant {
                // a sender that proved nothing (a wrong secret, a forged assertion) is not
                // attributed: no User-Agent of its choosing
                let unauthenticated = !e.proven;
                audit(service, &t, c.client_id(), e.status, &e.description, user_agent.filter(|_| e.proven), unauthenticated).await;
            }
            Answer { response: error(&e), throttled }
        }
    }
}

/// A client's credentials as the request carried them.
enum Presented {
    /// Client id and secret.
    Secret(String, String),
    /// Client id and a JWT client assertion.
    Assertion(String, String),
}

/// The client id only: a secret or an assertion is never formatted.
impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Presented::Secret(id, _) => write!(f, "Secret({id}, …)"),
            Presented::Assertion(id, _) => write!(f, "Assertion({id}, …)"),
        }
    }
}

async fn audit(
    service: &Service,
    tenant: &str,
    client_id: &str,
    status: u16,
    detail: &str,
    user_agent: Option<&str>,
    unauthenticated: bool,
) {
    let detail = format!("token request: {detail}");
    let entry = crate::activity::Entry {
        key_id: client_id,
        route: Some("oauth-token"),
        method: "POST",
        path: TOKEN_PATH,
        status,
        detail: Some(&detail),
        user_agent,
        unauthenticated,
        ..Default::default()
    };
    // the client's tenant is known: the entry is written acting for it
    service.acting_for(tenant, service.record(tenant, entry)).await;
}

/// The form's parameters; each at most once (RFC 6749 §3.2), the body a bounded
/// `application/x-www-form-urlencoded` form.
fn read_form(req: &HttpRequest) -> Result<Vec<(String, String)>, TokenError> {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(TokenError::bad("invalid_request", "the body must be application/x-www-form-urlencoded"));
    }
    if req.body().len() > MAX_FORM_BYTES {
        return Err(TokenError::bad("invalid_request", format!("the body is larger than {MAX_FORM_BYTES} bytes")));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(req.body()).into_owned().collect();
    for (i, (name, _)) in form.iter().enumerate() {
        if form[..i].iter().any(|(n, _)| n == name) {
            return Err(TokenError::bad("invalid_request", format!("the parameter '{name:.40}' is sent more than once")));
        }
    }
    Ok(form)
}

fn param<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The client's credentials: an id and secret from HTTP Basic (each form-urlencoded, RFC
/// 6749 §2.3.1) or from the body, never both; or a JWT client assertion (RFC 7523 §2.2) with
/// the client's id, and no secret beside it.
fn credentials(req: &HttpRequest, form: &[(String, String)]) -> Result<Presented, TokenError> {
    let basic = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|h| h.split_once(' '));
    if param(form, "client_assertion").is_some() || param(form, "client_assertion_type").is_some() {
        return assertion(form, basic.is_some());
    }
    let in_body = (param(form, "client_id"), param(form, "client_secret"));
    match (basic, in_body) {
        (Some((scheme, value)), (_, None)) if scheme.eq_ignore_ascii_case("basic") => {
            let bad = || TokenError { status: 401, ..TokenError::bad("invalid_client", "malformed Basic credentials") };
            let decoded = base64_standard(value.trim()).ok_or_else(bad)?;
            let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
            let dec =
                |s: &str| form_urlencoded::parse(["x=", s].concat().as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default();
            if in_body.0.is_some_and(|b| b != dec(id)) {
                return Err(TokenError::bad("invalid_request", "client_id in the body differs from the Basic credentials"));
            }
            Ok(Presented::Secret(dec(id), dec(secret)))
        }
        (Some((scheme, _)), (_, Some(_))) if scheme.eq_ignore_ascii_case("basic") => {
            Err(TokenError::bad("invalid_request", "the client authenticated twice (Basic and client_secret)"))
        }
        (_, (Some(id), Some(secret))) => Ok(Presented::Secret(id.to_string(), secret.to_string())),
        _ => Err(TokenError { status: 401, ..TokenError::bad("invalid_client", "client authentication is required") }),
    }
}

fn assertion(form: &[(String, String)], basic: bool) -> Result<Presented, TokenError> {
    let invalid = |d: &str| TokenError::bad("invalid_request", d);
    if basic || param(form, "client_secret").is_some() {
        return Err(invalid("the client authenticated twice (a client assertion and a secret)"));
    }
    if param(form, "client_assertion_type") != Some(crate::federation::JWT_BEARER) {
        return Err(invalid("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
    }
    let assertion = param(form, "client_assertion").filter(|a| !a.is_empty()).ok_or_else(|| invalid("client_assertion is required"))?;
    let id = param(form, "client_id").ok_or_else(|| invalid("client_id is required with a client assertion"))?;
    Ok(Presented::Assertion(id.to_string(), assertion.to_string()))
}

fn base64_standard(s: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    String::from_utf8(bytes).ok()
}

/// `grant_type` must be `client_credentials`; a `scope`, when sent, must be well formed
/// (RFC 6749 §3.3): the token's scope is [`oauth::SCOPE`] whatever is asked (§3.3 lets the
/// server grant another scope, and says so in the response).
fn check_grant(form: &[(String, String)]) -> Result<(), TokenError> {
    match param(form, "grant_type") {
        None => return Err(TokenError::bad("invalid_request", "grant_type is required")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(TokenError::bad(
                "unsupported_grant_type",
                format!("grant_type '{other:.40}' is not supported; use client_credentials"),
            ));
        }
    }
    let scope_char = |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
    if let Some(scope) = param(form, "scope")
        && (scope.split(' ').any(str::is_empty) || !scope.bytes().all(|b| b == b' ' || scope_char(b)))
    {
        return Err(TokenError::bad("invalid_scope", "the scope is not a space-separated list of scope tokens"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], body: &str) -> HttpRequest {
        let mut r = http::Request::new(bytes::Bytes::from(body.to_string()));
        *r.method_mut() = http::Method::POST;
        for (k, v) in headers {
            r.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        r
    }
    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

    #[test]
    fn credentials_come_from_basic_or_the_body_never_both() {
        use base64::Engine;
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("abc:s%3Acret"));
        let r = req(&[FORM, ("authorization", &basic)], "grant_type=client_credentials");
        assert!(matches!(credentials(&r, &read_form(&r).unwrap()).unwrap(), Presented::Secret(i, s) if i == "abc" && s == "s:cret"));
        let r = req(&[FORM], "grant_type=client_credentials&client_id=abc&client_secret=x%2By");
        assert!(matches!(credentials(&r, &read_form(&r).unwrap()).unwrap(), Presented::Secret(i, s) if i == "abc" && s == "x+y"));
        let r = req(&[FORM, ("authorization", &basic)], "client_id=abc&client_secret=x");
        assert_eq!(credentials(&r, &read_form(&r).unwrap()).unwrap_err().error, "invalid_request");
        let r = req(&[FORM], "grant_type=client_credentials");
        assert_eq!(credentials(&r, &read_form(&r).unwrap()).unwrap_err().status, 401);
        let r = req(&[FORM, ("authorization", "Basic !!!")], "");
        assert_eq!(credentials(&r, &read_form(&r).unwrap()).unwrap_err().error, "invalid_client");
        let jwt = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
        let r = req(&[FORM], &format!("client_id=c&client_assertion_type={jwt}&client_assertion=a.b.c"));
        assert!(matches!(credentials(&r, &read_form(&r).unwrap()).unwrap(), Presented::Assertion(i, a) if i == "c" && a == "a.b.c"));
        for bad in [
            format!("client_assertion_type={jwt}&client_assertion=a.b.c"),
            "client_id=c&client_assertion_type=x&client_assertion=a".into(),
            format!("client_id=c&client_assertion_type={jwt}"),
            format!("client_id=c&client_secret=s&client_assertion_type={jwt}&client_assertion=a"),
        ] {
            let r = req(&[FORM], &bad);
            assert_eq!(credentials(&r, &read_form(&r).unwrap()).unwrap_err().error, "invalid_request", "{bad}");
        }
    }

    #[test]
    fn forms_are_bounded_typed_and_each_parameter_once() {
        assert_eq!(read_form(&req(&[], "a=b")).unwrap_err().error, "invalid_request");
        assert_eq!(read_form(&req(&[FORM], "a=b&a=c")).unwrap_err().error, "invalid_request");
        assert_eq!(read_form(&req(&[FORM], &"a".repeat(MAX_FORM_BYTES + 1))).unwrap_err().error, "invalid_request");
        let ok = read_form(&req(&[("content-type", "Application/X-WWW-Form-Urlencoded; charset=UTF-8")], "a=b")).unwrap();
        assert_eq!(ok, vec![("a".into(), "b".into())]);
    }

    #[test]
    fn grants_and_scopes() {
        let f = |s: &str| form_urlencoded::parse(s.as_bytes()).into_owned().collect::<Vec<_>>();
        assert!(check_grant(&f("grant_type=client_credentials")).is_ok());
        assert!(check_grant(&f("grant_type=client_credentials&scope=scim%20api%3A%2F%2Fx%2F.default")).is_ok());
        assert_eq!(check_grant(&f("grant_type=password")).unwrap_err().error, "unsupported_grant_type");
        assert_eq!(check_grant(&f("scope=scim")).unwrap_err().error, "invalid_request");
        assert_eq!(check_grant(&f("grant_type=client_credentials&scope=a%20%20b")).unwrap_err().error, "invalid_scope");
        assert_eq!(check_grant(&f("grant_type=client_credentials&scope=%22")).unwrap_err().error, "invalid_scope");
    }
}
