//! Bad input gets a clear SCIM Error and writes nothing.

use super::*;
use scim_tests::both_stores;

both_stores!(bad_requests_are_scim_errors_and_write_nothing, |srv| {
    let c = &srv.client;
    let id = id_of(&c.post("/Users", &user("keep@example.com")).await.body);
    let path = format!("/Users/{id}");
    let before = c.get(&path).await.body;

    // bodies
    c.send("POST", "/Users", Some("{not json"), &[]).await.assert_error(400, Some("invalidSyntax"));
    c.send("POST", "/Users", Some(""), &[]).await.assert_error(400, Some("invalidSyntax"));
    c.send("POST", "/Users", Some("[1,2]"), &[]).await.assert_error(400, Some("invalidSyntax"));
    c.post("/Users", &json!({"userName": 12.5e3, "active": "maybe"})).await.assert_error(400, Some("invalidValue"));
    c.post("/Users", &json!({"name": {"givenName": "No userName"}})).await.assert_error(400, Some("invalidValue"));
    c.post("/Users", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "x"}))
        .await
        .assert_error(400, Some("invalidValue"));
    c.post("/Users", &json!({"userName": "x", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}))
        .await
        .assert_error(400, Some("invalidValue"));
    c.post("/Users", &json!({"userName": "x", "meta": {"created": 5}, "name": "flat"})).await.assert_error(400, Some("invalidValue"));
    c.post("/Users", &json!({"userName": "x".repeat(600)})).await.assert_error(400, Some("invalidValue"));
    let big = format!("{{\"userName\":\"big\",\"displayName\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    c.send("POST", "/Users", Some(&big), &[]).await.assert_error(413, None);
    c.send("POST", "/Users", Some("userName=x"), &[("content-type", "application/x-www-form-urlencoded")]).await.assert_error(415, None);

    // PATCH
    let bad_ops = [
        (json!({"Operations": [{"op": "replace", "path": "title", "value": "a"}, {"op": "frobnicate", "path": "title"}]}), "invalidSyntax"),
        (
            patch_op(json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "replace", "path": "emails[type eq", "value": "x"}])),
            "invalidPath",
        ),
        (
            patch_op(json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "replace", "path": "nosuch.attr", "value": "x"}])),
            "invalidPath",
        ),
        (patch_op(json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "remove"}])), "noTarget"),
        (
            patch_op(json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "replace", "path": "id", "value": "new"}])),
            "mutability",
        ),
        (
            patch_op(json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "replace", "path": "active", "value": "perhaps"}])),
            "invalidValue",
        ),
        (patch_op(json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "remove", "path": "userName"}])), "invalidValue"),
        (json!({"schemas": ["urn:wrong"], "Operations": [{"op": "add", "path": "title", "value": "a"}]}), "invalidSyntax"),
        (patch_op(json!([])), "invalidSyntax"),
    ];
    for (body, t) in bad_ops {
        c.patch(&path, &body).await.assert_error(400, Some(t));
    }
    assert_eq!(c.get(&path).await.body, before, "a failed PATCH changes nothing");

    // filters and queries
    for f in
        [r#"userName eq "a"#, "userName zz \"a\"", "(userName eq \"a\"", "active gt true", "emails[type eq \"x\"", "userName eq \"a\" and"]
    {
        c.filter("/Users", f, "").await.assert_error(400, Some("invalidFilter"));
    }
    c.get("/Users?sortBy=nosuch").await.assert_error(400, Some("invalidValue"));
    c.get("/Users?sortOrder=sideways").await.assert_error(400, Some("invalidValue"));

    // routes and ids
    c.get("/Users/does-not-exist").await.assert_error(404, None);
    c.get("/Users/%00%ff").await.assert_error(404, None);
    c.get("/Nothing").await.assert_error(404, None);
    c.send("DELETE", "/Users", None, &[]).await.assert_error(405, None);
    c.put("/Users/does-not-exist", &user("ghost@example.com")).await.assert_error(404, None);

    // nothing above was written
    let list = c.get("/Users").await;
    assert_eq!(list.body["totalResults"], 1, "{}", list.raw);
    assert_eq!(c.get(&path).await.body, before);
});

both_stores!(authentication_and_roles, |srv| {
    let anon = scim_tests::Client::new(&srv.base, "");
    let r = anon.get("/Users").await;
    r.assert_error(401, None);
    assert!(r.header("www-authenticate").is_some());
    scim_tests::Client::new(&srv.base, "not-a-key").get("/Users").await.assert_error(401, None);
    let forged = format!("{}x", &srv.token[..srv.token.len() - 1]);
    scim_tests::Client::new(&srv.base, &forged).get("/ServiceProviderConfig").await.assert_error(401, None);
    let reader = srv.tenant_key("readers", "reader").await;
    assert_eq!(reader.get("/Users").await.status, 200);
    reader.post("/Users", &user("nope@example.com")).await.assert_error(403, None);
    reader.delete("/Users/x").await.assert_error(403, None);
});

both_stores!(request_size_limits_are_4xx_and_write_nothing, |srv| {
    let c = &srv.client;
    let uid = id_of(&c.post("/Users", &user("limits@example.com")).await.body);
    // more member ids than one request may change: refused before any of them is looked up
    let many: Vec<Value> = (0..10_001).map(|i| json!({"value": format!("u{i}")})).collect();
    let before = srv.metered.counts();
    c.post("/Groups", &json!({"displayName": "Too big", "members": many})).await.assert_error(400, Some("tooMany"));
    let gid = id_of(&c.post("/Groups", &json!({"displayName": "Small"})).await.body);
    let r = c.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "add", "path": "members", "value": many}]))).await;
    r.assert_error(400, Some("tooMany"));
    let after = srv.metered.counts();
    // one batched read per request authenticates it; none looks up the 10 001 ids
    assert!(after.get_many - before.get_many <= 3, "the ids were not looked up ({} batch reads)", after.get_many - before.get_many);
    assert_eq!(c.filter("/Groups", "displayName eq \"Too big\"", "").await.body["totalResults"], 0);
    // more PATCH operations than allowed
    let ops: Vec<Value> = (0..1001).map(|i| json!({"op": "replace", "path": "title", "value": format!("t{i}")})).collect();
    c.patch(&format!("/Users/{uid}"), &patch_op(json!(ops))).await.assert_error(400, Some("tooMany"));
    assert_eq!(c.get(&format!("/Users/{uid}")).await.body["meta"]["version"], "W/\"1\"");
    // a filter longer than 8 KiB
    let long = format!("userName eq \"{}\"", "a".repeat(9000));
    c.filter("/Users", &long, "").await.assert_error(400, Some("invalidFilter"));
    // many duplicate values normalise in one pass (no quadratic work before the body limit)
    let emails: Vec<Value> = (0..20_000).map(|i| json!({"value": format!("{}@x.io", i % 3)})).collect();
    let started = std::time::Instant::now();
    let r = c.patch(&format!("/Users/{uid}"), &patch_op(json!([{"op": "replace", "path": "emails", "value": emails}]))).await;
    assert_eq!((r.status, r.body["emails"].as_array().map(Vec::len)), (200, Some(3)), "{}", &r.raw[..r.raw.len().min(300)]);
    eprintln!("20 000 email values normalised in {:?}", started.elapsed());
});
