//! `POST /Bulk` (RFC 7644 §3.7) through the HTTP edge, on both stores: bulkId references in
//! dependency order, a circular reference broken as §3.7.1 says, failOnErrors, per-operation
//! permissions and audit (each operation is the request it would be alone), and the limits.

use super::*;
use scim_tests::{Client, both_stores};

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

fn bulk(ops: Value) -> Value {
    json!({"schemas": [BULK], "Operations": ops})
}

fn op(method: &str, path: &str, bulk_id: Option<&str>, data: Option<Value>) -> Value {
    let mut o = json!({"method": method, "path": path});
    if let Some(b) = bulk_id {
        o["bulkId"] = json!(b);
    }
    if let Some(d) = data {
        o["data"] = d;
    }
    o
}

both_stores!(bulk_ids_resolve_in_dependency_order, |srv| {
    let c = &srv.client;
    // the group comes first but references users made later in the request
    let body = bulk(json!([
        op(
            "POST",
            "/Groups",
            Some("g1"),
            Some(json!({"displayName": "Bulk team", "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]}))
        ),
        op("POST", "/Users", Some("u1"), Some(user("bulk.one@example.com"))),
        op("POST", "/Users", Some("u2"), Some(user("bulk.two@example.com"))),
        op("PATCH", "/Users/bulkId:u2", None, Some(patch_op(json!([{"op": "replace", "path": "displayName", "value": "Two"}])))),
    ]));
    let r = c.post("/Bulk", &body).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"]));
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4, "{}", r.raw);
    let by = |b: &str| ops.iter().find(|o| o["bulkId"] == b).unwrap_or_else(|| panic!("{b} in {}", r.raw)).clone();
    for b in ["g1", "u1", "u2"] {
        assert_eq!(by(b)["status"], "201", "{}", r.raw);
        assert!(by(b)["location"].as_str().is_some_and(|l| l.starts_with(&srv.base)) && by(b)["version"].is_string(), "{}", r.raw);
    }
    let patched = ops.iter().find(|o| o["method"] == "PATCH").unwrap();
    assert_eq!(patched["status"], "200", "{}", r.raw);
    // the references are real ids now
    let group = c.get(by("g1")["location"].as_str().unwrap().strip_prefix(&srv.base).unwrap()).await;
    let members: Vec<String> = group.body["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap().to_string()).collect();
    let ids: Vec<String> =
        ["u1", "u2"].iter().map(|b| by(b)["location"].as_str().unwrap().rsplit('/').next().unwrap().to_string()).collect();
    assert_eq!(members.len(), 2);
    assert!(ids.iter().all(|i| members.contains(i)), "{members:?} {ids:?}");
    assert_eq!(c.get(&format!("/Users/{}", ids[1])).await.body["displayName"], "Two");
    // each operation is in the activity log as the request it would be alone
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    assert!(audit.iter().any(|e| e["route"] == "groups-create" && e["status"] == 201), "{audit:?}");
    assert_eq!(audit.iter().filter(|e| e["route"] == "users-create" && e["status"] == 201).count(), 2);
    assert!(audit.iter().any(|e| e["route"] == "bulk" && e["status"] == 200));
    // advertised
    let spc = c.get("/ServiceProviderConfig").await;
    assert_eq!(spc.body["bulk"], json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 1048576}));
});

both_stores!(a_circular_reference_is_created_then_patched, |srv| {
    let c = &srv.client;
    let ent = ENTERPRISE;
    let with_manager = |name: &str, manager: &str| {
        let mut u = user(name);
        u["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ent]);
        u[ent] = json!({"manager": {"value": manager}});
        u
    };
    let body = bulk(json!([
        op("POST", "/Users", Some("a"), Some(with_manager("circle.a@example.com", "bulkId:b"))),
        op("POST", "/Users", Some("b"), Some(with_manager("circle.b@example.com", "bulkId:a"))),
    ]));
    let r = c.post("/Bulk", &body).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let ops = r.body["Operations"].as_array().unwrap();
    assert!(ops.iter().all(|o| o["status"] == "201"), "{}", r.raw);
    let id = |b: &str| ops.iter().find(|o| o["bulkId"] == b).unwrap()["location"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let (a, b) = (id("a"), id("b"));
    assert_eq!(c.get(&format!("/Users/{a}")).await.body[ent]["manager"]["value"], json!(b), "A's manager was added once B existed");
    assert_eq!(c.get(&format!("/Users/{b}")).await.body[ent]["manager"]["value"], json!(a));
});

both_stores!(fail_on_errors_stops_and_each_operation_keeps_its_own_outcome, |srv| {
    let c = &srv.client;
    c.post("/Users", &user("taken@example.com")).await;
    let body = json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
        op("POST", "/Users", Some("ok"), Some(user("fine@example.com"))),
        op("POST", "/Users", Some("dup"), Some(user("taken@example.com"))),
        op("POST", "/Users", Some("never"), Some(user("never@example.com"))),
    ]});
    let r = c.post("/Bulk", &body).await;
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 2, "the request stops at the first error: {}", r.raw);
    assert_eq!((ops[0]["status"].as_str(), ops[1]["status"].as_str()), (Some("201"), Some("409")));
    assert_eq!(ops[1]["response"]["scimType"], "uniqueness", "{}", r.raw);
    assert_eq!(c.filter("/Users", r#"userName eq "never@example.com""#, "").await.body["totalResults"], 0);
    // without failOnErrors every operation runs; a stale version is 412, a missing id 404
    let id = id_of(&c.post("/Users", &user("versioned@example.com")).await.body);
    let r = c
        .post(
            "/Bulk",
            &bulk(json!([
                {"method": "PUT", "path": format!("/Users/{id}"), "version": "W/\"999\"", "data": user("versioned@example.com")},
                op("DELETE", "/Users/no-such-user", None, None),
                op("DELETE", &format!("/Users/{id}"), None, None),
            ])),
        )
        .await;
    let statuses: Vec<&str> = r.body["Operations"].as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["412", "404", "204"], "{}", r.raw);
});

both_stores!(permissions_and_limits_hold_per_operation, |srv| {
    let layout = srv.app.service.layout();
    use scim_core::roles::Permission::{ScimRead, ScimWrite};
    scim_core::tenancy::set_custom_role(layout, "local", "writer", Some(&[ScimRead, ScimWrite])).await.unwrap();
    let k = scim_core::tenancy::create_key(layout, "local", "writer", None).await.unwrap();
    let writer = Client::new(&srv.base, &k.token);
    let mut with_roles = user("roles@example.com");
    with_roles["roles"] = json!([{"value": "admin"}]);
    let r = writer
        .post(
            "/Bulk",
            &bulk(json!([
                op("POST", "/Users", Some("plain"), Some(user("plain@example.com"))),
                op("POST", "/Users", Some("roles"), Some(with_roles)),
                op("PATCH", "/Settings", None, Some(json!({"deactivation": "keep-memberships"}))),
            ])),
        )
        .await;
    let ops = r.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["201", "403", "400"], "roles need roles:edit, in a Bulk request as alone; settings are no resource: {}", r.raw);
    // a reader may not send one at all
    srv.tenant_key("local", "reader").await.post("/Bulk", &bulk(json!([]))).await.assert_error(403, None);
    // an operation runs only when the route it matches writes a resource, however its path is
    // spelled: not another Bulk request, not the settings (even for the admin), not a search
    let settings_before = srv.client.get("/Settings").await.body;
    let r = srv
        .client
        .post(
            "/Bulk",
            &bulk(json!([
                op("POST", "/Bulk", Some("x"), Some(bulk(json!([])))),
                op("POST", "//Bulk/", Some("y"), Some(bulk(json!([])))),
                op("PATCH", "/Settings", None, Some(json!({"deactivation": "keep-memberships"}))),
                op("POST", "/Users/.search", Some("z"), Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}))),
                op("DELETE", "/Users/", None, None),
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let outcomes: Vec<(&str, &str)> = r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["status"].as_str().unwrap(), o["response"]["scimType"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(outcomes[..4], [("400", "invalidValue"); 4], "{}", r.raw);
    assert!(outcomes[4].0.starts_with('4'), "{}", r.raw);
    assert_eq!(srv.client.get("/Settings").await.body, settings_before, "the settings are untouched");
    // too many operations: 413, nothing run
    let many: Vec<Value> =
        (0..1001).map(|i| op("POST", "/Users", Some(&format!("m{i}")), Some(user(&format!("m{i}@example.com"))))).collect();
    srv.client.post("/Bulk", &bulk(Value::Array(many))).await.assert_error(413, None);
    assert_eq!(srv.client.filter("/Users", r#"userName eq "m0@example.com""#, "").await.body["totalResults"], 0);
    // another tenant's ids are as unknown in a Bulk request as alone
    let b = srv.tenant_key("tenant-b", "admin").await;
    let theirs = id_of(&b.post("/Users", &user("b.bulk@example.com")).await.body);
    let r = srv.client.post("/Bulk", &bulk(json!([op("DELETE", &format!("/Users/{theirs}"), None, None)]))).await;
    assert_eq!(r.body["Operations"][0]["status"], "404", "{}", r.raw);
    assert_eq!(b.get(&format!("/Users/{theirs}")).await.status, 200);
});

both_stores!(a_failed_operation_leaves_its_references_unresolved, |srv| {
    let c = &srv.client;
    c.post("/Users", &user("holder@example.com")).await;
    // u1 fails (its userName is taken): the group that references it fails on its own, naming
    // the unresolved reference, and makes nothing; the unrelated operation still runs
    let r = c
        .post(
            "/Bulk",
            &bulk(json!([
                op("POST", "/Users", Some("u1"), Some(user("holder@example.com"))),
                op("POST", "/Groups", Some("g1"), Some(json!({"displayName": "Orphans", "members": [{"value": "bulkId:u1"}]}))),
                op("POST", "/Users", Some("u2"), Some(user("unrelated@example.com"))),
            ])),
        )
        .await;
    let status = |b: &str| r.body["Operations"].as_array().unwrap().iter().find(|o| o["bulkId"] == b).unwrap()["status"].clone();
    assert_eq!((status("u1"), status("u2")), (json!("409"), json!("201")), "{}", r.raw);
    assert_eq!(status("g1"), "409", "{}", r.raw);
    assert!(r.raw.contains("bulkId:u1"), "the failure names the reference: {}", r.raw);
    assert_eq!(c.filter("/Groups", r#"displayName eq "Orphans""#, "").await.body["totalResults"], 0);
    // a reference no operation declares is as unresolvable
    let r = c
        .post(
            "/Bulk",
            &bulk(json!([op(
                "POST",
                "/Groups",
                Some("g2"),
                Some(json!({"displayName": "Ghosts", "members": [{"value": "bulkId:nobody"}]}))
            )])),
        )
        .await;
    assert_eq!(r.body["Operations"][0]["status"], "409", "{}", r.raw);
    assert!(r.raw.contains("bulkId:nobody names no operation"), "{}", r.raw);
    // refused without running, and still in the activity log like any refused attempt
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    assert!(audit.iter().any(|e| e["route"] == "groups-create" && e["status"] == 409), "{audit:?}");
});

both_stores!(a_bulk_request_out_of_time_starts_no_operation, |srv| {
    // the Lambda entry point sets the invocation's deadline; inside the margin nothing starts
    let layout = srv.app.service.layout();
    let principal = scim_core::auth::authenticate(layout, Some(&format!("Bearer {}", srv.token)), None).await.unwrap();
    let mut req = scim_core::edge::json_request(
        "POST",
        "/Bulk",
        Some(&bulk(json!([
            op("POST", "/Users", Some("late1"), Some(user("late.one@example.com"))),
            op("DELETE", "/Users/whatever", None, None),
        ]))),
    );
    let at = std::time::Instant::now() + scim_core::edge::bulk::DEADLINE_MARGIN / 2;
    req.extensions_mut().insert(scim_core::edge::bulk::Deadline(at));
    let resp = srv.app.handle(&principal, &req, &srv.base, Some("bulk")).await;
    assert_eq!(resp.status, 200);
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    let statuses: Vec<&str> = body["Operations"].as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["503", "503"], "{body}");
    assert_eq!(srv.client.filter("/Users", r#"userName eq "late.one@example.com""#, "").await.body["totalResults"], 0);
    // with time in hand the same request runs
    let mut req = scim_core::edge::json_request(
        "POST",
        "/Bulk",
        Some(&bulk(json!([op("POST", "/Users", Some("t"), Some(user("in.time@example.com")))]))),
    );
    req.extensions_mut().insert(scim_core::edge::bulk::Deadline(std::time::Instant::now() + std::time::Duration::from_secs(60)));
    let body: Value = serde_json::from_slice(&srv.app.handle(&principal, &req, &srv.base, Some("bulk")).await.body).unwrap();
    assert_eq!(body["Operations"][0]["status"], "201", "{body}");
});
