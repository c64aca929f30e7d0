//! OAuth clients and the access-token signing keys: a client's record under a partition of its
//! own (the token endpoint finds it by client id, as authentication finds a key by key id), a
//! reference under the tenant for listing, per-client failure counters, and the server's
//! signing keys. The records' shapes belong to `oauth`; here they are typed values under keys.

use super::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

impl Layout {
    /// An OAuth client's record and its version.
    pub async fn oauth_client<T: DeserializeOwned>(&self, client_id: &str) -> Result<Option<(T, u64)>, StoreError> {
        self.read_record(&oauth_client_pk(client_id), OAUTH_CLIENT_SK).await
    }

    /// The new id of a client of layout 4 or older that the upgrade to layout 5 renamed (its old
    /// id keeps only this pointer: `OAUTH#<old id>` / `MOVED`, written by the upgrade alone).
    pub async fn moved_oauth_client(&self, old_id: &str) -> Result<Option<String>, StoreError> {
        let item = self.table.get(&oauth_client_pk(old_id), MOVED_SK).await?;
        let moved = item.and_then(|i| i.doc.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()));
        Ok(moved.and_then(|m| m.get("client_id").and_then(Value::as_str).map(str::to_string)))
    }

    /// Read-modify-write of an OAuth client's record (see [`Layout::modify_record`]).
    pub async fn modify_oauth_client<T: Serialize + DeserializeOwned>(
        &self,
        client_id: &str,
        change: impl FnMut(&mut T) -> bool,
    ) -> Result<Option<T>, StoreError> {
        self.modify_record(&oauth_client_pk(client_id), OAUTH_CLIENT_SK, change).await
    }

    /// Creates an OAuth client's record and its reference under the tenant, in one transaction.
    pub async fn create_oauth_client(&self, tenant: &str, client_id: &str, record: &impl Serialize) -> Result<(), StoreError> {
        let reference = serde_json::json!({"client_id": client_id}).to_string();
        let writes = vec![
            Write::Put { item: Item::new(oauth_client_pk(client_id), OAUTH_CLIENT_SK, crate::json_text(record), 1), cond: Cond::Absent },
            Write::Put { item: Item::new(conf_pk(tenant), [OAUTHREF, client_id].concat(), reference, 1), cond: Cond::Absent },
        ];
        self.table.write(writes).await
    }

    /// Up to `limit` ids of a tenant's OAuth clients, in id order.
    pub async fn oauth_client_ids(&self, tenant: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let items = self.table.query(&Query::prefix(conf_pk(tenant), OAUTHREF, None, limit)).await?;
        Ok(items.iter().map(|i| i.sk[OAUTHREF.len()..].to_string()).collect())
    }

    /// Counts a failed client authentication in the client's current minute; returns the count
    /// (a counter that expires two minutes later).
    pub async fn count_client_failure(&self, client_id: &str, now: i64) -> Result<i64, StoreError> {
        let minute = now / 60;
        self.table.count(&oauth_client_pk(client_id), &format!("FAIL#{minute}"), 1, (minute + 2) * 60).await
    }

    /// The failures counted in the client's current and previous minute, together.
    pub async fn client_failures(&self, client_id: &str, now: i64) -> Result<i64, StoreError> {
        let (minute, pk) = (now / 60, oauth_client_pk(client_id));
        let keys = [(pk.clone(), format!("FAIL#{minute}")), (pk, format!("FAIL#{}", minute - 1))];
        let items = self.table.get_many(&keys).await?;
        Ok(items.iter().flatten().filter(|i| i.expires_at.is_none_or(|t| t > now)).filter_map(|i| i.nums.get("count").copied()).sum())
    }

    /// Counts a use of a client assertion (by its replay key) until it expires; returns the
    /// count: 1 for its first use.
    pub async fn count_assertion_use(&self, client_id: &str, key: &str, expires_at: i64) -> Result<i64, StoreError> {
        self.table.count(&oauth_client_pk(client_id), &["JTI#", key].concat(), 1, expires_at).await
    }

    /// The access-token signing keys and their version; `None` until the first is made.
    pub async fn token_keys<T: DeserializeOwned>(&self) -> Result<Option<(T, u64)>, StoreError> {
        self.read_record(SERVER_PK, TOKEN_KEYS_SK).await
    }

    /// Writes the signing keys, conditional on the version read (`None`: there were none);
    /// `false` when another writer came first.
    pub async fn put_token_keys(&self, record: &impl Serialize, read_version: Option<u64>) -> Result<bool, StoreError> {
        let item = Item::new(SERVER_PK, TOKEN_KEYS_SK, crate::json_text(record), read_version.unwrap_or(0) + 1);
        let cond = read_version.map(Cond::Version).unwrap_or(Cond::Absent);
        match self.table.write(vec![Write::Put { item, cond }]).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
