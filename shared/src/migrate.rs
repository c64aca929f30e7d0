//! Bringing a table to the current layout ([`LAYOUT_VERSION`]), for both stores: `scim-local`
//! runs it on every start, `scim-admin migrate` against DynamoDB. Idempotent and resumable: every
//! step checks what is already done, so an interrupted run is finished by running it again.
//! Names that become one under caseless comparison are reported, never merged.

use crate::casefold;
use crate::error::Result;
use crate::kind::Kind;
use crate::store::layout::{LAYOUT_VERSION, Layout};

/// Claims read per step.
const CLAIMS_PER_PAGE: usize = 500;

/// Two resources whose names are one name under the current comparison: `id` keeps its old
/// claim until someone renames or deletes one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The tenant both resources belong to.
    pub tenant: String,
    /// `userName` or `displayName`.
    pub attribute: &'static str,
    /// The resource whose claim could not move to its caseless key (it keeps the old one).
    pub id: String,
    /// That resource's name, as stored.
    pub name: String,
    /// The resource holding the name's claim.
    pub holder: String,
}

/// What an upgrade did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The version found (`None`: no marker).
    pub from: Option<u64>,
    /// The version the table is at afterwards ([`LAYOUT_VERSION`]).
    pub to: u64,
    /// True when the table was empty and only initialised.
    pub initialised: bool,
    /// How many tenants the table holds (each upgraded when the table was behind).
    pub tenants: usize,
    /// Name claims moved to their caseless key.
    pub names_rekeyed: usize,
    /// Configuration items moved to their own partitions.
    pub config_moved: usize,
    /// externalIds given their per-holder index entry.
    pub external_ids_indexed: usize,
    /// Inactive users counted (layout 4 keeps a counter of them).
    pub inactive_counted: u64,
    /// API keys given an id that names their tenant (layout 5); their old ids point to them.
    pub keys_renamed: usize,
    /// OAuth clients given an id that names their tenant (layout 5), likewise.
    pub clients_renamed: usize,
    /// Names left on their old claim because another resource holds the caseless one.
    pub collisions: Vec<Collision>,
}

/// Upgrades the table to the current layout, reporting progress through `progress` (one line
/// per step, for a human). A table already current is left as it is (its cursor seal made if
/// missing); an empty one is initialised.
pub async fn upgrade(layout: &Layout, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let from = layout.layout_version().await?;
    let mut report = Report { from, to: LAYOUT_VERSION, ..Report::default() };
    if from.is_some_and(|v| v > LAYOUT_VERSION) {
        return Err(crate::error::ScimError::Internal(format!(
            "the table is at layout {}, newer than this build's {LAYOUT_VERSION}: use a newer scim-serverless",
            from.unwrap_or_default()
        )));
    }
    let tenants: Vec<String> = layout.tenant_ids(100_000).await?;
    report.tenants = tenants.len();
    if from == Some(LAYOUT_VERSION) || (from.is_none() && tenants.is_empty()) {
        report.initialised = from.is_none();
    } else {
        let from = from.unwrap_or(1);
        for (i, t) in tenants.iter().enumerate() {
            progress(&format!("upgrading tenant '{t}' ({} of {}) from layout {from} to {LAYOUT_VERSION}", i + 1, tenants.len()));
            for kind in [Kind::User, Kind::Group] {
                if from < 3 {
                    index_external_ids(layout, t, kind, &mut report).await?;
                }
                if from < 2 {
                    rekey_names(layout, t, kind, &mut report, progress).await?;
                }
            }
            report.inactive_counted += count_inactive(layout, t).await?;
            if from < 2 {
                report.config_moved += layout.upgrade_config_from_v1(t).await?;
            }
            if from < 5 {
                report.keys_renamed += layout.rename_keys_for_v5(t).await?;
                report.clients_renamed += layout.rename_oauth_clients_for_v5(t).await?;
            }
        }
    }
    layout.ensure_seal().await?;
    if from != Some(LAYOUT_VERSION) {
        layout.set_layout_version(LAYOUT_VERSION).await?;
    }
    Ok(report)
}

/// Layout 4 keeps a counter of inactive users; before, nothing counted them: one walk of the
/// users sets it (relative to what the counter holds, so a deactivation meanwhile is kept, and a
/// second run corrects any skew).
async fn count_inactive(layout: &Layout, tenant: &str) -> Result<u64> {
    let mut after: Option<String> = None;
    let mut n = 0u64;
    loop {
        let page = layout.page(tenant, Kind::User, after.as_deref(), CLAIMS_PER_PAGE).await?;
        n += page.iter().filter(|s| s.doc.get("active") == Some(&serde_json::Value::Bool(false))).count() as u64;
        match page.last() {
            Some(last) if page.len() == CLAIMS_PER_PAGE => after = Some(last.id().to_string()),
            _ => break,
        }
    }
    layout.set_inactive_count(tenant, Kind::User, n).await?;
    Ok(n)
}

/// Layouts 1 and 2 held one unique claim per externalId; layout 3 indexes every holder. Each
/// claim gets its holder's index entry (the claims stay: they are harmless, and they serialise
/// writers if the tenant later makes externalIds unique).
async fn index_external_ids(layout: &Layout, tenant: &str, kind: Kind, report: &mut Report) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        let claims = layout.external_id_claims(tenant, kind, after.as_deref(), CLAIMS_PER_PAGE).await?;
        for (ext, id) in &claims {
            layout.index_external_id(tenant, kind, ext, id).await?;
            report.external_ids_indexed += 1;
        }
        match claims.last() {
            Some((ext, _)) if claims.len() == CLAIMS_PER_PAGE => after = Some(ext.clone()),
            _ => return Ok(()),
        }
    }
}

/// Moves every name claim of a collection whose key is not its holder's caseless fold.
async fn rekey_names(layout: &Layout, tenant: &str, kind: Kind, report: &mut Report, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let attribute = match kind {
        Kind::User => "userName",
        // layouts 1 and 2 had no declared types
        Kind::Group | Kind::Declared(_) => "displayName",
    };
    let mut after: Option<String> = None;
    let mut seen = 0usize;
    loop {
        let claims = layout.name_claims(tenant, kind, after.as_deref(), CLAIMS_PER_PAGE).await?;
        let ids: Vec<String> = claims.iter().map(|(_, id)| id.clone()).collect();
        let mut docs = std::collections::HashMap::new();
        for chunk in ids.chunks(100) {
            for s in layout.get_many(tenant, kind, chunk).await? {
                let name = s.doc.get(attribute).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                docs.insert(s.id().to_string(), name);
            }
        }
        for (key, id) in &claims {
            // a claim whose resource is gone, or whose name is no longer this key, was left by an
            // interrupted write of layout 1; it is not this upgrade's to judge
            let Some(name) = docs.get(id) else { continue };
            let folded = casefold::fold(name);
            if folded == *key || name.to_lowercase() != *key {
                continue;
            }
            match layout.move_name_claim(tenant, kind, key, &folded, id).await? {
                None => report.names_rekeyed += 1,
                Some(holder) => {
                    report.collisions.push(Collision { tenant: tenant.to_string(), attribute, id: id.clone(), name: name.clone(), holder })
                }
            }
        }
        seen += claims.len();
        if seen > 0 && seen % 10_000 < CLAIMS_PER_PAGE {
            progress(&format!("  {attribute}: {seen} checked"));
        }
        match claims.last() {
            Some((key, _)) if claims.len() == CLAIMS_PER_PAGE => after = Some(key.clone()),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedTable;
    use crate::store::{Cond, Item, Table, Write};
    use serde_json::json;
    use std::sync::Arc;

    fn put(pk: &str, sk: &str, doc: serde_json::Value) -> Write {
        Write::Put { item: Item::new(pk, sk, doc.to_string(), 1), cond: Cond::Always }
    }

    /// A table as version 1 left it: one tenant, two users whose names are one name under
    /// caseless comparison, one user with a decomposed accent, a key with the settings copy.
    async fn layout_1_table() -> Layout {
        let table: Arc<dyn Table> = Arc::new(EmbeddedTable::in_memory());
        let user = |id: &str, name: &str| json!({"id": id, "userName": name});
        table
            .write(vec![
                put("TENANTS", "TENANT#acme", json!({"id": "acme"})),
                put("TENANT#acme", "TENANT", json!({"id": "acme", "name": "Acme", "status": "active", "ip_allowlist": ["10.0.0.0/8"]})),
                put("TENANT#acme", "KEYREF#00112233aabbccdd", json!({"key_id": "00112233aabbccdd"})),
                put(
                    "KEY#00112233aabbccdd",
                    "KEY",
                    json!({"key_id": "00112233aabbccdd", "tenant": "acme", "role": "admin", "hash": "h", "revoked": false,
                        "tenant_settings": {"status": "active"}, "last_used_unix": 1, "last_used_at": "1970-01-01T00:00:01Z"}),
                ),
                put("TENANT#acme", "USER#u1", user("u1", "stra\u{df}e")),
                put("TENANT#acme", "USERNAME#stra\u{df}e", json!({"id": "u1"})),
                put("TENANT#acme", "USER#u2", user("u2", "STRASSE")),
                put("TENANT#acme", "USERNAME#strasse", json!({"id": "u2"})),
                put("TENANT#acme", "USER#u3", user("u3", "Jose\u{301}")),
                put("TENANT#acme", "USERNAME#jose\u{301}", json!({"id": "u3"})),
                put("TENANT#acme", "USER#u4", user("u4", "plain@example.com")),
                put("TENANT#acme", "USERNAME#plain@example.com", json!({"id": "u4"})),
            ])
            .await
            .unwrap();
        Layout::new(table)
    }

    #[tokio::test]
    async fn layout_1_is_upgraded_once_and_collisions_are_reported_not_merged() {
        let layout = layout_1_table().await;
        let mut lines = Vec::new();
        let r = upgrade(&layout, &mut |l| lines.push(l.to_string())).await.unwrap();
        assert_eq!((r.from, r.to, r.initialised, r.tenants), (None, LAYOUT_VERSION, false, 1));
        assert_eq!(r.names_rekeyed, 1, "the decomposed accent moves to its composed fold");
        assert_eq!(r.collisions.len(), 1, "{:?}", r.collisions);
        assert_eq!((r.collisions[0].id.as_str(), r.collisions[0].holder.as_str()), ("u1", "u2"));
        assert!(lines.iter().any(|l| l.contains("acme")));
        // names resolve by their fold; the colliding user keeps its old claim
        assert_eq!(layout.claimed_by("acme", Kind::User, Some(&casefold::fold("JOS\u{c9}")), None).await.unwrap().as_deref(), Some("u3"));
        assert_eq!(layout.claimed_by("acme", Kind::User, Some("strasse"), None).await.unwrap().as_deref(), Some("u2"));
        assert_eq!(layout.claimed_by("acme", Kind::User, Some("stra\u{df}e"), None).await.unwrap().as_deref(), Some("u1"));
        // configuration moved out of the data partition; the key lost its settings copy
        assert!(layout.table().get("TENANT#acme", "TENANT").await.unwrap().is_none());
        assert!(layout.table().get("CONF#acme", "TENANT").await.unwrap().is_some());
        // the key is renamed after its tenant (layout 5); its old id points to the new one
        assert!(layout.table().get("CONF#acme", "KEYREF#acme.00112233aabbccdd").await.unwrap().is_some());
        assert!(layout.table().get("CONF#acme", "KEYREF#00112233aabbccdd").await.unwrap().is_none());
        let key = layout.table().get("KEY#acme.00112233aabbccdd", "KEY").await.unwrap().unwrap();
        assert!(!key.doc.as_deref().unwrap().contains("tenant_settings"));
        assert!(key.doc.as_deref().unwrap().contains(r#""legacy_id":"00112233aabbccdd""#));
        assert!(layout.table().get("KEY#00112233aabbccdd", "KEY").await.unwrap().is_none());
        assert_eq!(layout.moved_key("00112233aabbccdd").await.unwrap().as_deref(), Some("acme.00112233aabbccdd"));
        assert!(layout.table().get("KEYUSE#acme.00112233aabbccdd", "USE").await.unwrap().is_some());
        assert!(layout.table().get("KEYUSE#00112233aabbccdd", "USE").await.unwrap().is_none());
        assert_eq!(r.keys_renamed, 1);
        assert!(layout.seal_key().await.unwrap().is_some());
        assert_eq!(layout.layout_version().await.unwrap(), Some(LAYOUT_VERSION));
        // a second run changes nothing
        let again = upgrade(&layout, &mut |_| {}).await.unwrap();
        assert_eq!((again.from, again.names_rekeyed, again.config_moved, again.collisions.len()), (Some(LAYOUT_VERSION), 0, 0, 0));
    }

    /// An OAuth client made at layout 4 (20 hex id), as an identity provider keeps it configured:
    /// 503 until the upgrade, then a token for the old id, naming the client's new id.
    #[tokio::test]
    async fn an_oauth_client_of_layout_4_works_under_its_old_id_after_the_upgrade() {
        use base64::Engine;
        let table: Arc<dyn Table> = Arc::new(EmbeddedTable::in_memory());
        let service = crate::service::Service::over(table.clone());
        let layout = service.layout().clone();
        upgrade(&layout, &mut |_| {}).await.unwrap();
        crate::tenancy::create_tenant(&layout, "acme", "Acme").await.unwrap();
        crate::oauth::rotate_signing_key(&layout).await.unwrap();
        let made = crate::oauth::create_client(&layout, "acme", "provisioner", None).await.unwrap();
        // the same client as layout 4 kept it: its items under the bare hex id
        let old = made.client_id.strip_prefix("acme.").unwrap().to_string();
        let rec = table.get(&format!("OAUTH#{}", made.client_id), "CLIENT").await.unwrap().unwrap();
        let doc = rec.doc.as_deref().unwrap().replace(&made.client_id, &old);
        table
            .write(vec![
                put(&format!("OAUTH#{old}"), "CLIENT", serde_json::from_str(&doc).unwrap()),
                put("CONF#acme", &format!("OAUTHREF#{old}"), json!({"client_id": old})),
                Write::Delete { pk: format!("OAUTH#{}", made.client_id), sk: "CLIENT".into(), cond: Cond::Always },
                Write::Delete { pk: "CONF#acme".into(), sk: format!("OAUTHREF#{}", made.client_id), cond: Cond::Always },
                put("LAYOUT", "LAYOUT", json!({"version": 4})),
            ])
            .await
            .unwrap();
        let token = |id: &str| {
            let mut r = http::Request::new(bytes::Bytes::from_static(b"grant_type=client_credentials"));
            *r.method_mut() = http::Method::POST;
            r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-www-form-urlencoded"));
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{}", made.secret));
            r.headers_mut().insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(&format!("Basic {basic}")).unwrap());
            r
        };
        let ask = |id: String| {
            let service = &service;
            let r = token(&id);
            async move { crate::token_endpoint::handle(service, &r, "/oauth2/token", "https://x").await.response }
        };
        assert_eq!(ask(old.clone()).await.status, 503, "not upgraded yet: retry, do not give up");
        assert_eq!(upgrade(&layout, &mut |_| {}).await.unwrap().clients_renamed, 1);
        let ok = ask(old.clone()).await;
        assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
        assert_eq!(ask(made.client_id.clone()).await.status, 200, "and under its new id");
        let listed = crate::oauth::list_clients(&layout, "acme").await.unwrap();
        assert_eq!(listed[0]["client_id"], json!(made.client_id));
        assert_eq!(ask("99".repeat(10)).await.status, 401, "an old id nobody held");
    }

    /// A key made at layout 4 (hex id, token `scim_<hex>_<secret>`): refused with 503 until the
    /// table is upgraded, then accepted under its new id; revoked by its old id too.
    #[tokio::test]
    async fn a_key_of_layout_4_works_under_its_new_name_after_the_upgrade() {
        let table: Arc<dyn Table> = Arc::new(EmbeddedTable::in_memory());
        let layout = Layout::new(table.clone());
        let secret = "s".repeat(43);
        table
            .write(vec![
                put("TENANTS", "TENANT#acme", json!({"id": "acme"})),
                put("CONF#acme", "TENANT", json!({"id": "acme", "name": "Acme", "status": "active"})),
                put("CONF#acme", "KEYREF#00112233aabbccdd", json!({"key_id": "00112233aabbccdd"})),
                put(
                    "KEY#00112233aabbccdd",
                    "KEY",
                    json!({"key_id": "00112233aabbccdd", "tenant": "acme", "role": "admin",
                    "hash": crate::tenancy::hash_secret(&secret), "revoked": false, "created": "2026-01-01T00:00:00Z"}),
                ),
                put("LAYOUT", "LAYOUT", json!({"version": 4})),
            ])
            .await
            .unwrap();
        let bearer = format!("Bearer scim_00112233aabbccdd_{secret}");
        let before = crate::auth::authenticate(&layout, Some(&bearer), None).await.unwrap_err();
        assert_eq!(before.status(), 503, "not upgraded yet: retry, do not give up");
        assert_eq!(upgrade(&layout, &mut |_| {}).await.unwrap().keys_renamed, 1);
        let p = crate::auth::authenticate(&layout, Some(&bearer), None).await.unwrap();
        assert_eq!((p.tenant_id.as_str(), p.key_id.as_str()), ("acme", "acme.00112233aabbccdd"));
        let unknown = format!("Bearer scim_99112233aabbccdd_{secret}");
        assert_eq!(crate::auth::authenticate(&layout, Some(&unknown), None).await.unwrap_err().status(), 401);
        crate::tenancy::revoke_key(&layout, "00112233aabbccdd").await.unwrap();
        assert_eq!(crate::auth::authenticate(&layout, Some(&bearer), None).await.unwrap_err().status(), 401);
    }

    #[tokio::test]
    async fn an_interrupted_upgrade_finishes_on_the_next_run() {
        let layout = layout_1_table().await;
        // as if a run stopped after writing the new claim of u3 but before dropping the old one
        layout
            .table()
            .write(vec![put("TENANT#acme", &format!("USERNAME#{}", casefold::fold("Jose\u{301}")), json!({"id": "u3"}))])
            .await
            .unwrap();
        let r = upgrade(&layout, &mut |_| {}).await.unwrap();
        assert_eq!(r.names_rekeyed, 1);
        assert!(layout.table().get("TENANT#acme", "USERNAME#jose\u{301}").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_empty_table_is_initialised() {
        let layout = Layout::new(Arc::new(EmbeddedTable::in_memory()));
        let r = upgrade(&layout, &mut |_| {}).await.unwrap();
        assert!(r.initialised);
        assert_eq!(layout.layout_version().await.unwrap(), Some(LAYOUT_VERSION));
        assert!(layout.seal_key().await.unwrap().is_some());
    }
}
