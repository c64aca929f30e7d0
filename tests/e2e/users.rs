//! The user lifecycle as any SCIM client sees it.

use super::*;
use scim_tests::both_stores;

both_stores!(lifecycle, |srv| {
    let c = &srv.client;
    let r = c
        .post(
            "/Users",
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                "userName": "Ann.Lee@Example.com", "externalId": "ext-ann", "password": "s3cret!",
                "name": {"givenName": "Ann", "familyName": "Lee"}, "displayName": "Ann Lee",
                "emails": [{"value": "ann@example.com", "type": "work", "primary": true}],
                "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
                "addresses": [{"streetAddress": "1 Main St", "locality": "Springfield", "type": "work"}],
                "x509Certificates": [{"value": "MIIBszCCAR"}],
                ENTERPRISE: {"employeeNumber": "42", "department": "R&D", "manager": {"value": "boss-1"}}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let id = id_of(&r.body);
    assert_eq!(r.header("location"), Some(format!("{}/Users/{id}", srv.base).as_str()));
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert_eq!(r.body["userName"], "Ann.Lee@Example.com", "the case sent is kept");
    assert!(r.body.get("password").is_none(), "password is never returned");
    assert!(!r.raw.contains("s3cret"), "password is never echoed");
    let meta = &r.body["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert_eq!(meta["location"], format!("{}/Users/{id}", srv.base));
    assert!(meta["created"].is_string() && meta["lastModified"].is_string());
    assert_eq!(r.body["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]));

    // read back
    let g = c.get(&format!("/Users/{id}")).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, r.body);
    let nm = c.send("GET", &format!("/Users/{id}"), None, &[("if-none-match", "W/\"1\"")]).await;
    assert_eq!(nm.status, 304);

    // uniqueness is case-insensitive
    c.post("/Users", &user("ann.lee@EXAMPLE.com")).await.assert_error(409, Some("uniqueness"));

    // PUT replaces; read-only attributes in the body are ignored; version moves on
    let mut full = g.body.clone();
    full["displayName"] = json!("Ann L.");
    full["id"] = json!("something-else");
    full["meta"]["created"] = json!("2000-01-01T00:00:00Z");
    full["groups"] = json!([{"value": "g1"}]);
    full.as_object_mut().unwrap().remove("phoneNumbers");
    let p = c.put(&format!("/Users/{id}"), &full).await;
    assert_eq!(p.status, 200, "{}", p.raw);
    assert_eq!(p.body["id"], id);
    assert_eq!(p.body["displayName"], "Ann L.");
    assert!(p.body.get("phoneNumbers").is_none(), "replace drops what the body omits");
    assert!(p.body.get("groups").is_none());
    assert_eq!(p.body["meta"]["created"], meta["created"]);
    assert_eq!(p.header("etag"), Some("W/\"2\""));

    // If-Match: a stale version is refused, nothing changes
    let stale = c.send("PUT", &format!("/Users/{id}"), Some(&user("Ann.Lee@Example.com").to_string()), &[("if-match", "W/\"1\"")]).await;
    stale.assert_error(412, None);
    assert_eq!(c.get(&format!("/Users/{id}")).await.body["displayName"], "Ann L.");
    let ok = c
        .send(
            "PATCH",
            &format!("/Users/{id}"),
            Some(&patch_op(json!([{"op": "replace", "path": "title", "value": "CTO"}])).to_string()),
            &[("if-match", "W/\"2\"")],
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.raw);
    assert_eq!(ok.body["title"], "CTO");

    // a PATCH that changes nothing writes nothing
    let same = c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "title", "value": "CTO"}]))).await;
    assert_eq!(same.header("etag"), Some("W/\"3\""));

    // rename moves the uniqueness claim: the old name is free, the new one taken
    let rn = c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "userName", "value": "ann@new.example"}]))).await;
    assert_eq!(rn.status, 200, "{}", rn.raw);
    let other = c.post("/Users", &user("ann.lee@example.com")).await;
    assert_eq!(other.status, 201, "the old userName is free again: {}", other.raw);
    c.post("/Users", &user("ANN@new.example")).await.assert_error(409, Some("uniqueness"));
    let clash = c
        .patch(
            &format!("/Users/{}", id_of(&other.body)),
            &patch_op(json!([{"op": "replace", "path": "userName", "value": "Ann@New.Example"}])),
        )
        .await;
    clash.assert_error(409, Some("uniqueness"));

    // delete: 204, then 404 everywhere; the name is free again
    assert_eq!(c.delete(&format!("/Users/{id}")).await.status, 204);
    c.get(&format!("/Users/{id}")).await.assert_error(404, None);
    c.delete(&format!("/Users/{id}")).await.assert_error(404, None);
    c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "title", "value": "x"}]))).await.assert_error(404, None);
    assert_eq!(c.post("/Users", &user("ann@new.example")).await.status, 201);
    let list = c.get("/Users").await;
    assert_eq!(list.body["totalResults"], 2, "{}", list.raw);
});

both_stores!(external_id_policies, |srv| {
    use scim_core::tenancy::{ExternalIdPolicy, TenantChange, update_tenant};
    let policy = |p| TenantChange { external_id_policy: Some(p), ..Default::default() };
    let with_ext = |name: &str, ext: &str| {
        let mut u = user(name);
        u["externalId"] = json!(ext);
        u
    };
    // none (the default, RFC 7643 §3.1): any number of holders, each found by an index lookup
    let c = &srv.client;
    let first = id_of(&c.post("/Users", &with_ext("first@example.com", "okta-00u1")).await.body);
    let second = c.post("/Users", &with_ext("renamed@example.com", "okta-00u1")).await;
    assert_eq!(second.status, 201, "{}", second.raw);
    let before = srv.metered.counts();
    let by_ext = c.filter("/Users", r#"externalId eq "okta-00u1""#, "").await;
    let after = srv.metered.counts();
    assert_eq!(by_ext.body["totalResults"], 2, "{}", by_ext.raw);
    assert!(after.query - before.query <= 1 && after.total() - before.total() <= 3, "an index lookup, not a walk of the collection");
    // '#' and '%' in an externalId stay exact: no prefix of one matches another
    for ext in ["a#b", "a", "a%23b", "a#"] {
        assert_eq!(c.post("/Users", &with_ext(&format!("{}@x.io", ext.len()), ext)).await.status, 201, "{ext}");
    }
    for ext in ["a#b", "a", "a%23b", "a#"] {
        let r = c.filter("/Users", &format!("externalId eq \"{ext}\""), "").await;
        assert_eq!(r.body["totalResults"], 1, "{ext}: {}", r.raw);
    }
    // externalId is case-exact: a different case is a different identity
    assert_eq!(c.post("/Users", &with_ext("third@example.com", "OKTA-00U1")).await.status, 201);
    // deleting one holder leaves the other found
    c.delete(&format!("/Users/{first}")).await;
    assert_eq!(c.filter("/Users", r#"externalId eq "okta-00u1""#, "").await.body["totalResults"], 1);

    // unique: a second holder is refused (create and rename), the holder itself may keep it
    let u = srv.tenant_key("uniq", "admin").await;
    update_tenant(srv.app.service.layout(), "uniq", &policy(ExternalIdPolicy::Unique)).await.unwrap();
    let a = id_of(&u.post("/Users", &with_ext("a@example.com", "e-1")).await.body);
    let dup = u.post("/Users", &with_ext("b@example.com", "e-1")).await;
    dup.assert_error(409, Some("uniqueness"));
    assert!(dup.body["detail"].as_str().unwrap().contains("externalId"));
    let b = id_of(&u.post("/Users", &with_ext("b@example.com", "e-2")).await.body);
    u.patch(&format!("/Users/{b}"), &patch_op(json!([{"op": "replace", "path": "externalId", "value": "e-1"}])))
        .await
        .assert_error(409, Some("uniqueness"));
    assert_eq!(u.put(&format!("/Users/{a}"), &with_ext("a@example.com", "e-1")).await.status, 200, "keeping its own externalId");
    // released by a rename, it may be taken
    assert_eq!(
        u.patch(&format!("/Users/{a}"), &patch_op(json!([{"op": "replace", "path": "externalId", "value": "e-9"}]))).await.status,
        200
    );
    assert_eq!(
        u.patch(&format!("/Users/{b}"), &patch_op(json!([{"op": "replace", "path": "externalId", "value": "e-1"}]))).await.status,
        200
    );
    // groups too
    assert_eq!(u.post("/Groups", &json!({"displayName": "G1", "externalId": "g-1"})).await.status, 201);
    u.post("/Groups", &json!({"displayName": "G2", "externalId": "g-1"})).await.assert_error(409, Some("uniqueness"));

    // relink: Okta re-assigns a renamed user with a new POST carrying its externalId
    let r = srv.tenant_key("relink", "admin").await;
    update_tenant(srv.app.service.layout(), "relink", &policy(ExternalIdPolicy::Relink)).await.unwrap();
    let orig = r.post("/Users", &with_ext("old.name@example.com", "00u-okta")).await;
    let oid = id_of(&orig.body);
    r.patch(&format!("/Users/{oid}"), &patch_op(json!([{"op": "replace", "value": {"active": false}}]))).await;
    let again = r.post("/Users", &with_ext("new.name@example.com", "00u-okta")).await;
    assert_eq!((again.status, id_of(&again.body)), (201, oid.clone()), "{}", again.raw);
    assert_eq!(again.header("location"), Some(format!("{}/Users/{oid}", srv.base).as_str()));
    assert_eq!((&again.body["userName"], &again.body["active"]), (&json!("new.name@example.com"), &json!(true)), "updated and reactivated");
    let list = r.get("/Users").await;
    assert_eq!(list.body["totalResults"], 1, "no second user");
    // a create without a held externalId creates as usual
    assert_eq!(r.post("/Users", &with_ext("other@example.com", "00u-other")).await.status, 201);
});

both_stores!(discovery_describes_what_is_served, |srv| {
    let c = &srv.client;
    let spc = c.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, 200);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["filter"]["supported"], true);
    assert_eq!(spc.body["bulk"]["supported"], true);
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(spc.body["pagination"]["cursor"], true);
    let rts = c.get("/ResourceTypes").await;
    assert_eq!(rts.body["totalResults"], 2);
    assert_eq!(rts.body["Resources"][0]["schemaExtensions"][0]["schema"], ENTERPRISE);
    assert_eq!(c.get("/ResourceTypes/User").await.body["endpoint"], "/Users");
    let schemas = c.get("/Schemas").await;
    assert_eq!(schemas.body["totalResults"], 3, "the access extension is listed only for tenants with a role policy");
    assert_eq!(c.get("/ResourceTypes/Group").await.body["endpoint"], "/Groups");
    let u = c.get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User").await;
    let attrs: Vec<&str> = u.body["attributes"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    assert!(attrs.contains(&"userName") && attrs.contains(&"x509Certificates"));
    let pw = u.body["attributes"].as_array().unwrap().iter().find(|a| a["name"] == "password").unwrap();
    assert_eq!((pw["mutability"].as_str(), pw["returned"].as_str()), (Some("writeOnly"), Some("never")));
    c.get("/Schemas/urn:nope").await.assert_error(404, None);
});

both_stores!(concurrent_creates_of_one_username_yield_one_user, |srv| {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let c = srv.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut u = user(if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" });
            u["displayName"] = json!(format!("attempt {i}"));
            c.post("/Users", &u).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409), "{statuses:?}");
    assert_eq!(srv.client.get("/Users").await.body["totalResults"], 1);
});

both_stores!(concurrent_puts_with_one_if_match_have_one_winner, |srv| {
    let c = &srv.client;
    let id = id_of(&c.post("/Users", &user("contended@example.com")).await.body);
    let etag = c.get(&format!("/Users/{id}")).await.header("etag").expect("etag").to_string();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (c, id, etag) = (c.clone(), id.clone(), etag.clone());
        tasks.push(tokio::spawn(async move {
            let mut u = user("contended@example.com");
            u["title"] = json!(format!("writer {i}"));
            let r = c.send("PUT", &format!("/Users/{id}"), Some(&u.to_string()), &[("if-match", &etag)]).await;
            (i, r.status)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, status) = t.await.unwrap();
        assert!(status == 200 || status == 412, "{status}");
        if status == 200 {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one PUT with the shared If-Match wins: {winners:?}");
    let now = c.get(&format!("/Users/{id}")).await.body;
    assert_eq!(now["title"], json!(format!("writer {}", winners[0])), "and its body is what is stored");
    assert_eq!(now["meta"]["version"], "W/\"2\"");
});

both_stores!(concurrent_patches_lose_no_update, |srv| {
    let c = &srv.client;
    let id = id_of(&c.post("/Users", &user("multi@example.com")).await.body);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let c = c.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let body =
                patch_op(json!([{"op": "add", "path": "emails", "value": [{"value": format!("e{i}@example.com"), "type": "other"}]}]));
            c.patch(&format!("/Users/{id}"), &body).await.status
        }));
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 200 || s == 503, "{s}");
    }
    let emails = c.get(&format!("/Users/{id}")).await.body["emails"].as_array().map(Vec::len).unwrap_or(0);
    // optimistic locking with retries: no update is lost silently (a 503 asks the client to retry)
    assert!(emails >= 1);
    let ver = c.get(&format!("/Users/{id}")).await.body["meta"]["version"].clone();
    assert_eq!(ver, json!(format!("W/\"{}\"", emails + 1)), "every applied PATCH bumped the version exactly once");
});
