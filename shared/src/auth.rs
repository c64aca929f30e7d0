//! Tenants, API keys and roles. A key is `scim_<key id>_<secret>`: the id finds the record (one
//! read), the secret (256 random bits) is stored only as its SHA-256 and compared in constant
//! time. The full key is returned once, at creation, and never logged.

use crate::crypto::{b64, hex, random_bytes, sha256_hex};
use crate::error::{Result, ScimError};
use crate::store::layout::{KEY_SK, KEY_USE_SK, KEYREF, Layout, REGISTRY_PK, TENANT_SK, conf_pk, key_pk, key_use_pk};
use crate::store::{Cond, Item, StoreError, Write};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What a role may do (the permissions SaaS setup guides ask for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read Users, Groups and discovery endpoints.
    ScimRead,
    /// Create, replace, patch and delete Users and Groups.
    ScimWrite,
    /// Set the `roles` attribute of users.
    EditRoles,
    /// Manage identity mappings (group → role rules).
    ManageMappings,
    /// Configure SCIM for the tenant (keys, settings).
    ConfigureScim,
}

/// Every permission, in wire order.
pub const ALL_PERMISSIONS: [Permission; 5] =
    [Permission::ScimRead, Permission::ScimWrite, Permission::EditRoles, Permission::ManageMappings, Permission::ConfigureScim];

impl Permission {
    /// The permission's name in records and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ScimRead => "scim:read",
            Permission::ScimWrite => "scim:write",
            Permission::EditRoles => "roles:edit",
            Permission::ManageMappings => "mappings:manage",
            Permission::ConfigureScim => "scim:configure",
        }
    }

    /// A permission from its name.
    pub fn parse(name: &str) -> Option<Permission> {
        ALL_PERMISSIONS.into_iter().find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// The permissions of a built-in role; `None` for any other name.
pub fn role_permissions(role: &str) -> Option<&'static [Permission]> {
    match role {
        "admin" => Some(&ALL_PERMISSIONS),
        "provisioner" => Some(&[Permission::ScimRead, Permission::ScimWrite, Permission::EditRoles]),
        "reader" => Some(&[Permission::ScimRead]),
        _ => None,
    }
}

/// The permissions of a role for a tenant: built-in, or one of the tenant's custom roles
/// (`custom_roles` of its settings: name → permission names).
pub fn resolve_role(role: &str, custom_roles: &Value) -> Option<Vec<Permission>> {
    if let Some(p) = role_permissions(role) {
        return Some(p.to_vec());
    }
    let names = custom_roles.get(role)?.as_array()?;
    Some(names.iter().filter_map(|n| n.as_str().and_then(Permission::parse)).collect())
}

/// Who is calling: built only by the authorizer (or, locally, the same code in process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub key_id: String,
    pub role: String,
    /// The tenant's request limit per second, if it has one.
    pub rate_limit: Option<u32>,
    /// The tenant's role policy, if it has one.
    pub roles_policy: Option<RolesPolicy>,
    /// What the key's role may do (built-in or the tenant's custom role).
    pub permissions: Vec<Permission>,
    /// What deactivating a user does to its group memberships.
    pub deactivation: Deactivation,
    /// Whether externalIds are unique, and what a create with a held one does.
    pub external_id_policy: ExternalIdPolicy,
    /// What happens to extension URNs the tenant has not declared.
    pub unknown_extensions: UnknownExtensions,
    /// The version of the tenant's schema declarations (0: it has none, no read needed).
    pub schemas_version: u64,
}

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

/// How a tenant's users get application roles (Portkey-style): the `roles` values a user may
/// hold (others fall back to the default), the default for users sent without roles, and a
/// group-name rule such as `ws-{workspace}-role-{role}` granting workspace roles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RolesPolicy {
    pub default_role: String,
    pub user_roles: Vec<String>,
    #[serde(default)]
    pub group_rule: Option<String>,
    #[serde(default)]
    pub group_roles: Vec<String>,
}

impl RolesPolicy {
    /// Checks the policy is usable: default among the user roles, the rule has both placeholders.
    pub fn validate(&self) -> Result<()> {
        if !self.user_roles.iter().any(|r| r.eq_ignore_ascii_case(&self.default_role)) {
            return Err(ScimError::invalid_value("the default role must be one of the user roles"));
        }
        if let Some(rule) = &self.group_rule {
            let (w, r) = (rule.find("{workspace}"), rule.find("{role}"));
            if !matches!((w, r), (Some(w), Some(r)) if w < r) {
                return Err(ScimError::invalid_value("the group rule needs {workspace} before {role}, e.g. ws-{workspace}-role-{role}"));
            }
            if self.group_roles.is_empty() {
                return Err(ScimError::invalid_value("a group rule needs the roles it may grant"));
            }
        }
        Ok(())
    }

    /// The workspace and role a group name grants under the rule, if any.
    pub fn grant_of(&self, group_name: &str) -> Option<(String, String)> {
        let rule = self.group_rule.as_deref()?;
        let (prefix, rest) = rule.split_once("{workspace}")?;
        let (middle, suffix) = rest.split_once("{role}")?;
        let body = group_name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        let (workspace, role) = body.rsplit_once(middle)?;
        let role = self.group_roles.iter().find(|r| r.eq_ignore_ascii_case(role))?;
        (!workspace.is_empty()).then(|| (workspace.to_string(), role.clone()))
    }
}

impl Principal {
    /// Whether the principal's role holds a permission.
    pub fn may(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

fn hash_secret(secret: &str) -> String {
    sha256_hex(secret)
}

/// Splits `scim_<id>_<secret>` (ids are hex, secrets base64url and may contain `_`).
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("scim_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.len() < 32 || secret.len() > 128 {
        return None;
    }
    Some((id, secret))
}

/// A tenant id: letters, digits, '-' and '_', 1 to 64 characters.
pub fn valid_tenant_id(t: &str) -> bool {
    !t.is_empty() && t.len() <= 64 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Creates a tenant record (and its entry in the tenant registry, in the same transaction).
/// `Ok(false)` when it already exists.
pub async fn create_tenant(layout: &Layout, tenant_id: &str, name: &str) -> Result<bool> {
    if !valid_tenant_id(tenant_id) {
        return Err(ScimError::invalid_value("tenant ids use letters, digits, '-' and '_' (at most 64)"));
    }
    let rec = json!({"id": tenant_id, "name": name, "created": crate::time::now(), "status": "active"});
    let writes = vec![
        Write::Put { item: Item::new(conf_pk(tenant_id), TENANT_SK, rec.to_string(), 1), cond: Cond::Absent },
        Write::Put {
            item: Item::new(REGISTRY_PK, format!("TENANT#{tenant_id}"), json!({"id": tenant_id}).to_string(), 1),
            cond: Cond::Always,
        },
    ];
    match layout.table.write(writes).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Every tenant record.
pub async fn list_tenants(layout: &Layout) -> Result<Vec<Value>> {
    let ids = layout.list_records(REGISTRY_PK, "TENANT#", 10_000).await?;
    let mut out = Vec::new();
    for id in ids.iter().filter_map(|v| v["id"].as_str()) {
        if let Some(t) = get_tenant(layout, id).await? {
            out.push(t);
        }
    }
    Ok(out)
}

/// A tenant record, when it exists.
pub async fn get_tenant(layout: &Layout, tenant_id: &str) -> Result<Option<Value>> {
    Ok(layout.get_record(&conf_pk(tenant_id), TENANT_SK).await?.map(|(v, _)| v))
}

/// A tenant record; 404 when there is none.
pub async fn require_tenant(layout: &Layout, tenant_id: &str) -> Result<Value> {
    get_tenant(layout, tenant_id).await?.ok_or_else(|| ScimError::NotFound(format!("no tenant '{tenant_id}'")))
}

/// A new key: the token (show once) and its id.
pub struct NewKey {
    pub key_id: String,
    pub token: String,
}

/// Creates an API key for a tenant and role; the token is returned once and stored only hashed.
pub async fn create_key(layout: &Layout, tenant_id: &str, role: &str, expires_at: Option<i64>) -> Result<NewKey> {
    let tenant = require_tenant(layout, tenant_id).await?;
    if resolve_role(role, &tenant["custom_roles"]).is_none() {
        return Err(ScimError::invalid_value(format!(
            "unknown role '{role}' (admin, provisioner, reader, or a custom role of the tenant)"
        )));
    }
    let key_id = hex(&random_bytes(8));
    let secret = b64(&random_bytes(32));
    let rec = json!({
        "key_id": key_id, "tenant": tenant_id, "role": role, "hash": hash_secret(&secret),
        "created": crate::time::now(), "expires_at": expires_at, "revoked": false,
    });
    // the key record, and a reference under the tenant so its keys can be listed
    let writes = vec![
        Write::Put { item: Item::new(key_pk(&key_id), KEY_SK, rec.to_string(), 1), cond: Cond::Absent },
        Write::Put {
            item: Item::new(conf_pk(tenant_id), format!("{KEYREF}{key_id}"), json!({"key_id": key_id}).to_string(), 1),
            cond: Cond::Absent,
        },
    ];
    layout.table.write(writes).await?;
    Ok(NewKey { token: format!("scim_{key_id}_{secret}"), key_id })
}

/// A key record without its hash, for listings.
fn public_view(mut rec: Value) -> Value {
    if let Some(o) = rec.as_object_mut() {
        o.remove("hash");
    }
    rec
}

/// The keys of a tenant (id, role, created, expiry, revoked, last use), never their hashes.
pub async fn list_keys(layout: &Layout, tenant_id: &str) -> Result<Vec<Value>> {
    let refs = layout.list_records(&conf_pk(tenant_id), KEYREF, 10_000).await?;
    let mut out = Vec::new();
    for id in refs.iter().filter_map(|v| v["key_id"].as_str()) {
        if let Some((rec, _)) = layout.get_record(&key_pk(id), KEY_SK).await? {
            let mut view = public_view(rec);
            if let Some((stamp, _)) = layout.get_record(&key_use_pk(id), KEY_USE_SK).await? {
                view["last_used_at"] = stamp["last_used_at"].clone();
                view["last_used_unix"] = stamp["last_used_unix"].clone();
            }
            out.push(view);
        }
    }
    Ok(out)
}

/// Revokes a key: it stops working at once locally, and in AWS when the authorizer cache
/// (its TTL) expires. Idempotent.
pub async fn revoke_key(layout: &Layout, key_id: &str) -> Result<Value> {
    for _ in 0..3 {
        let (mut rec, version) =
            layout.get_record(&key_pk(key_id), KEY_SK).await?.ok_or_else(|| ScimError::NotFound(format!("no key '{key_id}'")))?;
        if rec["revoked"] == json!(true) {
            return Ok(public_view(rec));
        }
        rec["revoked"] = json!(true);
        rec["revoked_at"] = json!(crate::time::now());
        match layout.put_record(&key_pk(key_id), KEY_SK, &rec, version + 1, Cond::Version(version)).await {
            Ok(()) => return Ok(public_view(rec)),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ScimError::Unavailable { detail: "the key is being changed concurrently; retry".into(), retry_after: 1 })
}

/// Rotation step one: a new key with the same tenant and role. Both keys work until the old one
/// is revoked (step two), so the IdP can be switched over without downtime.
pub async fn rotate_key(layout: &Layout, key_id: &str) -> Result<NewKey> {
    let (rec, _) = layout.get_record(&key_pk(key_id), KEY_SK).await?.ok_or_else(|| ScimError::NotFound(format!("no key '{key_id}'")))?;
    let tenant = rec["tenant"].as_str().ok_or_else(|| ScimError::Internal("key without tenant".into()))?;
    let role = rec["role"].as_str().unwrap_or("reader");
    create_key(layout, tenant, role, rec["expires_at"].as_i64()).await
}

/// How often a key's last use is stamped, at most (seconds): authentication does not write on
/// every request.
const LAST_USE_EVERY: i64 = 900;

/// Checks a bearer token: format, record, hash (constant time), revocation, expiry; then the
/// tenant: it must be active and, when it has an IP allowlist, `source_ip` must be in it.
/// Key failures are the same 401 to the client (the reason is logged, never the token); tenant
/// refusals are 403. Two round trips: the key record, then its tenant's record together with
/// the key's last-use stamp (so a settings change applies to the next request).
pub async fn authenticate(layout: &Layout, authorization: Option<&str>, source_ip: Option<IpAddr>) -> Result<Principal> {
    authenticate_attempt(layout, authorization, source_ip, None).await
}

/// The request a key is presented with, for the tenant's activity log: a refused key whose
/// tenant is known (a revoked, expired or wrongly completed key of a real key id; a suspended
/// tenant; an address outside the allowlist) is recorded there, so the tenant's admin sees why
/// its identity provider is failing. A key id nobody holds names no tenant: nothing to record.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub user_agent: Option<&'a str>,
}

/// [`authenticate`], recording refusals of a known key in its tenant's activity log.
pub async fn authenticate_attempt(
    layout: &Layout,
    authorization: Option<&str>,
    source_ip: Option<IpAddr>,
    attempt: Option<Attempt<'_>>,
) -> Result<Principal> {
    let mut refused_key: Option<(String, String)> = None;
    let reason = std::sync::OnceLock::new();
    let result = authenticate_key(layout, authorization, source_ip, &mut refused_key, &reason).await;
    if let (Err(e), Some((tenant, key_id)), Some(a)) = (&result, &refused_key, attempt) {
        // the tenant's own log says why (the client is told only that the key is not valid)
        let why = if e.status() == 401 { reason.get().copied().unwrap_or("not valid").to_string() } else { e.client_detail() };
        record_refusal(layout, tenant, key_id, a, e.status(), &why).await;
    }
    result
}

async fn record_refusal(layout: &Layout, tenant: &str, key_id: &str, a: Attempt<'_>, status: u16, why: &str) {
    let detail = format!("key refused: {why}");
    let entry = crate::activity::Entry {
        key_id,
        method: a.method,
        path: a.path,
        status,
        detail: Some(&detail),
        user_agent: a.user_agent,
        ..Default::default()
    };
    crate::activity::record(layout, tenant, entry).await;
}

async fn authenticate_key(
    layout: &Layout,
    authorization: Option<&str>,
    source_ip: Option<IpAddr>,
    refused_key: &mut Option<(String, String)>,
    reason: &std::sync::OnceLock<&'static str>,
) -> Result<Principal> {
    let deny = |why: &'static str| {
        let _ = reason.set(why);
        tracing::info!(reason = why, "authentication failed");
        ScimError::Unauthorized("a valid bearer API key is required".into())
    };
    let header = authorization.ok_or_else(|| deny("no Authorization header"))?;
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or_else(|| deny("not a Bearer credential"))?;
    let (key_id, secret) = parse_token(token).ok_or_else(|| deny("malformed key"))?;
    let (item, prefetched) = read_key_and_tenant(layout, key_id).await?;
    let item = item.ok_or_else(|| deny("unknown key id"))?;
    let key_view = KEY_VIEWS.view(key_id, item.doc.as_deref().ok_or_else(|| deny("unknown key id"))?, KeyView::parse)?;
    let key = &key_view.1;
    // from here a refusal concerns a real key of a known tenant
    *refused_key = key.tenant.clone().map(|t| (t, key_id.to_string()));
    if !bool::from(key.hash.as_bytes().ct_eq(hash_secret(secret).as_bytes())) {
        return Err(deny("wrong secret"));
    }
    if key.revoked {
        return Err(deny("revoked key"));
    }
    let now = crate::time::unix_now();
    if key.expires_at.is_some_and(|t| t <= now) {
        return Err(deny("expired key"));
    }
    let tenant_id = key.tenant.as_deref().ok_or_else(|| deny("key without tenant"))?;
    let (tenant_item, stamp) = match prefetched {
        Some(p) if p.tenant == tenant_id => (p.record, p.stamp),
        _ => {
            let keys = [(conf_pk(tenant_id), TENANT_SK.to_string()), (key_use_pk(key_id), KEY_USE_SK.to_string())];
            let mut got = layout.table.get_many(&keys).await?.into_iter();
            (got.next().flatten(), got.next().flatten())
        }
    };
    let Some(text) = tenant_item.as_ref().and_then(|i| i.doc.as_deref()) else {
        return Err(missing_tenant(layout, tenant_id, deny).await);
    };
    let tenant_view = TENANT_VIEWS.view(tenant_id, text, TenantView::parse)?;
    let tenant = &tenant_view.1;
    if !tenant.active {
        return Err(ScimError::Forbidden("this tenant is suspended".into()));
    }
    if !tenant.ip_allowlist.is_empty() && !source_ip.is_some_and(|ip| ip_allowed(&tenant.ip_allowlist, ip)) {
        tracing::info!(tenant = tenant_id, "source address not in the tenant's allowlist");
        return Err(ScimError::Forbidden("the source address is not in this tenant's IP allowlist".into()));
    }
    *refused_key = None;
    stamp_last_use(layout, key_id, stamp.as_ref(), now).await;
    Ok(Principal {
        tenant_id: tenant_id.to_string(),
        key_id: key_id.to_string(),
        role: key.role.clone(),
        rate_limit: tenant.rate_limit,
        roles_policy: tenant.roles_policy.clone(),
        // a custom role deleted after the key was made leaves the key with no permission at all
        permissions: resolve_role(&key.role, &tenant.custom_roles).unwrap_or_default(),
        deactivation: tenant.deactivation,
        external_id_policy: tenant.external_id_policy,
        unknown_extensions: tenant.unknown_extensions,
        schemas_version: tenant.schemas_version,
    })
}

/// The key record and, in the same round trip, its tenant's record and its last-use stamp
/// when this process has seen the key before (a key never changes tenant): one round trip on
/// the hot path. A key seen for the first time takes a second read for its tenant.
async fn read_key_and_tenant(layout: &Layout, key_id: &str) -> Result<(Option<Item>, Option<Prefetched>)> {
    let known = KEY_VIEWS.peek(key_id).and_then(|v| v.1.tenant.clone());
    let Some(tenant) = known else {
        return Ok((layout.table.get(&key_pk(key_id), KEY_SK).await?, None));
    };
    let keys =
        [(key_pk(key_id), KEY_SK.to_string()), (conf_pk(&tenant), TENANT_SK.to_string()), (key_use_pk(key_id), KEY_USE_SK.to_string())];
    let mut got = layout.table.get_many(&keys).await?.into_iter();
    let key = got.next().flatten();
    Ok((key, Some(Prefetched { tenant, record: got.next().flatten(), stamp: got.next().flatten() })))
}

/// The tenant record and last-use stamp read beside a known key.
struct Prefetched {
    tenant: String,
    record: Option<Item>,
    stamp: Option<Item>,
}

/// A key whose tenant record is missing: the tenant was deleted (401), or the table has not
/// been upgraded to this layout yet (503: the operator must run `scim-admin migrate`; an IdP
/// told "unauthorized" would disable provisioning).
async fn missing_tenant(layout: &Layout, tenant_id: &str, deny: impl Fn(&'static str) -> ScimError) -> ScimError {
    match layout.layout_version().await {
        Ok(Some(v)) if v >= crate::store::layout::LAYOUT_VERSION => deny("the key's tenant does not exist"),
        Ok(_) => {
            tracing::error!(tenant = tenant_id, "the table is at an older layout: run `scim-admin migrate`");
            ScimError::Unavailable { detail: "this service is being upgraded; retry shortly".into(), retry_after: 30 }
        }
        Err(e) => e.into(),
    }
}

/// Stamps a key's last use, at most every [`LAST_USE_EVERY`] seconds, in an item of its own
/// (the authorizer never writes the key record). Best effort: a failed stamp fails nothing.
async fn stamp_last_use(layout: &Layout, key_id: &str, stamp: Option<&Item>, now: i64) {
    // the time is also a number of the item (read on every request without parsing its text)
    let last = stamp.and_then(|i| {
        i.nums
            .get("last_used_unix")
            .copied()
            .or_else(|| i.doc.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()).and_then(|v| v["last_used_unix"].as_i64()))
    });
    if last.is_some_and(|t| now - t <= LAST_USE_EVERY) {
        return;
    }
    let doc = json!({"last_used_unix": now, "last_used_at": crate::time::now()}).to_string();
    let mut item = Item::new(key_use_pk(key_id), KEY_USE_SK, doc, 1);
    item.nums.insert("last_used_unix".into(), now);
    let write = Write::Put { item, cond: Cond::Always };
    if let Err(e) = layout.table.write(vec![write]).await {
        tracing::debug!(error = %e, "last-use stamp skipped");
    }
}

/// Parsed records kept per process, each with the text it came from: every request reads the
/// records (so a revocation or a settings change applies to the next request), but only a
/// record whose text changed is parsed again.
struct Views<T> {
    map: std::sync::OnceLock<std::sync::Mutex<ViewMap<T>>>,
}

/// Record id → (the text a view was parsed from, the view).
type ViewMap<T> = std::collections::HashMap<String, Arc<(String, T)>>;

/// Views kept per kind; past this many the memo starts over (a process serves a few).
const VIEWS_KEPT: usize = 1024;

impl<T> Views<T> {
    const fn new() -> Self {
        Views { map: std::sync::OnceLock::new() }
    }

    /// The last view of a record, whatever its text now.
    fn peek(&self, id: &str) -> Option<Arc<(String, T)>> {
        self.map.get()?.lock().ok()?.get(id).cloned()
    }

    fn view(&self, id: &str, text: &str, parse: fn(&Value) -> T) -> Result<Arc<(String, T)>> {
        let map = self.map.get_or_init(Default::default);
        if let Ok(m) = map.lock()
            && let Some(v) = m.get(id).filter(|v| v.0 == text)
        {
            return Ok(v.clone());
        }
        let rec: Value = serde_json::from_str(text).map_err(|e| StoreError::caused(format!("corrupt record of '{id}'"), e))?;
        let view = Arc::new((text.to_string(), parse(&rec)));
        if let Ok(mut m) = map.lock() {
            if m.len() >= VIEWS_KEPT {
                m.clear();
            }
            m.insert(id.to_string(), view.clone());
        }
        Ok(view)
    }
}

static KEY_VIEWS: Views<KeyView> = Views::new();
static TENANT_VIEWS: Views<TenantView> = Views::new();

/// What authentication reads from a key record.
struct KeyView {
    hash: String,
    revoked: bool,
    expires_at: Option<i64>,
    /// The key's tenant, when it names a valid one.
    tenant: Option<String>,
    role: String,
}

impl KeyView {
    fn parse(rec: &Value) -> KeyView {
        KeyView {
            hash: rec["hash"].as_str().unwrap_or_default().to_string(),
            revoked: rec["revoked"].as_bool().unwrap_or(true),
            expires_at: rec["expires_at"].as_i64(),
            tenant: rec["tenant"].as_str().filter(|t| valid_tenant_id(t)).map(str::to_string),
            role: rec["role"].as_str().unwrap_or("reader").to_string(),
        }
    }
}

/// What authentication reads from a tenant record.
struct TenantView {
    active: bool,
    ip_allowlist: Vec<String>,
    rate_limit: Option<u32>,
    roles_policy: Option<RolesPolicy>,
    custom_roles: Value,
    deactivation: Deactivation,
    external_id_policy: ExternalIdPolicy,
    unknown_extensions: UnknownExtensions,
    schemas_version: u64,
}

impl TenantView {
    fn parse(t: &Value) -> TenantView {
        TenantView {
            active: t["status"].as_str().unwrap_or("active") == "active",
            ip_allowlist: t["ip_allowlist"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            rate_limit: t["rate_limit_per_sec"].as_u64().filter(|n| *n > 0).map(|n| n.min(u32::MAX as u64) as u32),
            roles_policy: serde_json::from_value::<RolesPolicy>(t["roles_policy"].clone()).ok(),
            custom_roles: t["custom_roles"].clone(),
            deactivation: t["deactivation"].as_str().and_then(Deactivation::parse).unwrap_or_default(),
            external_id_policy: t["external_id_policy"].as_str().and_then(ExternalIdPolicy::parse).unwrap_or_default(),
            unknown_extensions: t["unknown_extensions"].as_str().and_then(UnknownExtensions::parse).unwrap_or_default(),
            schemas_version: t["schemas_version"].as_u64().unwrap_or(0),
        }
    }
}

/// Read-modify-write of a tenant record (conditional on its version, retried on a race). Keys
/// read it at authentication, so a change applies to the next request.
async fn modify_tenant(layout: &Layout, tenant_id: &str, change: impl Fn(&mut Value)) -> Result<Value> {
    for _ in 0..3 {
        let (mut rec, version) = layout
            .get_record(&conf_pk(tenant_id), TENANT_SK)
            .await?
            .ok_or_else(|| ScimError::NotFound(format!("no tenant '{tenant_id}'")))?;
        change(&mut rec);
        match layout.put_record(&conf_pk(tenant_id), TENANT_SK, &rec, version + 1, Cond::Version(version)).await {
            Ok(()) => return Ok(rec),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ScimError::Unavailable { detail: "the tenant is being changed concurrently; retry".into(), retry_after: 1 })
}

/// Invalidates every portal link of a tenant made so far (links carry the tenant's link
/// epoch; this moves it on). Returns the new epoch.
pub async fn revoke_portal_links(layout: &Layout, tenant_id: &str) -> Result<u64> {
    let rec = modify_tenant(layout, tenant_id, |rec| {
        rec["portal_epoch"] = json!(rec["portal_epoch"].as_u64().unwrap_or(0) + 1);
    })
    .await?;
    Ok(rec["portal_epoch"].as_u64().unwrap_or(0))
}

/// Sets (or, with `None`, removes) a tenant's role policy.
pub async fn set_roles_policy(layout: &Layout, tenant_id: &str, policy: Option<&RolesPolicy>) -> Result<Value> {
    if let Some(p) = policy {
        p.validate()?;
    }
    modify_tenant(layout, tenant_id, |rec| {
        rec["roles_policy"] = serde_json::to_value(policy).unwrap_or(Value::Null);
    })
    .await
}

/// Creates or replaces a tenant's custom role; `None` deletes it. Built-in names are reserved.
pub async fn set_custom_role(layout: &Layout, tenant_id: &str, name: &str, permissions: Option<&[Permission]>) -> Result<Value> {
    if role_permissions(name).is_some() {
        return Err(ScimError::invalid_value(format!("'{name}' is a built-in role")));
    }
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(ScimError::invalid_value("role names use letters, digits, '-' and '_'"));
    }
    let rec = modify_tenant(layout, tenant_id, |rec| {
        if !rec["custom_roles"].is_object() {
            rec["custom_roles"] = json!({});
        }
        if let Some(roles) = rec["custom_roles"].as_object_mut() {
            match permissions {
                Some(p) => {
                    roles.insert(name.to_string(), json!(p.iter().map(|p| p.as_str()).collect::<Vec<_>>()));
                }
                None => {
                    roles.remove(name);
                }
            }
        }
    })
    .await?;
    Ok(rec["custom_roles"].clone())
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

/// Whether `ip` is inside any of the CIDRs (IPv4-mapped IPv6 addresses count as IPv4).
pub fn ip_allowed(cidrs: &[String], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    cidrs.iter().filter_map(|c| parse_cidr(c)).any(|(net, bits)| match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    })
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
    pub deactivation: Option<Deactivation>,
    pub external_id_policy: Option<ExternalIdPolicy>,
    pub unknown_extensions: Option<UnknownExtensions>,
}

/// Changes a tenant's settings (validated first: nothing is written when one is invalid).
pub async fn update_tenant(layout: &Layout, tenant_id: &str, change: &TenantChange) -> Result<Value> {
    if let Some(list) = &change.ip_allowlist
        && let Some(bad) = list.iter().find(|c| parse_cidr(c).is_none())
    {
        return Err(ScimError::invalid_value(format!("'{bad}' is not a CIDR (e.g. 203.0.113.0/24)")));
    }
    if change.status.as_deref().is_some_and(|s| s != "active" && s != "suspended") {
        return Err(ScimError::invalid_value("status is 'active' or 'suspended'"));
    }
    modify_tenant(layout, tenant_id, |rec| {
        if let Some(s) = &change.status {
            rec["status"] = json!(s);
        }
        if let Some(l) = &change.ip_allowlist {
            rec["ip_allowlist"] = json!(l);
        }
        if let Some(r) = change.rate_limit {
            rec["rate_limit_per_sec"] = if r == 0 { Value::Null } else { json!(r) };
        }
        if let Some(d) = change.deactivation {
            rec["deactivation"] = json!(d.as_str());
        }
        if let Some(p) = change.external_id_policy {
            rec["external_id_policy"] = json!(p.as_str());
        }
        if let Some(p) = change.unknown_extensions {
            rec["unknown_extensions"] = json!(p.as_str());
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedTable;
    use std::sync::Arc;

    #[test]
    fn group_rule_grants_workspace_roles() {
        let p = RolesPolicy {
            default_role: "member".into(),
            user_roles: vec!["member".into(), "admin".into(), "owner".into()],
            group_rule: Some("ws-{workspace}-role-{role}".into()),
            group_roles: vec!["admin".into(), "manager".into(), "member".into()],
        };
        p.validate().unwrap();
        assert_eq!(p.grant_of("ws-acme-role-admin"), Some(("acme".into(), "admin".into())));
        assert_eq!(p.grant_of("ws-my-team-role-Manager"), Some(("my-team".into(), "manager".into())));
        assert_eq!(p.grant_of("ws-acme-role-owner"), None, "not a group role");
        assert_eq!(p.grant_of("Engineering"), None);
        assert_eq!(p.grant_of("ws--role-admin"), None);
        let bad = RolesPolicy { default_role: "root".into(), ..p.clone() };
        assert!(bad.validate().is_err());
    }

    #[tokio::test]
    async fn keys_authenticate_and_are_stored_hashed() {
        let layout = Layout { table: Arc::new(EmbeddedTable::in_memory()) };
        assert!(create_tenant(&layout, "acme", "Acme").await.unwrap());
        assert!(!create_tenant(&layout, "acme", "Acme").await.unwrap());
        let k = create_key(&layout, "acme", "admin", None).await.unwrap();
        let p = authenticate(&layout, Some(&format!("Bearer {}", k.token)), None).await.unwrap();
        assert_eq!(p.tenant_id, "acme");
        let (rec, _) = layout.get_record(&key_pk(&k.key_id), KEY_SK).await.unwrap().unwrap();
        let secret = k.token.rsplit_once('_').map(|(_, s)| s).unwrap_or_default();
        assert!(!rec.to_string().contains(secret), "the secret is never stored");
        let wrong = format!("Bearer scim_{}_{}", k.key_id, "A".repeat(43));
        assert_eq!(authenticate(&layout, Some(&wrong), None).await.unwrap_err().status(), 401);
        assert_eq!(authenticate(&layout, Some("Bearer nope"), None).await.unwrap_err().status(), 401);
        assert_eq!(authenticate(&layout, None, None).await.unwrap_err().status(), 401);
        assert!(create_key(&layout, "acme", "root", None).await.is_err());
        // listing never shows hashes; rotation keeps both keys valid until revocation
        let listed = list_keys(&layout, "acme").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].get("hash").is_none());
        let k2 = rotate_key(&layout, &k.key_id).await.unwrap();
        assert!(authenticate(&layout, Some(&format!("Bearer {}", k.token)), None).await.is_ok());
        assert!(authenticate(&layout, Some(&format!("Bearer {}", k2.token)), None).await.is_ok());
        revoke_key(&layout, &k.key_id).await.unwrap();
        assert_eq!(authenticate(&layout, Some(&format!("Bearer {}", k.token)), None).await.unwrap_err().status(), 401);
        assert!(authenticate(&layout, Some(&format!("Bearer {}", k2.token)), None).await.is_ok());
        let expired = create_key(&layout, "acme", "reader", Some(crate::time::unix_now() - 1)).await.unwrap();
        assert_eq!(authenticate(&layout, Some(&format!("Bearer {}", expired.token)), None).await.unwrap_err().status(), 401);
        assert_eq!(list_tenants(&layout).await.unwrap().len(), 1);
        // custom roles: made of permissions, usable for keys, reserved names refused
        set_custom_role(&layout, "acme", "syncer", Some(&[Permission::ScimRead, Permission::ScimWrite])).await.unwrap();
        assert!(set_custom_role(&layout, "acme", "admin", Some(&[Permission::ScimRead])).await.is_err());
        let sk = create_key(&layout, "acme", "syncer", None).await.unwrap();
        let p = authenticate(&layout, Some(&format!("Bearer {}", sk.token)), None).await.unwrap();
        assert!(p.may(Permission::ScimWrite) && !p.may(Permission::EditRoles));
        set_custom_role(&layout, "acme", "syncer", None).await.unwrap();
        let p = authenticate(&layout, Some(&format!("Bearer {}", sk.token)), None).await.unwrap();
        assert!(!p.may(Permission::ScimRead), "a deleted custom role grants nothing");
        // allowlist and suspension are 403s
        let bearer = format!("Bearer {}", k2.token);
        let allow = |l: &[&str]| TenantChange { ip_allowlist: Some(l.iter().map(|s| s.to_string()).collect()), ..Default::default() };
        update_tenant(&layout, "acme", &allow(&["203.0.113.0/24", "2001:db8::/32"])).await.unwrap();
        let inside: IpAddr = "203.0.113.7".parse().unwrap();
        let outside: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(authenticate(&layout, Some(&bearer), Some(inside)).await.is_ok());
        assert!(authenticate(&layout, Some(&bearer), Some("::ffff:203.0.113.9".parse().unwrap())).await.is_ok());
        assert_eq!(authenticate(&layout, Some(&bearer), Some(outside)).await.unwrap_err().status(), 403);
        assert_eq!(authenticate(&layout, Some(&bearer), None).await.unwrap_err().status(), 403);
        assert!(update_tenant(&layout, "acme", &allow(&["nope"])).await.is_err());
        let suspend = TenantChange {
            status: Some("suspended".into()),
            rate_limit: Some(5),
            deactivation: Some(Deactivation::KeepMemberships),
            ..allow(&[])
        };
        update_tenant(&layout, "acme", &suspend).await.unwrap();
        assert_eq!(authenticate(&layout, Some(&bearer), Some(outside)).await.unwrap_err().status(), 403);
        update_tenant(&layout, "acme", &TenantChange { status: Some("active".into()), ..Default::default() }).await.unwrap();
        let p = authenticate(&layout, Some(&bearer), Some(outside)).await.unwrap();
        assert_eq!((p.rate_limit, p.deactivation), (Some(5), Deactivation::KeepMemberships), "settings are read with the key");
    }
}
