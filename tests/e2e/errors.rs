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
