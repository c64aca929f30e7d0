//! The other half of the IAM check: `infra/iam_check.py` proves what each function's role
//! allows (`infra/iam-expected.tsv`); this proves the code never needs more. Every function's
//! routes run through the same `App` the Lambdas use, over a table that records each DynamoDB
//! action and item family the code touches, and every recorded call must be in that function's
//! row of the expectations file — otherwise it would be an AccessDenied in AWS. A call made while
//! the work acts for a tenant (`store::scope`) is made in AWS with that tenant's session of the
//! function's tenant role (rows `<function>@tenant`) and must touch that tenant's items only.

use super::*;
use scim_core::auth::Principal;
use scim_core::edge::{App, HttpRequest, ROUTES, json_request};
use scim_core::store::embedded::EmbeddedTable;
use scim_core::store::{Index, Query, Shared, StoreError, Table, Write};
use scim_core::tenancy;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

const EXT: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";

/// A table that records (action, item family, credentials) of every call while recording is on;
/// credentials are `tenant` inside a tenant scope, `role` outside.
struct Recording {
    inner: EmbeddedTable,
    calls: Mutex<Option<BTreeSet<(String, String)>>>,
}

/// The tenant whose items a partition key names (`None`: an item of no tenant).
fn tenant_of(pk: &str) -> Option<&str> {
    if let Some(id) = pk.strip_prefix("KEY#").or_else(|| pk.strip_prefix("KEYUSE#")).or_else(|| pk.strip_prefix("OAUTH#")) {
        return scim_core::tenancy::id_tenant(id);
    }
    let rest = pk.strip_prefix("TENANT#").or_else(|| pk.strip_prefix("CONF#"))?;
    Some(rest.split('#').next().unwrap_or(rest))
}

/// The item family of a partition key, as infra/iam_check.py names them.
fn family(pk: &str, index: bool) -> &'static str {
    match pk {
        "TENANTS" => "registry",
        "SERVER" => "server",
        "LAYOUT" => "layout",
        _ if pk.starts_with("KEYUSE#") => "key-use",
        _ if pk.starts_with("KEY#") && pk.contains('.') => "key",
        _ if pk.starts_with("KEY#") => "key-pointer",
        _ if pk.starts_with("CONF#") => "tenant-config",
        _ if pk.starts_with("OAUTH#") && pk.contains('.') => "oauth-client",
        _ if pk.starts_with("OAUTH#") => "oauth-pointer",
        _ if index => "membership-index",
        _ if pk.ends_with("#CURSOR") => "checkpoint",
        _ if pk.ends_with("#RATE") => "rate",
        _ if pk.contains("#AUDIT#") => "audit",
        _ if pk.contains("#GROUP#") => "membership",
        _ if pk.starts_with("TENANT#") => "tenant-data",
        _ => "unknown",
    }
}

impl Recording {
    fn note(&self, action: &str, pk: &str, index: bool) {
        let scope = scim_core::store::scope::tenant();
        let family = match (&scope, tenant_of(pk)) {
            (Some(acting), Some(owner)) if **acting != *owner => format!("another tenant's {}", family(pk, index)),
            _ => family(pk, index).to_string(),
        };
        let family = if scope.is_some() { format!("{family}@tenant") } else { family };
        if let Ok(mut c) = self.calls.lock()
            && let Some(set) = c.as_mut()
        {
            set.insert((action.to_string(), family));
        }
    }
    fn start(&self) {
        *self.calls.lock().unwrap() = Some(BTreeSet::new());
    }
    fn stop(&self) -> BTreeSet<(String, String)> {
        self.calls.lock().unwrap().take().unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Table for Recording {
    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Shared>, StoreError> {
        self.note("GetItem", pk, false);
        self.inner.get(pk, sk).await
    }
    async fn get_many(&self, keys: &[(String, String)]) -> Result<Vec<Option<Shared>>, StoreError> {
        for (pk, _) in keys {
            self.note("BatchGetItem", pk, false);
        }
        self.inner.get_many(keys).await
    }
    async fn query(&self, q: &Query) -> Result<Vec<Shared>, StoreError> {
        self.note("Query", &q.pk, q.index == Index::Gsi1);
        self.inner.query(q).await
    }
    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        // a single write is its own call (DynamoDbTable::write_one; a lone check is a read);
        // several are one TransactWriteItems, which IAM checks item action by item action
        let lone = writes.len() == 1;
        for w in &writes {
            match w {
                Write::Put { item, .. } => self.note("PutItem", &item.pk, false),
                Write::Delete { pk, .. } => self.note("DeleteItem", pk, false),
                Write::Add { pk, .. } => self.note("UpdateItem", pk, false),
                Write::Check { pk, .. } => self.note(if lone { "GetItem" } else { "ConditionCheckItem" }, pk, false),
            }
        }
        self.inner.write(writes).await
    }
    async fn count(&self, pk: &str, sk: &str, by: i64, expires_at: i64) -> Result<i64, StoreError> {
        self.note("UpdateItem", pk, false);
        self.inner.count(pk, sk, by, expires_at).await
    }
}

/// Whether `function`'s role (or, for a call recorded as `<family>@tenant`, its tenant session:
/// in AWS, a function without a tenant role makes those calls with its own role) allows
/// `action` on `family`.
fn allows(expected: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>, function: &str, action: &str, family: &str) -> bool {
    let (family, principal) = match family.strip_suffix("@tenant") {
        Some(f) if expected.contains_key(&format!("{function}@tenant")) => (f, format!("{function}@tenant")),
        Some(f) => (f, function.to_string()),
        None => (family, function.to_string()),
    };
    expected.get(&principal).and_then(|m| m.get(family)).is_some_and(|a| a.contains(action))
}

/// function (or `<function>@tenant`) → family → allowed actions, from infra/iam-expected.tsv.
fn expected() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/iam-expected.tsv");
    let text = std::fs::read_to_string(&path).expect("infra/iam-expected.tsv");
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.starts_with("function\t") && !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let actions = cols[2].split(',').filter(|a| *a != "-").map(str::to_string).collect();
        out.entry(cols[0].to_string()).or_default().insert(cols[1].to_string(), actions);
    }
    out
}

fn req(method: &str, path: &str, body: Option<Value>) -> HttpRequest {
    json_request(method, path, body.as_ref())
}

/// Requests that reach every store call a function's routes make: reads, writes, claims moving,
/// deprovisioning, member changes, paging with checkpoints and cursors, audit, rate counting.
fn requests_of(function: &str, ids: &BTreeMap<&str, String>) -> Vec<HttpRequest> {
    let (a, b, g) = (&ids["a"], &ids["b"], &ids["g"]);
    let op = |ops: Value| Some(patch_op(ops));
    match function {
        "users-create" => vec![
            req("POST", "/Users", Some(json!({"userName": "new@x.io", "externalId": "e-new", EXT: {"badge": 99}}))),
            req("POST", "/Users", Some(json!({"userName": "new@x.io"}))),
        ],
        "users-list" => vec![
            req("GET", "/Users?startIndex=1&count=1", None),
            req("GET", "/Users?startIndex=2&count=1", None),
            req("GET", "/Users?startIndex=3&count=1", None),
            req("GET", "/Users?cursor=&count=1", None),
            req("GET", "/Users?filter=userName%20eq%20%22a@x.io%22&attributes=userName,groups", None),
            req("GET", "/Users?filter=externalId%20eq%20%22e-a%22", None),
            req("GET", "/Users?sortBy=userName&filter=active%20eq%20true", None),
            req("GET", &format!("/Users?filter={EXT}:badge%20eq%2011"), None),
        ],
        "users-search" => vec![req("POST", "/Users/.search", Some(json!({"filter": "userName sw \"a\"", "attributes": ["groups"]})))],
        "search" => vec![req("POST", "/.search", Some(json!({"filter": "displayName pr"})))],
        "users-get" => vec![req("GET", &format!("/Users/{a}"), None), req("GET", &format!("/Users/{a}?attributes=groups"), None)],
        "users-replace" => {
            vec![req("PUT", &format!("/Users/{b}"), Some(json!({"userName": "b2@x.io", "externalId": "e-b2", "active": false})))]
        }
        "users-patch" => vec![
            req("PATCH", &format!("/Users/{a}"), op(json!([{"op": "replace", "path": "externalId", "value": "e-a2"}]))),
            req("PATCH", &format!("/Users/{a}"), op(json!([{"op": "replace", "path": format!("{EXT}:badge"), "value": 77}]))),
            req("PATCH", &format!("/Users/{a}"), op(json!([{"op": "replace", "value": {"active": false, "userName": "a2@x.io"}}]))),
        ],
        "users-delete" => vec![req("DELETE", &format!("/Users/{b}"), None)],
        "groups-create" => vec![req("POST", "/Groups", Some(json!({"displayName": "New", "externalId": "ge", "members": [{"value": a}]})))],
        "groups-list" => vec![
            req("GET", "/Groups?startIndex=2&count=1", None),
            req("GET", &format!("/Groups?filter=id%20eq%20%22{g}%22%20and%20members%5Bvalue%20eq%20%22{a}%22%5D"), None),
            req("GET", "/Groups?filter=displayName%20eq%20%22Eng%22", None),
        ],
        "groups-search" => vec![req("POST", "/Groups/.search", Some(json!({"filter": "members pr"})))],
        "groups-get" => vec![req("GET", &format!("/Groups/{g}"), None)],
        "groups-replace" => {
            vec![req("PUT", &format!("/Groups/{g}"), Some(json!({"displayName": "Eng2", "externalId": "g2", "members": [{"value": b}]})))]
        }
        "groups-patch" => vec![
            req("PATCH", &format!("/Groups/{g}"), op(json!([{"op": "add", "path": "members", "value": [{"value": b}]}]))),
            req("PATCH", &format!("/Groups/{g}"), op(json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}]))),
            req("PATCH", &format!("/Groups/{g}"), op(json!([{"op": "replace", "path": "displayName", "value": "Eng3"}]))),
        ],
        "groups-delete" => vec![req("DELETE", &format!("/Groups/{g}"), None)],
        "bulk" => {
            let bulk = |ops: Value| Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}));
            vec![req(
                "POST",
                "/Bulk",
                bulk(json!([
                    {"method": "POST", "path": "/Users", "bulkId": "n", "data": {"userName": "bulk@x.io", "externalId": "e-bulk", EXT: {"badge": 55}}},
                    {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "BulkG", "members": [{"value": "bulkId:n"}]}},
                    {"method": "PATCH", "path": format!("/Users/{a}"), "data": patch_op(json!([{"op": "replace", "path": "externalId", "value": "e-a9"}]))},
                    {"method": "PUT", "path": format!("/Groups/{g}"), "data": {"displayName": "Eng9", "members": [{"value": b}]}},
                    {"method": "PATCH", "path": "/Groups/bulkId:g", "data": patch_op(json!([{"op": "remove", "path": "members"}]))},
                    {"method": "DELETE", "path": "/Users/bulkId:n"},
                    {"method": "DELETE", "path": format!("/Groups/{g}")},
                    {"method": "POST", "path": "/Widgets", "bulkId": "w", "data": {"serial": "bulk-w"}},
                    {"method": "PATCH", "path": "/Widgets/bulkId:w", "data": patch_op(json!([{"op": "replace", "path": "serial", "value": "bulk-w2"}]))},
                    {"method": "DELETE", "path": "/Widgets/bulkId:w"},
                ])),
            )]
        }
        "resources" => {
            let w = &ids["w"];
            vec![
                req("POST", "/Widgets", Some(json!({"serial": "w-new", "externalId": "we"}))),
                req("GET", "/Widgets?startIndex=1&count=1", None),
                req("GET", "/Widgets?startIndex=2&count=1", None),
                req("GET", "/Widgets?cursor=&count=1", None),
                req("GET", "/Widgets?filter=serial%20eq%20%22w-1%22", None),
                req("GET", "/Widgets?filter=externalId%20eq%20%22we%22", None),
                req("GET", "/Widgets?sortBy=serial", None),
                req("POST", "/Widgets/.search", Some(json!({"filter": "serial sw \"w\""}))),
                req("GET", &format!("/Widgets/{w}"), None),
                req("PUT", &format!("/Widgets/{w}"), Some(json!({"serial": "w-1b", "externalId": "we2"}))),
                req("PATCH", &format!("/Widgets/{w}"), op(json!([{"op": "replace", "path": "serial", "value": "w-1c"}]))),
                req("DELETE", &format!("/Widgets/{w}"), None),
            ]
        }
        "discovery" => vec![
            req("GET", "/Schemas", None),
            req("GET", &format!("/Schemas/{EXT}"), None),
            req("GET", "/ResourceTypes/User", None),
            req("GET", "/ServiceProviderConfig", None),
        ],
        "settings" => vec![
            req("GET", "/Settings", None),
            req("PATCH", "/Settings", Some(json!({"deactivation": "keep-memberships"}))),
            req("PUT", "/Settings/RoleMappings", Some(json!({"defaultRole": "member", "userRoles": ["member"]}))),
            req("GET", "/Settings/RoleMappings", None),
            req("DELETE", "/Settings/RoleMappings", None),
            req("GET", "/Settings/Schemas", None),
            req("GET", &format!("/Settings/Schemas/{EXT}"), None),
            req("PUT", &format!("/Settings/Schemas/{EXT}"), Some(json!({"attributes": [{"name": "badge", "type": "string"}]}))),
            req(
                "PUT",
                "/Settings/Schemas/urn:acme:groups",
                Some(json!({"extends": "Group", "attributes": [{"name": "code", "type": "string"}]})),
            ),
            req("DELETE", "/Settings/Schemas/urn:acme:groups", None),
            req("GET", "/Settings/ResourceTypes", None),
            req("GET", "/Settings/ResourceTypes/Widget", None),
            req(
                "PUT",
                "/Settings/ResourceTypes/Gadget",
                Some(json!({"schema": "urn:acme:Gadget", "schemaDefinitions": [
                {"id": "urn:acme:Gadget", "attributes": [{"name": "tag", "type": "string"}]}]})),
            ),
            // a change the stored widgets would not satisfy: counted, then refused (409)
            req(
                "PUT",
                "/Settings/ResourceTypes/Widget",
                Some(json!({"schema": "urn:acme:Widget", "schemaDefinitions": [
                {"id": "urn:acme:Widget", "attributes": [{"name": "serial", "type": "integer"}]}]})),
            ),
            req("DELETE", "/Settings/ResourceTypes/Gadget", None),
            req("POST", "/Settings/PortalLinks", Some(json!({"hours": 2}))),
            req("DELETE", "/Settings/PortalLinks", None),
            req("GET", "/Settings/OAuthClients", None),
            req("POST", "/Settings/OAuthClients", Some(json!({"role": "reader"}))),
            req("GET", &format!("/Settings/OAuthClients/{}", ids["client"]), None),
            req("PATCH", &format!("/Settings/OAuthClients/{}", ids["client"]), Some(json!({"addSecret": true}))),
            req("PATCH", &format!("/Settings/OAuthClients/{}", ids["client"]), Some(json!({"revokeSecret": ids["secret"]}))),
            req("DELETE", &format!("/Settings/OAuthClients/{}", ids["client"]), None),
        ],
        other => panic!("no requests for function {other}: add them here"),
    }
}

/// A request each function answers with a failure (written to the tenant's activity log).
fn failing_request_of(function: &str) -> HttpRequest {
    match function {
        "users-create" => req("POST", "/Users", Some(json!({"displayName": "no userName"}))),
        "users-list" => req("GET", "/Users?filter=userName%20zz%20%22a%22", None),
        "users-search" => req("POST", "/Users/.search", Some(json!({"filter": "("}))),
        "search" => req("POST", "/.search", Some(json!({"filter": "("}))),
        "users-get" => req("GET", "/Users/no-such-user", None),
        "users-replace" => req("PUT", "/Users/no-such-user", Some(json!({"userName": "z@x.io"}))),
        "users-patch" => req("PATCH", "/Users/no-such-user", Some(patch_op(json!([{"op": "replace", "path": "active", "value": false}])))),
        "users-delete" => req("DELETE", "/Users/no-such-user", None),
        "groups-create" => req("POST", "/Groups", Some(json!({"members": []}))),
        "groups-list" => req("GET", "/Groups?filter=(", None),
        "groups-search" => req("POST", "/Groups/.search", Some(json!({"filter": "("}))),
        "groups-get" => req("GET", "/Groups/no-such-group", None),
        "groups-replace" => req("PUT", "/Groups/no-such-group", Some(json!({"displayName": "z"}))),
        "groups-patch" => {
            req("PATCH", "/Groups/no-such-group", Some(patch_op(json!([{"op": "replace", "path": "displayName", "value": "z"}]))))
        }
        "groups-delete" => req("DELETE", "/Groups/no-such-group", None),
        "discovery" => req("GET", "/Schemas/urn:no:such:schema", None),
        "bulk" => req("POST", "/Bulk", Some(json!({"Operations": []}))),
        "settings" => req("PATCH", "/Settings", Some(json!({"deactivation": "sometimes"}))),
        "resources" => req("GET", "/Widgets/no-such-widget", None),
        other => panic!("no failing request for function {other}: add one here"),
    }
}

/// A fresh tenant with two users (a in group g) and a group, made without recording.
async fn seeded(table: &Arc<Recording>) -> (App, Principal, BTreeMap<&'static str, String>) {
    let app = App::new(table.clone());
    scim_core::migrate::upgrade(app.service.layout(), &mut |_| {}).await.unwrap();
    tenancy::create_tenant(app.service.layout(), "t", "T").await.unwrap();
    // a declared extension with a unique attribute: its declarations are read, its claims written
    let decl = json!({"attributes": [{"name": "badge", "type": "integer", "uniqueness": "server"}, {"name": "cc", "type": "string"}]});
    scim_core::declarations::put(app.service.layout(), "t", EXT, &decl).await.unwrap();
    // a declared resource type with a unique attribute, holding one resource
    let widget = json!({"name": "Widget", "endpoint": "/Widgets", "schema": "urn:acme:Widget", "schemaDefinitions": [
        {"id": "urn:acme:Widget", "attributes": [{"name": "serial", "type": "string", "uniqueness": "server"}]}]});
    scim_core::declarations::put_type(app.service.layout(), "t", "Widget", &widget).await.unwrap();
    let key = tenancy::create_key(app.service.layout(), "t", "admin", None).await.unwrap();
    let mut p = app.authenticate(Some(&format!("Bearer {}", key.token)), None).await.unwrap();
    p.rate_limit = Some(1000); // so every route counts its request
    let mut ids = BTreeMap::new();
    for (n, name) in [("a", "a@x.io"), ("b", "b@x.io"), ("c", "c@x.io")] {
        let body = json!({"userName": name, "externalId": format!("e-{n}"), EXT: {"badge": 10 + ids.len(), "cc": n}});
        let r = app.handle(&p, &req("POST", "/Users", Some(body)), "http://x", None).await;
        ids.insert(n, id_of(&serde_json::from_slice(&r.body).unwrap()));
    }
    let r = app
        .handle(&p, &req("POST", "/Groups", Some(json!({"displayName": "Eng", "members": [{"value": ids["a"]}]}))), "http://x", None)
        .await;
    ids.insert("g", id_of(&serde_json::from_slice(&r.body).unwrap()));
    for serial in ["w-1", "w-2"] {
        let r = app.handle(&p, &req("POST", "/Widgets", Some(json!({"serial": serial}))), "http://x", None).await;
        ids.insert(if serial == "w-1" { "w" } else { "w2" }, id_of(&serde_json::from_slice(&r.body).unwrap()));
    }
    let client = scim_core::oauth::create_client(app.service.layout(), "t", "provisioner", None).await.unwrap();
    ids.insert("client", client.client_id);
    ids.insert("secret", client.secret_id);
    (app, p, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_call_of_every_function_is_one_its_role_allows() {
    let expected = expected();
    let functions: BTreeSet<&str> = ROUTES.iter().map(|r| r.function).collect();
    let mut problems = Vec::new();
    for f in functions {
        // each function on a tenant of its own, so earlier functions' writes change nothing
        let table = Arc::new(Recording { inner: EmbeddedTable::in_memory(), calls: Mutex::new(None) });
        let (_, p, ids) = seeded(&table).await;
        // a new process on the seeded table: nothing cached, so every read it needs is made
        let app = App::new(table.clone());
        table.start();
        for r in requests_of(f, &ids) {
            let resp = app.handle(&p, &r, "http://x", Some(f)).await;
            assert!(
                // each does what it is there for (the badge retype is refused while values exist:
                // 409, after counting them, which is the read it is there for)
                resp.status < 400 || resp.status == 409,
                "{f} {} {}: {} {}",
                r.method(),
                r.uri(),
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
        }
        // a failure is recorded in the tenant's activity log, on every route
        let r = failing_request_of(f);
        let resp = app.handle(&p, &r, "http://x", Some(f)).await;
        assert!((400..500).contains(&resp.status), "{f} {} {} should fail: {}", r.method(), r.uri(), resp.status);
        let calls = table.stop();
        assert!(calls.contains(&("PutItem".to_string(), "audit@tenant".to_string())), "{f}: its failure was not recorded: {calls:?}");
        assert!(!calls.is_empty(), "{f}: the requests reached no store call");
        for (action, fam) in calls {
            if fam.starts_with("another tenant's") || !fam.ends_with("@tenant") {
                problems.push(format!("{f} calls {action} on {fam} items: a route acts for its request's tenant only"));
            } else if !allows(&expected, f, &action, &fam) {
                problems.push(format!("{f} calls {action} on {fam} items, which its role does not allow"));
            }
        }
    }
    assert!(problems.is_empty(), "the code needs more than IAM grants:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_needs_no_more_than_its_role() {
    let expected = &expected();
    let table = Arc::new(Recording { inner: EmbeddedTable::in_memory(), calls: Mutex::new(None) });
    let app = App::new(table.clone());
    scim_core::migrate::upgrade(app.service.layout(), &mut |_| {}).await.unwrap();
    tenancy::create_tenant(app.service.layout(), "t", "T").await.unwrap();
    let key = tenancy::create_key(app.service.layout(), "t", "admin", None).await.unwrap();
    let other = tenancy::create_key(app.service.layout(), "t", "reader", None).await.unwrap();
    table.start();
    // first use (one batched read and the stamp), warm use, a wrong secret, a key id of an
    // older layout (its pointer, then the layout marker), then a key whose tenant record is
    // gone (the layout marker decides between 401 and 503) (a refused known key is recorded in
    // its tenant's activity log)
    let attempt = || scim_core::auth::Attempt { method: "GET", path: "/Users", user_agent: Some("Okta"), audience: "" };
    let legacy = format!("scim_0123456789abcdef_{}", "A".repeat(43));
    for token in [key.token.clone(), key.token.clone(), format!("scim_{}_{}", key.key_id, "A".repeat(43)), legacy] {
        let _ = app.authenticate_attempt(Some(&format!("Bearer {token}")), None, attempt()).await;
    }
    table
        .inner
        .write(vec![Write::Delete { pk: "CONF#t".into(), sk: "TENANT".into(), cond: scim_core::store::Cond::Always }])
        .await
        .unwrap();
    assert_eq!(app.authenticate_attempt(Some(&format!("Bearer {}", other.token)), None, attempt()).await.unwrap_err().status(), 401);
    let calls = table.stop();
    let needed: BTreeSet<&str> = calls.iter().map(|(_, f)| f.as_str()).collect();
    assert!(
        ["layout", "layout@tenant", "key-pointer", "key-use@tenant", "audit@tenant"].iter().all(|f| needed.contains(f)),
        "the paths above were reached: {calls:?}"
    );
    for (action, fam) in &calls {
        assert!(allows(expected, "authorizer", action, fam), "the authorizer calls {action} on {fam} items, which its role does not allow");
    }
}

/// The portal function: the page's API on a valid link (session, keys made and revoked,
/// activity) and a link that is not valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_needs_no_more_than_its_role() {
    use scim_core::portal::handle;
    let expected = &expected();
    let table = Arc::new(Recording { inner: EmbeddedTable::in_memory(), calls: Mutex::new(None) });
    let (app, _, _) = seeded(&table).await;
    let (token, _) = scim_core::setup_link::make_link(app.service.layout(), "t", 1).await.unwrap();
    let old = tenancy::create_key(app.service.layout(), "t", "provisioner", None).await.unwrap();
    let app = App::new(table.clone());
    table.start();
    let call = |method: &'static str, path: String, token: String| {
        let app = &app;
        async move {
            let mut r = json_request(method, &path, (method == "POST").then(|| json!({})).as_ref());
            r.headers_mut().insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(&format!("Portal {token}")).unwrap());
            handle(app.service.layout(), &r, "http://x/scim/v2").await.status
        }
    };
    assert_eq!(call("GET", "/portal/api/session".into(), token.clone()).await, 200);
    assert_eq!(call("GET", "/portal/api/keys".into(), token.clone()).await, 200);
    assert_eq!(call("POST", "/portal/api/keys".into(), token.clone()).await, 201);
    assert_eq!(call("DELETE", format!("/portal/api/keys/{}", old.key_id), token.clone()).await, 204);
    assert_eq!(call("GET", "/portal/api/activity".into(), token.clone()).await, 200);
    assert_eq!(call("POST", "/portal/api/oauth".into(), token.clone()).await, 201);
    assert_eq!(call("POST", "/portal/api/oauth".into(), token.clone()).await, 201);
    assert_eq!(call("GET", "/portal/api/oauth".into(), token.clone()).await, 200);
    let mut calls = table.stop(); // the test's own read of the secret's id is no call of the portal
    let secret =
        scim_core::oauth::list_clients(app.service.layout(), "t").await.unwrap()[0]["secrets"][0]["id"].as_str().unwrap().to_string();
    table.start();
    assert_eq!(call("DELETE", format!("/portal/api/oauth/{secret}"), token.clone()).await, 204);
    assert_eq!(call("GET", "/portal/api/keys".into(), format!("{token}x")).await, 401);
    calls.extend(table.stop());
    let needed: BTreeSet<&str> = calls.iter().map(|(_, f)| f.as_str()).collect();
    assert!(
        ["server", "key@tenant", "tenant-config@tenant", "audit@tenant", "oauth-client@tenant"].iter().all(|f| needed.contains(f)),
        "the paths above were reached: {calls:?}"
    );
    let mut problems = Vec::new();
    for (action, fam) in &calls {
        if !allows(expected, "portal", action, fam) {
            problems.push(format!("the portal calls {action} on {fam} items, which its role does not allow"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Signing keys held in memory, as KMS holds them in AWS: signing and verifying touch no table.
struct MemoryKeys(scim_core::jwt::Signer);

#[async_trait::async_trait]
impl scim_core::oauth::SigningKeys for MemoryKeys {
    async fn public_keys(&self) -> scim_core::error::Result<Vec<scim_core::jwt::Jwk>> {
        Ok(vec![self.0.public_jwk()])
    }
    async fn sign(&self, claims: &scim_core::oauth::Claims) -> scim_core::error::Result<String> {
        Ok(self.0.sign(scim_core::oauth::TOKEN_TYP, claims))
    }
}

fn memory_keys() -> Arc<MemoryKeys> {
    Arc::new(MemoryKeys(scim_core::jwt::Signer::from_pkcs8("k1", &scim_core::jwt::generate_pkcs8()).unwrap()))
}

/// The token function: a token issued (client_secret_basic), refusals up to the throttle and
/// past it, the discovery documents; and the authorizer verifying the token (a good one, then
/// one of a revoked client): nothing outside either role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_function_and_the_authorizer_on_tokens_need_no_more_than_their_roles() {
    use base64::Engine;
    use scim_core::token_endpoint::handle;
    let table = Arc::new(Recording { inner: EmbeddedTable::in_memory(), calls: Mutex::new(None) });
    let keys = memory_keys();
    let service = || scim_core::service::Service::over(table.clone()).with_signing_keys(keys.clone());
    let app = App::new(service());
    scim_core::migrate::upgrade(app.service.layout(), &mut |_| {}).await.unwrap();
    tenancy::create_tenant(app.service.layout(), "t", "T").await.unwrap();
    let client = scim_core::oauth::create_client(app.service.layout(), "t", "provisioner", None).await.unwrap();
    let app = App::new(service());
    let form_of = |client_id: &str, secret: &str| {
        let mut r = http::Request::new(bytes::Bytes::from_static(b"grant_type=client_credentials"));
        *r.method_mut() = http::Method::POST;
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-www-form-urlencoded"));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
        r.headers_mut().insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(&format!("Basic {basic}")).unwrap());
        r
    };
    let form = |secret: &str| form_of(&client.client_id, secret);
    table.start();
    // an id of an older layout: its pointer, then (none) the layout marker
    let legacy = handle(&app.service, &form_of("0123456789abcdef0123", "wrong"), "/oauth2/token", "https://x").await.response;
    assert_eq!(legacy.status, 401);
    let ok = handle(&app.service, &form(&client.secret), "/oauth2/token", "https://x").await.response;
    assert_eq!(ok.status, 200);
    let token = serde_json::from_slice::<Value>(&ok.body).unwrap()["access_token"].as_str().unwrap().to_string();
    let mut statuses = Vec::new();
    for _ in 0..=scim_core::oauth::FAILURES_PER_MINUTE {
        statuses.push(handle(&app.service, &form("wrong"), "/oauth2/token", "https://x").await.response.status);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    for path in ["/.well-known/jwks.json", "/.well-known/oauth-authorization-server"] {
        let mut r = http::Request::new(bytes::Bytes::new());
        *r.uri_mut() = path.parse().unwrap();
        assert_eq!(handle(&app.service, &r, path, "https://x").await.response.status, 200);
    }
    let calls = table.stop();
    let expected = expected();
    let check = |function: &str, calls: &BTreeSet<(String, String)>| {
        let problems: Vec<String> = calls
            .iter()
            .filter(|(action, fam)| !allows(&expected, function, action, fam))
            .map(|(action, fam)| format!("{function} calls {action} on {fam} items, which its role does not allow"))
            .collect();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    };
    let needed: BTreeSet<&str> = calls.iter().map(|(_, f)| f.as_str()).collect();
    assert!(
        ["oauth-client@tenant", "tenant-config@tenant", "audit@tenant", "oauth-pointer", "layout"].iter().all(|f| needed.contains(f)),
        "the paths above were reached: {calls:?}"
    );
    check("oauth-token", &calls);

    // the authorizer: a good token, then (the client revoked) a refused one, recorded
    let attempt = || scim_core::auth::Attempt { method: "GET", path: "/Users", user_agent: None, audience: "https://x/scim/v2" };
    let authorizer = App::new(service());
    table.start();
    authorizer.authenticate_attempt(Some(&format!("Bearer {token}")), None, attempt()).await.unwrap();
    let mut calls = table.stop();
    assert_eq!(
        calls.iter().map(|(a, f)| (a.as_str(), f.as_str())).collect::<Vec<_>>(),
        [("GetItem", "tenant-config@tenant")],
        "a token costs one read, acting for its tenant"
    );
    scim_core::oauth::revoke(app.service.layout(), &client.client_id, None).await.unwrap();
    table.start();
    assert_eq!(authorizer.authenticate_attempt(Some(&format!("Bearer {token}")), None, attempt()).await.unwrap_err().status(), 401);
    calls.extend(table.stop());
    assert!(calls.iter().any(|(_, f)| f == "audit@tenant"), "the refusal was recorded: {calls:?}");
    check("authorizer", &calls);
}
