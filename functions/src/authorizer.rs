//! The REQUEST authorizer: authenticates the bearer key with the core's
//! `auth::authenticate_attempt` (one batched read once the process has seen the key), then
//! allows exactly the routes the key's role covers, for every route while API Gateway caches
//! the answer, and hands the route functions the principal whole, as one encoded context field
//! (`principal`), beside `tenant_id`, `key_id` and `role` for the stage's access log.
//!
//! Behind an HTTP API (`ApiType=HTTP`, payload format 2.0) the same decision is a simple
//! response: always authorized, the context carrying either that principal or a `refusal` (the
//! status), because an HTTP API answers an unauthorized request with a body of its own, not a
//! SCIM Error; the route function turns the refusal into one (`lambda::verdict_of`) and checks
//! the route against the role itself (`App::handle`).

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use lambda_runtime::{LambdaEvent, service_fn};
use scim_core::BASE_PATH;
use scim_core::auth::Principal;
use scim_core::edge::{App, ROUTES};
use serde_json::{Value, json};
use std::sync::Arc;

/// What the authorizer reads, and what it answers.
pub type AuthorizerRequest = ApiGatewayCustomAuthorizerRequestTypeRequest;
pub type AuthorizerResponse = ApiGatewayCustomAuthorizerResponse<Value>;
/// The same behind an HTTP API: payload format 2.0, simple responses.
pub type HttpAuthorizerRequest = ApiGatewayV2CustomAuthorizerV2Request;
pub type HttpAuthorizerResponse = ApiGatewayV2CustomAuthorizerSimpleResponse<Value>;

/// Runs the authorizer Lambda.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    crate::init_tracing(true);
    let app = Arc::new(crate::app_from_env(false)?);
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        // its DynamoDB calls are recorded under the invocation's trace when it is sampled
        let trace = event.context.xray_trace_id.as_deref().and_then(scim_core::trace::TraceHeader::parse);
        async move { scim_core::trace::within(trace, answer(&app, event.payload)).await }
    }))
    .await
}

/// Answers an event of either API type: an HTTP API's says `"version": "2.0"`.
pub async fn answer(app: &App, event: Value) -> Result<Value, lambda_runtime::Error> {
    if event.get("version").and_then(Value::as_str) == Some("2.0") {
        let event: HttpAuthorizerRequest = serde_json::from_value(event)?;
        Ok(serde_json::to_value(authorize_http(app, &event).await?)?)
    } else {
        let event: AuthorizerRequest = serde_json::from_value(event)?;
        Ok(serde_json::to_value(authorize(app, &event).await?)?)
    }
}

/// The function's name, for the metric lines it prints.
fn function_name() -> String {
    crate::metrics::function_name("authorizer")
}

/// The SCIM base URL the request was sent to, as the route functions build it.
fn audience(event: &AuthorizerRequest) -> String {
    let host = event.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    crate::lambda::gateway_base_url(host, event.request_context.stage.as_deref())
}

/// The authorizer's answer for one event; `Err("Unauthorized")` makes API Gateway answer 401.
pub async fn authorize(app: &App, event: &AuthorizerRequest) -> Result<AuthorizerResponse, lambda_runtime::Error> {
    let header = |name: http::HeaderName| event.headers.get(name).and_then(|v| v.to_str().ok());
    let source_ip = event.request_context.identity.as_ref().and_then(|i| i.source_ip.as_deref()).and_then(|s| s.parse().ok());
    let method_arn = event.method_arn.as_deref().unwrap_or_default();
    // what the request is, from the method ARN (`…/{stage}/{METHOD}/{path}`): recorded in the
    // tenant's activity log when a known key is refused
    let mut rest = method_arn.splitn(4, '/').skip(2);
    let (method, path) = (rest.next().unwrap_or_default(), rest.next().unwrap_or_default());
    let path = format!("/{}", path.trim_start_matches(BASE_PATH.trim_start_matches('/')).trim_start_matches('/'));
    let audience = audience(event);
    let attempt = scim_core::auth::Attempt { method, path: &path, user_agent: header(http::header::USER_AGENT), audience: &audience };
    match app.authenticate_attempt(header(http::header::AUTHORIZATION), source_ip, attempt).await {
        Ok(p) => {
            // the tenant's declared endpoints (only a tenant with declarations reads them)
            let types = app.service.tenant_types(&p.tenant_id, p.schemas_version).await?;
            let declared: Vec<&str> = types.types.iter().map(|(t, _)| t.segment()).collect();
            Ok(policy(&p, method_arn, &declared)?)
        }
        Err(e) if e.status() == 401 => {
            // Lambda counts this answer as a function error (it is API Gateway's only way to a
            // 401), so refusals are counted apart: the failures alarm subtracts them
            println!("{}", denied_key_metric(&function_name(), scim_core::time::unix_millis() as i64));
            Err("Unauthorized".into())
        }
        // tenant suspended or address not allowed: an explicit Deny (API Gateway answers 403)
        Err(e) if e.status() == 403 => Ok(deny(method_arn)),
        Err(e) => {
            // the store failed, or the table awaits `scim-admin migrate`: API Gateway answers
            // 503 (AUTHORIZER_FAILURE); the cause is logged here, never sent
            tracing::error!(error = %e, status = e.status(), "the authorizer could not decide");
            Err(format!("authorizer failed: {}", e.status()).into())
        }
    }
}

/// The decision behind an HTTP API: the request goes on to its route function either way,
/// carrying the principal, or the refusal the function answers with (401 a key refused, 403
/// a suspended tenant or an address outside its allowlist, 503 undecided: the store failed).
/// API Gateway caches this answer like any other, for `AuthorizerCacheTtl` seconds.
pub async fn authorize_http(app: &App, event: &HttpAuthorizerRequest) -> Result<HttpAuthorizerResponse, lambda_runtime::Error> {
    let header = |name: http::HeaderName| event.headers.get(name).and_then(|v| v.to_str().ok());
    let http = &event.request_context.http;
    let source_ip = http.source_ip.as_deref().and_then(|s| s.parse().ok());
    let path = scim_core::edge::path_under_base(http.path.as_deref().unwrap_or_default()).unwrap_or("/");
    let audience = http_audience(event);
    let attempt =
        scim_core::auth::Attempt { method: http.method.as_str(), path, user_agent: header(http::header::USER_AGENT), audience: &audience };
    let context = match app.authenticate_attempt(header(http::header::AUTHORIZATION), source_ip, attempt).await {
        Ok(p) => principal_context(&p)?,
        Err(e) => {
            match e.status() {
                401 => println!("{}", denied_key_metric(&function_name(), scim_core::time::unix_millis() as i64)),
                403 => {}
                status => {
                    tracing::error!(error = %e, status, "the authorizer could not decide");
                    crate::metrics::count_response("authorizer", 503);
                }
            }
            json!({ "refusal": refusal_status(e.status()) })
        }
    };
    let mut out = HttpAuthorizerResponse::default();
    out.is_authorized = true;
    out.context = context;
    Ok(out)
}

/// The status a refusal carries: 401 and 403 as they are, anything else "not decided" (503).
fn refusal_status(status: u16) -> &'static str {
    match status {
        401 => "401",
        403 => "403",
        _ => "503",
    }
}

/// The same behind an HTTP API.
fn http_audience(event: &HttpAuthorizerRequest) -> String {
    let host = event.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    crate::lambda::gateway_base_url(host, event.request_context.stage.as_deref())
}

/// The context every route function reads: the principal, encoded once (size-checked), and
/// the three fields the access log names.
fn principal_context(p: &Principal) -> Result<Value, scim_core::error::ScimError> {
    Ok(json!({"principal": p.to_context()?, "tenant_id": p.tenant_id, "key_id": p.key_id, "role": p.role}))
}

fn statement(effect: IamPolicyEffect, resource: Vec<String>) -> ApiGatewayCustomAuthorizerPolicy {
    let mut st = IamPolicyStatement::default();
    st.action = vec!["execute-api:Invoke".into()];
    st.effect = effect;
    st.resource = resource;
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![st];
    policy
}

/// The IAM policy: every route the role may call, on this API and stage — a `{type}` route once
/// per endpoint the tenant declared (`declared`: `Agents`, …), never as a wildcard, which in an
/// execute-api ARN would also match every other path; and the context: the principal, encoded
/// once (size-checked), with the three fields the access log names.
pub fn policy(p: &Principal, method_arn: &str, declared: &[&str]) -> Result<AuthorizerResponse, scim_core::error::ScimError> {
    let (api, stage) = api_and_stage(method_arn);
    let mut resources: Vec<String> = Vec::new();
    for r in ROUTES.iter().filter(|r| p.may(r.permission)) {
        let path = r.path.replace("{id}", "*");
        let arn = |path: &str| format!("{api}/{stage}/{}{BASE_PATH}{path}", r.method);
        if path.contains("{type}") {
            resources.extend(declared.iter().map(|d| arn(&path.replace("{type}", d))));
        } else {
            resources.push(arn(&path));
        }
    }
    let mut out = AuthorizerResponse::default();
    out.principal_id = Some(p.key_id.clone());
    out.policy_document = statement(IamPolicyEffect::Allow, resources);
    out.context = principal_context(p)?;
    Ok(out)
}

/// An explicit Deny for every route of this API and stage.
pub fn deny(method_arn: &str) -> AuthorizerResponse {
    let (api, stage) = api_and_stage(method_arn);
    let mut out = AuthorizerResponse::default();
    out.principal_id = Some("denied".into());
    out.policy_document = statement(IamPolicyEffect::Deny, vec![format!("{api}/{stage}/*")]);
    out
}

/// `arn:aws:execute-api:{region}:{account}:{api}` and `{stage}` from a method ARN
/// (`…:{api}/{stage}/{METHOD}/{path…}`).
fn api_and_stage(method_arn: &str) -> (&str, &str) {
    let mut parts = method_arn.splitn(3, '/');
    (parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
}

pub use crate::metrics::{DENIED_KEYS_METRIC, METRICS_NAMESPACE, THROTTLED_CLIENTS_METRIC, denied_key_metric, metric_line};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_key_is_one_embedded_metric_data_point() {
        let v: Value = serde_json::from_str(&denied_key_metric("scim-serverless-authorizer", 1_700_000_000_000)).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            (&m["Namespace"], &m["Dimensions"], &m["Metrics"][0]["Name"]),
            (&json!("ScimServerless"), &json!([["Function"]]), &json!("DeniedKeys"))
        );
        assert_eq!(
            (&v["Function"], &v["DeniedKeys"], &v["_aws"]["Timestamp"]),
            (&json!("scim-serverless-authorizer"), &json!(1), &json!(1_700_000_000_000i64))
        );
        // a level and a time, as Lambda's JSON log format reads them: never a line it calls INFO by default
        assert_eq!((&v["level"], &v["timestamp"]), (&json!("INFO"), &json!("2023-11-14T22:13:20Z")));
    }
}
