//! Tenants and their API keys as records: the typed tenant record (status, allowlist, rate limit,
//! policies, custom roles, link epoch, declarations version) and key record (tenant, role, the
//! secret's hash, expiry, revocation), how they are created, listed, changed and revoked. Unknown
//! members of a stored record are kept as they are; a member of an unexpected shape (written by
//! an older version or by hand) reads as its default rather than locking the tenant out.
//! Authentication (`auth`) reads these records; it writes none of them.

use crate::crypto::{b64, hex, random_bytes, sha256_hex};
use crate::error::{Result, ScimError};
use crate::roles::{Permission, RolesPolicy, resolve_role, role_permissions};
use crate::store::layout::Layout;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A tenant's externalId policy. RFC 7643 §3.1: "the server does not enforce uniqueness" —
/// the default; the other two serve IdPs that rely on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExternalIdPolicy {
    /// Any number of users (or groups) may hold one externalId; `externalId eq` returns each.
    #[default]
    None,
    /// One holder per externalId (per collection): another gets `409 uniqueness`.
    Unique,
    /// Users: a `POST /Users` whose externalId exactly one user holds updates and reactivates
    /// that user and answers 201 with its id (Okta re-assigns a user whose userName changed
    /// with a new POST). Groups behave as under `none`.
    Relink,
}

impl ExternalIdPolicy {
    /// The policy's name in settings, the CLI and the authorizer context.
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalIdPolicy::None => "none",
            ExternalIdPolicy::Unique => "unique",
            ExternalIdPolicy::Relink => "relink",
        }
    }

    /// A policy from its name.
    pub fn parse(name: &str) -> Option<ExternalIdPolicy> {
        [ExternalIdPolicy::None, ExternalIdPolicy::Unique, ExternalIdPolicy::Relink]
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// What a create, replace or PATCH does with an extension URN the tenant has not declared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownExtensions {
    /// Dropped; the audit entry names the URNs so an IT admin can see why data is missing.
    #[default]
    Ignore,
    /// `400 invalidValue` naming the URN.
    Reject,
}

impl UnknownExtensions {
    /// The policy's name in settings, the CLI and the authorizer context.
    pub fn as_str(self) -> &'static str {
        match self {
            UnknownExtensions::Ignore => "ignore",
            UnknownExtensions::Reject => "reject",
        }
    }

    /// A policy from its name.
    pub fn parse(name: &str) -> Option<UnknownExtensions> {
        [UnknownExtensions::Ignore, UnknownExtensions::Reject].into_iter().find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// A tenant's deactivation policy: what `active: false` does to a user's group memberships.
/// Either way a deactivated user has no effective roles and the host application gets
/// `user.deactivated`; deleting a user always removes its memberships.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deactivation {
    /// Deprovision: the user leaves every group (and an inactive user cannot be added to one).
    /// Reactivation restores nothing; the IdP re-adds the memberships it still wants.
    #[default]
    RemoveMemberships,
    /// Suspend: memberships stay, so reactivation gives back the same access at once.
    KeepMemberships,
}

impl Deactivation {
    /// The policy's name in settings, the CLI and the authorizer context.
    pub fn as_str(self) -> &'static str {
        match self {
            Deactivation::RemoveMemberships => "remove-memberships",
            Deactivation::KeepMemberships => "keep-memberships",
        }
    }

    /// A policy from its name.
    pub fn parse(name: &str) -> Option<Deactivation> {
        [Deactivation::RemoveMemberships, Deactivation::KeepMemberships].into_iter().find(|d| d.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// A tenant setting stored by its name (the three policies above).
trait Named: Sized + Default + Copy {
    fn name(self) -> &'static str;
    fn from_name(name: &str) -> Option<Self>;
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn name(self) -> &'static str {
                self.as_str()
            }
            fn from_name(name: &str) -> Option<Self> {
                <$t>::parse(name)
            }
        }
    )*};
}
named!(ExternalIdPolicy, UnknownExtensions, Deactivation);

/// The policies travel by name (the principal, settings bodies): strictly, an unknown name is an
/// error. A stored record reads them leniently instead ([`from_name`]).
macro_rules! serde_by_name {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<$t, D::Error> {
                let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$t>::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown policy '{name}'")))
            }
        }
    )*};
}
serde_by_name!(ExternalIdPolicy, UnknownExtensions, Deactivation);

fn by_name<T: Named, S: Serializer>(v: &T, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(v.name())
}

/// A setting from its name; absent, null or unknown is the default.
fn from_name<'de, T: Named, D: Deserializer<'de>>(d: D) -> std::result::Result<T, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_str().and_then(T::from_name)).unwrap_or_default())
}

/// A member of any other shape: absent, null or unreadable is the default.
fn lenient<'de, T: serde::de::DeserializeOwned + Default, D: Deserializer<'de>>(d: D) -> std::result::Result<T, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default())
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn active() -> String {
    "active".into()
}

/// A tenant's record (`CONF#<tenant>` / `TENANT`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// The tenant id (letters, digits, `-` and `_`; see [`valid_tenant_id`]).
    pub id: String,
    /// The tenant's display name, as given at creation.
    #[serde(default, deserialize_with = "lenient")]
    pub name: String,
    /// When the tenant was created (RFC 3339, UTC).
    #[serde(default, deserialize_with = "lenient")]
    pub created: String,
    /// `active` or `suspended` (every key of the tenant gets 403).
    #[serde(default = "active", deserialize_with = "lenient_status")]
    pub status: String,
    /// CIDRs the IdP calls from; empty = any address.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Vec::is_empty")]
    pub ip_allowlist: Vec<String>,
    /// Requests per second for the whole tenant; `None` = no limit.
    #[serde(default, rename = "rate_limit_per_sec", deserialize_with = "lenient_limit", skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// How the tenant's users get application roles; `None`: `roles` values are kept as sent.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub roles_policy: Option<RolesPolicy>,
    /// The tenant's own roles: name → permission names.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_roles: BTreeMap<String, Vec<String>>,
    /// What `active: false` does to a user's group memberships.
    #[serde(default, deserialize_with = "from_name", serialize_with = "by_name", skip_serializing_if = "is_default")]
    pub deactivation: Deactivation,
    /// Whether externalIds are unique, and what a create with a held one does.
    #[serde(default, deserialize_with = "from_name", serialize_with = "by_name", skip_serializing_if = "is_default")]
    pub external_id_policy: ExternalIdPolicy,
    /// What a write does with extension URNs the tenant has not declared.
    #[serde(default, deserialize_with = "from_name", serialize_with = "by_name", skip_serializing_if = "is_default")]
    pub unknown_extensions: UnknownExtensions,
    /// Setup links carry it; moving it on revokes every link made so far.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "is_default")]
    pub portal_epoch: u64,
    /// The version of the tenant's schema declarations (0: none).
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "is_default")]
    pub schemas_version: u64,
    /// The longest a new key of the tenant may last, in days (`None`: no limit, and keys may
    /// never expire). Every way a key is made (the CLI, a rotation, the portal) keeps to it.
    #[serde(default, deserialize_with = "lenient_days", skip_serializing_if = "Option::is_none")]
    pub max_key_lifetime_days: Option<u32>,
    /// How long the tenant's OAuth access tokens last, in minutes (`None`: the default; see
    /// `oauth::token_minutes`).
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub token_lifetime_minutes: Option<u32>,
    /// OAuth clients (`<client id>`) and client secrets (`<client id>/<secret id>`) revoked
    /// while tokens they obtained may still be unexpired → until when (Unix seconds) such
    /// tokens are refused. Authentication reads this record for every token anyway, so a
    /// revocation costs no read of its own.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "BTreeMap::is_empty")]
    pub revoked_token_sources: BTreeMap<String, i64>,
    /// Members this version does not know, kept as they are.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn lenient_status<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(active))
}

/// A positive limit, capped at `u32::MAX`; 0, null or anything else is no limit.
fn lenient_limit<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    let n = Option::<Value>::deserialize(d)?.and_then(|v| v.as_u64()).filter(|n| *n > 0);
    Ok(n.map(|n| n.min(u64::from(u32::MAX)) as u32))
}

/// A lifetime in days within [`MAX_KEY_DAYS`]; anything else reads as no limit.
fn lenient_days<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    let n = Option::<Value>::deserialize(d)?.and_then(|v| v.as_u64()).filter(|n| (1..=u64::from(MAX_KEY_DAYS)).contains(n));
    Ok(n.map(|n| n as u32))
}

/// The longest any key may last, in days (ten years).
pub const MAX_KEY_DAYS: u32 = 3650;
/// An OAuth access token's lifetime when the tenant sets none, in minutes.
pub const DEFAULT_TOKEN_MINUTES: u32 = 60;
/// The range a tenant's OAuth access-token lifetime may take, in minutes (one to six hours).
pub const TOKEN_MINUTES: std::ops::RangeInclusive<u32> = 60..=360;

/// A key lifetime in days as a person or a client gives it: a whole number from 1 to
/// [`MAX_KEY_DAYS`], else `400 invalidValue` naming `field`.
pub fn key_days(field: &str, v: &Value) -> Result<u32> {
    v.as_u64().filter(|d| (1..=u64::from(MAX_KEY_DAYS)).contains(d)).map(|d| d as u32).ok_or_else(|| {
        ScimError::invalid_value(format!("{field} is a whole number of days from 1 to {MAX_KEY_DAYS}, not {}", crate::json_text(v)))
    })
}

impl TenantRecord {
    /// Checks a new key's expiry against the tenant's maximum lifetime: a key must expire in
    /// the future and, when the tenant has a maximum, within it (no key that never expires).
    pub fn check_key_expiry(&self, expires_at: Option<i64>, now: i64) -> Result<()> {
        if expires_at.is_some_and(|t| t <= now) {
            return Err(ScimError::invalid_value("a new key must expire in the future"));
        }
        let Some(max) = self.max_key_lifetime_days else { return Ok(()) };
        match expires_at {
            Some(t) if t <= now + i64::from(max) * 86_400 => Ok(()),
            Some(_) => Err(ScimError::invalid_value(format!("tenant '{}' allows keys of at most {max} days", self.id))),
            None => Err(ScimError::invalid_value(format!("tenant '{}' allows no key that never expires (at most {max} days)", self.id))),
        }
    }

    /// Whether the tenant's keys may be used.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// What a key of this tenant with `role` may do (`None`: the role does not exist).
    pub fn permissions_of(&self, role: &str) -> Option<Vec<Permission>> {
        resolve_role(role, &self.custom_roles)
    }
}

/// An API key's record (`KEY#<id>` / `KEY`). The secret is stored only as its SHA-256.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key id, `<tenant>.<16 hex digits>` (16 hex digits alone before layout 5), the
    /// `<key id>` of `scim_<key id>_<secret>`.
    pub key_id: String,
    /// The key's tenant (`None` when the record names no valid one).
    #[serde(default, deserialize_with = "lenient_tenant")]
    pub tenant: Option<String>,
    /// The key's role: built-in or one of the tenant's custom roles (`reader` if unreadable).
    #[serde(default = "reader", deserialize_with = "lenient_role")]
    pub role: String,
    /// The SHA-256 of the key's secret, in hex (the secret itself is never stored).
    #[serde(default, deserialize_with = "lenient")]
    pub hash: String,
    /// When the key was made (RFC 3339, UTC).
    #[serde(default, deserialize_with = "lenient")]
    pub created: String,
    /// When the key stops working (Unix seconds); `None`: it never expires.
    #[serde(default, deserialize_with = "lenient")]
    pub expires_at: Option<i64>,
    /// A record without the member reads as revoked.
    #[serde(default = "revoked_unless_said", deserialize_with = "lenient_revoked")]
    pub revoked: bool,
    /// When the key was revoked (RFC 3339, UTC), if it was.
    #[serde(default, deserialize_with = "lenient", skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// Members this version does not know, kept as they are.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn reader() -> String {
    "reader".into()
}

fn revoked_unless_said() -> bool {
    true
}

fn lenient_tenant<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_str().filter(|t| valid_tenant_id(t)).map(str::to_string)))
}

fn lenient_role<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(reader))
}

fn lenient_revoked<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.and_then(|v| v.as_bool()).unwrap_or(true))
}

/// When a key was last used (`KEYUSE#<id>`), stamped by authentication.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyUse {
    /// The last stamped use, in Unix seconds (stamped at most every 15 minutes).
    #[serde(default, deserialize_with = "lenient")]
    pub last_used_unix: Option<i64>,
    /// The same time as RFC 3339 text (UTC), for people and listings.
    #[serde(default, deserialize_with = "lenient")]
    pub last_used_at: Option<String>,
}

pub(crate) fn hash_secret(secret: &str) -> String {
    sha256_hex(secret)
}

pub use crate::store::layout::{id_tenant, valid_tenant_id};

/// A new key or client id of a tenant: `<tenant>.<hex of n random bytes>`.
pub(crate) fn new_id(tenant: &str, n: usize) -> String {
    [tenant, ".", &hex(&random_bytes(n))].concat()
}

/// The id a key has now: `key_id` itself, or — for an id of layout 4 or older whose key the
/// upgrade renamed — the new id it was given.
pub async fn current_key_id(layout: &Layout, key_id: &str) -> Result<String> {
    if id_tenant(key_id).is_none()
        && let Some(new) = layout.moved_key(key_id).await?
    {
        return Ok(new);
    }
    Ok(key_id.to_string())
}

/// Creates a tenant record (and its entry in the tenant registry, in the same transaction).
/// `Ok(false)` when it already exists.
pub async fn create_tenant(layout: &Layout, tenant_id: &str, name: &str) -> Result<bool> {
    if !valid_tenant_id(tenant_id) {
        return Err(ScimError::invalid_value("tenant ids use letters, digits, '-' and '_' (at most 64)"));
    }
    let rec = TenantRecord { id: tenant_id.into(), name: name.into(), created: crate::time::now(), status: active(), ..Default::default() };
    Ok(layout.create_tenant_record(tenant_id, &rec).await?)
}

/// Every tenant record.
pub async fn list_tenants(layout: &Layout) -> Result<Vec<TenantRecord>> {
    let mut out = Vec::new();
    for id in layout.tenant_ids(10_000).await? {
        if let Some(t) = get_tenant(layout, &id).await? {
            out.push(t);
        }
    }
    Ok(out)
}

/// A tenant record, when it exists.
pub async fn get_tenant(layout: &Layout, tenant_id: &str) -> Result<Option<TenantRecord>> {
    Ok(layout.tenant_record::<TenantRecord>(tenant_id).await?.map(|(t, _)| t))
}

/// A tenant record; 404 when there is none.
pub async fn require_tenant(layout: &Layout, tenant_id: &str) -> Result<TenantRecord> {
    get_tenant(layout, tenant_id).await?.ok_or_else(|| ScimError::NotFound(format!("no tenant '{tenant_id}'")))
}

/// A new key: the token (show once) and its id.
pub struct NewKey {
    /// The new key's id, by which it is listed, rotated and revoked.
    pub key_id: String,
    /// The whole bearer token, `scim_<tenant>.<hex>_<secret>`: shown once, never stored or logged.
    pub token: String,
}

/// Creates an API key for a tenant and role; the token is returned once and stored only hashed.
pub async fn create_key(layout: &Layout, tenant_id: &str, role: &str, expires_at: Option<i64>) -> Result<NewKey> {
    let tenant = require_tenant(layout, tenant_id).await?;
    tenant.check_key_expiry(expires_at, crate::time::unix_now())?;
    if tenant.permissions_of(role).is_none() {
        return Err(ScimError::invalid_value(format!(
            "unknown role '{role}' (admin, provisioner, reader, or a custom role of the tenant)"
        )));
    }
    let key_id = new_id(tenant_id, 8);
    let secret = b64(&random_bytes(32));
    let rec = KeyRecord {
        key_id: key_id.clone(),
        tenant: Some(tenant_id.into()),
        role: role.into(),
        hash: hash_secret(&secret),
        created: crate::time::now(),
        expires_at,
        revoked: false,
        ..Default::default()
    };
    // the key record, and a reference under the tenant so its keys can be listed
    layout.create_key_record(tenant_id, &key_id, &rec).await?;
    Ok(NewKey { token: format!("scim_{key_id}_{secret}"), key_id })
}

/// A key as listings show it: the record without its hash, with its last use.
fn public_view(rec: &KeyRecord, used: Option<&KeyUse>) -> Value {
    let mut view = serde_json::to_value(rec).unwrap_or_default();
    if let Some(o) = view.as_object_mut() {
        o.remove("hash");
        if let Some(u) = used {
            o.insert("last_used_at".into(), json!(u.last_used_at));
            o.insert("last_used_unix".into(), json!(u.last_used_unix));
        }
    }
    view
}

/// The keys of a tenant (id, role, created, expiry, revoked, last use), never their hashes.
pub async fn list_keys(layout: &Layout, tenant_id: &str) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for id in layout.key_ids(tenant_id, 10_000).await? {
        if let Some((rec, _)) = layout.key_record::<KeyRecord>(&id).await? {
            let used = layout.key_use::<KeyUse>(&id).await?;
            out.push(public_view(&rec, used.as_ref().map(|(u, _)| u)));
        }
    }
    Ok(out)
}

/// Revokes a key: it stops working at once locally, and in AWS when the authorizer cache
/// (its TTL) expires. Idempotent.
pub async fn revoke_key(layout: &Layout, key_id: &str) -> Result<Value> {
    let key_id = &current_key_id(layout, key_id).await?;
    let rec = layout
        .modify_key_record::<KeyRecord>(key_id, |rec| {
            let change = !rec.revoked;
            if change {
                rec.revoked = true;
                rec.revoked_at = Some(crate::time::now());
            }
            change
        })
        .await?
        .ok_or_else(|| ScimError::NotFound(format!("no key '{key_id}'")))?;
    Ok(public_view(&rec, None))
}

/// Rotation step one: a new key with the same tenant and role. Both keys work until the old one
/// is revoked (step two), so the IdP can be switched over without downtime. Only a key that
/// still works can be rotated (a revoked or expired one is `409`: make a new key instead). The
/// new key's expiry is its own: `expires_at` when given (`Some(None)`: never), else the old
/// key's lifetime counted from now (none if it had none), within the tenant's maximum.
pub async fn rotate_key(layout: &Layout, key_id: &str, expires_at: Option<Option<i64>>) -> Result<NewKey> {
    let key_id = &current_key_id(layout, key_id).await?;
    let (rec, _) = layout.key_record::<KeyRecord>(key_id).await?.ok_or_else(|| ScimError::NotFound(format!("no key '{key_id}'")))?;
    let tenant_id = rec.tenant.as_deref().ok_or_else(|| ScimError::Internal("key without tenant".into()))?;
    let now = crate::time::unix_now();
    if rec.revoked {
        return Err(ScimError::InUse(format!("key {key_id} is revoked: it cannot be rotated (make a new key instead)")));
    }
    if rec.expires_at.is_some_and(|t| t <= now) {
        return Err(ScimError::InUse(format!("key {key_id} has expired: it cannot be rotated (make a new key instead)")));
    }
    let expires_at = match expires_at {
        Some(e) => e,
        None => {
            let created = crate::time::parse(&rec.created).map(|t| t.unix_timestamp());
            let lifetime = rec.expires_at.zip(created).map(|(e, c)| (e - c).max(86_400));
            let max = require_tenant(layout, tenant_id).await?.max_key_lifetime_days.map(|d| i64::from(d) * 86_400);
            match (lifetime, max) {
                (Some(l), Some(m)) => Some(now + l.min(m)),
                (l, m) => l.or(m).map(|s| now + s),
            }
        }
    };
    create_key(layout, tenant_id, &rec.role, expires_at).await
}

/// Read-modify-write of a tenant record (conditional on its version, retried on a race). Keys
/// read it at authentication, so a change applies to the next request.
async fn modify_tenant(layout: &Layout, tenant_id: &str, mut change: impl FnMut(&mut TenantRecord)) -> Result<TenantRecord> {
    let changed = layout
        .modify_tenant_record::<TenantRecord>(tenant_id, |rec| {
            change(rec);
            true
        })
        .await?;
    changed.ok_or_else(|| ScimError::NotFound(format!("no tenant '{tenant_id}'")))
}

/// Invalidates every portal link of a tenant made so far (links carry the tenant's link
/// epoch; this moves it on). Returns the new epoch.
pub async fn revoke_portal_links(layout: &Layout, tenant_id: &str) -> Result<u64> {
    Ok(modify_tenant(layout, tenant_id, |rec| rec.portal_epoch += 1).await?.portal_epoch)
}

/// Sets (or, with `None`, removes) a tenant's role policy.
pub async fn set_roles_policy(layout: &Layout, tenant_id: &str, policy: Option<&RolesPolicy>) -> Result<TenantRecord> {
    if let Some(p) = policy {
        p.validate()?;
    }
    modify_tenant(layout, tenant_id, |rec| rec.roles_policy = policy.cloned()).await
}

/// Creates or replaces a tenant's custom role; `None` deletes it. Built-in names are reserved.
/// The tenant's custom roles after the change.
pub async fn set_custom_role(
    layout: &Layout,
    tenant_id: &str,
    name: &str,
    permissions: Option<&[Permission]>,
) -> Result<BTreeMap<String, Vec<String>>> {
    if role_permissions(name).is_some() {
        return Err(ScimError::invalid_value(format!("'{name}' is a built-in role")));
    }
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ScimError::invalid_value("role names use letters, digits, '-' and '_'"));
    }
    let rec = modify_tenant(layout, tenant_id, |rec| match permissions {
        Some(p) => {
            rec.custom_roles.insert(name.to_string(), p.iter().map(|p| p.as_str().to_string()).collect());
        }
        None => {
            rec.custom_roles.remove(name);
        }
    })
    .await?;
    Ok(rec.custom_roles)
}

/// Parses `a.b.c.d/n`, `x::y/n` or a bare address.
pub fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match cidr.trim().split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, b.parse::<u8>().ok()?),
        None => {
            let a = cidr.trim().parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

/// A change to a tenant's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    /// `active` or `suspended` (every key of the tenant gets 403).
    pub status: Option<String>,
    /// CIDRs the IdP calls from; empty = any address.
    pub ip_allowlist: Option<Vec<String>>,
    /// Requests per second for the whole tenant; 0 = no limit.
    pub rate_limit: Option<u32>,
    /// The new deactivation policy (what `active: false` does to group memberships).
    pub deactivation: Option<Deactivation>,
    /// The new externalId policy (`none`, `unique` or `relink`).
    pub external_id_policy: Option<ExternalIdPolicy>,
    /// The new policy for undeclared extension URNs (`ignore` or `reject`).
    pub unknown_extensions: Option<UnknownExtensions>,
    /// The longest a new key may last, in days; `Some(None)` removes the limit.
    pub max_key_lifetime_days: Option<Option<u32>>,
    /// How long new access tokens last, in minutes ([`TOKEN_MINUTES`]); `Some(None)`: the default.
    pub token_lifetime_minutes: Option<Option<u32>>,
}

/// Changes a tenant's settings (validated first: nothing is written when one is invalid).
pub async fn update_tenant(layout: &Layout, tenant_id: &str, change: &TenantChange) -> Result<TenantRecord> {
    if let Some(list) = &change.ip_allowlist
        && let Some(bad) = list.iter().find(|c| parse_cidr(c).is_none())
    {
        return Err(ScimError::invalid_value(format!("'{bad}' is not a CIDR (e.g. 203.0.113.0/24)")));
    }
    if let Some(Some(d)) = change.max_key_lifetime_days
        && !(1..=MAX_KEY_DAYS).contains(&d)
    {
        return Err(ScimError::invalid_value(format!("a maximum key lifetime is 1 to {MAX_KEY_DAYS} days")));
    }
    if let Some(Some(m)) = change.token_lifetime_minutes
        && !TOKEN_MINUTES.contains(&m)
    {
        return Err(ScimError::invalid_value(format!(
            "an access token lasts {} to {} minutes, not {m}",
            TOKEN_MINUTES.start(),
            TOKEN_MINUTES.end()
        )));
    }
    if change.status.as_deref().is_some_and(|s| s != "active" && s != "suspended") {
        return Err(ScimError::invalid_value("status is 'active' or 'suspended'"));
    }
    modify_tenant(layout, tenant_id, |rec| {
        rec.status = change.status.clone().unwrap_or_else(|| rec.status.clone());
        rec.ip_allowlist = change.ip_allowlist.clone().unwrap_or_else(|| rec.ip_allowlist.clone());
        rec.rate_limit = change.rate_limit.map(|r| (r > 0).then_some(r)).unwrap_or(rec.rate_limit);
        rec.deactivation = change.deactivation.unwrap_or(rec.deactivation);
        rec.external_id_policy = change.external_id_policy.unwrap_or(rec.external_id_policy);
        rec.unknown_extensions = change.unknown_extensions.unwrap_or(rec.unknown_extensions);
        rec.max_key_lifetime_days = change.max_key_lifetime_days.unwrap_or(rec.max_key_lifetime_days);
        rec.token_lifetime_minutes = change.token_lifetime_minutes.unwrap_or(rec.token_lifetime_minutes);
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_older_versions_and_odd_shapes_read_leniently_and_keep_unknown_members() {
        let old = json!({"id": "acme", "name": "Acme", "created": "2026-01-01T00:00:00Z", "status": "active",
            "ip_allowlist": null, "custom_roles": null, "rate_limit_per_sec": 0, "deactivation": "bogus",
            "roles_policy": {"nonsense": true}, "future_member": {"x": 1}});
        let t: TenantRecord = serde_json::from_value(old).unwrap();
        assert_eq!((t.ip_allowlist.len(), t.custom_roles.len(), t.rate_limit), (0, 0, None));
        assert_eq!((t.deactivation, t.roles_policy.is_none()), (Deactivation::RemoveMemberships, true));
        let back = serde_json::to_value(&t).unwrap();
        assert_eq!(back["future_member"], json!({"x": 1}), "unknown members survive a rewrite");
        let k: KeyRecord = serde_json::from_value(json!({"key_id": "k", "tenant": "bad tenant!", "hash": "h"})).unwrap();
        assert_eq!((k.tenant, k.role.as_str(), k.revoked), (None, "reader", true), "a record that does not say is revoked");
        let t: TenantRecord =
            serde_json::from_value(json!({"id": "a", "rate_limit_per_sec": 99_999_999_999u64, "external_id_policy": "RELINK"})).unwrap();
        assert_eq!((t.rate_limit, t.external_id_policy), (Some(u32::MAX), ExternalIdPolicy::Relink));
        assert_eq!(serde_json::to_value(&t).unwrap()["external_id_policy"], "relink");
    }
}
