//! Tenant-defined schema extensions (RFC 7643 §3.3): a tenant declares, in RFC 7643 §7 form,
//! extensions of Users or Groups (`urn:ietf:params:scim:schemas:extension:acme:2.0:User` with
//! `costCenter`, …). Declared, they are one more extension of that tenant's resource types:
//! validated, stored, returned, projected, filtered, sorted and PATCHed like the enterprise
//! extension, listed in its `/Schemas` and `/ResourceTypes`, never in another tenant's.
//!
//! Redeclaring never loses stored data: an attribute taken out of a declaration is *retired*
//! (its values stay in the documents, hidden, and come back if it is declared again); a change
//! that stored values might not satisfy (type, multiValued, caseExact, uniqueness, a
//! sub-attribute's type) is refused while any resource holds a value for it.

use crate::error::{Result, ScimError};
use crate::schema::{AttrDef, AttrType, Mutability, Returned, SchemaDef, Text, URN_ACCESS, URN_ENTERPRISE, URN_GROUP, URN_USER};
use crate::store::layout::Kind;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Most extensions a tenant may declare.
pub const MAX_EXTENSIONS: usize = 20;
/// Most attributes (sub-attributes included) in one extension.
pub const MAX_ATTRIBUTES: usize = 200;
/// Longest declaration body accepted, bytes.
pub const MAX_DECLARATION_BYTES: usize = 64 * 1024;

/// One declared extension: the resource type it extends, its schema, and the attributes it
/// once declared and no longer does (their values stay hidden in the documents).
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    /// The resource type it extends: User or Group.
    pub extends: Kind,
    /// The extension's schema (RFC 7643 §7): its URN `id`, name and attribute definitions.
    pub schema: Arc<SchemaDef>,
    /// Attributes an earlier declaration had and this one left out: their values stay stored,
    /// hidden, and come back if they are declared again.
    pub retired: Vec<AttrDef>,
    /// Deleted: nothing of it is served, its values stay hidden (and return with it).
    pub deleted: bool,
}

/// The name of what an extension extends: User or Group, never a declared type (`kind_of`).
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "User",
        Kind::Group | Kind::Declared(_) => "Group",
    }
}

fn kind_of(name: &str) -> Option<Kind> {
    if name.eq_ignore_ascii_case("User") {
        Some(Kind::User)
    } else if name.eq_ignore_ascii_case("Group") {
        Some(Kind::Group)
    } else {
        None
    }
}

/// Parses and checks a declaration sent for `urn` (`PUT /Settings/Schemas/{urn}`): the RFC 7643
/// §7 schema representation, plus `extends` (`User` or `Group`; when absent, the URN's last
/// segment says which, as Entra's and Okta's URNs do).
pub fn parse(urn: &str, body: &Value) -> Result<Declaration> {
    check_urn(urn)?;
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a schema declaration is a JSON object"))?;
    let get = |name: &str| crate::names::value(obj, name);
    if let Some(id) = get("id").and_then(Value::as_str)
        && !id.eq_ignore_ascii_case(urn)
    {
        return Err(ScimError::invalid_value(format!("the body's id '{id}' is not the URN of the path, '{urn}'")));
    }
    let extends = match get("extends").and_then(Value::as_str) {
        Some(k) => kind_of(k).ok_or_else(|| ScimError::invalid_value("'extends' is 'User' or 'Group'"))?,
        None => urn
            .rsplit(':')
            .next()
            .and_then(kind_of)
            .ok_or_else(|| ScimError::invalid_value("say which resource type this extends: \"extends\": \"User\" or \"Group\""))?,
    };
    let defs = parse_attributes(get("attributes"), "the extension")?;
    let text = |name: &str, default: &str| get(name).and_then(Value::as_str).unwrap_or(default).to_string();
    let schema = SchemaDef {
        id: Text::Owned(urn.to_string()),
        name: text("name", urn.rsplit(':').nth(1).unwrap_or("Extension")).into(),
        description: text("description", "").into(),
        attrs: defs,
    };
    Ok(Declaration { extends, schema: Arc::new(schema), retired: Vec::new(), deleted: false })
}

/// A §7 `attributes` list: each definition checked, names distinct within `within`, at most
/// [`MAX_ATTRIBUTES`] sub-attributes included.
pub(crate) fn parse_attributes(attrs: Option<&Value>, within: &str) -> Result<Vec<AttrDef>> {
    let attrs = attrs
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_value(format!("'attributes' of {within} is a list of attribute definitions")))?;
    if attrs.is_empty() {
        return Err(ScimError::invalid_value(format!("'attributes' of {within} is empty: declare at least one attribute")));
    }
    let mut defs = Vec::with_capacity(attrs.len());
    for a in attrs {
        defs.push(parse_attr(a, true)?);
    }
    check_names(&defs, within)?;
    let count: usize = defs.iter().map(|d| 1 + d.sub.len()).sum();
    if count > MAX_ATTRIBUTES {
        return Err(ScimError::bad(crate::error::ScimType::TooMany, format!("at most {MAX_ATTRIBUTES} attributes per schema")));
    }
    Ok(defs)
}

/// A schema URN a tenant may define: `urn:`, non-empty segments, printable ASCII without `#`
/// or `/`, not one of the server's own schemas.
pub(crate) fn check_urn(urn: &str) -> Result<()> {
    let ok = urn.len() <= 256
        && urn.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && urn.split(':').all(|seg| !seg.is_empty())
        && urn.chars().all(|c| c.is_ascii_graphic() && c != '#' && c != '/');
    if !ok {
        return Err(ScimError::invalid_value(format!(
            "'{urn}' is not an extension URN (e.g. urn:ietf:params:scim:schemas:extension:acme:2.0:User)"
        )));
    }
    if [URN_USER, URN_GROUP, URN_ENTERPRISE, URN_ACCESS].iter().any(|b| b.eq_ignore_ascii_case(urn)) {
        return Err(ScimError::invalid_value(format!("'{urn}' is a schema of the server; declare an extension of your own")));
    }
    Ok(())
}

/// RFC 7643 ATTRNAME: a letter, then letters, digits, '-' or '_'.
fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic()) && c.all(|x| x.is_ascii_alphanumeric() || x == '-' || x == '_') && name.len() <= 64
}

fn check_names(defs: &[AttrDef], within: &str) -> Result<()> {
    for (i, d) in defs.iter().enumerate() {
        if defs[..i].iter().any(|o| o.name.eq_ignore_ascii_case(&d.name)) {
            return Err(ScimError::invalid_value(format!("'{}' is declared twice in {within}", d.name)));
        }
    }
    Ok(())
}

/// The attribute characteristics RFC 7643 §7 names, with the values each may take.
const TYPES: &[(&str, AttrType)] = &[
    ("string", AttrType::String),
    ("boolean", AttrType::Boolean),
    ("decimal", AttrType::Decimal),
    ("integer", AttrType::Integer),
    ("dateTime", AttrType::DateTime),
    ("binary", AttrType::Binary),
    ("reference", AttrType::Reference),
    ("complex", AttrType::Complex),
];
const MUTABILITIES: &[(&str, Mutability)] = &[
    ("readWrite", Mutability::ReadWrite),
    ("readOnly", Mutability::ReadOnly),
    ("immutable", Mutability::Immutable),
    ("writeOnly", Mutability::WriteOnly),
];
const RETURNED: &[(&str, Returned)] =
    &[("default", Returned::Default), ("always", Returned::Always), ("never", Returned::Never), ("request", Returned::Request)];
/// `global` cannot be enforced across service providers; within this one it is `server`.
const UNIQUENESS: &[(&str, bool)] = &[("none", false), ("server", true), ("global", true)];

/// One attribute definition being read: its members by case-insensitive name, and errors that
/// name the attribute.
struct Characteristics<'a> {
    members: &'a Map<String, Value>,
    name: &'a str,
}

impl<'a> Characteristics<'a> {
    fn get(&self, n: &str) -> Option<&'a Value> {
        crate::names::value(self.members, n).filter(|v| !v.is_null())
    }

    fn bad(&self, what: &str) -> ScimError {
        ScimError::invalid_value(format!("attribute '{}': {what}", self.name))
    }

    fn flag(&self, n: &str) -> Result<bool> {
        match self.get(n) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.bad(&format!("'{n}' is true or false"))),
        }
    }

    /// The value of `n` (a string from `table`, or `default` when absent).
    fn choose<T: Copy>(&self, n: &str, default: &str, table: &[(&str, T)]) -> Result<T> {
        let word = match self.get(n) {
            None => default,
            Some(Value::String(s)) => s,
            Some(_) => return Err(self.bad(&format!("'{n}' is a string"))),
        };
        table.iter().find(|(w, _)| *w == word).map(|(_, t)| *t).ok_or_else(|| {
            let allowed: Vec<&str> = table.iter().map(|(w, _)| *w).collect();
            self.bad(&format!("{n} '{word}' is not one of {}", allowed.join(", ")))
        })
    }

    fn strings(&self, n: &str) -> Result<Vec<Text>> {
        match self.get(n) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_str().map(|s| Text::Owned(s.to_string())).ok_or_else(|| self.bad(&format!("'{n}' holds strings"))))
                .collect(),
            Some(_) => Err(self.bad(&format!("'{n}' is a list of strings"))),
        }
    }
}

fn parse_attr(v: &Value, top: bool) -> Result<AttrDef> {
    let o = v.as_object().ok_or_else(|| ScimError::invalid_value("each attribute is an object with at least 'name' and 'type'"))?;
    let name = crate::names::value(o, "name").and_then(Value::as_str).unwrap_or_default();
    if !valid_name(name) {
        return Err(ScimError::invalid_value(format!("'{name}' is not an attribute name (a letter, then letters, digits, '-', '_')")));
    }
    let c = Characteristics { members: o, name };
    let ty = c.choose("type", "", TYPES)?;
    let description = match c.get("description") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(c.bad("'description' is a string")),
    };
    let mut def = AttrDef::new(name.to_string(), ty, description);
    def.multi = c.flag("multiValued")?;
    def.required = c.flag("required")?;
    def.case_exact = c.flag("caseExact")?;
    def.mutability = c.choose("mutability", "readWrite", MUTABILITIES)?;
    def.returned = c.choose("returned", "default", RETURNED)?;
    def.unique = c.choose("uniqueness", "none", UNIQUENESS)?;
    def.canonical = c.strings("canonicalValues")?;
    def.ref_types = c.strings("referenceTypes")?;
    def.sub = match c.get("subAttributes") {
        None => Vec::new(),
        Some(Value::Array(a)) => a.iter().map(|s| parse_attr(s, false)).collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(c.bad("'subAttributes' is a list of attribute definitions")),
    };
    check_shape(&c, &def, top)?;
    Ok(def)
}

/// What RFC 7643 §2.3.8 and this server allow: sub-attributes only under a top-level complex
/// attribute (which needs some), and `uniqueness: server` only on single-valued scalars.
fn check_shape(c: &Characteristics, def: &AttrDef, top: bool) -> Result<()> {
    match (def.ty, top, def.sub.is_empty()) {
        (AttrType::Complex, false, _) => return Err(c.bad("a sub-attribute cannot be complex (RFC 7643 §2.3.8)")),
        (AttrType::Complex, true, true) => return Err(c.bad("a complex attribute needs 'subAttributes'")),
        (AttrType::Complex, true, false) => {}
        (_, _, false) => return Err(c.bad("only complex attributes have 'subAttributes'")),
        _ => {}
    }
    check_names(&def.sub, &format!("'{}'", def.name))?;
    let scalar = !matches!(def.ty, AttrType::Complex | AttrType::Boolean | AttrType::Binary);
    if def.unique && !(top && !def.multi && scalar && def.mutability != Mutability::WriteOnly) {
        return Err(
            c.bad("only a single-valued string, integer, decimal, dateTime or reference attribute can be unique (uniqueness: server)")
        );
    }
    Ok(())
}

/// The RFC 7643 §7 representation of a declaration as stored (and returned by
/// `GET /Settings/Schemas/{urn}`).
pub fn to_json(d: &Declaration) -> Value {
    json!({
        "schemas": [crate::schema::URN_SCHEMA],
        "id": d.schema.id,
        "name": d.schema.name,
        "description": d.schema.description,
        "extends": kind_name(d.extends),
        "attributes": d.schema.attrs.iter().map(AttrDef::to_json).collect::<Vec<_>>(),
    })
}

/// The stored record of a tenant's declarations: `{"extensions": [{declaration, retired,
/// deleted}]}`.
pub fn record(decls: &[Declaration]) -> Value {
    let list: Vec<Value> = decls
        .iter()
        .map(|d| {
            let mut v = to_json(d);
            v["retired"] = Value::Array(d.retired.iter().map(AttrDef::to_json).collect());
            v["deleted"] = Value::Bool(d.deleted);
            v
        })
        .collect();
    json!({ "extensions": list })
}

/// Reads a stored record back. A declaration that no longer parses (it cannot, unless the item
/// was edited by hand) is skipped and logged, never served half-understood.
pub fn from_record(v: &Value) -> Vec<Declaration> {
    let mut out = Vec::new();
    for e in v["extensions"].as_array().into_iter().flatten() {
        let urn = e["id"].as_str().unwrap_or_default();
        match parse(urn, e) {
            Ok(mut d) => {
                d.retired = e["retired"].as_array().into_iter().flatten().filter_map(|a| parse_attr(a, true).ok()).collect();
                d.deleted = e["deleted"].as_bool().unwrap_or(false);
                out.push(d);
            }
            Err(err) => tracing::error!(urn, error = %err, "a stored schema declaration does not parse; it is not served"),
        }
    }
    out
}

/// Whether stored values of `before` are values of `after` too (so no check of them is needed):
/// the same type, multiplicity, case rule and uniqueness, and every sub-attribute kept alike
/// (a sub-attribute left out would be dropped from the next write of each value).
pub fn compatible(before: &AttrDef, after: &AttrDef) -> bool {
    let same = |a: &AttrDef, b: &AttrDef| a.ty == b.ty && a.multi == b.multi && a.case_exact == b.case_exact;
    same(before, after) && before.unique == after.unique && before.sub.iter().all(|b| after.sub_attr(&b.name).is_some_and(|s| same(b, s)))
}

/// What declaring `new` over the tenant's current declarations changes: the new list, and the
/// attributes whose stored values must be absent for the change to be safe (type-like changes,
/// and uniqueness switched either way or dropped with the attribute).
pub fn redeclare(current: &[Declaration], new: Declaration) -> Result<(Vec<Declaration>, Vec<String>)> {
    let mut list: Vec<Declaration> = current.to_vec();
    let mut must_be_empty = Vec::new();
    let old = list.iter().position(|d| d.schema.id.eq_ignore_ascii_case(&new.schema.id));
    let mut new = new;
    match old {
        Some(i) => {
            let prev = &list[i];
            if prev.extends != new.extends {
                must_be_empty.extend(prev.schema.attrs.iter().chain(&prev.retired).map(|a| a.name.to_string()));
            }
            // every attribute it had (declared or retired) is compared with its new definition
            for before in prev.schema.attrs.iter().chain(&prev.retired) {
                match new.schema.attr(&before.name) {
                    Some(after) if compatible(before, after) => {}
                    Some(_) => must_be_empty.push(before.name.to_string()),
                    None if before.unique => must_be_empty.push(before.name.to_string()),
                    None if !new.retired.iter().any(|r| r.name == before.name) => new.retired.push(before.clone()),
                    None => {}
                }
            }
            list[i] = new;
        }
        None => {
            if list.iter().filter(|d| !d.deleted).count() >= MAX_EXTENSIONS {
                return Err(ScimError::bad(crate::error::ScimType::TooMany, format!("at most {MAX_EXTENSIONS} extensions per tenant")));
            }
            list.push(new);
        }
    }
    must_be_empty.sort();
    must_be_empty.dedup();
    Ok((list, must_be_empty))
}

/// Deleting a declaration: it is kept as deleted (its values stay hidden); unique attributes
/// must hold no values (their claims would outlive them).
pub fn delete(current: &[Declaration], urn: &str) -> Result<(Vec<Declaration>, Vec<String>)> {
    let mut list = current.to_vec();
    let d = list
        .iter_mut()
        .find(|d| d.schema.id.eq_ignore_ascii_case(urn) && !d.deleted)
        .ok_or_else(|| ScimError::NotFound(format!("this tenant declares no extension '{urn}'")))?;
    d.deleted = true;
    let unique = d.schema.attrs.iter().filter(|a| a.unique).map(|a| a.name.to_string()).collect();
    Ok((list, unique))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost_center() -> Value {
        json!({"attributes": [
            {"name": "costCenter", "type": "string"},
            {"name": "badge", "type": "integer", "uniqueness": "server"},
            {"name": "site", "type": "complex", "subAttributes": [{"name": "code", "type": "string"}, {"name": "floor", "type": "integer"}]}
        ]})
    }

    #[test]
    fn declarations_parse_with_rfc_characteristics_and_infer_the_resource_type() {
        let d = parse("urn:ietf:params:scim:schemas:extension:acme:2.0:User", &cost_center()).unwrap();
        assert_eq!(d.extends, Kind::User);
        assert_eq!(d.schema.attrs.len(), 3);
        assert!(d.schema.attr("BADGE").unwrap().unique);
        assert_eq!(d.schema.attr("site").unwrap().sub.len(), 2);
        let back = to_json(&d);
        assert_eq!(parse(back["id"].as_str().unwrap(), &back).unwrap(), d, "the stored form reads back the same");
    }

    #[test]
    fn bad_declarations_are_400_naming_the_problem() {
        let urn = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
        for (body, says) in [
            (json!({"attributes": []}), "empty"),
            (json!({"attributes": [{"name": "9x", "type": "string"}]}), "not an attribute name"),
            (json!({"attributes": [{"name": "x", "type": "text"}]}), "type 'text'"),
            (json!({"attributes": [{"name": "x", "type": "complex"}]}), "needs 'subAttributes'"),
            (
                json!({"attributes": [{"name": "x", "type": "complex", "subAttributes": [{"name": "y", "type": "complex", "subAttributes": []}]}]}),
                "cannot be complex",
            ),
            (json!({"attributes": [{"name": "x", "type": "string", "multiValued": true, "uniqueness": "server"}]}), "can be unique"),
            (json!({"attributes": [{"name": "x", "type": "string"}, {"name": "X", "type": "string"}]}), "declared twice"),
            (json!({"id": "urn:other", "attributes": [{"name": "x", "type": "string"}]}), "not the URN"),
        ] {
            let e = parse(urn, &body).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(says), "{body}: {e}");
        }
        assert!(parse(URN_ENTERPRISE, &cost_center()).is_err(), "a server schema cannot be redeclared");
        assert!(parse("urn:acme:widgets", &cost_center()).is_err(), "the resource type must be said when the URN does not");
        assert_eq!(
            parse("urn:acme:widgets", &json!({"extends": "Group", "attributes": [{"name": "x", "type": "string"}]})).unwrap().extends,
            Kind::Group
        );
    }

    #[test]
    fn redeclaring_retires_what_it_leaves_out_and_names_what_must_hold_no_values() {
        let urn = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";
        let first = parse(urn, &cost_center()).unwrap();
        let (list, check) = redeclare(&[], first).unwrap();
        assert!(check.is_empty());
        // costCenter left out: retired (not checked); badge left out: unique, so checked; a
        // sub-attribute of site left out: checked (its values would be dropped)
        let narrower = parse(
            urn,
            &json!({"attributes": [{"name": "site", "type": "complex", "subAttributes": [{"name": "code", "type": "string"}]}]}),
        )
        .unwrap();
        let (list2, check) = redeclare(&list, narrower).unwrap();
        assert_eq!(check, vec!["badge".to_string(), "site".to_string()]);
        assert_eq!(list2[0].retired.iter().map(|a| a.name.to_string()).collect::<Vec<_>>(), vec!["costCenter"]);
        // costCenter back as an integer: its hidden values might not fit
        let retyped = parse(urn, &json!({"attributes": [{"name": "costCenter", "type": "integer"}]})).unwrap();
        assert_eq!(redeclare(&list2, retyped).unwrap().1, vec!["costCenter".to_string()], "site is retired, not checked");
        // the same definition again changes nothing that needs checking
        assert!(redeclare(&list, parse(urn, &cost_center()).unwrap()).unwrap().1.is_empty());
    }
}
