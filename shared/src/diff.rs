//! What changed between two versions of a resource document: the names of the attributes that
//! differ (change events name them) and whether anything differs at all (a no-op write is not
//! written). Extension objects are compared member by member; `meta` is ignored.

use serde_json::{Map, Value};

/// Names of the attributes that differ between two documents (top level and extension members),
/// for change events and no-op detection. `meta` is ignored.
pub fn changed_attributes(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let empty = Map::new();
    for k in keys.into_iter().filter(|k| *k != "meta") {
        let (a, b) = (old.get(k), new.get(k));
        match extension_pair(k, a, b, &empty) {
            Some((a, b)) => {
                let inner: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                out.extend(inner.into_iter().filter(|ik| a.get(*ik) != b.get(*ik)).map(|ik| format!("{k}:{ik}")));
            }
            None if a != b => out.push(k.clone()),
            None => {}
        }
    }
    out
}

/// Whether two documents hold the same values: exactly when [`changed_attributes`] finds
/// nothing, without listing what differs (it stops at the first difference).
pub fn same_attributes(old: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    let empty = Map::new();
    let same = |k: &String| {
        let (a, b) = (old.get(k), new.get(k));
        k == "meta"
            || match extension_pair(k, a, b, &empty) {
                Some((a, b)) => a == b,
                None => a == b,
            }
    };
    old.keys().all(same) && new.keys().filter(|k| !old.contains_key(*k)).all(same)
}

/// An extension's two sides (a missing one is an empty object) when `k` names an extension whose
/// sides are objects or absent; such members are compared member by member.
type Sides<'a> = (&'a Map<String, Value>, &'a Map<String, Value>);

fn extension_pair<'a>(k: &str, a: Option<&'a Value>, b: Option<&'a Value>, empty: &'a Map<String, Value>) -> Option<Sides<'a>> {
    let is_ext = k.starts_with("urn:") && a.is_none_or(Value::is_object) && b.is_none_or(Value::is_object);
    is_ext.then(|| (a.and_then(Value::as_object).unwrap_or(empty), b.and_then(Value::as_object).unwrap_or(empty)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::URN_ENTERPRISE;
    use serde_json::json;

    #[test]
    fn same_attributes_agrees_with_the_changed_attribute_list() {
        let base =
            json!({"id": "1", "userName": "a", "name": {"givenName": "A"}, URN_ENTERPRISE: {"department": "d"}, "meta": {"version": "1"}});
        let others = [
            json!({"id": "1", "userName": "a", "name": {"givenName": "A"}, URN_ENTERPRISE: {"department": "d"}, "meta": {"version": "2"}}),
            json!({"userName": "a", "id": "1", URN_ENTERPRISE: {"department": "d"}, "name": {"givenName": "A"}}),
            json!({"id": "1", "userName": "b", "name": {"givenName": "A"}, URN_ENTERPRISE: {"department": "d"}}),
            json!({"id": "1", "userName": "a", "name": {"givenName": "A"}}),
            json!({"id": "1", "userName": "a", "name": {"givenName": "A"}, URN_ENTERPRISE: {"department": "d"}, "title": "t"}),
            json!({"id": "1", "userName": "a", "name": {"givenName": "A"}, URN_ENTERPRISE: {"department": "d"}, "urn:x": {}}),
            json!({"id": "1", "userName": "a", "name": {"givenName": "A"}, URN_ENTERPRISE: {"department": "d"}, "urn:x": 1}),
        ];
        for o in others {
            let (a, b) = (base.as_object().cloned().unwrap(), o.as_object().cloned().unwrap());
            assert_eq!(same_attributes(&a, &b), changed_attributes(&a, &b).is_empty(), "{o}");
            assert_eq!(same_attributes(&b, &a), changed_attributes(&b, &a).is_empty(), "{o} (reversed)");
        }
    }
}
