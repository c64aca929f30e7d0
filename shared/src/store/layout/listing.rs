//! Pages of a collection in id order, and the checkpoints that let a deep page start near its
//! position.

use super::*;

/// A page checkpoint item, when it is still valid for `deletes` (deletes shift positions).
pub(super) fn checkpoint_of(kind: Kind, item: &Item, deletes: u64) -> Option<(u64, String)> {
    let pos: u64 = item.sk.trim_start_matches(&*kind.prefix()).parse().unwrap_or(0);
    let generation = item.nums.get("deletes").copied().unwrap_or(-1);
    let after = item
        .doc
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .and_then(|v| v.get("after").and_then(Value::as_str).map(str::to_string))?;
    (generation == deletes as i64 && pos > 0).then_some((pos, after))
}

impl Layout {
    /// Up to `limit` resources in id order, after the resource `after` (exclusive).
    pub async fn page(&self, tenant: &str, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let after_sk = after.map(|a| resource_sk(kind, a));
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), &kind.prefix(), after_sk.as_deref(), limit)).await?;
        items.iter().map(|i| Stored::from_item(i)).collect()
    }

    /// Up to `limit` resource ids in id order after `after`, without reading documents.
    pub async fn page_ids(&self, tenant: &str, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let after_sk = after.map(|a| resource_sk(kind, a));
        let mut q = Query::prefix(tenant_pk(tenant), &kind.prefix(), after_sk.as_deref(), limit);
        q.keys_only = true;
        Ok(self.table.query(&q).await?.into_iter().map(|i| i.sk.trim_start_matches(&*kind.prefix()).to_string()).collect())
    }

    /// The nearest page checkpoint at or before `position` (0-based count of resources before
    /// it) that is still valid for `deletes`: `(position, id of the resource just before)`.
    pub async fn checkpoint(&self, tenant: &str, kind: Kind, position: u64, deletes: u64) -> Result<Option<(u64, String)>, StoreError> {
        let q = Query {
            index: crate::store::Index::Primary,
            pk: cursor_pk(tenant),
            lo: format!("{}{:012}", kind.prefix(), 1),
            hi: format!("{}{:012}", kind.prefix(), position),
            forward: false,
            limit: 1,
            keys_only: false,
        };
        Ok(self.table.query(&q).await?.first().and_then(|i| checkpoint_of(kind, i, deletes)))
    }

    /// The collection's counters and the checkpoint exactly at `position`, in one batched read:
    /// what the next page of a sequential walk (IdPs page 1, 101, 201, …) needs before its query.
    pub async fn counts_and_checkpoint(
        &self,
        tenant: &str,
        kind: Kind,
        position: u64,
    ) -> Result<(Counts, Option<(u64, String)>), StoreError> {
        let keys = [(tenant_pk(tenant), COUNT_SK.to_string()), (cursor_pk(tenant), format!("{}{position:012}", kind.prefix()))];
        let got = self.table.get_many(&keys).await?;
        let counts = counts_of(kind, got.first().and_then(Option::as_deref));
        let checkpoint = got.get(1).and_then(Option::as_ref).and_then(|i| checkpoint_of(kind, i, counts.deletes));
        Ok((counts, checkpoint))
    }

    /// Remembers that the resource at `position` (1-based) is `after_id`, for an hour.
    pub async fn save_checkpoint(&self, tenant: &str, kind: Kind, position: u64, after_id: &str, deletes: u64) -> Result<(), StoreError> {
        let mut item =
            Item::new(cursor_pk(tenant), format!("{}{position:012}", kind.prefix()), serde_json::json!({"after": after_id}).to_string(), 1);
        item.nums.insert("deletes".into(), deletes as i64);
        item.expires_at = Some(crate::time::unix_now() + 3600);
        self.table.write(vec![Write::Put { item, cond: Cond::Always }]).await
    }
}
