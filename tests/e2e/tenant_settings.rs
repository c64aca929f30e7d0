//! Tenant settings enforced at the edge: IP allowlist and suspension (403), request limit (429).

use super::*;
use scim_core::tenancy::{TenantChange, update_tenant};

fn allow(cidrs: &[&str]) -> TenantChange {
    TenantChange { ip_allowlist: Some(cidrs.iter().map(|c| c.to_string()).collect()), ..Default::default() }
}

fn status(s: &str) -> TenantChange {
    TenantChange { status: Some(s.into()), ..Default::default() }
}
use scim_tests::both_stores;

both_stores!(ip_allowlist_and_suspension, |srv| {
    let c = srv.tenant_key("guarded", "admin").await;
    let layout = srv.app.service.layout();
    assert_eq!(c.get("/Users").await.status, 200, "no allowlist: any address");
    update_tenant(layout, "guarded", &allow(&["10.0.0.0/8", "2001:db8::/32"])).await.unwrap();
    let r = c.get("/Users").await;
    r.assert_error(403, None);
    assert!(r.body["detail"].as_str().unwrap().contains("allowlist"));
    c.post("/Users", &user("blocked@example.com")).await.assert_error(403, None);
    update_tenant(layout, "guarded", &allow(&["10.0.0.0/8", "127.0.0.0/8"])).await.unwrap();
    assert_eq!(c.post("/Users", &user("allowed@example.com")).await.status, 201);
    update_tenant(layout, "guarded", &TenantChange { ip_allowlist: Some(vec![]), ..status("suspended") }).await.unwrap();
    c.get("/Users").await.assert_error(403, None);
    update_tenant(layout, "guarded", &status("active")).await.unwrap();
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
    // other tenants are unaffected throughout
    assert_eq!(srv.client.get("/Users").await.status, 200);
});

both_stores!(request_limit_answers_429_with_retry_after, |srv| {
    let c = srv.tenant_key("limited", "admin").await;
    update_tenant(srv.app.service.layout(), "limited", &TenantChange { rate_limit: Some(3), ..Default::default() }).await.unwrap();
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

both_stores!(every_mutation_attempt_is_audited_without_secrets, |srv| {
    let c = &srv.client;
    let id = id_of(&c.post("/Users", &user("audited@example.com")).await.body);
    c.get(&format!("/Users/{id}")).await;
    c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "password", "value": "Secret-Pa55"}]))).await;
    c.post("/Users", &user("audited@example.com")).await; // 409
    // methods are case-sensitive: `post` is no route (405, as API Gateway answers), and creates nothing
    let lower = c.send("post", "/Users", Some(&user("lower@example.com").to_string()), &[]).await;
    lower.assert_error(405, None);
    assert_eq!(c.filter("/Users", "userName eq \"lower@example.com\"", "").await.body["totalResults"], 0);
    // a refused attempt (a reader writing) is recorded too
    let reader = srv.tenant_key("local", "reader").await;
    reader.delete(&format!("/Users/{id}")).await.assert_error(403, None);
    c.delete(&format!("/Users/{id}")).await;
    let day = scim_core::time::now()[..10].to_string();
    let entries = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    let seen: Vec<(String, u64)> =
        entries.iter().map(|e| (e["method"].as_str().unwrap().to_string(), e["status"].as_u64().unwrap())).collect();
    let expected: Vec<(String, u64)> =
        [("POST", 201), ("PATCH", 200), ("POST", 409), ("post", 405), ("DELETE", 403), ("DELETE", 204)].map(|(m, s)| (m.into(), s)).into();
    assert_eq!(seen, expected);
    assert_eq!(entries[5]["resource_id"], json!(id));
    assert_eq!((&entries[0]["route"], &entries[3]["route"]), (&json!("users-create"), &Value::Null));
    let key_id = srv.token.split('_').nth(1).unwrap();
    assert_eq!(entries[0]["key_id"], key_id);
    assert_ne!(entries[4]["key_id"], key_id, "the reader's refused delete names the reader's key");
    let all = serde_json::to_string(&entries).unwrap();
    assert!(!all.contains(&srv.token) && !all.contains("Secret-Pa55"), "no secrets in the audit log");
    // the key's last use is recorded (sampled, not on every request)
    let keys = scim_core::tenancy::list_keys(srv.app.service.layout(), "local").await.unwrap();
    assert!(keys[0]["last_used_at"].is_string());
});

both_stores!(role_policy_defaults_falls_back_and_maps_groups, |srv| {
    use scim_core::roles::RolesPolicy;
    use scim_core::tenancy::set_roles_policy;
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
    set_roles_policy(srv.app.service.layout(), "portkey", Some(&policy)).await.unwrap();
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
    use scim_core::roles::Permission;
    use scim_core::tenancy::{create_key, set_custom_role};
    srv.tenant_key("custom", "reader").await; // makes the tenant
    set_custom_role(srv.app.service.layout(), "custom", "syncer", Some(&[Permission::ScimRead, Permission::ScimWrite])).await.unwrap();
    let k = create_key(srv.app.service.layout(), "custom", "syncer", None).await.unwrap();
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
    // the spellings a review found answered 200: each is refused and writes nothing
    let core = "urn:ietf:params:scim:schemas:core:2.0:User";
    let owner = json!([{"value": "owner"}]);
    for body in [
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "Path": "roles", "value": owner}]}),
        json!({"schemas": [PATCH_OP], "OPERATIONS": [{"op": "add", "path": "roles", "value": owner}]}),
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": format!("{core}:roles"), "value": owner}]}),
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "value": {format!("{core}:roles"): owner}}]}),
    ] {
        c.patch(&format!("/Users/{id}"), &body).await.assert_error(403, None);
    }
    let mut urn_member = user("urn@example.com");
    urn_member[format!("{core}:Roles")] = owner.clone();
    c.post("/Users", &urn_member).await.assert_error(403, None);
    let stored = c.get(&format!("/Users/{id}")).await.body;
    assert_eq!((&stored["roles"], &stored["meta"]["version"]), (&Value::Null, &json!("W/\"1\"")));
    assert_eq!(c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "title", "value": "ok"}]))).await.status, 200);
    // a change that leaves roles as they are is not a roles change
    let same = patch_op(json!([{"op": "add", "path": "roles", "value": []}, {"op": "replace", "path": "nickName", "value": "n"}]));
    assert_eq!(c.patch(&format!("/Users/{id}"), &same).await.status, 200);
    // the built-in provisioner may set roles
    let p = srv.tenant_key("custom", "provisioner").await;
    assert_eq!(p.post("/Users", &with_roles).await.status, 201);
    // deleting the custom role leaves its keys with nothing
    set_custom_role(srv.app.service.layout(), "custom", "syncer", None).await.unwrap();
    c.get("/Users").await.assert_error(403, None);
});

both_stores!(settings_over_http_need_their_permissions, |srv| {
    use scim_core::roles::Permission;
    use scim_core::tenancy::{create_key, set_custom_role};
    let admin = &srv.client;
    let s = admin.get("/Settings").await;
    assert_eq!(s.status, 200, "{}", s.raw);
    assert_eq!((s.body["tenant"].as_str(), s.body["deactivation"].as_str()), (Some("local"), Some("remove-memberships")));
    assert_eq!(s.body["ipAllowlist"], json!([]));
    // a provisioner (the key an IdP holds) can neither read nor change settings
    let prov = srv.tenant_key("local", "provisioner").await;
    prov.get("/Settings").await.assert_error(403, None);
    prov.patch("/Settings", &json!({"deactivation": "keep-memberships"})).await.assert_error(403, None);
    prov.put("/Settings/RoleMappings", &json!({"defaultRole": "member", "userRoles": ["member"]})).await.assert_error(403, None);
    // a custom role with only mappings:manage sets role mappings and nothing else
    set_custom_role(srv.app.service.layout(), "local", "mapper", Some(&[Permission::ManageMappings])).await.unwrap();
    let mapper = scim_tests::Client::new(&srv.base, &create_key(srv.app.service.layout(), "local", "mapper", None).await.unwrap().token);
    mapper.get("/Settings/RoleMappings").await.assert_error(404, None);
    let body = json!({"defaultRole": "member", "userRoles": ["member", "admin", "owner"],
        "groupRule": "ws-{workspace}-role-{role}", "groupRoles": ["admin", "manager", "member"]});
    let put = mapper.put("/Settings/RoleMappings", &body).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    assert_eq!(mapper.get("/Settings/RoleMappings").await.body["groupRule"], "ws-{workspace}-role-{role}");
    mapper.get("/Settings").await.assert_error(403, None);
    mapper.patch("/Settings", &json!({"ipAllowlist": []})).await.assert_error(403, None);
    mapper.get("/Users").await.assert_error(403, None);
    mapper
        .put("/Settings/RoleMappings", &json!({"defaultRole": "root", "userRoles": ["member"]}))
        .await
        .assert_error(400, Some("invalidValue"));
    // the mappings apply to the very next request: users sent without roles get the default
    let u = admin.post("/Users", &user("mapped@example.com")).await;
    assert_eq!(u.body["roles"], json!([{"value": "member", "primary": true}]), "{}", u.raw);
    // bad changes are refused whole, with the reason
    admin.patch("/Settings", &json!({"rateLimitPerSecond": 100000})).await.assert_error(400, Some("mutability"));
    admin.patch("/Settings", &json!({"status": "active"})).await.assert_error(400, Some("mutability"));
    admin
        .patch("/Settings", &json!({"ipAllowlist": ["10.0.0.0/8", "not-a-cidr"], "deactivation": "keep-memberships"}))
        .await
        .assert_error(400, Some("invalidValue"));
    admin.patch("/Settings", &json!({"favouriteColour": "blue"})).await.assert_error(400, Some("invalidPath"));
    assert_eq!(admin.get("/Settings").await.body["deactivation"], "remove-memberships", "nothing of a refused change is written");
    let changed = admin.patch("/Settings", &json!({"deactivation": "keep-memberships", "ipAllowlist": ["127.0.0.0/8"]})).await;
    assert_eq!(changed.status, 200, "{}", changed.raw);
    assert_eq!(changed.body["deactivation"], "keep-memberships");
    assert_eq!(changed.body["roleMappings"]["defaultRole"], "member");
    assert_eq!(admin.get("/Users").await.status, 200, "127.0.0.1 is inside the new allowlist");
    // the longest a new key may last: a whole number of days, or null for no limit
    for bad in [json!(0), json!("90"), json!(4000)] {
        admin.patch("/Settings", &json!({"maxKeyLifetimeDays": bad})).await.assert_error(400, Some("invalidValue"));
    }
    assert_eq!(admin.patch("/Settings", &json!({"maxKeyLifetimeDays": 90})).await.body["maxKeyLifetimeDays"], 90);
    let t = admin.get("/Settings").await.body["tenant"].as_str().unwrap().to_string();
    assert!(scim_core::tenancy::create_key(srv.app.service.layout(), &t, "reader", None).await.is_err(), "no key that never expires");
    assert_eq!(admin.patch("/Settings", &json!({"maxKeyLifetimeDays": null})).await.body["maxKeyLifetimeDays"], Value::Null);
    assert!(scim_core::tenancy::create_key(srv.app.service.layout(), &t, "reader", None).await.is_ok());
    // settings belong to the caller's tenant only
    let other = srv.tenant_key("elsewhere", "admin").await;
    let o = other.get("/Settings").await.body;
    assert_eq!((o["tenant"].as_str(), o["deactivation"].as_str()), (Some("elsewhere"), Some("remove-memberships")));
    assert_eq!(mapper.delete("/Settings/RoleMappings").await.status, 204);
    mapper.get("/Settings/RoleMappings").await.assert_error(404, None);
    // every change is in the audit log
    let day = scim_core::time::now()[..10].to_string();
    let entries = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    let settings_writes = entries.iter().filter(|e| e["path"].as_str().is_some_and(|p| p.starts_with("/Settings"))).count();
    assert!(settings_writes >= 9, "{entries:?}");
});

both_stores!(deactivation_policy_decides_what_happens_to_memberships, |srv| {
    let members_of = |c: scim_tests::Client, gid: String| async move {
        let g = c.get(&format!("/Groups/{gid}")).await.body;
        let mut ids: Vec<String> =
            g["members"].as_array().into_iter().flatten().map(|m| m["value"].as_str().unwrap().to_string()).collect();
        ids.sort();
        ids
    };
    let deactivate = json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let add = |uid: &str| patch_op(json!([{"op": "add", "path": "members", "value": [{"value": uid}]}]));
    for (tenant, keep) in [("deprovisions", false), ("suspends", true)] {
        let c = srv.tenant_key(tenant, "admin").await;
        if keep {
            assert_eq!(c.patch("/Settings", &json!({"deactivation": "keep-memberships"})).await.status, 200);
        }
        let a = id_of(&c.post("/Users", &user("a@example.com")).await.body);
        let b = id_of(&c.post("/Users", &user("b@example.com")).await.body);
        let gid = id_of(&c.post("/Groups", &json!({"displayName": "Staff", "members": [{"value": a}]})).await.body);
        // deactivating a member
        assert_eq!(c.patch(&format!("/Users/{a}"), &deactivate).await.status, 200);
        let after = members_of(c.clone(), gid.clone()).await;
        assert_eq!(after, if keep { vec![a.clone()] } else { vec![] }, "{tenant}");
        // adding an inactive user: accepted either way, stored only when memberships are kept
        assert_eq!(c.patch(&format!("/Users/{b}"), &deactivate).await.status, 200);
        assert_eq!(c.patch(&format!("/Groups/{gid}"), &add(&b)).await.status, 204);
        let mut expected = if keep { vec![a.clone(), b.clone()] } else { vec![] };
        expected.sort();
        assert_eq!(members_of(c.clone(), gid.clone()).await, expected, "{tenant}");
        // reactivation: kept memberships are back at once; removed ones stay removed
        let on = c.patch(&format!("/Users/{a}"), &patch_op(json!([{"op": "replace", "path": "active", "value": true}]))).await;
        assert_eq!(on.body["groups"].as_array().map(Vec::len).unwrap_or(0), usize::from(keep), "{tenant}: {}", on.raw);
        // deleting always removes every membership
        assert_eq!(c.delete(&format!("/Users/{a}")).await.status, 204);
        assert!(!members_of(c.clone(), gid.clone()).await.contains(&a), "{tenant}");
    }
});

// A group whose name the role rule reads grants its members a workspace role, so every write
// that changes who holds such a role is a roles change: without `roles:edit` it is 403 and
// writes nothing (a key with only scim:read/scim:write used to make `ws-prod-role-admin` with a
// user in it, and the user gained `admin`). Groups the rule does not read stay free.
both_stores!(roles_reached_through_group_names_need_roles_edit, |srv| {
    use scim_core::roles::{Permission, RolesPolicy};
    use scim_core::tenancy::{create_key, set_custom_role, set_roles_policy};
    const ACCESS: &str = "urn:scim-serverless:schemas:extension:access:1.0:User";
    let admin = srv.tenant_key("ws", "admin").await;
    let policy = RolesPolicy {
        default_role: "member".into(),
        user_roles: vec!["member".into(), "admin".into()],
        group_rule: Some("ws-{workspace}-role-{role}".into()),
        group_roles: vec!["admin".into(), "member".into()],
    };
    set_roles_policy(srv.app.service.layout(), "ws", Some(&policy)).await.unwrap();
    set_custom_role(srv.app.service.layout(), "ws", "syncer", Some(&[Permission::ScimRead, Permission::ScimWrite])).await.unwrap();
    let k = create_key(srv.app.service.layout(), "ws", "syncer", None).await.unwrap();
    let syncer = scim_tests::Client::new(&srv.base, &k.token);
    let uid = id_of(&syncer.post("/Users", &user("eve@example.com")).await.body);
    let member = |u: &str| json!([{"value": u}]);
    let effective = || async {
        let u = admin.get(&format!("/Users/{uid}")).await.body;
        u[ACCESS]["effectiveRoles"].as_array().cloned().unwrap_or_default().iter().filter(|r| r.get("workspace").is_some()).count()
    };
    // a create with a member, under a granting name: refused, and nothing is made
    let g = json!({"displayName": "ws-prod-role-admin", "members": member(&uid)});
    syncer.post("/Groups", &g).await.assert_error(403, None);
    assert_eq!(admin.filter("/Groups", r#"displayName eq "ws-prod-role-admin""#, "").await.body["totalResults"], 0);
    // an empty granting group, or any group the rule does not read, may be made
    let empty = id_of(&syncer.post("/Groups", &json!({"displayName": "ws-prod-role-member"})).await.body);
    let plain = id_of(&syncer.post("/Groups", &json!({"displayName": "Engineering", "members": member(&uid)})).await.body);
    // adding a member to a granting group, by any PATCH form: refused
    let add = patch_op(json!([{"op": "add", "path": "members", "value": member(&uid)}]));
    syncer.patch(&format!("/Groups/{empty}"), &add).await.assert_error(403, None);
    let add = patch_op(json!([{"op": "add", "value": {"members": member(&uid)}}]));
    syncer.patch(&format!("/Groups/{empty}"), &add).await.assert_error(403, None);
    let put = json!({"displayName": "ws-prod-role-member", "members": member(&uid)});
    syncer.put(&format!("/Groups/{empty}"), &put).await.assert_error(403, None);
    // renaming a group with members into the rule: refused; out of it, with members: refused
    let rename = |n: &str| patch_op(json!([{"op": "replace", "path": "displayName", "value": n}]));
    syncer.patch(&format!("/Groups/{plain}"), &rename("ws-prod-role-admin")).await.assert_error(403, None);
    assert_eq!(effective().await, 0, "no workspace role was granted");
    // a key with roles:edit may; then the syncer may neither remove the member nor delete the group
    assert_eq!(admin.patch(&format!("/Groups/{plain}"), &rename("ws-prod-role-admin")).await.status, 204);
    assert_eq!(effective().await, 1);
    let remove = patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]));
    syncer.patch(&format!("/Groups/{plain}"), &remove).await.assert_error(403, None);
    syncer.patch(&format!("/Groups/{plain}"), &rename("Engineering")).await.assert_error(403, None);
    syncer.delete(&format!("/Groups/{plain}")).await.assert_error(403, None);
    assert_eq!(effective().await, 1, "nothing was written");
    // changes that grant nothing new pass: re-adding a present member, a non-granting attribute
    let readd = patch_op(json!([{"op": "add", "path": "members", "value": member(&uid)}]));
    assert_eq!(syncer.patch(&format!("/Groups/{plain}"), &readd).await.status, 204);
    let ext = patch_op(json!([{"op": "replace", "path": "externalId", "value": "x-1"}]));
    assert_eq!(syncer.patch(&format!("/Groups/{plain}"), &ext).await.status, 204);
    // and the refusals are in the audit log
    let day = &scim_core::time::now()[..10];
    let log = srv.app.service.layout().audit_entries("ws", day).await.unwrap();
    assert!(log.iter().filter(|e| e["key_id"] == k.key_id.as_str() && e["status"] == 403).count() >= 7, "{log:?}");
});
