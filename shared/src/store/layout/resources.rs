//! Resources and the claims beside them: create, read, update and delete in one transaction
//! each, the collection's counters, externalId and unique-attribute lookups.

use super::*;

/// The largest document a user or group may be stored as, bytes of JSON text: the same on every
/// store, and well inside DynamoDB's 400 KB item (keys and counters beside it).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A resource's document as stored, refused past [`MAX_DOCUMENT_BYTES`] before anything is
/// written.
pub(super) fn document_text(kind: Kind, doc: &Map<String, Value>) -> Result<String, StoreError> {
    let text = crate::json_text(doc);
    if text.len() > MAX_DOCUMENT_BYTES {
        let what = format!(
            "the {} would be {} bytes; this service stores at most {MAX_DOCUMENT_BYTES} bytes per resource",
            match kind {
                Kind::User => "user",
                Kind::Group => "group",
                Kind::Declared(_) => "resource",
            },
            text.len()
        );
        return Err(StoreError::TooLarge { what });
    }
    Ok(text)
}
/// A stored resource: its id, its document (with `id` and `meta`) and its version.
#[derive(Debug, Clone)]
pub struct Stored {
    id: String,
    /// The resource's JSON document, `id` and `meta` included.
    pub doc: Map<String, Value>,
    /// The item's version: what its ETag carries and what the next write is conditional on.
    pub version: u64,
}

/// A stored resource as the JSON text it is stored as, unparsed: a read answered from the text
/// itself (see `resource::render_members`) never builds the document. It holds the item as the
/// store handed it out (nothing copied).
#[derive(Debug, Clone)]
pub struct StoredText {
    item: crate::store::Shared,
    /// The item's version: what its ETag carries and what the next write is conditional on.
    pub version: u64,
}

impl StoredText {
    pub(super) fn from_item(item: crate::store::Shared) -> Result<StoredText, StoreError> {
        document_of(&item)?;
        Ok(StoredText { version: item.version, item })
    }

    /// The document's text (an item without one is never a `StoredText`).
    pub fn text(&self) -> &str {
        self.item.doc.as_deref().unwrap_or_default()
    }

    /// The document, parsed.
    pub fn parse(&self) -> Result<Stored, StoreError> {
        Stored::parse(self.text(), self.version, &self.item.sk)
    }

    /// A failure to read the text as a document, for a reader that parses it itself.
    pub fn corrupt(&self, e: serde_json::Error) -> StoreError {
        corrupt(&self.item.sk, e)
    }

    /// A document without an id, for a reader that parses it itself.
    pub fn without_id(&self) -> StoreError {
        without_id(&self.item.sk)
    }
}

pub(super) fn corrupt(sk: &str, e: serde_json::Error) -> StoreError {
    StoreError::caused(format!("corrupt item {sk}"), e)
}

pub(super) fn without_id(sk: &str) -> StoreError {
    StoreError::other(format!("corrupt item {sk}: no id"))
}

/// An item's document text; an item without one is not a resource.
pub(super) fn document_of(item: &Item) -> Result<&str, StoreError> {
    item.doc.as_deref().ok_or_else(|| no_document(&item.sk))
}

pub(super) fn no_document(sk: &str) -> StoreError {
    StoreError::other(format!("item {sk} has no document"))
}

impl Stored {
    pub(super) fn from_item(item: &Item) -> Result<Stored, StoreError> {
        Stored::parse(document_of(item)?, item.version, &item.sk)
    }

    /// A stored document's text parsed: one without an id is a corrupt item, not a resource.
    pub(super) fn parse(text: &str, version: u64, sk: &str) -> Result<Stored, StoreError> {
        let doc: Map<String, Value> = serde_json::from_str(text).map_err(|e| corrupt(sk, e))?;
        // stored documents hold `id` first: found without hashing the name
        let id = match doc.iter().next() {
            Some((k, v)) if k == "id" => v.as_str(),
            _ => doc.get("id").and_then(Value::as_str),
        };
        let id = id.ok_or_else(|| without_id(sk))?.to_string();
        Ok(Stored { id, doc, version })
    }

    /// A document just written under `id`.
    pub fn written(id: &str, doc: Map<String, Value>, version: u64) -> Stored {
        Stored { id: id.to_string(), doc, version }
    }

    /// The resource id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The keys a resource holds besides its own: its name's unique claim (the folded name), its
/// externalId's index entry (any number of resources may hold one externalId), and, when the
/// tenant makes externalIds unique, a unique claim on the externalId too; and one unique claim
/// per value of a tenant's extension attribute declared `uniqueness: server`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claims {
    /// The case-folded name (`userName` or `displayName`) held unique, if the resource has one.
    pub name: Option<String>,
    /// The externalId, as given, that the resource holds an index entry for.
    pub external_id: Option<String>,
    /// Hold a unique claim on `external_id` as well as its index entry.
    pub external_id_unique: bool,
    /// Unique extension attribute values: (extension URN, attribute, value key).
    pub attributes: Vec<(String, String, String)>,
    /// The resource counts among the collection's inactive ones (a deactivated user).
    pub inactive: bool,
}

/// The writes that give a resource its externalId (index entry, and claim when unique).
pub(super) fn ext_id_puts(pk: &str, kind: Kind, id: &str, claims: &Claims) -> Vec<(Write, WriteConflict)> {
    let Some(e) = &claims.external_id else { return Vec::new() };
    let mut w = vec![(Write::Put { item: claim_item(pk, ext_index_sk(kind, e, id), id), cond: Cond::Always }, WriteConflict::Version)];
    if claims.external_id_unique {
        w.push((
            Write::Put { item: claim_item(pk, format!("{}{e}", kind.ext_claim()), id), cond: Cond::Absent },
            WriteConflict::ExternalId,
        ));
    }
    w
}

/// The writes that take a resource's externalId away: its index entry and any claim on it
/// (a claim only serialises writers while the tenant makes externalIds unique; the index is
/// what answers who holds one, so dropping a claim is always safe).
pub(super) fn ext_id_deletes(pk: &str, kind: Kind, id: &str, external_id: &str) -> Vec<Write> {
    vec![
        Write::Delete { pk: pk.to_string(), sk: ext_index_sk(kind, external_id, id), cond: Cond::Always },
        Write::Delete { pk: pk.to_string(), sk: format!("{}{external_id}", kind.ext_claim()), cond: Cond::Always },
    ]
}

/// Which claim a failed create or update collided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteConflict {
    /// The name (`userName` or `displayName`) is held by another resource.
    Name,
    /// The externalId is held by another resource, while the tenant makes externalIds unique.
    ExternalId,
    /// A unique extension attribute (its name).
    Attribute(String),
    /// The resource changed (or vanished) since it was read.
    Version,
}

/// Counters of a tenant's collection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Resources in the collection, inactive ones included.
    pub total: u64,
    /// Bumped on every delete: page checkpoints made before a delete are stale.
    pub deletes: u64,
    /// Resources counted inactive (deactivated users), kept in the same transactions.
    pub inactive: u64,
}

pub(super) fn claim_item(pk: &str, sk: String, id: &str) -> Item {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id.to_string()));
    Item::new(pk, sk, crate::json_text(&m), 1)
}

/// A collection's counters from the tenant's counter item (absent: all zero).
pub(super) fn counts_of(kind: Kind, item: Option<&Item>) -> Counts {
    let get = |f: &str| item.and_then(|i| i.nums.get(f)).copied().unwrap_or(0).max(0) as u64;
    Counts { total: get(&kind.counter()), deletes: get(&kind.delete_counter()), inactive: get(&format!("{}_{INACTIVE}", kind.counter())) }
}

/// The writes of an update: the resource conditional on its version, and the claims that moved;
/// with the conflict each write's failure means.
pub(super) fn update_writes(
    tenant: &str,
    kind: Kind,
    old: &Stored,
    new_doc: &Map<String, Value>,
    (old_claims, new_claims): (&Claims, &Claims),
) -> Result<(Vec<Write>, Vec<WriteConflict>), StoreError> {
    let pk = tenant_pk(tenant);
    let id = old.id().to_string();
    let mut writes = vec![Write::Put {
        item: Item::new(&pk, resource_sk(kind, &id), document_text(kind, new_doc)?, old.version + 1),
        cond: Cond::Version(old.version),
    }];
    let mut roles = vec![WriteConflict::Version];
    if old_claims.name != new_claims.name {
        let prefix = kind.name_claim();
        if let Some(b) = &old_claims.name {
            writes.push(Write::Delete { pk: pk.clone(), sk: format!("{prefix}{b}"), cond: Cond::Always });
            roles.push(WriteConflict::Version);
        }
        if let Some(a) = &new_claims.name {
            writes.push(Write::Put { item: claim_item(&pk, format!("{prefix}{a}"), &id), cond: Cond::Absent });
            roles.push(WriteConflict::Name);
        }
    }
    if old_claims.external_id != new_claims.external_id {
        if let Some(b) = &old_claims.external_id {
            for w in ext_id_deletes(&pk, kind, &id, b) {
                writes.push(w);
                roles.push(WriteConflict::Version);
            }
        }
        for (w, role) in ext_id_puts(&pk, kind, &id, new_claims) {
            writes.push(w);
            roles.push(role);
        }
    }
    if old_claims.inactive != new_claims.inactive {
        let by = if new_claims.inactive { 1 } else { -1 };
        writes.push(Write::Add { pk: pk.clone(), sk: COUNT_SK.into(), deltas: vec![(format!("{}_{INACTIVE}", kind.counter()), by)] });
        roles.push(WriteConflict::Version);
    }
    for a in old_claims.attributes.iter().filter(|a| !new_claims.attributes.contains(a)) {
        writes.push(Write::Delete { pk: pk.clone(), sk: attribute_claim_sk(kind, &a.0, &a.1, &a.2), cond: Cond::Always });
        roles.push(WriteConflict::Version);
    }
    for a in new_claims.attributes.iter().filter(|a| !old_claims.attributes.contains(a)) {
        writes.push(Write::Put { item: claim_item(&pk, attribute_claim_sk(kind, &a.0, &a.1, &a.2), &id), cond: Cond::Absent });
        roles.push(WriteConflict::Attribute(a.1.clone()));
    }
    Ok((writes, roles))
}

impl Layout {
    /// One resource by id.
    pub async fn get(&self, tenant: &str, kind: Kind, id: &str) -> Result<Option<Stored>, StoreError> {
        self.get_text(tenant, kind, id).await?.map(|t| t.parse()).transpose()
    }

    /// A resource as its stored text (one read, nothing parsed).
    pub async fn get_text(&self, tenant: &str, kind: Kind, id: &str) -> Result<Option<StoredText>, StoreError> {
        self.table.get(&tenant_pk(tenant), &resource_sk(kind, id)).await?.map(StoredText::from_item).transpose()
    }

    /// The ids holding an externalId (its index entries, in id order; one Query, whatever
    /// else the tenant holds).
    pub async fn external_id_holders(&self, tenant: &str, kind: Kind, external_id: &str) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{}{}#", kind.ext_index(), escape_key_part(external_id));
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), &prefix, None, 10_000)).await?;
        Ok(items.iter().map(|i| i.sk[prefix.len()..].to_string()).collect())
    }

    /// The id holding a unique extension attribute's value (its claim; one read).
    pub async fn attribute_holder(&self, tenant: &str, kind: Kind, urn: &str, attr: &str, key: &str) -> Result<Option<String>, StoreError> {
        let Some(item) = self.table.get(&tenant_pk(tenant), &attribute_claim_sk(kind, urn, attr, key)).await? else {
            return Ok(None);
        };
        Ok(Some(Stored::from_item(&item)?.id().to_string()))
    }

    /// The id holding a name claim (folded name) or an externalId claim.
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
        let mut writes =
            vec![Write::Put { item: Item::new(&pk, resource_sk(kind, &id), document_text(kind, doc)?, 1), cond: Cond::Absent }];
        let mut roles = vec![WriteConflict::Version];
        if let Some(n) = &claims.name {
            writes.push(Write::Put { item: claim_item(&pk, format!("{}{n}", kind.name_claim()), &id), cond: Cond::Absent });
            roles.push(WriteConflict::Name);
        }
        for (w, role) in ext_id_puts(&pk, kind, &id, claims) {
            writes.push(w);
            roles.push(role);
        }
        for a in &claims.attributes {
            writes.push(Write::Put { item: claim_item(&pk, attribute_claim_sk(kind, &a.0, &a.1, &a.2), &id), cond: Cond::Absent });
            roles.push(WriteConflict::Attribute(a.1.clone()));
        }
        let mut deltas = vec![(kind.counter().to_string(), 1)];
        if claims.inactive {
            deltas.push((format!("{}_{INACTIVE}", kind.counter()), 1));
        }
        writes.push(Write::Add { pk: pk.clone(), sk: COUNT_SK.into(), deltas });
        self.commit_with_members(tenant, &id, writes, roles, members).await
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
        let (writes, roles) = update_writes(tenant, kind, old, new_doc, claims)?;
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
        let (mut writes, roles) = update_writes(tenant, Kind::User, old, new_doc, claims)?;
        let fits = writes.len() + groups.len() <= crate::store::MAX_TRANSACTION;
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

    /// Deletes a resource read at `old.version` with its claims, in one transaction.
    pub async fn delete(&self, tenant: &str, kind: Kind, old: &Stored, claims: &Claims) -> Result<Result<(), WriteConflict>, StoreError> {
        let pk = tenant_pk(tenant);
        let mut writes = vec![Write::Delete { pk: pk.clone(), sk: resource_sk(kind, old.id()), cond: Cond::Version(old.version) }];
        if let Some(n) = &claims.name {
            writes.push(Write::Delete { pk: pk.clone(), sk: format!("{}{n}", kind.name_claim()), cond: Cond::Always });
        }
        if let Some(e) = &claims.external_id {
            writes.extend(ext_id_deletes(&pk, kind, old.id(), e));
        }
        for a in &claims.attributes {
            writes.push(Write::Delete { pk: pk.clone(), sk: attribute_claim_sk(kind, &a.0, &a.1, &a.2), cond: Cond::Always });
        }
        let mut deltas = vec![(kind.counter().to_string(), -1), (kind.delete_counter().to_string(), 1)];
        if claims.inactive {
            deltas.push((format!("{}_{INACTIVE}", kind.counter()), -1));
        }
        writes.push(Write::Add { pk, sk: COUNT_SK.into(), deltas });
        match self.table.write(writes).await {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::Conflict { .. }) => Ok(Err(WriteConflict::Version)),
            Err(e) => Err(e),
        }
    }

    /// Sets the collection's inactive counter to `n` (an upgrade counts them once), relative
    /// to what it holds, so changes made meanwhile are kept.
    pub async fn set_inactive_count(&self, tenant: &str, kind: Kind, n: u64) -> Result<(), StoreError> {
        let current = self.counts(tenant, kind).await?.inactive;
        if current == n {
            return Ok(());
        }
        let delta = n as i64 - current as i64;
        let w = Write::Add { pk: tenant_pk(tenant), sk: COUNT_SK.into(), deltas: vec![(format!("{}_{INACTIVE}", kind.counter()), delta)] };
        self.table.write(vec![w]).await
    }

    /// The collection's counters (one read).
    pub async fn counts(&self, tenant: &str, kind: Kind) -> Result<Counts, StoreError> {
        Ok(counts_of(kind, self.table.get(&tenant_pk(tenant), COUNT_SK).await?.as_deref()))
    }
}
