//! The service's own CloudWatch metrics, as embedded-metric-format lines on stdout (Lambda's log
//! pipeline turns each into a data point, without an API call): refused keys (the authorizer),
//! throttled OAuth clients (the token function), and the server errors every function answers
//! (a SCIM 5xx is a response, not a Lambda error: without this, a function's error alarm sees
//! panics only, and a canary serving 500s would be promoted).

use serde_json::json;

/// The CloudWatch namespace of the service's own metrics.
pub const METRICS_NAMESPACE: &str = "ScimServerless";
/// The metric counting refused keys (one per 401), by function name.
pub const DENIED_KEYS_METRIC: &str = "DeniedKeys";

/// The metric counting OAuth clients throttled after too many wrong secrets (one data point
/// per client and minute, from the token function): a brute-force signal.
pub const THROTTLED_CLIENTS_METRIC: &str = "ThrottledClients";

/// One refused key as a CloudWatch embedded-metric-format line (Lambda's log pipeline turns it
/// into a data point of `DeniedKeys`, dimension `Function`, without an API call).
pub fn denied_key_metric(function: &str, now_ms: i64) -> String {
    metric_line(function, DENIED_KEYS_METRIC, now_ms)
}

/// One data point of a count metric of the service's namespace, dimension `Function`, as an
/// embedded-metric-format line, with a `level` and an RFC 3339 `timestamp` like every log line
/// (Lambda's JSON log format reads both; the template keeps Lambda's application filter at
/// TRACE, so no level an operator picks drops a metric).
pub fn metric_line(function: &str, metric: &str, now_ms: i64) -> String {
    json!({
        "_aws": {"Timestamp": now_ms, "CloudWatchMetrics": [{"Namespace": METRICS_NAMESPACE, "Dimensions": [["Function"]],
            "Metrics": [{"Name": metric, "Unit": "Count"}]}]},
        "level": "INFO",
        "timestamp": scim_core::time::format_unix_millis(now_ms),
        "Function": function,
        metric: 1,
    })
    .to_string()
}

/// The metric counting the 5xx responses a function answered, by function name.
pub const SERVER_ERRORS_METRIC: &str = "ServerErrors";

/// The function's name for its metrics (`AWS_LAMBDA_FUNCTION_NAME` in Lambda).
pub fn function_name(fallback: &str) -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| fallback.to_string())
}

/// Counts a response in the function's `ServerErrors` when it is a 5xx: one line on stdout.
pub fn count_response(function: &str, status: u16) {
    if status >= 500 {
        if let Ok(mut counted) = COUNTED.lock() {
            *counted.entry(function.to_string()).or_default() += 1;
        }
        println!("{}", metric_line(&function_name(function), SERVER_ERRORS_METRIC, scim_core::time::unix_millis() as i64));
    }
}

/// The 5xx answers this process has counted, by function: what the `ServerErrors` lines said,
/// so a test can see that an answer path counts its failures (the lines go to stdout).
static COUNTED: std::sync::Mutex<std::collections::BTreeMap<String, u64>> = std::sync::Mutex::new(std::collections::BTreeMap::new());

/// How many 5xx answers of `function` this process has counted in `ServerErrors`.
pub fn server_errors_counted(function: &str) -> u64 {
    COUNTED.lock().map(|c| c.get(function).copied().unwrap_or(0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_is_one_data_point_of_its_function() {
        let v: serde_json::Value = serde_json::from_str(&metric_line("stack-users-get", SERVER_ERRORS_METRIC, 1_700_000_000_000)).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], SERVER_ERRORS_METRIC);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Function"]]));
        assert_eq!((&v["Function"], &v[SERVER_ERRORS_METRIC], &v["level"]), (&json!("stack-users-get"), &json!(1), &json!("INFO")));
    }
}
