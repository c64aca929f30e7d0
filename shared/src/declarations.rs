//! The tenant's declarations over HTTP and the CLI, permission `scim:configure`: its schema
//! extensions (`/Settings/Schemas[/{urn}]`, `scim-admin schema …`) and its resource types
//! (`/Settings/ResourceTypes[/{name}]`, `scim-admin resource-type …`): list, read, declare or
//! redeclare, delete. Both live in one record, so one version tells every request what changed.
//! The rules of what a declaration may change live in [`crate::extensions`] and
//! [`crate::resource_types`]; this module reads and writes them, and counts the stored values
//! a risky change would have to leave alone.

use crate::error::{Result, ScimError};
use crate::extensions::{self, Declaration, MAX_DECLARATION_BYTES};
use crate::kind::Kind;
use crate::resource_types::{self, MAX_TYPE_DECLARATION_BYTES, MAX_TYPES, TypeDeclaration};
use crate::store::layout::Layout;
use serde_json::{Value, json};

/// The `schemas` value of the declarations list.
pub const URN_DECLARATIONS: &str = "urn:scim-serverless:api:messages:1.0:SchemaDeclarations";

/// The `schemas` value of the resource type declarations list.
pub const URN_TYPE_DECLARATIONS: &str = "urn:scim-serverless:api:messages:1.0:ResourceTypeDeclarations";
/// Largest the record of every declaration of a tenant may grow, bytes (one DynamoDB item).
const MAX_RECORD_BYTES: usize = 300 * 1024;

/// Resources read per step when counting stored values.
const WALK_BATCH: usize = 1000;

/// The stored record (empty when none) and its version.
async fn record(layout: &Layout, tenant: &str) -> Result<(Value, Option<u64>)> {
    Ok(match layout.schema_declarations(tenant).await? {
        Some((record, v)) => (record, Some(v)),
        None => (json!({}), None),
    })
}

async fn current(layout: &Layout, tenant: &str) -> Result<(Vec<Declaration>, Option<u64>, Value)> {
    let (rec, v) = record(layout, tenant).await?;
    Ok((extensions::from_record(&rec), v, rec))
}

/// `GET /Settings/Schemas`: the declarations in force.
pub async fn list(layout: &Layout, tenant: &str) -> Result<Value> {
    let (decls, _, _) = current(layout, tenant).await?;
    let served: Vec<Value> = decls.iter().filter(|d| !d.deleted).map(extensions::to_json).collect();
    Ok(json!({"schemas": [URN_DECLARATIONS], "totalResults": served.len(), "Resources": served}))
}

/// `GET /Settings/Schemas/{urn}`.
pub async fn get(layout: &Layout, tenant: &str, urn: &str) -> Result<Value> {
    let (decls, _, _) = current(layout, tenant).await?;
    decls
        .iter()
        .find(|d| !d.deleted && d.schema.id.eq_ignore_ascii_case(urn))
        .map(extensions::to_json)
        .ok_or_else(|| ScimError::NotFound(format!("this tenant declares no extension '{urn}'")))
}

/// `PUT /Settings/Schemas/{urn}`: declares or redeclares an extension. Refused (409, nothing
/// written) when a change that stored values might not satisfy meets values still held.
/// Returns the declaration and whether it is new.
pub async fn put(layout: &Layout, tenant: &str, urn: &str, body: &Value) -> Result<(Value, bool)> {
    if crate::json_text(body).len() > MAX_DECLARATION_BYTES {
        return Err(ScimError::PayloadTooLarge(format!("a declaration is at most {MAX_DECLARATION_BYTES} bytes")));
    }
    let new = extensions::parse(urn, body)?;
    let (decls, read_version, mut rec) = current(layout, tenant).await?;
    if let Some(t) = resource_types::from_record(&rec).0.iter().find(|t| t.urns().any(|u| u.eq_ignore_ascii_case(urn))) {
        return Err(ScimError::Conflict(format!("'{urn}' is a schema of the declared resource type '{}'", t.name)));
    }
    let is_new = !decls.iter().any(|d| !d.deleted && d.schema.id.eq_ignore_ascii_case(urn));
    let previous = decls.iter().find(|d| d.schema.id.eq_ignore_ascii_case(urn)).map(|d| d.extends);
    let (list, must_be_empty) = extensions::redeclare(&decls, new)?;
    // a change of resource type leaves the old one's documents holding the values
    refuse_if_held(layout, tenant, previous.unwrap_or(Kind::User), urn, &must_be_empty).await?;
    rec["extensions"] = extensions::record(&list)["extensions"].take();
    commit(layout, tenant, &rec, read_version).await?;
    let d = list.iter().find(|d| d.schema.id.eq_ignore_ascii_case(urn)).ok_or_else(|| ScimError::Internal("declaration lost".into()))?;
    Ok((extensions::to_json(d), is_new))
}

/// `DELETE /Settings/Schemas/{urn}`: the extension stops being served; its values stay stored
/// (hidden) and return if it is declared again. Refused while a unique attribute holds values.
pub async fn delete(layout: &Layout, tenant: &str, urn: &str) -> Result<()> {
    let (decls, read_version, mut rec) = current(layout, tenant).await?;
    let kind = decls.iter().find(|d| d.schema.id.eq_ignore_ascii_case(urn)).map(|d| d.extends).unwrap_or(Kind::User);
    let (list, must_be_empty) = extensions::delete(&decls, urn)?;
    refuse_if_held(layout, tenant, kind, urn, &must_be_empty).await?;
    rec["extensions"] = extensions::record(&list)["extensions"].take();
    commit(layout, tenant, &rec, read_version).await
}

/// 409 naming, per attribute, how many resources hold a value (a walk of the collection: an
/// admin-time cost, O(resources), paid only by changes that need it).
async fn refuse_if_held(layout: &Layout, tenant: &str, kind: Kind, urn: &str, attrs: &[String]) -> Result<()> {
    if attrs.is_empty() {
        return Ok(());
    }
    let mut counts = vec![0usize; attrs.len()];
    let mut after: Option<String> = None;
    loop {
        let batch = layout.page(tenant, kind, after.as_deref(), WALK_BATCH).await?;
        for s in &batch {
            let Some(Value::Object(values)) = crate::names::value(&s.doc, urn) else { continue };
            for (i, a) in attrs.iter().enumerate() {
                if values.iter().any(|(k, v)| k.eq_ignore_ascii_case(a) && !v.is_null()) {
                    counts[i] += 1;
                }
            }
        }
        match batch.last() {
            Some(last) if batch.len() == WALK_BATCH => after = Some(last.id().to_string()),
            _ => break,
        }
    }
    let held: Vec<String> = attrs.iter().zip(&counts).filter(|(_, n)| **n > 0).map(|(a, n)| format!("'{a}' ({n})")).collect();
    if held.is_empty() {
        return Ok(());
    }
    // extensions extend User or Group only
    let what = match kind {
        Kind::User => "users",
        Kind::Group | Kind::Declared(_) => "groups",
    };
    Err(ScimError::InUse(format!(
        "{what} hold values for {}: a change of an attribute's type, multiValued, caseExact, uniqueness or sub-attributes, \
         or removing a unique attribute, is refused while values exist; clear them first",
        held.join(", ")
    )))
}

/// Writes the declarations and bumps the tenant record's `schemas_version` in one transaction
/// (authentication reads the version: a request sees the change at once locally, and when the
/// authorizer's cache expires in AWS).
async fn commit(layout: &Layout, tenant: &str, record: &Value, read_version: Option<u64>) -> Result<()> {
    if crate::json_text(record).len() > MAX_RECORD_BYTES {
        return Err(ScimError::PayloadTooLarge(format!(
            "the tenant's declarations together would be over {MAX_RECORD_BYTES} bytes; delete some it no longer needs"
        )));
    }
    let (mut rec, tenant_version) = layout
        .tenant_record::<crate::tenancy::TenantRecord>(tenant)
        .await?
        .ok_or_else(|| ScimError::NotFound(format!("no tenant '{tenant}'")))?;
    rec.schemas_version = read_version.unwrap_or(0) + 1;
    match layout.commit_schema_declarations(tenant, record, read_version, &rec, tenant_version).await? {
        Ok(()) => Ok(()),
        Err(_) => {
            Err(ScimError::Unavailable { detail: "the tenant's settings changed while this request ran; retry".into(), retry_after: 1 })
        }
    }
}

/// `GET /Settings/ResourceTypes`: the resource types the tenant declared.
pub async fn list_types(layout: &Layout, tenant: &str) -> Result<Value> {
    let (rec, _) = record(layout, tenant).await?;
    let served: Vec<Value> = resource_types::from_record(&rec).0.iter().map(TypeDeclaration::to_json).collect();
    Ok(json!({"schemas": [URN_TYPE_DECLARATIONS], "totalResults": served.len(), "Resources": served}))
}

fn declared<'a>(types: &'a [TypeDeclaration], name: &str) -> Option<&'a TypeDeclaration> {
    types.iter().find(|t| t.name.eq_ignore_ascii_case(name))
}

fn no_type(name: &str) -> ScimError {
    ScimError::NotFound(format!("this tenant declares no resource type '{name}'"))
}

/// `GET /Settings/ResourceTypes/{name}`.
pub async fn get_type(layout: &Layout, tenant: &str, name: &str) -> Result<Value> {
    let (rec, _) = record(layout, tenant).await?;
    declared(&resource_types::from_record(&rec).0, name).map(TypeDeclaration::to_json).ok_or_else(|| no_type(name))
}

/// `PUT /Settings/ResourceTypes/{name}`: declares or redeclares a resource type. A type that
/// holds resources may only change in ways its stored resources still satisfy (409 with the
/// count otherwise). Returns the declaration and whether it is new.
pub async fn put_type(layout: &Layout, tenant: &str, name: &str, body: &Value) -> Result<(Value, bool)> {
    if crate::json_text(body).len() > MAX_TYPE_DECLARATION_BYTES {
        return Err(ScimError::PayloadTooLarge(format!("a resource type declaration is at most {MAX_TYPE_DECLARATION_BYTES} bytes")));
    }
    let (mut rec, read_version) = record(layout, tenant).await?;
    let (mut types, next) = resource_types::from_record(&rec);
    let before = declared(&types, name).cloned();
    let slot = before.as_ref().map(|t| t.slot).unwrap_or(crate::kind::Slot(next));
    if before.is_none() && (types.len() >= MAX_TYPES || next == u16::MAX) {
        return Err(ScimError::bad(crate::error::ScimType::TooMany, format!("a tenant declares at most {MAX_TYPES} resource types")));
    }
    let new = resource_types::parse(before.as_ref().map(|t| t.name.as_str()).unwrap_or(name), body, slot)?;
    check_collisions(&rec, &types, &new)?;
    if let Some(old) = &before
        && let Err(why) = resource_types::holds_for(old, &new)
    {
        let held = held(layout, tenant, old).await?;
        if held > 0 {
            return Err(ScimError::InUse(format!("{why}, and {held} {} resources are stored: clear them first", old.name)));
        }
    }
    let answer = new.to_json();
    types.retain(|t| t.slot != slot);
    types.push(new);
    types.sort_by_key(|t| t.slot);
    rec["resourceTypes"] = Value::Array(types.iter().map(resource_types::record).collect());
    rec["nextSlot"] = json!(next.max(slot.0 + 1));
    commit(layout, tenant, &rec, read_version).await?;
    Ok((answer, before.is_none()))
}

/// A new declaration's endpoint and URNs are its own: no other declared type's, no extension's.
fn check_collisions(rec: &Value, types: &[TypeDeclaration], new: &TypeDeclaration) -> Result<()> {
    for other in types.iter().filter(|t| t.slot != new.slot) {
        if other.segment().eq_ignore_ascii_case(new.segment()) {
            return Err(ScimError::Conflict(format!("endpoint '{}' is the resource type '{}'s", new.endpoint, other.name)));
        }
        if let Some(u) = new.urns().find(|u| other.urns().any(|o| o.eq_ignore_ascii_case(u))) {
            return Err(ScimError::Conflict(format!("'{u}' is a schema of the resource type '{}'", other.name)));
        }
    }
    let extensions = extensions::from_record(rec);
    if let Some(u) = new.urns().find(|u| extensions.iter().any(|d| d.schema.id.eq_ignore_ascii_case(u))) {
        return Err(ScimError::Conflict(format!("'{u}' is declared as an extension of User or Group (/Settings/Schemas)")));
    }
    Ok(())
}

/// How many resources a declared type holds: its counter, or 1 when the counter says none but a
/// resource is there (the truth decides, the counter only says how many).
async fn held(layout: &Layout, tenant: &str, t: &TypeDeclaration) -> Result<u64> {
    let kind = t.kind();
    let counted = layout.counts(tenant, kind).await?.total;
    if counted > 0 {
        return Ok(counted);
    }
    Ok(layout.page(tenant, kind, None, 1).await?.len() as u64)
}

/// `DELETE /Settings/ResourceTypes/{name}`: 409 with the count while it holds resources. Its
/// slot is never given to another type.
pub async fn delete_type(layout: &Layout, tenant: &str, name: &str) -> Result<()> {
    let (mut rec, read_version) = record(layout, tenant).await?;
    let (mut types, next) = resource_types::from_record(&rec);
    let t = declared(&types, name).cloned().ok_or_else(|| no_type(name))?;
    let n = held(layout, tenant, &t).await?;
    if n > 0 {
        return Err(ScimError::InUse(format!("the resource type '{}' still holds {n} resources: delete them first", t.name)));
    }
    types.retain(|x| x.slot != t.slot);
    rec["resourceTypes"] = Value::Array(types.iter().map(resource_types::record).collect());
    rec["nextSlot"] = json!(next);
    commit(layout, tenant, &rec, read_version).await
}
