//! The single-table layout: which item holds what, and the reads and transactions each SCIM
//! operation needs. Every key is built in this module ([`keys`]) and nowhere else: the layers
//! above ask for resources, records and entries by what they are. One file per item family:
//! `resources` (resources and their claims), `membership`, `listing` (pages and checkpoints),
//! `config` (tenant records, schema declarations, API keys and their stamps), `audit` (the
//! activity log and the counters beside it), `server` (the seal and the layout marker) and
//! `upgrade` (what `migrate` moves).
//!
//! Item families have partition keys of their own wherever IAM must tell them apart
//! (`dynamodb:LeadingKeys` sees only the partition key): tenant configuration, API keys, their
//! last-use stamps and the server items never share a partition prefix with the data the
//! SCIM routes write (`TENANT#…`).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | counters | `TENANT#<t>` | `COUNT` |
//! | user | `TENANT#<t>` | `USER#<id>` |
//! | userName claim | `TENANT#<t>` | `USERNAME#<folded userName>` ([`crate::casefold`]) |
//! | externalId index entry (one per holder) | `TENANT#<t>` | `UEXTID#<externalId, % and # escaped>#<id>` |
//! | externalId claim (only while the tenant makes externalIds unique) | `TENANT#<t>` | `UEXT#<externalId>` |
//! | group | `TENANT#<t>` | `GROUP#<id>` (document without members) |
//! | displayName claim | `TENANT#<t>` | `GROUPNAME#<folded displayName>` |
//! | group externalId index entry / claim | `TENANT#<t>` | `GEXTID#<externalId>#<id>` / `GEXT#<externalId>` |
//! | membership | `TENANT#<t>#GROUP#<gid>` | `MEMBER#<uid>`; index `gsi1`: `TENANT#<t>#USER#<uid>` / `GROUP#<gid>` |
//! | page checkpoint | `TENANT#<t>#CURSOR` | `USER#<position, 12 digits>` |
//! | request counter (TTL 2 min) | `TENANT#<t>#RATE` | `<unix second>` |
//! | unauthenticated refusals counted (TTL 2 h) | `TENANT#<t>#RATE` | `REFUSED#<unix hour>` |
//! | audit entry (TTL 90 days) | `TENANT#<t>#AUDIT#<YYYY-MM-DD>` | `AT#<unix ms, 13 digits>#<uuid v7>` |
//! | tenant record (settings) | `CONF#<t>` | `TENANT` |
//! | key reference (for listing) | `CONF#<t>` | `KEYREF#<key id>` |
//! | schema declarations (the tenant's extensions) | `CONF#<t>` | `SCHEMAS` |
//! | unique extension attribute claim | `TENANT#<t>` | `XU#<U or G>#<16 hex: FNV-1a of the URN>#<attribute>#<value key>` |
//! | resource of a declared type (its slot: [`crate::kind::Slot`]) | `TENANT#<t>` | `RES<slot>#<id>` |
//! | its unique attribute claims (core or extension) | `TENANT#<t>` | `XU#R<slot>#<16 hex>#<attribute>#<value key>` |
//! | its externalId index entry / claim, counters | `TENANT#<t>` | `REXTID<slot>#…` / `REXT<slot>#…`; `COUNT` fields `res<slot>`, `res<slot>_deletes` |
//! | API key (key id `<t>.<16 hex>`) | `KEY#<key id>` | `KEY` |
//! | key last-use stamp | `KEYUSE#<key id>` | `USE` |
//! | where a key of layout 4 or older went (its old id: 16 hex) | `KEY#<old id>` | `MOVED` |
//! | where an OAuth client of layout 4 or older went (its old id: 20 hex) | `OAUTH#<old id>` | `MOVED` |
//! | tenant registry | `TENANTS` | `TENANT#<t>` |
//! | cursor sealing key | `SERVER` | `SEAL` |
//! | layout version marker | `LAYOUT` | `LAYOUT` |

use super::{Cond, Item, Query, StoreError, Table, Write};
use serde_json::{Map, Value};

mod audit;
mod config;
pub mod keys;
mod listing;
mod membership;
mod oauth;
mod resources;
mod server;
mod upgrade;

pub use crate::kind::Kind;
pub use config::{KEY_USE_UNIX, KeyItems};
use keys::*;
pub use keys::{ItemKey, id_tenant, parse_key, valid_tenant_id};
pub use membership::MemberDelta;
use resources::*;
pub use resources::{Claims, Counts, MAX_DOCUMENT_BYTES, Stored, StoredText, WriteConflict};

/// The version of this layout; `SERVER`/`LAYOUT` records the version a table is at.
/// 1: everything of a tenant under `TENANT#<t>`, settings copied into key records, names keyed
/// by their lower case. 2: configuration, keys and last-use stamps in partitions of their own,
/// names keyed by their caseless fold. 3: externalIds indexed per holder (not unique).
/// 4: a counter of inactive users beside the collection counters. 5: key and OAuth client ids name their
/// tenant (`<t>.<hex>`, so `KEY#<t>.…`, `OAUTH#<t>.…`: a tenant's IAM session reaches its own
/// only); one of an older layout keeps a pointer under its old id.
pub const LAYOUT_VERSION: u64 = 5;

/// The layout over any [`Table`]: the only way the layers above reach the store.
#[derive(Clone)]
pub struct Layout {
    table: std::sync::Arc<dyn Table>,
}

impl Layout {
    /// The layout over a table.
    pub fn new(table: std::sync::Arc<dyn Table>) -> Layout {
        Layout { table }
    }

    /// The table under it, for the core's own tests.
    #[cfg(test)]
    pub(crate) fn table(&self) -> &std::sync::Arc<dyn Table> {
        &self.table
    }
}

impl Layout {
    /// Writes one transaction; a failed condition becomes the conflict its write stands for
    /// (`roles[i]` for write `i`).
    pub(super) async fn commit(&self, writes: Vec<Write>, roles: &[WriteConflict]) -> Result<Result<(), WriteConflict>, StoreError> {
        match self.table.write(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::Conflict { index }) => Ok(Err(roles.get(index).cloned().unwrap_or(WriteConflict::Version))),
            Err(e) => Err(e),
        }
    }

    /// Reads a JSON record (tenant, key).
    pub async fn get_record(&self, pk: &str, sk: &str) -> Result<Option<(Value, u64)>, StoreError> {
        let Some(item) = self.table.get(pk, sk).await? else {
            return Ok(None);
        };
        let v = item
            .doc
            .as_deref()
            .map(serde_json::from_str::<Value>)
            .transpose()
            .map_err(|e| StoreError::caused(format!("corrupt record {pk}"), e))?;
        Ok(v.map(|v| (v, item.version)))
    }

    /// The typed records of a partition whose sort key starts with `prefix` (one Query); items
    /// that do not parse as `T` are skipped.
    pub async fn list_typed<T: serde::de::DeserializeOwned>(&self, pk: &str, prefix: &str, limit: usize) -> Result<Vec<T>, StoreError> {
        let items = self.table.query(&Query::prefix(pk, prefix, None, limit)).await?;
        Ok(items.iter().filter_map(|i| i.doc.as_deref().and_then(|d| serde_json::from_str(d).ok())).collect())
    }

    /// A typed record and its version.
    pub async fn read_record<T: serde::de::DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<(T, u64)>, StoreError> {
        let Some(item) = self.table.get(pk, sk).await? else {
            return Ok(None);
        };
        let text = item.doc.as_deref().ok_or_else(|| StoreError::other(format!("record {pk} has no document")))?;
        let rec = serde_json::from_str(text).map_err(|e| StoreError::caused(format!("corrupt record {pk}"), e))?;
        Ok(Some((rec, item.version)))
    }

    /// Read-modify-write of one typed record, conditional on the version read and retried when
    /// another writer came first (three attempts, then a `Conflict`). `change` returns whether
    /// there is anything to write. `None` when there is no such record.
    pub async fn modify_record<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        pk: &str,
        sk: &str,
        mut change: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<T>, StoreError> {
        for _ in 0..3 {
            let Some((mut rec, version)) = self.read_record::<T>(pk, sk).await? else {
                return Ok(None);
            };
            if !change(&mut rec) {
                return Ok(Some(rec));
            }
            let text = serde_json::to_string(&rec).map_err(|e| StoreError::caused(format!("record {pk} cannot be written"), e))?;
            match self.table.write(vec![Write::Put { item: Item::new(pk, sk, text, version + 1), cond: Cond::Version(version) }]).await {
                Ok(()) => return Ok(Some(rec)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict { index: 0 })
    }

    /// Lists JSON records in a partition by sort-key prefix.
    pub async fn list_records(&self, pk: &str, prefix: &str, limit: usize) -> Result<Vec<Value>, StoreError> {
        let items = self.table.query(&Query::prefix(pk, prefix, None, limit)).await?;
        Ok(items.iter().filter_map(|i| i.doc.as_deref().and_then(|d| serde_json::from_str(d).ok())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedTable;
    use crate::store::metered::{Call, Metered};
    use std::sync::Arc;

    #[test]
    fn every_item_family_has_a_partition_of_its_own() {
        let pks = [tenant_pk("acme"), cursor_pk("acme"), conf_pk("acme"), key_pk("k1"), key_use_pk("k1"), members_pk("acme", "g1")];
        let distinct: std::collections::BTreeSet<&String> = pks.iter().collect();
        assert_eq!(distinct.len(), pks.len(), "{pks:?}");
        assert!(pks.iter().all(|p| p != REGISTRY_PK && p != SERVER_PK && p != LAYOUT_PK));
        // what IAM's LeadingKeys sees: only data-plane partitions start with the tenant prefix
        assert!(conf_pk("acme").starts_with("CONF#") && key_pk("k1").starts_with("KEY#") && key_use_pk("k1").starts_with("KEYUSE#"));
    }

    #[test]
    fn item_keys_name_resources_and_memberships_only() {
        let user = (tenant_pk("acme"), resource_sk(Kind::User, "u1"));
        assert_eq!(parse_key(&user.0, &user.1), Some(ItemKey::Resource { tenant: "acme".into(), kind: Kind::User, id: "u1".into() }));
        let m = member_item("acme", "g1", "u1");
        assert_eq!(parse_key(&m.pk, &m.sk), Some(ItemKey::Membership { tenant: "acme".into(), group: "g1".into(), user: "u1".into() }));
        for (pk, sk) in [
            (cursor_pk("acme"), "USER#1".to_string()),
            (conf_pk("acme"), TENANT_SK.to_string()),
            (key_pk("k1"), KEY_SK.to_string()),
            ("TENANT#acme#AUDIT#2026-11-29".to_string(), "AT#1#x".to_string()),
            (tenant_pk("acme"), "CLAIM#x".to_string()),
        ] {
            assert_eq!(parse_key(&pk, &sk), None, "{pk} / {sk}");
        }
    }

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Counter {
        n: u64,
    }

    #[tokio::test]
    pub(super) async fn a_read_modify_write_retries_a_lost_race_and_then_gives_up() {
        let metered = Arc::new(Metered::new(Arc::new(EmbeddedTable::in_memory())));
        let layout = Layout::new(metered.clone());
        layout.table().write(vec![Write::Put { item: Item::new("R", "r", r#"{"n":1}"#.into(), 1), cond: Cond::Absent }]).await.unwrap();
        // another writer wins once: the change is made again on what it wrote, not lost
        metered.fail_nth(Some(Call::Write), 0, StoreError::Conflict { index: 0 });
        let got = layout.modify_record::<Counter>("R", "r", |c| {
            c.n += 1;
            true
        });
        assert_eq!(got.await.unwrap(), Some(Counter { n: 2 }));
        assert_eq!(layout.read_record::<Counter>("R", "r").await.unwrap(), Some((Counter { n: 2 }, 2)));
        // three lost races in a row: a conflict the caller can retry, nothing written
        for _ in 0..3 {
            metered.fail_nth(Some(Call::Write), 0, StoreError::Conflict { index: 0 });
        }
        let r = layout.modify_record::<Counter>("R", "r", |c| {
            c.n += 1;
            true
        });
        assert!(matches!(r.await, Err(StoreError::Conflict { .. })));
        assert_eq!(layout.read_record::<Counter>("R", "r").await.unwrap().map(|(c, _)| c.n), Some(2));
        // nothing to change: nothing written; no record: None
        let writes = metered.counts().write;
        assert_eq!(layout.modify_record::<Counter>("R", "r", |_| false).await.unwrap(), Some(Counter { n: 2 }));
        assert_eq!(metered.counts().write, writes);
        assert_eq!(layout.modify_record::<Counter>("R", "missing", |_| true).await.unwrap(), None);
    }

    #[tokio::test]
    pub(super) async fn a_corrupt_record_is_an_error_that_names_it() {
        let layout = Layout::new(Arc::new(EmbeddedTable::in_memory()));
        layout.table().write(vec![Write::Put { item: Item::new("R", "bad", "{not json".into(), 1), cond: Cond::Absent }]).await.unwrap();
        let e = layout.read_record::<Counter>("R", "bad").await.unwrap_err();
        assert!(e.to_string().starts_with("store failure: corrupt record R: "), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "the parse error is kept");
    }
}
