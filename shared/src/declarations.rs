//! The tenant's schema declarations over HTTP and the CLI (`/Settings/Schemas[/{urn}]`,
//! `scim-admin schema …`, permission `scim:configure`): list, read, declare or redeclare, delete.
//! The rules of what a declaration may change live in [`crate::extensions`]; this module reads
//! and writes them, and counts the stored values a risky change would have to leave alone.

use crate::error::{Result, ScimError};
use crate::extensions::{self, Declaration, MAX_DECLARATION_BYTES};
use crate::kind::Kind;
use crate::store::layout::Layout;
use serde_json::{Value, json};

/// The `schemas` value of the declarations list.
pub const URN_DECLARATIONS: &str = "urn:scim-serverless:api:messages:1.0:SchemaDeclarations";

/// Resources read per step when counting stored values.
const WALK_BATCH: usize = 1000;

async fn current(layout: &Layout, tenant: &str) -> Result<(Vec<Declaration>, Option<u64>)> {
    Ok(match layout.schema_declarations(tenant).await? {
        Some((record, v)) => (extensions::from_record(&record), Some(v)),
        None => (Vec::new(), None),
    })
}

/// `GET /Settings/Schemas`: the declarations in force.
pub async fn list(layout: &Layout, tenant: &str) -> Result<Value> {
    let (decls, _) = current(layout, tenant).await?;
    let served: Vec<Value> = decls.iter().filter(|d| !d.deleted).map(extensions::to_json).collect();
    Ok(json!({"schemas": [URN_DECLARATIONS], "totalResults": served.len(), "Resources": served}))
}

/// `GET /Settings/Schemas/{urn}`.
pub async fn get(layout: &Layout, tenant: &str, urn: &str) -> Result<Value> {
    let (decls, _) = current(layout, tenant).await?;
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
    let (decls, read_version) = current(layout, tenant).await?;
    let is_new = !decls.iter().any(|d| !d.deleted && d.schema.id.eq_ignore_ascii_case(urn));
    let previous = decls.iter().find(|d| d.schema.id.eq_ignore_ascii_case(urn)).map(|d| d.extends);
    let (list, must_be_empty) = extensions::redeclare(&decls, new)?;
    // a change of resource type leaves the old one's documents holding the values
    refuse_if_held(layout, tenant, previous.unwrap_or(Kind::User), urn, &must_be_empty).await?;
    commit(layout, tenant, &list, read_version).await?;
    let d = list.iter().find(|d| d.schema.id.eq_ignore_ascii_case(urn)).ok_or_else(|| ScimError::Internal("declaration lost".into()))?;
    Ok((extensions::to_json(d), is_new))
}

/// `DELETE /Settings/Schemas/{urn}`: the extension stops being served; its values stay stored
/// (hidden) and return if it is declared again. Refused while a unique attribute holds values.
pub async fn delete(layout: &Layout, tenant: &str, urn: &str) -> Result<()> {
    let (decls, read_version) = current(layout, tenant).await?;
    let kind = decls.iter().find(|d| d.schema.id.eq_ignore_ascii_case(urn)).map(|d| d.extends).unwrap_or(Kind::User);
    let (list, must_be_empty) = extensions::delete(&decls, urn)?;
    refuse_if_held(layout, tenant, kind, urn, &must_be_empty).await?;
    commit(layout, tenant, &list, read_version).await
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
    let what = match kind {
        Kind::User => "users",
        Kind::Group => "groups",
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
async fn commit(layout: &Layout, tenant: &str, list: &[Declaration], read_version: Option<u64>) -> Result<()> {
    let (mut rec, tenant_version) = layout
        .tenant_record::<crate::tenancy::TenantRecord>(tenant)
        .await?
        .ok_or_else(|| ScimError::NotFound(format!("no tenant '{tenant}'")))?;
    rec.schemas_version = read_version.unwrap_or(0) + 1;
    match layout.commit_schema_declarations(tenant, &extensions::record(list), read_version, &rec, tenant_version).await? {
        Ok(()) => Ok(()),
        Err(_) => {
            Err(ScimError::Unavailable { detail: "the tenant's settings changed while this request ran; retry".into(), retry_after: 1 })
        }
    }
}
