//! The storage contract: the same assertions on every `Table` — the embedded store (in memory
//! and on disk), the metered wrapper around it, and DynamoDB on moto. What the layout and the
//! service rely on below the seam is written here once: reads, conditional writes, all-or-nothing
//! transactions that name the failing write, range queries on both indexes in both directions
//! with limits and exclusive starts, keys-only queries, counters, and TTL as readers see it.

use scim_core::store::embedded::EmbeddedTable;
use scim_core::store::metered::Metered;
use scim_core::store::{Cond, Index, Item, Query, Shared, StoreError, Table, Write};
use std::sync::Arc;

fn item(pk: &str, sk: &str, doc: &str, version: u64) -> Item {
    Item::new(pk, sk, doc.to_string(), version)
}

fn put(item: Item, cond: Cond) -> Write {
    Write::Put { item, cond }
}

fn conflict_at(r: Result<(), StoreError>) -> usize {
    match r {
        Err(StoreError::Conflict { index }) => index,
        other => panic!("expected a failed condition, got {other:?}"),
    }
}

fn sks(items: &[Shared]) -> Vec<&str> {
    items.iter().map(|i| i.sk.as_str()).collect()
}

/// Reads and conditional writes of single items.
async fn items_and_conditions(t: &dyn Table) {
    assert_eq!(t.get("P", "a").await.unwrap(), None);
    let mut a = item("P", "a", r#"{"x":1}"#, 1);
    a.gsi1 = Some(("G".into(), "a".into()));
    a.nums.insert("count".into(), 3);
    t.write(vec![put(a.clone(), Cond::Absent)]).await.unwrap();
    assert_eq!(t.get("P", "a").await.unwrap().as_deref(), Some(&a), "an item reads back as written");
    assert_eq!(conflict_at(t.write(vec![put(a.clone(), Cond::Absent)]).await), 0, "Absent fails on an existing item");
    assert_eq!(conflict_at(t.write(vec![put(item("P", "a", "{}", 2), Cond::Version(7))]).await), 0, "a stale version fails");
    t.write(vec![put(item("P", "a", r#"{"x":2}"#, 2), Cond::Version(1))]).await.unwrap();
    assert_eq!(t.get("P", "a").await.unwrap().map(|i| (i.version, i.doc.clone())), Some((2, Some(r#"{"x":2}"#.into()))));
    assert_eq!(conflict_at(t.write(vec![Write::Delete { pk: "P".into(), sk: "nope".into(), cond: Cond::Exists }]).await), 0);
    assert_eq!(conflict_at(t.write(vec![Write::Check { pk: "P".into(), sk: "a".into(), cond: Cond::Absent }]).await), 0);
    t.write(vec![Write::Delete { pk: "P".into(), sk: "nope".into(), cond: Cond::Always }]).await.unwrap();
    let got = t.get_many(&[("P".into(), "a".into()), ("P".into(), "missing".into()), ("P".into(), "a".into())]).await.unwrap();
    assert_eq!(
        got.iter().map(|i| i.as_ref().map(|i| i.sk.as_str())).collect::<Vec<_>>(),
        [Some("a"), None, Some("a")],
        "in the order asked"
    );
}

/// A transaction is all or nothing, and says which write's condition failed.
async fn transactions(t: &dyn Table) {
    t.write(vec![put(item("T", "held", "{}", 1), Cond::Absent)]).await.unwrap();
    let r = t
        .write(vec![
            put(item("T", "new", "{}", 1), Cond::Absent),
            Write::Add { pk: "T".into(), sk: "counter".into(), deltas: vec![("n".into(), 5)] },
            put(item("T", "held", "{}", 1), Cond::Absent),
        ])
        .await;
    assert_eq!(conflict_at(r), 2, "the failing write is named by its position");
    assert_eq!(t.get("T", "new").await.unwrap(), None, "nothing of a failed transaction is written");
    assert_eq!(t.get("T", "counter").await.unwrap(), None);
    t.write(vec![
        put(item("T", "new", "{}", 1), Cond::Absent),
        Write::Add { pk: "T".into(), sk: "counter".into(), deltas: vec![("n".into(), 5), ("m".into(), -1)] },
        Write::Delete { pk: "T".into(), sk: "held".into(), cond: Cond::Version(1) },
    ])
    .await
    .unwrap();
    let counter = t.get("T", "counter").await.unwrap().expect("an Add creates the item");
    assert_eq!((counter.nums.get("n"), counter.nums.get("m")), (Some(&5), Some(&-1)));
    assert_eq!(t.get("T", "held").await.unwrap(), None);
    assert_eq!(t.count("T", "rate", 1, i64::MAX / 2).await.unwrap(), 1);
    assert_eq!(t.count("T", "rate", 2, i64::MAX / 2).await.unwrap(), 3, "count adds and returns the new value");
}

/// Range queries on the primary key and on the index, both directions, limits, exclusive starts.
async fn queries(t: &dyn Table) {
    let mut writes = Vec::new();
    for (i, sk) in ["A#1", "A#2", "A#3", "B#1"].iter().enumerate() {
        let mut it = item("Q", sk, &format!(r#"{{"i":{i}}}"#), 1);
        it.gsi1 = Some(("QI".into(), format!("k{}", 9 - i)));
        writes.push(put(it, Cond::Absent));
    }
    t.write(writes).await.unwrap();
    let q = |lo: &str, hi: &str, forward: bool, limit: usize| Query {
        index: Index::Primary,
        pk: "Q".into(),
        lo: lo.into(),
        hi: hi.into(),
        forward,
        limit,
        keys_only: false,
    };
    assert_eq!(sks(&t.query(&q("A#", "A#\u{10FFFF}", true, 10)).await.unwrap()), ["A#1", "A#2", "A#3"]);
    assert_eq!(sks(&t.query(&q("A#", "A#\u{10FFFF}", false, 2)).await.unwrap()), ["A#3", "A#2"], "descending, limited");
    assert_eq!(sks(&t.query(&Query::prefix("Q", "A#", Some("A#1"), 10)).await.unwrap()), ["A#2", "A#3"], "after is exclusive");
    // an empty prefix is the whole partition (DynamoDB refuses an empty key value: no lower bound)
    assert_eq!(sks(&t.query(&Query::prefix("Q", "", None, 10)).await.unwrap()), ["A#1", "A#2", "A#3", "B#1"], "empty prefix");
    assert!(t.query(&q("C#", "C#\u{10FFFF}", true, 10)).await.unwrap().is_empty());
    let by_index = t
        .query(&Query { index: Index::Gsi1, pk: "QI".into(), lo: "k".into(), hi: "k\u{10FFFF}".into(), ..q("", "", true, 10) })
        .await
        .unwrap();
    assert_eq!(sks(&by_index), ["B#1", "A#3", "A#2", "A#1"], "the index orders by its own sort key");
    let keys = t.query(&Query { keys_only: true, ..q("A#", "A#\u{10FFFF}", true, 10) }).await.unwrap();
    assert_eq!(sks(&keys), ["A#1", "A#2", "A#3"], "a keys-only query still names the items");
}

/// An item past its TTL is gone for every reader, whether or not the store has deleted it yet.
async fn time_to_live(t: &dyn Table) {
    let now = scim_core::time::unix_now();
    let mut old = item("E", "X#old", "{}", 1);
    old.expires_at = Some(now - 10);
    let mut live = item("E", "X#live", "{}", 1);
    live.expires_at = Some(now + 3600);
    t.write(vec![put(old, Cond::Always), put(live.clone(), Cond::Always)]).await.unwrap();
    assert_eq!(t.get("E", "X#old").await.unwrap(), None);
    assert_eq!(t.get("E", "X#live").await.unwrap().as_deref(), Some(&live));
    let got = t.get_many(&[("E".into(), "X#old".into()), ("E".into(), "X#live".into())]).await.unwrap();
    assert_eq!(got.iter().map(Option::is_some).collect::<Vec<_>>(), [false, true]);
    assert_eq!(sks(&t.query(&Query::prefix("E", "X#", None, 10)).await.unwrap()), ["X#live"]);
}

/// DynamoDB's 400 KB item limit, kept by every store alike: an item over it is refused as too
/// large (never another failure), alone or in a transaction, and nothing of the transaction is
/// written; one just under it is stored.
async fn item_size(t: &dyn Table) {
    let doc = |n: usize| format!("{{\"x\":\"{}\"}}", "a".repeat(n));
    let over = item("S", "big", &doc(scim_core::store::MAX_ITEM_BYTES), 1);
    assert!(over.size() > scim_core::store::MAX_ITEM_BYTES);
    let r = t.write(vec![put(item("S", "small", "{}", 1), Cond::Absent), put(over, Cond::Absent)]).await;
    assert!(matches!(r, Err(StoreError::TooLarge { .. })), "{r:?}");
    assert_eq!(t.get("S", "small").await.unwrap(), None, "nothing of the transaction");
    let under = item("S", "fits", &doc(scim_core::store::MAX_ITEM_BYTES - 8192), 1);
    t.write(vec![put(under, Cond::Absent)]).await.unwrap();
}

async fn contract(t: &dyn Table) {
    items_and_conditions(t).await;
    transactions(t).await;
    queries(t).await;
    time_to_live(t).await;
    item_size(t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_the_contract() {
    contract(&EmbeddedTable::in_memory()).await;
    let dir = std::env::temp_dir().join(format!("scim-contract-{}", scim_tests::uuid_like()));
    contract(&EmbeddedTable::open(&dir).unwrap()).await;
    let reopened = EmbeddedTable::open(&dir).unwrap();
    assert!(reopened.get("T", "new").await.unwrap().is_some(), "what was written is there after a restart");
    assert!(reopened.get("T", "held").await.unwrap().is_none(), "and what was deleted is not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metered_wrapper_keeps_the_contract() {
    let metered = Metered::new(Arc::new(EmbeddedTable::in_memory()));
    contract(&metered).await;
    assert!(metered.counts().total() > 20, "and counts what passed through it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_keeps_the_contract() {
    let t = scim_tests::fresh_dynamo_table(&format!("contract-{}", scim_tests::uuid_like())).await;
    contract(&t).await;
}

/// A DynamoDB endpoint whose answers cannot be read (a proxy's error page, a reply cut short):
/// the store is unavailable (503 with Retry-After to the client), never an internal error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_dynamodb_answer_is_the_store_being_unavailable() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for answer in [
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/html\r\ncontent-length: 19\r\n\r\n<h1>Bad Gateway</h1>",
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/html\r\ncontent-length: 6\r\n\r\n<html>",
        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 9\r\n\r\nnot json!",
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0; 65536];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        let cfg = scim_core::store::dynamo::DynamoConfig {
            attempt_timeout: std::time::Duration::from_secs(5),
            operation_timeout: std::time::Duration::from_secs(10),
            ..scim_core::store::dynamo::DynamoConfig::new("t", "us-east-1", Some(format!("http://{addr}")))
        };
        let t = scim_core::store::dynamo::DynamoTable::connect(&cfg).unwrap();
        let e = t.get("P", "a").await.unwrap_err();
        assert!(matches!(e, StoreError::Unavailable { .. } | StoreError::Throttled), "{answer:?}: {e:?}");
        let scim: scim_core::error::ScimError = e.into();
        assert!(matches!(scim.status(), 503 | 429) && scim.retry_after().is_some(), "{answer:?}");
    }
}
