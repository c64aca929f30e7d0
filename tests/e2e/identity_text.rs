//! Identity text: names that differ only in Unicode form or case are one name (409), the text
//! sent is kept and returned, and control characters are refused.

use super::*;
use scim_tests::both_stores;

both_stores!(names_are_compared_caselessly_in_any_unicode_form, |srv| {
    let c = &srv.client;
    let precomposed = "Jos\u{e9}@example.com";
    let decomposed = "Jose\u{301}@example.com";
    let made = c.post("/Users", &user(precomposed)).await;
    assert_eq!(made.status, 201, "{}", made.raw);
    c.post("/Users", &user(decomposed)).await.assert_error(409, Some("uniqueness"));
    c.post("/Users", &user("JOSE\u{301}@EXAMPLE.COM")).await.assert_error(409, Some("uniqueness"));
    assert_eq!(c.post("/Users", &user("stra\u{df}e")).await.status, 201);
    c.post("/Users", &user("STRASSE")).await.assert_error(409, Some("uniqueness"));
    // filters find the user by any form of its name, which comes back as it was sent
    for form in [decomposed, "JOS\u{c9}@EXAMPLE.COM", precomposed] {
        let r = c.filter("/Users", &format!("userName eq \"{form}\""), "").await;
        assert_eq!(r.body["totalResults"], 1, "{form}: {}", r.raw);
        assert_eq!(r.body["Resources"][0]["userName"], precomposed);
    }
    assert_eq!(c.filter("/Users", "userName eq \"strasse\"", "").await.body["Resources"][0]["userName"], "stra\u{df}e");
    assert_eq!(c.filter("/Users", "userName sw \"STRA\"", "&sortBy=userName").await.body["totalResults"], 1);
    // a rename to another form of a taken name is refused too; to its own other form, allowed
    let id = id_of(&made.body);
    let rename = |name: &str| patch_op(json!([{"op": "replace", "path": "userName", "value": name}]));
    c.patch(&format!("/Users/{id}"), &rename("Strasse")).await.assert_error(409, Some("uniqueness"));
    let own = c.patch(&format!("/Users/{id}"), &rename(decomposed)).await;
    assert_eq!((own.status, own.body["userName"].as_str()), (200, Some(decomposed)), "{}", own.raw);
    // groups: displayName likewise
    assert_eq!(c.post("/Groups", &json!({"displayName": "\u{c5}rhus Team"})).await.status, 201);
    c.post("/Groups", &json!({"displayName": "A\u{30a}RHUS TEAM"})).await.assert_error(409, Some("uniqueness"));
});

both_stores!(control_characters_in_identity_text_are_refused, |srv| {
    let c = &srv.client;
    for (attr, text) in
        [("userName", "ann\u{0}@example.com"), ("userName", "ann\u{85}x"), ("displayName", "Ann\nLee"), ("externalId", "x\u{7f}")]
    {
        let mut body = user("ctl@example.com");
        body[attr] = json!(text);
        let r = c.post("/Users", &body).await;
        r.assert_error(400, Some("invalidValue"));
        assert!(r.body["detail"].as_str().unwrap().contains(attr), "{}", r.raw);
    }
    c.post("/Groups", &json!({"displayName": "Team\u{1b}[31m"})).await.assert_error(400, Some("invalidValue"));
    let id = id_of(&c.post("/Users", &user("clean@example.com")).await.body);
    c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "externalId", "value": "a\u{9}b"}])))
        .await
        .assert_error(400, Some("invalidValue"));
    assert_eq!(c.get(&format!("/Users/{id}")).await.body["meta"]["version"], "W/\"1\"", "nothing written");
    assert_eq!(c.filter("/Users", "userName eq \"ctl@example.com\"", "").await.body["totalResults"], 0);
});
