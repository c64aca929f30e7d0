//! Index pagination (Okta imports) and RFC 9865 cursor pagination.

use super::*;
use scim_tests::both_stores;
use std::collections::HashSet;

async fn seed(c: &scim_tests::Client, n: usize) {
    for i in 0..n {
        assert_eq!(c.post("/Users", &user(&format!("user{i:03}@example.com"))).await.status, 201);
    }
}

both_stores!(index_pages_cover_everything_once_at_constant_cost, |srv| {
    let c = &srv.client;
    seed(c, 45).await;
    let mut seen = Vec::new();
    let mut costs = Vec::new();
    let mut start = 1;
    loop {
        let before = srv.metered.counts();
        let p = c.get(&format!("/Users?startIndex={start}&count=10")).await;
        costs.push(srv.metered.counts().total() - before.total());
        assert_eq!(p.body["totalResults"], 45);
        assert_eq!(p.body["startIndex"], start);
        let res = p.body["Resources"].as_array().unwrap().clone();
        assert_eq!(p.body["itemsPerPage"], json!(res.len()));
        if res.is_empty() {
            break;
        }
        seen.extend(res.iter().map(|u| u["id"].as_str().unwrap().to_string()));
        start += 10;
    }
    assert_eq!(seen.len(), 45);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 45, "no duplicates across pages");
    // every page (auth + counters + checkpoint + one query + checkpoint write) costs the same
    assert!(costs.iter().all(|c| *c <= 5), "round trips per page: {costs:?}");
    // a deep page served again costs the same as the first
    let before = srv.metered.counts();
    let deep = c.get("/Users?startIndex=41&count=10").await;
    assert_eq!(deep.body["Resources"].as_array().unwrap().len(), 5);
    assert!(srv.metered.counts().total() - before.total() <= 5);
    // stable order: the same page twice is identical
    assert_eq!(
        c.get("/Users?startIndex=11&count=10").await.body["Resources"],
        c.get("/Users?startIndex=11&count=10").await.body["Resources"]
    );
    // after a delete, pages stay exact (stale checkpoints are not used)
    let victim = seen[5].clone();
    assert_eq!(c.delete(&format!("/Users/{victim}")).await.status, 204);
    let p = c.get("/Users?startIndex=11&count=10").await;
    assert_eq!(p.body["totalResults"], 44);
    assert_eq!(p.body["Resources"][0]["id"], json!(seen[11]));
    // edge cases
    let zero = c.get("/Users?count=0").await;
    assert_eq!((zero.body["totalResults"].clone(), zero.body["Resources"].clone()), (json!(44), json!([])));
    let past = c.get("/Users?startIndex=1000").await;
    assert_eq!(past.body["Resources"], json!([]));
    let neg = c.get("/Users?startIndex=-5&count=-1").await;
    assert_eq!((neg.body["startIndex"].clone(), neg.body["itemsPerPage"].clone()), (json!(1), json!(0)));
    c.get("/Users?startIndex=abc").await.assert_error(400, Some("invalidValue"));
});

both_stores!(cursor_pages_are_sealed_and_tenant_bound, |srv| {
    let c = &srv.client;
    seed(c, 23).await;
    let mut seen = HashSet::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let p = c.get(&format!("/Users?count=10&cursor={}", scim_tests::encode(&cursor))).await;
        assert_eq!(p.status, 200, "{}", p.raw);
        assert!(p.body.get("startIndex").is_none());
        for u in p.body["Resources"].as_array().unwrap() {
            assert!(seen.insert(u["id"].as_str().unwrap().to_string()));
        }
        pages += 1;
        match p.body["nextCursor"].as_str() {
            Some(n) => cursor = n.to_string(),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (23, 3));
    let first = c.get("/Users?count=5&cursor=").await.body["nextCursor"].as_str().unwrap().to_string();
    // tampering, another query, another tenant: all refused
    let mut forged = first.clone();
    forged.insert(3, 'A');
    c.get(&format!("/Users?count=5&cursor={}", scim_tests::encode(&forged))).await.assert_error(400, Some("invalidCursor"));
    c.get(&format!("/Users?count=5&cursor={}&filter={}", scim_tests::encode(&first), scim_tests::encode("active pr")))
        .await
        .assert_error(400, Some("invalidCursor"));
    let other = srv.tenant_key("other-tenant", "admin").await;
    other.get(&format!("/Users?count=5&cursor={}", scim_tests::encode(&first))).await.assert_error(400, Some("invalidCursor"));
    // filtered cursor pages
    let f = c.get(&format!("/Users?count=4&cursor=&filter={}", scim_tests::encode(r#"userName sw "user01""#))).await;
    assert_eq!(f.body["totalResults"], 10);
    let next = f.body["nextCursor"].as_str().unwrap().to_string();
    let f2 = c
        .get(&format!("/Users?count=4&cursor={}&filter={}", scim_tests::encode(&next), scim_tests::encode(r#"userName sw "user01""#)))
        .await;
    assert_eq!(f2.body["Resources"][0]["userName"], "user014@example.com");
    c.get("/Users?cursor=&startIndex=2").await.assert_error(400, Some("invalidValue"));
});
