//! One route table: the core's `ROUTES`, the function binaries and the SAM template agree.

use scim_core::edge::ROUTES;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The text of one top-level resource of the template (up to the next one).
fn resource<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let start = text.find(&format!("\n  {name}:\n"))? + 1;
    let rest = &text[start..];
    let mut offset = 0;
    for (i, line) in rest.split_inclusive('\n').enumerate() {
        if i > 0 && line.starts_with("  ") && !line.starts_with("   ") && !line.starts_with("  #") {
            return Some(&rest[..offset]);
        }
        offset += line.len();
    }
    Some(rest)
}

/// (binary, METHOD, path) triples wired in the template, read from each function's
/// `Binary:` build property and its `Path:`/`Method:` event properties.
fn template_routes() -> (BTreeSet<(String, String, String)>, BTreeSet<String>) {
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).expect("infra/template.yaml");
    let mut routes = BTreeSet::new();
    let mut binaries = BTreeSet::new();
    let mut binary: Option<String> = None;
    let mut path: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        // a new top-level resource (two-space indent) resets the current function
        if line.starts_with("  ") && !line.starts_with("   ") && t.ends_with(':') {
            binary = None;
        }
        if let Some(b) = t.strip_prefix("Binary:") {
            let b = b.trim().to_string();
            binaries.insert(b.clone());
            binary = Some(b);
        } else if let Some(p) = t.strip_prefix("Path:") {
            path = Some(p.trim().trim_matches('\'').trim_matches('"').to_string());
        } else if let Some(m) = t.strip_prefix("Method:")
            && let (Some(b), Some(p)) = (&binary, path.take())
        {
            let p = p.strip_prefix("/scim/v2").unwrap_or(&p).to_string();
            routes.insert((b.clone(), m.trim().to_ascii_uppercase(), p));
        }
    }
    (routes, binaries)
}

#[test]
fn template_functions_and_core_routes_agree() {
    let mut core: BTreeSet<(String, String, String)> =
        ROUTES.iter().map(|r| (r.function.to_string(), r.method.to_string(), r.path.to_string())).collect();
    // the setup portal: its own function, behind no authorizer
    core.extend(scim_core::portal::ROUTES.iter().map(|(m, p)| ("portal".to_string(), m.to_string(), p.to_string())));
    // the OAuth token endpoint and its discovery documents: a function of their own, no authorizer
    core.extend(scim_core::token_endpoint::ROUTES.iter().map(|(m, p)| ("oauth-token".to_string(), m.to_string(), p.to_string())));
    let (template, binaries) = template_routes();
    assert_eq!(template, core, "infra/template.yaml and scim_core::edge::ROUTES (+ portal::ROUTES, token_endpoint::ROUTES) differ");
    let mut expected_bins: BTreeSet<String> = ROUTES.iter().map(|r| r.function.to_string()).collect();
    expected_bins.insert("authorizer".into());
    expected_bins.insert("events".into());
    expected_bins.insert("portal".into());
    expected_bins.insert("oauth-token".into());
    assert_eq!(binaries, expected_bins, "template functions");
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo().join("functions/src/bin"))
        .expect("functions/src/bin")
        .filter_map(|e| e.ok()?.path().file_stem()?.to_str().map(str::to_string))
        .filter(|n| n != "scim-local" && n != "scim-admin")
        .collect();
    assert_eq!(on_disk, expected_bins, "functions/src/bin");
}

/// The failures alarm subtracts the refusals the authorizer counts (behind a REST API, where a
/// refusal is a Lambda error) and adds the keys it could not decide (behind an HTTP API, where
/// that is a refusal of 503 counted in `ServerErrors`): the metrics it reads are the ones
/// `authorizer::denied_key_metric` and `metrics::count_response` write (namespace, name,
/// dimension).
#[test]
fn the_authorizer_failure_alarm_reads_the_metric_the_authorizer_writes() {
    use scim_functions::authorizer::{DENIED_KEYS_METRIC, METRICS_NAMESPACE, denied_key_metric};
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).expect("infra/template.yaml");
    let metric = format!(
        "Metric: {{Namespace: {METRICS_NAMESPACE}, MetricName: {DENIED_KEYS_METRIC}, Dimensions: [{{Name: Function, Value: !Ref AuthorizerFunction}}]}}"
    );
    let alarm =
        text.split("  AuthorizerFailuresAlarm:").nth(1).and_then(|rest| rest.split("\n  DeniedKeysSpikeAlarm:").next()).expect("the alarm");
    assert!(alarm.contains(&metric), "AuthorizerFailuresAlarm must read {metric}");
    assert!(
        alarm.contains(r#"Expression: !If [IsHttpApi, "errors + FILL(undecided, 0)", "errors - FILL(denied, 0) + FILL(undecided, 0)"]"#),
        "failures are errors minus refusals (REST), plus the undecided"
    );
    let undecided = format!(
        "Metric: {{Namespace: {METRICS_NAMESPACE}, MetricName: {}, Dimensions: [{{Name: Function, Value: !Ref AuthorizerFunction}}]}}",
        scim_functions::metrics::SERVER_ERRORS_METRIC
    );
    assert!(alarm.contains(&undecided), "AuthorizerFailuresAlarm must read {undecided}");
    assert!(alarm.contains("MetricName: Errors, Dimensions: [{Name: FunctionName, Value: !Ref AuthorizerFunction}]"));
    let line: serde_json::Value = serde_json::from_str(&denied_key_metric("f", 0)).expect("EMF line");
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Function"]]));
    let spike = text.split("  DeniedKeysSpikeAlarm:").nth(1).expect("the spike alarm");
    assert!(spike.contains(&format!("Namespace: {METRICS_NAMESPACE}")) && spike.contains(&format!("MetricName: {DENIED_KEYS_METRIC}")));
}

/// The brute-force alarm reads the metric the token function writes when it first throttles a
/// client (namespace, name, dimension), and nothing else.
#[test]
fn the_throttled_clients_alarm_reads_the_metric_the_token_function_writes() {
    use scim_functions::authorizer::{METRICS_NAMESPACE, THROTTLED_CLIENTS_METRIC, metric_line};
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).expect("infra/template.yaml");
    let body = resource(&text, "ThrottledClientsAlarm").expect("ThrottledClientsAlarm in the template");
    assert!(body.contains(THROTTLED_CLIENTS_METRIC) && body.contains(METRICS_NAMESPACE), "ThrottledClientsAlarm: {body}");
    assert!(body.contains("OauthTokenFunction"), "dimension Function = the token function: {body}");
    let line: serde_json::Value = serde_json::from_str(&metric_line("f", THROTTLED_CLIENTS_METRIC, 0)).expect("EMF line");
    assert_eq!(line[THROTTLED_CLIENTS_METRIC], 1);
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], THROTTLED_CLIENTS_METRIC);
}

/// Only the portal's and the token endpoint's routes skip the authorizer (the token endpoint
/// authenticates the client itself): every SCIM route and every other function's event is
/// behind the key authorizer (the API's default).
#[test]
fn only_the_portal_and_the_token_endpoint_are_reachable_without_a_key() {
    let text = std::fs::read_to_string(repo().join("infra/template.yaml")).expect("infra/template.yaml");
    assert!(text.contains("DefaultAuthorizer: ScimKeyAuthorizer"), "the key authorizer is the API's default");
    let mut function = String::new();
    let mut open = Vec::new();
    for line in text.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            function = line.trim().trim_end_matches(':').to_string();
        }
        if line.trim() == "Authorizer: NONE" {
            open.push(function.clone());
        }
    }
    assert!(
        !open.is_empty() && open.iter().all(|f| f == "PortalFunction" || f == "OauthTokenFunction"),
        "events without the authorizer: {open:?}"
    );
    assert_eq!(open.iter().filter(|f| *f == "PortalFunction").count(), scim_core::portal::ROUTES.len(), "each portal route opts out once");
    assert_eq!(
        open.iter().filter(|f| *f == "OauthTokenFunction").count(),
        scim_core::token_endpoint::ROUTES.len(),
        "each token route opts out once"
    );
}
