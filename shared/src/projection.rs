//! `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9), applied to rendered resources.
//! `schemas` and `id` are always returned; `returned: never` attributes never are.

use crate::path::Named;
use crate::schema::{Mutability, ResourceType, Returned, SchemaDef};
use serde_json::{Map, Value};

/// One selected attribute: extension URN (or `None`), attribute name, optional sub-attribute.
type Sel<'a> = (Option<&'a str>, &'a str, Option<&'a str>);

/// Whether a schema has stored attributes the default projection leaves out (`returned: never`
/// or `request`; a writeOnly attribute is never stored, so there is nothing to leave out).
fn withholds(schema: &SchemaDef) -> bool {
    schema.attrs.iter().any(|a| matches!(a.returned, Returned::Never | Returned::Request) && a.mutability != Mutability::WriteOnly)
}

/// A parsed projection.
#[derive(Debug, Clone, Default)]
pub struct Projection<'a> {
    include: Option<Vec<Sel<'a>>>,
    exclude: Vec<Sel<'a>>,
}

fn parse_list<'a>(rt: &'a ResourceType, text: Option<&str>) -> Option<Vec<Sel<'a>>> {
    let text = text?.trim();
    if text.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // `emails[type eq "work"]` selects `emails` (the filter narrows nothing in projections)
        let part = match (part.find('['), part.rfind(']')) {
            (Some(o), Some(c)) if c > o => format!("{}{}", &part[..o], &part[c + 1..]),
            _ => part.to_string(),
        };
        match crate::path::resolve(rt, &part) {
            // a bare extension URN selects the whole extension
            Ok(Some(Named::Extension(ext))) => out.extend(ext.attrs.iter().map(|a| (Some(&*ext.id), &*a.name, None))),
            Ok(Some(Named::Attribute(t))) => out.push((t.ext, &*t.def.name, t.sub.map(|s| &*s.name))),
            // unknown names are ignored, as RFC 7644 allows
            _ => {}
        }
    }
    Some(out)
}

impl<'a> Projection<'a> {
    /// From the two query parameters (comma-separated attribute paths).
    pub fn new(rt: &'a ResourceType, attributes: Option<&str>, excluded: Option<&str>) -> Projection<'a> {
        Projection { include: parse_list(rt, attributes), exclude: parse_list(rt, excluded).unwrap_or_default() }
    }

    /// Whether the projection asks for no attribute at all (the full default set is returned).
    pub fn is_default(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// Whether an attribute will be returned (lets the service skip reading it).
    pub fn returns(&self, ext: Option<&str>, name: &str) -> bool {
        let hit = |s: &Sel| s.0 == ext && s.1 == name;
        if self.exclude.iter().any(|s| hit(s) && s.2.is_none()) {
            return false;
        }
        self.include.as_ref().is_none_or(|inc| inc.iter().any(hit))
    }

    /// Whether `attributes` names this attribute explicitly.
    pub fn names(&self, ext: Option<&str>, name: &str) -> bool {
        self.include.as_ref().is_some_and(|inc| inc.iter().any(|s| s.0 == ext && s.1 == name))
    }

    /// Applies the projection to a rendered resource, and the `returned` characteristic of
    /// extension attributes: `never` is never returned, `request` only when `attributes` names
    /// it, `always` whatever `excludedAttributes` says.
    pub fn apply(&self, rt: &ResourceType, doc: Map<String, Value>) -> Map<String, Value> {
        let mut doc = if self.is_default() { doc } else { self.select(rt, doc) };
        self.returned(rt, &mut doc);
        // an extension with nothing in it is not returned
        doc.retain(|k, v| rt.extension(k).is_none() || v.as_object().is_some_and(|o| !o.is_empty()));
        doc
    }

    /// `never` and `request` attributes of the extensions (the core's never-returned password is
    /// not even stored).
    /// Whether this projection keeps every stored member as it is stored (apart from dropping
    /// empty extension objects): the default one, on a type whose extensions return all their
    /// attributes by default — what `resource::render_members` needs.
    pub fn keeps_stored_members(&self, rt: &ResourceType) -> bool {
        self.is_default() && !withholds(&rt.schema) && !rt.extensions.iter().any(|e| withholds(e))
    }

    fn returned(&self, rt: &ResourceType, doc: &mut Map<String, Value>) {
        // the core schema's (a declared type's; the User schema's never-returned password is
        // not stored)
        if withholds(&rt.schema) {
            doc.retain(|k, _| match rt.schema.attr(k) {
                Some(d) if d.returned == Returned::Never => false,
                Some(d) if d.returned == Returned::Request => self.names(None, &d.name),
                _ => true,
            });
        }
        for ext in rt.extensions.iter().filter(|e| withholds(e)) {
            if let Some(Value::Object(members)) = doc.get_mut(&*ext.id) {
                members.retain(|k, _| match ext.attr(k) {
                    Some(d) if d.returned == Returned::Never => false,
                    Some(d) if d.returned == Returned::Request => self.names(Some(&ext.id), &d.name),
                    _ => true,
                });
            }
        }
    }

    fn select(&self, rt: &ResourceType, doc: Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::with_capacity(doc.len());
        for (k, v) in doc {
            if k == "schemas" || k == "id" {
                out.insert(k, v);
                continue;
            }
            if let Some(ext) = rt.extension(&k) {
                let Value::Object(members) = v else { continue };
                let mut kept = Map::new();
                for (mk, mv) in members {
                    if ext.attr(&mk).is_some_and(|d| d.returned == Returned::Always) {
                        kept.insert(mk, mv);
                    } else if let Some(x) = self.filter_value(Some(&ext.id), &mk, mv) {
                        kept.insert(mk, x);
                    }
                }
                if !kept.is_empty() {
                    out.insert(k, Value::Object(kept));
                }
                continue;
            }
            if rt.schema.attr(&k).is_some_and(|d| d.returned == Returned::Always) {
                out.insert(k, v);
            } else if let Some(x) = self.filter_value(None, &k, v) {
                out.insert(k, x);
            }
        }
        out
    }

    fn filter_value(&self, ext: Option<&str>, name: &str, v: Value) -> Option<Value> {
        let on = |s: &&Sel| s.0 == ext && s.1 == name;
        if self.exclude.iter().filter(on).any(|s| s.2.is_none()) {
            return None;
        }
        let excluded_subs: Vec<&str> = self.exclude.iter().filter(on).filter_map(|s| s.2).collect();
        let included_subs: Option<Vec<&str>> = match &self.include {
            None => None,
            Some(inc) => {
                let mine: Vec<&Sel> = inc.iter().filter(on).collect();
                if mine.is_empty() {
                    return None;
                }
                if mine.iter().any(|s| s.2.is_none()) { None } else { Some(mine.iter().filter_map(|s| s.2).collect()) }
            }
        };
        if excluded_subs.is_empty() && included_subs.is_none() {
            return Some(v);
        }
        let keep = |sub: &str| !excluded_subs.contains(&sub) && included_subs.as_ref().is_none_or(|i| i.contains(&sub));
        let trim = |o: Map<String, Value>| -> Map<String, Value> { o.into_iter().filter(|(k, _)| keep(k)).collect() };
        match v {
            Value::Object(o) => Some(Value::Object(trim(o))).filter(|v| v.as_object().is_some_and(|o| !o.is_empty())),
            Value::Array(a) => {
                let items: Vec<Value> = a
                    .into_iter()
                    .map(|e| match e {
                        Value::Object(o) => Value::Object(trim(o)),
                        other => other,
                    })
                    .filter(|e| e.as_object().is_none_or(|o| !o.is_empty()))
                    .collect();
                if items.is_empty() { None } else { Some(Value::Array(items)) }
            }
            other => Some(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{URN_ENTERPRISE, user_type};
    use serde_json::json;

    fn doc() -> Map<String, Value> {
        json!({"schemas": ["x"], "id": "1", "userName": "a", "name": {"givenName": "A", "familyName": "B"},
               "emails": [{"value": "a@x", "type": "work"}], URN_ENTERPRISE: {"department": "D", "costCenter": "C"},
               "meta": {"resourceType": "User"}})
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_id() {
        let p = Projection::new(user_type(), Some("userName,name.givenName,emails.value"), None);
        let d = Value::Object(p.apply(user_type(), doc()));
        assert_eq!(d, json!({"schemas": ["x"], "id": "1", "userName": "a", "name": {"givenName": "A"}, "emails": [{"value": "a@x"}]}));
        let p = Projection::new(user_type(), Some(&format!("{URN_ENTERPRISE}:department")), None);
        let d = p.apply(user_type(), doc());
        assert_eq!(d[URN_ENTERPRISE], json!({"department": "D"}));
    }

    #[test]
    fn no_projection_returns_everything_but_empty_extensions() {
        let mut d = doc();
        assert_eq!(Projection::default().apply(user_type(), d.clone()), d);
        d.insert(URN_ENTERPRISE.into(), json!({}));
        let out = Projection::default().apply(user_type(), d);
        assert!(!out.contains_key(URN_ENTERPRISE));
        assert_eq!(out.keys().collect::<Vec<_>>(), ["schemas", "id", "userName", "name", "emails", "meta"], "order kept");
    }

    #[test]
    fn excluded_attributes_drop_but_never_id() {
        let p = Projection::new(user_type(), None, Some("emails,ID,name.familyName,meta"));
        let d = p.apply(user_type(), doc());
        assert!(d.contains_key("id") && !d.contains_key("emails") && !d.contains_key("meta"));
        assert_eq!(d["name"], json!({"givenName": "A"}));
    }
}
