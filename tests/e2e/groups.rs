//! Groups and membership: Entra and Okta forms, cost, deprovisioning, size, isolation.

use super::*;
use scim_tests::both_stores;

pub fn group(name: &str, members: &[&str]) -> Value {
    let m: Vec<Value> = members.iter().map(|u| json!({"value": u})).collect();
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": m})
}

async fn users(c: &scim_tests::Client, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = c.post("/Users", &user(&format!("{prefix}{i}@example.com"))).await;
        assert_eq!(r.status, 201, "{}", r.raw);
        ids.push(id_of(&r.body));
    }
    ids
}

fn member_ids(g: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        g["members"].as_array().map(|a| a.iter().filter_map(|m| m["value"].as_str().map(str::to_string)).collect()).unwrap_or_default();
    v.sort();
    v
}

both_stores!(group_lifecycle_okta_and_entra_forms, |srv| {
    let c = &srv.client;
    let u = users(c, 4, "member").await;
    let r = c.post("/Groups", &group("Engineering", &[])).await;
    assert_eq!(r.status, 201, "{}", r.raw);
    assert_eq!(r.header("content-type"), Some("application/scim+json"));
    let gid = id_of(&r.body);
    let path = format!("/Groups/{gid}");
    assert_eq!(r.body["meta"]["resourceType"], "Group");
    assert_eq!(r.body["meta"]["location"], format!("{}/Groups/{gid}", srv.base));
    c.post("/Groups", &group("ENGINEERING", &[])).await.assert_error(409, Some("uniqueness"));

    // matching by name, as both IdPs do; Entra asks without members
    let f = c.filter("/Groups", r#"displayName eq "engineering""#, "&excludedAttributes=members").await;
    assert_eq!((f.status, f.body["totalResults"].clone()), (200, json!(1)));
    assert_eq!(c.filter("/Groups", r#"displayName eq "nope""#, "").await.body["totalResults"], 0);

    // Entra: add many in one request; Group PATCH answers 204
    let add = c
        .patch(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": u[0]}, {"value": u[1]}, {"value": u[2]}]}])))
        .await;
    assert_eq!(add.status, 204, "{}", add.raw);
    let mut want = vec![u[0].clone(), u[1].clone(), u[2].clone()];
    want.sort();
    let g = c.get(&path).await;
    assert_eq!(member_ids(&g.body), want);
    assert_eq!(g.body["members"][0]["type"], "User");
    assert!(
        g.body["members"][0]["$ref"].as_str().unwrap().ends_with(&format!("/Users/{}", g.body["members"][0]["value"].as_str().unwrap()))
    );
    assert!(c.get(&format!("{path}?excludedAttributes=members")).await.body.get("members").is_none());

    // the user's read-only groups agree
    let ug = c.get(&format!("/Users/{}", u[0])).await;
    assert_eq!(
        ug.body["groups"],
        json!([{"value": gid, "$ref": format!("{}/Groups/{gid}", srv.base), "display": "Engineering", "type": "direct"}])
    );

    // retries are no-ops; unknown ids are refused and nothing is written
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u[0]}]}]))).await.status, 204);
    let bad =
        c.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u[3]}, {"value": "no-such-user"}]}]))).await;
    bad.assert_error(400, Some("invalidValue"));
    assert!(bad.body["detail"].as_str().unwrap().contains("no-such-user"));
    assert_eq!(member_ids(&c.get(&path).await.body).len(), 3);

    // remove: Okta's filter form, Entra's value-list form, absent member no-op
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", u[0])}]))).await.status, 204);
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": u[1]}]}]))).await.status, 204);
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", u[0])}]))).await.status, 204);
    assert_eq!(member_ids(&c.get(&path).await.body), vec![u[2].clone()]);

    // Okta rename: path-less replace carrying the group's own id
    let rn = c.patch(&path, &patch_op(json!([{"op": "replace", "value": {"id": gid, "displayName": "Platform"}}]))).await;
    assert_eq!(rn.status, 204, "{}", rn.raw);
    let g = c.get(&path).await.body;
    assert_eq!(g["displayName"], "Platform");
    assert_eq!(c.filter("/Groups", r#"displayName eq "Engineering""#, "").await.body["totalResults"], 0);
    assert_eq!(c.post("/Groups", &group("Engineering", &[])).await.status, 201, "the old name is free");

    // PUT replaces the member set; replace-all and remove-all
    let put = c.put(&path, &group("Platform", &[&u[0], &u[3]])).await;
    assert_eq!(put.status, 200, "{}", put.raw);
    let mut w = vec![u[0].clone(), u[3].clone()];
    w.sort();
    assert_eq!(member_ids(&put.body), w);
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "replace", "path": "members", "value": [{"value": u[1]}]}]))).await.status, 204);
    assert_eq!(member_ids(&c.get(&path).await.body), vec![u[1].clone()]);
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "remove", "path": "members"}]))).await.status, 204);
    assert!(c.get(&path).await.body.get("members").is_none());

    // delete: 204, then 404; the user's groups forget it
    c.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u[2]}]}]))).await;
    assert_eq!(c.delete(&path).await.status, 204);
    c.get(&path).await.assert_error(404, None);
    c.delete(&path).await.assert_error(404, None);
    assert!(c.get(&format!("/Users/{}", u[2])).await.body.get("groups").is_none());
    assert_eq!(c.get("/Groups").await.body["totalResults"], 1);
});

both_stores!(membership_checks_read_one_item, |srv| {
    let c = &srv.client;
    let u = users(c, 2, "check").await;
    let gid = id_of(&c.post("/Groups", &group("Checkers", &[&u[0]])).await.body);
    for (uid, expect) in [(&u[0], 1), (&u[1], 0)] {
        let before = srv.metered.counts();
        let r = c.filter("/Groups", &format!(r#"id eq "{gid}" and members[value eq "{uid}"]"#), "&excludedAttributes=members").await;
        let after = srv.metered.counts();
        assert_eq!(r.body["totalResults"], expect, "{}", r.raw);
        assert!(r.body["Resources"].as_array().unwrap().iter().all(|g| g.get("members").is_none()));
        assert_eq!(after.query, before.query, "no member list is read");
        assert!(after.total() - before.total() <= 3, "auth + group + one member item");
    }
    let r = c.filter("/Groups", &format!(r#"members[value eq "{}"]"#, u[0]), "").await;
    assert_eq!(r.body["totalResults"], 1);
});

both_stores!(deactivating_or_deleting_a_user_removes_every_membership, |srv| {
    let c = &srv.client;
    let u = users(c, 2, "leaver").await;
    let g1 = id_of(&c.post("/Groups", &group("Sales", &[&u[0], &u[1]])).await.body);
    let g2 = id_of(&c.post("/Groups", &group("ws-acme-role-admin", &[&u[0]])).await.body);
    assert_eq!(c.get(&format!("/Users/{}", u[0])).await.body["groups"].as_array().map(Vec::len), Some(2));

    // Okta's deactivate
    let off = c.patch(&format!("/Users/{}", u[0]), &patch_op(json!([{"op": "replace", "value": {"active": false}}]))).await;
    assert_eq!(off.status, 200);
    assert!(off.body.get("groups").is_none(), "{}", off.raw);
    assert_eq!(member_ids(&c.get(&format!("/Groups/{g1}")).await.body), vec![u[1].clone()]);
    assert!(c.get(&format!("/Groups/{g2}")).await.body.get("members").is_none());
    // reactivation does not restore memberships: the IdP re-adds them
    c.patch(&format!("/Users/{}", u[0]), &patch_op(json!([{"op": "replace", "path": "active", "value": "True"}]))).await;
    assert!(c.get(&format!("/Users/{}", u[0])).await.body.get("groups").is_none());

    // delete removes memberships too
    assert_eq!(c.delete(&format!("/Users/{}", u[1])).await.status, 204);
    assert!(c.get(&format!("/Groups/{g1}")).await.body.get("members").is_none());
    // a group cannot take an inactive-then-deleted user back
    c.patch(&format!("/Groups/{g1}"), &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u[1]}]}])))
        .await
        .assert_error(400, Some("invalidValue"));
});

both_stores!(large_membership_changes_span_transactions, |srv| {
    let c = &srv.client;
    let n = if srv.store == scim_tests::Store::Dynamo { 150 } else { 450 };
    let u = users(c, n, "bulk").await;
    let gid = id_of(&c.post("/Groups", &group("Everyone", &[])).await.body);
    let path = format!("/Groups/{gid}");
    let all: Vec<Value> = u.iter().map(|id| json!({"value": id})).collect();
    let add = c.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": all}]))).await;
    assert_eq!(add.status, 204, "{}", add.raw);
    assert_eq!(member_ids(&c.get(&path).await.body).len(), n);
    // one more member costs a handful of round trips whatever the group's size
    let extra = users(c, 1, "late").await;
    let before = srv.metered.counts();
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": extra[0]}]}]))).await.status, 204);
    let cost = srv.metered.counts().total() - before.total();
    assert!(cost <= 6, "adding one member to a {n}-member group took {cost} round trips");
    let half: Vec<Value> = u[..n / 2].iter().map(|id| json!({"value": id})).collect();
    assert_eq!(c.patch(&path, &patch_op(json!([{"op": "remove", "path": "members", "value": half}]))).await.status, 204);
    assert_eq!(member_ids(&c.get(&path).await.body).len(), n - n / 2 + 1);
    assert_eq!(c.delete(&path).await.status, 204);
    assert!(c.get(&format!("/Users/{}", u[n - 1])).await.body.get("groups").is_none());
});

both_stores!(concurrent_member_adds_all_land, |srv| {
    let c = &srv.client;
    let u = users(c, 50, "conc").await;
    let gid = id_of(&c.post("/Groups", &group("Busy", &[])).await.body);
    let mut tasks = Vec::new();
    for id in u.clone() {
        let c = c.clone();
        let path = format!("/Groups/{gid}");
        tasks.push(tokio::spawn(async move {
            c.patch(&path, &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": id}]}]))).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 204);
    }
    assert_eq!(member_ids(&c.get(&format!("/Groups/{gid}")).await.body).len(), 50);
});

both_stores!(groups_are_tenant_isolated, |srv| {
    let a = &srv.client;
    let u = users(a, 1, "iso").await;
    let gid = id_of(&a.post("/Groups", &group("Secret", &[&u[0]])).await.body);
    let b = srv.tenant_key("tenant-g", "admin").await;
    b.get(&format!("/Groups/{gid}")).await.assert_error(404, None);
    b.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "remove", "path": "members"}]))).await.assert_error(404, None);
    b.delete(&format!("/Groups/{gid}")).await.assert_error(404, None);
    assert_eq!(b.filter("/Groups", r#"displayName eq "Secret""#, "").await.body["totalResults"], 0);
    // B cannot put A's user in its own group
    b.post("/Groups", &group("Mine", &[&u[0]])).await.assert_error(400, Some("invalidValue"));
    assert_eq!(member_ids(&a.get(&format!("/Groups/{gid}")).await.body), vec![u[0].clone()]);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_become_events_for_the_host_app() {
    let srv = scim_tests::Server::start(scim_tests::Store::Embedded).await;
    let c = &srv.client;
    let mut body = user("leaver@example.com");
    body["externalId"] = json!("ext-leaver");
    let uid = id_of(&c.post("/Users", &body).await.body);
    let gid = id_of(&c.post("/Groups", &group("Staff", &[&uid])).await.body);
    c.patch(&format!("/Users/{uid}"), &patch_op(json!([{"op": "replace", "path": "title", "value": "Boss"}]))).await;
    c.patch(&format!("/Users/{uid}"), &patch_op(json!([{"op": "replace", "value": {"active": false}}]))).await;
    c.delete(&format!("/Users/{uid}")).await;
    let events = srv.events.lock().unwrap().clone();
    let seq: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        seq,
        vec!["user.created", "group.created", "membership.added", "user.updated", "user.deactivated", "membership.removed", "user.deleted"]
    );
    let deact = &events[4].detail;
    assert_eq!(
        (deact["tenant"].as_str(), deact["id"].as_str(), deact["externalId"].as_str()),
        (Some("local"), Some(uid.as_str()), Some("ext-leaver"))
    );
    assert_eq!(deact["changed"], json!(["active"]));
    assert_eq!(events[5].detail["group"], json!(gid));
}
