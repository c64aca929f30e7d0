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
//! | group | `TENANT#<t>` | `GROUP#<id>` (document without members) |
//! | displayName claim | `TENANT#<t>` | `GROUPNAME#<lowercased displayName>` |
//! | group externalId claim | `TENANT#<t>` | `GEXT#<externalId>` |
//! | membership | `TENANT#<t>#GROUP#<gid>` | `MEMBER#<uid>`; index `gsi1`: `TENANT#<t>#USER#<uid>` / `GROUP#<gid>` |
//! | page checkpoint | `TENANT#<t>#CURSOR` | `USER#<position, 12 digits>` |
//! | API key | `KEY#<key id>` | `KEY` |
//! | key reference (for listing) | `TENANT#<t>` | `KEYREF#<key id>` |
//! | tenant registry | `TENANTS` | `TENANT#<t>` |
//! | request counter (TTL 2 min) | `TENANT#<t>#RATE` | `<unix second>` |
//! | audit entry (TTL 90 days) | `TENANT#<t>#AUDIT#<YYYY-MM-DD>` | `AT#<unix ms, 13 digits>#<uuid v7>` |
//! | server settings | `SERVER` | `SEAL` |

use super::{Cond, Item, Query, StoreError, Table, Write};
use serde_json::{Map, Value};

/// A resource collection in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::User => "USER#",
            Kind::Group => "GROUP#",
        }
    }
    fn name_claim(self) -> &'static str {
        match self {
            Kind::User => "USERNAME#",
            Kind::Group => "GROUPNAME#",
        }
    }
    fn ext_claim(self) -> &'static str {
        match self {
            Kind::User => "UEXT#",
            Kind::Group => "GEXT#",
        }
    }
    fn counter(self) -> &'static str {
        match self {
            Kind::User => "users",
            Kind::Group => "groups",
        }
    }
    fn delete_counter(self) -> &'static str {
        match self {
            Kind::User => "user_deletes",
            Kind::Group => "group_deletes",
        }
    }
}

/// What an item is, from its keys (for change events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKey {
    Resource { tenant: String, kind: Kind, id: String },
    Membership { tenant: String, group: String, user: String },
}

/// Parses the keys of a resource or membership item; `None` for every other item.
pub fn parse_key(pk: &str, sk: &str) -> Option<ItemKey> {
    let rest = pk.strip_prefix("TENANT#")?;
    if let Some((tenant, group)) = rest.split_once("#GROUP#") {
        let user = sk.strip_prefix(MEMBER)?;
        return Some(ItemKey::Membership { tenant: tenant.into(), group: group.into(), user: user.into() });
    }
    if rest.contains('#') {
        return None;
    }
    for kind in [Kind::User, Kind::Group] {
        if let Some(id) = sk.strip_prefix(kind.prefix()) {
            return Some(ItemKey::Resource { tenant: rest.into(), kind, id: id.into() });
        }
    }
    None
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

/// Partition of a group's membership items.
fn members_pk(tenant: &str, gid: &str) -> String {
    format!("TENANT#{tenant}#GROUP#{gid}")
}
const MEMBER: &str = "MEMBER#";

fn member_item(tenant: &str, gid: &str, uid: &str) -> Item {
    let mut item = Item::new(members_pk(tenant, gid), format!("{MEMBER}{uid}"), crate::json_text(&serde_json::json!({"value": uid})), 1);
    item.gsi1 = Some((format!("TENANT#{tenant}#USER#{uid}"), resource_sk(Kind::Group, gid)));
    item
}

/// A membership change: ids to add and ids to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberDelta {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

impl MemberDelta {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
    fn writes(&self, tenant: &str, gid: &str) -> Vec<Write> {
        let pk = members_pk(tenant, gid);
        let mut w: Vec<Write> = self.add.iter().map(|u| Write::Put { item: member_item(tenant, gid, u), cond: Cond::Always }).collect();
        w.extend(self.remove.iter().map(|u| Write::Delete { pk: pk.clone(), sk: format!("{MEMBER}{u}"), cond: Cond::Always }));
        w
    }
    fn inverse(&self) -> MemberDelta {
        MemberDelta { add: self.remove.clone(), remove: self.add.clone() }
    }
}

fn claim_item(pk: &str, sk: String, id: &str) -> Item {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id.to_string()));
    Item::new(pk, sk, crate::json_text(&m), 1)
}

/// A collection's counters from the tenant's counter item (absent: all zero).
fn counts_of(kind: Kind, item: Option<&Item>) -> Counts {
    let get = |f: &str| item.and_then(|i| i.nums.get(f)).copied().unwrap_or(0).max(0) as u64;
    Counts { total: get(kind.counter()), deletes: get(kind.delete_counter()) }
}

/// A page checkpoint item, when it is still valid for `deletes` (deletes shift positions).
fn checkpoint_of(kind: Kind, item: &Item, deletes: u64) -> Option<(u64, String)> {
    let pos: u64 = item.sk.trim_start_matches(kind.prefix()).parse().unwrap_or(0);
    let generation = item.nums.get("deletes").copied().unwrap_or(-1);
    let after = item
        .doc
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .and_then(|v| v.get("after").and_then(Value::as_str).map(str::to_string))?;
    (generation == deletes as i64 && pos > 0).then_some((pos, after))
}

/// The writes of an update: the resource conditional on its version, and the claims that moved;
/// with the conflict each write's failure means.
fn update_writes(
    tenant: &str,
    kind: Kind,
    old: &Stored,
    new_doc: &Map<String, Value>,
    (old_claims, new_claims): (&Claims, &Claims),
) -> (Vec<Write>, Vec<WriteConflict>) {
    let pk = tenant_pk(tenant);
    let id = old.id().to_string();
    let mut writes = vec![Write::Put {
        item: Item::new(&pk, resource_sk(kind, &id), crate::json_text(new_doc), old.version + 1),
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
    (writes, roles)
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
        members: &MemberDelta,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let pk = tenant_pk(tenant);
        let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut writes = vec![Write::Put { item: Item::new(&pk, resource_sk(kind, &id), crate::json_text(doc), 1), cond: Cond::Absent }];
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
        self.commit_with_members(tenant, &id, writes, roles, members).await
    }

    /// Commits `writes` together with a membership change: in one transaction when they fit,
    /// otherwise the members first in chunks (each checking the group still exists) and the
    /// resource writes last, undoing the applied chunks if anything fails.
    async fn commit_with_members(
        &self,
        tenant: &str,
        gid: &str,
        mut writes: Vec<Write>,
        roles: Vec<WriteConflict>,
        members: &MemberDelta,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let member_writes = members.writes(tenant, gid);
        let conflict = |index: usize| roles.get(index).cloned().unwrap_or(WriteConflict::Version);
        if writes.len() + member_writes.len() <= super::MAX_TRANSACTION {
            writes.extend(member_writes);
            return self.commit(writes, &roles).await;
        }
        // Too many for one transaction. Membership writes are idempotent, so a chunked apply
        // that fails part-way is undone here, and a client retry converges either way.
        let mut applied = MemberDelta::default();
        let chunk_size = super::MAX_TRANSACTION - writes.len();
        let adds: Vec<&String> = members.add.iter().collect();
        let removes: Vec<&String> = members.remove.iter().collect();
        let mut parts: Vec<MemberDelta> =
            adds.chunks(chunk_size).map(|c| MemberDelta { add: c.iter().map(|s| s.to_string()).collect(), remove: vec![] }).collect();
        parts.extend(removes.chunks(chunk_size).map(|c| MemberDelta { add: vec![], remove: c.iter().map(|s| s.to_string()).collect() }));
        for part in parts {
            if let Err(e) = self.table.write(part.writes(tenant, gid)).await {
                self.undo_members(tenant, gid, &applied).await;
                return Err(e);
            }
            applied.add.extend(part.add);
            applied.remove.extend(part.remove);
        }
        match self.table.write(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(e) => {
                self.undo_members(tenant, gid, &applied).await;
                match e {
                    StoreError::Conflict { index } => Ok(Err(conflict(index))),
                    other => Err(other),
                }
            }
        }
    }

    async fn undo_members(&self, tenant: &str, gid: &str, applied: &MemberDelta) {
        let inverse = applied.inverse().writes(tenant, gid);
        for chunk in inverse.chunks(super::MAX_TRANSACTION) {
            if let Err(e) = self.table.write(chunk.to_vec()).await {
                tracing::error!(group = gid, error = %e, "could not undo a partial membership change; a retry of the request repairs it");
            }
        }
    }

    /// Applies a membership change to an existing group.
    pub async fn change_members(&self, tenant: &str, gid: &str, members: &MemberDelta) -> Result<Result<(), WriteConflict>, StoreError> {
        let check = Write::Check { pk: tenant_pk(tenant), sk: resource_sk(Kind::Group, gid), cond: Cond::Exists };
        self.commit_with_members(tenant, gid, vec![check], vec![WriteConflict::Version], members).await
    }

    /// Every member id of a group, in id order.
    pub async fn members(&self, tenant: &str, gid: &str) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        loop {
            let after = out.last().map(|u| format!("{MEMBER}{u}"));
            let batch = self.table.query(&Query::prefix(members_pk(tenant, gid), MEMBER, after.as_deref(), 1000)).await?;
            let n = batch.len();
            out.extend(batch.iter().map(|i| i.sk.trim_start_matches(MEMBER).to_string()));
            if n < 1000 {
                return Ok(out);
            }
        }
    }

    /// Which of `uids` are members of the group (one batched read, whatever the group's size).
    pub async fn are_members(&self, tenant: &str, gid: &str, uids: &[String]) -> Result<Vec<String>, StoreError> {
        let pk = members_pk(tenant, gid);
        let keys: Vec<(String, String)> = uids.iter().map(|u| (pk.clone(), format!("{MEMBER}{u}"))).collect();
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            for item in self.table.get_many(chunk).await?.into_iter().flatten() {
                out.push(item.sk.trim_start_matches(MEMBER).to_string());
            }
        }
        Ok(out)
    }

    /// The ids of the groups a user belongs to (index query; eventually consistent in DynamoDB).
    pub async fn groups_of(&self, tenant: &str, uid: &str) -> Result<Vec<String>, StoreError> {
        let q = Query {
            index: super::Index::Gsi1,
            pk: format!("TENANT#{tenant}#USER#{uid}"),
            lo: Kind::Group.prefix().to_string(),
            hi: format!("{}\u{10FFFF}", Kind::Group.prefix()),
            forward: true,
            limit: 10_000,
            keys_only: false,
        };
        Ok(self
            .table
            .query(&q)
            .await?
            .iter()
            .filter_map(|i| i.gsi1.as_ref().map(|(_, s)| s.trim_start_matches(Kind::Group.prefix()).to_string()))
            .collect())
    }

    /// Removes a user from every group (deprovisioning); safe to repeat.
    pub async fn remove_from_all_groups(&self, tenant: &str, uid: &str) -> Result<usize, StoreError> {
        let groups = self.groups_of(tenant, uid).await?;
        let writes: Vec<Write> =
            groups.iter().map(|g| Write::Delete { pk: members_pk(tenant, g), sk: format!("{MEMBER}{uid}"), cond: Cond::Always }).collect();
        for chunk in writes.chunks(super::MAX_TRANSACTION) {
            self.table.write(chunk.to_vec()).await?;
        }
        Ok(groups.len())
    }

    /// Removes every member of a group; safe to repeat.
    pub async fn remove_all_members(&self, tenant: &str, gid: &str) -> Result<usize, StoreError> {
        let members = self.members(tenant, gid).await?;
        let delta = MemberDelta { add: vec![], remove: members };
        for chunk in delta.writes(tenant, gid).chunks(super::MAX_TRANSACTION) {
            self.table.write(chunk.to_vec()).await?;
        }
        Ok(delta.remove.len())
    }

    /// Replaces a resource read at `old.version`, moving claims that changed, in one transaction.
    pub async fn update(
        &self,
        tenant: &str,
        kind: Kind,
        old: &Stored,
        new_doc: &Map<String, Value>,
        claims: (&Claims, &Claims),
        members: &MemberDelta,
    ) -> Result<Result<(), WriteConflict>, StoreError> {
        let (writes, roles) = update_writes(tenant, kind, old, new_doc, claims);
        self.commit_with_members(tenant, old.id(), writes, roles, members).await
    }

    /// Replaces a user read at `old.version` and, in the same transaction, removes it from
    /// `groups` (deprovisioning: the user is never inactive and still a member). When the
    /// memberships do not fit in the transaction, only the user is written and `Ok(Ok(false))`
    /// says the caller must sweep them (`remove_from_all_groups`).
    pub async fn update_leaving_groups(
        &self,
        tenant: &str,
        old: &Stored,
        new_doc: &Map<String, Value>,
        claims: (&Claims, &Claims),
        groups: &[String],
    ) -> Result<Result<bool, WriteConflict>, StoreError> {
        let (mut writes, roles) = update_writes(tenant, Kind::User, old, new_doc, claims);
        let fits = writes.len() + groups.len() <= super::MAX_TRANSACTION;
        if fits {
            let uid = old.id();
            writes.extend(groups.iter().map(|g| Write::Delete {
                pk: members_pk(tenant, g),
                sk: format!("{MEMBER}{uid}"),
                cond: Cond::Always,
            }));
        }
        Ok(self.commit(writes, &roles).await?.map(|()| fits))
    }

    /// Writes one transaction; a failed condition becomes the conflict its write stands for
    /// (`roles[i]` for write `i`).
    async fn commit(&self, writes: Vec<Write>, roles: &[WriteConflict]) -> Result<Result<(), WriteConflict>, StoreError> {
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
        Ok(counts_of(kind, self.table.get(&tenant_pk(tenant), COUNT_SK).await?.as_ref()))
    }

    /// Up to `limit` resources in id order, after the resource `after` (exclusive).
    pub async fn page(&self, tenant: &str, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let after_sk = after.map(|a| resource_sk(kind, a));
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), kind.prefix(), after_sk.as_deref(), limit)).await?;
        items.iter().map(Stored::from_item).collect()
    }

    /// Up to `limit` resource ids in id order after `after`, without reading documents.
    pub async fn page_ids(&self, tenant: &str, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<String>, StoreError> {
        let after_sk = after.map(|a| resource_sk(kind, a));
        let mut q = Query::prefix(tenant_pk(tenant), kind.prefix(), after_sk.as_deref(), limit);
        q.keys_only = true;
        Ok(self.table.query(&q).await?.into_iter().map(|i| i.sk.trim_start_matches(kind.prefix()).to_string()).collect())
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
        let counts = counts_of(kind, got.first().and_then(Option::as_ref));
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

    /// Counts one request in the tenant's current second; returns the count so far.
    pub async fn tick(&self, tenant: &str) -> Result<i64, StoreError> {
        let now = crate::time::unix_now();
        self.table.count(&format!("TENANT#{tenant}#RATE"), &now.to_string(), 1, now + 120).await
    }

    /// Appends an audit entry to the tenant's partition for the day of `time` (the entry's RFC
    /// 3339 timestamp); kept `retention_days`.
    pub async fn audit(&self, tenant: &str, time: &str, entry: &impl serde::Serialize, retention_days: i64) -> Result<(), StoreError> {
        let day = time.get(..10).unwrap_or("1970-01-01");
        // UUIDv7 is monotonic within a process: entries of one millisecond keep their order
        let suffix = uuid::Uuid::now_v7();
        let mut item = Item::new(
            format!("TENANT#{tenant}#AUDIT#{day}"),
            format!("AT#{:013}#{suffix}", crate::time::unix_millis()),
            crate::json_text(entry),
            1,
        );
        item.expires_at = Some(crate::time::unix_now() + retention_days * 86_400);
        self.table.write(vec![Write::Put { item, cond: Cond::Absent }]).await
    }

    /// The audit entries of a tenant for one day (`YYYY-MM-DD`), oldest first.
    pub async fn audit_entries(&self, tenant: &str, day: &str) -> Result<Vec<Value>, StoreError> {
        self.list_records(&format!("TENANT#{tenant}#AUDIT#{day}"), "AT#", 100_000).await
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
        self.table.write(vec![Write::Put { item: Item::new(pk, sk, crate::json_text(v), version), cond }]).await
    }

    /// Lists JSON records in a partition by sort-key prefix.
    pub async fn list_records(&self, pk: &str, prefix: &str, limit: usize) -> Result<Vec<Value>, StoreError> {
        let items = self.table.query(&Query::prefix(pk, prefix, None, limit)).await?;
        Ok(items.iter().filter_map(|i| i.doc.as_deref().and_then(|d| serde_json::from_str(d).ok())).collect())
    }
}
