//! Tenant configuration and API keys: the tenant record and registry, schema declarations, key
//! records, their references under the tenant and their last-use stamps. The records' shapes
//! belong to the layers above (`tenancy`); here they are typed values under their keys.

use super::*;
use crate::store::Shared;
use serde::Serialize;
use serde::de::DeserializeOwned;

impl Layout {
    /// A tenant's record and its version; `None` when there is no such tenant.
    pub async fn tenant_record<T: DeserializeOwned>(&self, tenant: &str) -> Result<Option<(T, u64)>, StoreError> {
        self.read_record(&conf_pk(tenant), TENANT_SK).await
    }

    /// Read-modify-write of a tenant's record (see [`Layout::modify_record`]).
    pub async fn modify_tenant_record<T: Serialize + DeserializeOwned>(
        &self,
        tenant: &str,
        change: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<T>, StoreError> {
        self.modify_record(&conf_pk(tenant), TENANT_SK, change).await
    }

    /// Creates a tenant's record and its entry in the tenant registry, in one transaction;
    /// `false` when the tenant exists.
    pub async fn create_tenant_record(&self, tenant: &str, record: &impl Serialize) -> Result<bool, StoreError> {
        let entry = serde_json::json!({"id": tenant}).to_string();
        let writes = vec![
            Write::Put { item: Item::new(conf_pk(tenant), TENANT_SK, crate::json_text(record), 1), cond: Cond::Absent },
            Write::Put { item: Item::new(REGISTRY_PK, [REGISTRY_SK, tenant].concat(), entry, 1), cond: Cond::Always },
        ];
        match self.table.write(writes).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Up to `limit` tenant ids from the registry, in id order (the admin tools'; never on a
    /// request path).
    pub async fn tenant_ids(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let items = self.table.query(&Query::prefix(REGISTRY_PK, REGISTRY_SK, None, limit)).await?;
        Ok(items.iter().map(|i| i.sk[REGISTRY_SK.len()..].to_string()).collect())
    }

    /// An API key's record and its version.
    pub async fn key_record<T: DeserializeOwned>(&self, key_id: &str) -> Result<Option<(T, u64)>, StoreError> {
        self.read_record(&key_pk(key_id), KEY_SK).await
    }

    /// Read-modify-write of an API key's record (see [`Layout::modify_record`]).
    pub async fn modify_key_record<T: Serialize + DeserializeOwned>(
        &self,
        key_id: &str,
        change: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<T>, StoreError> {
        self.modify_record(&key_pk(key_id), KEY_SK, change).await
    }

    /// Creates an API key's record and its reference under the tenant (so its keys can be
    /// listed), in one transaction.
    pub async fn create_key_record(&self, tenant: &str, key_id: &str, record: &impl Serialize) -> Result<(), StoreError> {
        let reference = serde_json::json!({"key_id": key_id}).to_string();
        let writes = vec![
            Write::Put { item: Item::new(key_pk(key_id), KEY_SK, crate::json_text(record), 1), cond: Cond::Absent },
            Write::Put { item: Item::new(conf_pk(tenant), [KEYREF, key_id].concat(), reference, 1), cond: Cond::Absent },
        ];
        self.table.write(writes).await
    }

    /// Up to `limit` ids of a tenant's keys (their references under the tenant), in id order.
    pub async fn key_ids(&self, tenant: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let items = self.table.query(&Query::prefix(conf_pk(tenant), KEYREF, None, limit)).await?;
        Ok(items.iter().map(|i| i.sk[KEYREF.len()..].to_string()).collect())
    }

    /// The new id of a key of layout 4 or older that the upgrade to layout 5 renamed (its old
    /// id keeps only this pointer: `KEY#<old id>` / `MOVED`, written by the upgrade alone).
    pub async fn moved_key(&self, old_id: &str) -> Result<Option<String>, StoreError> {
        let item = self.table.get(&key_pk(old_id), MOVED_SK).await?;
        let moved = item.and_then(|i| i.doc.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()));
        Ok(moved.and_then(|m| m.get("key_id").and_then(Value::as_str).map(str::to_string)))
    }

    /// A key's last-use stamp and its version.
    pub async fn key_use<T: DeserializeOwned>(&self, key_id: &str) -> Result<Option<(T, u64)>, StoreError> {
        self.read_record(&key_use_pk(key_id), KEY_USE_SK).await
    }

    /// Stamps a key's last use: `record`, with `unix` also as a number of the item (read on
    /// every request without parsing its text), in an item of its own, so the authorizer never
    /// writes a key record.
    pub async fn stamp_key_use(&self, key_id: &str, record: &impl Serialize, unix: i64) -> Result<(), StoreError> {
        let mut item = Item::new(key_use_pk(key_id), KEY_USE_SK, crate::json_text(record), 1);
        item.nums.insert(KEY_USE_UNIX.into(), unix);
        self.table.write(vec![Write::Put { item, cond: Cond::Always }]).await
    }

    /// What authentication reads for a key of `tenant` (its id names it): its record, the
    /// tenant's record and the key's last-use stamp, in one round trip.
    pub async fn key_items(&self, key_id: &str, tenant: &str) -> Result<KeyItems, StoreError> {
        let keys =
            [(key_pk(key_id), KEY_SK.to_string()), (conf_pk(tenant), TENANT_SK.to_string()), (key_use_pk(key_id), KEY_USE_SK.to_string())];
        let mut got = self.table.get_many(&keys).await?.into_iter();
        Ok(KeyItems { key: got.next().flatten(), tenant: got.next().flatten(), stamp: got.next().flatten() })
    }

    /// A tenant's record item, as stored (authentication of an access token reads only this).
    pub async fn tenant_item(&self, tenant: &str) -> Result<Option<Shared>, StoreError> {
        self.table.get(&conf_pk(tenant), TENANT_SK).await
    }

    /// The tenant's schema declarations record and its version; `None` when it has none.
    pub async fn schema_declarations(&self, tenant: &str) -> Result<Option<(Value, u64)>, StoreError> {
        self.get_record(&conf_pk(tenant), SCHEMAS_SK).await
    }

    /// Writes the tenant's schema declarations (conditional on the version read, or on there
    /// being none) and, in the same transaction, the tenant record carrying their new version,
    /// so authentication sees that they changed.
    pub async fn commit_schema_declarations(
        &self,
        tenant: &str,
        record: &Value,
        read_version: Option<u64>,
        tenant_record: &impl serde::Serialize,
        tenant_version: u64,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let pk = conf_pk(tenant);
        let version = read_version.unwrap_or(0) + 1;
        let writes = vec![
            Write::Put {
                item: Item::new(&pk, SCHEMAS_SK, crate::json_text(record), version),
                cond: read_version.map(Cond::Version).unwrap_or(Cond::Absent),
            },
            Write::Put {
                item: Item::new(&pk, TENANT_SK, crate::json_text(tenant_record), tenant_version + 1),
                cond: Cond::Version(tenant_version),
            },
        ];
        self.commit(writes, &[WriteConflict::Version, WriteConflict::Version]).await
    }
}

/// The items authentication reads for a key ([`Layout::key_items`]).
#[derive(Debug, Default)]
pub struct KeyItems {
    /// The API key's record item; `None` when there is no such key.
    pub key: Option<Shared>,
    /// Read only when the caller named the key's tenant.
    pub tenant: Option<Shared>,
    /// The key's last-use stamp item, read (like `tenant`) only when the tenant was named.
    pub stamp: Option<Shared>,
}

/// The number a last-use stamp carries beside its text.
pub const KEY_USE_UNIX: &str = "last_used_unix";
