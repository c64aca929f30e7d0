//! Resource types a tenant declares (RFC 7643 §6), end to end on both stores: declared over
//! HTTP with their §7 schemas, discovered per tenant, and served at their endpoint with what
//! Users have — validation (required attributes and extensions, immutable, returned), unique
//! attributes found by one claim read, caseExact filters, sort, projections, paging and
//! cursors, ETags, PATCH, `.search`, Bulk, audit and events — and refused where a name, an
//! endpoint or a URN is taken, or where stored resources would not survive a change.

use super::*;
use scim_tests::both_stores;

const CORE: &str = "urn:acme:params:scim:schemas:Widget";
const EXTRA: &str = "urn:acme:params:scim:schemas:extension:WidgetExtra";
const RT: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

fn declaration() -> Value {
    json!({
        "schemas": [RT],
        "name": "Widget",
        "endpoint": "/Widgets",
        "description": "Acme widgets",
        "schema": CORE,
        "schemaExtensions": [{"schema": EXTRA, "required": true}],
        "schemaDefinitions": [
            {"id": CORE, "name": "Widget", "attributes": [
                {"name": "serial", "type": "string", "required": true, "uniqueness": "server"},
                {"name": "code", "type": "string", "caseExact": true},
                {"name": "label", "type": "string"},
                {"name": "size", "type": "integer"},
                {"name": "maker", "type": "string", "mutability": "immutable"},
                {"name": "secret", "type": "string", "returned": "never"},
                {"name": "note", "type": "string", "returned": "request"},
                {"name": "kind", "type": "string", "returned": "always"},
                {"name": "parts", "type": "complex", "multiValued": true, "subAttributes": [
                    {"name": "value", "type": "string"}, {"name": "primary", "type": "boolean"}]}
            ]},
            {"id": EXTRA, "name": "WidgetExtra", "attributes": [{"name": "colour", "type": "string", "required": true}]}
        ]
    })
}

fn widget(serial: &str, size: i64) -> Value {
    json!({"schemas": [CORE, EXTRA], "serial": serial, "code": format!("Code-{serial}"), "label": format!("Label {serial}"),
        "size": size, "maker": "acme", "secret": "s3", "note": "n", "kind": "gear",
        "parts": [{"value": "p1", "primary": true}], EXTRA: {"colour": "red"}})
}

both_stores!(a_declared_type_is_served_like_users, |srv| {
    let c = &srv.client;
    let provisioner = srv.tenant_key("local", "provisioner").await;
    provisioner.put("/Settings/ResourceTypes/Widget", &declaration()).await.assert_error(403, None);
    c.get("/Widgets").await.assert_error(404, None);
    let d = c.put("/Settings/ResourceTypes/Widget", &declaration()).await;
    assert_eq!(d.status, 201, "{}", d.raw);
    assert_eq!(d.body["schemaDefinitions"].as_array().map(Vec::len), Some(2));
    assert_eq!(c.put("/Settings/ResourceTypes/Widget", &declaration()).await.status, 200, "the same again is a 200");
    assert_eq!(c.get("/Settings/ResourceTypes").await.body["totalResults"], 1);

    // discovery, for this tenant only
    let rt = c.get("/ResourceTypes/Widget").await;
    assert_eq!((rt.status, &rt.body["endpoint"], &rt.body["schemaExtensions"][0]["required"]), (200, &json!("/Widgets"), &json!(true)));
    assert_eq!(c.get(&format!("/Schemas/{CORE}")).await.body["attributes"][0]["uniqueness"], "server");
    assert_eq!(c.get("/ResourceTypes").await.body["totalResults"], 3);
    let other = srv.tenant_key("other", "admin").await;
    other.get("/ResourceTypes/Widget").await.assert_error(404, None);
    other.get("/Widgets").await.assert_error(404, None);

    // create: required attributes and extensions, returned characteristics
    let a = c.post("/Widgets", &widget("W-1", 3)).await;
    assert_eq!(a.status, 201, "{}", a.raw);
    let ida = id_of(&a.body);
    assert_eq!(a.header("location"), Some(format!("{}/Widgets/{ida}", srv.base).as_str()));
    assert_eq!((&a.body["meta"]["resourceType"], &a.body[EXTRA]["colour"]), (&json!("Widget"), &json!("red")));
    assert!(a.body.get("secret").is_none() && a.body.get("note").is_none(), "never and request are not returned: {}", a.raw);
    let mut no_serial = widget("x", 1);
    no_serial.as_object_mut().unwrap().remove("serial");
    c.post("/Widgets", &no_serial).await.assert_error(400, Some("invalidValue"));
    let mut no_extra = widget("W-x", 1);
    no_extra.as_object_mut().unwrap().remove(EXTRA);
    let r = c.post("/Widgets", &no_extra).await;
    r.assert_error(400, Some("invalidValue"));
    assert!(r.raw.contains(EXTRA), "{}", r.raw);
    c.post("/Widgets", &widget("w-1", 9)).await.assert_error(409, Some("uniqueness"));
    let idb = id_of(&c.post("/Widgets", &widget("W-2", 1)).await.body);
    let idc = id_of(&c.post("/Widgets", &widget("W-3", 2)).await.body);

    // reads: projections, returned request/always, ETags
    let g = c.get(&format!("/Widgets/{ida}?attributes=note,size")).await;
    assert_eq!((&g.body["note"], &g.body["size"], &g.body["kind"]), (&json!("n"), &json!(3), &json!("gear")), "{}", g.raw);
    assert!(g.body.get("label").is_none());
    let g = c.get(&format!("/Widgets/{ida}?excludedAttributes=kind")).await;
    assert_eq!(g.body["kind"], "gear", "returned: always");
    let tag = c.get(&format!("/Widgets/{ida}")).await.header("etag").unwrap().to_string();
    assert_eq!(c.send("GET", &format!("/Widgets/{ida}"), None, &[("If-None-Match", &tag)]).await.status, 304);

    // filters: a unique attribute by one claim read; caseExact; sort; paging; cursors; .search
    let before = srv.metered.counts();
    let r = c.filter("/Widgets", "serial eq \"w-1\"", "").await;
    assert_eq!((r.body["totalResults"].as_u64(), r.body["Resources"][0]["id"].as_str()), (Some(1), Some(ida.as_str())), "{}", r.raw);
    assert_eq!(srv.metered.counts().query, before.query, "no Query of the collection");
    assert_eq!(c.filter("/Widgets", "code eq \"code-W-1\"", "").await.body["totalResults"], 0, "caseExact");
    assert_eq!(c.filter("/Widgets", "code eq \"Code-W-1\"", "").await.body["totalResults"], 1);
    assert_eq!(c.filter("/Widgets", "label co \"label w\"", "").await.body["totalResults"], 3, "caseExact false");
    let sorted = c.get("/Widgets?sortBy=size&sortOrder=descending").await.body;
    let sizes: Vec<i64> = sorted["Resources"].as_array().unwrap().iter().map(|r| r["size"].as_i64().unwrap()).collect();
    assert_eq!(sizes, [3, 2, 1]);
    let p = c.get("/Widgets?startIndex=2&count=1").await.body;
    assert_eq!((p["totalResults"].as_u64(), p["Resources"].as_array().map(Vec::len)), (Some(3), Some(1)));
    let first = c.get("/Widgets?cursor&count=2").await.body;
    let next = first["nextCursor"].as_str().expect("a next cursor").to_string();
    let rest = c.get(&format!("/Widgets?cursor={}&count=2", scim_tests::encode(&next))).await.body;
    assert_eq!(rest["Resources"].as_array().map(Vec::len), Some(1), "{rest}");
    let s = c
        .post("/Widgets/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "size gt 1"}))
        .await;
    assert_eq!(s.body["totalResults"], 2, "{}", s.raw);
    let root =
        c.post("/.search", &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "serial pr"})).await;
    assert_eq!(root.body["totalResults"], 3, "{}", root.raw);

    // writes: PATCH, immutable, If-Match, PUT
    let p = c.patch(&format!("/Widgets/{idb}"), &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "size", "value": 7}, {"op": "replace", "path": format!("{EXTRA}:colour"), "value": "blue"}]})).await;
    assert_eq!((p.status, &p.body["size"], &p.body[EXTRA]["colour"]), (200, &json!(7), &json!("blue")), "{}", p.raw);
    let r = c
        .patch(
            &format!("/Widgets/{idb}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "maker", "value": "other"}]}),
        )
        .await;
    r.assert_error(400, Some("mutability"));
    let stale = c.send("PUT", &format!("/Widgets/{ida}"), Some(&widget("W-1", 4).to_string()), &[("If-Match", "W/\"999\"")]).await;
    stale.assert_error(412, None);
    let put = c.put(&format!("/Widgets/{ida}"), &widget("W-1", 4)).await;
    assert_eq!((put.status, &put.body["size"]), (200, &json!(4)), "{}", put.raw);

    // Bulk: a declared type's operations, with bulkId references
    let bulk = c
        .post(
            "/Bulk",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Widgets", "bulkId": "w4", "data": widget("W-4", 5)},
        {"method": "PATCH", "path": "/Widgets/bulkId:w4", "data": {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "label", "value": "bulk"}]}}]}),
        )
        .await;
    assert_eq!(bulk.status, 200, "{}", bulk.raw);
    let ops = bulk.body["Operations"].as_array().unwrap();
    assert_eq!((ops[0]["status"].as_str(), ops[1]["status"].as_str()), (Some("201"), Some("200")), "{}", bulk.raw);
    let idd = ops[0]["location"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    assert_eq!(c.get(&format!("/Widgets/{idd}")).await.body["label"], "bulk");

    // audit and events say which route and type
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    assert!(audit.iter().any(|e| e["route"] == "resources" && e["status"] == 201), "{audit:?}");
    if srv.store == scim_tests::Store::Embedded {
        let events = srv.events.lock().unwrap().clone();
        let e = events.iter().find(|e| e.kind == "resource.created").expect("a create event");
        assert_eq!(e.detail["resourceType"], "Widget", "{:?}", e.detail);
    }

    // a type holding resources keeps what they need; deleting it waits for them
    let mut narrower = declaration();
    narrower["schemaDefinitions"][0]["attributes"].as_array_mut().unwrap().remove(3);
    let r = c.put("/Settings/ResourceTypes/Widget", &narrower).await;
    r.assert_error(409, None);
    assert!(r.raw.contains("size") && r.raw.contains("4 Widget"), "{}", r.raw);
    let mut wider = declaration();
    wider["schemaDefinitions"][0]["attributes"].as_array_mut().unwrap().push(json!({"name": "weight", "type": "decimal"}));
    assert_eq!(c.put("/Settings/ResourceTypes/Widget", &wider).await.status, 200, "adding an attribute is fine");
    let r = c.delete("/Settings/ResourceTypes/Widget").await;
    r.assert_error(409, None);
    assert!(r.raw.contains("4 resources"), "{}", r.raw);
    for id in [&ida, &idb, &idc, &idd] {
        assert_eq!(c.delete(&format!("/Widgets/{id}")).await.status, 204);
    }
    assert_eq!(c.delete("/Settings/ResourceTypes/Widget").await.status, 204);
    c.get("/Widgets").await.assert_error(404, None);
    c.get("/ResourceTypes/Widget").await.assert_error(404, None);
});

both_stores!(names_endpoints_and_urns_are_one_owner_s, |srv| {
    let c = &srv.client;
    let mut users = declaration();
    users["endpoint"] = json!("/users");
    c.put("/Settings/ResourceTypes/Widget", &users).await.assert_error(409, None);
    c.put("/Settings/ResourceTypes/User", &declaration()).await.assert_error(400, None);
    assert_eq!(c.put("/Settings/ResourceTypes/Widget", &declaration()).await.status, 201);
    // another type at the same endpoint, or reusing a URN
    let mut gadget = declaration();
    gadget["name"] = json!("Gadget");
    c.put("/Settings/ResourceTypes/Gadget", &gadget).await.assert_error(409, None);
    gadget["endpoint"] = json!("/Gadgets");
    let r = c.put("/Settings/ResourceTypes/Gadget", &gadget).await;
    r.assert_error(409, None);
    assert!(r.raw.contains(CORE), "{}", r.raw);
    // an extension of User may not take a type's URN, nor a type an extension's
    let ext = json!({"extends": "User", "attributes": [{"name": "x", "type": "string"}]});
    c.put(&format!("/Settings/Schemas/{EXTRA}"), &ext).await.assert_error(409, None);
    let acme = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
    assert_eq!(c.put(&format!("/Settings/Schemas/{acme}"), &ext).await.status, 201);
    let mut taken = declaration();
    taken["name"] = json!("Thing");
    taken["endpoint"] = json!("/Things");
    taken["schemaExtensions"] = json!([{"schema": acme}]);
    taken["schemaDefinitions"][1]["id"] = json!(acme);
    taken["schema"] = json!("urn:acme:Thing");
    taken["schemaDefinitions"][0]["id"] = json!("urn:acme:Thing");
    c.put("/Settings/ResourceTypes/Thing", &taken).await.assert_error(409, None);
    // the declarations of extensions and of types live side by side
    assert_eq!(c.get("/Settings/Schemas").await.body["totalResults"], 1);
    assert_eq!(c.get("/Settings/ResourceTypes").await.body["totalResults"], 1);
    assert_eq!(c.post("/Widgets", &widget("W-1", 1)).await.status, 201);
    assert_eq!(c.post("/Users", &user("side@example.com")).await.status, 201);
});

both_stores!(a_declared_type_costs_what_a_user_does_and_declaring_nothing_costs_nothing, |srv| {
    let c = &srv.client;
    let s = &srv;
    let cost = |path: String| async move {
        let before = s.metered.counts();
        let r = s.client.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.raw);
        s.metered.counts().total() - before.total()
    };
    // a tenant that declares nothing: a user read is authentication and one item read
    let other = srv.tenant_key("plain", "admin").await;
    let u = id_of(&other.post("/Users", &user("plain@example.com")).await.body);
    let before = srv.metered.counts();
    assert_eq!(other.get(&format!("/Users/{u}?excludedAttributes=groups")).await.status, 200);
    let plain = srv.metered.counts().total() - before.total();
    assert!(plain <= 2, "authentication (one batched read) and the user (one read): {plain}");
    // a tenant with a declared type: its reads cost what a user's do (declarations cached)
    assert_eq!(c.put("/Settings/ResourceTypes/Widget", &declaration()).await.status, 201);
    let w = id_of(&c.post("/Widgets", &widget("W-1", 1)).await.body);
    let u = id_of(&c.post("/Users", &user("costs@example.com")).await.body);
    cost(format!("/Widgets/{w}")).await; // warm: the declarations are read once per process
    assert_eq!(cost(format!("/Widgets/{w}")).await, plain, "a declared type's GET by id");
    assert_eq!(cost(format!("/Users/{u}?excludedAttributes=groups")).await, plain, "a user's, on the same tenant");
    let by_serial = cost(format!("/Widgets?filter={}", scim_tests::encode("serial eq \"W-1\""))).await;
    let by_name = cost(format!("/Users?filter={}", scim_tests::encode("userName eq \"costs@example.com\""))).await;
    assert_eq!(by_serial, by_name, "a unique attribute's eq filter costs what userName eq does");
});

both_stores!(a_declared_type_s_limits_are_the_same_on_both_stores_and_audited, |srv| {
    let c = &srv.client;
    assert_eq!(c.put("/Settings/ResourceTypes/Widget", &declaration()).await.status, 201);
    // a unique value too long to be a key on either store: refused before anything is written
    let long = widget(&"x".repeat(600), 1);
    let r = c.post("/Widgets", &long).await;
    r.assert_error(400, Some("invalidValue"));
    assert!(r.raw.contains("serial"), "{}", r.raw);
    assert_eq!(c.get("/Widgets").await.body["totalResults"], 0, "nothing written");
    // a body over the limit is refused before it is read, and the attempt audited on its route
    let huge = format!("{{\"serial\": \"{}\"}}", "x".repeat(1024 * 1024 + 1));
    c.send("POST", "/Widgets", Some(&huge), &[]).await.assert_error(413, None);
    let day = scim_core::time::now()[..10].to_string();
    let audit = srv.app.service.layout().audit_entries("local", &day).await.unwrap();
    assert!(audit.iter().any(|e| e["route"] == "resources" && e["status"] == 413), "{audit:?}");
    // declaration limits: a body, the schemas of one type, the types of one tenant
    let mut big = declaration();
    big["description"] = json!("d".repeat(100 * 1024));
    c.put("/Settings/ResourceTypes/Widget", &big).await.assert_error(413, None);
    let mut many = declaration();
    let defs: Vec<Value> =
        (0..11).map(|i| json!({"id": format!("urn:acme:s{i}"), "attributes": [{"name": "a", "type": "string"}]})).collect();
    many["schemaDefinitions"] = json!(defs);
    c.put("/Settings/ResourceTypes/Widget", &many).await.assert_error(400, Some("tooMany"));
    for i in 1..20 {
        let t = json!({"schema": format!("urn:acme:t{i}"), "schemaDefinitions": [{"id": format!("urn:acme:t{i}"), "attributes": [{"name": "a", "type": "string"}]}]});
        assert_eq!(c.put(&format!("/Settings/ResourceTypes/T{i}"), &t).await.status, 201, "type {i}");
    }
    let t =
        json!({"schema": "urn:acme:t20", "schemaDefinitions": [{"id": "urn:acme:t20", "attributes": [{"name": "a", "type": "string"}]}]});
    c.put("/Settings/ResourceTypes/T20", &t).await.assert_error(400, Some("tooMany"));
    assert_eq!(c.get("/Settings/ResourceTypes").await.body["totalResults"], 20);
});
