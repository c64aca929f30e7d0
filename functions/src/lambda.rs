//! The per-route Lambda edge: an API Gateway proxy event in (a REST API's, or an HTTP API's in
//! payload format 2.0), a SCIM response out. The tenant comes only from the authorizer's
//! context; without it, or with the authorizer's refusal in it, the request is refused.

use lambda_http::{Body, Request, RequestExt, Response, request::RequestContext, service_fn};
use scim_core::auth::Principal;
use scim_core::edge::{self, App};
use scim_core::error::ScimError;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Runs the Lambda for one function of the route table (`users-get`, …). A function whose
/// configuration is missing (no `SCIM_TABLE`) still serves: every request gets a SCIM `500`
/// naming what is missing, instead of a process that exits before its first event (which
/// leaves `cargo lambda invoke` waiting for an answer).
pub async fn run(function: &'static str) -> Result<(), lambda_http::Error> {
    crate::init_tracing(true);
    let app = match crate::table_from_env() {
        Ok(table) => Ok(Arc::new(App::new(table))),
        Err(e) => {
            tracing::error!(error = %e, "the function is not configured; every request gets 500");
            Err(e.to_string())
        }
    };
    lambda_http::run_concurrent(service_fn(move |event: Request| {
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(match &app {
                Ok(app) => handle(app, function, event).await,
                Err(why) => {
                    crate::metrics::count_response(function, 500);
                    to_lambda(edge::Response::error(&ScimError::Internal(format!("not configured: {why}"))))
                }
            })
        }
    }))
    .await
}

/// Runs the portal Lambda: the setup page and its API, behind no authorizer (the page is
/// public; its API checks the setup link in `Authorization: Portal …` itself).
pub async fn run_portal() -> Result<(), lambda_http::Error> {
    crate::init_tracing(true);
    let app = crate::table_from_env().map(|t| Arc::new(App::new(t))).map_err(|e| e.to_string());
    if let Err(why) = &app {
        tracing::error!(error = %why, "the function is not configured; every request gets 500");
    }
    lambda_http::run_concurrent(service_fn(move |event: Request| {
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(match &app {
                Ok(app) => portal(app, event).await,
                Err(why) => {
                    crate::metrics::count_response("portal", 500);
                    to_lambda(edge::Response::error(&ScimError::Internal(format!("not configured: {why}"))))
                }
            })
        }
    }))
    .await
}

/// Runs the token function: `POST /oauth2/token` and the discovery documents, behind no
/// authorizer (the client authenticates itself in the request), signing with the KMS key.
pub async fn run_token() -> Result<(), lambda_http::Error> {
    crate::init_tracing(true);
    let app = crate::app_from_env(true).map(Arc::new);
    if let Err(why) = &app {
        tracing::error!(error = %why, "the function is not configured; every request gets 500");
    }
    lambda_http::run_concurrent(service_fn(move |event: Request| {
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(match &app {
                Ok(app) => token(app, event).await,
                Err(why) => {
                    crate::metrics::count_response("oauth-token", 500);
                    to_lambda(edge::Response::error(&ScimError::Internal(format!("not configured: {why}"))))
                }
            })
        }
    }))
    .await
}

/// Serves one token-endpoint event (the path from `/oauth2/token` or `/.well-known/` on,
/// whatever stage or base path precedes it).
pub async fn token(app: &App, event: Request) -> Response<Body> {
    scim_core::trace::within(trace_of(&event), serve_token(app, event)).await
}

async fn serve_token(app: &App, event: Request) -> Response<Body> {
    let base_url = base_url(&event);
    let root = base_url.strip_suffix(scim_core::BASE_PATH).unwrap_or(&base_url).to_string();
    let req = rebased(event, token_path);
    let path = req.uri().path().to_string();
    let answer = scim_core::token_endpoint::handle(&app.service, &req, &path, &root).await;
    tracing::info!(method = %req.method(), path = %path, status = answer.response.status, "token endpoint request");
    if answer.throttled {
        let now = scim_core::time::unix_millis() as i64;
        println!(
            "{}",
            crate::metrics::metric_line(&crate::metrics::function_name("oauth-token"), crate::metrics::THROTTLED_CLIENTS_METRIC, now)
        );
    }
    crate::metrics::count_response("oauth-token", answer.response.status);
    to_lambda(answer.response)
}

/// The path from its `/oauth2/token` or `/.well-known/` segment on.
fn token_path(full: &str) -> &str {
    [scim_core::token_endpoint::TOKEN_PATH, "/.well-known/"].iter().find_map(|p| full.find(p).map(|i| &full[i..])).unwrap_or(full)
}

/// Serves one portal event (the path from `/portal` on, whatever stage or base path precedes it).
pub async fn portal(app: &App, event: Request) -> Response<Body> {
    scim_core::trace::within(trace_of(&event), serve_portal(app, event)).await
}

async fn serve_portal(app: &App, event: Request) -> Response<Body> {
    let base_url = base_url(&event);
    let req = rebased(event, portal_path);
    let resp = scim_core::portal::handle(app.service.layout(), &req, &base_url).await;
    tracing::info!(method = %req.method(), path = %req.uri().path(), status = resp.status, "portal request");
    crate::metrics::count_response("portal", resp.status);
    to_lambda(resp)
}

/// The path from its `/portal` segment on (`/v1/portal/api/keys` → `/portal/api/keys`).
fn portal_path(full: &str) -> &str {
    let at = full.match_indices("/portal").map(|(i, _)| i).find(|&i| matches!(full.as_bytes().get(i + 7), None | Some(b'/')));
    at.map(|i| &full[i..]).unwrap_or(full)
}

/// How long before the invocation's deadline a request is given up, so the client gets a SCIM
/// `503` with `Retry-After` rather than the bare error of a function that timed out.
const DEADLINE_MARGIN: Duration = Duration::from_millis(1500);

/// The principal the authorizer put in the event's context (its `principal` field, decoded
/// once); `None` without one, and the request is refused.
pub fn principal_of(event: &Request) -> Option<Principal> {
    verdict_of(event).ok()
}

/// The authorizer's context on the event: a REST API's, or an HTTP API's Lambda authorizer's.
fn authorizer_fields(event: &Request) -> Option<&std::collections::HashMap<String, serde_json::Value>> {
    match event.request_context_ref()? {
        RequestContext::ApiGatewayV1(ctx) => Some(&ctx.authorizer.fields),
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref().map(|a| &a.fields),
        _ => None,
    }
}

/// What the authorizer decided, read from the context once: the refusal an authorizer behind an
/// HTTP API put there (`authorizer::authorize_http`, which writes a refusal or a principal, never
/// both), or its principal, or a 401 when there is neither.
pub fn verdict_of(event: &Request) -> Result<Principal, ScimError> {
    let fields = authorizer_fields(event).ok_or_else(no_context)?;
    if let Some(status) = fields.get("refusal").and_then(|v| v.as_str()) {
        return Err(refusal(status));
    }
    match fields.get("principal").and_then(|v| v.as_str()) {
        Some(text) => Principal::from_context(text),
        None => legacy_principal(fields),
    }
    .ok_or_else(no_context)
}

/// A refusal's status as the SCIM Error a REST API's gateway responses give for the same case.
fn refusal(status: &str) -> ScimError {
    match status {
        "401" => ScimError::Unauthorized("Missing, invalid, expired or revoked bearer token.".into()),
        "403" => ScimError::Forbidden("The tenant is suspended, or requests from this address are not allowed.".into()),
        _ => ScimError::Unavailable { detail: "The bearer token could not be checked right now; retry later.".into(), retry_after: 5 },
    }
}

/// The context an authorizer before the encoded principal wrote (field by field), read until
/// every answer API Gateway cached from it has expired (`AuthorizerCacheTtl`, at most an hour
/// after the deploy): tenant, key and role, the role's built-in permissions, the tenant's
/// defaults otherwise. To be removed in the next version.
fn legacy_principal(fields: &std::collections::HashMap<String, serde_json::Value>) -> Option<Principal> {
    let field = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let role = field("role")?;
    let mut permissions: Vec<scim_core::roles::Permission> =
        field("permissions").map(|s| s.split(',').filter_map(scim_core::roles::Permission::parse).collect()).unwrap_or_default();
    if permissions.is_empty() {
        permissions = scim_core::roles::role_permissions(&role).map(<[_]>::to_vec).unwrap_or_default();
    }
    let policy = |k: &str| field(k).unwrap_or_default();
    Some(Principal {
        tenant_id: field("tenant_id")?,
        key_id: field("key_id")?,
        role,
        rate_limit: field("rate_limit").and_then(|s| s.parse().ok()),
        roles_policy: field("roles_policy").and_then(|s| serde_json::from_str(&s).ok()),
        permissions,
        deactivation: scim_core::tenancy::Deactivation::parse(&policy("deactivation")).unwrap_or_default(),
        external_id_policy: scim_core::tenancy::ExternalIdPolicy::parse(&policy("external_id_policy")).unwrap_or_default(),
        unknown_extensions: scim_core::tenancy::UnknownExtensions::parse(&policy("unknown_extensions")).unwrap_or_default(),
        schemas_version: field("schemas_version").and_then(|s| s.parse().ok()).unwrap_or(0),
    })
}

/// The invocation's X-Ray trace header, parsed.
fn trace_of(event: &Request) -> Option<scim_core::trace::TraceHeader> {
    event.lambda_context_ref().and_then(|c| c.xray_trace_id.as_deref()).and_then(scim_core::trace::TraceHeader::parse)
}

/// Converts one event, serves it (its DynamoDB calls recorded under the invocation's trace when
/// it is sampled), converts the response.
pub async fn handle(app: &App, function: &str, event: Request) -> Response<Body> {
    scim_core::trace::within(trace_of(&event), serve(app, function, event)).await
}

async fn serve(app: &App, function: &str, event: Request) -> Response<Body> {
    let base_url = base_url(&event);
    // the time left in the invocation, read once: the request's budget, and the deadline a
    // Bulk request stops starting operations before
    let left = event.lambda_context_ref().and_then(|c| c.deadline().duration_since(SystemTime::now()).ok());
    let budget = left.map(|d| d.saturating_sub(DEADLINE_MARGIN));
    let principal = verdict_of(&event);
    let mut req = rebased(event, scim_path);
    if let Some(left) = left {
        req.extensions_mut().insert(scim_core::edge::bulk::Deadline(std::time::Instant::now() + left));
    }
    let resp = match principal {
        Ok(p) => within(budget, app.handle(&p, &req, &base_url, Some(function))).await,
        Err(refused) => edge::Response::error(&refused),
    };
    tracing::info!(method = %req.method(), path = %req.uri().path(), status = resp.status, "request");
    crate::metrics::count_response(function, resp.status);
    to_lambda(resp)
}

fn no_context() -> ScimError {
    ScimError::Unauthorized("no authorizer context on the request".into())
}

/// The response, or — when the invocation's time runs out first — a `503` saying the request
/// may or may not have been applied (the client's retry finds out: a create answers 409, a
/// delete 404, an update is applied once).
pub async fn within(budget: Option<Duration>, work: impl std::future::Future<Output = edge::Response>) -> edge::Response {
    let Some(budget) = budget else { return work.await };
    match tokio::time::timeout(budget, work).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(budget_ms = budget.as_millis() as u64, "the request ran out of time; answered 503");
            edge::Response::error(&ScimError::Unavailable {
                detail: "the request took too long and was stopped; it may or may not have been applied: retry it".into(),
                retry_after: 2,
            })
        }
    }
}

/// The event as the core reads it: its path rebased (`scim_path` or `portal_path`, whatever
/// stage or base path precedes it), the query kept, the body as bytes.
fn rebased(event: Request, path_of: fn(&str) -> &str) -> edge::HttpRequest {
    let (mut parts, body) = event.into_parts();
    parts.uri = edge::rebased_uri(path_of(parts.uri.path()), parts.uri.query());
    http::Request::from_parts(parts, body_bytes(body))
}

/// The path under the base URL (`/v1/scim/v2/Users` → `/Users`); a path not under it becomes
/// `/`, which matches no route.
fn scim_path(full: &str) -> &str {
    edge::path_under_base(full).unwrap_or("/")
}

fn body_bytes(body: Body) -> bytes::Bytes {
    match body {
        Body::Text(t) => bytes::Bytes::from(t),
        Body::Binary(b) => bytes::Bytes::from(b),
        _ => bytes::Bytes::new(),
    }
}

fn base_url(event: &Request) -> String {
    let host = event.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let stage = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.as_deref(),
        _ => None,
    };
    gateway_base_url(host, stage)
}

/// The SCIM base URL of a request API Gateway received at `host` on `stage`: an execute-api host
/// keeps a named stage in its path (an HTTP API's `$default` stage has no segment), a custom
/// domain maps the stage away. The authorizer builds the same for a token's audience.
pub fn gateway_base_url(host: &str, stage: Option<&str>) -> String {
    let origin = ["https://", host].concat();
    match stage {
        Some(s) if s != "$default" && host.contains(".execute-api.") => edge::base_url(&origin, &["/", s].concat()),
        _ => edge::base_url(&origin, ""),
    }
}

fn to_lambda(r: edge::Response) -> Response<Body> {
    r.into_http().map(|b| if b.is_empty() { Body::Empty } else { Body::Text(String::from_utf8_lossy(&b).into_owned()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portal_path_starts_at_its_segment() {
        assert_eq!(portal_path("/v1/portal/api/keys"), "/portal/api/keys");
        assert_eq!(portal_path("/portal"), "/portal");
        assert_eq!(portal_path("/portalx/portal/app.js"), "/portal/app.js");
        assert_eq!(portal_path("/elsewhere"), "/elsewhere");
    }

    #[tokio::test]
    async fn a_request_out_of_time_is_a_scim_503_with_retry_after() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            edge::Response::error(&ScimError::NotFound("late".into()))
        };
        let r = within(Some(Duration::from_millis(20)), slow).await;
        assert_eq!((r.status, r.header("retry-after")), (503, Some("2")));
        assert_eq!(r.header("content-type"), Some("application/scim+json"));
        let quick = async { edge::Response::error(&ScimError::NotFound("fine".into())) };
        assert_eq!(within(Some(Duration::from_secs(5)), quick).await.status, 404);
    }
}
