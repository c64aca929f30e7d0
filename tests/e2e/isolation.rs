//! Tenant isolation: tenant B's key never sees or changes tenant A's users.

use super::*;
use scim_tests::both_stores;

both_stores!(other_tenants_see_nothing_and_change_nothing, |srv| {
    let a = &srv.client;
    let mut body = user("shared.name@example.com");
    body["externalId"] = json!("ext-1");
    let created = a.post("/Users", &body).await;
    let id = id_of(&created.body);
    let path = format!("/Users/{id}");
    let b = srv.tenant_key("tenant-b", "admin").await;

    b.get(&path).await.assert_error(404, None);
    b.put(&path, &user("x@example.com")).await.assert_error(404, None);
    b.patch(&path, &patch_op(json!([{"op": "replace", "path": "active", "value": false}]))).await.assert_error(404, None);
    b.delete(&path).await.assert_error(404, None);
    for f in [
        r#"userName eq "shared.name@example.com""#.to_string(),
        r#"externalId eq "ext-1""#.to_string(),
        format!(r#"id eq "{id}""#),
        "active pr".to_string(),
    ] {
        assert_eq!(b.filter("/Users", &f, "").await.body["totalResults"], 0, "{f}");
    }
    assert_eq!(b.get("/Users").await.body["totalResults"], 0);
    // the same userName and externalId are free in another tenant
    assert_eq!(b.post("/Users", &body).await.status, 201);
    assert_eq!(b.get("/Users").await.body["totalResults"], 1);
    // A is untouched
    let after = a.get(&path).await;
    assert_eq!(after.body, created.body);
    assert_eq!(a.get("/Users").await.body["totalResults"], 1);
});

/// The sessions moto's STS made of `role` (their names, `tenant-<t>`), in order.
fn sessions_of(role: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let addr = scim_tests::moto_endpoint().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).expect("moto");
    write!(s, "GET /moto-api/data.json HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("answer");
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")).expect("moto's state");
    let roles = body["sts"]["AssumedRole"].as_array().cloned().unwrap_or_default();
    roles.iter().filter(|r| r["role_arn"] == role).filter_map(|r| r["session_name"].as_str().map(str::to_string)).collect()
}

/// On DynamoDB with a tenant role, each tenant's requests (through the HTTP edge) are made with
/// an STS session of that role named and tagged for the tenant: one per tenant per process,
/// none for work that acts for no tenant (start-up, the key lookup). What the sessions may
/// reach is IAM's part (infra/iam_check.py: a session reaches its own tenant's items only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_dynamodb_each_tenant_is_served_in_a_session_of_its_own() {
    use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
    let role = format!("arn:aws:iam::123456789012:role/users-get-tenant-{}", scim_tests::uuid_like());
    let cfg = DynamoConfig {
        attempt_timeout: std::time::Duration::from_secs(30),
        operation_timeout: std::time::Duration::from_secs(90),
        tenant_role: Some(role.clone()),
        ..DynamoConfig::new(format!("t{}", scim_tests::uuid_like()), "us-east-1", Some(scim_tests::moto_endpoint()))
    };
    let table = DynamoTable::connect(&cfg).expect("connect");
    table.create_table().await.expect("table");
    let srv =
        scim_tests::Server::start_on(scim_tests::Store::Dynamo, std::sync::Arc::new(table), Default::default()).await.expect("started");
    let b = srv.tenant_key("tenant-b", "admin").await;
    assert_eq!(sessions_of(&role), Vec::<String>::new(), "start-up and key minting act for no tenant");
    assert_eq!(srv.client.post("/Users", &user("a@example.com")).await.status, 201);
    assert_eq!(b.post("/Users", &user("b@example.com")).await.status, 201);
    for _ in 0..3 {
        assert_eq!(srv.client.get("/Users").await.body["totalResults"], 1);
        assert_eq!(b.get("/Users").await.body["totalResults"], 1);
    }
    assert_eq!(sessions_of(&role), ["tenant-local", "tenant-tenant-b"], "one session per tenant, reused");
}
