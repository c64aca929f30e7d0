//! The single-table layout: which item holds what, and the reads and transactions each SCIM
//! operation needs. Every key is built here and nowhere else.
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
//! | audit entry (TTL 90 days) | `TENANT#<t>#AUDIT#<YYYY-MM-DD>` | `AT#<unix ms, 13 digits>#<uuid v7>` |
//! | tenant record (settings) | `CONF#<t>` | `TENANT` |
//! | key reference (for listing) | `CONF#<t>` | `KEYREF#<key id>` |
//! | schema declarations (the tenant's extensions) | `CONF#<t>` | `SCHEMAS` |
//! | unique extension attribute claim | `TENANT#<t>` | `XU#<U or G>#<16 hex: FNV-1a of the URN>#<attribute>#<value key>` |
//! | API key | `KEY#<key id>` | `KEY` |
//! | key last-use stamp | `KEYUSE#<key id>` | `USE` |
//! | tenant registry | `TENANTS` | `TENANT#<t>` |
//! | cursor sealing key | `SERVER` | `SEAL` |
//! | layout version marker | `LAYOUT` | `LAYOUT` |

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
    fn ext_index(self) -> &'static str {
        match self {
            Kind::User => "UEXTID#",
            Kind::Group => "GEXTID#",
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
    // keys are joined with `concat` (one exact allocation) rather than `format!`: they are
    // built several times per request
    ["TENANT#", tenant].concat()
}
fn cursor_pk(tenant: &str) -> String {
    format!("TENANT#{tenant}#CURSOR")
}
/// Sort key of a resource.
pub fn resource_sk(kind: Kind, id: &str) -> String {
    [kind.prefix(), id].concat()
}
/// Partition of an API key.
pub fn key_pk(key_id: &str) -> String {
    ["KEY#", key_id].concat()
}
/// Partition of a key's last-use stamp (the only item the authorizer writes).
pub fn key_use_pk(key_id: &str) -> String {
    ["KEYUSE#", key_id].concat()
}
/// Sort key of a key's last-use stamp.
pub const KEY_USE_SK: &str = "USE";
/// Partition of a tenant's configuration: its record and its key references.
pub fn conf_pk(tenant: &str) -> String {
    ["CONF#", tenant].concat()
}
/// Sort key of the tenant record (under [`conf_pk`]).
pub const TENANT_SK: &str = "TENANT";
/// Sort key of the tenant's schema declarations (under [`conf_pk`]).
const SCHEMAS_SK: &str = "SCHEMAS";
/// Sort-key prefix of a key reference (under [`conf_pk`]).
pub const KEYREF: &str = "KEYREF#";
/// Partition listing every tenant (read by the admin CLI, never on a request path).
pub const REGISTRY_PK: &str = "TENANTS";
/// Partition of the cursor seal (read by the SCIM functions, written by operators' tools).
pub const SERVER_PK: &str = "SERVER";
const SEAL_SK: &str = "SEAL";
/// Partition of the layout marker: of its own, so the authorizer may read it (to tell "not
/// upgraded yet" from "no such tenant") without being able to read the seal.
pub const LAYOUT_PK: &str = "LAYOUT";
const LAYOUT_SK: &str = "LAYOUT";
/// The version of this layout; `SERVER`/`LAYOUT` records the version a table is at.
/// 1: everything of a tenant under `TENANT#<t>`, settings copied into key records, names keyed
/// by their lower case. 2: configuration, keys and last-use stamps in partitions of their own,
/// names keyed by their caseless fold. 3: externalIds indexed per holder (not unique).
/// 4: a counter of inactive users beside the collection counters.
pub const LAYOUT_VERSION: u64 = 4;

/// The largest document a user or group may be stored as, bytes of JSON text: the same on every
/// store, and well inside DynamoDB's 400 KB item (keys and counters beside it).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A resource's document as stored, refused past [`MAX_DOCUMENT_BYTES`] before anything is
/// written.
fn document_text(kind: Kind, doc: &Map<String, Value>) -> Result<String, StoreError> {
    let text = crate::json_text(doc);
    if text.len() > MAX_DOCUMENT_BYTES {
        let what = format!(
            "the {} would be {} bytes; this service stores at most {MAX_DOCUMENT_BYTES} bytes per resource",
            if kind == Kind::User { "user" } else { "group" },
            text.len()
        );
        return Err(StoreError::TooLarge { what });
    }
    Ok(text)
}
const COUNT_SK: &str = "COUNT";
/// Sort key of an API key record.
pub const KEY_SK: &str = "KEY";

/// A stored resource: its id, its document (with `id` and `meta`) and its version.
#[derive(Debug, Clone)]
pub struct Stored {
    id: String,
    pub doc: Map<String, Value>,
    pub version: u64,
}

/// A stored resource as the JSON text it is stored as, unparsed: a read answered from the text
/// itself (see `resource::render_members`) never builds the document. It holds the item as the
/// store handed it out (nothing copied).
#[derive(Debug, Clone)]
pub struct StoredText {
    item: super::Shared,
    pub version: u64,
}

impl StoredText {
    fn from_item(item: super::Shared) -> Result<StoredText, StoreError> {
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

fn corrupt(sk: &str, e: serde_json::Error) -> StoreError {
    StoreError::caused(format!("corrupt item {sk}"), e)
}

fn without_id(sk: &str) -> StoreError {
    StoreError::other(format!("corrupt item {sk}: no id"))
}

/// An item's document text; an item without one is not a resource.
fn document_of(item: &Item) -> Result<&str, StoreError> {
    item.doc.as_deref().ok_or_else(|| no_document(&item.sk))
}

fn no_document(sk: &str) -> StoreError {
    StoreError::other(format!("item {sk} has no document"))
}

impl Stored {
    fn from_item(item: &Item) -> Result<Stored, StoreError> {
        Stored::parse(document_of(item)?, item.version, &item.sk)
    }

    /// A stored document's text parsed: one without an id is a corrupt item, not a resource.
    fn parse(text: &str, version: u64, sk: &str) -> Result<Stored, StoreError> {
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
    pub name: Option<String>,
    pub external_id: Option<String>,
    /// Hold a unique claim on `external_id` as well as its index entry.
    pub external_id_unique: bool,
    /// Unique extension attribute values: (extension URN, attribute, value key).
    pub attributes: Vec<(String, String, String)>,
    /// The resource counts among the collection's inactive ones (a deactivated user).
    pub inactive: bool,
}

/// The counter of a collection's inactive resources.
const INACTIVE: &str = "inactive";

/// The sort key of a unique extension attribute claim: the URN hashed (URNs are long; 64-bit
/// FNV-1a of its lower case, a stable and cheap hash — two URNs of one tenant sharing a hash
/// and an attribute name and a value is not a concern), the attribute as declared, the value key
/// (folded unless the attribute is caseExact).
fn attribute_claim_sk(kind: Kind, urn: &str, attr: &str, key: &str) -> String {
    let hash = urn.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3));
    let letter = match kind {
        Kind::User => 'U',
        Kind::Group => 'G',
    };
    format!("XU#{letter}#{}#{attr}#{key}", crate::crypto::hex(&hash.to_be_bytes()))
}

/// The sort key of an externalId index entry: the externalId with `%` and `#` escaped (so the
/// holder id that follows the last `#` is unambiguous), then the holder's id.
fn ext_index_sk(kind: Kind, external_id: &str, id: &str) -> String {
    format!("{}{}#{id}", kind.ext_index(), escape_key_part(external_id))
}

/// `%` → `%25`, `#` → `%23`: a key part that cannot contain the separator.
fn escape_key_part(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['%', '#']) { s.replace('%', "%25").replace('#', "%23").into() } else { s.into() }
}

/// The writes that give a resource its externalId (index entry, and claim when unique).
fn ext_id_puts(pk: &str, kind: Kind, id: &str, claims: &Claims) -> Vec<(Write, WriteConflict)> {
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
fn ext_id_deletes(pk: &str, kind: Kind, id: &str, external_id: &str) -> Vec<Write> {
    vec![
        Write::Delete { pk: pk.to_string(), sk: ext_index_sk(kind, external_id, id), cond: Cond::Always },
        Write::Delete { pk: pk.to_string(), sk: format!("{}{external_id}", kind.ext_claim()), cond: Cond::Always },
    ]
}

/// Which claim a failed create or update collided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteConflict {
    Name,
    ExternalId,
    /// A unique extension attribute (its name).
    Attribute(String),
    /// The resource changed (or vanished) since it was read.
    Version,
}

/// Counters of a tenant's collection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub total: u64,
    /// Bumped on every delete: page checkpoints made before a delete are stale.
    pub deletes: u64,
    /// Resources counted inactive (deactivated users), kept in the same transactions.
    pub inactive: u64,
}

/// The layout over any [`Table`].
#[derive(Clone)]
pub struct Layout {
    pub table: std::sync::Arc<dyn Table>,
}

/// Partition of a group's membership items.
fn members_pk(tenant: &str, gid: &str) -> String {
    ["TENANT#", tenant, "#GROUP#", gid].concat()
}
const MEMBER: &str = "MEMBER#";

/// Index partition of a user's membership items (the groups it is in).
fn user_index_pk(tenant: &str, uid: &str) -> String {
    ["TENANT#", tenant, "#USER#", uid].concat()
}

fn member_item(tenant: &str, gid: &str, uid: &str) -> Item {
    let mut item = Item::new(members_pk(tenant, gid), format!("{MEMBER}{uid}"), crate::json_text(&serde_json::json!({"value": uid})), 1);
    item.gsi1 = Some((user_index_pk(tenant, uid), resource_sk(Kind::Group, gid)));
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
    Counts { total: get(kind.counter()), deletes: get(kind.delete_counter()), inactive: get(&format!("{}_{INACTIVE}", kind.counter())) }
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

    /// Whether a group has any member (one read of at most one key).
    pub async fn has_members(&self, tenant: &str, gid: &str) -> Result<bool, StoreError> {
        let q = Query { keys_only: true, ..Query::prefix(members_pk(tenant, gid), MEMBER, None, 1) };
        Ok(!self.table.query(&q).await?.is_empty())
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
            pk: user_index_pk(tenant, uid),
            lo: Kind::Group.prefix().to_string(),
            hi: [Kind::Group.prefix(), "\u{10FFFF}"].concat(),
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

    /// Up to `limit` resources in id order, after the resource `after` (exclusive).
    pub async fn page(&self, tenant: &str, kind: Kind, after: Option<&str>, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let after_sk = after.map(|a| resource_sk(kind, a));
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), kind.prefix(), after_sk.as_deref(), limit)).await?;
        items.iter().map(|i| Stored::from_item(i)).collect()
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

    /// Counts one request in the tenant's current second; returns the count so far.
    pub async fn tick(&self, tenant: &str) -> Result<i64, StoreError> {
        let now = crate::time::unix_now();
        self.table.count(&format!("TENANT#{tenant}#RATE"), &now.to_string(), 1, now + 120).await
    }

    /// Counts an unauthenticated refusal in the tenant's current hour; returns the count (a
    /// counter in the tenant's rate partition that expires after the hour, as the rate limit's
    /// seconds do).
    pub async fn count_refusal(&self, tenant: &str, now: i64) -> Result<i64, StoreError> {
        let hour = now / 3600;
        self.table.count(&format!("TENANT#{tenant}#RATE"), &format!("REFUSED#{hour}"), 1, (hour + 2) * 3600).await
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

    /// The newest `limit` entries of a tenant's audit log for one day, newest first (one Query).
    pub async fn recent_audit_entries(&self, tenant: &str, day: &str, limit: usize) -> Result<Vec<Value>, StoreError> {
        let q = Query {
            index: super::Index::Primary,
            pk: format!("TENANT#{tenant}#AUDIT#{day}"),
            lo: "AT#".into(),
            hi: "AT#\u{10FFFF}".into(),
            forward: false,
            limit,
            keys_only: false,
        };
        Ok(self.table.query(&q).await?.iter().filter_map(|i| i.doc.as_deref().and_then(|d| serde_json::from_str(d).ok())).collect())
    }

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

    /// Records the layout version the table is at.
    pub async fn set_layout_version(&self, version: u64) -> Result<(), StoreError> {
        let doc = serde_json::json!({"version": version, "by": "scim-serverless", "at": crate::time::now()}).to_string();
        self.table.write(vec![Write::Put { item: Item::new(LAYOUT_PK, LAYOUT_SK, doc, version), cond: Cond::Always }]).await
    }

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
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), prefix, after_sk.as_deref(), limit)).await?;
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
        let items = self.table.query(&Query::prefix(tenant_pk(tenant), prefix, after_sk.as_deref(), limit)).await?;
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
            let moved = Item { pk: new_pk.clone(), ..super::Shared::unwrap_or_clone(item) };
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

    /// Drops the settings copy from a layout-1 key record and moves its last-use stamp to the
    /// key's own stamp item.
    async fn upgrade_key_from_v1(&self, key_id: &str) -> Result<usize, StoreError> {
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
    async fn a_read_modify_write_retries_a_lost_race_and_then_gives_up() {
        let metered = Arc::new(Metered::new(Arc::new(EmbeddedTable::in_memory())));
        let layout = Layout { table: metered.clone() };
        layout.table.write(vec![Write::Put { item: Item::new("R", "r", r#"{"n":1}"#.into(), 1), cond: Cond::Absent }]).await.unwrap();
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
    async fn a_corrupt_record_is_an_error_that_names_it() {
        let layout = Layout { table: Arc::new(EmbeddedTable::in_memory()) };
        layout.table.write(vec![Write::Put { item: Item::new("R", "bad", "{not json".into(), 1), cond: Cond::Absent }]).await.unwrap();
        let e = layout.read_record::<Counter>("R", "bad").await.unwrap_err();
        assert!(e.to_string().starts_with("store failure: corrupt record R: "), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "the parse error is kept");
    }
}
