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
    srv.metered.fail_nth(Some(Call::Write), 0, StoreError::unavailable("connection reset"));
    let r = c.post("/Users", &user("faulty@example.com")).await;
    r.assert_error(503, None);
    assert!(r.header("retry-after").is_some());
    assert!(!r.raw.contains("connection reset"), "causes stay in the logs");
    // nothing half-written: the name is free, the count is zero, and the retry works
    assert_eq!(c.get("/Users").await.body["totalResults"], 0);
    assert_eq!(c.post("/Users", &user("faulty@example.com")).await.status, 201);
    assert_eq!(c.get("/Users").await.body["totalResults"], 1);
    srv.metered.fail_nth(Some(Call::Get), 1, StoreError::unavailable("timeout"));
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
    srv.metered.fail_nth(Some(Call::Write), 1, StoreError::unavailable("dropped"));
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
    srv.metered.fail_nth(Some(Call::Write), 1, StoreError::unavailable("timeout"));
    c.delete(&format!("/Users/{uid}")).await.assert_error(503, None);
    assert_eq!(c.get(&format!("/Users/{uid}")).await.status, 200, "the user is still there");
    assert_eq!(members(&c.get(&format!("/Groups/{g1}")).await.body), 0, "but has no access left");
    assert_eq!(c.delete(&format!("/Users/{uid}")).await.status, 204);
    assert_eq!(members(&c.get(&format!("/Groups/{g2}")).await.body), 0);
    assert_eq!(c.get("/Users").await.body["totalResults"], 0);
    assert_eq!(c.post("/Users", &user("goner@example.com")).await.status, 201, "claims released");
});

/// The ways a store call fails in the matrix below.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// DynamoDB asks us to slow down (ProvisionedThroughputExceeded, ThrottlingException).
    Throttled,
    /// The call timed out before reaching the store.
    Timeout,
    /// A transaction cancelled for a reason other than a condition (TransactionConflict).
    Cancelled,
    /// The store applied the call, then the connection dropped before the reply.
    DroppedAfterApplying,
}

const FAULTS: [Fault; 4] = [Fault::Throttled, Fault::Timeout, Fault::Cancelled, Fault::DroppedAfterApplying];

fn inject(srv: &scim_tests::Server, fault: Fault, calls: Option<Call>, skip: usize) {
    let m = &srv.metered;
    match fault {
        Fault::Throttled => m.fail_nth(calls, skip, StoreError::Throttled),
        Fault::Timeout => m.fail_nth(calls, skip, StoreError::unavailable("operation timed out")),
        Fault::Cancelled => m.fail_nth(calls, skip, StoreError::unavailable("transaction cancelled: [TransactionConflict]")),
        Fault::DroppedAfterApplying => m.fail_nth_after_applying(calls, skip, StoreError::unavailable("connection dropped")),
    }
}

/// The tenant's items, read straight from the table (below the API, so nothing is hidden):
/// claims ↔ resources, counters ↔ resources, memberships ↔ users and groups.
async fn invariants(srv: &scim_tests::Server, tenant: &str) -> Result<(), String> {
    use scim_core::store::Query;
    use scim_core::store::Table;
    use scim_core::store::layout::{Kind, keys::tenant_pk};
    let layout = srv.app.service.layout();
    let table = &srv.metered;
    let mut items = Vec::new();
    for prefix in ["USER#", "GROUP#", "USERNAME#", "UEXT#", "UEXTID#", "GROUPNAME#", "GEXT#", "GEXTID#"] {
        items.extend(table.query(&Query::prefix(tenant_pk(tenant), prefix, None, 100_000)).await.map_err(|e| e.to_string())?);
    }
    let doc = |i: &scim_core::store::Item| -> Value { i.doc.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or(Value::Null) };
    let mut users = std::collections::BTreeMap::new();
    let mut groups = std::collections::BTreeMap::new();
    for i in &items {
        if let Some(id) = i.sk.strip_prefix("USER#") {
            users.insert(id.to_string(), doc(i));
        } else if let Some(id) = i.sk.strip_prefix("GROUP#") {
            groups.insert(id.to_string(), doc(i));
        }
    }
    // every claim names a live resource holding that value, and every resource holds its claims
    let mut claims = std::collections::BTreeSet::new();
    for i in &items {
        let (table, attr, exact) = match i.sk.split_once('#').map(|(p, _)| p) {
            Some("USERNAME") => (&users, "userName", false),
            Some("UEXT" | "UEXTID") => (&users, "externalId", true),
            Some("GROUPNAME") => (&groups, "displayName", false),
            Some("GEXT" | "GEXTID") => (&groups, "externalId", true),
            _ => continue,
        };
        let mut value = i.sk.split_once('#').map(|(_, v)| v.to_string()).unwrap_or_default();
        if i.sk.starts_with("UEXTID#") || i.sk.starts_with("GEXTID#") {
            // an index entry: the escaped externalId, '#', the holder's id
            let (ext, holder) = value.rsplit_once('#').ok_or_else(|| format!("index entry {} has no holder", i.sk))?;
            if holder != doc(i)["id"] {
                return Err(format!("index entry {} holds {}", i.sk, doc(i)["id"]));
            }
            value = ext.replace("%23", "#").replace("%25", "%");
        }
        let owner = doc(i)["id"].as_str().unwrap_or_default().to_string();
        let res = table.get(&owner).ok_or_else(|| format!("claim {} names a missing resource {owner:?}", i.sk))?;
        let held = res[attr].as_str().unwrap_or_default();
        if value != if exact { held.to_string() } else { scim_core::casefold::fold(held) } {
            return Err(format!("claim {} but {owner} holds {attr} {held:?}", i.sk));
        }
        claims.insert(i.sk.clone());
    }
    for (id, u) in &users {
        let name = format!("USERNAME#{}", scim_core::casefold::fold(u["userName"].as_str().unwrap_or_default()));
        if !claims.contains(&name) {
            return Err(format!("user {id} lacks its claim {name}"));
        }
        if let Some(e) = u["externalId"].as_str()
            && !claims.contains(&format!("UEXTID#{}#{id}", e.replace('%', "%25").replace('#', "%23")))
        {
            return Err(format!("user {id} lacks its externalId index entry"));
        }
    }
    for (id, g) in &groups {
        let name = format!("GROUPNAME#{}", scim_core::casefold::fold(g["displayName"].as_str().unwrap_or_default()));
        if !claims.contains(&name) {
            return Err(format!("group {id} lacks its claim {name}"));
        }
    }
    // counters match the items (totalResults is read from them)
    for (kind, n) in [(Kind::User, users.len()), (Kind::Group, groups.len())] {
        let c = layout.counts(tenant, kind).await.map_err(|e| e.to_string())?;
        if c.total != n as u64 {
            return Err(format!("{kind:?} counter {} but {n} items", c.total));
        }
    }
    let inactive = users.values().filter(|u| u["active"] == json!(false)).count() as u64;
    let counted = layout.counts(tenant, Kind::User).await.map_err(|e| e.to_string())?.inactive;
    if counted != inactive {
        return Err(format!("inactive counter {counted} but {inactive} inactive users"));
    }
    // memberships join live users and live groups; deactivated users belong to none
    for gid in groups.keys() {
        for uid in layout.members(tenant, gid).await.map_err(|e| e.to_string())? {
            let u = users.get(&uid).ok_or_else(|| format!("group {gid} lists a missing user {uid}"))?;
            if u["active"] == json!(false) {
                return Err(format!("deactivated user {uid} is still in group {gid}"));
            }
        }
    }
    for uid in users.keys() {
        for gid in layout.groups_of(tenant, uid).await.map_err(|e| e.to_string())? {
            if !groups.contains_key(&gid) {
                return Err(format!("user {uid} is a member of a missing group {gid}"));
            }
        }
    }
    Ok(())
}

/// Every write path of the API.
#[derive(Debug, Clone, Copy)]
enum Op {
    CreateUser,
    ReplaceUser,
    RenameUser,
    DeactivateUser,
    DeleteUser,
    CreateGroup,
    AddMember,
    RemoveMember,
    ReplaceGroup,
    DeleteGroup,
}

const OPS: [Op; 10] = [
    Op::CreateUser,
    Op::ReplaceUser,
    Op::RenameUser,
    Op::DeactivateUser,
    Op::DeleteUser,
    Op::CreateGroup,
    Op::AddMember,
    Op::RemoveMember,
    Op::ReplaceGroup,
    Op::DeleteGroup,
];

/// A tenant of its own per case: user `a` in groups `g` and `h`, user `b` in none.
struct Fixture {
    c: scim_tests::Client,
    tenant: String,
    a: String,
    b: String,
    g: String,
}

async fn fixture(srv: &scim_tests::Server, n: usize) -> Fixture {
    let tenant = format!("fault{n}");
    let c = srv.tenant_key(&tenant, "admin").await;
    let mut a = user("a@example.com");
    a["externalId"] = json!("ext-a");
    let a = id_of(&c.post("/Users", &a).await.body);
    let b = id_of(&c.post("/Users", &user("b@example.com")).await.body);
    let g = id_of(&c.post("/Groups", &group("G", std::slice::from_ref(&a))).await.body);
    id_of(&c.post("/Groups", &group("H", std::slice::from_ref(&a))).await.body);
    Fixture { c, tenant, a, b, g }
}

async fn perform(op: Op, fx: &Fixture) -> scim_tests::Resp {
    let (c, a, b, g) = (&fx.c, &fx.a, &fx.b, &fx.g);
    match op {
        Op::CreateUser => {
            let mut u = user("new@example.com");
            u["externalId"] = json!("ext-new");
            c.post("/Users", &u).await
        }
        Op::ReplaceUser => {
            let mut u = user("renamed@example.com");
            u["externalId"] = json!("ext-renamed");
            c.put(&format!("/Users/{a}"), &u).await
        }
        Op::RenameUser => {
            c.patch(&format!("/Users/{a}"), &patch_op(json!([{"op": "replace", "path": "userName", "value": "patched@example.com"}]))).await
        }
        Op::DeactivateUser => c.patch(&format!("/Users/{a}"), &patch_op(json!([{"op": "replace", "value": {"active": false}}]))).await,
        Op::DeleteUser => c.delete(&format!("/Users/{a}")).await,
        Op::CreateGroup => c.post("/Groups", &group("New", &[a.clone(), b.clone()])).await,
        Op::AddMember => {
            c.patch(&format!("/Groups/{g}"), &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": b}]}]))).await
        }
        Op::RemoveMember => {
            c.patch(&format!("/Groups/{g}"), &patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}]))).await
        }
        Op::ReplaceGroup => c.put(&format!("/Groups/{g}"), &group("Renamed", std::slice::from_ref(b))).await,
        Op::DeleteGroup => c.delete(&format!("/Groups/{g}")).await,
    }
}

/// Whether the operation's effect is in place, as a client sees it.
async fn done(op: Op, fx: &Fixture) -> Result<(), String> {
    let (c, a, b, g) = (&fx.c, &fx.a, &fx.b, &fx.g);
    let total = |r: scim_tests::Resp| r.body["totalResults"].as_u64().unwrap_or(99);
    let member_ids = |v: &Value| -> Vec<String> {
        let mut m: Vec<String> =
            v["members"].as_array().into_iter().flatten().filter_map(|m| m["value"].as_str().map(str::to_string)).collect();
        m.sort();
        m
    };
    let ok = match op {
        Op::CreateUser => total(c.filter("/Users", r#"externalId eq "ext-new""#, "").await) == 1,
        Op::ReplaceUser => {
            let u = c.get(&format!("/Users/{a}")).await.body;
            u["userName"] == "renamed@example.com" && u["externalId"] == "ext-renamed"
        }
        Op::RenameUser => total(c.filter("/Users", r#"userName eq "patched@example.com""#, "").await) == 1,
        Op::DeactivateUser => {
            let u = c.get(&format!("/Users/{a}")).await.body;
            u["active"] == json!(false) && u.get("groups").is_none_or(|g| g.as_array().is_some_and(Vec::is_empty))
        }
        Op::DeleteUser => c.get(&format!("/Users/{a}")).await.status == 404,
        Op::CreateGroup => {
            let l = c.filter("/Groups", r#"displayName eq "New""#, "").await.body;
            let mut want = vec![a.clone(), b.clone()];
            want.sort();
            l["totalResults"] == 1 && member_ids(&l["Resources"][0]) == want
        }
        Op::AddMember => {
            let mut want = vec![a.clone(), b.clone()];
            want.sort();
            member_ids(&c.get(&format!("/Groups/{g}")).await.body) == want
        }
        Op::RemoveMember => member_ids(&c.get(&format!("/Groups/{g}")).await.body).is_empty(),
        Op::ReplaceGroup => {
            let v = c.get(&format!("/Groups/{g}")).await.body;
            v["displayName"] == "Renamed" && member_ids(&v) == vec![b.clone()]
        }
        Op::DeleteGroup => c.get(&format!("/Groups/{g}")).await.status == 404,
    };
    if ok { Ok(()) } else { Err(format!("{op:?} is not in effect")) }
}

fn success(op: Op, status: u16) -> bool {
    match op {
        Op::CreateUser | Op::CreateGroup => status == 201,
        Op::DeleteUser | Op::DeleteGroup | Op::AddMember | Op::RemoveMember => status == 204,
        _ => status == 200,
    }
}

// Every write path × every fault kind × every store call the operation makes (the 1st, the 2nd,
// … until the operation makes no more calls): the client gets 429/503 with Retry-After, the
// tenant's items stay consistent, and the client's retry completes the operation (or answers
// what a completed one would: 409 for a create, 404 for a delete, when the lost reply hid success).
// The faults are injected above the store seam, so the service code under test is the same on
// both stores; on moto (slow: it copies a table per transaction) the matrix keeps the two kinds
// that differ in what the store did — failed before, or applied and the reply lost — at every
// write call, and the embedded store runs every kind at every call, reads included.
both_stores!(every_write_path_survives_every_fault_at_every_call, |first_srv| {
    let mut n = 0;
    let mut cases = 0;
    let started = std::time::Instant::now();
    for op in OPS {
        // a fresh table per write path keeps moto fast (it copies a table per transaction)
        let srv = scim_tests::Server::start(first_srv.store).await;
        let (faults, calls): (&[Fault], Option<Call>) = match first_srv.store {
            scim_tests::Store::Embedded => (&FAULTS, None),
            scim_tests::Store::Dynamo => (&[Fault::Timeout, Fault::DroppedAfterApplying], Some(Call::Write)),
        };
        for &fault in faults {
            for skip in 0..60 {
                n += 1;
                let fx = fixture(&srv, n).await;
                inject(&srv, fault, calls, skip);
                let first = perform(op, &fx).await;
                let unfired = srv.metered.clear_faults();
                let what = format!("{op:?} with {fault:?} at call {skip}");
                if unfired > 0 {
                    // the operation made fewer calls than `skip`: every position has been tried
                    assert!(success(op, first.status), "{what} (no fault fired): {} {}", first.status, first.raw);
                    done(op, &fx).await.unwrap_or_else(|e| panic!("{what}: {e}"));
                    break;
                }
                cases += 1;
                if !success(op, first.status) {
                    assert!(matches!(first.status, 429 | 503), "{what}: {} {}", first.status, first.raw);
                    first.assert_error(first.status, None);
                    assert!(first.header("retry-after").is_some(), "{what}: no Retry-After");
                }
                invariants(&srv, &fx.tenant).await.unwrap_or_else(|e| panic!("{what}, before the retry: {e}"));
                if !success(op, first.status) {
                    let retry = perform(op, &fx).await;
                    let applied_answer = match op {
                        Op::CreateUser | Op::CreateGroup => retry.status == 409,
                        Op::DeleteUser | Op::DeleteGroup => retry.status == 404,
                        _ => false,
                    };
                    assert!(
                        success(op, retry.status) || (applied_answer && matches!(fault, Fault::DroppedAfterApplying)),
                        "{what}, the retry: {} {}",
                        retry.status,
                        retry.raw
                    );
                    invariants(&srv, &fx.tenant).await.unwrap_or_else(|e| panic!("{what}, after the retry: {e}"));
                }
                done(op, &fx).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }
    assert!(cases > 40, "only {cases} faulted calls were tried");
    eprintln!(
        "fault matrix ({:?}): {cases} faulted calls over {} write paths in {:.1} s",
        first_srv.store,
        OPS.len(),
        started.elapsed().as_secs_f64()
    );
});
