//! What `migrate` reads and moves between layout versions.

use super::*;

impl Layout {
    /// The name claims of a collection (`USERNAME#…` / `GROUPNAME#…`) in key order after the
    /// claimed key `after`: (claimed key, holder id).
    pub async fn name_claims(
        &self,
        tenant: &str,
        kind: Kind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = kind.name_claim();
        let after_sk = after.map(|a| format!("{prefix}{a}"));
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), &prefix, after_sk.as_deref(), limit)).await?;
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let holder = Stored::from_item(item)?.id().to_string();
            out.push((item.sk[prefix.len()..].to_string(), holder));
        }
        Ok(out)
    }

    /// The externalId claims of a collection (`UEXT#…` / `GEXT#…`, every holder's before layout
    /// 3) in key order after the externalId `after`: (externalId, holder id).
    pub async fn external_id_claims(
        &self,
        tenant: &str,
        kind: Kind,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let prefix = kind.ext_claim();
        let after_sk = after.map(|a| format!("{prefix}{a}"));
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), &prefix, after_sk.as_deref(), limit)).await?;
        let mut out = Vec::with_capacity(items.len());
        for item in &items {
            let holder = Stored::from_item(item)?.id().to_string();
            out.push((item.sk[prefix.len()..].to_string(), holder));
        }
        Ok(out)
    }

    /// Gives `id` the index entry of an externalId it holds (idempotent).
    pub async fn index_external_id(&self, tenant: &str, kind: Kind, external_id: &str, id: &str) -> Result<(), StoreError> {
        let item = claim_item(&tenant_pk(tenant), ext_index_sk(kind, external_id, id), id);
        self.table.write(vec![Write::Put { item, cond: Cond::Always }]).await
    }

    /// Moves `id`'s name claim from key `from` to key `to` in one transaction. `Ok(None)` when
    /// it moved (or had moved before); `Ok(Some(holder))` when another resource holds `to`, and
    /// nothing changed.
    pub async fn move_name_claim(&self, tenant: &str, kind: Kind, from: &str, to: &str, id: &str) -> Result<Option<String>, StoreError> {
        let pk = tenant_pk(tenant);
        let prefix = kind.name_claim();
        let writes = vec![
            Write::Put { item: claim_item(&pk, format!("{prefix}{to}"), id), cond: Cond::Absent },
            Write::Delete { pk: pk.clone(), sk: format!("{prefix}{from}"), cond: Cond::Always },
        ];
        match self.table.write(writes).await {
            Ok(()) => Ok(None),
            Err(StoreError::Conflict { .. }) => match self.claimed_by(tenant, kind, Some(to), None).await? {
                // moved by an earlier, interrupted run: only the old claim is left to drop
                Some(holder) if holder == id => {
                    self.table.write(vec![Write::Delete { pk, sk: format!("{prefix}{from}"), cond: Cond::Always }]).await?;
                    Ok(None)
                }
                Some(holder) => Ok(Some(holder)),
                None => Err(StoreError::unavailable("a name claim changed during the upgrade; run it again")),
            },
            Err(e) => Err(e),
        }
    }

    /// Layout 1 kept a tenant's record and key references under `TENANT#<t>` and a copy of its
    /// settings and the last-use stamp inside each key record. Moves them where layout 2 keeps
    /// them; the tenant record moves last (a key works again once it has). Idempotent; returns
    /// the number of items written.
    pub async fn upgrade_config_from_v1(&self, tenant: &str) -> Result<usize, StoreError> {
        let (old_pk, new_pk) = (tenant_pk(tenant), conf_pk(tenant));
        let mut written = 0;
        for item in self.table.query(&Query::prefix(old_pk.clone(), KEYREF, None, 10_000)).await? {
            let key_id = item.sk[KEYREF.len()..].to_string();
            let moved = Item { pk: new_pk.clone(), ..Item::clone(&item) };
            self.table
                .write(vec![
                    Write::Put { item: moved, cond: Cond::Always },
                    Write::Delete { pk: old_pk.clone(), sk: item.sk.clone(), cond: Cond::Always },
                ])
                .await?;
            written += 1 + self.upgrade_key_from_v1(&key_id).await?;
        }
        if let Some(item) = self.table.get(&old_pk, TENANT_SK).await? {
            let moved = Item { pk: new_pk.clone(), ..crate::store::Shared::unwrap_or_clone(item) };
            let delete = Write::Delete { pk: old_pk.clone(), sk: TENANT_SK.into(), cond: Cond::Always };
            match self.table.write(vec![Write::Put { item: moved, cond: Cond::Absent }, delete.clone()]).await {
                Ok(()) => written += 1,
                // already at its new place: only the old copy is left to drop
                Err(StoreError::Conflict { .. }) => self.table.write(vec![delete]).await?,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Layout 5 names every key by its tenant (`<t>.<old id>`), so a tenant's session reaches
    /// its own keys only. Renames each key of `tenant` still named by hex alone: its record
    /// (with `legacy_id`), its last-use stamp and its reference move to the new id, and the old
    /// id keeps a pointer to it (`MOVED`), so a token made before keeps working. One
    /// transaction per key; idempotent. Returns the number of keys renamed.
    pub async fn rename_keys_for_v5(&self, tenant: &str) -> Result<usize, StoreError> {
        let conf = conf_pk(tenant);
        let mut renamed = 0;
        for reference in self.table.query(&Query::prefix(conf.clone(), KEYREF, None, 10_000)).await? {
            let old = &reference.sk[KEYREF.len()..];
            if id_tenant(old).is_some() {
                continue;
            }
            let new = format!("{tenant}.{old}");
            let mut writes = Vec::new();
            if let Some(key) = self.table.get(&key_pk(old), KEY_SK).await? {
                let moved = renamed_record(key.doc.as_deref(), "key_id", &new, old);
                writes.push(Write::Put { item: Item::new(key_pk(&new), KEY_SK, moved, key.version), cond: Cond::Always });
                writes.push(Write::Delete { pk: key_pk(old), sk: KEY_SK.into(), cond: Cond::Always });
            }
            if let Some(stamp) = self.table.get(&key_use_pk(old), KEY_USE_SK).await? {
                let item = Item { pk: key_use_pk(&new), ..crate::store::Shared::unwrap_or_clone(stamp) };
                writes.push(Write::Put { item, cond: Cond::Always });
                writes.push(Write::Delete { pk: key_use_pk(old), sk: KEY_USE_SK.into(), cond: Cond::Always });
            }
            writes.extend(pointer_and_reference(Renamed {
                tenant,
                field: "key_id",
                old_pk: key_pk(old),
                reference: &reference.sk,
                prefix: KEYREF,
                new: &new,
            }));
            self.table.write(writes).await?;
            renamed += 1;
        }
        Ok(renamed)
    }

    /// Layout 5 names every OAuth client by its tenant (`<t>.<old id>`), as it does keys.
    /// Renames each client of `tenant` still named by hex alone: every item of its partition
    /// (the record, with `legacy_id`; its failure and assertion-replay counters) moves to the
    /// new id, its reference too, and the old id keeps a pointer (`MOVED`), so an identity
    /// provider configured with the old id keeps working. Idempotent; returns the number of
    /// clients renamed.
    pub async fn rename_oauth_clients_for_v5(&self, tenant: &str) -> Result<usize, StoreError> {
        let conf = conf_pk(tenant);
        let mut renamed = 0;
        for reference in self.table.query(&Query::prefix(conf.clone(), OAUTHREF, None, 10_000)).await? {
            let old = &reference.sk[OAUTHREF.len()..];
            if id_tenant(old).is_some() {
                continue;
            }
            let (old_pk, new) = (oauth_client_pk(old), format!("{tenant}.{old}"));
            let items = self.table.query(&Query::prefix(old_pk.clone(), "", None, 100_000)).await?;
            // the counters first (they expire on their own; copying twice is harmless)
            for item in items.iter().filter(|i| i.sk != OAUTH_CLIENT_SK && i.sk != MOVED_SK) {
                let moved = Item { pk: oauth_client_pk(&new), ..crate::store::Shared::unwrap_or_clone(item.clone()) };
                self.table.write(vec![Write::Put { item: moved, cond: Cond::Always }]).await?;
            }
            let mut writes = Vec::new();
            if let Some(client) = items.iter().find(|i| i.sk == OAUTH_CLIENT_SK) {
                let moved = renamed_record(client.doc.as_deref(), "client_id", &new, old);
                writes.push(Write::Put {
                    item: Item::new(oauth_client_pk(&new), OAUTH_CLIENT_SK, moved, client.version),
                    cond: Cond::Always,
                });
                writes.push(Write::Delete { pk: old_pk.clone(), sk: OAUTH_CLIENT_SK.into(), cond: Cond::Always });
            }
            writes.extend(pointer_and_reference(Renamed {
                tenant,
                field: "client_id",
                old_pk: old_pk.clone(),
                reference: &reference.sk,
                prefix: OAUTHREF,
                new: &new,
            }));
            self.table.write(writes).await?;
            for item in items.iter().filter(|i| i.sk != OAUTH_CLIENT_SK && i.sk != MOVED_SK) {
                self.table.write(vec![Write::Delete { pk: old_pk.clone(), sk: item.sk.clone(), cond: Cond::Always }]).await?;
            }
            renamed += 1;
        }
        Ok(renamed)
    }

    /// Drops the settings copy from a layout-1 key record and moves its last-use stamp to the
    /// key's own stamp item.
    pub(super) async fn upgrade_key_from_v1(&self, key_id: &str) -> Result<usize, StoreError> {
        let Some(item) = self.table.get(&key_pk(key_id), KEY_SK).await? else {
            return Ok(0);
        };
        let Some(mut rec) = item.doc.as_deref().and_then(|d| serde_json::from_str::<Map<String, Value>>(d).ok()) else {
            return Ok(0);
        };
        let settings = rec.remove("tenant_settings");
        let (unix, at) = (rec.remove("last_used_unix"), rec.remove("last_used_at"));
        if settings.is_none() && unix.is_none() && at.is_none() {
            return Ok(0);
        }
        let mut writes = vec![Write::Put {
            item: Item::new(key_pk(key_id), KEY_SK, crate::json_text(&rec), item.version + 1),
            cond: Cond::Version(item.version),
        }];
        if let (Some(unix), Some(at)) = (unix, at) {
            let stamp = serde_json::json!({"last_used_unix": unix, "last_used_at": at}).to_string();
            writes.push(Write::Put { item: Item::new(key_use_pk(key_id), KEY_USE_SK, stamp, 1), cond: Cond::Always });
        }
        let n = writes.len();
        self.table.write(writes).await?;
        Ok(n)
    }
}

/// A record renamed by the layout-5 upgrade: its id field set to the new id, the old one kept as
/// `legacy_id`. A record that does not parse moves as it is: nothing is dropped.
fn renamed_record(text: Option<&str>, field: &str, new: &str, old: &str) -> String {
    let text = text.unwrap_or("{}");
    match serde_json::from_str::<Map<String, Value>>(text) {
        Ok(mut rec) => {
            rec.insert(field.into(), Value::from(new));
            rec.insert("legacy_id".into(), Value::from(old));
            crate::json_text(&rec)
        }
        Err(_) => text.to_string(),
    }
}

/// What the layout-5 upgrade renames one key or client from, and to.
struct Renamed<'a> {
    tenant: &'a str,
    /// The record's id field (`key_id`, `client_id`).
    field: &'static str,
    /// The partition of the old id, which keeps the pointer.
    old_pk: String,
    /// The sort key of the old reference under the tenant.
    reference: &'a str,
    /// The references' sort-key prefix (`KEYREF#`, `OAUTHREF#`).
    prefix: &'static str,
    new: &'a str,
}

/// The pointer left under the old id, and the reference moved to the new one.
fn pointer_and_reference(r: Renamed<'_>) -> [Write; 3] {
    let conf = conf_pk(r.tenant);
    let pointer = serde_json::json!({r.field: r.new, "tenant": r.tenant}).to_string();
    let reference_doc = serde_json::json!({r.field: r.new}).to_string();
    [
        Write::Put { item: Item::new(r.old_pk, MOVED_SK, pointer, 1), cond: Cond::Always },
        Write::Put { item: Item::new(conf.clone(), [r.prefix, r.new].concat(), reference_doc, 1), cond: Cond::Always },
        Write::Delete { pk: conf, sk: r.reference.to_string(), cond: Cond::Always },
    ]
}
