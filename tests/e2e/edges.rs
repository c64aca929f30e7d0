//! The edges of a request, on both stores: what is refused before the body is read is still
//! audited; bodies are JSON of the two SCIM media types, each member named once; a resource has
//! the same size limit on every store; a create's audit entry names what it made; and every
//! answer, hyper's own included, is a SCIM error body.

use super::*;
use scim_tests::both_stores;
use std::io::{Read, Write};

/// Sends raw bytes and reads the whole answer (the connection is closed after it).
fn raw(base: &str, bytes: &[u8]) -> String {
    let addr = base.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status and SCIM body of a raw answer, asserting it is a SCIM error.
fn scim_error(answer: &str) -> (u16, Value) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {answer:?}"));
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("{head}"));
    assert!(head.to_ascii_lowercase().contains("content-type: application/scim+json"), "{head}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(v["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{body}");
    assert_eq!(v["status"], status.to_string());
    (status, v)
}

async fn entries(srv: &scim_tests::Server) -> Vec<Value> {
    srv.app.service.layout().audit_entries("local", &scim_core::time::now()[..10]).await.unwrap()
}

both_stores!(refusals_before_the_body_is_read_are_audited, |srv| {
    let key_id = srv.token.split('_').nth(1).unwrap().to_string();
    // 2 MiB: over the limit, refused while reading
    let big = format!("{{\"userName\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let r = srv.client.post("/Users", &serde_json::from_str(&big).unwrap()).await;
    r.assert_error(413, None);
    // a chunked body whose framing is broken: 400, not 413
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n",
        srv.token
    );
    let (status, body) = scim_error(&raw(&srv.base, head.as_bytes()));
    assert_eq!((status, body["scimType"].as_str()), (400, Some("invalidSyntax")), "{body}");
    let log = entries(&srv).await;
    let mine: Vec<&Value> = log.iter().filter(|e| e["key_id"] == key_id.as_str() && e["path"] == "/Users").collect();
    assert!(mine.iter().any(|e| e["status"] == 413 && e["route"] == "users-create"), "the 413 is audited: {mine:?}");
    assert!(mine.iter().any(|e| e["status"] == 400), "the broken framing is audited: {mine:?}");
});

both_stores!(bodies_are_json_of_scim_media_types_each_member_once, |srv| {
    let c = &srv.client;
    let body = user("media@example.com").to_string();
    for (ct, status) in [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("*/*", 415),
        ("application/x-amz-json-1.0", 415),
        ("application/json; charset=utf-8", 201),
    ] {
        let r = c.send("POST", "/Users", Some(&body), &[("content-type", ct)]).await;
        assert_eq!(r.status, status, "{ct}: {}", r.raw);
        if status == 415 {
            r.assert_error(415, None);
        }
    }
    assert_eq!(c.get("/Users").await.body["totalResults"], 1, "only the JSON one was made");
    // a member named twice, at any level: 400 invalidSyntax naming it, nothing written
    let twice =
        r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@example.com","name":{"givenName":"A","givenName":"B"}}"#;
    let r = c.send("POST", "/Users", Some(twice), &[]).await;
    r.assert_error(400, Some("invalidSyntax"));
    assert!(r.raw.contains("name.givenName"), "{}", r.raw);
    let id = id_of(&c.get("/Users").await.body["Resources"][0]);
    let roles = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":"x","value":"y"}]}"#;
    c.send("PATCH", &format!("/Users/{id}"), Some(roles), &[]).await.assert_error(400, Some("invalidSyntax"));
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
    assert!(c.get(&format!("/Users/{id}")).await.body.get("title").is_none());
});

both_stores!(a_resource_has_one_size_limit_on_every_store, |srv| {
    let c = &srv.client;
    let max = scim_core::store::layout::MAX_DOCUMENT_BYTES;
    // /ServiceProviderConfig stays exactly RFC 7643's (an extension member there breaks strict
    // clients' models): the limit is stated in the refusal itself, and in docs/supported.md
    // under the body limit, over the resource limit: 413 naming the size, nothing written
    let mut big = user("big@example.com");
    big["title"] = json!("t".repeat(max + 1));
    let r = c.post("/Users", &big).await;
    r.assert_error(413, None);
    assert!(r.raw.contains(&max.to_string()), "the limit is named: {}", r.raw);
    assert_eq!(c.get("/Users").await.body["totalResults"], 0);
    // a PATCH that would grow a user past it: the same, and the user is as it was
    let id = id_of(&c.post("/Users", &user("grows@example.com")).await.body);
    let grow = patch_op(json!([{"op": "add", "path": "title", "value": "t".repeat(max)}]));
    c.patch(&format!("/Users/{id}"), &grow).await.assert_error(413, None);
    assert!(c.get(&format!("/Users/{id}")).await.body.get("title").is_none());
    // just under it: stored on both stores alike
    let mut fits = user("fits@example.com");
    fits["title"] = json!("t".repeat(max - 1024));
    assert_eq!(c.post("/Users", &fits).await.status, 201);
});

both_stores!(a_creates_audit_entry_names_what_it_made, |srv| {
    let r = srv.client.post("/Users", &user("audited@example.com")).await;
    let id = id_of(&r.body);
    let g = id_of(&srv.client.post("/Groups", &json!({"displayName": "Audited"})).await.body);
    let log = entries(&srv).await;
    for made in [&id, &g] {
        assert!(log.iter().any(|e| e["method"] == "POST" && e["status"] == 201 && e["resource_id"] == made.as_str()), "{made}: {log:?}");
    }
});

both_stores!(every_answer_is_a_scim_error, |srv| {
    // what hyper answers by itself, before our code runs
    let long_uri = format!("GET /scim/v2/Users?filter={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let big_head = format!("GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(500_000));
    let many: String = (0..150).map(|i| format!("X-{i}: a\r\n")).collect();
    let many = format!("GET /scim/v2/Users HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    for (bytes, status) in
        [(b"NOT HTTP\r\n\r\n".to_vec(), 400), (long_uri.into_bytes(), 414), (big_head.into_bytes(), 431), (many.into_bytes(), 431)]
    {
        let (got, _) = scim_error(&raw(&srv.base, &bytes));
        assert_eq!(got, status);
    }
    // after them, the server serves on
    assert_eq!(srv.client.get("/Users").await.status, 200);
});
