//! A table written by the previous version (layout 1) keeps working: `scim-local` upgrades its
//! store on start, `scim-admin migrate` upgrades a DynamoDB table (and other commands refuse to
//! write into an old layout until it has run). Keys issued before keep working; names that are
//! one name under caseless comparison are reported, not merged. A table restored by
//! `infra/restore.py` (the disaster-recovery rehearsal) serves what the product wrote.

use super::*;
use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
use scim_core::store::{Cond, Item, Table, Write};
use scim_tests::Store;
use std::sync::Arc;

const KEY_ID: &str = "00112233aabbccdd";
const SECRET: &str = "layout-one-secret-layout-one-secret-0123456";

fn put(pk: &str, sk: &str, doc: Value) -> Write {
    Write::Put { item: Item::new(pk, sk, doc.to_string(), 1), cond: Cond::Always }
}

/// What version 1 stored for a tenant `old`: its record and key reference in the data
/// partition, a key carrying a copy of the settings and its last use, and three users — one
/// with a decomposed accent, two whose names are one name under full case folding.
async fn write_layout_1(table: &dyn Table) {
    let user = |id: &str, name: &str| json!({"id": id, "userName": name, "externalId": if id.ends_with('3') { Some("okta-00u3") } else { None }, "meta": {"resourceType": "User", "created": "2026-11-01T00:00:00Z", "lastModified": "2026-11-01T00:00:00Z", "version": "W/\"1\""}});
    let settings = json!({"status": "active", "ip_allowlist": null, "custom_roles": null});
    let writes = vec![
        put("TENANTS", "TENANT#old", json!({"id": "old"})),
        put("TENANT#old", "TENANT", json!({"id": "old", "name": "Old Co", "created": "2026-11-01T00:00:00Z", "status": "active"})),
        put("TENANT#old", &format!("KEYREF#{KEY_ID}"), json!({"key_id": KEY_ID})),
        put(
            &format!("KEY#{KEY_ID}"),
            "KEY",
            json!({"key_id": KEY_ID, "tenant": "old", "role": "admin", "hash": scim_core::crypto::sha256_hex(SECRET),
                "created": "2026-11-01T00:00:00Z", "expires_at": null, "revoked": false, "tenant_settings": settings,
                "last_used_unix": 1_764_000_000, "last_used_at": "2025-11-24T16:00:00Z"}),
        ),
        put(
            "TENANT#old",
            "USER#01a00000-0000-7000-8000-000000000001",
            user("01a00000-0000-7000-8000-000000000001", "Jose\u{301}@example.com"),
        ),
        put("TENANT#old", "USERNAME#jose\u{301}@example.com", json!({"id": "01a00000-0000-7000-8000-000000000001"})),
        put("TENANT#old", "USER#01a00000-0000-7000-8000-000000000002", user("01a00000-0000-7000-8000-000000000002", "stra\u{df}e")),
        put("TENANT#old", "USERNAME#stra\u{df}e", json!({"id": "01a00000-0000-7000-8000-000000000002"})),
        put("TENANT#old", "USER#01a00000-0000-7000-8000-000000000003", user("01a00000-0000-7000-8000-000000000003", "STRASSE")),
        put("TENANT#old", "USERNAME#strasse", json!({"id": "01a00000-0000-7000-8000-000000000003"})),
        put("TENANT#old", "UEXT#okta-00u3", json!({"id": "01a00000-0000-7000-8000-000000000003"})),
    ];
    table.write(writes).await.expect("layout 1 items");
    table
        .write(vec![Write::Add { pk: "TENANT#old".into(), sk: "COUNT".into(), deltas: vec![("users".into(), 3)] }])
        .await
        .expect("counter");
}

async fn upgraded_on_start(store: Store) {
    let table = scim_tests::fresh_table(store, None).await;
    write_layout_1(table.as_ref()).await;
    let srv = scim_tests::Server::start_on(store, table.clone(), Arc::default()).await.expect("the bootstrap tenant is new");
    let old = scim_tests::Client::new(&srv.base, &format!("scim_{KEY_ID}_{SECRET}"));
    let list = old.get("/Users").await;
    assert_eq!((list.status, &list.body["totalResults"]), (200, &json!(3)), "the old key works after the upgrade: {}", list.raw);
    let r = old.filter("/Users", "userName eq \"JOS\u{c9}@EXAMPLE.COM\"", "").await;
    assert_eq!(r.body["Resources"][0]["userName"], "Jose\u{301}@example.com", "re-keyed to its caseless form: {}", r.raw);
    old.post("/Users", &user("jos\u{e9}@example.com")).await.assert_error(409, Some("uniqueness"));
    // externalIds of layout 2 and before are indexed: found by the index lookup
    let by_ext = old.filter("/Users", "externalId eq \"okta-00u3\"", "").await;
    assert_eq!(by_ext.body["Resources"][0]["userName"], "STRASSE", "{}", by_ext.raw);
    // the colliding pair was left as it was: both users are there, each still reachable by id
    for id in ["01a00000-0000-7000-8000-000000000002", "01a00000-0000-7000-8000-000000000003"] {
        assert_eq!(old.get(&format!("/Users/{id}")).await.status, 200);
    }
    // configuration left the data partition; the key no longer carries a settings copy
    assert!(table.get("TENANT#old", "TENANT").await.unwrap().is_none());
    assert!(table.get("CONF#old", "TENANT").await.unwrap().is_some());
    // the key now has an id that names its tenant (layout 5); its old id points there
    let key = table.get(&format!("KEY#old.{KEY_ID}"), "KEY").await.unwrap().unwrap();
    assert!(!key.doc.as_deref().unwrap().contains("tenant_settings"));
    assert!(table.get(&format!("KEY#{KEY_ID}"), "KEY").await.unwrap().is_none());
    assert!(table.get(&format!("KEY#{KEY_ID}"), "MOVED").await.unwrap().is_some());
    let keys = scim_core::tenancy::list_keys(srv.app.service.layout(), "old").await.unwrap();
    assert!(keys[0]["last_used_at"].is_string(), "the last use survived the move: {keys:?}");
    // settings changes reach the old key at once (no copies to rewrite)
    let change = scim_core::tenancy::TenantChange { status: Some("suspended".into()), ..Default::default() };
    scim_core::tenancy::update_tenant(srv.app.service.layout(), "old", &change).await.unwrap();
    old.get("/Users").await.assert_error(403, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_store_is_upgraded_on_start_embedded() {
    upgraded_on_start(Store::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layout_1_store_is_upgraded_on_start_dynamodb() {
    upgraded_on_start(Store::Dynamo).await;
}

fn scim_admin(table: &str, args: &[&str]) -> (bool, String, String) {
    let exe = std::env::current_exe().expect("test exe");
    let bin = exe.parent().and_then(|d| d.parent()).expect("target dir").join("scim-admin");
    assert!(bin.exists(), "{} is missing: build it first (`cargo build --workspace --bins`)", bin.display());
    let out = std::process::Command::new(bin)
        .args(["--table", table, "--region", "us-east-1", "--dynamodb-endpoint", &scim_tests::moto_endpoint()])
        .args(args)
        .env_remove("AWS_REGION")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run scim-admin");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_admin_migrates_a_dynamodb_table_and_refuses_to_write_an_old_one() {
    let name = format!("up{}", scim_tests::uuid_like());
    let table = scim_tests::fresh_dynamo_table(&name).await;
    write_layout_1(&table).await;
    let (ok, _, err) = scim_admin(&name, &["key", "list", "--tenant", "old"]);
    assert!(!ok && err.contains("migrate"), "an old table is refused until migrated: {err}");
    let (ok, out, err) = scim_admin(&name, &["migrate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("layout 1 → 5")
            && out.contains("1 names re-keyed")
            && out.contains("1 keys and 0 OAuth clients renamed")
            && out.contains("1 collisions"),
        "{out}"
    );
    assert!(err.contains("STRASSE") || err.contains("stra\u{df}e"), "collisions are named: {err}");
    let (ok, out, err) = scim_admin(&name, &["key", "list", "--tenant", "old"]);
    assert!(ok && out.contains(KEY_ID), "{out}{err}");
    let (ok, out, err) = scim_admin(&name, &["migrate"]);
    assert!(
        ok && out.contains("0 names re-keyed") && out.contains("0 configuration items moved") && out.contains("0 externalIds indexed"),
        "a second run changes nothing: {out}{err}"
    );
    // the region is never assumed, and a table of another shape is refused
    let exe = std::env::current_exe().expect("test exe");
    let bin = exe.parent().and_then(|d| d.parent()).expect("target dir").join("scim-admin");
    let no_region =
        std::process::Command::new(&bin).args(["--table", &name, "tenant", "list"]).env("AWS_REGION", "us-east-1").output().unwrap();
    assert!(!no_region.status.success() && String::from_utf8_lossy(&no_region.stderr).contains("--region is required"));
    let other = format!("other{}", scim_tests::uuid_like());
    let moto = scim_tests::Client::new(&scim_tests::moto_endpoint(), "");
    let create = json!({"TableName": other, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}], "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}]});
    let r = moto
        .send(
            "POST",
            "/",
            Some(&create.to_string()),
            &[
                ("x-amz-target", "DynamoDB_20120810.CreateTable"),
                ("content-type", "application/x-amz-json-1.0"),
                // moto reads the region from the credential scope
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=test/20261129/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let (ok, _, err) = scim_admin(&other, &["tenant", "create", "acme"]);
    assert!(!ok && err.contains("not a scim-serverless table"), "{err}");
    let (ok, _, err) = scim_admin("no-such-table", &["tenant", "list"]);
    assert!(!ok && err.contains("there is no table 'no-such-table'"), "{err}");
    // a new, empty table is initialised by the first command
    let empty = format!("new{}", scim_tests::uuid_like());
    scim_tests::fresh_dynamo_table(&empty).await;
    let (ok, out, err) = scim_admin(&empty, &["tenant", "create", "acme"]);
    assert!(ok && out.contains("created"), "{out}{err}");
}

/// Runs infra/restore.py against moto: (succeeded, stdout, stderr).
fn restore_script(args: &[&str]) -> (bool, String, String) {
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/restore.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["--region", "us-east-1", "--endpoint", &scim_tests::moto_endpoint(), "--timeout", "60"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("run python3 infra/restore.py");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The disaster-recovery rehearsal (infra/README.md "Restoring the table"), as far as moto goes:
/// a table the product wrote is restored into a new table by infra/restore.py, which gives it the
/// stream, TTL, recovery and deletion protection, counts its items against the source's, checks
/// its layout, and prints the parameters that switch the stack to it; the product then serves
/// the same users, groups and memberships from it with the same key. A restore never goes over
/// an existing table, and a table that is not a scim-serverless table is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_table_serves_what_the_product_wrote() {
    let source = format!("dr{}", scim_tests::uuid_like());
    let events = Arc::default();
    let table: Arc<dyn Table> = Arc::new(scim_tests::fresh_dynamo_table(&source).await);
    let srv = scim_tests::Server::start_on(Store::Dynamo, table, events).await.expect("a new key");
    let uid = crate::id_of(&srv.client.post("/Users", &crate::user("restored@example.com")).await.body);
    let gid = crate::id_of(&srv.client.post("/Groups", &json!({"displayName": "Restored", "members": [{"value": uid}]})).await.body);

    let target = format!("{source}-r");
    let (ok, out, err) = restore_script(&["--source", &source, "--target", &target, "--latest"]);
    assert!(ok, "{out}{err}");
    for line in ["stream on (NEW_AND_OLD_IMAGES)", "TTL on expires_at", "point-in-time recovery on", "deletion protection on"] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(out.contains(&format!("layout {}, the one this code serves", scim_core::store::layout::LAYOUT_VERSION)), "{out}");
    assert!(out.contains("TENANT ") && out.contains("(source now: "), "items per family, beside the source's: {out}");
    assert!(out.contains(&format!("\"TableName={target}\"")) && out.contains("\"UseExistingTable=true\""), "{out}");
    let label = out.lines().find_map(|l| l.strip_prefix("STREAM_LABEL=")).expect("the stream's label");
    assert!(out.contains(&format!("\"ExistingTableStreamLabel={label}\"")) && label.starts_with("20"), "{out}");

    // the product, on the restored table, with the key made before the restore
    let restored = DynamoTable::connect(&DynamoConfig::new(&target, "us-east-1", Some(scim_tests::moto_endpoint()))).unwrap();
    let again = scim_tests::Server::start_on(Store::Dynamo, Arc::new(restored), Arc::default()).await;
    assert!(again.is_none(), "the bootstrap tenant and its key came with the table");
    let app = scim_core::edge::App::new(Arc::new(
        DynamoTable::connect(&DynamoConfig::new(&target, "us-east-1", Some(scim_tests::moto_endpoint()))).unwrap(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/scim/v2", listener.local_addr().unwrap());
    tokio::spawn(scim_functions::local::serve(listener, Arc::new(app), None));
    let c = scim_tests::Client::new(&base, &srv.token);
    let user = c.get(&format!("/Users/{uid}")).await;
    assert_eq!((user.status, &user.body["userName"]), (200, &json!("restored@example.com")), "{}", user.body);
    assert_eq!(user.body["groups"][0]["value"], json!(gid), "the membership index came too: {}", user.body);
    let found = c.filter("/Users", "userName eq \"restored@example.com\"", "").await;
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);

    // never over an existing table; a table of another kind is refused and kept
    let (ok, out, err) = restore_script(&["--source", &source, "--target", &target, "--latest"]);
    assert!(!ok && err.contains("exists already"), "{out}{err}");
    let stranger = format!("dr{}", scim_tests::uuid_like());
    scim_tests::fresh_dynamo_table(&stranger).await;
    let (ok, out, _) = restore_script(&["--source", &stranger, "--target", &format!("{stranger}-r"), "--latest"]);
    assert!(!ok && out.contains("REFUSED") && out.contains("no layout marker") && out.contains("no tenant"), "{out}");
}
