//! DynamoDB calls in X-Ray: a route function invoked with a sampled trace header sends one
//! subsegment per DynamoDB call to the X-Ray daemon (here a UDP socket of the test), under that
//! trace and its parent; an unsampled invocation sends nothing. On moto, through the real Lambda
//! adapter.

use super::*;
use lambda_http::RequestExt;
use scim_core::edge::App;
use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
use std::sync::Arc;
use std::time::Duration;

const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

async fn invoke(app: &App, sampled: bool) -> u16 {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/events/users-list.json");
    let event = lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut ctx = lambda_http::Context::default();
    ctx.xray_trace_id = Some(format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled={}", u8::from(sampled)));
    scim_functions::lambda::handle(app, "users-list", event.with_lambda_context(ctx)).await.status().as_u16()
}

fn received(daemon: &std::net::UdpSocket) -> Vec<Value> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = daemon.recv(&mut buf) {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let (header, doc) = text.split_once('\n').expect("a header line and a document");
        assert_eq!(serde_json::from_str::<Value>(header).unwrap(), json!({"format": "json", "version": 1}));
        out.push(serde_json::from_str(doc).expect("a JSON subsegment"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_requests_show_their_dynamodb_calls_in_xray() {
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    daemon.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let name = format!("xray-{}", scim_tests::uuid_like());
    scim_tests::fresh_dynamo_table(&name).await; // the table, made once
    let cfg = DynamoConfig {
        attempt_timeout: Duration::from_secs(30),
        operation_timeout: Duration::from_secs(90),
        xray_daemon: Some(daemon.local_addr().unwrap()),
        ..DynamoConfig::new(&name, "us-east-1", Some(scim_tests::moto_endpoint()))
    };
    let app = App::new(Arc::new(DynamoTable::connect(&cfg).unwrap()));
    scim_core::migrate::upgrade(app.service.layout(), &mut |_| {}).await.unwrap();
    scim_core::tenancy::create_tenant(app.service.layout(), "local", "local").await.unwrap();
    assert!(received(&daemon).is_empty(), "calls outside a request's trace are not recorded");

    assert_eq!(invoke(&app, true).await, 200);
    let subsegments = received(&daemon);
    assert!(!subsegments.is_empty(), "a sampled request's DynamoDB calls are recorded");
    for s in &subsegments {
        assert_eq!((s["type"].as_str(), s["name"].as_str(), s["namespace"].as_str()), (Some("subsegment"), Some("DynamoDB"), Some("aws")));
        assert_eq!((s["trace_id"].as_str(), s["parent_id"].as_str()), (Some(ROOT), Some("53995c3f42cd8ad8")));
        assert_eq!((s["aws"]["table_name"].as_str(), s["aws"]["region"].as_str()), (Some(name.as_str()), Some("us-east-1")));
        assert!(
            ["GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem"].contains(&s["aws"]["operation"].as_str().unwrap_or("")),
            "{s}"
        );
        assert_eq!(s["http"]["response"]["status"], 200);
        assert!(s["start_time"].as_f64().unwrap() <= s["end_time"].as_f64().unwrap());
        assert_eq!(s["id"].as_str().map(str::len), Some(16));
    }
    assert_eq!(invoke(&app, false).await, 200);
    assert!(received(&daemon).is_empty(), "an unsampled request sends nothing");
}
