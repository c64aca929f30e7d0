//! Every key of the layout: partition and sort keys by item family, and what an item is from
//! its keys. Built here and nowhere else.

use super::*;
use crate::kind::Slot;
use std::borrow::Cow;

/// The key parts of a resource collection: fixed text for users and groups, the slot's number
/// in them for a declared type (`RES<slot>#<id>`, …).
pub(crate) trait KindKeys: Copy {
    fn prefix(self) -> Cow<'static, str>;
    fn name_claim(self) -> Cow<'static, str>;
    fn ext_claim(self) -> Cow<'static, str>;
    fn ext_index(self) -> Cow<'static, str>;
    fn counter(self) -> Cow<'static, str>;
    fn delete_counter(self) -> Cow<'static, str>;
}

/// `(user's, group's, a declared type's as prefix + slot + suffix)`.
fn part(kind: Kind, user: &'static str, group: &'static str, declared: (&str, &str)) -> Cow<'static, str> {
    match kind {
        Kind::User => Cow::Borrowed(user),
        Kind::Group => Cow::Borrowed(group),
        Kind::Declared(Slot(n)) => Cow::Owned([declared.0, itoa::Buffer::new().format(n), declared.1].concat()),
    }
}

impl KindKeys for Kind {
    fn prefix(self) -> Cow<'static, str> {
        part(self, "USER#", "GROUP#", ("RES", "#"))
    }
    fn name_claim(self) -> Cow<'static, str> {
        part(self, "USERNAME#", "GROUPNAME#", ("RESNAME", "#"))
    }
    fn ext_claim(self) -> Cow<'static, str> {
        part(self, "UEXT#", "GEXT#", ("REXT", "#"))
    }
    fn ext_index(self) -> Cow<'static, str> {
        part(self, "UEXTID#", "GEXTID#", ("REXTID", "#"))
    }
    fn counter(self) -> Cow<'static, str> {
        part(self, "users", "groups", ("res", ""))
    }
    fn delete_counter(self) -> Cow<'static, str> {
        part(self, "user_deletes", "group_deletes", ("res", "_deletes"))
    }
}

/// What an item is, from its keys (for change events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKey {
    /// A user or group resource item (`TENANT#<t>` / `USER#<id>` or `GROUP#<id>`).
    Resource {
        /// The tenant holding the resource.
        tenant: String,
        /// Whether it is a user or a group.
        kind: Kind,
        /// The resource's id.
        id: String,
    },
    /// A membership item (`TENANT#<t>#GROUP#<gid>` / `MEMBER#<uid>`).
    Membership {
        /// The tenant holding the group.
        tenant: String,
        /// The group's id.
        group: String,
        /// The member user's id.
        user: String,
    },
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
        if let Some(id) = sk.strip_prefix(&*kind.prefix()) {
            return Some(ItemKey::Resource { tenant: rest.into(), kind, id: id.into() });
        }
    }
    let (slot, id) = sk.strip_prefix("RES")?.split_once('#')?;
    // only the canonical spelling of a slot is one (`RES07#` is no item of this layout)
    let n: u16 = slot.parse().ok().filter(|n: &u16| itoa::Buffer::new().format(*n) == slot)?;
    Some(ItemKey::Resource { tenant: rest.into(), kind: Kind::Declared(Slot(n)), id: id.into() })
}

/// A tenant id: letters, digits, '-' and '_', 1 to 64 characters (never `#` or `.`, which the
/// keys of this layout use to join a tenant id with what follows it).
pub fn valid_tenant_id(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The tenant a key or client id names: ids are `<tenant>.<hex>` since layout 5 (a tenant's
/// session reaches the records of its own ids only: `KEY#<t>.*`); `None` for an id of an older
/// layout (hex only) or one that is not an id.
pub fn id_tenant(id: &str) -> Option<&str> {
    let (tenant, rest) = id.split_once('.')?;
    (valid_tenant_id(tenant) && !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit())).then_some(tenant)
}

/// Partition of a tenant's items.
pub fn tenant_pk(tenant: &str) -> String {
    // keys are joined with `concat` (one exact allocation) rather than `format!`: they are
    // built several times per request
    ["TENANT#", tenant].concat()
}
pub(super) fn cursor_pk(tenant: &str) -> String {
    format!("TENANT#{tenant}#CURSOR")
}
/// Sort key of a resource.
pub fn resource_sk(kind: Kind, id: &str) -> String {
    [&*kind.prefix(), id].concat()
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
pub(super) const SCHEMAS_SK: &str = "SCHEMAS";
/// Sort-key prefix of a key reference (under [`conf_pk`]).
pub const KEYREF: &str = "KEYREF#";
/// Partition listing every tenant (read by the admin CLI, never on a request path).
pub const REGISTRY_PK: &str = "TENANTS";
/// Sort-key prefix of a tenant's entry in the registry.
pub(super) const REGISTRY_SK: &str = "TENANT#";
/// Partition of the cursor seal (read by the SCIM functions, written by operators' tools).
pub const SERVER_PK: &str = "SERVER";
pub(super) const SEAL_SK: &str = "SEAL";
/// Partition of the layout marker: of its own, so the authorizer may read it (to tell "not
/// upgraded yet" from "no such tenant") without being able to read the seal.
pub const LAYOUT_PK: &str = "LAYOUT";
pub(super) const LAYOUT_SK: &str = "LAYOUT";
pub(super) const COUNT_SK: &str = "COUNT";
/// Sort key of an API key record.
pub const KEY_SK: &str = "KEY";
/// Sort key, under a key id of layout 4 or older, of the pointer to the key's new id.
pub const MOVED_SK: &str = "MOVED";

/// The counter of a collection's inactive resources.
pub(super) const INACTIVE: &str = "inactive";

/// The sort key of a unique extension attribute claim: the URN hashed (URNs are long; 64-bit
/// FNV-1a of its lower case, a stable and cheap hash — two URNs of one tenant sharing a hash
/// and an attribute name and a value is not a concern), the attribute as declared, the value key
/// (folded unless the attribute is caseExact).
pub(super) fn attribute_claim_sk(kind: Kind, urn: &str, attr: &str, key: &str) -> String {
    let hash = urn.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3));
    let letter = part(kind, "U", "G", ("R", ""));
    format!("XU#{letter}#{}#{attr}#{key}", crate::crypto::hex(&hash.to_be_bytes()))
}

/// The sort key of an externalId index entry: the externalId with `%` and `#` escaped (so the
/// holder id that follows the last `#` is unambiguous), then the holder's id.
pub(super) fn ext_index_sk(kind: Kind, external_id: &str, id: &str) -> String {
    format!("{}{}#{id}", kind.ext_index(), escape_key_part(external_id))
}

/// `%` → `%25`, `#` → `%23`: a key part that cannot contain the separator.
pub(super) fn escape_key_part(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['%', '#']) { s.replace('%', "%25").replace('#', "%23").into() } else { s.into() }
}

/// Partition of a group's membership items.
pub(super) fn members_pk(tenant: &str, gid: &str) -> String {
    ["TENANT#", tenant, "#GROUP#", gid].concat()
}
pub(super) const MEMBER: &str = "MEMBER#";

/// Index partition of a user's membership items (the groups it is in).
pub(super) fn user_index_pk(tenant: &str, uid: &str) -> String {
    ["TENANT#", tenant, "#USER#", uid].concat()
}

pub(super) fn member_item(tenant: &str, gid: &str, uid: &str) -> Item {
    let mut item = Item::new(members_pk(tenant, gid), format!("{MEMBER}{uid}"), crate::json_text(&serde_json::json!({"value": uid})), 1);
    item.gsi1 = Some((user_index_pk(tenant, uid), resource_sk(Kind::Group, gid)));
    item
}
/// Partition of an OAuth client (RFC 6749 §2): its record, found by client id at the token
/// endpoint, and its failure counters.
pub fn oauth_client_pk(client_id: &str) -> String {
    ["OAUTH#", client_id].concat()
}
/// Sort key of an OAuth client's record (under [`oauth_client_pk`]).
pub const OAUTH_CLIENT_SK: &str = "CLIENT";
/// Sort-key prefix of an OAuth client reference (under [`conf_pk`]).
pub const OAUTHREF: &str = "OAUTHREF#";
/// Sort key of the access-token signing keys (under [`SERVER_PK`]).
pub(super) const TOKEN_KEYS_SK: &str = "TOKENKEYS";
