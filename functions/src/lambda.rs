//! The per-route Lambda edge: an API Gateway (REST) proxy event in, a SCIM response out. The
//! tenant comes only from the authorizer's context; without it the request is refused.

use lambda_http::{Body, Request, RequestExt, Response, request::RequestContext, service_fn};
use scim_core::auth::Principal;
use scim_core::edge::{self, App, Route};
use scim_core::error::ScimError;
use std::convert::Infallible;
use std::sync::Arc;

/// Runs the Lambda for one function of the route table (`users-get`, …).
pub async fn run(function: &'static str) -> Result<(), lambda_http::Error> {
    crate::init_tracing(true);
    let table = crate::table_from_env()?;
    let app = Arc::new(App::new(table));
    let routes: Arc<[Route]> = edge::routes_of(function).into();
    lambda_http::run(service_fn(move |event: Request| {
        let (app, routes) = (app.clone(), routes.clone());
        async move { Ok::<_, Infallible>(handle(&app, &routes, event).await) }
    }))
    .await
}

/// The authorizer's context on a REST API proxy event.
pub fn principal_of(event: &Request) -> Option<Principal> {
    let RequestContext::ApiGatewayV1(ctx) = event.request_context_ref()? else {
        return None;
    };
    let field = |k: &str| ctx.authorizer.fields.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let rate_limit = ctx
        .authorizer
        .fields
        .get("rate_limit")
        .and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_u64().map(|n| n as u32)));
    let roles_policy = field("roles_policy").and_then(|s| serde_json::from_str(&s).ok());
    let role = field("role")?;
    // the authorizer sends the resolved permissions; a context without them (an older
    // authorizer, hand-made events) falls back to the built-in role of that name, or nothing
    let mut permissions: Vec<scim_core::auth::Permission> =
        field("permissions").map(|s| s.split(',').filter_map(scim_core::auth::Permission::parse).collect()).unwrap_or_default();
    if permissions.is_empty() {
        permissions = scim_core::auth::role_permissions(&role).map(<[_]>::to_vec).unwrap_or_default();
    }
    let deactivation = field("deactivation").and_then(|s| scim_core::auth::Deactivation::parse(&s)).unwrap_or_default();
    let external_id_policy = field("external_id_policy").and_then(|s| scim_core::auth::ExternalIdPolicy::parse(&s)).unwrap_or_default();
    let unknown_extensions = field("unknown_extensions").and_then(|s| scim_core::auth::UnknownExtensions::parse(&s)).unwrap_or_default();
    Some(Principal {
        tenant_id: field("tenant_id")?,
        key_id: field("key_id")?,
        role,
        rate_limit,
        roles_policy,
        permissions,
        deactivation,
        external_id_policy,
        unknown_extensions,
        schemas_version: field("schemas_version").and_then(|s| s.parse().ok()).unwrap_or(0),
    })
}

/// Converts one event, serves it, converts the response.
pub async fn handle(app: &App, routes: &[Route], event: Request) -> Response<Body> {
    let req = to_edge(&event);
    let base_url = base_url(&event);
    let resp = match principal_of(&event) {
        Some(p) => app.handle(&p, &req, &base_url, Some(routes)).await,
        None => edge::Response::error(&ScimError::Unauthorized("no authorizer context on the request".into())),
    };
    tracing::info!(method = %req.method, path = %req.path, status = resp.status, "request");
    to_lambda(resp)
}

fn to_edge(event: &Request) -> edge::Request {
    let full = event.uri().path();
    // the stage may or may not prefix the path; everything after /scim/v2 is ours
    let path = match full.find("/scim/v2") {
        Some(i) => full[i + "/scim/v2".len()..].to_string(),
        None => full.to_string(),
    };
    let query = event.uri().query().map(edge::parse_query).unwrap_or_default();
    let headers =
        event.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_ascii_lowercase(), v.to_string()))).collect();
    let body = match event.body() {
        Body::Empty => Vec::new(),
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    };
    edge::Request { method: event.method().as_str().to_string(), path, query, headers, body }
}

fn base_url(event: &Request) -> String {
    let host = event.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let stage = match event.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    match stage {
        // custom domains map the stage away; execute-api hosts keep it
        Some(s) if host.contains(".execute-api.") => format!("https://{host}/{s}/scim/v2"),
        _ => format!("https://{host}/scim/v2"),
    }
}

fn to_lambda(r: edge::Response) -> Response<Body> {
    let mut b = Response::builder().status(r.status);
    for (k, v) in &r.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = if r.body.is_empty() { Body::Empty } else { Body::Text(String::from_utf8_lossy(&r.body).into_owned()) };
    b.body(body).unwrap_or_else(|_| Response::new(Body::Empty))
}
