//! `roles` is protected by `roles:edit` by what a request would do, not by how it is spelled.
//!
//! A property test generates create, replace and PATCH bodies in every form the engine accepts
//! (member-name case, URN-qualified names and paths, path-less values, value filters, the case
//! of `Operations`, `op`, `path` and `value`, JSON-encoded role values) and sends each, through
//! the same `App::handle` every edge runs, as three keys: `admin`, a custom role without
//! `roles:edit` and one with it. Without the permission `roles` never changes and the answer is
//! 403 exactly when the admin's request changed them (anything else answers as the admin's
//! did); with it, the result equals the admin's.

use proptest::prelude::*;
use scim_core::auth::Principal;
use scim_core::edge::{App, json_request};
use scim_core::roles::{ALL_PERMISSIONS, Permission, RolesPolicy};
use scim_core::store::embedded::EmbeddedTable;
use scim_core::tenancy::Deactivation;
use serde_json::{Map, Value, json};
use std::sync::Arc;

const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn principal(key: &str, permissions: &[Permission], policy: Option<&RolesPolicy>) -> Principal {
    Principal {
        tenant_id: "t".into(),
        key_id: key.into(),
        role: key.into(),
        rate_limit: None,
        roles_policy: policy.cloned(),
        permissions: permissions.to_vec(),
        deactivation: Deactivation::default(),
        external_id_policy: Default::default(),
        unknown_extensions: Default::default(),
        schemas_version: 0,
    }
}

fn policy() -> RolesPolicy {
    RolesPolicy {
        default_role: "member".into(),
        user_roles: vec!["member".into(), "admin".into(), "owner".into()],
        group_rule: None,
        group_roles: vec![],
    }
}

async fn call(app: &App, p: &Principal, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let req = json_request(method, path, body);
    let r = app.handle(p, &req, "http://x/scim/v2", None).await;
    let v = if r.body.is_empty() { Value::Null } else { serde_json::from_slice(&r.body).unwrap() };
    (r.status, v)
}

/// Spellings of the `roles` member name / path.
fn roles_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("roles".to_string()),
        Just("Roles".to_string()),
        Just("ROLES".to_string()),
        Just(format!("{CORE}:roles")),
        Just(format!("{}:Roles", CORE.to_uppercase())),
    ]
}

/// Values a client may send for `roles`.
fn roles_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!([])),
        Just(Value::Null),
        Just(json!([{"value": "owner"}])),
        Just(json!([{"value": "member"}])),
        Just(json!([{"value": "member", "primary": true}])),
        Just(json!({"value": "admin"})),
        Just(json!([{"VALUE": "owner", "Primary": true}])),
        Just(json!(["{\"id\":\"r1\",\"value\":\"owner\",\"displayName\":\"Owner\"}"])),
        Just(json!([{"value": "nonsense"}])),
    ]
}

fn op_name() -> impl Strategy<Value = String> {
    proptest::sample::select(&["add", "Add", "ADD", "replace", "Replace", "remove", "Remove"][..]).prop_map(|s: &str| s.to_string())
}

fn member_case(base: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![Just(base.to_string()), Just(base.to_uppercase()), Just(capitalised(base))]
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// One PATCH operation: a path (or none) and a value fitting it, in any accepted form.
fn operation() -> impl Strategy<Value = Value> {
    let path_and_value = prop_oneof![
        (roles_key(), roles_value()).prop_map(|(k, v)| (Some(k), v)),
        Just((Some("roles[value eq \"owner\"]".to_string()), Value::Null)),
        Just((Some("roles[value eq \"member\"].value".to_string()), json!("owner"))),
        Just((Some("ROLES[primary eq true].display".to_string()), json!("Boss"))),
        Just((Some("title".to_string()), json!("Engineer"))),
        Just((Some(format!("{ENTERPRISE}:department")), json!("R&D"))),
        (roles_key(), roles_value()).prop_map(|(k, v)| (None, json!({ k: v, "title": "T" }))),
        roles_value().prop_map(|v| (None, json!({ "roles[value eq \"member\"].value": "owner", "displayName": "D", "x": v }))),
        Just((None, json!({"title": "Path-less"}))),
        Just((None, json!({ ENTERPRISE: {"department": "Ops"} }))),
    ];
    (op_name(), member_case("op"), member_case("path"), member_case("value"), path_and_value).prop_map(
        |(op, opk, pk, vk, (path, value))| {
            let mut o = Map::new();
            o.insert(opk, json!(op));
            if let Some(p) = path {
                o.insert(pk, json!(p));
            }
            if !value.is_null() || !op.eq_ignore_ascii_case("remove") {
                o.insert(vk, value);
            }
            Value::Object(o)
        },
    )
}

/// A request to send: create or replace members (the roles member optional), or PATCH ops.
#[derive(Debug, Clone)]
enum Shape {
    Create { roles: Option<(String, Value)>, title: bool },
    Replace { roles: Option<(String, Value)>, title: bool },
    Patch { operations_key: String, ops: Vec<Value> },
}

fn shape() -> impl Strategy<Value = Shape> {
    let roles_member = || proptest::option::of((roles_key(), roles_value()));
    prop_oneof![
        (roles_member(), any::<bool>()).prop_map(|(roles, title)| Shape::Create { roles, title }),
        (roles_member(), any::<bool>()).prop_map(|(roles, title)| Shape::Replace { roles, title }),
        (member_case("Operations"), proptest::collection::vec(operation(), 1..3))
            .prop_map(|(operations_key, ops)| Shape::Patch { operations_key, ops }),
    ]
}

fn user_body(name: &str, roles: Option<&(String, Value)>, title: bool) -> Value {
    let mut b = json!({"schemas": [CORE], "userName": name, "active": true});
    if title {
        b["title"] = json!("Engineer");
    }
    if let Some((k, v)) = roles {
        b[k.as_str()] = v.clone();
    }
    b
}

/// A document without what differs between the three users by construction.
fn comparable(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in ["id", "meta", "userName"] {
            o.remove(k);
        }
    }
    v
}

/// JSON text with object members sorted: equal values, equal text.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let mut m: Vec<(&String, &Value)> = o.iter().collect();
            m.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = m.iter().map(|(k, v)| format!("{}:{}", json!(k), canonical(v))).collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// A user's roles as a sorted list of canonical texts (a multiset).
fn roles_of(v: &Value) -> Vec<String> {
    let mut r: Vec<String> = v["roles"].as_array().into_iter().flatten().map(canonical).collect();
    r.sort();
    r
}

async fn check(shape: Shape, initial: Option<Value>, with_policy: bool) -> Result<(), TestCaseError> {
    let app = App::new(Arc::new(EmbeddedTable::in_memory()));
    let pol = with_policy.then(policy);
    let admin = principal("admin", &ALL_PERMISSIONS, pol.as_ref());
    let syncer = principal("syncer", &[Permission::ScimRead, Permission::ScimWrite], pol.as_ref());
    let editor = principal("editor", &[Permission::ScimRead, Permission::ScimWrite, Permission::EditRoles], pol.as_ref());
    let who = [("a", &admin), ("s", &syncer), ("e", &editor)];
    let mut results = Vec::new();
    match &shape {
        Shape::Create { roles, title } => {
            // what the same body stores without its roles member: the baseline of "no change"
            let (st, base) = call(&app, &admin, "POST", "/Users", Some(&user_body("base", None, *title))).await;
            prop_assert_eq!(st, 201);
            for (n, p) in who {
                let (st, doc) = call(&app, p, "POST", "/Users", Some(&user_body(n, roles.as_ref(), *title))).await;
                results.push((st, doc, None));
            }
            let changed = results[0].0 == 201 && roles_of(&results[0].1) != roles_of(&base);
            assert_outcomes(&app, &admin, results, changed).await
        }
        Shape::Replace { .. } | Shape::Patch { .. } => {
            let mut before = Vec::new();
            for (n, _) in who {
                let (st, doc) = call(&app, &admin, "POST", "/Users", Some(&json!({"userName": n, "roles": initial.clone()}))).await;
                prop_assert_eq!(st, 201);
                before.push(doc);
            }
            for ((n, p), old) in who.iter().zip(&before) {
                let path = format!("/Users/{}", old["id"].as_str().unwrap_or_default());
                let (method, body) = match &shape {
                    Shape::Replace { roles, title } => ("PUT", user_body(n, roles.as_ref(), *title)),
                    Shape::Patch { operations_key, ops } => {
                        ("PATCH", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], operations_key.as_str(): ops}))
                    }
                    Shape::Create { .. } => unreachable!(),
                };
                let (st, doc) = call(&app, p, method, &path, Some(&body)).await;
                results.push((st, doc, Some(old.clone())));
            }
            let changed = results[0].0 == 200 && roles_of(&results[0].1) != roles_of(&before[0]);
            assert_outcomes(&app, &admin, results, changed).await
        }
    }
}

/// The syncer is refused exactly when the admin changed roles, and then nothing of its user
/// changed; otherwise it and the editor answer and store what the admin did.
async fn assert_outcomes(app: &App, admin: &Principal, r: Vec<(u16, Value, Option<Value>)>, changed: bool) -> Result<(), TestCaseError> {
    let (a, s, e) = (&r[0], &r[1], &r[2]);
    prop_assert_eq!(e.0, a.0, "the key with roles:edit answers as the admin: {} vs {}", &e.1, &a.1);
    if (200..300).contains(&a.0) {
        prop_assert_eq!(comparable(e.1.clone()), comparable(a.1.clone()));
    }
    if changed {
        prop_assert_eq!(s.0, 403, "roles changed for the admin ({}) but the syncer got {}: {}", &a.1["roles"], s.0, &s.1);
        if let Some(old) = &s.2 {
            let path = format!("/Users/{}", old["id"].as_str().unwrap_or_default());
            let (_, now) = call(app, admin, "GET", &path, None).await;
            prop_assert_eq!(&now["meta"]["version"], &old["meta"]["version"], "a refused request wrote nothing");
        }
    } else {
        prop_assert_eq!(s.0, a.0, "roles unchanged, so the syncer answers as the admin: {} vs {}", &s.1, &a.1);
        if (200..300).contains(&a.0) {
            prop_assert_eq!(comparable(s.1.clone()), comparable(a.1.clone()));
        }
    }
    Ok(())
}

fn initial_roles() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        Just(None),
        Just(Some(json!([{"value": "member"}]))),
        Just(Some(json!([{"value": "owner", "primary": true}, {"value": "admin"}])))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn roles_change_only_with_roles_edit(shape in shape(), initial in initial_roles(), with_policy in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(check(shape, initial, with_policy))?;
    }
}

/// The four bodies a new user found answered 200 before: each is 403 now and writes nothing.
#[tokio::test]
async fn the_reported_spellings_are_refused() {
    let app = App::new(Arc::new(EmbeddedTable::in_memory()));
    let admin = principal("admin", &ALL_PERMISSIONS, None);
    let syncer = principal("syncer", &[Permission::ScimRead, Permission::ScimWrite], None);
    let (_, u) = call(&app, &admin, "POST", "/Users", Some(&json!({"userName": "ann"}))).await;
    let path = format!("/Users/{}", u["id"].as_str().unwrap());
    let owner = json!([{"value": "owner"}]);
    let bodies = [
        json!({"Operations": [{"op": "add", "Path": "roles", "value": owner}]}),
        json!({"OPERATIONS": [{"op": "add", "path": "roles", "value": owner}]}),
        json!({"Operations": [{"op": "add", "path": format!("{CORE}:roles"), "value": owner}]}),
        json!({"Operations": [{"op": "add", "value": { format!("{CORE}:roles"): owner }}]}),
    ];
    for b in &bodies {
        let (st, body) = call(&app, &syncer, "PATCH", &path, Some(b)).await;
        assert_eq!(st, 403, "{b} → {body}");
    }
    let (_, now) = call(&app, &admin, "GET", &path, None).await;
    assert_eq!((&now["roles"], &now["meta"]["version"]), (&Value::Null, &u["meta"]["version"]));
    // the same bodies from the admin do change roles (so the 403s above were not for another reason)
    let (st, after) = call(&app, &admin, "PATCH", &path, Some(&bodies[0])).await;
    assert_eq!((st, &after["roles"][0]["value"]), (200, &json!("owner")));
}
