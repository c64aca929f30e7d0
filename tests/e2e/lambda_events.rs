//! Every function answers its sample API Gateway event (functions/events/*.json) through the
//! real Lambda adapter: tenant from the authorizer context, SCIM responses out.

use super::*;
use scim_core::edge::{App, ROUTES};
use scim_core::store::embedded::EmbeddedTable;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../functions/events")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_answers_its_sample_event() {
    let app = App::new(Arc::new(EmbeddedTable::in_memory()));
    scim_core::tenancy::create_tenant(app.service.layout(), "local", "local").await.unwrap();
    let functions: BTreeSet<&str> = ROUTES.iter().map(|r| r.function).collect();
    for f in functions {
        let path = events_dir().join(format!("{f}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} is missing", path.display()));
        let event = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        let resp = scim_functions::lambda::handle(&app, f, event).await;
        let status = resp.status().as_u16();
        let body = match resp.body() {
            lambda_http::Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        // create, list, search and discovery succeed; the others name a placeholder id → 404
        let ok = match f {
            "users-create" | "groups-create" => status == 201,
            "users-list" | "users-search" | "groups-list" | "groups-search" | "search" | "discovery" | "settings" => status == 200,
            _ => status == 404 || status == 400,
        };
        assert!(ok, "{f}: {status} {body}");
        if !body.is_empty() {
            assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/scim+json"), "{f}");
            let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{f}: {e}: {body}"));
            assert!(v["schemas"].is_array(), "{f}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_authorizer_context_means_401_never_a_default_tenant() {
    let app = App::new(Arc::new(EmbeddedTable::in_memory()));
    let text = std::fs::read_to_string(events_dir().join("users-list.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["requestContext"]["authorizer"] = json!({});
    let event = lambda_http::request::from_str(&v.to_string()).unwrap();
    let resp = scim_functions::lambda::handle(&app, "users-list", event).await;
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorizer_allows_exactly_the_roles_routes() {
    use scim_functions::authorizer::{AuthorizerRequest, authorize};
    let app = App::new(Arc::new(EmbeddedTable::in_memory()));
    scim_core::tenancy::create_tenant(app.service.layout(), "acme", "Acme").await.unwrap();
    let reader = scim_core::tenancy::create_key(app.service.layout(), "acme", "reader", None).await.unwrap();
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(events_dir().join("authorizer.json")).unwrap()).unwrap();
    let arn = event["methodArn"].as_str().unwrap().to_string();
    let (api_stage, _) = arn.split_once("/GET").or_else(|| arn.split_once("/POST")).unwrap_or((&arn, ""));
    event["headers"]["Authorization"] = json!(format!("Bearer {}", reader.token));
    let typed = |v: &Value| serde_json::from_value::<AuthorizerRequest>(v.clone()).unwrap();
    let out = authorize(&app, &typed(&event)).await.unwrap();
    assert_eq!((&out.context["tenant_id"], &out.context["role"]), (&json!("acme"), &json!("reader")), "the access log's fields");
    // the principal travels whole, and decodes to what authentication built
    let principal = scim_core::auth::Principal::from_context(out.context["principal"].as_str().unwrap()).unwrap();
    let direct = app.authenticate(Some(&format!("Bearer {}", reader.token)), Some("203.0.113.10".parse().unwrap())).await.unwrap();
    assert_eq!(principal, direct);
    let wire = serde_json::to_value(&out).unwrap();
    let resources: Vec<String> =
        wire["policyDocument"]["Statement"][0]["Resource"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    assert_eq!(wire["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert!(resources.iter().any(|r| r.ends_with("/GET/scim/v2/Users/*")), "{resources:?}");
    assert!(resources.iter().all(|r| !r.contains("/DELETE/") && !r.contains("/PATCH/")), "a reader gets no write routes: {resources:?}");
    assert!(resources.iter().all(|r| r.starts_with(api_stage.split('/').next().unwrap())));
    // an address outside the tenant's allowlist gets an explicit Deny (API Gateway: 403)
    let allow = scim_core::tenancy::TenantChange { ip_allowlist: Some(vec!["10.0.0.0/8".into()]), ..Default::default() };
    scim_core::tenancy::update_tenant(app.service.layout(), "acme", &allow).await.unwrap();
    let denied = serde_json::to_value(authorize(&app, &typed(&event)).await.unwrap()).unwrap();
    assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny");
    event["requestContext"]["identity"]["sourceIp"] = json!("10.1.2.3");
    let allowed = serde_json::to_value(authorize(&app, &typed(&event)).await.unwrap()).unwrap();
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow");
    event["headers"]["Authorization"] = json!("Bearer scim_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let err = authorize(&app, &typed(&event)).await.unwrap_err();
    assert_eq!(err.to_string(), "Unauthorized");
}

/// A route function reads the principal the authorizer encoded; a context of the authorizer
/// before it (field by field, still in API Gateway's cache during a deploy) reads as the same
/// tenant, key and role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_functions_read_the_encoded_principal_and_the_earlier_context() {
    let app = App::new(Arc::new(EmbeddedTable::in_memory()));
    scim_core::tenancy::create_tenant(app.service.layout(), "local", "local").await.unwrap();
    let text = std::fs::read_to_string(events_dir().join("users-list.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["requestContext"]["authorizer"]["principal"].is_string(), "the sample carries the encoded principal");
    let event = lambda_http::request::from_str(&text).unwrap();
    let p = scim_functions::lambda::principal_of(&event).unwrap();
    assert_eq!((p.tenant_id.as_str(), p.role.as_str(), p.permissions.len()), ("local", "admin", 5));
    let mut legacy = v.clone();
    legacy["requestContext"]["authorizer"] = json!({"tenant_id": "local", "key_id": "k1", "role": "reader"});
    let event = lambda_http::request::from_str(&legacy.to_string()).unwrap();
    let p = scim_functions::lambda::principal_of(&event).unwrap();
    assert_eq!((p.tenant_id.as_str(), p.permissions.clone()), ("local", vec![scim_core::roles::Permission::ScimRead]));
    let resp = scim_functions::lambda::handle(&app, "users-list", event).await;
    assert_eq!(resp.status().as_u16(), 200);
}

/// The Lambda adapter answers a lower-case method as the local server does: 405, nothing
/// created, and the attempt audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_case_method_is_405_in_lambda_too() {
    let app = App::new(Arc::new(EmbeddedTable::in_memory()));
    scim_core::tenancy::create_tenant(app.service.layout(), "local", "local").await.unwrap();
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(events_dir().join("users-create.json")).unwrap()).unwrap();
    v["httpMethod"] = json!("post");
    v["requestContext"]["httpMethod"] = json!("post");
    let event = lambda_http::request::from_str(&v.to_string()).unwrap();
    let resp = scim_functions::lambda::handle(&app, "users-create", event).await;
    assert_eq!(resp.status().as_u16(), 405);
    let listed = app.service.layout().page("local", scim_core::store::layout::Kind::User, None, 10).await.unwrap();
    assert!(listed.is_empty(), "nothing created");
    let day = scim_core::time::now()[..10].to_string();
    let audit = app.service.layout().audit_entries("local", &day).await.unwrap();
    assert_eq!((&audit[0]["method"], &audit[0]["status"]), (&json!("post"), &json!(405)));
}
