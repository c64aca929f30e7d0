//! Tenant-defined schema extensions, end to end: declared over HTTP, discovered per tenant,
//! validated, stored, returned, projected, filtered (a unique attribute by one key read),
//! sorted, PATCHed in Entra's and Okta's forms, carried in change events, redeclared without
//! losing data, and undeclared URNs ignored (and named in the audit) or refused.

use super::*;
use scim_tests::both_stores;

const ACME: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";

fn declaration() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "name": "AcmeUser",
        "description": "Acme's attributes",
        "attributes": [
            {"name": "costCenter", "type": "string", "description": "Cost center"},
            {"name": "badge", "type": "integer", "uniqueness": "server"},
            {"name": "site", "type": "complex", "subAttributes": [{"name": "code", "type": "string"}, {"name": "floor", "type": "integer"}]},
            {"name": "tags", "type": "string", "multiValued": true, "canonicalValues": ["a", "b"]},
            {"name": "pin", "type": "string", "returned": "never"}
        ]
    })
}

fn acme_user(name: &str, cost: &str, badge: i64) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ACME], "userName": name,
        ACME: {"costCenter": cost, "badge": badge, "site": {"code": "BER", "floor": 3}, "tags": ["a"], "pin": "1234"}})
}

both_stores!(a_declared_extension_lives_like_the_enterprise_one, |srv| {
    let c = &srv.client;
    // declaring needs scim:configure
    let provisioner = srv.tenant_key("local", "provisioner").await;
    provisioner.put(&format!("/Settings/Schemas/{ACME}"), &declaration()).await.assert_error(403, None);
    let d = c.put(&format!("/Settings/Schemas/{ACME}"), &declaration()).await;
    assert_eq!(d.status, 201, "{}", d.raw);
    assert_eq!((&d.body["extends"], d.body["attributes"].as_array().map(Vec::len)), (&json!("User"), Some(5)));
    assert_eq!(c.put(&format!("/Settings/Schemas/{ACME}"), &declaration()).await.status, 200, "redeclaring the same is a 200");
    assert_eq!(c.get("/Settings/Schemas").await.body["totalResults"], 1);

    // discovery, for this tenant only
    let s = c.get(&format!("/Schemas/{ACME}")).await;
    assert_eq!((s.status, &s.body["attributes"][1]["uniqueness"]), (200, &json!("server")), "{}", s.raw);
    assert!(c.get("/Schemas").await.raw.contains(ACME));
    let rt = c.get("/ResourceTypes/User").await.body;
    assert!(rt["schemaExtensions"].as_array().unwrap().iter().any(|e| e["schema"] == ACME), "{rt}");
    let other = srv.tenant_key("other", "admin").await;
    assert_eq!(other.get(&format!("/Schemas/{ACME}")).await.status, 404, "another tenant never sees it");
    assert!(!other.get("/ResourceTypes/User").await.raw.contains(ACME));

    // create (Okta's form: the URN object), returned as stored, the never-returned one withheld
    let a = c.post("/Users", &acme_user("ext-a@example.com", "CC-1", 42)).await;
    assert_eq!(a.status, 201, "{}", a.raw);
    let ida = id_of(&a.body);
    assert!(a.body["schemas"].as_array().unwrap().contains(&json!(ACME)));
    assert_eq!((&a.body[ACME]["costCenter"], &a.body[ACME]["site"]["floor"]), (&json!("CC-1"), &json!(3)));
    assert!(a.body[ACME].get("pin").is_none(), "returned: never");
    assert_eq!(c.get(&format!("/Users/{ida}")).await.body[ACME]["badge"], 42);
    // values are checked against the declaration
    let bad = c.post("/Users", &acme_user("ext-bad@example.com", "CC-9", 1)).await;
    assert_eq!(bad.status, 201);
    let mut wrong = acme_user("ext-wrong@example.com", "CC-9", 7);
    wrong[ACME]["badge"] = json!("seven");
    let r = c.post("/Users", &wrong).await;
    r.assert_error(400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains("badge"), "{}", r.raw);
    // a unique attribute: a second holder is refused
    c.post("/Users", &acme_user("ext-b@example.com", "CC-2", 42)).await.assert_error(409, Some("uniqueness"));
    let idb = id_of(&c.post("/Users", &acme_user("ext-b@example.com", "CC-0", 43)).await.body);

    // filters: a unique attribute is one claim read, never a walk; others walk (documented)
    let before = srv.metered.counts();
    let r = c.filter("/Users", &format!("{ACME}:badge eq 42"), "").await;
    let after = srv.metered.counts();
    assert_eq!((r.body["totalResults"].as_u64(), r.body["Resources"][0]["id"].as_str()), (Some(1), Some(ida.as_str())), "{}", r.raw);
    assert_eq!(after.query, before.query, "no Query of the collection");
    let r = c
        .filter(
            "/Users",
            &format!("{ACME}:costCenter sw \"cc-\" and {ACME}:site.floor ge 3"),
            "&sortBy=urn:ietf:params:scim:schemas:extension:acme:2.0:User:costCenter",
        )
        .await;
    let order: Vec<&str> = r.body["Resources"].as_array().unwrap().iter().filter_map(|u| u[ACME]["costCenter"].as_str()).collect();
    assert_eq!(order, ["CC-0", "CC-1", "CC-9"], "{}", r.raw);
    // projection
    let p = c.get(&format!("/Users/{ida}?attributes={ACME}:costCenter")).await.body;
    assert_eq!(p[ACME], json!({"costCenter": "CC-1"}), "{p}");
    assert!(c.get(&format!("/Users/{ida}?excludedAttributes={ACME}")).await.body.get(ACME).is_none());

    // PATCH in every form: Entra's URN path and URN-keyed path-less value, Okta's URN object,
    // a bare name only the extension defines, a value path into a complex attribute
    let path = format!("/Users/{ida}");
    for (op, expect) in [
        (json!({"op": "Add", "path": format!("{ACME}:costCenter"), "value": "CC-2"}), json!({"costCenter": "CC-2"})),
        (json!({"op": "Replace", "value": {format!("{ACME}:costCenter"): "CC-3"}}), json!({"costCenter": "CC-3"})),
        (json!({"op": "replace", "value": {ACME: {"costCenter": "CC-4"}}}), json!({"costCenter": "CC-4"})),
        (json!({"op": "replace", "path": "badge", "value": 44}), json!({"badge": 44})),
        (json!({"op": "replace", "path": format!("{ACME}:site.floor"), "value": 5}), json!({"site": {"code": "BER", "floor": 5}})),
        (json!({"op": "add", "path": format!("{ACME}:tags"), "value": ["b"]}), json!({"tags": ["a", "b"]})),
    ] {
        let r = c.patch(&path, &patch_op(json!([op.clone()]))).await;
        assert_eq!(r.status, 200, "{op}: {}", r.raw);
        for (k, v) in expect.as_object().unwrap() {
            assert_eq!(&r.body[ACME][k], v, "{op}: {}", r.raw);
        }
    }
    assert_eq!(c.filter("/Users", &format!("{ACME}:badge eq 42"), "").await.body["totalResults"], 0, "the old badge was released");
    c.patch(&format!("/Users/{idb}"), &patch_op(json!([{"op": "replace", "path": format!("{ACME}:badge"), "value": 44}])))
        .await
        .assert_error(409, Some("uniqueness"));
    if srv.store == scim_tests::Store::Embedded {
        let events = srv.events.lock().unwrap().clone();
        let e = events.iter().rev().find(|e| e.kind == "user.updated").expect("an update event");
        assert!(e.detail["changed"].as_array().unwrap().contains(&json!(format!("{ACME}:tags"))), "{}", e.detail);
    }

    // redeclaring: costCenter left out is hidden, kept through writes, and back when declared again
    let mut narrower = declaration();
    narrower["attributes"].as_array_mut().unwrap().remove(0);
    assert_eq!(c.put(&format!("/Settings/Schemas/{ACME}"), &narrower).await.status, 200);
    let hidden = c.get(&path).await.body;
    assert!(hidden[ACME].get("costCenter").is_none(), "{hidden}");
    c.filter("/Users", &format!("{ACME}:costCenter eq \"CC-4\""), "").await;
    let put = c.put(&path, &json!({"userName": "ext-a@example.com", ACME: {"badge": 44}})).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    assert_eq!(c.put(&format!("/Settings/Schemas/{ACME}"), &declaration()).await.status, 200);
    assert_eq!(c.get(&path).await.body[ACME]["costCenter"], "CC-4", "the hidden value survived a PUT and came back");
    // a change stored values might not satisfy is refused while they exist, with a count
    let mut retyped = declaration();
    retyped["attributes"][0]["type"] = json!("integer");
    let r = c.put(&format!("/Settings/Schemas/{ACME}"), &retyped).await;
    r.assert_error(409, None);
    assert!(r.body["detail"].as_str().unwrap().contains("'costCenter' (3)"), "{}", r.raw);
    assert_eq!(c.get(&path).await.body[ACME]["costCenter"], "CC-4", "nothing changed");

    // undeclared extensions: ignored and named in the audit, or refused
    let foreign = "urn:ietf:params:scim:schemas:extension:foreign:2.0:User";
    let r = c.post("/Users", &json!({"userName": "foreign@example.com", foreign: {"x": 1}})).await;
    assert_eq!(r.status, 201);
    assert!(r.body.get(foreign).is_none());
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    assert_eq!(audit.last().unwrap()["undeclared_extensions"], json!([foreign]), "{:?}", audit.last());
    assert_eq!(c.patch("/Settings", &json!({"unknownExtensions": "reject"})).await.status, 200);
    let r = c.post("/Users", &json!({"userName": "foreign2@example.com", foreign: {"x": 1}})).await;
    r.assert_error(400, Some("invalidValue"));
    assert!(r.body["detail"].as_str().unwrap().contains(foreign));
    let r = c.patch(&path, &patch_op(json!([{"op": "add", "path": format!("{foreign}:x"), "value": 1}]))).await;
    r.assert_error(400, Some("invalidValue"));

    // deleting: refused while a unique attribute holds values; then the extension is gone
    c.delete(&format!("/Settings/Schemas/{ACME}")).await.assert_error(409, None);
    for id in [&ida, &idb, &id_of(&bad.body)] {
        let r = c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "remove", "path": format!("{ACME}:badge")}]))).await;
        assert_eq!(r.status, 200, "{}", r.raw);
    }
    assert_eq!(c.delete(&format!("/Settings/Schemas/{ACME}")).await.status, 204);
    assert_eq!(c.get(&format!("/Schemas/{ACME}")).await.status, 404);
    assert!(c.get(&path).await.body.get(ACME).is_none());
});

const TEAMS: &str = "urn:acme:params:scim:schemas:extension:teams:1.0:Group";

both_stores!(group_extensions_required_and_immutable_attributes, |srv| {
    let c = &srv.client;
    let decl = json!({"attributes": [
        {"name": "code", "type": "string", "required": true, "mutability": "immutable", "caseExact": true},
        {"name": "budget", "type": "decimal"}
    ]});
    let d = c.put(&format!("/Settings/Schemas/{TEAMS}"), &decl).await;
    assert_eq!((d.status, &d.body["extends"]), (201, &json!("Group")), "the URN says Group: {}", d.raw);
    let rt = c.get("/ResourceTypes/Group").await.body;
    assert!(rt["schemaExtensions"].as_array().unwrap().iter().any(|e| e["schema"] == TEAMS));
    // required when the resource carries the extension
    c.post("/Groups", &json!({"displayName": "Ops", TEAMS: {"budget": 10.5}})).await.assert_error(400, Some("invalidValue"));
    assert_eq!(c.post("/Groups", &json!({"displayName": "Plain"})).await.status, 201, "a group without the extension");
    let g = c.post("/Groups", &json!({"displayName": "Ops", TEAMS: {"code": "OPS-1", "budget": 10.5}})).await;
    assert_eq!(g.status, 201, "{}", g.raw);
    let gid = id_of(&g.body);
    // immutable: kept once set
    let r = c
        .patch(
            &format!("/Groups/{gid}?attributes={TEAMS}"),
            &patch_op(json!([{"op": "replace", "path": format!("{TEAMS}:code"), "value": "OPS-2"}])),
        )
        .await;
    r.assert_error(400, Some("mutability"));
    let r = c
        .patch(
            &format!("/Groups/{gid}?attributes={TEAMS}"),
            &patch_op(json!([{"op": "replace", "path": format!("{TEAMS}:budget"), "value": 12}])),
        )
        .await;
    assert_eq!((r.status, &r.body[TEAMS]), (200, &json!({"code": "OPS-1", "budget": 12})), "{}", r.raw);
    // filtered (case-exact) and returned on reads
    assert_eq!(c.filter("/Groups", &format!("{TEAMS}:code eq \"OPS-1\""), "").await.body["totalResults"], 1);
    assert_eq!(c.filter("/Groups", &format!("{TEAMS}:code eq \"ops-1\""), "").await.body["totalResults"], 0);
    assert_eq!(c.get(&format!("/Groups/{gid}")).await.body[TEAMS]["code"], "OPS-1");
});
