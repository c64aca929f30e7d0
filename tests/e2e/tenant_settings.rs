//! Tenant settings enforced at the edge: IP allowlist and suspension (403), request limit (429).

use super::*;
use scim_core::auth::update_tenant;
use scim_tests::both_stores;

both_stores!(ip_allowlist_and_suspension, |srv| {
    let c = srv.tenant_key("guarded", "admin").await;
    let layout = srv.app.layout();
    assert_eq!(c.get("/Users").await.status, 200, "no allowlist: any address");
    update_tenant(layout, "guarded", None, Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]), None).await.unwrap();
    let r = c.get("/Users").await;
    r.assert_error(403, None);
    assert!(r.body["detail"].as_str().unwrap().contains("allowlist"));
    c.post("/Users", &user("blocked@example.com")).await.assert_error(403, None);
    update_tenant(layout, "guarded", None, Some(vec!["10.0.0.0/8".into(), "127.0.0.0/8".into()]), None).await.unwrap();
    assert_eq!(c.post("/Users", &user("allowed@example.com")).await.status, 201);
    update_tenant(layout, "guarded", Some("suspended"), Some(vec![]), None).await.unwrap();
    c.get("/Users").await.assert_error(403, None);
    update_tenant(layout, "guarded", Some("active"), None, None).await.unwrap();
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
    // other tenants are unaffected throughout
    assert_eq!(srv.client.get("/Users").await.status, 200);
});

both_stores!(request_limit_answers_429_with_retry_after, |srv| {
    let c = srv.tenant_key("limited", "admin").await;
    update_tenant(srv.app.layout(), "limited", None, None, Some(3)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.get("/Users").await }));
    }
    let mut limited = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == 429 {
            r.assert_error(429, None);
            assert_eq!(r.header("retry-after"), Some("1"));
            limited += 1;
        } else {
            assert_eq!(r.status, 200);
        }
    }
    assert!(limited >= 1, "12 requests at once against a limit of 3 per second");
    assert_eq!(c.get("/ServiceProviderConfig").await.status, 200, "discovery is not limited");
    assert_eq!(srv.client.get("/Users").await.status, 200, "other tenants are not limited");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(c.get("/Users").await.status, 200, "the next second is a new budget");
});

both_stores!(mutations_are_audited_without_secrets, |srv| {
    let c = &srv.client;
    let id = id_of(&c.post("/Users", &user("audited@example.com")).await.body);
    c.get(&format!("/Users/{id}")).await;
    c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "password", "value": "Secret-Pa55"}]))).await;
    c.post("/Users", &user("audited@example.com")).await; // 409
    c.delete(&format!("/Users/{id}")).await;
    let day = scim_core::time::now()[..10].to_string();
    let entries = srv.app.layout().audit_entries("local", &day).await.unwrap();
    let seen: Vec<(String, u64)> =
        entries.iter().map(|e| (e["method"].as_str().unwrap().to_string(), e["status"].as_u64().unwrap())).collect();
    assert_eq!(seen, vec![("POST".into(), 201), ("PATCH".into(), 200), ("POST".into(), 409), ("DELETE".into(), 204)]);
    assert_eq!(entries[3]["resource_id"], json!(id));
    let key_id = srv.token.split('_').nth(1).unwrap();
    assert_eq!(entries[0]["key_id"], key_id);
    let all = serde_json::to_string(&entries).unwrap();
    assert!(!all.contains(&srv.token) && !all.contains("Secret-Pa55"), "no secrets in the audit log");
    // the key's last use is recorded (sampled, not on every request)
    let keys = scim_core::auth::list_keys(srv.app.layout(), "local").await.unwrap();
    assert!(keys[0]["last_used_at"].is_string());
});
