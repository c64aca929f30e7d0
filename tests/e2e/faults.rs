//! Injected store faults: for each write path, the client gets 429/503 with Retry-After (or the
//! server absorbs a lost race), the invariants hold (claims, counters, memberships), and a
//! retry succeeds.

use super::*;
use scim_core::store::StoreError;
use scim_core::store::metered::Call;
use scim_tests::both_stores;

fn group(name: &str, members: &[String]) -> Value {
    let m: Vec<Value> = members.iter().map(|u| json!({"value": u})).collect();
    json!({"displayName": name, "members": m})
}

fn members(g: &Value) -> usize {
    g["members"].as_array().map(Vec::len).unwrap_or(0)
}

both_stores!(create_under_throttling_and_outage, |srv| {
    let c = &srv.client;
    c.get("/ServiceProviderConfig").await; // the key's first use stamps it: not the write under test
    srv.metered.fail_nth(Some(Call::Write), 0, StoreError::Throttled);
    let r = c.post("/Users", &user("faulty@example.com")).await;
    r.assert_error(429, None);
    assert_eq!(r.header("retry-after"), Some("1"));
    srv.metered.fail_nth(Some(Call::Write), 0, StoreError::Unavailable("connection reset".into()));
    let r = c.post("/Users", &user("faulty@example.com")).await;
    r.assert_error(503, None);
    assert!(r.header("retry-after").is_some());
    assert!(!r.raw.contains("connection reset"), "causes stay in the logs");
    // nothing half-written: the name is free, the count is zero, and the retry works
    assert_eq!(c.get("/Users").await.body["totalResults"], 0);
    assert_eq!(c.post("/Users", &user("faulty@example.com")).await.status, 201);
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
    srv.metered.fail_nth(Some(Call::Get), 1, StoreError::Unavailable("timeout".into()));
    c.filter("/Users", r#"userName eq "faulty@example.com""#, "").await.assert_error(503, None);
});

both_stores!(a_lost_race_is_retried_by_the_server, |srv| {
    let c = &srv.client;
    let id = id_of(&c.post("/Users", &user("race2@example.com")).await.body);
    // the version check fails once, as if another writer got in first
    srv.metered.fail_nth(Some(Call::Write), 0, StoreError::Conflict { index: 0 });
    let r = c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "title", "value": "after race"}]))).await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(c.get(&format!("/Users/{id}")).await.body["title"], "after race");
    // with If-Match the client asked for exactly that version: 412, no retry
    srv.metered.fail_nth(Some(Call::Write), 0, StoreError::Conflict { index: 0 });
    let r = c
        .send(
            "PATCH",
            &format!("/Users/{id}"),
            Some(&patch_op(json!([{"op": "replace", "path": "title", "value": "x"}])).to_string()),
            &[("if-match", "W/\"2\"")],
        )
        .await;
    r.assert_error(412, None);
});

both_stores!(chunked_member_change_is_undone_on_failure, |srv| {
    let c = &srv.client;
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(id_of(&c.post("/Users", &user(&format!("chunk{i}@example.com"))).await.body));
    }
    let gid = id_of(&c.post("/Groups", &group("Chunky", &ids[..5])).await.body);
    let path = format!("/Groups/{gid}");
    let add: Vec<Value> = ids[5..].iter().map(|u| json!({"value": u})).collect();
    // 115 adds need two member transactions and a final group check; fail the second
    srv.metered.fail_nth(Some(Call::Write), 1, StoreError::Unavailable("dropped".into()));
    let r = c.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": add.clone()}]))).await;
    r.assert_error(503, None);
    assert_eq!(members(&c.get(&path).await.body), 5, "the applied chunk was undone");
    assert!(c.get(&format!("/Users/{}", ids[6])).await.body.get("groups").is_none());
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": add}]))).await.status, 204);
    assert_eq!(members(&c.get(&path).await.body), 120);
});

both_stores!(interrupted_deprovisioning_completes_on_retry, |srv| {
    let c = &srv.client;
    let uid = id_of(&c.post("/Users", &user("goner@example.com")).await.body);
    let g1 = id_of(&c.post("/Groups", &group("One", std::slice::from_ref(&uid))).await.body);
    let g2 = id_of(&c.post("/Groups", &group("Two", std::slice::from_ref(&uid))).await.body);
    // the membership sweep runs, then the final delete transaction fails
    srv.metered.fail_nth(Some(Call::Write), 1, StoreError::Unavailable("timeout".into()));
    c.delete(&format!("/Users/{uid}")).await.assert_error(503, None);
    assert_eq!(c.get(&format!("/Users/{uid}")).await.status, 200, "the user is still there");
    assert_eq!(members(&c.get(&format!("/Groups/{g1}")).await.body), 0, "but has no access left");
    assert_eq!(c.delete(&format!("/Users/{uid}")).await.status, 204);
    assert_eq!(members(&c.get(&format!("/Groups/{g2}")).await.body), 0);
    assert_eq!(c.get("/Users").await.body["totalResults"], 0);
    assert_eq!(c.post("/Users", &user("goner@example.com")).await.status, 201, "claims released");
});
