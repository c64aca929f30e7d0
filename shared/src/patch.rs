//! RFC 7644 §3.5.2 PATCH: parsing a PatchOp and applying its operations to a stored document,
//! all or nothing, including the forms Entra ID and Okta send (capitalised ops, path-less values
//! whose keys are paths, value-path creation, value-list removal, `""`/null clearing).

use crate::error::{Result, ScimError};
use crate::filter::{self, CompareOp, Filter};
use crate::path::{AttrPath, Named, Target};
use crate::resource;
use crate::schema::{AttrDef, Mutability, ResourceType, URN_PATCH};
use serde_json::{Map, Value};

/// Most operations accepted in one PATCH request.
pub const MAX_OPERATIONS: usize = 1000;

/// An operation kind; the wire value is case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// `add`: adds a value, or appends to a multi-valued attribute (RFC 7644 §3.5.2.1).
    Add,
    /// `replace`: replaces the value(s) at the path (RFC 7644 §3.5.2.3).
    Replace,
    /// `remove`: removes the value(s) at the path (RFC 7644 §3.5.2.2).
    Remove,
}

/// A PATCH path: `attr`, `attr.sub`, `attr[filter]`, `attr[filter].sub`, or a bare extension URN.
#[derive(Debug, Clone)]
pub struct PatchPath {
    /// The targeted attribute, without its sub-attribute (that is in [`sub`](Self::sub)).
    pub attr: AttrPath,
    /// The value filter in `attr[filter]`, selecting elements of a multi-valued attribute.
    pub filter: Option<Filter>,
    /// The sub-attribute name, from `attr.sub` or `attr[filter].sub`.
    pub sub: Option<String>,
    /// The path named a whole extension schema (`urn:...:enterprise:2.0:User`).
    pub extension: Option<String>,
}

impl PatchPath {
    /// Parses a PATCH path.
    pub fn parse(text: &str) -> Result<PatchPath> {
        let text = text.trim();
        if let Some(open) = text.find('[') {
            let close = text.rfind(']').ok_or_else(|| ScimError::invalid_path(format!("'{text}': '[' without ']'")))?;
            if close < open {
                return Err(ScimError::invalid_path(format!("'{text}' is not a valid path")));
            }
            let attr = AttrPath::parse(&text[..open])?;
            if attr.sub.is_some() {
                return Err(ScimError::invalid_path(format!("'{text}': a value filter applies to an attribute, not a sub-attribute")));
            }
            let filter = filter::parse(&text[open + 1..close]).map_err(|e| ScimError::invalid_path(format!("'{text}': {e}")))?;
            let rest = &text[close + 1..];
            let sub = match rest.strip_prefix('.') {
                Some(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$') => {
                    Some(s.to_string())
                }
                None if rest.is_empty() => None,
                _ => {
                    return Err(ScimError::invalid_path(format!("'{text}' is not a valid path")));
                }
            };
            return Ok(PatchPath { attr, filter: Some(filter), sub, extension: None });
        }
        match AttrPath::parse(text) {
            Ok(attr) => Ok(PatchPath { sub: attr.sub.clone(), attr: AttrPath { sub: None, ..attr }, filter: None, extension: None }),
            // a URN whose last segment no attribute name could be (`…:2.0`) can only name a
            // whole extension: whether the type has it is decided when applied
            Err(_) if text.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) => Ok(PatchPath::extension_root(text)),
            Err(e) => Err(e),
        }
    }

    fn extension_root(urn: &str) -> PatchPath {
        PatchPath {
            attr: AttrPath { urn: None, attr: String::new(), sub: None },
            filter: None,
            sub: None,
            extension: Some(urn.to_string()),
        }
    }
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The `op` member: add, replace or remove.
    pub op: OpKind,
    /// The `path` member; `None` when absent or empty, so `value` names the attributes.
    pub path: Option<PatchPath>,
    /// The `value` member; required for add and replace, optional for remove.
    pub value: Option<Value>,
}

/// A parsed PatchOp request.
#[derive(Debug, Clone)]
pub struct PatchOp {
    /// The `Operations` array, in the order they are applied (at most [`MAX_OPERATIONS`]).
    pub operations: Vec<Operation>,
}

impl PatchOp {
    /// Parses a PatchOp body. Extra members (a top-level `id`, per-operation `name`) are ignored.
    pub fn parse(body: &Value) -> Result<PatchOp> {
        let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a PATCH body must be a PatchOp object"))?;
        if let Some((_, schemas)) = crate::names::member(obj, "schemas") {
            let ok = schemas.as_array().is_some_and(|a| a.iter().filter_map(Value::as_str).any(|s| s.eq_ignore_ascii_case(URN_PATCH)));
            if !ok {
                return Err(ScimError::invalid_syntax(format!("'schemas' must be [\"{URN_PATCH}\"]")));
            }
        }
        let ops = crate::names::value(obj, "Operations").ok_or_else(|| ScimError::invalid_syntax("a PatchOp needs 'Operations'"))?;
        let ops = ops.as_array().ok_or_else(|| ScimError::invalid_syntax("'Operations' must be an array"))?;
        if ops.is_empty() {
            return Err(ScimError::invalid_syntax("'Operations' is empty"));
        }
        if ops.len() > MAX_OPERATIONS {
            return Err(ScimError::bad(crate::error::ScimType::TooMany, format!("at most {MAX_OPERATIONS} operations per PATCH")));
        }
        let mut operations = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            let o = op.as_object().ok_or_else(|| ScimError::invalid_syntax(format!("operation {i} is not an object")))?;
            let get = |name: &str| crate::names::value(o, name);
            let kind = match get("op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
                Some("add") => OpKind::Add,
                Some("replace") => OpKind::Replace,
                Some("remove") => OpKind::Remove,
                Some(other) => {
                    return Err(ScimError::invalid_syntax(format!("operation {i}: unknown op '{other}' (add, replace or remove)")));
                }
                None => {
                    return Err(ScimError::invalid_syntax(format!("operation {i}: 'op' is missing")));
                }
            };
            let path = match get("path") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(PatchPath::parse(s)?),
                Some(_) => {
                    return Err(ScimError::invalid_path(format!("operation {i}: 'path' must be a string")));
                }
            };
            let value = get("value").cloned();
            if kind != OpKind::Remove && value.is_none() {
                return Err(ScimError::invalid_syntax(format!(
                    "operation {i}: '{}' needs a 'value'",
                    if kind == OpKind::Add { "add" } else { "replace" }
                )));
            }
            if kind == OpKind::Remove && path.is_none() {
                return Err(ScimError::no_target(format!("operation {i}: 'remove' needs a 'path'")));
            }
            operations.push(Operation { op: kind, path, value });
        }
        Ok(PatchOp { operations })
    }
}

/// Applies every operation to a copy of `doc`; returns the new canonical document.
/// `doc` holds `id` and `meta`, which no operation may change.
pub fn apply(
    rt: &ResourceType,
    doc: &Map<String, Value>,
    patch: &PatchOp,
    undeclared: &resource::Undeclared,
) -> Result<Map<String, Value>> {
    let mut work = doc.clone();
    let id = doc.get("id").cloned();
    let meta = work.remove("meta");
    for op in &patch.operations {
        match &op.path {
            Some(p) if names_undeclared_extension(rt, p) => undeclared.note(p.attr.urn.as_deref().unwrap_or_default())?,
            Some(p) => apply_path(rt, &mut work, op.op, p, op.value.as_ref())?,
            None => apply_pathless(rt, &mut work, op.op, op.value.as_ref(), id.as_ref(), undeclared)?,
        }
    }
    let mut out = resource::finish(rt, work)?;
    if let Some(id) = id {
        // keep id first
        let mut with_id = Map::with_capacity(out.len() + 2);
        with_id.insert("id".into(), id);
        out.remove("id");
        with_id.append(&mut out);
        out = with_id;
    }
    if let Some(m) = meta {
        out.insert("meta".into(), m);
    }
    Ok(out)
}

/// Whether a path is qualified by a URN that names none of the resource type's schemas (and
/// is not itself a whole extension's URN).
fn names_undeclared_extension(rt: &ResourceType, p: &PatchPath) -> bool {
    p.extension.is_none()
        && p.attr.urn.as_deref().is_some_and(|u| rt.schema_by_urn(u).is_none())
        && rt.extension(&p.attr.to_string()).is_none()
}

fn apply_pathless(
    rt: &ResourceType,
    doc: &mut Map<String, Value>,
    op: OpKind,
    value: Option<&Value>,
    id: Option<&Value>,
    undeclared: &resource::Undeclared,
) -> Result<()> {
    let Some(Value::Object(members)) = value else {
        return Err(ScimError::invalid_value("an operation without 'path' needs an object 'value'"));
    };
    for (key, v) in members {
        if key.eq_ignore_ascii_case("schemas") || key.eq_ignore_ascii_case("meta") {
            continue;
        }
        if key.eq_ignore_ascii_case("id") {
            // Okta sends the resource's own id inside the value; only a different id is a change.
            if Some(v) != id && !v.is_null() {
                return Err(ScimError::mutability("'id' is readOnly"));
            }
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            apply_path(rt, doc, op, &PatchPath::extension_root(&ext.id), Some(v))?;
            continue;
        }
        // Entra sends keys that are paths: "name.givenName", "emails[type eq \"work\"].value", URN-qualified.
        let Ok(path) = PatchPath::parse(key) else {
            continue;
        };
        if names_undeclared_extension(rt, &path) {
            undeclared.note(resource::undeclared_urn(key, Some(v)))?;
            continue;
        }
        // a value-path key of a path-less operation (Entra's form, which RFC 7644's valuePath
        // rule does not cover) sets the element it names, creating it when none matches
        let op = if path.filter.is_some() && op == OpKind::Replace { OpKind::Add } else { op };
        match apply_path(rt, doc, op, &path, Some(v)) {
            Err(ScimError::BadRequest { scim_type: crate::error::ScimType::InvalidPath, .. }) => continue, // unknown attribute: ignored
            other => other?,
        }
    }
    Ok(())
}

/// What a path names, through the one resolver (`AttrPath::named`): a whole extension only when
/// nothing narrows it (no filter, no sub-attribute).
fn resolve<'a>(rt: &'a ResourceType, p: &PatchPath) -> Result<Named<'a>> {
    let unknown = || ScimError::invalid_path(format!("'{}' is not an attribute of {}", p.attr, rt.name));
    match (p.attr.named(rt).ok_or_else(unknown)?, &p.sub) {
        (Named::Attribute(mut t), Some(sub)) => {
            t.sub = Some(t.def.sub_attr(sub).ok_or_else(unknown)?);
            Ok(Named::Attribute(t))
        }
        (Named::Extension(_), _) if p.filter.is_some() || p.sub.is_some() => Err(unknown()),
        (named, _) => Ok(named),
    }
}

fn container<'a>(doc: &'a mut Map<String, Value>, ext: Option<&str>) -> Option<&'a mut Map<String, Value>> {
    match ext {
        None => Some(doc),
        Some(urn) => doc.entry(urn.to_string()).or_insert_with(|| Value::Object(Map::new())).as_object_mut(),
    }
}

fn apply_path(rt: &ResourceType, doc: &mut Map<String, Value>, op: OpKind, p: &PatchPath, value: Option<&Value>) -> Result<()> {
    if let Some(urn) = &p.extension {
        return apply_extension_root(rt, doc, op, urn, value);
    }
    let t = match resolve(rt, p)? {
        Named::Extension(ext) => return apply_extension_root(rt, doc, op, &ext.id, value),
        Named::Attribute(t) => t,
    };
    if t.def.mutability == Mutability::ReadOnly || t.sub.is_some_and(|s| s.mutability == Mutability::ReadOnly && s.name != "display") {
        return Err(ScimError::mutability(format!("'{}' is readOnly", t.canonical_name())));
    }
    if t.def.mutability == Mutability::WriteOnly {
        return Ok(()); // password: accepted, never stored
    }
    let name: &str = &t.def.name;
    let Some(c) = container(doc, t.ext) else {
        return Err(ScimError::Internal("extension slot is not an object".into()));
    };

    if let Some(f) = &p.filter {
        if !(t.def.multi && t.def.is_complex()) {
            return Err(ScimError::invalid_path(format!("'{}' is not a multi-valued complex attribute", t.canonical_name())));
        }
        return apply_value_path(rt, c, op, t, f, value);
    }

    match (op, t.sub) {
        (OpKind::Remove, None) => remove_attr(c, &t, value),
        (OpKind::Remove, Some(sub)) => remove_sub(c, name, sub),
        (_, Some(sub)) => set_sub(c, name, sub, value)?,
        (_, None) if t.def.multi => set_multi(c, &t, op, value)?,
        (_, None) if t.def.is_complex() => set_complex(c, &t, value)?,
        (_, None) => set_or_clear(c, name, resource::normalize_value(t.def, value.unwrap_or(&Value::Null))?),
    }
    Ok(())
}

/// `remove` of a whole attribute; with a value list (Entra), of only those elements.
fn remove_attr(c: &mut Map<String, Value>, t: &Target, value: Option<&Value>) {
    let name: &str = &t.def.name;
    match (value, c.get_mut(name)) {
        (Some(v), Some(Value::Array(items))) if t.def.multi && !v.is_null() => {
            let wanted: Vec<Value> = as_list(v).into_iter().filter_map(|e| element_value(&e)).collect();
            items.retain(|e| !e.get("value").is_some_and(|ev| wanted.iter().any(|w| values_equal(t.def, ev, w))));
            if items.is_empty() {
                c.remove(name);
            }
        }
        _ => {
            c.remove(name);
        }
    }
}

/// `remove` of a sub-attribute: of the complex value, or of every element.
fn remove_sub(c: &mut Map<String, Value>, name: &str, sub: &AttrDef) {
    match c.get_mut(name) {
        Some(Value::Object(o)) => {
            o.remove(&*sub.name);
            if o.is_empty() {
                c.remove(name);
            }
        }
        Some(Value::Array(items)) => {
            for e in items.iter_mut().filter_map(Value::as_object_mut) {
                e.remove(&*sub.name);
            }
        }
        _ => {}
    }
}

/// `add`/`replace` of a sub-attribute: in the complex value, or in every element.
fn set_sub(c: &mut Map<String, Value>, name: &str, sub: &AttrDef, value: Option<&Value>) -> Result<()> {
    let v = resource::normalize_value(sub, value.unwrap_or(&Value::Null))?;
    match c.get_mut(name) {
        Some(Value::Array(items)) => {
            for e in items.iter_mut().filter_map(Value::as_object_mut) {
                set_or_clear(e, &sub.name, v.clone());
            }
        }
        Some(Value::Object(o)) => {
            set_or_clear(o, &sub.name, v);
            if o.is_empty() {
                c.remove(name);
            }
        }
        _ => {
            if let Some(v) = v {
                c.insert(name.to_string(), Value::Object(Map::from_iter([(sub.name.to_string(), v)])));
            }
        }
    }
    Ok(())
}

/// `replace` of a multi-valued attribute (the new list), or `add` (appended, without duplicates;
/// a new primary clears the old one).
fn set_multi(c: &mut Map<String, Value>, t: &Target, op: OpKind, value: Option<&Value>) -> Result<()> {
    let name: &str = &t.def.name;
    let new_items = match resource::normalize_value(t.def, value.unwrap_or(&Value::Null))? {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    };
    if op == OpKind::Replace {
        match new_items.is_empty() {
            true => c.remove(name),
            false => c.insert(name.to_string(), Value::Array(new_items)),
        };
        return Ok(());
    }
    if new_items.is_empty() {
        return Ok(());
    }
    let adds_primary = new_items.iter().any(is_primary);
    let slot = c.entry(name.to_string()).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(items) = slot {
        if adds_primary {
            clear_primary(items);
        }
        for n in new_items {
            if !items.contains(&n) {
                items.push(n);
            }
        }
    }
    Ok(())
}

/// `add`/`replace` of a single-valued complex attribute: the members sent are merged into the
/// stored value, members sent as null or "" are cleared, the rest kept.
fn set_complex(c: &mut Map<String, Value>, t: &Target, value: Option<&Value>) -> Result<()> {
    let name: &str = &t.def.name;
    let new = match (resource::normalize_value(t.def, value.unwrap_or(&Value::Null))?, value) {
        // an object whose members all clear: merge the clears, keep the rest
        (None, Some(Value::Object(_))) => Some(Value::Object(Map::new())),
        (n, _) => n,
    };
    let subs = match new {
        None => {
            c.remove(name);
            return Ok(());
        }
        Some(Value::Object(subs)) => subs,
        Some(_) => return Err(ScimError::invalid_value(format!("'{}' must be an object", t.canonical_name()))),
    };
    let explicit_clears: Vec<String> = match value {
        Some(Value::Object(o)) => o
            .iter()
            .filter(|(_, v)| v.is_null() || v.as_str() == Some(""))
            .filter_map(|(k, _)| t.def.sub_attr(k).map(|s| s.name.to_string()))
            .collect(),
        _ => Vec::new(),
    };
    let slot = c.entry(name.to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(o) = slot {
        for k in explicit_clears {
            o.remove(&k);
        }
        o.extend(subs);
    }
    if c.get(name).is_some_and(|v| v.as_object().is_some_and(Map::is_empty)) {
        c.remove(name);
    }
    Ok(())
}

fn apply_extension_root(rt: &ResourceType, doc: &mut Map<String, Value>, op: OpKind, urn: &str, value: Option<&Value>) -> Result<()> {
    let Some(ext) = rt.extension(urn) else {
        return Err(ScimError::invalid_path(format!("'{urn}' is not an extension of {}", rt.name)));
    };
    if op == OpKind::Remove || value.is_none_or(Value::is_null) {
        if op == OpKind::Remove {
            doc.remove(&*ext.id);
        }
        return Ok(());
    }
    let Some(Value::Object(members)) = value else {
        return Err(ScimError::invalid_value(format!("'{}' must be an object", ext.id)));
    };
    for (k, v) in members {
        let p = PatchPath {
            attr: AttrPath { urn: Some(ext.id.to_string()), attr: k.clone(), sub: None },
            filter: None,
            sub: None,
            extension: None,
        };
        let Ok(inner) = PatchPath::parse(&format!("{}:{k}", ext.id)) else {
            continue;
        };
        let p = if inner.filter.is_some() || inner.sub.is_some() { inner } else { p };
        match apply_path(rt, doc, op, &p, Some(v)) {
            Err(ScimError::BadRequest { scim_type: crate::error::ScimType::InvalidPath, .. }) => continue,
            other => other?,
        }
    }
    Ok(())
}

fn apply_value_path(rt: &ResourceType, c: &mut Map<String, Value>, op: OpKind, t: Target, f: &Filter, value: Option<&Value>) -> Result<()> {
    let base = Target { sub: None, ..t };
    let expr = filter::compile_element(f, rt, base).map_err(|e| ScimError::invalid_path(e.to_string()))?;
    let empty = Map::new();
    let name: &str = &t.def.name;
    let items: &mut Vec<Value> = {
        let slot = c.entry(name.to_string()).or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        match slot {
            Value::Array(a) => a,
            _ => {
                return Err(ScimError::Internal("multi-valued slot is not an array".into()));
            }
        }
    };
    let matched: Vec<usize> =
        items.iter().enumerate().filter(|(_, e)| e.as_object().is_some_and(|o| expr.matches_element(&empty, o))).map(|(i, _)| i).collect();
    match (op, t.sub) {
        (OpKind::Remove, Some(sub)) => {
            for &i in &matched {
                if let Some(o) = items[i].as_object_mut() {
                    o.remove(&*sub.name);
                }
            }
        }
        (OpKind::Remove, None) => {
            let mut i = 0;
            items.retain(|_| {
                i += 1;
                !matched.contains(&(i - 1))
            });
        }
        (_, Some(sub)) => set_sub_of_matched(items, &matched, t, op, sub, f, value)?,
        (_, None) => merge_into_matched(items, &matched, t, op, f, value)?,
    }
    items.retain(|e| e.as_object().is_some_and(|o| !o.is_empty()));
    if items.is_empty() {
        c.remove(name);
    }
    Ok(())
}

/// `add`/`replace` of `attr[filter].sub`: set on every matched element. With none matched,
/// `add` creates the element the filter describes, with this sub-attribute (Entra), and
/// `replace` is `noTarget` (RFC 7644 §3.5.2.3: "SHALL indicate failure ... noTarget").
fn set_sub_of_matched(
    items: &mut Vec<Value>,
    matched: &[usize],
    t: Target,
    op: OpKind,
    sub: &AttrDef,
    f: &Filter,
    value: Option<&Value>,
) -> Result<()> {
    let v = resource::normalize_value(sub, value.unwrap_or(&Value::Null))?;
    if matched.is_empty() && op == OpKind::Replace {
        return Err(ScimError::no_target(format!("no '{}' element matches the filter", t.canonical_name())));
    }
    if matched.is_empty() {
        if let Some(v) = v {
            let mut e = equalities(f, t);
            e.insert(sub.name.to_string(), v);
            if is_primary(&Value::Object(e.clone())) {
                clear_primary(items);
            }
            items.push(Value::Object(e));
        }
        return Ok(());
    }
    if sub.name == "primary" && v == Some(Value::Bool(true)) {
        clear_primary(items);
    }
    for &i in matched {
        if let Some(o) = items[i].as_object_mut() {
            set_or_clear(o, &sub.name, v.clone());
        }
    }
    Ok(())
}

/// `add`/`replace` of `attr[filter]` with an object: merged into every matched element; with
/// none matched, `add` creates the element the filter describes and `replace` is `noTarget`.
fn merge_into_matched(items: &mut Vec<Value>, matched: &[usize], t: Target, op: OpKind, f: &Filter, value: Option<&Value>) -> Result<()> {
    let new = resource::normalize_value(t.def, value.unwrap_or(&Value::Null))?;
    let Some(Value::Object(patch)) = new.and_then(|v| v.as_array().and_then(|a| a.first().cloned())) else {
        return Err(ScimError::invalid_value(format!("'{}[...]' needs an object value", t.canonical_name())));
    };
    if matched.is_empty() {
        if op == OpKind::Replace {
            return Err(ScimError::no_target(format!("no '{}' element matches the filter", t.canonical_name())));
        }
        let mut e = equalities(f, t);
        e.extend(patch);
        items.push(Value::Object(e));
        return Ok(());
    }
    if is_primary(&Value::Object(patch.clone())) {
        clear_primary(items);
    }
    for &i in matched {
        if let Some(o) = items[i].as_object_mut() {
            o.extend(patch.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    Ok(())
}

/// The `sub eq "value"` conditions of an AND-chain filter, as an element to create.
fn equalities(f: &Filter, t: Target) -> Map<String, Value> {
    let mut out = Map::new();
    fn walk(f: &Filter, t: Target, out: &mut Map<String, Value>) {
        match f {
            Filter::And(a, b) => {
                walk(a, t, out);
                walk(b, t, out);
            }
            Filter::Compare { path, op: CompareOp::Eq, value } if path.urn.is_none() && path.sub.is_none() && !value.is_null() => {
                if let Some(sub) = t.def.sub_attr(&path.attr)
                    && let Ok(Some(v)) = resource::normalize_value(sub, value)
                {
                    out.insert(sub.name.to_string(), v);
                }
            }
            _ => {}
        }
    }
    walk(f, t, &mut out);
    out
}

fn set_or_clear(o: &mut Map<String, Value>, key: &str, v: Option<Value>) {
    match v {
        Some(v) => {
            o.insert(key.to_string(), v);
        }
        None => {
            o.remove(key);
        }
    }
}

fn is_primary(v: &Value) -> bool {
    v.get("primary") == Some(&Value::Bool(true))
}

fn clear_primary(items: &mut [Value]) {
    for e in items.iter_mut().filter_map(Value::as_object_mut) {
        if e.get("primary") == Some(&Value::Bool(true)) {
            e.insert("primary".into(), Value::Bool(false));
        }
    }
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    }
}

fn element_value(e: &Value) -> Option<Value> {
    match e {
        Value::Object(o) => crate::names::value(o, "value").cloned(),
        Value::String(_) => Some(e.clone()),
        _ => None,
    }
}

fn values_equal(def: &crate::schema::AttrDef, a: &Value, b: &Value) -> bool {
    let exact = def.sub_attr("value").is_some_and(|d| d.case_exact);
    match (a.as_str(), b.as_str()) {
        (Some(x), Some(y)) if !exact => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::schema::{URN_ENTERPRISE, user_type};
    use serde_json::json;

    fn user() -> Map<String, Value> {
        json!({
            "id": "u1", "userName": "ann", "active": true,
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "ann@work.example", "type": "work", "primary": true}],
            "meta": {"resourceType": "User", "version": "W/\"1\""}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn run(ops: Value) -> Result<Map<String, Value>> {
        let p = PatchOp::parse(&json!({"schemas": [URN_PATCH], "Operations": ops}))?;
        apply(user_type(), &user(), &p, &resource::Undeclared::default())
    }

    #[test]
    fn entra_capitalised_ops_and_string_booleans() {
        let d = run(json!([{"op": "Replace", "path": "active", "value": "False"}])).unwrap();
        assert_eq!(d["active"], false);
        let d = run(json!([{"op": "replace", "value": {"active": false}}])).unwrap();
        assert_eq!(d["active"], false, "okta's path-less deactivate");
    }

    #[test]
    fn entra_pathless_value_with_path_keys() {
        let d = run(json!([{"op": "replace", "value": {
            "name.givenName": "Anna",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
            "emails[type eq \"work\"].value": "anna@work.example",
            "phoneNumbers[type eq \"mobile\"].value": "+1 555",
            "nosuch": "ignored"
        }}]))
        .unwrap();
        assert_eq!(d["name"]["givenName"], "Anna");
        assert_eq!(d["name"]["familyName"], "Lee");
        assert_eq!(d[URN_ENTERPRISE]["department"], "R&D");
        assert_eq!(d["emails"][0]["value"], "anna@work.example");
        assert_eq!(d["phoneNumbers"], json!([{"value": "+1 555", "type": "mobile"}]));
    }

    #[test]
    fn manager_bare_string_object_and_clearing() {
        let path = format!("{URN_ENTERPRISE}:manager");
        let d = run(json!([{"op": "Add", "path": path, "value": "m1"}])).unwrap();
        assert_eq!(d[URN_ENTERPRISE]["manager"], json!({"value": "m1"}));
        let d = run(json!([{"op": "add", "path": path, "value": {"value": "m2"}}])).unwrap();
        assert_eq!(d[URN_ENTERPRISE]["manager"], json!({"value": "m2"}));
        let d = run(json!([{"op": "add", "path": path, "value": "m1"}, {"op": "replace", "path": path, "value": ""}])).unwrap();
        assert!(!d.contains_key(URN_ENTERPRISE));
        let d = run(json!([{"op": "add", "path": path, "value": "m1"}, {"op": "remove", "path": path}])).unwrap();
        assert!(!d.contains_key(URN_ENTERPRISE));
    }

    #[test]
    fn null_and_empty_string_clear() {
        let d = run(json!([{"op": "replace", "path": "name.givenName", "value": ""}])).unwrap();
        assert_eq!(d["name"], json!({"familyName": "Lee"}));
        let d = run(json!([{"op": "replace", "value": {"name": {"familyName": null}}}])).unwrap();
        assert_eq!(d["name"], json!({"givenName": "Ann"}));
    }

    #[test]
    fn multi_valued_add_remove_and_primary() {
        let d = run(json!([{"op": "add", "path": "emails", "value": [{"value": "b@x", "type": "home", "primary": true}]}])).unwrap();
        assert_eq!(d["emails"].as_array().unwrap().len(), 2);
        assert_eq!(d["emails"][0]["primary"], false, "adding a primary clears the old one");
        let d = run(json!([{"op": "remove", "path": "emails[type eq \"work\"]"}])).unwrap();
        assert!(!d.contains_key("emails"));
        let d = run(json!([{"op": "remove", "path": "emails", "value": [{"value": "ANN@work.example"}]}])).unwrap();
        assert!(!d.contains_key("emails"), "value-list removal");
        let d = run(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])).unwrap();
        assert_eq!(d["emails"].as_array().unwrap().len(), 1, "removing nothing is a no-op");
    }

    #[test]
    fn json_encoded_roles() {
        let d = run(
            json!([{"op": "add", "path": "roles", "value": [{"value": "{\"id\":\"r\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]}]),
        )
        .unwrap();
        assert_eq!(d["roles"][0]["value"], "Admin");
    }

    #[test]
    fn an_unmatched_value_path_is_no_target_for_replace_and_created_by_add() {
        let path = "emails[type eq \"nonexistent\"].value";
        let e = run(json!([{"op": "replace", "path": path, "value": "nope@example.com"}])).unwrap_err();
        assert_eq!(e.scim_type(), Some(crate::error::ScimType::NoTarget), "RFC 7644 §3.5.2.3");
        let d = run(json!([{"op": "add", "path": path, "value": "new@example.com"}])).unwrap();
        assert!(d["emails"].as_array().unwrap().iter().any(|m| m["type"] == "nonexistent" && m["value"] == "new@example.com"), "{d:?}");
        // Entra's path-less form names the value path as a key: it sets (and creates) the element
        let d = run(json!([{"op": "replace", "value": {path: "keyed@example.com"}}])).unwrap();
        assert!(d["emails"].as_array().unwrap().iter().any(|m| m["type"] == "nonexistent" && m["value"] == "keyed@example.com"), "{d:?}");
    }

    #[test]
    fn errors_are_scim_errors_and_atomic() {
        let e = run(json!([{"op": "replace", "path": "id", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type(), Some(crate::error::ScimType::Mutability));
        let e = run(json!([{"op": "remove"}])).unwrap_err();
        assert_eq!(e.scim_type(), Some(crate::error::ScimType::NoTarget));
        let e = run(json!([{"op": "jump", "path": "x"}])).unwrap_err();
        assert_eq!(e.status(), 400);
        let e = run(json!([{"op": "replace", "path": "nosuch", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type(), Some(crate::error::ScimType::InvalidPath));
        let e = run(json!([{"op": "replace", "path": "emails[type eq ", "value": "x"}])).unwrap_err();
        assert_eq!(e.scim_type(), Some(crate::error::ScimType::InvalidPath));
        let e = run(json!([{"op": "remove", "path": "userName"}])).unwrap_err();
        assert_eq!(e.status(), 400);
        let e = run(json!([{"op": "replace", "path": "active", "value": "maybe"}])).unwrap_err();
        assert_eq!(e.scim_type(), Some(crate::error::ScimType::InvalidValue));
        let ok = run(json!([{"op": "replace", "value": {"id": "u1", "displayName": "A"}}])).unwrap();
        assert_eq!(ok["displayName"], "A", "okta's own id inside the value is accepted");
    }

    #[test]
    fn changed_attribute_names() {
        let old = user();
        let new = run(json!([{"op": "replace", "path": "name.givenName", "value": "Bo"}, {"op": "add", "path": format!("{URN_ENTERPRISE}:department"), "value": "X"}])).unwrap();
        assert_eq!(crate::diff::changed_attributes(&old, &new), vec!["name".to_string(), format!("{URN_ENTERPRISE}:department")]);
    }

    proptest::proptest! {
        #[test]
        fn path_parser_never_panics(s in "\\PC{0,60}") {
            let _ = PatchPath::parse(&s);
        }
    }

    #[test]
    fn a_whole_extension_is_a_path_whatever_its_urn_ends_in() {
        use crate::schema::{AttrType, SchemaDef, user_schema};
        let urn = "urn:acme:scim:ext:2.0";
        let ext = SchemaDef {
            id: urn.into(),
            name: "Acme".into(),
            description: "".into(),
            attrs: vec![AttrDef::new("level", AttrType::String, "")],
        };
        let rt = ResourceType {
            name: "User".into(),
            endpoint: "/Users".into(),
            description: "".into(),
            schema: std::sync::Arc::new(user_schema().clone()),
            extensions: vec![std::sync::Arc::new(ext)],
            required: vec![],
            hides_values: false,
        };
        let run = |ops: Value| {
            let p = PatchOp::parse(&json!({"schemas": [URN_PATCH], "Operations": ops}))?;
            apply(&rt, &user(), &p, &resource::Undeclared::default())
        };
        let d = run(json!([{"op": "add", "path": urn, "value": {"level": "3"}}])).unwrap();
        assert_eq!(d[urn], json!({"level": "3"}));
        let d = run(json!([{"op": "add", "path": format!("{urn}:level"), "value": "4"}])).unwrap();
        assert_eq!(d[urn], json!({"level": "4"}));
        let e = run(json!([{"op": "add", "path": "urn:acme:scim:other:2.0", "value": {"level": "3"}}])).unwrap_err();
        assert_eq!(e.status(), 400);
        let e = run(json!([{"op": "add", "path": format!("{urn}[level eq \"3\"]"), "value": {"level": "3"}}])).unwrap_err();
        assert_eq!(e.status(), 400);
    }
}
