//! Resource documents: turning what a client sent into the canonical stored form (canonical
//! attribute names, real types, no read-only or write-only parts), and rendering stored documents
//! back to the wire with `schemas` and `meta.location`.

use crate::error::{Result, ScimError};
use crate::schema::{AttrDef, AttrType, Mutability, ResourceType, common_attrs};
use serde_json::{Map, Value};

/// Entra sends booleans as "True"/"False" strings.
pub fn parse_bool_str(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Extension URNs a request named that its resource type does not declare. Under the tenant's
/// `reject` policy the first one is `400 invalidValue`; otherwise they are dropped and
/// remembered, so the audit entry can name them (an IdP reports success for data the host
/// application never gets: the IT admin needs to see why).
#[derive(Debug, Default)]
pub struct Undeclared {
    reject: bool,
    seen: std::sync::Mutex<Vec<String>>,
}

/// Most undeclared URNs remembered for one request.
const UNDECLARED_KEPT: usize = 8;

impl Undeclared {
    /// A collector; `reject` refuses instead of collecting.
    pub fn new(reject: bool) -> Undeclared {
        Undeclared { reject, seen: Default::default() }
    }

    /// One undeclared URN met in the request.
    pub fn note(&self, urn: &str) -> Result<()> {
        if self.reject {
            return Err(ScimError::invalid_value(format!(
                "'{urn}' is not an extension this tenant declares (and its policy refuses undeclared extensions)"
            )));
        }
        if let Ok(mut seen) = self.seen.lock()
            && seen.len() < UNDECLARED_KEPT
            && !seen.iter().any(|u| u.eq_ignore_ascii_case(urn))
        {
            seen.push(urn.chars().take(256).collect());
        }
        Ok(())
    }

    /// The URNs dropped so far.
    pub fn urns(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The URN of a client member naming no known schema: the member itself when it holds an
/// object (`"urn:…:2.0:User": {…}`), else what precedes its attribute name.
pub fn undeclared_urn<'a>(key: &'a str, value: Option<&Value>) -> &'a str {
    if value.is_some_and(Value::is_object) { key } else { key.rsplit_once(':').map(|(u, _)| u).unwrap_or(key) }
}

/// Normalises a POST/PUT body into the canonical stored form, without `id` and `meta`.
/// Read-only attributes and unknown attributes are ignored (IdPs send them); extension URNs the
/// resource type does not declare go to `undeclared`; wrong types are `invalidValue`.
pub fn normalize(rt: &ResourceType, body: &Value, undeclared: &Undeclared) -> Result<Map<String, Value>> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("the request body must be a JSON object"))?;
    check_schemas(rt, obj)?;
    let mut out = Map::new();
    for (key, value) in obj {
        set_top(rt, &mut out, key, value, undeclared)?;
    }
    finish(rt, out)
}

/// Checks the `schemas` member: when present it must list the resource's core schema.
pub fn check_schemas(rt: &ResourceType, obj: &Map<String, Value>) -> Result<()> {
    let Some((_, v)) = crate::names::member(obj, "schemas") else {
        return Ok(());
    };
    let list = v.as_array().ok_or_else(|| ScimError::invalid_syntax("'schemas' must be an array of schema URNs"))?;
    if !list.iter().all(Value::is_string) {
        return Err(ScimError::invalid_syntax("'schemas' must be an array of schema URNs"));
    }
    if !list.iter().filter_map(Value::as_str).any(|s| s.eq_ignore_ascii_case(&rt.schema.id)) {
        return Err(ScimError::invalid_value(format!("'schemas' must include {}", rt.schema.id)));
    }
    Ok(())
}

/// Sets one top-level member of a client body into the canonical map (used by normalize and by
/// PATCH's path-less operations through `patch`).
fn set_top(rt: &ResourceType, out: &mut Map<String, Value>, key: &str, value: &Value, undeclared: &Undeclared) -> Result<()> {
    if key.eq_ignore_ascii_case("schemas") {
        return Ok(());
    }
    if let Some(ext) = rt.extension(key) {
        let Some(members) = value.as_object() else {
            if value.is_null() {
                return Ok(());
            }
            return Err(ScimError::invalid_value(format!("'{}' must be an object", ext.id)));
        };
        // the extension's object is looked up once, not once per attribute
        let mut values = match out.remove(&*ext.id) {
            Some(Value::Object(m)) => m,
            _ => Map::with_capacity(members.len()),
        };
        let mut hint = 0;
        for (k, v) in members {
            if let Some(def) = ext.attr_after(k, &mut hint)
                && let Some(nv) = stored_value(def, v)?
            {
                values.insert(def.name.to_string(), nv);
            }
        }
        if !values.is_empty() {
            out.insert(ext.id.to_string(), Value::Object(values));
        }
        return Ok(());
    }
    // an undeclared or misspelled extension (its own member, or one of its attributes): refused
    // or dropped, as the tenant decides; a sub-attribute path or an unknown name: ignored
    let undeclared_urn_key = || undeclared.note(undeclared_urn(key, Some(value)));
    let Some((urn, attr, sub)) = crate::path::split(key) else {
        return if is_urn(key) { undeclared_urn_key() } else { Ok(()) };
    };
    if urn.is_some_and(|u| rt.schema_by_urn(u).is_none()) {
        return undeclared_urn_key();
    }
    if let (None, Some(r)) = (sub, rt.resolve(urn, attr)) {
        put(out, r.ext, r.def, value)?;
    }
    Ok(())
}

/// What a client's value of an attribute stores: nothing for read-only attributes (ignored),
/// write-only ones (checked, never stored) and empty values; the normalized value otherwise.
fn stored_value(def: &AttrDef, value: &Value) -> Result<Option<Value>> {
    match def.mutability {
        Mutability::ReadOnly => Ok(None),
        Mutability::WriteOnly => {
            // password: accepted and checked for type, never stored or returned.
            if !value.is_null() && !value.is_string() {
                return Err(ScimError::invalid_value(format!("'{}' must be a string", def.name)));
            }
            Ok(None)
        }
        _ => normalize_value(def, value),
    }
}

fn put(out: &mut Map<String, Value>, ext: Option<&str>, def: &AttrDef, value: &Value) -> Result<()> {
    let Some(v) = stored_value(def, value)? else {
        return Ok(());
    };
    let container = match ext {
        Some(urn) => {
            let slot = out.entry(urn.to_string()).or_insert_with(|| Value::Object(Map::new()));
            match slot.as_object_mut() {
                Some(o) => o,
                None => {
                    return Err(ScimError::Internal("extension slot is not an object".into()));
                }
            }
        }
        None => out,
    };
    container.insert(def.name.to_string(), v);
    Ok(())
}

/// Normalises the value of one attribute. `Ok(None)` means "no value" (null, "", empty).
pub fn normalize_value(def: &AttrDef, value: &Value) -> Result<Option<Value>> {
    if !def.multi {
        // Microsoft's validation samples send a single-valued complex attribute (the enterprise
        // `manager`) as an array of one element
        if let (true, Value::Array(a)) = (def.is_complex(), value) {
            return match a.as_slice() {
                [] => Ok(None),
                [one] => normalize_single(def, one),
                _ => Err(ScimError::invalid_value(format!("'{}' is single-valued: send one value, not {}", def.name, a.len()))),
            };
        }
        return normalize_single(def, value);
    }
    let items: Vec<&Value> = match value {
        Value::Null => return Ok(None),
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    // normalized values have their members in schema order, so equal values have equal text:
    // many values are de-duplicated in one pass by their text; a few (the usual case) by a
    // comparison with each kept one, which costs less than hashing them
    let mut seen: Option<std::collections::HashSet<String>> =
        (items.len() > 16).then(|| std::collections::HashSet::with_capacity(items.len()));
    for item in items {
        let item = decode_json_encoded_value(def, item);
        if let Some(v) = normalize_single(def, item.as_ref())? {
            let fresh = match seen.as_mut() {
                Some(seen) => seen.insert(crate::json_text(&v)),
                None => !out.contains(&v),
            };
            if fresh {
                out.push(v);
            }
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    let primaries = out.iter().filter(|v| v.get("primary") == Some(&Value::Bool(true))).count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!("at most one of '{}' may have \"primary\": true", def.name)));
    }
    Ok(Some(Value::Array(out)))
}

/// Entra's app-role mapping sends each role's `value` as a JSON-encoded object string.
fn decode_json_encoded_value<'a>(def: &AttrDef, item: &'a Value) -> std::borrow::Cow<'a, Value> {
    use std::borrow::Cow;
    if def.name != "roles" {
        return Cow::Borrowed(item);
    }
    let Some(obj) = item.as_object() else { return Cow::Borrowed(item) };
    // attribute names are case-insensitive: `valuE` is `value`
    let Some((value_key, Value::String(s))) = crate::names::member(obj, "value") else {
        return Cow::Borrowed(item);
    };
    let Ok(Value::Object(inner)) = serde_json::from_str::<Value>(s.trim()) else {
        return Cow::Borrowed(item);
    };
    let mut merged = obj.clone();
    merged.remove(&value_key.clone());
    for (k, v) in inner {
        let key = if k.eq_ignore_ascii_case("displayName") { "display".to_string() } else { k };
        if !merged.keys().any(|m| m.eq_ignore_ascii_case(&key)) {
            merged.insert(key, v);
        }
    }
    Cow::Owned(Value::Object(merged))
}

fn normalize_single(def: &AttrDef, value: &Value) -> Result<Option<Value>> {
    let bad = |what: &str| ScimError::invalid_value(format!("'{}' must be {what}", def.name));
    Ok(match def.ty {
        _ if value.is_null() => None,
        AttrType::Complex => {
            // one slot per sub-attribute, in the schema's order; a later spelling of the same
            // name (`Value` after `value`) wins
            let mut slots: Vec<Option<Value>> = vec![None; def.sub.len()];
            let mut set = |k: &str, v: &Value| -> Result<()> {
                let Some(i) = def.sub.iter().position(|s| s.name.eq_ignore_ascii_case(k)) else { return Ok(()) };
                let sub = &def.sub[i];
                if sub.mutability == Mutability::ReadOnly && def.mutability != Mutability::ReadOnly {
                    return Ok(());
                }
                if let Some(nv) = normalize_single(sub, v)? {
                    slots[i] = Some(nv);
                }
                Ok(())
            };
            match value {
                Value::Object(o) => {
                    for (k, v) in o {
                        set(k, v)?;
                    }
                }
                // a bare value for a complex attribute: Entra's manager id, or a member id
                Value::String(s) if def.sub_attr("value").is_some() => {
                    if s.is_empty() {
                        return Ok(None);
                    }
                    set("value", value)?;
                }
                _ => return Err(bad("an object")),
            }
            let ordered: Map<String, Value> = def.sub.iter().zip(slots).filter_map(|(s, v)| v.map(|v| (s.name.to_string(), v))).collect();
            if ordered.is_empty() { None } else { Some(Value::Object(ordered)) }
        }
        AttrType::Boolean => match value {
            Value::Bool(b) => Some(Value::Bool(*b)),
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(Value::Bool(parse_bool_str(s).ok_or_else(|| bad("a boolean"))?)),
            _ => return Err(bad("a boolean")),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(Value::String(s.clone())),
            Value::Number(n) => Some(Value::String(n.to_string())),
            _ => return Err(bad("a string")),
        },
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(Value::Number(n.clone())),
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(Value::from(s.trim().parse::<i64>().map_err(|_| bad("an integer"))?)),
            _ => return Err(bad("an integer")),
        },
        AttrType::Decimal => match value {
            Value::Number(n) => Some(Value::Number(n.clone())),
            _ => return Err(bad("a number")),
        },
        AttrType::DateTime => match value {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) if crate::time::parse(s).is_some() => Some(Value::String(s.clone())),
            _ => return Err(bad("an RFC 3339 dateTime")),
        },
    })
}

/// Final checks and ordering of a normalised document.
pub fn finish(rt: &ResourceType, mut doc: Map<String, Value>) -> Result<Map<String, Value>> {
    for def in &rt.schema.attrs {
        if def.required && doc.get(&*def.name).is_none_or(|v| v.as_str().is_some_and(|s| s.trim().is_empty())) {
            return Err(ScimError::invalid_value(format!("'{}' is required", def.name)));
        }
    }
    // a required extension (RFC 7643 §6 `required`) is carried by every resource of the type
    if let Some(missing) = rt.required.iter().find(|urn| !doc.get(&***urn).is_some_and(Value::is_object)) {
        return Err(ScimError::invalid_value(format!("the extension '{missing}' is required of every {}", rt.name)));
    }
    // a required attribute of an extension is required of a resource carrying the extension
    for ext in &rt.extensions {
        if let Some(Value::Object(values)) = doc.get(&*ext.id)
            && let Some(missing) = ext.attrs.iter().find(|d| d.required && values.get(&*d.name).is_none_or(Value::is_null))
        {
            return Err(ScimError::invalid_value(format!("'{}:{}' is required", ext.id, missing.name)));
        }
    }
    // drop extension objects that ended up empty
    doc.retain(|_, v| !v.as_object().is_some_and(Map::is_empty));
    Ok(reorder(rt, doc))
}

/// Orders members as the schemas list them: common, core, extensions; anything else last.
/// (Each member is ranked by its place in the schemas and the members sorted, stably: no lookup
/// per schema attribute.)
pub fn reorder(rt: &ResourceType, doc: Map<String, Value>) -> Map<String, Value> {
    let names = || common_attrs().iter().map(|a| &*a.name).filter(|n| *n != "meta").chain(rt.schema.attrs.iter().map(|a| &*a.name));
    let after_names = names().count();
    let rank = |k: &str| {
        names().position(|n| n == k).or_else(|| rt.extensions.iter().position(|e| e.id == k).map(|i| after_names + i)).unwrap_or(usize::MAX)
    };
    let mut members: Vec<(usize, String, Value)> = doc.into_iter().map(|(k, v)| (rank(&k), k, v)).collect();
    members.sort_by_key(|m| m.0);
    let mut out = Map::with_capacity(members.len());
    for (r, k, v) in members {
        let v = match (r.checked_sub(after_names).and_then(|i| rt.extensions.get(i)), v) {
            (Some(ext), Value::Object(e)) => {
                let position = |k: &str| ext.attrs.iter().position(|a| a.name == k).unwrap_or(usize::MAX);
                // already in the declaration's order, every member declared: kept as it is (no
                // rebuild of the object, which hashes every member again)
                let mut last = None;
                if e.keys().all(|k| {
                    let p = position(k);
                    let ok = p != usize::MAX && last.is_none_or(|l| l < p);
                    last = Some(p);
                    ok
                }) {
                    out.insert(k, Value::Object(e));
                    continue;
                }
                let mut e: Vec<(usize, String, Value)> = e.into_iter().map(|(k, v)| (position(&k), k, v)).collect();
                e.sort_by_key(|m| m.0);
                // members an extension does not define were dropped before
                Value::Object(e.into_iter().filter(|m| m.0 != usize::MAX).map(|(_, k, v)| (k, v)).collect())
            }
            (Some(_), _) => continue, // an extension that is not an object is dropped, as before
            (None, v) => v,
        };
        out.insert(k, v);
    }
    out
}

/// Renders a stored document for the wire: `schemas` first, `meta.location` from the base URL.
/// Takes the document by value: its attributes move into the response, nothing is copied.
pub fn render(rt: &ResourceType, mut doc: Map<String, Value>, base_url: &str) -> Map<String, Value> {
    if rt.hides_values {
        hide_undeclared(rt, &mut doc);
    }
    let mut out = Map::with_capacity(doc.len() + 2);
    let mut schemas = vec![Value::String(rt.schema.id.to_string())];
    for ext in &rt.extensions {
        if doc.contains_key(&*ext.id) {
            schemas.push(Value::String(ext.id.to_string()));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    let meta = doc.shift_remove("meta");
    let location = doc.get("id").and_then(Value::as_str).map(|id| format!("{base_url}{}/{id}", rt.endpoint));
    out.extend(doc);
    if let Some(Value::Object(mut meta)) = meta {
        if let Some(l) = location {
            meta.insert("location".into(), Value::String(l));
        }
        out.insert("meta".into(), Value::Object(meta));
    }
    out
}

/// Renders a stored document (whose `id` the caller read: `StoredMembers::id`) for the wire from
/// its stored text, without building it: the same
/// bytes as `render`, the default projection and serialization, with the member `extra` (a
/// user's `groups`, a group's `members`) placed where `expand` puts it. Each top-level value is
/// copied as stored (stored text is serde_json's own compact output, which re-serializes to
/// itself); only `meta` is parsed, to add its location. `None` when the text holds a member only
/// the general path places the same (`schemas`, or one named like `extra`). The caller checks
/// that nothing else applies: the projection (`Projection::keeps_stored_members`), the type's
/// hidden values, computed attributes.
pub fn render_members(
    rt: &ResourceType,
    doc: &StoredMembers<'_>,
    id: Option<&str>,
    base_url: &str,
    extra: Option<(&str, &Value)>,
) -> serde_json::Result<Option<Vec<u8>>> {
    let members = &doc.0;
    let clashes = |k: &str| k == "schemas" || extra.is_some_and(|(name, _)| k == name);
    if members.iter().any(|(k, _)| clashes(k)) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(members.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + 200);
    out.extend_from_slice(b"{\"schemas\":[");
    serde_json::to_writer(&mut out, rt.schema.id.as_ref())?;
    for ext in rt.extensions.iter().filter(|e| members.iter().any(|(k, _)| *k == *e.id)) {
        out.push(b',');
        serde_json::to_writer(&mut out, ext.id.as_ref())?;
    }
    out.push(b']');
    let mut meta = None;
    for (k, v) in members {
        // the default projection drops an extension that is not a non-empty object
        let empty_extension = || is_urn(k) && rt.extension(k).is_some() && !is_nonempty_object(v.get());
        if k == "meta" {
            meta = Some(*v);
        } else if !empty_extension() {
            write_stored_member(&mut out, k, v.get().as_bytes())?;
        }
    }
    if let Some((name, value)) = extra {
        write_member(&mut out, name, &serde_json::to_vec(value)?)?;
    }
    if let Some(meta) = meta {
        write_meta(&mut out, meta.get(), id.map(|id| [base_url, &rt.endpoint, "/", id].concat()))?;
    }
    out.push(b'}');
    Ok(Some(out))
}

/// `,"meta":{…}` with `location` set, as `render` sets it: last, or in its place when stored;
/// a `meta` that is not an object is left out.
fn write_meta(out: &mut Vec<u8>, meta: &str, location: Option<String>) -> serde_json::Result<()> {
    if !meta.trim_start().starts_with('{') {
        return Ok(());
    }
    let StoredMembers(members) = StoredMembers::parse(meta)?;
    out.extend_from_slice(b",\"meta\":{");
    let mut first = true;
    let mut member = |out: &mut Vec<u8>, k: &str, v: &[u8]| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k)?;
        out.push(b':');
        out.extend_from_slice(v);
        Ok::<(), serde_json::Error>(())
    };
    let location = location.map(|l| serde_json::to_vec(&l)).transpose()?;
    for (k, v) in &members {
        match (&location, k == "location") {
            (Some(l), true) => member(out, k, l)?,
            _ => member(out, k, v.get().as_bytes())?,
        }
    }
    if let Some(l) = location.filter(|_| !members.iter().any(|(k, _)| k == "location")) {
        member(out, "location", &l)?;
    }
    out.push(b'}');
    Ok(())
}

/// Whether a member name starts like a schema URN (an extension's members do).
fn is_urn(name: &str) -> bool {
    name.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

/// `,"name":value` (the name escaped as JSON wants it).
fn write_member(out: &mut Vec<u8>, name: &str, value: &[u8]) -> serde_json::Result<()> {
    out.push(b',');
    serde_json::to_writer(&mut *out, name)?;
    out.push(b':');
    out.extend_from_slice(value);
    Ok(())
}

/// `,"name":value` for a stored member: a name borrowed from the stored text held no escape
/// there, and JSON text holds no raw quote, backslash or control character, so it is written as
/// it was (serde_json would write it the same).
#[expect(clippy::ptr_arg, reason = "whether the name is borrowed is what decides")]
fn write_stored_member(out: &mut Vec<u8>, name: &std::borrow::Cow<'_, str>, value: &[u8]) -> serde_json::Result<()> {
    match name {
        std::borrow::Cow::Borrowed(n) => {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value);
            Ok(())
        }
        std::borrow::Cow::Owned(n) => write_member(out, n, value),
    }
}

/// Whether a JSON text is an object with at least one member.
fn is_nonempty_object(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('{') && !t[1..].trim_start().starts_with('}')
}

/// A stored document's top-level members in order, each value the JSON text it was stored as
/// (reading it allocates nothing per value).
pub struct StoredMembers<'a>(Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)>);

impl<'a> StoredMembers<'a> {
    /// Splits a stored document's JSON text into its members; an error if it is not an object.
    pub fn parse(text: &'a str) -> serde_json::Result<StoredMembers<'a>> {
        serde_json::from_str(text)
    }

    /// The members, in document order.
    pub fn into_members(self) -> Vec<(std::borrow::Cow<'a, str>, &'a serde_json::value::RawValue)> {
        self.0
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.get())
    }

    /// The resource id (`id` as a string).
    pub fn id(&self) -> Option<String> {
        let raw = self.get("id")?;
        // a string without escapes is the text between its quotes
        match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(text) if !text.contains('\\') => Some(text.to_string()),
            _ => serde_json::from_str(raw).ok(),
        }
    }

    /// Whether `active` is `false`.
    pub fn is_inactive(&self) -> bool {
        self.get("active") == Some("false")
    }
}

impl<'de> serde::Deserialize<'de> for StoredMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = StoredMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(MemberName(k)) = map.next_key()? {
                    out.push((k, map.next_value()?));
                }
                Ok(StoredMembers(out))
            }
        }
        d.deserialize_map(Members)
    }
}

/// A member name, borrowed from the text unless it holds escapes.
struct MemberName<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(MemberName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(MemberName(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Name)
    }
}

/// Takes out of a stored document what its tenant no longer declares — a deleted extension's
/// object, a retired attribute inside a declared one — so it is neither returned nor projected
/// (it stays stored: see `extensions`).
fn hide_undeclared(rt: &ResourceType, doc: &mut Map<String, Value>) {
    doc.retain(|k, v| {
        if !is_urn(k) {
            return true;
        }
        let Some(ext) = rt.extension(k) else { return false };
        if let Value::Object(members) = v {
            members.retain(|name, _| ext.attr(name).is_some());
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{URN_ENTERPRISE, user_type};
    use serde_json::json;

    #[test]
    fn a_stored_id_reads_with_or_without_escapes() {
        for (text, id) in [
            (r#"{"id":"a-1"}"#, Some("a-1")),
            (r#"{"id":"a\"1\u0041"}"#, Some("a\"1A")),
            (r#"{"id":""}"#, Some("")),
            (r#"{"id":7}"#, None),
            (r#"{"x":"a"}"#, None),
        ] {
            assert_eq!(StoredMembers::parse(text).unwrap().id().as_deref(), id, "{text}");
        }
    }

    #[test]
    fn entra_create_body_normalises() {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", URN_ENTERPRISE, "http://schemas.microsoft.com/x"],
            "externalId": "0a21f0f2", "UserName": "Test_User@contoso.com", "active": "True",
            "id": "client-id", "meta": {"resourceType": "User"}, "password": "p@ss",
            "emails": [{"Primary": true, "type": "work", "value": "Test_User@contoso.com"}],
            "name": {"givenName": "Test", "familyName": "User", "bogus": 1},
            "roles": [],
            "title": null, "nickName": "",
            URN_ENTERPRISE: {"department": "R&D", "manager": "m-1"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:Usr": {"department": "ignored"}
        });
        let d = normalize(user_type(), &body, &Undeclared::default()).unwrap();
        assert_eq!(d["userName"], "Test_User@contoso.com");
        assert_eq!(d["active"], true);
        assert!(!d.contains_key("id") && !d.contains_key("meta") && !d.contains_key("password"));
        assert!(!d.contains_key("roles") && !d.contains_key("title") && !d.contains_key("nickName"));
        assert_eq!(d["emails"][0]["primary"], true);
        assert_eq!(d["name"], json!({"familyName": "User", "givenName": "Test"}));
        assert_eq!(d[URN_ENTERPRISE]["manager"], json!({"value": "m-1"}));
        assert_eq!(d[URN_ENTERPRISE]["department"], "R&D");
    }

    #[test]
    fn rejects_wrong_types_and_missing_username() {
        for body in [
            json!({"userName": 5.5, "active": "maybe"}),
            json!({"userName": "a", "active": "maybe"}),
            json!({"userName": "a", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
            json!({"userName": "a", "name": "Ann"}),
            json!({"name": {"givenName": "x"}}),
            json!({"userName": ""}),
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "a"}),
            json!(["userName"]),
        ] {
            let e = normalize(user_type(), &body, &Undeclared::default()).expect_err(&body.to_string());
            assert_eq!(e.status(), 400, "{body}");
        }
    }

    #[test]
    fn normalising_is_idempotent_for_case_variant_role_values() {
        // found by the `resource` fuzz target: `valuE` holding a JSON-encoded role was decoded
        // only on the second pass
        let body = json!({"userName": "x", "roles": [{"valuE": "{\"value\":\"Admin\"}"}]});
        let once = normalize(user_type(), &body, &Undeclared::default()).unwrap();
        assert_eq!(once["roles"], json!([{"value": "Admin"}]));
        assert_eq!(normalize(user_type(), &Value::Object(once.clone()), &Undeclared::default()).unwrap(), once);
    }

    #[test]
    fn json_encoded_roles_are_decoded() {
        let body =
            json!({"userName": "a", "roles": [{"primary": true, "value": "{\"id\":\"1\",\"value\":\"Admin\",\"displayName\":\"Admin\"}"}]});
        let d = normalize(user_type(), &body, &Undeclared::default()).unwrap();
        assert_eq!(d["roles"][0]["value"], "Admin");
        assert_eq!(d["roles"][0]["display"], "Admin");
        assert_eq!(d["roles"][0]["primary"], true);
    }

    /// What the general path sends for a stored document: its stored text parsed, `render`, the
    /// default projection, serialization — the bytes `render_members` must equal.
    fn general(rt: &ResourceType, doc: &Value, extra: Option<(&str, &Value)>) -> Vec<u8> {
        let mut doc: Map<String, Value> = serde_json::from_str(&crate::json_text(doc)).unwrap();
        if let Some((name, v)) = extra {
            doc.insert(name.into(), v.clone());
        }
        let projection = crate::projection::Projection::default();
        crate::json_text(&projection.apply(rt, render(rt, doc, BASE))).into_bytes()
    }

    fn from_text(rt: &ResourceType, doc: &Value, extra: Option<(&str, &Value)>) -> Option<Vec<u8>> {
        let text = crate::json_text(doc);
        let doc = StoredMembers::parse(&text).unwrap();
        render_members(rt, &doc, doc.id().as_deref(), BASE, extra).unwrap()
    }

    const BASE: &str = "https://scim.example.com/scim/v2";

    #[test]
    fn a_read_from_the_stored_text_sends_what_the_general_path_sends() {
        let groups = json!([{"value": "g1", "$ref": "https://x/Groups/g1", "display": "Ops \"α\"", "type": "direct"}]);
        let docs = [
            json!({"id": "u1", "userName": "a", "meta": {"resourceType": "User", "version": "W/\"1\""}}),
            json!({"id": "u\"2", "userName": "é\u{1}\n", "active": false, "emails": [{"value": "a@b", "primary": true}], "meta": {"created": "x"}, "n": 1.5e300}),
            json!({"id": "u3", URN_ENTERPRISE: {"department": "R&D"}, "userName": "b", "meta": {}}),
            json!({"id": "u4", URN_ENTERPRISE: {}, "userName": "c", "meta": "not an object"}),
            json!({"id": "u5", "urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:User": {"x": 1}, "userName": "d"}),
            json!({"userName": "no id", "meta": {"resourceType": "User"}}),
            json!({"id": "u6", "ke\"y": [1, {"a": null}], "meta": {"location": "old", "version": "W/\"3\""}}),
        ];
        for doc in &docs {
            for extra in [None, Some(("groups", &groups))] {
                assert_eq!(
                    from_text(user_type(), doc, extra).map(String::from_utf8),
                    Some(String::from_utf8(general(user_type(), doc, extra))),
                    "{doc}"
                );
            }
        }
    }

    #[test]
    fn members_only_the_general_path_places_are_left_to_it() {
        let groups = json!([{"value": "g1"}]);
        assert_eq!(from_text(user_type(), &json!({"id": "u", "schemas": ["x"]}), None), None);
        assert_eq!(from_text(user_type(), &json!({"id": "u", "groups": []}), Some(("groups", &groups))), None);
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(("location|[a-z\"]{1,6}", inner), 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any stored document, any values: the text path sends the general path's bytes.
        #[test]
        fn the_stored_text_renders_like_the_document(
            members in proptest::collection::vec((proptest::sample::select(vec!["id", "userName", "active", "meta", "emails", URN_ENTERPRISE, "x\"y", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user"]), json_value()), 0..8),
            with_groups in proptest::bool::ANY,
        ) {
            let doc = Value::Object(members.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
            let groups = json!([{"value": "g", "display": "G"}]);
            let extra = with_groups.then_some(("groups", &groups));
            if let Some(bytes) = from_text(user_type(), &doc, extra) {
                proptest::prop_assert_eq!(String::from_utf8(bytes).unwrap(), String::from_utf8(general(user_type(), &doc, extra)).unwrap());
            }
        }
    }
}
