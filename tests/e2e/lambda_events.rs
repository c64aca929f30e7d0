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
            "users-list" | "users-search" | "groups-list" | "groups-search" | "search" | "discovery" | "settings" | "bulk" => status == 200,
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
    assert!(resources.iter().all(|r| !r.contains("{type}")), "no declared type: no such routes: {resources:?}");
    // a declared type: its endpoint, spelled out (a wildcard would match every other path too)
    let widget = json!({"name": "Widget", "endpoint": "/Widgets", "schema": "urn:acme:Widget", "schemaDefinitions": [
        {"id": "urn:acme:Widget", "attributes": [{"name": "serial", "type": "string"}]}]});
    scim_core::declarations::put_type(app.service.layout(), "acme", "Widget", &widget).await.unwrap();
    let wire = serde_json::to_value(authorize(&app, &typed(&event)).await.unwrap()).unwrap();
    let resources: Vec<&str> =
        wire["policyDocument"]["Statement"][0]["Resource"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(
        resources.iter().any(|r| r.ends_with("/GET/scim/v2/Widgets/*"))
            && resources.iter().any(|r| r.ends_with("/POST/scim/v2/Widgets/.search"))
    );
    assert!(resources.iter().all(|r| !r.contains("{type}")), "{resources:?}");
    assert!(!resources.iter().any(|r| r.ends_with("/POST/scim/v2/Widgets")), "a reader may not create: {resources:?}");
    // an address outside the tenant's allowlist gets an explicit Deny (API Gateway: 403)
    let allow = scim_core::tenancy::TenantChange { ip_allowlist: Some(vec!["10.0.0.0/8".into()]), ..Default::default() };
    scim_core::tenancy::update_tenant(app.service.layout(), "acme", &allow).await.unwrap();
    let denied = serde_json::to_value(authorize(&app, &typed(&event)).await.unwrap()).unwrap();
    assert_eq!(denied["policyDocument"]["Statement"][0]["Effect"], "Deny");
    event["requestContext"]["identity"]["sourceIp"] = json!("10.1.2.3");
    let allowed = serde_json::to_value(authorize(&app, &typed(&event)).await.unwrap()).unwrap();
    assert_eq!(allowed["policyDocument"]["Statement"][0]["Effect"], "Allow");
    event["headers"]["Authorization"] = json!("Bearer scim_acme.0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
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

/// A P-256 signing key made on moto's KMS (the stand-in the DynamoDB tests use).
async fn kms_key(endpoint: &str) -> String {
    let creds = aws_credential_types::Credentials::new("local", "local", None, None, "test");
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("eu-west-1"))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .build();
    let out = aws_sdk_kms::Client::from_conf(conf)
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .expect("a KMS key on moto");
    out.key_metadata().expect("metadata").arn().expect("an ARN").to_string()
}

fn lambda_body(resp: &lambda_http::Response<lambda_http::Body>) -> Value {
    match resp.body() {
        lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::Null),
        lambda_http::Body::Binary(b) => serde_json::from_slice(b).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// The token function signs with a KMS key (moto's) through the real Lambda adapter; the
/// authorizer, through its adapter, verifies the token with the key's public half and answers
/// with the client's tenant and role; the JWKS is the key's; a revoked client's token is 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_in_kms_pass_the_authorizer_through_the_lambda_adapters() {
    use scim_functions::authorizer::{AuthorizerRequest, authorize};
    let endpoint = scim_tests::moto_endpoint();
    let arn = kms_key(&endpoint).await;
    let keys = scim_functions::kms::KmsKeys::connect(&arn, "eu-west-1", Some(&endpoint)).expect("KMS keys");
    let table: Arc<dyn scim_core::store::Table> = Arc::new(EmbeddedTable::in_memory());
    let service = scim_core::service::Service::over(table.clone()).with_signing_keys(Arc::new(keys));
    let app = App::new(service);
    scim_core::tenancy::create_tenant(app.service.layout(), "acme", "Acme").await.unwrap();
    let client = scim_core::oauth::create_client(app.service.layout(), "acme", "provisioner", None).await.unwrap();
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(events_dir().join("oauth-token.json")).unwrap()).unwrap();
    event["body"] = json!(format!("grant_type=client_credentials&client_id={}&client_secret={}", client.client_id, client.secret));
    let resp = scim_functions::lambda::token(&app, lambda_http::request::from_str(&event.to_string()).unwrap()).await;
    let body = lambda_body(&resp);
    assert_eq!(resp.status().as_u16(), 200, "{body}");
    assert_eq!(resp.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    let token = body["access_token"].as_str().expect("a token").to_string();
    let claims: Value = serde_json::from_slice(&scim_core::crypto::b64_decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], "https://abcdefghij.execute-api.eu-west-1.amazonaws.com/v1/scim/v2");
    // the sample event's own (made-up) client is refused as RFC 6749 says
    let sample = scim_functions::lambda::token(
        &app,
        lambda_http::request::from_str(&std::fs::read_to_string(events_dir().join("oauth-token.json")).unwrap()).unwrap(),
    )
    .await;
    assert_eq!((sample.status().as_u16(), lambda_body(&sample)["error"].as_str()), (401, Some("invalid_client")));
    // the JWKS is the KMS key's public half, under the kid the token names
    event["httpMethod"] = json!("GET");
    event["path"] = json!("/.well-known/jwks.json");
    event["body"] = Value::Null;
    let jwks = lambda_body(&scim_functions::lambda::token(&app, lambda_http::request::from_str(&event.to_string()).unwrap()).await);
    let kid = scim_core::jwt::header(&token).unwrap().kid.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], json!(kid), "{jwks}");

    // the authorizer, in a process of its own (its own app, the same key): Allow, as the client
    let keys = scim_functions::kms::KmsKeys::connect(&arn, "eu-west-1", Some(&endpoint)).unwrap();
    let authorizer = App::new(scim_core::service::Service::over(table).with_signing_keys(Arc::new(keys)));
    let mut auth_event: Value = serde_json::from_str(&std::fs::read_to_string(events_dir().join("authorizer.json")).unwrap()).unwrap();
    auth_event["headers"]["Authorization"] = json!(format!("Bearer {token}"));
    let typed = |v: &Value| serde_json::from_value::<AuthorizerRequest>(v.clone()).unwrap();
    let out = authorize(&authorizer, &typed(&auth_event)).await.unwrap();
    assert_eq!(
        (&out.context["tenant_id"], &out.context["key_id"], &out.context["role"]),
        (&json!("acme"), &json!(client.client_id), &json!("provisioner"))
    );
    let wire = serde_json::to_value(&out).unwrap();
    assert_eq!(wire["policyDocument"]["Statement"][0]["Effect"], "Allow");
    // another host: another audience, refused
    let mut elsewhere = auth_event.clone();
    elsewhere["headers"]["Host"] = json!("scim.other.example");
    assert_eq!(authorize(&authorizer, &typed(&elsewhere)).await.unwrap_err().to_string(), "Unauthorized");
    // revoked: refused from the next authorizer run
    scim_core::oauth::revoke(app.service.layout(), &client.client_id, None).await.unwrap();
    assert_eq!(authorize(&authorizer, &typed(&auth_event)).await.unwrap_err().to_string(), "Unauthorized");
}

fn canaries_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/hooks/canary")
}

/// What one PreTraffic canary gets from the real function: (status, content type, JSON body) of a
/// route, or the authorizer's error message, or the events function's payload.
async fn canary_answer(app: &App, function: &str, event: &Value) -> (Option<u16>, Option<String>, Value) {
    match function {
        "authorizer" => {
            let req = serde_json::from_value(event.clone()).expect("an authorizer event");
            match scim_functions::authorizer::authorize(app, &req).await {
                Ok(policy) => (None, None, serde_json::to_value(policy).unwrap()),
                Err(e) => (None, Some(e.to_string()), Value::Null),
            }
        }
        "events" => {
            let batch: scim_functions::events::Batch = serde_json::from_value(event.clone()).expect("a pipe batch");
            (None, None, scim_functions::events::enrich(&batch))
        }
        _ => {
            let event = lambda_http::request::from_str(&event.to_string()).unwrap_or_else(|e| panic!("{function}: {e}"));
            let resp = match function {
                "portal" => scim_functions::lambda::portal(app, event).await,
                "oauth-token" => scim_functions::lambda::token(app, event).await,
                f => scim_functions::lambda::handle(app, f, event).await,
            };
            let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
            let body = match resp.body() {
                lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
                _ => Value::Null,
            };
            (Some(resp.status().as_u16()), ct, body)
        }
    }
}

/// Whether an answer is what one expectation of a canary says (the hook's `judge`).
fn canary_problem(expect: &Value, (status, ct_or_error, body): &(Option<u16>, Option<String>, Value)) -> Result<(), String> {
    let got = format!("got {status:?} {ct_or_error:?} {body}");
    let check = |ok: bool, what: &str| if ok { Ok(()) } else { Err(format!("{what}: {got}")) };
    if let Some(want) = expect["status"].as_u64() {
        check(*status == Some(want as u16), "status")?;
    }
    if let Some(want) = expect["content_type"].as_str() {
        check(ct_or_error.as_deref() == Some(want), "content type")?;
    }
    if let Some(want) = expect["error_message"].as_str() {
        check(ct_or_error.as_deref() == Some(want), "error message")?;
    }
    if let Some(want) = expect.get("payload") {
        check(body == want, "payload")?;
    }
    for (k, want) in expect["body"].as_object().into_iter().flatten() {
        check(&body[k] == want, &format!("body.{k}"))?;
    }
    Ok(())
}

/// Every PreTraffic canary (infra/hooks/canary, what the hook sends a new version before it takes
/// traffic) gets exactly the answer the hook expects from today's code, on both stores, and none
/// of them makes a change: no change event, no user or group in the canary tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pretraffic_canary_gets_its_expected_answer_and_changes_nothing() {
    use scim_tests::{Store, fresh_table};
    let mut names: Vec<String> =
        std::fs::read_dir(canaries_dir()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let routes: BTreeSet<&str> = ROUTES.iter().map(|r| r.function).collect();
    for f in routes.iter().copied().chain(["authorizer", "events", "portal", "oauth-token"]) {
        assert!(names.contains(&format!("{f}.json")), "{f} has no canary: its deployments would fail the hook");
    }
    for store in [Store::Embedded, Store::Dynamo] {
        let events = Arc::new(std::sync::Mutex::new(Vec::new()));
        let app = App::new(fresh_table(store, Some(events.clone())).await);
        // a deployment as scim-admin leaves it: the portal's link seal made, another tenant in use
        app.service.layout().ensure_seal().await.unwrap();
        scim_core::tenancy::create_tenant(app.service.layout(), "other", "Other").await.unwrap();
        for name in &names {
            let canary: Value = serde_json::from_str(&std::fs::read_to_string(canaries_dir().join(name)).unwrap()).unwrap();
            let function = name.trim_end_matches(".json");
            let answer = canary_answer(&app, function, &canary["event"]).await;
            let alternatives = canary["expect"].as_array().cloned().unwrap_or_else(|| vec![canary["expect"].clone()]);
            let problems: Vec<String> = alternatives.iter().filter_map(|e| canary_problem(e, &answer).err()).collect();
            assert!(problems.len() < alternatives.len(), "{store:?} {function}: {problems:?}");
        }
        assert!(events.lock().unwrap().is_empty(), "{store:?}: a canary made a change: {:?}", events.lock().unwrap());
        // a deployment where no scim-admin command has run yet: the portal has no seal to check
        // a link with, and says so (the canary's other answer)
        let fresh = App::new(fresh_table(store, None).await);
        let portal: Value = serde_json::from_str(&std::fs::read_to_string(canaries_dir().join("portal.json")).unwrap()).unwrap();
        let (status, _, body) = canary_answer(&fresh, "portal", &portal["event"]).await;
        assert_eq!((status, &body["status"]), (Some(503), &json!("503")), "{body}");
        assert!(canary_problem(&portal["expect"][1], &(status, Some("application/scim+json".into()), body.clone())).is_ok(), "{body}");
        // the canary tenant's own partition (its users, groups, resources, claims) stays empty
        let held = app.service.layout().list_records("TENANT#pretraffic-canary", "", 10).await.unwrap();
        assert!(held.is_empty(), "{store:?}: a canary wrote {held:?}");
    }
}

/// Every answer path of the Lambda adapter counts the 5xx it answers in `ServerErrors` (what the
/// `<Fn>ServerErrorsAlarm`s roll a deployment back on): a route, the portal and the token
/// endpoint, each made to fail by its store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_path_counts_its_server_errors() {
    use scim_core::store::StoreError;
    use scim_core::store::metered::Metered;
    use scim_functions::metrics::server_errors_counted;
    let metered = Arc::new(Metered::new(Arc::new(EmbeddedTable::in_memory())));
    let app = App::new(metered.clone());
    scim_core::tenancy::create_tenant(app.service.layout(), "local", "local").await.unwrap();
    app.service.layout().ensure_seal().await.unwrap();
    let event = |function: &str| -> Value {
        let text = std::fs::read_to_string(canaries_dir().join(format!("{function}.json"))).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["event"].clone()
    };
    for function in ["users-get", "portal", "oauth-token"] {
        let before = server_errors_counted(function);
        // an answer that is no failure counts nothing
        let (ok, _, _) = canary_answer(&app, function, &event(function)).await;
        assert!(ok.is_some_and(|s| s < 500), "{function}: {ok:?}");
        assert_eq!(server_errors_counted(function), before, "{function}: a 4xx is not a server error");
        for _ in 0..8 {
            metered.fail_next(StoreError::unavailable("injected"));
        }
        let (failed, _, _) = canary_answer(&app, function, &event(function)).await;
        assert!(failed.is_some_and(|s| s >= 500), "{function}: the store failing is a 5xx, got {failed:?}");
        assert_eq!(server_errors_counted(function), before + 1, "{function}: its 5xx is counted once");
        let _ = metered.clear_faults();
    }
}

/// Behind an HTTP API (`ApiType=HTTP`, payload format 2.0, functions/events/http/): the
/// authorizer always lets the request through with the principal or its refusal in the context,
/// and the route function answers the refusal as the SCIM Error a REST API's gateway responses
/// give — 401 with `WWW-Authenticate`, 403, 503 with `Retry-After` — and a route the key's role
/// does not cover as its own 403, since an HTTP API has no policy to stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_http_api_refusals_are_scim_errors_from_the_route_function() {
    use scim_functions::authorizer::answer;
    let app = App::new(Arc::new(EmbeddedTable::in_memory()));
    scim_core::tenancy::create_tenant(app.service.layout(), "acme", "Acme").await.unwrap();
    let reader = scim_core::tenancy::create_key(app.service.layout(), "acme", "reader", None).await.unwrap();
    let read =
        |name: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(events_dir().join("http").join(name)).unwrap()).unwrap() };
    let mut auth = read("authorizer.json");
    auth["headers"]["authorization"] = json!(format!("Bearer {}", reader.token));
    let allowed = answer(&app, auth.clone()).await.unwrap();
    assert_eq!(
        (&allowed["isAuthorized"], &allowed["context"]["tenant_id"], &allowed["context"]["role"]),
        (&json!(true), &json!("acme"), &json!("reader"))
    );
    let principal = scim_core::auth::Principal::from_context(allowed["context"]["principal"].as_str().unwrap()).unwrap();
    assert_eq!(principal.tenant_id, "acme");
    // the route function, given what the authorizer answered
    let route = |context: &Value, method: &str, path: &str| {
        let mut e = read("users-list.json");
        e["requestContext"]["authorizer"]["lambda"] = context.clone();
        e["requestContext"]["http"]["method"] = json!(method);
        e["rawPath"] = json!(format!("/v1/scim/v2{path}"));
        e["rawQueryString"] = json!("");
        lambda_http::request::from_str(&e.to_string()).unwrap()
    };
    let resp = scim_functions::lambda::handle(&app, "users-list", route(&allowed["context"], "GET", "/Users")).await;
    assert_eq!(resp.status().as_u16(), 200, "{:?}", lambda_body(&resp));
    let listed = lambda_body(&resp);
    assert_eq!(listed["totalResults"], 0);
    // the reader's role does not cover DELETE: the route function refuses it, nothing deleted
    let resp = scim_functions::lambda::handle(&app, "users-delete", route(&allowed["context"], "DELETE", "/Users/u1")).await;
    assert_eq!((resp.status().as_u16(), lambda_body(&resp)["status"].clone()), (403, json!("403")));
    // a refused key: the authorizer still answers isAuthorized (an HTTP API's own 401 is no SCIM
    // Error), and the route function answers 401 with WWW-Authenticate
    auth["headers"]["authorization"] = json!("Bearer scim_acme.0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let refused = answer(&app, auth.clone()).await.unwrap();
    assert_eq!((&refused["isAuthorized"], &refused["context"]), (&json!(true), &json!({"refusal": "401"})), "no principal in a refusal");
    let resp = scim_functions::lambda::handle(&app, "users-list", route(&refused["context"], "GET", "/Users")).await;
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers().get("content-type").unwrap(), "application/scim+json");
    assert!(resp.headers().get("www-authenticate").is_some());
    assert_eq!(lambda_body(&resp)["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    // an address outside the tenant's allowlist: 403
    let allow = scim_core::tenancy::TenantChange { ip_allowlist: Some(vec!["10.0.0.0/8".into()]), ..Default::default() };
    scim_core::tenancy::update_tenant(app.service.layout(), "acme", &allow).await.unwrap();
    auth["headers"]["authorization"] = json!(format!("Bearer {}", reader.token));
    let outside = answer(&app, auth.clone()).await.unwrap();
    assert_eq!(outside["context"], json!({"refusal": "403"}));
    let resp = scim_functions::lambda::handle(&app, "users-list", route(&outside["context"], "GET", "/Users")).await;
    assert_eq!((resp.status().as_u16(), lambda_body(&resp)["status"].clone()), (403, json!("403")));
    // undecided (the store failed): 503 with Retry-After, never a 401 that makes an IdP give up
    let resp = scim_functions::lambda::handle(&app, "users-list", route(&json!({"refusal": "503"}), "GET", "/Users")).await;
    assert_eq!(
        (resp.status().as_u16(), resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string())),
        (503, Some("5".into()))
    );
    // the REST API's event is still answered by the same binary
    let mut rest: Value = serde_json::from_str(&std::fs::read_to_string(events_dir().join("authorizer.json")).unwrap()).unwrap();
    rest["headers"]["Authorization"] = json!(format!("Bearer {}", reader.token));
    rest["requestContext"]["identity"]["sourceIp"] = json!("10.1.2.3");
    let policy = answer(&app, rest).await.unwrap();
    assert_eq!(policy["policyDocument"]["Statement"][0]["Effect"], "Allow");
}

/// A store failure in the authorizer behind an HTTP API is a refusal of 503 (not a 401), and it
/// is counted in the authorizer's `ServerErrors`, since Lambda sees no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_an_http_api_an_undecided_key_is_503_and_counted() {
    use scim_core::store::StoreError;
    let metered = Arc::new(scim_core::store::metered::Metered::new(Arc::new(EmbeddedTable::in_memory())));
    let app = App::new(metered.clone());
    scim_core::tenancy::create_tenant(app.service.layout(), "acme", "Acme").await.unwrap();
    let key = scim_core::tenancy::create_key(app.service.layout(), "acme", "reader", None).await.unwrap();
    for _ in 0..8 {
        metered.fail_next(StoreError::unavailable("injected"));
    }
    let mut auth: Value =
        serde_json::from_str(&std::fs::read_to_string(events_dir().join("http").join("authorizer.json")).unwrap()).unwrap();
    auth["headers"]["authorization"] = json!(format!("Bearer {}", key.token));
    let before = scim_functions::metrics::server_errors_counted("authorizer");
    let out = scim_functions::authorizer::answer(&app, auth).await.unwrap();
    assert_eq!(out["context"], json!({"refusal": "503"}));
    assert_eq!(scim_functions::metrics::server_errors_counted("authorizer"), before + 1);
}
