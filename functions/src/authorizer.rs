//! The REQUEST authorizer: checks the bearer key with the core's `auth::authenticate` (one
//! read), then allows exactly the routes the key's role covers, for every route while API
//! Gateway caches the answer, and passes tenant, key id and role to the route functions.

use lambda_runtime::{LambdaEvent, service_fn};
use scim_core::auth::Principal;
use scim_core::edge::{App, ROUTES};
use serde_json::{Value, json};
use std::sync::Arc;

/// Runs the authorizer Lambda.
pub async fn run() -> Result<(), lambda_runtime::Error> {
    crate::init_tracing(true);
    let app = Arc::new(App::new(crate::table_from_env()?));
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        // its DynamoDB calls are recorded under the invocation's trace when it is sampled
        let trace = event.context.xray_trace_id.as_deref().and_then(scim_core::trace::TraceHeader::parse);
        async move { scim_core::trace::within(trace, authorize(&app, &event.payload)).await }
    }))
    .await
}

/// The authorizer's answer for one event; `Err("Unauthorized")` makes API Gateway answer 401.
pub async fn authorize(app: &App, event: &Value) -> Result<Value, lambda_runtime::Error> {
    let headers = event.get("headers").and_then(Value::as_object);
    let authorization = headers.and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization"))).and_then(|(_, v)| v.as_str());
    let source_ip = event.pointer("/requestContext/identity/sourceIp").and_then(Value::as_str).and_then(|s| s.parse().ok());
    let method_arn = event.get("methodArn").and_then(Value::as_str).unwrap_or_default();
    // what the request is, from the method ARN (`…/{stage}/{METHOD}/{path}`): recorded in the
    // tenant's activity log when a known key is refused
    let mut rest = method_arn.splitn(4, '/').skip(2);
    let (method, path) = (rest.next().unwrap_or_default(), rest.next().unwrap_or_default());
    let path = format!("/{}", path.trim_start_matches("scim/v2/").trim_start_matches('/'));
    let user_agent = headers.and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))).and_then(|(_, v)| v.as_str());
    let attempt = scim_core::auth::Attempt { method, path: &path, user_agent };
    match app.authenticate_attempt(authorization, source_ip, attempt).await {
        Ok(p) => Ok(policy(&p, method_arn)),
        Err(e) if e.status() == 401 => {
            // Lambda counts this answer as a function error (it is API Gateway's only way to a
            // 401), so refusals are counted apart: the failures alarm subtracts them
            let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "authorizer".into());
            println!("{}", denied_key_metric(&function, scim_core::time::unix_millis() as i64));
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

/// The IAM policy: every route the role may call, on this API and stage.
pub fn policy(p: &Principal, method_arn: &str) -> Value {
    let (api, stage) = api_and_stage(method_arn);
    let resources: Vec<String> = ROUTES
        .iter()
        .filter(|r| p.may(r.permission))
        .map(|r| format!("{api}/{stage}/{}/scim/v2{}", r.method, r.path.replace("{id}", "*")))
        .collect();
    json!({
        "principalId": p.key_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}]
        },
        "context": {"tenant_id": p.tenant_id, "key_id": p.key_id, "role": p.role, "rate_limit": p.rate_limit.map(|n| n.to_string()).unwrap_or_default(),
            "roles_policy": p.roles_policy.as_ref().and_then(|r| serde_json::to_string(r).ok()).unwrap_or_default(),
            "permissions": p.permissions.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","),
            "deactivation": p.deactivation.as_str(), "external_id_policy": p.external_id_policy.as_str(),
            "unknown_extensions": p.unknown_extensions.as_str(), "schemas_version": p.schemas_version.to_string()},
    })
}

/// An explicit Deny for every route of this API and stage.
pub fn deny(method_arn: &str) -> Value {
    let (api, stage) = api_and_stage(method_arn);
    json!({
        "principalId": "denied",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [format!("{api}/{stage}/*")]}]
        },
    })
}

/// `arn:aws:execute-api:{region}:{account}:{api}` and `{stage}` from a method ARN
/// (`…:{api}/{stage}/{METHOD}/{path…}`).
fn api_and_stage(method_arn: &str) -> (&str, &str) {
    let mut parts = method_arn.splitn(3, '/');
    (parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
}

/// The CloudWatch namespace of the service's own metrics.
pub const METRICS_NAMESPACE: &str = "ScimServerless";
/// The metric counting refused keys (one per 401), by function name.
pub const DENIED_KEYS_METRIC: &str = "DeniedKeys";

/// One refused key as a CloudWatch embedded-metric-format line (Lambda's log pipeline turns it
/// into a data point of `DeniedKeys`, dimension `Function`, without an API call).
pub fn denied_key_metric(function: &str, now_ms: i64) -> String {
    json!({
        "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{"Namespace": METRICS_NAMESPACE, "Dimensions": [["Function"]],
            "Metrics": [{"Name": DENIED_KEYS_METRIC, "Unit": "Count"}]}]},
        "Function": function,
        DENIED_KEYS_METRIC: 1,
    })
    .to_string()
}

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
    }
}
