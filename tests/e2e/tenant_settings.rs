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

both_stores!(role_policy_defaults_falls_back_and_maps_groups, |srv| {
    use scim_core::auth::{RolesPolicy, set_roles_policy};
    const ACCESS: &str = "urn:scim-serverless:schemas:extension:access:1.0:User";
    // without a policy users carry no roles and no access extension
    let plain = srv.client.post("/Users", &user("plain@example.com")).await;
    assert!(plain.body.get("roles").is_none() && plain.body.get(ACCESS).is_none());

    let c = srv.tenant_key("portkey", "admin").await;
    let policy = RolesPolicy {
        default_role: "member".into(),
        user_roles: vec!["member".into(), "admin".into(), "owner".into()],
        group_rule: Some("ws-{workspace}-role-{role}".into()),
        group_roles: vec!["admin".into(), "manager".into(), "member".into()],
    };
    set_roles_policy(srv.app.layout(), "portkey", Some(&policy)).await.unwrap();
    let c = scim_tests::Client::new(&c.base, &c.token);
    let a = c.post("/Users", &user("a@example.com")).await;
    assert_eq!(a.body["roles"], json!([{"value": "member", "primary": true}]), "{}", a.raw);
    let mut b = user("b@example.com");
    b["roles"] = json!([{"value": "Admin"}, {"value": "superuser"}]);
    let b = c.post("/Users", &b).await;
    assert_eq!(b.body["roles"], json!([{"value": "admin"}, {"value": "member"}]), "outside values fall back to the default");
    let uid = id_of(&a.body);
    for name in ["ws-acme-role-admin", "ws-beta-role-member", "ws-beta-role-manager", "Engineering"] {
        let g = c.post("/Groups", &json!({"displayName": name, "members": [{"value": uid}]})).await;
        assert_eq!(g.status, 201, "{}", g.raw);
    }
    let u = c.get(&format!("/Users/{uid}")).await.body;
    let mut eff: Vec<(String, String)> = u[ACCESS]["effectiveRoles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["workspace"].as_str().unwrap_or("").to_string(), r["value"].as_str().unwrap().to_string()))
        .collect();
    eff.sort();
    assert_eq!(eff, vec![("".into(), "member".into()), ("acme".into(), "admin".into()), ("beta".into(), "manager".into())]);
    assert!(u["schemas"].as_array().unwrap().contains(&json!(ACCESS)));
    // discovery describes the extension to this tenant (and only to tenants with a policy)
    assert_eq!(c.get("/Schemas").await.body["totalResults"], 4);
    assert_eq!(c.get(&format!("/Schemas/{ACCESS}")).await.status, 200);
    assert_eq!(srv.client.get(&format!("/Schemas/{ACCESS}")).await.status, 404);
    // deactivation: memberships go, and with them every effective role
    let off = c.patch(&format!("/Users/{uid}"), &patch_op(json!([{"op": "replace", "value": {"active": false}}]))).await;
    assert_eq!(off.body[ACCESS]["effectiveRoles"], json!([]));
    // lists include the extension when asked for it
    let l = c.get(&format!("/Users?attributes=userName,{ACCESS}:effectiveRoles&filter=userName%20eq%20%22b@example.com%22")).await;
    assert_eq!(l.body["Resources"][0][ACCESS]["effectiveRoles"][0]["value"], "admin", "{}", l.raw);
});

both_stores!(custom_roles_and_the_roles_edit_permission, |srv| {
    use scim_core::auth::{Permission, create_key, set_custom_role};
    srv.tenant_key("custom", "reader").await; // makes the tenant
    set_custom_role(srv.app.layout(), "custom", "syncer", Some(&[Permission::ScimRead, Permission::ScimWrite])).await.unwrap();
    let k = create_key(srv.app.layout(), "custom", "syncer", None).await.unwrap();
    let c = scim_tests::Client::new(&srv.base, &k.token);
    let id = id_of(&c.post("/Users", &user("sync@example.com")).await.body);
    let mut with_roles = user("roles@example.com");
    with_roles["roles"] = json!([{"value": "admin"}]);
    c.post("/Users", &with_roles).await.assert_error(403, None);
    c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "add", "path": "roles", "value": [{"value": "admin"}]}])))
        .await
        .assert_error(403, None);
    c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "value": {"roles": [{"value": "admin"}]}}])))
        .await
        .assert_error(403, None);
    assert_eq!(c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "title", "value": "ok"}]))).await.status, 200);
    // the built-in provisioner may set roles
    let p = srv.tenant_key("custom", "provisioner").await;
    assert_eq!(p.post("/Users", &with_roles).await.status, 201);
    // deleting the custom role leaves its keys with nothing
    set_custom_role(srv.app.layout(), "custom", "syncer", None).await.unwrap();
    c.get("/Users").await.assert_error(403, None);
});
