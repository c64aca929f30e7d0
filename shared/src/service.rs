//! SCIM operations over the store: validation, uniqueness, optimistic locking, membership,
//! deprovisioning and list planning. Store-agnostic: the layout decides which items are touched.

use crate::cursor;
use crate::error::{Result, ScimError};
use crate::extensions::TenantSchemas;
use crate::filter::{self, Expr, Lookup, Operand};
use crate::list_query::ListQuery;
use crate::members::{self, MemberOp, Plan};
use crate::patch::{self, PatchOp};
use crate::path::AttrPath;
use crate::projection::Projection;
use crate::resource;
use crate::roles::Permission;
use crate::schema::{ResourceType, URN_LIST, group_type, user_type};
use crate::store::layout::{Claims, Kind, Layout, MemberDelta, Stored, StoredText, WriteConflict};
use crate::tenancy::ExternalIdPolicy;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::BTreeSet;

/// Positions between page checkpoints written while walking a collection.
const CHECKPOINT_STRIDE: u64 = 1000;
/// Items read per store query while walking a collection.
const WALK_BATCH: usize = 1000;
/// Longest userName / displayName / externalId accepted, bytes (they become sort keys).
const MAX_KEY_TEXT: usize = 512;
/// Attempts for a read-modify-write that races another writer (no If-Match given).
const WRITE_ATTEMPTS: usize = 4;
pub use crate::members::MAX_MEMBER_CHANGES;

/// Who and where: the tenant (from the authorizer only) and the base URL for `location`s.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub tenant: &'a str,
    pub base_url: &'a str,
    /// The tenant's role policy (from the authorizer), when it has one.
    pub roles: Option<&'a crate::roles::RolesPolicy>,
    /// The tenant's deactivation policy (from the authorizer).
    pub deactivation: crate::tenancy::Deactivation,
    /// What the caller's key may do (from the authorizer).
    pub permissions: &'a [Permission],
    /// The tenant's externalId policy (from the authorizer).
    pub external_id_policy: crate::tenancy::ExternalIdPolicy,
    /// The tenant's resource types: the built-in ones and its declared extensions.
    pub types: &'a TenantSchemas,
    /// Where extension URNs the tenant does not declare are refused or noted.
    pub undeclared: &'a resource::Undeclared,
}

impl Ctx<'_> {
    /// Whether the caller's key holds a permission.
    pub fn may(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

/// Attributes that only a key holding a permission may change, whatever the request's form:
/// the check compares the document a request would store with the stored one (see
/// [`check_protected`]), so no spelling of a body can get around it.
pub const PROTECTED: &[(Kind, &str, Permission)] = &[(Kind::User, "roles", Permission::EditRoles)];

/// Refuses (403, before anything is written) a create or an update whose resulting document
/// would change a protected attribute the caller may not change. `old` is the stored document
/// (`None` for a create); `new_doc` the document the request produces, before the tenant's
/// role policy. Both sides go through the policy, so what the server itself fills in (a default
/// role) is never counted as the caller's change, and clearing counts as much as setting.
fn check_protected(ctx: Ctx<'_>, kind: Kind, old: Option<&Map<String, Value>>, new_doc: &Map<String, Value>) -> Result<()> {
    for (k, attr, permission) in PROTECTED {
        if *k != kind || ctx.may(*permission) {
            continue;
        }
        let before = effective(ctx, attr, old.and_then(|d| d.get(*attr)));
        let after = effective(ctx, attr, new_doc.get(*attr));
        if !same_values(&before, &after) {
            return Err(ScimError::Forbidden(format!(
                "this request would change '{attr}', and the key's role may not (it needs {})",
                permission.as_str()
            )));
        }
    }
    Ok(())
}

/// RFC 7643 §7 `immutable`: an extension attribute with a value keeps it (it may be set when it
/// has none). 400 `mutability` otherwise, before anything is written.
fn check_immutable(rt: &ResourceType, old: &Map<String, Value>, new: &Map<String, Value>) -> Result<()> {
    for ext in &rt.extensions {
        let value = |doc: &Map<String, Value>, name: &str| doc.get(&*ext.id).and_then(|e| e.get(name)).filter(|v| !v.is_null()).cloned();
        for d in ext.attrs.iter().filter(|d| d.mutability == crate::schema::Mutability::Immutable) {
            if let Some(before) = value(old, &d.name)
                && value(new, &d.name).as_ref() != Some(&before)
            {
                return Err(ScimError::mutability(format!("'{}:{}' is immutable: it keeps the value it was given", ext.id, d.name)));
            }
        }
    }
    Ok(())
}

/// A protected attribute's value as it would be stored: the role policy applies to `roles`.
fn effective(ctx: Ctx<'_>, attr: &str, v: Option<&Value>) -> Value {
    let mut doc = Map::new();
    if let Some(v) = v {
        doc.insert(attr.to_string(), v.clone());
    }
    if attr == "roles" {
        apply_roles_policy(&mut doc, ctx.roles);
    }
    doc.remove(attr).unwrap_or(Value::Null)
}

/// Equal as stored values: absent, null and `[]` are one; multi-valued attributes compare as
/// multisets (element order carries no meaning), objects by members (not their order).
fn same_values(a: &Value, b: &Value) -> bool {
    let items = |v: &Value| -> Vec<Value> {
        match v {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        }
    };
    let (a, mut b) = (items(a), items(b));
    a.len() == b.len()
        && a.iter().all(|x| match b.iter().position(|y| y == x) {
            Some(i) => {
                b.swap_remove(i);
                true
            }
            None => false,
        })
}

/// Applies a tenant's role policy to a user document: `roles` values outside the tenant's user
/// roles fall back to the default role, and a user sent without roles gets the default.
fn apply_roles_policy(doc: &mut Map<String, Value>, policy: Option<&crate::roles::RolesPolicy>) {
    let Some(p) = policy else { return };
    let canonical = |v: &str| p.user_roles.iter().find(|r| r.eq_ignore_ascii_case(v)).cloned().unwrap_or_else(|| p.default_role.clone());
    let mut roles: Vec<Value> = Vec::new();
    for r in doc.get("roles").and_then(Value::as_array).cloned().unwrap_or_default() {
        let mut r = r;
        let value = canonical(r.get("value").and_then(Value::as_str).unwrap_or_default());
        r["value"] = Value::String(value.clone());
        if !roles.iter().any(|x| x["value"] == Value::String(value.clone())) {
            roles.push(r);
        }
    }
    if roles.is_empty() {
        roles.push(json!({"value": p.default_role, "primary": true}));
    }
    doc.insert("roles".into(), Value::Array(roles));
}

/// The access extension of a rendered user: organisation roles from `roles`, workspace roles
/// from groups matching the rule (the strongest per workspace, in the order of the rule's roles).
fn effective_roles(doc: &mut Map<String, Value>, policy: Option<&crate::roles::RolesPolicy>) {
    let Some(p) = policy else { return };
    let mut out: Vec<Value> = Vec::new();
    if doc.get("active") != Some(&Value::Bool(false)) {
        for r in doc.get("roles").and_then(Value::as_array).into_iter().flatten() {
            if let Some(v) = r.get("value").and_then(Value::as_str) {
                out.push(json!({"value": v, "source": "roles"}));
            }
        }
        let mut best: std::collections::BTreeMap<String, (usize, String, String)> = std::collections::BTreeMap::new();
        for g in doc.get("groups").and_then(Value::as_array).into_iter().flatten() {
            let (Some(name), Some(gid)) = (g.get("display").and_then(Value::as_str), g.get("value").and_then(Value::as_str)) else {
                continue;
            };
            if let Some((ws, role)) = p.grant_of(name) {
                let rank = p.group_roles.iter().position(|r| *r == role).unwrap_or(usize::MAX);
                if best.get(&ws).is_none_or(|(r, _, _)| rank < *r) {
                    best.insert(ws, (rank, role, gid.to_string()));
                }
            }
        }
        for (ws, (_, role, gid)) in best {
            out.push(json!({"value": role, "workspace": ws, "source": format!("group:{gid}")}));
        }
    }
    doc.insert(crate::schema::URN_ACCESS.into(), json!({"effectiveRoles": out}));
}

/// The SCIM service over one table.
pub struct Service {
    pub layout: Layout,
    seal: tokio::sync::OnceCell<Vec<u8>>,
    types: TypesCache,
}

/// Tenants' resource types, kept per process: tenant → (types, when read). A request whose
/// tenant has no declarations (version 0) never looks here; one with declarations reads them at
/// most once per [`TYPES_TTL`] or when its principal carries a newer version.
#[derive(Default)]
struct TypesCache(std::sync::Mutex<std::collections::HashMap<String, (std::sync::Arc<TenantSchemas>, std::time::Instant)>>);

/// How long read declarations are trusted without a newer version announced.
const TYPES_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Tenants whose types a process keeps; past this the cache starts over.
const TYPES_KEPT: usize = 512;

/// The weak ETag of a version.
pub fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// The resource type of a kind.
pub fn resource_type(kind: Kind) -> &'static ResourceType {
    match kind {
        Kind::User => user_type(),
        Kind::Group => group_type(),
    }
}

fn check_if_match(if_match: Option<&str>, version: u64) -> Result<()> {
    let Some(h) = if_match else { return Ok(()) };
    let current = etag(version);
    let ok =
        h.split(',').map(str::trim).any(|t| t == "*" || t == current || t.trim_start_matches("W/") == current.trim_start_matches("W/"));
    if ok { Ok(()) } else { Err(ScimError::PreconditionFailed(format!("the resource is at version {current}; If-Match was {h}"))) }
}

fn name_attr(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "userName",
        Kind::Group => "displayName",
    }
}

/// The uniqueness claims of a document: its name folded caselessly (see [`crate::casefold`]),
/// its externalId exactly.
fn claims(ctx: Ctx<'_>, kind: Kind, doc: &Map<String, Value>) -> Result<Claims> {
    let name = doc.get(name_attr(kind)).and_then(Value::as_str).map(crate::casefold::fold);
    let external_id = doc.get("externalId").and_then(Value::as_str).map(str::to_string);
    for (what, v) in [(name_attr(kind), &name), ("externalId", &external_id)] {
        if v.as_ref().is_some_and(|s| s.len() > MAX_KEY_TEXT) {
            return Err(ScimError::invalid_value(format!("'{what}' is longer than {MAX_KEY_TEXT} bytes")));
        }
    }
    Ok(Claims {
        name,
        external_id,
        external_id_unique: ctx.external_id_policy == ExternalIdPolicy::Unique,
        attributes: attribute_claims(ctx.types.of(kind), doc),
        inactive: kind == Kind::User && is_inactive(doc),
    })
}

/// The unique claims of a document's extension attributes declared `uniqueness: server`.
fn attribute_claims(rt: &ResourceType, doc: &Map<String, Value>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for ext in &rt.extensions {
        let Some(Value::Object(values)) = doc.get(&*ext.id) else { continue };
        for def in ext.attrs.iter().filter(|a| a.unique) {
            if let Some(key) = values.get(&*def.name).and_then(|v| def.claim_key(v)) {
                out.push((ext.id.to_string(), def.name.to_string(), key));
            }
        }
    }
    out
}

/// Identity text a document is about to be stored with: userName, displayName and externalId
/// carry no C0 or C1 control character (U+0000–U+001F, U+007F–U+009F). Checked on what a request
/// would store, never on what is already stored (an old document can still be corrected).
fn check_identity_text(doc: &Map<String, Value>) -> Result<()> {
    for attr in ["userName", "displayName", "externalId"] {
        if let Some(text) = doc.get(attr).and_then(Value::as_str)
            && let Some(c) = text.chars().find(|c| c.is_control())
        {
            return Err(ScimError::invalid_value(format!("'{attr}' contains the control character U+{:04X}", u32::from(c))));
        }
    }
    Ok(())
}

fn conflict(kind: Kind, c: WriteConflict, doc: &Map<String, Value>) -> ScimError {
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    match c {
        WriteConflict::Attribute(name) => ScimError::Conflict(format!(
            "the value of '{name}' already belongs to another {} in this tenant (the attribute is declared unique)",
            resource_type(kind).name.to_lowercase()
        )),
        WriteConflict::Name => {
            ScimError::Conflict(format!("{} '{}' is already taken in this tenant", name_attr(kind), text(name_attr(kind))))
        }
        WriteConflict::ExternalId => ScimError::Conflict(format!(
            "externalId '{}' already belongs to another {} in this tenant",
            text("externalId"),
            resource_type(kind).name.to_lowercase()
        )),
        WriteConflict::Version => ScimError::PreconditionFailed("the resource changed while this request ran; read it again".into()),
    }
}

/// `id` first, `meta` last, everything else in the order it has (moved in place, not copied).
fn with_meta(rt: &ResourceType, id: &str, mut doc: Map<String, Value>, created: &str, now: &str, version: u64) -> Map<String, Value> {
    doc.shift_remove("meta");
    doc.shift_insert(0, "id".into(), Value::String(id.to_string()));
    doc.insert("meta".into(), json!({"resourceType": rt.name, "created": created, "lastModified": now, "version": etag(version)}));
    doc
}

/// A group body's member ids; members are stored as items, never in the group document.
fn take_members(doc: &mut Map<String, Value>, body: &Value) -> Result<Vec<String>> {
    doc.remove("members");
    let raw = body.as_object().and_then(|o| crate::names::value(o, "members"));
    members::ids_of(raw.unwrap_or(&Value::Null))
}

fn is_inactive(doc: &Map<String, Value>) -> bool {
    doc.get("active") == Some(&Value::Bool(false))
}

/// Whether writing this user document must remove it from its groups: it is inactive and the
/// tenant's policy removes the memberships of inactive users.
fn deprovisions(ctx: Ctx<'_>, doc: &Map<String, Value>) -> bool {
    is_inactive(doc) && ctx.deactivation == crate::tenancy::Deactivation::RemoveMemberships
}

/// Whether a rendered resource was just written, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A read (GET).
    No,
    Created,
    Changed,
}

/// The outcome of a list request, before rendering.
pub struct Page {
    pub total: Option<u64>,
    pub start_index: Option<u64>,
    pub resources: Vec<Map<String, Value>>,
    pub next_cursor: Option<String>,
}

/// Where a filter looks at group members.
enum MemberUse {
    None,
    /// Only `members[value eq …]` / `members.value eq …`: these ids are checked directly.
    Ids(Vec<String>),
    /// Anything else: the full list is attached.
    All,
}

fn member_use(e: &Expr) -> MemberUse {
    fn is_members(t: &crate::path::Target) -> bool {
        t.ext.is_none() && t.def.name == "members"
    }
    fn walk(e: &Expr, ids: &mut Vec<String>) -> bool {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => walk(a, ids) && walk(b, ids),
            Expr::Not(a) => walk(a, ids),
            Expr::Any { target, inner } if is_members(target) => match inner.as_ref() {
                Expr::Compare { operand: Operand::Element(d), op: filter::CompareOp::Eq, value: Value::String(s) } if d.name == "value" => {
                    ids.push(s.clone());
                    true
                }
                _ => false,
            },
            Expr::Compare { operand: Operand::Root(t), op: filter::CompareOp::Eq, value: Value::String(s) }
                if is_members(t) && t.sub.is_none_or(|s| s.name == "value") =>
            {
                ids.push(s.clone());
                true
            }
            Expr::Compare { operand: Operand::Root(t), .. } | Expr::Present(Operand::Root(t)) if is_members(t) => false,
            Expr::Any { .. } | Expr::Compare { .. } | Expr::Present(_) | Expr::Never => true,
        }
    }
    let mut ids = Vec::new();
    let simple = walk(e, &mut ids);
    match (simple, ids.is_empty()) {
        (false, _) => MemberUse::All,
        (true, true) => MemberUse::None,
        (true, false) => MemberUse::Ids(ids),
    }
}

impl Service {
    /// A service over a layout.
    pub fn new(layout: Layout) -> Service {
        Service { layout, seal: tokio::sync::OnceCell::new(), types: TypesCache::default() }
    }

    /// A tenant's resource types for a request whose principal announces declarations at
    /// `version`: the built-in types for 0 (no read), else the cached ones when at least that
    /// new and fresh, else one read of the declarations.
    pub async fn tenant_types(&self, tenant: &str, version: u64) -> Result<std::sync::Arc<TenantSchemas>> {
        if version == 0 {
            return Ok(TenantSchemas::builtin());
        }
        if let Ok(cache) = self.types.0.lock()
            && let Some((t, at)) = cache.get(tenant)
            && t.version >= version
            && at.elapsed() < TYPES_TTL
        {
            return Ok(t.clone());
        }
        let types = std::sync::Arc::new(match self.layout.schema_declarations(tenant).await? {
            Some((record, v)) => TenantSchemas::build(v, crate::extensions::from_record(&record)),
            None => TenantSchemas::build(0, Vec::new()),
        });
        if let Ok(mut cache) = self.types.0.lock() {
            if cache.len() >= TYPES_KEPT {
                cache.clear();
            }
            cache.insert(tenant.to_string(), (types.clone(), std::time::Instant::now()));
        }
        Ok(types)
    }

    /// The users a member change may add: every id must name a user of this tenant (400 naming
    /// the unknown ones); under the default deactivation policy inactive users are left out (a
    /// deactivated user belongs to no group), without failing the request.
    async fn addable_users(&self, ctx: Ctx<'_>, ids: &[String]) -> Result<Vec<String>> {
        if ids.len() > MAX_MEMBER_CHANGES {
            return Err(ScimError::bad(
                crate::error::ScimType::TooMany,
                format!("at most {MAX_MEMBER_CHANGES} member changes per request"),
            ));
        }
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut addable: BTreeSet<String> = BTreeSet::new();
        for chunk in ids.chunks(100) {
            for s in self.layout.get_many(ctx.tenant, Kind::User, chunk).await? {
                if !deprovisions(ctx, &s.doc) {
                    addable.insert(s.id().to_string());
                }
                found.insert(s.id().to_string());
            }
        }
        let unknown: Vec<&str> = ids.iter().filter(|i| !found.contains(*i)).map(String::as_str).take(20).collect();
        if unknown.is_empty() {
            Ok(ids.iter().filter(|i| addable.contains(*i)).cloned().collect())
        } else {
            Err(ScimError::invalid_value(format!("unknown member ids (no such user in this tenant): {}", unknown.join(", "))))
        }
    }

    /// `POST /Users`, `POST /Groups`. Under the `relink` externalId policy a user whose
    /// externalId exactly one user holds replaces and reactivates that user instead
    /// (`Written::Changed`: the answer is still 201, with the existing id).
    pub async fn create(&self, ctx: Ctx<'_>, kind: Kind, body: &Value) -> Result<(Stored, Written)> {
        let rt = ctx.types.of(kind);
        let mut doc = resource::normalize(rt, body, ctx.undeclared)?;
        if let Some(holder) = self.relink_target(ctx, kind, &doc).await? {
            let mut reactivated = body.clone();
            if let Some(o) = reactivated.as_object_mut()
                && !o.keys().any(|k| k.eq_ignore_ascii_case("active"))
            {
                o.insert("active".into(), Value::Bool(true));
            }
            return Ok((self.replace(ctx, kind, &holder, &reactivated, None).await?, Written::Changed));
        }
        let mut delta = MemberDelta::default();
        if kind == Kind::Group {
            delta.add = self.addable_users(ctx, &take_members(&mut doc, body)?).await?;
        }
        check_protected(ctx, kind, None, &doc)?;
        check_identity_text(&doc)?;
        if kind == Kind::User {
            apply_roles_policy(&mut doc, ctx.roles);
        }
        let claims = claims(ctx, kind, &doc)?;
        self.check_external_id(ctx, kind, None, None, &claims).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = crate::time::now();
        let full = with_meta(rt, &id, doc, &now, &now, 1);
        match self.layout.create(ctx.tenant, kind, &full, &claims, &delta).await? {
            Ok(()) => Ok((Stored { doc: full, version: 1 }, Written::Created)),
            Err(c) => Err(conflict(kind, c, &full)),
        }
    }

    /// The user a create relinks under the `relink` policy: the one user holding the new
    /// document's externalId. Several holders are a 409 (which to relink is not ours to guess).
    async fn relink_target(&self, ctx: Ctx<'_>, kind: Kind, doc: &Map<String, Value>) -> Result<Option<String>> {
        let Some(ext) = doc.get("externalId").and_then(Value::as_str).filter(|_| kind == Kind::User) else { return Ok(None) };
        if ctx.external_id_policy != ExternalIdPolicy::Relink {
            return Ok(None);
        }
        let holders = self.layout.external_id_holders(ctx.tenant, kind, ext).await?;
        match holders.len() {
            0 => Ok(None),
            1 => Ok(holders.into_iter().next()),
            n => Err(ScimError::Conflict(format!(
                "externalId '{ext}' is held by {n} users; the tenant relinks a create to an existing user only when exactly one holds it"
            ))),
        }
    }

    /// Under the `unique` externalId policy, a new externalId may not be held by another
    /// resource (the index answers who holds it; the claim written with the change serialises
    /// two writers racing for the same one).
    async fn check_external_id(&self, ctx: Ctx<'_>, kind: Kind, id: Option<&str>, old: Option<&Claims>, new: &Claims) -> Result<()> {
        let Some(ext) = new.external_id.as_deref().filter(|_| new.external_id_unique) else { return Ok(()) };
        if old.is_some_and(|o| o.external_id.as_deref() == Some(ext)) {
            return Ok(());
        }
        let holders = self.layout.external_id_holders(ctx.tenant, kind, ext).await?;
        if holders.iter().any(|h| Some(h.as_str()) != id) {
            return Err(ScimError::Conflict(format!(
                "externalId '{ext}' already belongs to another {} in this tenant (its externalId policy is 'unique')",
                resource_type(kind).name.to_lowercase()
            )));
        }
        Ok(())
    }

    /// `GET /{Users|Groups}/{id}`: the stored text (see `read`).
    pub async fn get_text(&self, ctx: Ctx<'_>, kind: Kind, id: &str) -> Result<StoredText> {
        self.layout
            .get_text(ctx.tenant, kind, id)
            .await?
            .ok_or_else(|| ScimError::NotFound(format!("no {} '{id}'", resource_type(kind).name.to_lowercase())))
    }

    /// A resource's stored document.
    async fn get(&self, ctx: Ctx<'_>, kind: Kind, id: &str) -> Result<Stored> {
        Ok(self.get_text(ctx, kind, id).await?.parse()?)
    }

    /// `PUT`: replace; read-only attributes in the body are ignored. For groups the body's
    /// `members` (or none) becomes the member set.
    pub async fn replace(&self, ctx: Ctx<'_>, kind: Kind, id: &str, body: &Value, if_match: Option<&str>) -> Result<Stored> {
        let rt = ctx.types.of(kind);
        let mut new_doc = resource::normalize(rt, body, ctx.undeclared)?;
        let mut ops = Vec::new();
        if kind == Kind::Group {
            ops.push(MemberOp::Replace(take_members(&mut new_doc, body)?));
        }
        self.rewrite(ctx, kind, id, if_match, &ops, |_| Ok(new_doc.clone())).await
    }

    /// `PATCH`.
    pub async fn patch(&self, ctx: Ctx<'_>, kind: Kind, id: &str, body: &Value, if_match: Option<&str>) -> Result<Stored> {
        let rt = ctx.types.of(kind);
        let op = PatchOp::parse(body)?;
        let (member_ops, rest) = if kind == Kind::Group { members::split(&op)? } else { (Vec::new(), op) };
        self.rewrite(ctx, kind, id, if_match, &member_ops, |old| {
            if rest.operations.is_empty() { Ok(old.doc.clone()) } else { patch::apply(rt, &old.doc, &rest, ctx.undeclared) }
        })
        .await
    }

    /// The member changes a list of member operations makes, as a delta on the stored members.
    async fn member_delta(&self, ctx: Ctx<'_>, gid: &str, ops: &[MemberOp]) -> Result<MemberDelta> {
        if ops.is_empty() {
            return Ok(MemberDelta::default());
        }
        // refused before any read: a request naming more ids than it may change costs nothing
        let named: usize =
            ops.iter().map(|o| if let MemberOp::Add(v) | MemberOp::Remove(v) | MemberOp::Replace(v) = o { v.len() } else { 0 }).sum();
        if named > MAX_MEMBER_CHANGES {
            return Err(ScimError::bad(
                crate::error::ScimType::TooMany,
                format!("at most {MAX_MEMBER_CHANGES} member changes per request"),
            ));
        }
        let needs_all = Plan::needs_current(ops) || ops.iter().any(|o| matches!(o, MemberOp::Replace(_) | MemberOp::RemoveAll));
        let current: Option<BTreeSet<String>> =
            if needs_all { Some(self.layout.members(ctx.tenant, gid).await?.into_iter().collect()) } else { None };
        let rt = group_type();
        let matches = |f: &filter::Filter, uid: &str| {
            let target = crate::path::Target { ext: None, def: rt.schema.attr("members").unwrap_or(&rt.schema.attrs[0]), sub: None };
            let mut el = Map::new();
            el.insert("value".into(), Value::String(uid.to_string()));
            filter::compile_element(f, rt, target).is_ok_and(|e| e.matches_element(&Map::new(), &el))
        };
        let mut delta = match Plan::fold(ops, current.as_ref(), matches) {
            Plan::Full(set) => {
                let cur = current.unwrap_or_default();
                MemberDelta { add: set.difference(&cur).cloned().collect(), remove: cur.difference(&set).cloned().collect() }
            }
            Plan::Delta { add, remove } => {
                // re-adding a member or removing an absent one writes nothing (IdPs retry)
                let asked: Vec<String> = add.iter().chain(remove.iter()).cloned().collect();
                let present: BTreeSet<String> = self.layout.are_members(ctx.tenant, gid, &asked).await?.into_iter().collect();
                MemberDelta {
                    add: add.into_iter().filter(|u| !present.contains(u)).collect(),
                    remove: remove.into_iter().filter(|u| present.contains(u)).collect(),
                }
            }
        };
        delta.add.sort();
        delta.remove.sort();
        delta.add = self.addable_users(ctx, &delta.add).await?;
        if delta.add.len() + delta.remove.len() > MAX_MEMBER_CHANGES {
            return Err(ScimError::bad(
                crate::error::ScimType::TooMany,
                format!("at most {MAX_MEMBER_CHANGES} member changes per request"),
            ));
        }
        Ok(delta)
    }

    /// Read, change, write conditionally on the version read; retried when another writer won
    /// the race and the client gave no If-Match. An unchanged result writes nothing.
    async fn rewrite<F>(
        &self,
        ctx: Ctx<'_>,
        kind: Kind,
        id: &str,
        if_match: Option<&str>,
        member_ops: &[MemberOp],
        change: F,
    ) -> Result<Stored>
    where
        F: Fn(&Stored) -> Result<Map<String, Value>>,
    {
        let rt = ctx.types.of(kind);
        for _ in 0..WRITE_ATTEMPTS {
            let old = self.get(ctx, kind, id).await?;
            check_if_match(if_match, old.version)?;
            let mut new_doc = change(&old)?;
            // what the tenant's declarations hide is kept, not dropped by a write that cannot see it
            ctx.types.carry_hidden(kind, &old.doc, &mut new_doc);
            check_protected(ctx, kind, Some(&old.doc), &new_doc)?;
            check_immutable(ctx.types.of(kind), &old.doc, &new_doc)?;
            check_identity_text(&new_doc)?;
            if kind == Kind::User {
                apply_roles_policy(&mut new_doc, ctx.roles);
            }
            let delta = self.member_delta(ctx, id, member_ops).await?;
            let created = old.doc.get("meta").and_then(|m| m.get("created")).and_then(Value::as_str).unwrap_or_default().to_string();
            let candidate = with_meta(rt, id, new_doc, &created, &crate::time::now(), old.version + 1);
            if crate::diff::same_attributes(&old.doc, &candidate) {
                if !delta.is_empty() {
                    match self.layout.change_members(ctx.tenant, id, &delta).await? {
                        Ok(()) => {}
                        Err(_) => return Err(ScimError::NotFound(format!("no group '{id}'"))),
                    }
                }
                self.deprovision_if_inactive(ctx, kind, &old).await?;
                return Ok(old);
            }
            let (old_claims, new_claims) = (claims(ctx, kind, &old.doc)?, claims(ctx, kind, &candidate)?);
            self.check_external_id(ctx, kind, Some(id), Some(&old_claims), &new_claims).await?;
            let outcome = if kind == Kind::User && deprovisions(ctx, &candidate) {
                // deactivation and leaving the groups in one transaction when they fit
                let groups = self.layout.groups_of(ctx.tenant, id).await?;
                self.layout.update_leaving_groups(ctx.tenant, &old, &candidate, (&old_claims, &new_claims), &groups).await?
            } else {
                self.layout.update(ctx.tenant, kind, &old, &candidate, (&old_claims, &new_claims), &delta).await?.map(|()| true)
            };
            match outcome {
                Ok(complete) => {
                    let stored = Stored { doc: candidate, version: old.version + 1 };
                    if !complete {
                        self.deprovision_if_inactive(ctx, kind, &stored).await?;
                    }
                    return Ok(stored);
                }
                Err(WriteConflict::Version) if if_match.is_none() => continue,
                Err(WriteConflict::Version) => {
                    return Err(ScimError::PreconditionFailed("the resource changed since the If-Match version".into()));
                }
                Err(c) => return Err(conflict(kind, c, &candidate)),
            }
        }
        Err(ScimError::Unavailable { detail: "the resource is being changed concurrently; retry".into(), retry_after: 1 })
    }

    /// A deactivated user loses every group membership (unless the tenant keeps them). Repeated
    /// on every write to an inactive user, so an interrupted sweep completes on the IdP's next
    /// request.
    async fn deprovision_if_inactive(&self, ctx: Ctx<'_>, kind: Kind, s: &Stored) -> Result<()> {
        if kind == Kind::User && deprovisions(ctx, &s.doc) {
            let n = self.layout.remove_from_all_groups(ctx.tenant, s.id()).await?;
            if n > 0 {
                tracing::info!(memberships = n, "deprovisioned a deactivated user from its groups");
            }
        }
        Ok(())
    }

    /// `DELETE`. Memberships go first, so an interrupted delete is finished by the IdP's retry.
    pub async fn delete(&self, ctx: Ctx<'_>, kind: Kind, id: &str, if_match: Option<&str>) -> Result<()> {
        for _ in 0..WRITE_ATTEMPTS {
            let old = self.get(ctx, kind, id).await?;
            check_if_match(if_match, old.version)?;
            match kind {
                Kind::User => self.layout.remove_from_all_groups(ctx.tenant, id).await?,
                Kind::Group => self.layout.remove_all_members(ctx.tenant, id).await?,
            };
            let claims = claims(ctx, kind, &old.doc)?;
            match self.layout.delete(ctx.tenant, kind, &old, &claims).await? {
                Ok(()) => return Ok(()),
                Err(_) if if_match.is_none() => continue,
                Err(_) => return Err(ScimError::PreconditionFailed("the resource changed since the If-Match version".into())),
            }
        }
        Err(ScimError::Unavailable { detail: "the resource is being changed concurrently; retry".into(), retry_after: 1 })
    }

    /// Adds what is stored elsewhere and the projection returns (see `expansion`).
    pub async fn expand(
        &self,
        ctx: Ctx<'_>,
        kind: Kind,
        doc: &mut Map<String, Value>,
        projection: &Projection<'_>,
        in_list: bool,
    ) -> Result<()> {
        let id = doc.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some((name, value)) = self.expansion(ctx, kind, &id, is_inactive(doc), projection, in_list).await? {
            doc.insert(name.into(), value);
        }
        Ok(())
    }

    /// What is stored elsewhere and the projection returns: a group's `members`, a user's
    /// `groups` (`None`: not asked for, or none). `in_list` skips a user's groups unless asked
    /// for by name (one index query per user would make list pages O(count) queries).
    async fn expansion(
        &self,
        ctx: Ctx<'_>,
        kind: Kind,
        id: &str,
        inactive: bool,
        projection: &Projection<'_>,
        in_list: bool,
    ) -> Result<Option<(&'static str, Value)>> {
        let reference = |kind: &str, id: &str| format!("{}/{kind}/{id}", ctx.base_url);
        let list: Vec<Value> = match kind {
            Kind::Group if projection.returns(None, "members") => {
                let ids = self.layout.members(ctx.tenant, id).await?;
                ids.iter().map(|u| json!({"value": u, "$ref": reference("Users", u), "type": "User"})).collect()
            }
            // a user the tenant's policy deprovisions belongs to no group (its memberships were
            // removed with the deactivation): nothing to read
            Kind::User
                if projection.returns(None, "groups")
                    && (!in_list || projection.names(None, "groups"))
                    && !(inactive && ctx.deactivation == crate::tenancy::Deactivation::RemoveMemberships) =>
            {
                let gids = self.layout.groups_of(ctx.tenant, id).await?;
                let groups = if gids.is_empty() { Vec::new() } else { self.layout.get_many(ctx.tenant, Kind::Group, &gids).await? };
                groups
                    .iter()
                    .map(|g| json!({"value": g.id(), "$ref": reference("Groups", g.id()), "display": g.doc.get("displayName"), "type": "direct"}))
                    .collect()
            }
            _ => Vec::new(),
        };
        let name = if kind == Kind::Group { "members" } else { "groups" };
        Ok((!list.is_empty()).then(|| (name, Value::Array(list))))
    }

    /// `GET /{Users|Groups}/{id}` rendered for the wire. With the default projection, on a
    /// type with nothing hidden and nothing computed, the body is written from the stored text
    /// (`resource::render_members`: nothing is parsed but `meta`); otherwise through `render`.
    pub async fn read(&self, ctx: Ctx<'_>, kind: Kind, s: &StoredText, projection: &Projection<'_>) -> Result<Vec<u8>> {
        let rt = ctx.types.of(kind);
        let computed = kind == Kind::User && ctx.roles.is_some(); // effectiveRoles
        if projection.keeps_stored_members(rt) && !rt.hides_values && !computed {
            let doc = resource::StoredMembers::parse(&s.text).map_err(|e| s.corrupt(e))?;
            let id = doc.id().unwrap_or_default();
            let extra = self.expansion(ctx, kind, &id, doc.is_inactive(), projection, false).await?;
            let body = resource::render_members(rt, &doc, ctx.base_url, extra.as_ref().map(|(n, v)| (*n, v)));
            if let Some(body) = body.map_err(|e| s.corrupt(e))? {
                return Ok(body);
            }
        }
        let doc = self.render(ctx, kind, s.parse()?, projection, Written::No).await?;
        Ok(crate::json_text(&doc).into_bytes())
    }

    /// Renders one resource for the wire with its projection. A just-created user belongs to
    /// no group yet, so that read is skipped. After a committed write (`written`), a failed read
    /// of members or groups leaves them out of the response instead of reporting a failure for
    /// a change that happened (the client would retry a create into a 409).
    pub async fn render(
        &self,
        ctx: Ctx<'_>,
        kind: Kind,
        s: Stored,
        projection: &Projection<'_>,
        written: Written,
    ) -> Result<Map<String, Value>> {
        let rt = ctx.types.of(kind);
        let mut doc = s.doc;
        // `expand` inserts only after its reads succeed, so a failed one leaves `doc` untouched
        if !(written == Written::Created && kind == Kind::User)
            && let Err(e) = self.expand(ctx, kind, &mut doc, projection, false).await
        {
            if written == Written::No {
                return Err(e);
            }
            tracing::warn!(error = %e, "change committed; its response leaves out members/groups");
        }
        if kind == Kind::User && projection.returns(Some(crate::schema::URN_ACCESS), "effectiveRoles") {
            effective_roles(&mut doc, ctx.roles);
        }
        Ok(projection.apply(rt, resource::render(rt, doc, ctx.base_url)))
    }

    /// `GET /Users|/Groups` and `.search`: a ListResponse, projected.
    pub async fn list_response(&self, ctx: Ctx<'_>, kind: Kind, q: &ListQuery) -> Result<Value> {
        let rt = ctx.types.of(kind);
        let projection = Projection::new(rt, q.attributes.as_deref(), q.excluded_attributes.as_deref());
        let page = self.list(ctx, kind, rt, q).await?;
        let mut resources = Vec::with_capacity(page.resources.len());
        let wants_access = kind == Kind::User && ctx.roles.is_some() && projection.names(Some(crate::schema::URN_ACCESS), "effectiveRoles");
        for mut d in page.resources {
            d.remove("members"); // attached for filtering only
            self.expand(ctx, kind, &mut d, &projection, true).await?;
            if wants_access {
                // effective roles need the user's groups, even when not returned
                let mut with_groups = d.clone();
                let all = Projection::default();
                self.expand(ctx, kind, &mut with_groups, &all, false).await?;
                effective_roles(&mut with_groups, ctx.roles);
                if let Some(a) = with_groups.remove(crate::schema::URN_ACCESS) {
                    d.insert(crate::schema::URN_ACCESS.into(), a);
                }
            }
            resources.push(Value::Object(projection.apply(rt, resource::render(rt, d, ctx.base_url))));
        }
        let mut out = Map::new();
        out.insert("schemas".into(), json!([URN_LIST]));
        if let Some(t) = page.total {
            out.insert("totalResults".into(), json!(t));
        }
        out.insert("itemsPerPage".into(), json!(resources.len()));
        if let Some(s) = page.start_index {
            out.insert("startIndex".into(), json!(s));
        }
        if let Some(c) = page.next_cursor {
            out.insert("nextCursor".into(), json!(c));
        }
        out.insert("Resources".into(), Value::Array(resources));
        Ok(Value::Object(out))
    }

    async fn list(&self, ctx: Ctx<'_>, kind: Kind, rt: &ResourceType, q: &ListQuery) -> Result<Page> {
        let expr = q.filter.as_deref().map(|f| filter::compile_str(f, rt)).transpose()?;
        let sort = match &q.sort_by {
            Some(s) => Some(
                AttrPath::parse(s)
                    .ok()
                    .and_then(|p| p.resolve(rt))
                    .ok_or_else(|| ScimError::invalid_value(format!("cannot sort by '{s}': no such attribute")))?,
            ),
            None => None,
        };
        let shape = self.shape(q);
        // Cheap path: the whole collection in id order, counted by the counter item.
        if expr.is_none() && sort.is_none() {
            return match &q.cursor {
                Some(c) => self.cursor_page(ctx, kind, c, q.count, &shape).await,
                None => self.index_page(ctx, kind, q.start_index, q.count).await,
            };
        }
        // Key-lookup path for indexed equality filters; otherwise walk the collection.
        let mut matches = match expr.as_ref().and_then(Expr::lookups) {
            Some(lookups) => self.lookup(ctx, kind, &lookups).await?,
            None => self.walk(ctx, kind).await?,
        };
        if let Some(e) = &expr {
            if kind == Kind::Group {
                self.attach_members_for_filter(ctx, e, &mut matches).await?;
            }
            matches.retain(|s| e.matches(&s.doc));
        }
        if let Some(t) = &sort {
            let mut keyed: Vec<(Option<Value>, Stored)> = matches.into_iter().map(|s| (filter::sort_key(&s.doc, t), s)).collect();
            keyed.sort_by(|a, b| filter::cmp_sort_keys(&a.0, &b.0));
            if q.descending {
                keyed.reverse();
            }
            matches = keyed.into_iter().map(|(_, s)| s).collect();
        }
        let total = matches.len() as u64;
        let offset = match &q.cursor {
            Some(c) if !c.is_empty() => self.open_cursor(ctx, c, &shape).await?.1.unwrap_or(0),
            _ => q.start_index.saturating_sub(1),
        };
        let end = (offset + q.count).min(total);
        let resources: Vec<Map<String, Value>> =
            matches.into_iter().skip(offset as usize).take((end.saturating_sub(offset)) as usize).map(|s| s.doc).collect();
        let next_cursor = match &q.cursor {
            Some(_) if end < total => Some(self.seal_cursor(ctx, None, Some(end), &shape).await?),
            _ => None,
        };
        Ok(Page { total: Some(total), start_index: q.cursor.is_none().then_some(q.start_index), resources, next_cursor })
    }

    /// Puts the members a group filter looks at into the candidates' documents: only the asked
    /// ids for `members[value eq "x"]` (one batched read per group), the full list otherwise.
    async fn attach_members_for_filter(&self, ctx: Ctx<'_>, e: &Expr<'_>, groups: &mut [Stored]) -> Result<()> {
        let ids = match member_use(e) {
            MemberUse::None => return Ok(()),
            MemberUse::Ids(ids) => Some(ids),
            MemberUse::All => None,
        };
        for g in groups.iter_mut() {
            let gid = g.id().to_string();
            let present = match &ids {
                Some(ids) => self.layout.are_members(ctx.tenant, &gid, ids).await?,
                None => self.layout.members(ctx.tenant, &gid).await?,
            };
            let list: Vec<Value> = present.iter().map(|u| json!({"value": u, "type": "User"})).collect();
            g.doc.insert("members".into(), Value::Array(list));
        }
        Ok(())
    }

    /// A fingerprint of what a cursor was made for: a cursor only continues the same query.
    fn shape(&self, q: &ListQuery) -> String {
        use sha2::Digest;
        let text = format!("{:?}|{:?}|{}", q.filter, q.sort_by, q.descending);
        crate::crypto::b64(&Sha256::digest(text.as_bytes())[..9])
    }

    async fn lookup(&self, ctx: Ctx<'_>, kind: Kind, lookups: &[Lookup]) -> Result<Vec<Stored>> {
        let mut ids: Vec<String> = Vec::new();
        for l in lookups {
            let id = match l {
                Lookup::Id(id) => Some(id.clone()),
                Lookup::Name(n) => self.layout.claimed_by(ctx.tenant, kind, Some(&crate::casefold::fold(n)), None).await?,
                Lookup::Unique { ext, attr, key } => self.layout.attribute_holder(ctx.tenant, kind, ext, attr, key).await?,
                Lookup::ExternalId(e) => {
                    for id in self.layout.external_id_holders(ctx.tenant, kind, e).await? {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                    None
                }
            };
            if let Some(id) = id
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        match ids.len() {
            0 => Ok(Vec::new()),
            1 => Ok(self.layout.get(ctx.tenant, kind, &ids[0]).await?.into_iter().collect()),
            _ => Ok(self.layout.get_many(ctx.tenant, kind, &ids).await?),
        }
    }

    /// Every resource of the collection, in id order (non-indexed filters and sorting).
    async fn walk(&self, ctx: Ctx<'_>, kind: Kind) -> Result<Vec<Stored>> {
        let mut out: Vec<Stored> = Vec::new();
        loop {
            let after = out.last().map(|s| s.id().to_string());
            let batch = self.layout.page(ctx.tenant, kind, after.as_deref(), WALK_BATCH).await?;
            let n = batch.len();
            out.extend(batch);
            if n < WALK_BATCH {
                return Ok(out);
            }
        }
    }

    /// startIndex/count over the whole collection: O(count) reads from the nearest checkpoint.
    async fn index_page(&self, ctx: Ctx<'_>, kind: Kind, start_index: u64, count: u64) -> Result<Page> {
        let skip_to = start_index - 1;
        // the counters, and (past the first page) the checkpoint the previous page left exactly
        // here, in one read; only a jump to an unvisited position looks for the nearest one
        let (counts, exact) = match skip_to {
            0 => (self.layout.counts(ctx.tenant, kind).await?, None),
            p => self.layout.counts_and_checkpoint(ctx.tenant, kind, p).await?,
        };
        let mut page = Page { total: Some(counts.total), start_index: Some(start_index), resources: Vec::new(), next_cursor: None };
        if count == 0 || skip_to >= counts.total {
            return Ok(page);
        }
        let nearest = match (skip_to, exact) {
            (0, _) => None,
            (_, Some(c)) => Some(c),
            (p, None) => self.layout.checkpoint(ctx.tenant, kind, p, counts.deletes).await?,
        };
        let (mut position, mut after) = match nearest {
            Some((pos, id)) => (pos, Some(id)),
            None => (0, None),
        };
        // walk forward to the page start (keys only), leaving checkpoints behind on long walks
        // and one at the page start, so the same deep page costs O(count) next time
        while position < skip_to {
            let step = (skip_to - position).min(CHECKPOINT_STRIDE);
            let batch = self.layout.page_ids(ctx.tenant, kind, after.as_deref(), step as usize).await?;
            let Some(last) = batch.last() else {
                return Ok(page);
            };
            position += batch.len() as u64;
            after = Some(last.clone());
            if (batch.len() as u64) < step {
                return Ok(page);
            }
            if position % CHECKPOINT_STRIDE == 0 || position == skip_to {
                self.save_checkpoint(ctx, kind, position, after.as_deref(), counts.deletes).await;
            }
        }
        let items = self.layout.page(ctx.tenant, kind, after.as_deref(), count as usize).await?;
        let end = skip_to + items.len() as u64;
        if let Some(last) = items.last()
            && end < counts.total
        {
            self.save_checkpoint(ctx, kind, end, Some(last.id()), counts.deletes).await;
        }
        page.resources = items.into_iter().map(|s| s.doc).collect();
        Ok(page)
    }

    /// A checkpoint is an optimisation: failing to write one never fails the request.
    async fn save_checkpoint(&self, ctx: Ctx<'_>, kind: Kind, position: u64, after: Option<&str>, deletes: u64) {
        if let Some(a) = after
            && let Err(e) = self.layout.save_checkpoint(ctx.tenant, kind, position, a, deletes).await
        {
            tracing::warn!(error = %e, "could not save a page checkpoint");
        }
    }

    /// RFC 9865 cursor page over the whole collection: one query from the cursor's position.
    async fn cursor_page(&self, ctx: Ctx<'_>, kind: Kind, cursor: &str, count: u64, shape: &str) -> Result<Page> {
        let after = if cursor.is_empty() { None } else { self.open_cursor(ctx, cursor, shape).await?.0 };
        let counts = self.layout.counts(ctx.tenant, kind).await?;
        let mut items = self.layout.page(ctx.tenant, kind, after.as_deref(), count as usize + 1).await?;
        let more = items.len() as u64 > count;
        items.truncate(count as usize);
        let next_cursor = match items.last() {
            Some(last) if more => Some(self.seal_cursor(ctx, Some(last.id()), None, shape).await?),
            _ => None,
        };
        Ok(Page { total: Some(counts.total), start_index: None, resources: items.into_iter().map(|s| s.doc).collect(), next_cursor })
    }

    async fn seal_key(&self) -> Result<&[u8]> {
        let k = self
            .seal
            .get_or_try_init(|| async {
                self.layout.seal_key().await?.ok_or_else(|| {
                    tracing::error!("the table has no cursor seal: run `scim-admin migrate` (or any scim-admin command) once");
                    ScimError::Unavailable { detail: "cursor pagination is not set up on this deployment yet".into(), retry_after: 60 }
                })
            })
            .await?;
        Ok(k.as_slice())
    }

    /// Seals a cursor (see [`crate::cursor`]) under the deployment's seal key.
    async fn seal_cursor(&self, ctx: Ctx<'_>, after: Option<&str>, offset: Option<u64>, shape: &str) -> Result<String> {
        let at = cursor::Position { after: after.map(str::to_string), offset };
        cursor::seal(self.seal_key().await?, ctx.tenant, shape, at, crate::time::unix_now())
    }

    async fn open_cursor(&self, ctx: Ctx<'_>, c: &str, shape: &str) -> Result<(Option<String>, Option<u64>)> {
        let at = cursor::open(self.seal_key().await?, c, ctx.tenant, shape, crate::time::unix_now())?;
        Ok((at.after, at.offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    /// README: a tenant without declarations pays no read for them; one with declarations reads
    /// them once per warm process until a newer version is announced.
    #[tokio::test]
    async fn declarations_are_read_only_when_announced_and_then_kept() {
        use crate::store::metered::Metered;
        let metered = std::sync::Arc::new(Metered::new(std::sync::Arc::new(crate::store::embedded::EmbeddedTable::in_memory())));
        let svc = Service::new(Layout { table: metered.clone() });
        svc.tenant_types("t", 0).await.unwrap();
        assert_eq!(metered.counts().total(), 0, "version 0: the built-in types, no read");
        crate::tenancy::create_tenant(&svc.layout, "t", "T").await.unwrap();
        let record = crate::extensions::record(&[]);
        svc.layout.commit_schema_declarations("t", &record, None, &json!({"id": "t"}), 1).await.unwrap().unwrap();
        let before = metered.counts().total();
        svc.tenant_types("t", 1).await.unwrap();
        assert_eq!(metered.counts().total(), before + 1, "announced: one read");
        svc.tenant_types("t", 1).await.unwrap();
        assert_eq!(metered.counts().total(), before + 1, "then kept");
    }

    #[test]
    fn meta_goes_last_and_id_first_in_place() {
        let doc = map(json!({"userName": "a", "meta": {"created": "x"}, "id": "old", "name": {"givenName": "A"}, "title": "t"}));
        let out = with_meta(crate::schema::user_type(), "new", doc, "c", "n", 3);
        assert_eq!(out.keys().collect::<Vec<_>>(), ["id", "userName", "name", "title", "meta"]);
        assert_eq!((&out["id"], &out["meta"]["version"]), (&json!("new"), &json!("W/\"3\"")));
    }
}
