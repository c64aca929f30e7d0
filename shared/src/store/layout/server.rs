//! Server-wide items: the cursor seal and the layout marker.

use super::*;

impl Layout {
    /// The server-wide secret that seals pagination cursors. It is made by the operator's tools
    /// ([`Layout::ensure_seal`]: `scim-admin`, `scim-local`), never on a request path, so no
    /// deployed function needs to write it; `None` until then.
    pub async fn seal_key(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(item) = self.table.get(SERVER_PK, SEAL_SK).await? else {
            return Ok(None);
        };
        let key = item
            .doc
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|v| v["key"].as_str().and_then(crate::crypto::b64_decode))
            .ok_or_else(|| StoreError::other("corrupt cursor seal"))?;
        Ok(Some(key))
    }

    /// Makes the cursor seal when there is none (idempotent; concurrent callers agree on one).
    pub async fn ensure_seal(&self) -> Result<(), StoreError> {
        if self.seal_key().await?.is_some() {
            return Ok(());
        }
        let key = crate::crypto::random_bytes(32);
        let item = Item::new(SERVER_PK, SEAL_SK, serde_json::json!({"key": crate::crypto::b64(&key)}).to_string(), 1);
        match self.table.write(vec![Write::Put { item, cond: Cond::Absent }]).await {
            Ok(()) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The layout version the table records; `None` for a table that records none (a new,
    /// empty table, or one written by version 1, which had no marker).
    pub async fn layout_version(&self) -> Result<Option<u64>, StoreError> {
        let Some(item) = self.table.get(LAYOUT_PK, LAYOUT_SK).await? else {
            return Ok(None);
        };
        let v = item.doc.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()).and_then(|v| v["version"].as_u64());
        v.map(Some).ok_or_else(|| StoreError::other("corrupt layout marker"))
    }

    /// Whether the table records this build's layout (or a newer one): `false` for a table that
    /// awaits `scim-admin migrate`.
    pub async fn at_current_layout(&self) -> Result<bool, StoreError> {
        Ok(self.layout_version().await?.is_some_and(|v| v >= super::LAYOUT_VERSION))
    }

    /// Records the layout version the table is at.
    pub async fn set_layout_version(&self, version: u64) -> Result<(), StoreError> {
        let doc = serde_json::json!({"version": version, "by": "scim-serverless", "at": crate::time::now()}).to_string();
        self.table.write(vec![Write::Put { item: Item::new(LAYOUT_PK, LAYOUT_SK, doc, version), cond: Cond::Always }]).await
    }
}
