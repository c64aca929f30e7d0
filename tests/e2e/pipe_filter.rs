//! The pipe's filter (infra/template.yaml, `EventsPipe` → `FilterCriteria`) against the items
//! the code really writes: every item change that means an event must reach the enrichment
//! function, and every item that can never mean one (page checkpoints, claims, counters, the
//! rate counter, audit entries, keys, tenant configuration) must be dropped before it costs an
//! invocation. The records are built from the writes of a run through the same `App` the
//! Lambdas use, in the shape DynamoDB streams give the pipe (keys and images as attribute
//! values), and matched by a small evaluator of the operators the filter may use.

use super::*;
use scim_core::auth::Principal;
use scim_core::edge::{App, HttpRequest, json_request};
use scim_core::store::embedded::EmbeddedTable;
use scim_core::store::{Item, Query, Shared, StoreError, Table, Write};
use scim_core::tenancy;
use std::sync::{Arc, Mutex};

/// A table that keeps (old image, new image) of every item each write changes.
struct Streaming {
    inner: EmbeddedTable,
    changes: Mutex<Vec<(Option<Shared>, Option<Shared>)>>,
}

impl Streaming {
    async fn around(
        &self,
        keys: Vec<(String, String)>,
        work: impl std::future::Future<Output = Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        let before = self.inner.get_many(&keys).await?;
        work.await?;
        let after = self.inner.get_many(&keys).await?;
        let mut changes = self.changes.lock().unwrap();
        for (old, new) in before.into_iter().zip(after) {
            if old.is_some() || new.is_some() {
                changes.push((old, new));
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Table for Streaming {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Shared>, StoreError> {
        self.inner.get(pk, sk).await
    }
    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Shared>>, StoreError> {
        self.inner.get_many(keys).await
    }
    async fn query(&self, q: &Query) -> Result<Vec<Shared>, StoreError> {
        self.inner.query(q).await
    }
    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let keys = writes
            .iter()
            .filter_map(|w| match w {
                Write::Put { item, .. } => Some((item.pk.clone(), item.sk.clone())),
                Write::Delete { pk, sk, .. } | Write::Add { pk, sk, .. } => Some((pk.clone(), sk.clone())),
                Write::Check { .. } => None,
            })
            .collect();
        self.around(keys, self.inner.write(writes)).await
    }
    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError> {
        let mut n = 0;
        self.around(vec![(pk.to_string(), sk.to_string())], async {
            n = self.inner.count(pk, sk, by, expires_at).await?;
            Ok(())
        })
        .await?;
        Ok(n)
    }
}

/// An image as a stream record carries it: every attribute as a DynamoDB attribute value (the
/// attributes the filter can see: the keys, the TTL, the payload's presence).
fn image(item: &Item) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("pk".into(), json!({"S": item.pk}));
    m.insert("sk".into(), json!({"S": item.sk}));
    if let Some(doc) = &item.doc {
        m.insert("doc".into(), json!({"S": doc}));
    }
    if let Some(t) = item.expires_at {
        m.insert("expires_at".into(), json!({"N": t.to_string()}));
    }
    for (k, v) in &item.nums {
        m.insert(k.clone(), json!({"N": v.to_string()}));
    }
    Value::Object(m)
}

fn record(old: Option<&Item>, new: Option<&Item>) -> Value {
    let any = new.or(old).expect("an image");
    let mut dynamodb = json!({"Keys": {"pk": {"S": any.pk}, "sk": {"S": any.sk}}});
    if let Some(o) = old {
        dynamodb["OldImage"] = image(o);
    }
    if let Some(n) = new {
        dynamodb["NewImage"] = image(n);
    }
    let name = match (old, new) {
        (None, Some(_)) => "INSERT",
        (Some(_), None) => "REMOVE",
        _ => "MODIFY",
    };
    json!({"eventName": name, "dynamodb": dynamodb})
}

/// One leaf of an event pattern against a value (absent: `None`). Only the operators this
/// evaluator knows; any other fails the test (so the evaluator grows with the filter).
fn leaf_matches(matcher: &Value, value: Option<&Value>) -> bool {
    match matcher {
        Value::String(s) => value == Some(&Value::String(s.clone())),
        Value::Object(op) if op.len() == 1 => {
            let (name, arg) = op.iter().next().unwrap();
            match (name.as_str(), value) {
                ("exists", v) => arg.as_bool().expect("exists takes a boolean") == v.is_some(),
                ("prefix", Some(Value::String(s))) => s.starts_with(arg.as_str().expect("prefix takes a string")),
                ("prefix", _) => false,
                (other, _) => panic!("the pipe filter uses `{other}`, which this test cannot evaluate: extend leaf_matches"),
            }
        }
        other => panic!("unsupported matcher {other}"),
    }
}

/// EventBridge pattern semantics: every field of the pattern must match; a list is an OR of
/// matchers on the field's value; an object descends (an absent object has absent fields).
fn pattern_matches(pattern: &Value, event: Option<&Value>) -> bool {
    let Value::Object(fields) = pattern else { panic!("a pattern is an object") };
    fields.iter().all(|(k, p)| {
        let v = event.and_then(|e| e.get(k));
        match p {
            Value::Array(matchers) => matchers.iter().any(|m| leaf_matches(m, v)),
            Value::Object(_) => pattern_matches(p, v),
            other => panic!("unsupported pattern member {k}: {other}"),
        }
    })
}

fn pipe_filters() -> Vec<Value> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")).unwrap();
    let section = text.split("FilterCriteria:").nth(1).expect("the pipe's FilterCriteria");
    let filters: Vec<Value> = section
        .lines()
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("Filters:") || l.trim_start().starts_with("- Pattern:"))
        .filter_map(|l| l.trim_start().strip_prefix("- Pattern:"))
        .map(|p| serde_json::from_str(p.trim().trim_matches('\'')).expect("a JSON pattern"))
        .collect();
    assert!(!filters.is_empty(), "no patterns read from the template");
    filters
}

fn req(method: &str, path: &str, body: Option<Value>) -> HttpRequest {
    json_request(method, path, body.as_ref())
}

/// Provisioning as IdPs do it, touching every item family the request path writes.
async fn run(app: &App, p: &Principal) {
    const EXT: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
    let decl = json!({"attributes": [{"name": "badge", "type": "integer", "uniqueness": "server"}]});
    scim_core::declarations::put(app.service.layout(), "t", EXT, &decl).await.unwrap();
    let send = |method: &'static str, path: String, body: Option<Value>| async move {
        let r = app.handle(p, &req(method, &path, body), "http://x/scim/v2", None).await;
        serde_json::from_slice::<Value>(&r.body).unwrap_or(Value::Null)
    };
    let mut ids = Vec::new();
    for (i, name) in ["a@x.io", "b@x.io", "c@x.io"].iter().enumerate() {
        let u = send("POST", "/Users".into(), Some(json!({"userName": name, "externalId": format!("e{i}"), EXT: {"badge": i}}))).await;
        ids.push(id_of(&u));
    }
    let g = id_of(&send("POST", "/Groups".into(), Some(json!({"displayName": "Eng", "members": [{"value": ids[0]}]}))).await);
    let add = patch_op(json!([{"op": "add", "path": "members", "value": [{"value": ids[1]}]}]));
    send("PATCH", format!("/Groups/{g}"), Some(add)).await;
    let deactivate = patch_op(json!([{"op": "replace", "path": "active", "value": false}]));
    send("PATCH", format!("/Users/{}", ids[1]), Some(deactivate)).await;
    send("PUT", format!("/Users/{}", ids[2]), Some(json!({"userName": "c2@x.io", "externalId": "e9"}))).await;
    for q in ["/Users?startIndex=2&count=1", "/Users?startIndex=3&count=1", "/Users?cursor=&count=1", "/Groups?startIndex=1&count=1"] {
        send("GET", q.into(), None).await;
    }
    send("GET", "/Users/no-such-user".into(), None).await; // a failure: an audit entry
    send("DELETE", format!("/Users/{}", ids[0]), None).await;
    send("DELETE", format!("/Groups/{g}"), None).await;
    // a declared resource type's resources (and their unique claims, counters, checkpoints)
    let w = id_of(&send("POST", "/Widgets".into(), Some(json!({"serial": "w1", "externalId": "we"}))).await);
    send("POST", "/Widgets".into(), Some(json!({"serial": "w2"}))).await;
    send("GET", "/Widgets?startIndex=2&count=1".into(), None).await;
    send("PATCH", format!("/Widgets/{w}"), Some(patch_op(json!([{"op": "replace", "path": "serial", "value": "w3"}])))).await;
    send("DELETE", format!("/Widgets/{w}"), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipe_forwards_every_change_that_means_an_event_and_nothing_else() {
    let table = Arc::new(Streaming { inner: EmbeddedTable::in_memory(), changes: Mutex::new(Vec::new()) });
    let app = App::new(table.clone());
    scim_core::migrate::upgrade(app.service.layout(), &mut |_| {}).await.unwrap();
    tenancy::create_tenant(app.service.layout(), "t", "T").await.unwrap();
    let widget = json!({"name": "Widget", "endpoint": "/Widgets", "schema": "urn:acme:Widget", "schemaDefinitions": [
        {"id": "urn:acme:Widget", "attributes": [{"name": "serial", "type": "string", "uniqueness": "server"}]}]});
    scim_core::declarations::put_type(app.service.layout(), "t", "Widget", &widget).await.unwrap();
    let key = tenancy::create_key(app.service.layout(), "t", "admin", None).await.unwrap();
    let mut p = app.authenticate(Some(&format!("Bearer {}", key.token)), None).await.unwrap();
    p.rate_limit = Some(1000); // the rate counter is written too
    run(&app, &p).await;
    let changes = std::mem::take(&mut *table.changes.lock().unwrap());
    let filters = pipe_filters();
    let forwarded = |old: Option<&Item>, new: Option<&Item>| {
        let r = record(old, new);
        filters.iter().any(|f| pattern_matches(f, Some(&r)))
    };
    let (mut must, mut never, mut problems) = (0, 0, Vec::new());
    for (old, new) in &changes {
        let (old, new) = (old.as_deref(), new.as_deref());
        let any = new.or(old).unwrap();
        if !scim_core::events::derive(old, new).is_empty() {
            must += 1;
            if !forwarded(old, new) {
                problems.push(format!("dropped, but it means an event: {} / {}", any.pk, any.sk));
            }
        } else if scim_core::events::derive(None, Some(any)).is_empty() && scim_core::events::derive(Some(any), None).is_empty() {
            // an item that means no event whatever happens to it
            never += 1;
            if forwarded(old, new) {
                problems.push(format!("forwarded, but it can never mean an event: {} / {}", any.pk, any.sk));
            }
        }
    }
    let families = |f: &dyn Fn(&Item) -> bool| changes.iter().any(|(o, n)| n.as_deref().or(o.as_deref()).is_some_and(f));
    assert!(families(&|i| i.pk.ends_with("#CURSOR")), "page checkpoints were written (else this proves nothing)");
    assert!(families(&|i| i.pk.contains("#AUDIT#")) && families(&|i| i.pk.ends_with("#RATE")), "audit and rate items were written");
    assert!(families(&|i| i.sk.starts_with("MEMBER#")), "memberships were written");
    assert!(families(&|i| i.sk.starts_with("RES")), "a declared type's resources were written");
    assert!(must >= 10 && never >= 10, "{must} changes meaning events, {never} meaning none");
    assert!(problems.is_empty(), "the pipe filter is wrong for items the code writes:\n{}", problems.join("\n"));
}
