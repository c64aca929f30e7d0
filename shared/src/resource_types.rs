//! Resource types a tenant declares (RFC 7643 §6) beside User and Group: agents, devices, its
//! own objects. A declaration is an RFC 7643 §6 ResourceType (`name`, `endpoint`, `schema`,
//! `schemaExtensions` with `required`) carrying, in `schemaDefinitions`, the RFC 7643 §7 schemas
//! it names, with the attribute characteristics tenant extensions already have. Declared, the
//! type is served at its endpoint like Users: the same validation, storage, claims, filters,
//! PATCH, projections, paging, audit and events, driven by its [`ResourceType`].
//!
//! Each type gets a [`Slot`] when first declared: its items are keyed by it (`RES<slot>#<id>`),
//! so renaming its endpoint moves nothing, and a slot is never given to another type.
//! Redeclaring a type that holds resources may add attributes and optional extensions; a change
//! that stored values might not satisfy (an attribute dropped or retyped, a new requirement) is
//! refused while resources exist, and so is deleting it (409 with the count).

use crate::error::{Result, ScimError};
use crate::extensions::{check_urn, compatible, parse_attributes};
use crate::kind::{Kind, Slot};
use crate::schema::{AttrDef, ResourceType, SchemaDef, Text, URN_RESOURCE_TYPE, common_attrs};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Most resource types a tenant may declare.
pub const MAX_TYPES: usize = 20;
/// Most schemas (core and extensions) one type may define.
pub const MAX_SCHEMAS_PER_TYPE: usize = 10;
/// Longest declaration body accepted, bytes.
pub const MAX_TYPE_DECLARATION_BYTES: usize = 96 * 1024;

/// First path segments a declared endpoint may not take: every literal first segment of the
/// route table (a test holds the two together), `/Me` (RFC 7644 §3.11) and the names the
/// service keeps for itself.
pub const RESERVED_ENDPOINTS: &[&str] = &[
    "Users",
    "Groups",
    "Bulk",
    "ServiceProviderConfig",
    "ResourceTypes",
    "Schemas",
    "Settings",
    "Me",
    "events",
    "oauth",
    "portal",
    "token",
];

/// One declared resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeDeclaration {
    /// Its place in the tenant's key space.
    pub slot: Slot,
    /// `name` (also `id` and `meta.resourceType`), e.g. `Agent`.
    pub name: String,
    /// `endpoint`, e.g. `/Agents`.
    pub endpoint: String,
    /// `description`.
    pub description: String,
    /// The core schema.
    pub schema: Arc<SchemaDef>,
    /// The extensions, each with whether every resource must carry it.
    pub extensions: Vec<(Arc<SchemaDef>, bool)>,
}

impl TypeDeclaration {
    /// The resource type it serves.
    pub fn resource_type(&self) -> ResourceType {
        ResourceType {
            name: Text::Owned(self.name.clone()),
            endpoint: Text::Owned(self.endpoint.clone()),
            description: Text::Owned(self.description.clone()),
            schema: self.schema.clone(),
            extensions: self.extensions.iter().map(|(s, _)| s.clone()).collect(),
            required: self.extensions.iter().filter(|(_, r)| *r).map(|(s, _)| s.id.clone()).collect(),
            hides_values: false,
        }
    }

    /// The declaration as `GET /Settings/ResourceTypes/{name}` returns it (and as stored, with
    /// its slot beside).
    pub fn to_json(&self) -> Value {
        let schema_json = |s: &SchemaDef| json!({"id": s.id, "name": s.name, "description": s.description, "attributes": s.attrs.iter().map(AttrDef::to_json).collect::<Vec<_>>()});
        json!({
            "schemas": [URN_RESOURCE_TYPE],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": self.extensions.iter().map(|(s, r)| json!({"schema": s.id, "required": r})).collect::<Vec<_>>(),
            "schemaDefinitions": std::iter::once(&self.schema).chain(self.extensions.iter().map(|(s, _)| s)).map(|s| schema_json(s)).collect::<Vec<_>>(),
        })
    }

    /// Every schema URN it defines.
    pub fn urns(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.schema.id).chain(self.extensions.iter().map(|(s, _)| &*s.id))
    }

    /// The collection it serves.
    pub fn kind(&self) -> Kind {
        Kind::Declared(self.slot)
    }

    /// The endpoint's one path segment (`Agents`).
    pub fn segment(&self) -> &str {
        self.endpoint.trim_start_matches('/')
    }
}

/// RFC 7643 ATTRNAME-like: a letter, then letters, digits, '-' or '_'; at most 64.
fn valid_word(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic()) && c.all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '_') && s.len() <= 64
}

fn text_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>> {
    match crate::names::value(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ScimError::invalid_value(format!("'{name}' is a string"))),
    }
}

/// Parses and checks a declaration sent for `name` (`PUT /Settings/ResourceTypes/{name}`), to
/// hold `slot`. What it must not collide with (other types, extensions) is checked by the caller.
pub fn parse(name: &str, body: &Value, slot: Slot) -> Result<TypeDeclaration> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a resource type declaration is a JSON object"))?;
    if !valid_word(name) {
        return Err(ScimError::invalid_value(format!("'{name}' is not a resource type name (a letter, then letters, digits, '-', '_')")));
    }
    if ["User", "Group"].iter().any(|b| b.eq_ignore_ascii_case(name)) {
        return Err(ScimError::invalid_value(format!("'{name}' is a resource type of the server")));
    }
    check_message_schemas(obj)?;
    if let Some(n) = text_member(obj, "name")?.or(text_member(obj, "id")?)
        && n != name
    {
        return Err(ScimError::invalid_value(format!("the body's name '{n}' is not the name of the path, '{name}'")));
    }
    let endpoint = text_member(obj, "endpoint")?.map(str::to_string).unwrap_or_else(|| format!("/{name}s"));
    check_endpoint(&endpoint)?;
    let definitions = definitions(obj)?;
    let core_urn = text_member(obj, "schema")?.ok_or_else(|| ScimError::invalid_value("'schema' names the type's core schema URN"))?;
    let take = |urn: &str| {
        definitions
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(urn))
            .cloned()
            .ok_or_else(|| ScimError::invalid_value(format!("'{urn}' is not among 'schemaDefinitions'")))
    };
    let schema = take(core_urn)?;
    if let Some(clash) = schema
        .attrs
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("schemas") || common_attrs().iter().any(|c| c.name.eq_ignore_ascii_case(&a.name)))
    {
        return Err(ScimError::invalid_value(format!(
            "'{}' is an attribute every resource has (RFC 7643 §3.1); declare another name",
            clash.name
        )));
    }
    let mut extensions = Vec::new();
    for e in schema_extensions(obj)? {
        if e.0.eq_ignore_ascii_case(core_urn) || extensions.iter().any(|(s, _): &(Arc<SchemaDef>, bool)| s.id.eq_ignore_ascii_case(&e.0)) {
            return Err(ScimError::invalid_value(format!("'{}' is named twice", e.0)));
        }
        extensions.push((take(&e.0)?, e.1));
    }
    if let Some(unused) = definitions.iter().find(|d| !d.id.eq_ignore_ascii_case(core_urn) && !extensions.iter().any(|(s, _)| s.id == d.id))
    {
        return Err(ScimError::invalid_value(format!("'{}' is defined but neither the schema nor an extension", unused.id)));
    }
    let description = text_member(obj, "description")?.unwrap_or_default().to_string();
    Ok(TypeDeclaration { slot, name: name.to_string(), endpoint, description, schema, extensions })
}

/// `schemas`, when sent, is the RFC's message-schema array and names the ResourceType schema.
fn check_message_schemas(obj: &Map<String, Value>) -> Result<()> {
    let Some(v) = crate::names::value(obj, "schemas") else { return Ok(()) };
    let ok = v.as_array().is_some_and(|a| a.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(URN_RESOURCE_TYPE))));
    if ok { Ok(()) } else { Err(ScimError::invalid_value(format!("'schemas' must include {URN_RESOURCE_TYPE}"))) }
}

fn check_endpoint(endpoint: &str) -> Result<()> {
    let seg = endpoint.strip_prefix('/').unwrap_or_default();
    if !valid_word(seg) {
        return Err(ScimError::invalid_value(format!(
            "endpoint '{endpoint}' is not '/' and one path segment (a letter, then letters, digits, '-', '_')"
        )));
    }
    if let Some(r) = RESERVED_ENDPOINTS.iter().find(|r| r.eq_ignore_ascii_case(seg)) {
        return Err(ScimError::Conflict(format!("endpoint '/{r}' is served by the server itself")));
    }
    Ok(())
}

/// `schemaDefinitions`: RFC 7643 §7 schemas, each with its URN `id` and `attributes`.
fn definitions(obj: &Map<String, Value>) -> Result<Vec<Arc<SchemaDef>>> {
    let list = crate::names::value(obj, "schemaDefinitions").and_then(Value::as_array).ok_or_else(|| {
        ScimError::invalid_value("'schemaDefinitions' is a list of RFC 7643 §7 schemas: the type's schema and its extensions'")
    })?;
    if list.len() > MAX_SCHEMAS_PER_TYPE {
        return Err(ScimError::bad(crate::error::ScimType::TooMany, format!("at most {MAX_SCHEMAS_PER_TYPE} schemas per resource type")));
    }
    let mut out: Vec<Arc<SchemaDef>> = Vec::with_capacity(list.len());
    for d in list {
        let o = d.as_object().ok_or_else(|| ScimError::invalid_value("each of 'schemaDefinitions' is a schema object"))?;
        let id = text_member(o, "id")?.ok_or_else(|| ScimError::invalid_value("each of 'schemaDefinitions' has its URN as 'id'"))?;
        check_urn(id)?;
        if out.iter().any(|s| s.id.eq_ignore_ascii_case(id)) {
            return Err(ScimError::invalid_value(format!("'{id}' is defined twice")));
        }
        let attrs = parse_attributes(crate::names::value(o, "attributes"), &format!("'{id}'"))?;
        let name = text_member(o, "name")?.unwrap_or(id.rsplit(':').next().unwrap_or(id)).to_string();
        let description = text_member(o, "description")?.unwrap_or_default().to_string();
        out.push(Arc::new(SchemaDef { id: id.to_string().into(), name: name.into(), description: description.into(), attrs }));
    }
    Ok(out)
}

/// `schemaExtensions`: `[{"schema": urn, "required": bool}]` (absent: none).
fn schema_extensions(obj: &Map<String, Value>) -> Result<Vec<(String, bool)>> {
    let Some(v) = crate::names::value(obj, "schemaExtensions").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let bad = || ScimError::invalid_value("'schemaExtensions' is a list of {\"schema\": URN, \"required\": true|false}");
    let mut out = Vec::new();
    for e in v.as_array().ok_or_else(bad)? {
        let o = e.as_object().ok_or_else(bad)?;
        let urn = text_member(o, "schema")?.ok_or_else(bad)?;
        let required = match crate::names::value(o, "required") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(bad()),
        };
        out.push((urn.to_string(), required));
    }
    Ok(out)
}

/// The stored form: `{"slot": n, …the declaration…}`.
pub fn record(t: &TypeDeclaration) -> Value {
    let mut v = t.to_json();
    v["slot"] = json!(t.slot.0);
    v
}

/// The declared types in a stored declarations record (one that no longer parses is skipped
/// and logged, never served half-understood), and the next slot to give.
pub fn from_record(v: &Value) -> (Vec<TypeDeclaration>, u16) {
    let mut out = Vec::new();
    for t in v["resourceTypes"].as_array().into_iter().flatten() {
        let (name, slot) = (t["name"].as_str().unwrap_or_default(), t["slot"].as_u64().and_then(|n| u16::try_from(n).ok()));
        match slot.map(|s| parse(name, t, Slot(s))) {
            Some(Ok(d)) => out.push(d),
            Some(Err(e)) => tracing::error!(name, error = %e, "a stored resource type declaration does not parse; it is not served"),
            None => tracing::error!(name, "a stored resource type declaration has no slot; it is not served"),
        }
    }
    let next = v["nextSlot"].as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(0);
    let next = out.iter().map(|t| t.slot.0.saturating_add(1)).max().unwrap_or(0).max(next);
    (out, next)
}

/// Whether resources stored under `before` are resources of `after` too: every attribute kept
/// alike (core and extensions), no attribute newly required, no extension newly required.
pub fn holds_for(before: &TypeDeclaration, after: &TypeDeclaration) -> std::result::Result<(), String> {
    let schemas = |t: &TypeDeclaration| {
        let mut v = vec![(t.schema.clone(), true)];
        v.extend(t.extensions.iter().cloned());
        v
    };
    let (old, new) = (schemas(before), schemas(after));
    for (o, _) in &old {
        let n = new.iter().find(|(n, _)| n.id.eq_ignore_ascii_case(&o.id));
        for a in &o.attrs {
            match n.and_then(|(n, _)| n.attr(&a.name)) {
                Some(b) if compatible(a, b) => {}
                Some(_) => {
                    return Err(format!("'{}:{}' changes its type, multiValued, caseExact, uniqueness or sub-attributes", o.id, a.name));
                }
                None => return Err(format!("'{}:{}' is left out", o.id, a.name)),
            }
        }
    }
    for (n, required) in &new {
        let o = old.iter().find(|(o, _)| o.id.eq_ignore_ascii_case(&n.id));
        if *required && o.is_none_or(|(_, r)| !r) && n.id != after.schema.id {
            return Err(format!("the extension '{}' becomes required", n.id));
        }
        for a in n.attrs.iter().filter(|a| a.required) {
            if o.and_then(|(o, _)| o.attr(&a.name)).is_none_or(|b| !b.required) {
                return Err(format!("'{}:{}' becomes required", n.id, a.name));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn widget() -> Value {
        json!({
            "schemas": [URN_RESOURCE_TYPE],
            "name": "Widget", "endpoint": "/Widgets", "schema": "urn:acme:Widget",
            "schemaExtensions": [{"schema": "urn:acme:WidgetExtra", "required": true}],
            "schemaDefinitions": [
                {"id": "urn:acme:Widget", "name": "Widget", "attributes": [
                    {"name": "serial", "type": "string", "required": true, "uniqueness": "server"},
                    {"name": "size", "type": "integer"}]},
                {"id": "urn:acme:WidgetExtra", "attributes": [{"name": "colour", "type": "string"}]}
            ]
        })
    }

    #[test]
    fn a_declaration_parses_and_reads_back_from_its_stored_form() {
        let t = parse("Widget", &widget(), Slot(3)).unwrap();
        assert_eq!((t.endpoint.as_str(), t.extensions.len(), t.extensions[0].1), ("/Widgets", 1, true));
        let rt = t.resource_type();
        assert!(rt.requires("URN:ACME:WIDGETEXTRA"));
        assert!(rt.schema.attr("serial").unwrap().unique);
        let stored = json!({"resourceTypes": [record(&t)], "nextSlot": 4});
        assert_eq!(from_record(&stored), (vec![t], 4));
    }

    #[test]
    fn bad_declarations_are_4xx_naming_the_problem() {
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = widget();
            f(&mut v);
            parse("Widget", &v, Slot(0)).unwrap_err()
        };
        let cases: Vec<(ScimError, &str)> = vec![
            (with(&|v| v["name"] = json!("Gadget")), "not the name of the path"),
            (with(&|v| v["endpoint"] = json!("/Users")), "served by the server"),
            (with(&|v| v["endpoint"] = json!("/a/b")), "one path segment"),
            (with(&|v| v["schema"] = json!("urn:acme:Nope")), "not among"),
            (with(&|v| v["schemaDefinitions"][0]["attributes"][0]["name"] = json!("externalId")), "every resource has"),
            (with(&|v| v["schemaExtensions"] = json!([])), "neither the schema nor an extension"),
            (with(&|v| v["schemaDefinitions"][1]["id"] = json!("urn:acme:Widget")), "defined twice"),
            (with(&|v| v["schemaDefinitions"][0]["id"] = json!("urn:ietf:params:scim:schemas:core:2.0:User")), "schema of the server"),
            (with(&|v| v["schemas"] = json!(["urn:x"])), "must include"),
        ];
        for (e, says) in cases {
            assert!(e.status() == 400 || e.status() == 409, "{e}");
            assert!(e.to_string().contains(says), "{says}: {e}");
        }
        assert_eq!(parse("User", &widget(), Slot(0)).unwrap_err().status(), 400);
        assert_eq!(parse("9x", &widget(), Slot(0)).unwrap_err().status(), 400);
    }

    #[test]
    fn a_redeclaration_may_add_but_not_take_away_or_newly_require() {
        let before = parse("Widget", &widget(), Slot(0)).unwrap();
        let mut v = widget();
        v["schemaDefinitions"][0]["attributes"].as_array_mut().unwrap().push(json!({"name": "note", "type": "string"}));
        assert!(holds_for(&before, &parse("Widget", &v, Slot(0)).unwrap()).is_ok());
        let mut v = widget();
        v["schemaDefinitions"][0]["attributes"][1]["type"] = json!("string");
        assert!(holds_for(&before, &parse("Widget", &v, Slot(0)).unwrap()).unwrap_err().contains("size"));
        let mut v = widget();
        v["schemaDefinitions"][1]["attributes"][0]["required"] = json!(true);
        assert!(holds_for(&before, &parse("Widget", &v, Slot(0)).unwrap()).unwrap_err().contains("becomes required"));
    }
}
