//! The single-table layout: which item holds what, and the reads and transactions each SCIM
//! operation needs. Every key is built here and nowhere else.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | tenant | `TENANT#<t>` | `TENANT` |
//! | counters | `TENANT#<t>` | `COUNT` |
//! | user | `TENANT#<t>` | `USER#<id>` |
//! | userName claim | `TENANT#<t>` | `USERNAME#<lowercased userName>` |
//! | externalId claim | `TENANT#<t>` | `UEXT#<externalId>` |
//! | page checkpoint | `TENANT#<t>#CURSOR` | `USER#<position, 12 digits>` |
//! | API key | `KEY#<key id>` | `KEY` |
//! | server settings | `SERVER` | `SEAL` |

use super::{Cond, Item, Query, StoreError, Table, Write};
use serde_json::{Map, Value};

/// A resource collection in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::User => "USER#",
        }
    }
    fn name_claim(self) -> &'static str {
        match self {
            Kind::User => "USERNAME#",
        }
    }
    fn ext_claim(self) -> &'static str {
        match self {
            Kind::User => "UEXT#",
        }
    }
    fn counter(self) -> &'static str {
        match self {
            Kind::User => "users",
        }
    }
    fn delete_counter(self) -> &'static str {
        match self {
            Kind::User => "user_deletes",
        }
    }
}

/// Partition of a tenant's items.
pub fn tenant_pk(tenant: &str) -> String {
    format!("TENANT#{tenant}")
}
fn cursor_pk(tenant: &str) -> String {
    format!("TENANT#{tenant}#CURSOR")
}
/// Sort key of a resource.
pub fn resource_sk(kind: Kind, id: &str) -> String {
    format!("{}{id}", kind.prefix())
}
/// Partition of an API key.
pub fn key_pk(key_id: &str) -> String {
    format!("KEY#{key_id}")
}
/// Sort key of the tenant record.
pub const TENANT_SK: &str = "TENANT";
const COUNT_SK: &str = "COUNT";
/// Sort key of an API key record.
pub const KEY_SK: &str = "KEY";

/// A stored resource: its document (with `id` and `meta`) and its version.
#[derive(Debug, Clone)]
pub struct Stored {
    pub doc: Map<String, Value>,
    pub version: u64,
}

impl Stored {
    fn from_item(item: &Item) -> Result<Stored, StoreError> {
        let text = item.doc.as_deref().ok_or_else(|| StoreError::Other(format!("item {} has no document", item.sk)))?;
        let doc: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| StoreError::Other(format!("corrupt item {}: {e}", item.sk)))?;
        Ok(Stored { doc, version: item.version })
    }
    /// The resource id.
    pub fn id(&self) -> &str {
        self.doc.get("id").and_then(Value::as_str).unwrap_or_default()
    }
}

/// The unique claims a resource holds: lowercased name and exact externalId.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    pub name: Option<String>,
    pub external_id: Option<String>,
}

/// Which claim a failed create or update collided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteConflict {
    Name,
    ExternalId,
    /// The resource changed (or vanished) since it was read.
    Version,
}

/// Counters of a tenant's collection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub total: u64,
    /// Bumped on every delete: page checkpoints made before a delete are stale.
    pub deletes: u64,
}

/// The layout over any [`Table`].
#[derive(Clone)]
pub struct Layout {
    pub table: std::sync::Arc<dyn Table>,
}

fn claim_item(pk: &str, sk: String, id: &str) -> Item {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id.to_string()));
    Item::new(pk, sk, Value::Object(m).to_string(), 1)
}

impl Layout {
    /// One resource by id.
    pub async fn get(&self, tenant: &str, kind: Kind, id: &str) -> Result<Option<Stored>, StoreError> {
        match self.table.get(&tenant_pk(tenant), &resource_sk(kind, id)).await? {
            Some(i) => Ok(Some(Stored::from_item(&i)?)),
            None => Ok(None),
        }
    }

    /// The id holding a name claim (lowercased name) or externalId claim.
    pub async fn claimed_by(
        &self,
        tenant: &str,
        kind: Kind,
        name_lower: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let sk = match (name_lower, external_id) {
            (Some(n), _) => format!("{}{n}", kind.name_claim()),
            (None, Some(e)) => format!("{}{e}", kind.ext_claim()),
            _ => return Ok(None),
        };
        let Some(item) = self.table.get(&tenant_pk(tenant), &sk).await? else {
            return Ok(None);
        };
        let s = Stored::from_item(&item)?;
        Ok(s.doc.get("id").and_then(Value::as_str).map(str::to_string))
    }

    /// Many resources by id (one batched read), in the order asked, missing ones skipped.
    pub async fn get_many(&self, tenant: &str, kind: Kind, ids: &[String]) -> Result<Vec<Stored>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let pk = tenant_pk(tenant);
        let keys: Vec<(String, String)> = ids.iter().map(|id| (pk.clone(), resource_sk(kind, id))).collect();
        let mut out = Vec::new();
        for item in self.table.get_many(&keys).await?.into_iter().flatten() {
            out.push(Stored::from_item(&item)?);
        }
        Ok(out)
    }

    /// Creates a resource with its claims and counter in one transaction.
    pub async fn create(
        &self,
        tenant: &str,
        kind: Kind,
        doc: &Map<String, Value>,
        claims: &Claims,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let pk = tenant_pk(tenant);
        let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut writes = vec![Write::Put {
            item: Item::new(&pk, resource_sk(kind, &id), Value::Object(doc.clone()).to_string(), 1),
            cond: Cond::Absent,
        }];
        let mut roles = vec![WriteConflict::Version];
        if let Some(n) = &claims.name {
            writes.push(Write::Put { item: claim_item(&pk, format!("{}{n}", kind.name_claim()), &id), cond: Cond::Absent });
            roles.push(WriteConflict::Name);
        }
        if let Some(e) = &claims.external_id {
            writes.push(Write::Put { item: claim_item(&pk, format!("{}{e}", kind.ext_claim()), &id), cond: Cond::Absent });
            roles.push(WriteConflict::ExternalId);
        }
        writes.push(Write::Add { pk: pk.clone(), sk: COUNT_SK.into(), deltas: vec![(kind.counter().into(), 1)] });
        match self.table.write(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::Conflict { index }) => Ok(Err(roles.get(index).cloned().unwrap_or(WriteConflict::Version))),
            Err(e) => Err(e),
        }
    }

    /// Replaces a resource read at `old.version`, moving claims that changed, in one transaction.
    pub async fn update(
        &self,
        tenant: &str,
        kind: Kind,
        old: &Stored,
        old_claims: &Claims,
        new_doc: &Map<String, Value>,
        new_claims: &Claims,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let pk = tenant_pk(tenant);
        let id = old.id().to_string();
        let mut writes = vec![Write::Put {
            item: Item::new(&pk, resource_sk(kind, &id), Value::Object(new_doc.clone()).to_string(), old.version + 1),
            cond: Cond::Version(old.version),
        }];
        let mut roles = vec![WriteConflict::Version];
        let moves = [
            (old_claims.name.as_ref(), new_claims.name.as_ref(), kind.name_claim(), WriteConflict::Name),
            (old_claims.external_id.as_ref(), new_claims.external_id.as_ref(), kind.ext_claim(), WriteConflict::ExternalId),
        ];
        for (before, after, prefix, role) in moves {
            if before == after {
                continue;
            }
            if let Some(b) = before {
                writes.push(Write::Delete { pk: pk.clone(), sk: format!("{prefix}{b}"), cond: Cond::Always });
                roles.push(WriteConflict::Version);
            }
            if let Some(a) = after {
                writes.push(Write::Put { item: claim_item(&pk, format!("{prefix}{a}"), &id), cond: Cond::Absent });
                roles.push(role);
            }
        }
        match self.table.write(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::Conflict { index }) => Ok(Err(roles.get(index).cloned().unwrap_or(WriteConflict::Version))),
            Err(e) => Err(e),
        }
    }

    /// Deletes a resource read at `old.version` with its claims, in one transaction.
    pub async fn delete(&self, tenant: &str, kind: Kind, old: &Stored, claims: &Claims) -> Result<Result<(), WriteConflict>, StoreError> {
        let pk = tenant_pk(tenant);
        let mut writes = vec![Write::Delete { pk: pk.clone(), sk: resource_sk(kind, old.id()), cond: Cond::Version(old.version) }];
        if let Some(n) = &claims.name {
            writes.push(Write::Delete { pk: pk.clone(), sk: format!("{}{n}", kind.name_claim()), cond: Cond::Always });
        }
        if let Some(e) = &claims.external_id {
            writes.push(Write::Delete { pk: pk.clone(), sk: format!("{}{e}", kind.ext_claim()), cond: Cond::Always });
        }
        writes.push(Write::Add { pk, sk: COUNT_SK.into(), deltas: vec![(kind.counter().into(), -1), (kind.delete_counter().into(), 1)] });
        match self.table.write(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::Conflict { .. }) => Ok(Err(WriteConflict::Version)),
            Err(e) => Err(e),
        }
    }

    /// The collection's counters (one read).
    pub async fn counts(&self, tenant: &str, kind: Kind) -> Result<Counts, StoreError> {
        let item = self.table.get(&tenant_pk(tenant), COUNT_SK).await?;
        let get = |f: &str| item.as_ref().and_then(|i| i.nums.get(f)).copied().unwrap_or(0).max(0) as u64;
        Ok(Counts { total: get(kind.counter()), deletes: get(kind.delete_counter()) })
    }

    /// Up to `limit` resources in id order, after the resource `after` (exclusive).
    pub async fn page(&self, tenant: &str, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let after_sk = after.map(|a| resource_sk(kind, a));
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), kind.prefix(), after_sk.as_deref(), limit)).await?;
        items.iter().map(Stored::from_item).collect()
    }

    /// The nearest page checkpoint at or before `position` (0-based count of resources before
    /// it) that is still valid for `deletes`: `(position, id of the resource just before)`.
    pub async fn checkpoint(&self, tenant: &str, kind: Kind, position: u64, deletes: u64) -> Result<Option<(u64, String)>, StoreError> {
        let q = Query {
            index: super::Index::Primary,
            pk: cursor_pk(tenant),
            lo: format!("{}{:012}", kind.prefix(), 1),
            hi: format!("{}{:012}", kind.prefix(), position),
            forward: false,
            limit: 1,
        };
        let Some(item) = self.table.query(&q).await?.into_iter().next() else {
            return Ok(None);
        };
        let pos: u64 = item.sk.trim_start_matches(kind.prefix()).parse().unwrap_or(0);
        let generation = item.nums.get("deletes").copied().unwrap_or(-1);
        let after = item
            .doc
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|v| v.get("after").and_then(Value::as_str).map(str::to_string));
        match after {
            Some(a) if generation == deletes as i64 && pos > 0 => Ok(Some((pos, a))),
            _ => Ok(None),
        }
    }

    /// Remembers that the resource at `position` (1-based) is `after_id`, for an hour.
    pub async fn save_checkpoint(&self, tenant: &str, kind: Kind, position: u64, after_id: &str, deletes: u64) -> Result<(), StoreError> {
        let mut item =
            Item::new(cursor_pk(tenant), format!("{}{position:012}", kind.prefix()), serde_json::json!({"after": after_id}).to_string(), 1);
        item.nums.insert("deletes".into(), deletes as i64);
        item.expires_at = Some(crate::time::unix_now() + 3600);
        self.table.write(vec![Write::Put { item, cond: Cond::Always }]).await
    }

    /// A server-wide secret (created on first use): seals pagination cursors.
    pub async fn seal_key(&self) -> Result<Vec<u8>, StoreError> {
        if let Some(item) = self.table.get("SERVER", "SEAL").await?
            && let Some(k) =
                item.doc.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()).and_then(|v| v["key"].as_str().map(str::to_string))
        {
            return crate::auth::b64_decode(&k).ok_or_else(|| StoreError::Other("corrupt seal key".into()));
        }
        let key = crate::auth::random_bytes(32);
        let item = Item::new("SERVER", "SEAL", serde_json::json!({"key": crate::auth::b64(&key)}).to_string(), 1);
        match self.table.write(vec![Write::Put { item, cond: Cond::Absent }]).await {
            Ok(()) => Ok(key),
            // another process made it first: use theirs
            Err(StoreError::Conflict { .. }) => Box::pin(self.seal_key()).await,
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
            .map_err(|e| StoreError::Other(format!("corrupt record {pk}: {e}")))?;
        Ok(v.map(|v| (v, item.version)))
    }

    /// Writes a JSON record under a condition.
    pub async fn put_record(&self, pk: &str, sk: &str, v: &Value, version: u64, cond: Cond) -> Result<(), StoreError> {
        self.table.write(vec![Write::Put { item: Item::new(pk, sk, v.to_string(), version), cond }]).await
    }

    /// Lists JSON records in a partition by sort-key prefix.
    pub async fn list_records(&self, pk: &str, prefix: &str, limit: usize) -> Result<Vec<Value>, StoreError> {
        let items = self.table.query(&Query::prefix(pk, prefix, None, limit)).await?;
        Ok(items.iter().filter_map(|i| i.doc.as_deref().and_then(|d| serde_json::from_str(d).ok())).collect())
    }
}
