//! SCIM operations over the store: validation, uniqueness, optimistic locking, membership,
//! deprovisioning and list planning. Store-agnostic: the layout decides which items are touched.
//!
//! Here: creating, replacing, patching and deleting users and groups. Beside it: `protect`
//! (what an update may not change, the role policy), `membership` (member changes),
//! `reading` (rendering for the wire), `listing` (lists, searches, cursors).

mod configuration;
mod listing;
mod membership;
mod protect;
mod reading;

pub use configuration::{Configured, SettingsOp};
pub use listing::Page;
pub use protect::PROTECTED;

use crate::error::{Result, ScimError};
use crate::kind::Kind;
use crate::members::{self, MemberOp};
use crate::patch::{self, PatchOp};
use crate::resource;
use crate::roles::Permission;
use crate::schema::{ResourceType, group_type};
use crate::store::layout::{Claims, Layout, MemberDelta, Stored, StoredText, WriteConflict};
use crate::tenancy::ExternalIdPolicy;
use crate::tenant_types::TenantSchemas;
use protect::{apply_roles_policy, check_group_grants, check_immutable, check_protected};
use serde_json::{Map, Value, json};

/// Longest userName / displayName / externalId accepted, bytes (they become sort keys).
const MAX_KEY_TEXT: usize = 512;
/// Attempts for a read-modify-write that races another writer (no If-Match given).
const WRITE_ATTEMPTS: usize = 4;
pub use crate::members::MAX_MEMBER_CHANGES;

/// Who and where: the caller's principal (built only by authentication: its tenant, role,
/// permissions and the tenant's policies), the base URL for `location`s, the tenant's resource
/// types, and where undeclared extension URNs are noted.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The authenticated caller: its tenant, key, role, permissions and the tenant's policies.
    pub principal: &'a crate::auth::Principal,
    /// The SCIM base URL the request came in under: resources' `meta.location` URIs start with it.
    pub base_url: &'a str,
    /// The tenant's resource types: the built-in ones and its declared extensions.
    pub types: &'a TenantSchemas,
    /// Where extension URNs the tenant does not declare are refused or noted.
    pub undeclared: &'a resource::Undeclared,
}

impl<'a> Ctx<'a> {
    /// The caller's tenant.
    pub fn tenant(&self) -> &'a str {
        &self.principal.tenant_id
    }

    /// The tenant's role policy, when it has one.
    pub fn roles(&self) -> Option<&'a crate::roles::RolesPolicy> {
        self.principal.roles_policy.as_ref()
    }

    /// The tenant's deactivation policy.
    pub fn deactivation(&self) -> crate::tenancy::Deactivation {
        self.principal.deactivation
    }

    /// The tenant's externalId policy.
    pub fn external_id_policy(&self) -> ExternalIdPolicy {
        self.principal.external_id_policy
    }

    /// Whether the caller's key holds a permission.
    pub fn may(&self, p: Permission) -> bool {
        self.principal.may(p)
    }
}

/// The SCIM service over one table.
pub struct Service {
    layout: Layout,
    seal: tokio::sync::OnceCell<Vec<u8>>,
    types: TypesCache,
    tokens: crate::oauth::Verifier,
    signing: std::sync::Arc<dyn crate::oauth::SigningKeys>,
    federator: crate::federation::Federator,
}

/// A service over a table: what an app is made of (`App::new(table)`).
impl From<std::sync::Arc<dyn crate::store::Table>> for Service {
    fn from(table: std::sync::Arc<dyn crate::store::Table>) -> Service {
        Service::over(table)
    }
}

/// A service over a table of a known type (`App::new(Arc::new(EmbeddedTable::in_memory()))`).
impl<T: crate::store::Table + 'static> From<std::sync::Arc<T>> for Service {
    fn from(table: std::sync::Arc<T>) -> Service {
        Service::over(table)
    }
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
    ["W/\"", itoa::Buffer::new().format(version), "\""].concat()
}

fn check_if_match(if_match: Option<&str>, version: u64) -> Result<()> {
    let Some(h) = if_match else { return Ok(()) };
    let current = etag(version);
    let ok =
        h.split(',').map(str::trim).any(|t| t == "*" || t == current || t.trim_start_matches("W/") == current.trim_start_matches("W/"));
    if ok { Ok(()) } else { Err(ScimError::PreconditionFailed(format!("the resource is at version {current}; If-Match was {h}"))) }
}

/// The attribute a collection holds unique by its caseless fold (a declared type's unique
/// attributes are claimed as declared, like extension attributes).
fn name_attr(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::User => Some("userName"),
        Kind::Group => Some("displayName"),
        Kind::Declared(_) => None,
    }
}

/// The uniqueness claims of a document: its name folded caselessly (see [`crate::casefold`]),
/// its externalId exactly.
fn claims(ctx: Ctx<'_>, kind: Kind, doc: &Map<String, Value>) -> Result<Claims> {
    let name = name_attr(kind).and_then(|n| doc.get(n)).and_then(Value::as_str).map(crate::casefold::fold);
    let external_id = doc.get("externalId").and_then(Value::as_str).map(str::to_string);
    for (what, v) in [(name_attr(kind).unwrap_or_default(), &name), ("externalId", &external_id)] {
        if v.as_ref().is_some_and(|s| s.len() > MAX_KEY_TEXT) {
            return Err(ScimError::invalid_value(format!("'{what}' is longer than {MAX_KEY_TEXT} bytes")));
        }
    }
    let attributes = attribute_claims(ctx.types.of(kind), matches!(kind, Kind::Declared(_)), doc);
    // a unique value is held as a key: the same bound on every store (DynamoDB's sort keys
    // stop at 1 KiB; the embedded store has no bound of its own)
    if let Some((_, attr, _)) = attributes.iter().find(|(_, _, key)| key.len() > MAX_KEY_TEXT) {
        return Err(ScimError::invalid_value(format!("'{attr}' is longer than {MAX_KEY_TEXT} bytes (a unique value is held as a key)")));
    }
    Ok(Claims {
        name,
        external_id,
        external_id_unique: ctx.external_id_policy() == ExternalIdPolicy::Unique,
        attributes,
        inactive: kind == Kind::User && is_inactive(doc),
    })
}

/// The unique claims of a document's attributes declared `uniqueness: server`: its extensions',
/// and, for a declared type (`core`), its core schema's (kept under the core schema's URN).
fn attribute_claims(rt: &ResourceType, core: bool, doc: &Map<String, Value>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    if core {
        for def in rt.schema.attrs.iter().filter(|a| a.unique) {
            if let Some(key) = doc.get(&*def.name).and_then(|v| def.claim_key(v)) {
                out.push((rt.schema.id.to_string(), def.name.to_string(), key));
            }
        }
    }
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

fn conflict(rt: &ResourceType, kind: Kind, c: WriteConflict, doc: &Map<String, Value>) -> ScimError {
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let noun = rt.name.to_lowercase();
    match c {
        WriteConflict::Attribute(name) => ScimError::Conflict(format!(
            "the value of '{name}' already belongs to another {noun} in this tenant (the attribute is declared unique)"
        )),
        WriteConflict::Name => {
            let attr = name_attr(kind).unwrap_or_default();
            ScimError::Conflict(format!("{attr} '{}' is already taken in this tenant", text(attr)))
        }
        WriteConflict::ExternalId => {
            ScimError::Conflict(format!("externalId '{}' already belongs to another {noun} in this tenant", text("externalId")))
        }
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
    leaves_groups(ctx, is_inactive(doc))
}

/// Whether a user, active or not, belongs to no group under the tenant's policy.
fn leaves_groups(ctx: Ctx<'_>, inactive: bool) -> bool {
    inactive && ctx.deactivation() == crate::tenancy::Deactivation::RemoveMemberships
}

/// Whether a rendered resource was just written, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A read (GET).
    No,
    /// A resource the request just created (a new user is in no group yet, so none are read).
    Created,
    /// An existing resource the request replaced or patched (or that a relinking create reused).
    Changed,
}

impl Service {
    /// A service over a layout.
    pub fn new(layout: Layout) -> Service {
        let signing = std::sync::Arc::new(crate::oauth::StoreKeys(layout.clone()));
        Service {
            layout,
            seal: tokio::sync::OnceCell::new(),
            types: TypesCache::default(),
            tokens: Default::default(),
            signing,
            federator: Default::default(),
        }
    }

    /// A service over a table (its layout).
    pub fn over(table: std::sync::Arc<dyn crate::store::Table>) -> Service {
        Service::new(Layout::new(table))
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
            Some((record, v)) => TenantSchemas::from_record(v, &record),
            None => TenantSchemas::build(0, Vec::new(), Vec::new()),
        });
        if let Ok(mut cache) = self.types.0.lock() {
            if cache.len() >= TYPES_KEPT {
                cache.clear();
            }
            cache.insert(tenant.to_string(), (types.clone(), std::time::Instant::now()));
        }
        Ok(types)
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
            check_group_grants(ctx, None, Some(&doc), &delta, async { Ok(false) }).await?;
        }
        check_protected(ctx, kind, None, &doc)?;
        check_identity_text(&doc)?;
        if kind == Kind::User {
            apply_roles_policy(&mut doc, ctx.roles());
        }
        let claims = claims(ctx, kind, &doc)?;
        self.check_external_id(ctx, kind, None, None, &claims).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let now = crate::time::now();
        let full = with_meta(rt, &id, doc, &now, &now, 1);
        match self.layout.create(ctx.tenant(), kind, &full, &claims, &delta).await? {
            Ok(()) => Ok((Stored::written(&id, full, 1), Written::Created)),
            Err(c) => Err(conflict(rt, kind, c, &full)),
        }
    }

    /// The user a create relinks under the `relink` policy: the one user holding the new
    /// document's externalId. Several holders are a 409 (which to relink is not ours to guess).
    async fn relink_target(&self, ctx: Ctx<'_>, kind: Kind, doc: &Map<String, Value>) -> Result<Option<String>> {
        let Some(ext) = doc.get("externalId").and_then(Value::as_str).filter(|_| kind == Kind::User) else { return Ok(None) };
        if ctx.external_id_policy() != ExternalIdPolicy::Relink {
            return Ok(None);
        }
        let holders = self.layout.external_id_holders(ctx.tenant(), kind, ext).await?;
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
        let holders = self.layout.external_id_holders(ctx.tenant(), kind, ext).await?;
        if holders.iter().any(|h| Some(h.as_str()) != id) {
            return Err(ScimError::Conflict(format!(
                "externalId '{ext}' already belongs to another {} in this tenant (its externalId policy is 'unique')",
                ctx.types.of(kind).name.to_lowercase()
            )));
        }
        Ok(())
    }

    /// `GET /{Users|Groups}/{id}`: the stored text (see `read`).
    pub async fn get_text(&self, ctx: Ctx<'_>, kind: Kind, id: &str) -> Result<StoredText> {
        self.layout
            .get_text(ctx.tenant(), kind, id)
            .await?
            .ok_or_else(|| ScimError::NotFound(format!("no {} '{id}'", ctx.types.of(kind).name.to_lowercase())))
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
                apply_roles_policy(&mut new_doc, ctx.roles());
            }
            let delta = self.member_delta(ctx, id, member_ops).await?;
            if kind == Kind::Group {
                let has_members = async { Ok(self.layout.has_members(ctx.tenant(), id).await?) };
                check_group_grants(ctx, Some(&old.doc), Some(&new_doc), &delta, has_members).await?;
            }
            let created = old.doc.get("meta").and_then(|m| m.get("created")).and_then(Value::as_str).unwrap_or_default().to_string();
            let candidate = with_meta(rt, id, new_doc, &created, &crate::time::now(), old.version + 1);
            if crate::diff::same_attributes(&old.doc, &candidate) {
                if !delta.is_empty() {
                    match self.layout.change_members(ctx.tenant(), id, &delta).await? {
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
                let groups = self.layout.groups_of(ctx.tenant(), id).await?;
                self.layout.update_leaving_groups(ctx.tenant(), &old, &candidate, (&old_claims, &new_claims), &groups).await?
            } else {
                self.layout.update(ctx.tenant(), kind, &old, &candidate, (&old_claims, &new_claims), &delta).await?.map(|()| true)
            };
            match outcome {
                Ok(complete) => {
                    let stored = Stored::written(old.id(), candidate, old.version + 1);
                    if !complete {
                        self.deprovision_if_inactive(ctx, kind, &stored).await?;
                    }
                    return Ok(stored);
                }
                Err(WriteConflict::Version) if if_match.is_none() => continue,
                Err(WriteConflict::Version) => {
                    return Err(ScimError::PreconditionFailed("the resource changed since the If-Match version".into()));
                }
                Err(c) => return Err(conflict(rt, kind, c, &candidate)),
            }
        }
        Err(ScimError::Unavailable { detail: "the resource is being changed concurrently; retry".into(), retry_after: 1 })
    }

    /// A deactivated user loses every group membership (unless the tenant keeps them). Repeated
    /// on every write to an inactive user, so an interrupted sweep completes on the IdP's next
    /// request.
    async fn deprovision_if_inactive(&self, ctx: Ctx<'_>, kind: Kind, s: &Stored) -> Result<()> {
        if kind == Kind::User && deprovisions(ctx, &s.doc) {
            let n = self.layout.remove_from_all_groups(ctx.tenant(), s.id()).await?;
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
            if kind == Kind::Group {
                let has_members = async { Ok(self.layout.has_members(ctx.tenant(), id).await?) };
                check_group_grants(ctx, Some(&old.doc), None, &MemberDelta::default(), has_members).await?;
            }
            match kind {
                Kind::User => self.layout.remove_from_all_groups(ctx.tenant(), id).await?,
                Kind::Group => self.layout.remove_all_members(ctx.tenant(), id).await?,
                Kind::Declared(_) => 0,
            };
            let claims = claims(ctx, kind, &old.doc)?;
            match self.layout.delete(ctx.tenant(), kind, &old, &claims).await? {
                Ok(()) => return Ok(()),
                Err(_) if if_match.is_none() => continue,
                Err(_) => return Err(ScimError::PreconditionFailed("the resource changed since the If-Match version".into())),
            }
        }
        Err(ScimError::Unavailable { detail: "the resource is being changed concurrently; retry".into(), retry_after: 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    /// docs/tenants-and-keys.md: a tenant without declarations pays no read for them; one with declarations reads
    /// them once per warm process until a newer version is announced.
    #[tokio::test]
    async fn declarations_are_read_only_when_announced_and_then_kept() {
        use crate::store::metered::Metered;
        let metered = std::sync::Arc::new(Metered::new(std::sync::Arc::new(crate::store::embedded::EmbeddedTable::in_memory())));
        let svc = Service::over(metered.clone());
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
