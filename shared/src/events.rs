//! Change events for host applications, derived from item images (old, new) — the same
//! function serves DynamoDB's stream (through the `events` Lambda, an EventBridge Pipes
//! enrichment) and the embedded store's change feed (`scim-local` writes them as JSON lines).
//! Nothing is written on the request path for events.

use crate::store::Item;
use crate::store::layout::{ItemKey, Kind, parse_key};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use std::borrow::Cow;

/// The event source on the bus.
pub const SOURCE: &str = "scim-serverless";

/// One event: `detail-type` and `detail`, as put on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The `detail-type`: `user.created`, `group.updated`, `user.deactivated`,
    /// `membership.added`, ….
    pub kind: String,
    /// The `detail`: the tenant, the resource's `id` and `externalId` (or the group and user of
    /// a membership), the change's `time`, and what changed.
    pub detail: Value,
}

impl Event {
    /// The EventBridge entry shape (`source`, `detail-type`, `detail`).
    pub fn to_entry(&self) -> Value {
        json!({"source": SOURCE, "detail-type": self.kind, "detail": self.detail})
    }

    /// Names where the event came from, so consumers can drop duplicates (an at-least-once
    /// pipe may deliver one twice) and order the changes of one item: `eventId` (the stream
    /// record's id in AWS, a UUIDv7 locally) and, in AWS, the record's `sequenceNumber`.
    pub fn identify(&mut self, event_id: &str, sequence: Option<&str>) {
        if let Some(o) = self.detail.as_object_mut() {
            o.insert("eventId".into(), Value::String(event_id.to_string()));
            if let Some(s) = sequence {
                o.insert("sequenceNumber".into(), Value::String(s.to_string()));
            }
        }
    }

    /// [`Event::identify`] for an event of the embedded store's feed: a UUIDv7, so the ids also
    /// sort in commit order.
    pub fn identify_locally(&mut self) {
        self.identify(&uuid::Uuid::now_v7().to_string(), None);
    }

    /// The same entry as one line of JSON text (no newline), written without building it as a
    /// document first.
    pub fn to_line(&self) -> String {
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            source: &'static str,
            #[serde(rename = "detail-type")]
            kind: &'a str,
            detail: &'a Value,
        }
        crate::json_text(&Entry { source: SOURCE, kind: &self.kind, detail: &self.detail })
    }
}

/// A stored document split into its top-level attributes, each left as JSON text and sorted by
/// name: deriving an event reads a few attributes and compares the rest as text, so the change
/// feed does not build two whole documents per write. Names borrow from the document (they are
/// copied only when they hold escapes).
struct Attrs<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.binary_search_by(|(k, _)| k.as_ref().cmp(name)).ok().map(|i| self.0[i].1)
    }
}

/// A document's attributes sorted by name (read by `resource::StoredMembers`); a repeated name
/// keeps its last value, as a map would.
fn attrs(doc: &str) -> Option<Attrs<'_>> {
    let mut out = crate::resource::StoredMembers::parse(doc).ok()?.into_members();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            earlier.1 = later.1;
        }
        same
    });
    Some(Attrs(out))
}

/// The members of `meta` events use, read once without building the meta object.
#[derive(serde::Deserialize, Default)]
struct Meta<'a> {
    #[serde(rename = "lastModified", borrow, default)]
    last_modified: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "resourceType", borrow, default)]
    resource_type: Option<std::borrow::Cow<'a, str>>,
}

fn meta<'a>(d: &Attrs<'a>) -> Option<Meta<'a>> {
    serde_json::from_str(d.get("meta")?.get()).ok()
}

fn attr(d: &Attrs<'_>, name: &str) -> Option<Value> {
    d.get(name).and_then(|r| serde_json::from_str(r.get()).ok())
}

/// The attributes that differ, as [`crate::diff::changed_attributes`] names them. Identical text
/// is an identical value; only attributes whose text differs are parsed and compared as values
/// (so a reordered object is still no change).
fn changed(before: &Attrs<'_>, after: &Attrs<'_>) -> Vec<String> {
    use std::cmp::Ordering;
    // both lists are sorted by name: walk them together
    let (mut b, mut a) = (before.0.iter().peekable(), after.0.iter().peekable());
    let mut out = Vec::new();
    loop {
        let order = match (b.peek(), a.peek()) {
            (None, None) => break,
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
        };
        let (name, was, is) = match order {
            Ordering::Equal => match (b.next(), a.next()) {
                (Some(x), Some(y)) => (&x.0, Some(x.1), Some(y.1)),
                _ => break,
            },
            Ordering::Less => match b.next() {
                Some(x) => (&x.0, Some(x.1), None),
                None => break,
            },
            Ordering::Greater => match a.next() {
                Some(y) => (&y.0, None, Some(y.1)),
                None => break,
            },
        };
        if name == "meta" || matches!((was, is), (Some(x), Some(y)) if x.get() == y.get()) {
            continue;
        }
        // an attribute on one side only is a change by its name alone, or an extension's by its
        // sub-attributes' names (`diff::changed_attributes`' rule): no value is parsed for it
        if let (None, Some(only)) | (Some(only), None) = (was, is) {
            out.extend(names_of_one_side(name, only));
            continue;
        }
        let one = |raw: Option<&RawValue>| {
            let mut m = Map::new();
            if let Some(v) = raw.and_then(|r| serde_json::from_str::<Value>(r.get()).ok()) {
                m.insert(name.to_string(), v);
            }
            m
        };
        out.extend(crate::diff::changed_attributes(&one(was), &one(is)));
    }
    out
}

/// What an attribute present on one side only changes, as `diff::changed_attributes` names it:
/// an extension object (`urn:…`) by each of its sub-attributes, anything else by its name.
fn names_of_one_side(name: &str, value: &RawValue) -> Vec<String> {
    let members = name.starts_with("urn:").then(|| crate::resource::StoredMembers::parse(value.get()).ok()).flatten();
    match members {
        Some(m) => {
            let inner: std::collections::BTreeSet<Cow<'_, str>> = m.into_members().into_iter().map(|(k, _)| k).collect();
            inner.into_iter().map(|k| [name, ":", &k].concat()).collect()
        }
        None => vec![name.to_string()],
    }
}

/// The events one item change means. Claims, counters, checkpoints and keys mean none.
pub fn derive(old: Option<&Item>, new: Option<&Item>) -> Vec<Event> {
    derive_at(old, new, None)
}

/// [`derive()`], with the time the change reached the store when the caller knows it (a stream
/// record's creation time). An event's `time` is when the change happened: the resource's own
/// `meta.lastModified` for creates and updates, else `changed_at`, else now.
pub fn derive_at(old: Option<&Item>, new: Option<&Item>, changed_at: Option<&str>) -> Vec<Event> {
    let Some(any) = new.or(old) else { return Vec::new() };
    let Some(key) = parse_key(&any.pk, &any.sk) else { return Vec::new() };
    let at = || changed_at.map(str::to_string).unwrap_or_else(crate::time::now);
    match key {
        ItemKey::Membership { tenant, group, user } => {
            let kind = match (old, new) {
                (None, Some(_)) => "membership.added",
                (Some(_), None) => "membership.removed",
                _ => return Vec::new(),
            };
            vec![Event { kind: kind.into(), detail: json!({"tenant": tenant, "group": group, "user": user, "time": at()}) }]
        }
        ItemKey::Resource { tenant, kind, id } => {
            let noun = match kind {
                Kind::User => "user",
                Kind::Group => "group",
                Kind::Declared(_) => "resource",
            };
            let (before, after) = (old.and_then(|i| i.doc.as_deref()).and_then(attrs), new.and_then(|i| i.doc.as_deref()).and_then(attrs));
            let active = |d: &Attrs<'_>| attr(d, "active") != Some(Value::Bool(false));
            let (verb, changed) = match (&before, &after) {
                // a creation names every attribute it set, as a change from nothing
                (None, Some(a)) => {
                    let mut set = changed(&Attrs(Vec::new()), a);
                    set.retain(|n| n != "schemas");
                    ("created", set)
                }
                (Some(_), None) => ("deleted", Vec::new()),
                (Some(b), Some(a)) => {
                    let changed = changed(b, a);
                    if changed.is_empty() {
                        return Vec::new();
                    }
                    let verb = match (kind, active(b), active(a)) {
                        (Kind::User, true, false) => "deactivated",
                        (Kind::User, false, true) => "reactivated",
                        _ => "updated",
                    };
                    (verb, changed)
                }
                (None, None) => return Vec::new(),
            };
            let external_id = after.as_ref().or(before.as_ref()).and_then(|d| attr(d, "externalId")).unwrap_or(Value::Null);
            let meta = after.as_ref().or(before.as_ref()).and_then(meta).unwrap_or_default();
            let modified = after.as_ref().and(meta.last_modified).map(std::borrow::Cow::into_owned);
            // a declared type's events say which type (its name, from the document's meta)
            let resource_type = meta.resource_type.filter(|_| matches!(kind, Kind::Declared(_))).map(std::borrow::Cow::into_owned);
            let mut detail = json!({"tenant": tenant, "id": id, "externalId": external_id, "time": modified.unwrap_or_else(at)});
            if !changed.is_empty()
                && let Some(o) = detail.as_object_mut()
            {
                o.insert("changed".into(), json!(changed));
            }
            if let (Some(t), Some(o)) = (resource_type, detail.as_object_mut()) {
                o.insert("resourceType".into(), Value::String(t));
            }
            if let (Some(a), Some(o)) = (&after, detail.as_object_mut())
                && kind == Kind::User
            {
                o.insert("userName".into(), attr(a, "userName").unwrap_or(Value::Null));
                o.insert("active".into(), Value::Bool(active(a)));
            }
            vec![Event { kind: format!("{noun}.{verb}"), detail }]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(active: bool, title: &str) -> Item {
        let d =
            json!({"id": "u1", "userName": "ann", "active": active, "title": title, "externalId": "e1", "meta": {"version": "W/\"1\""}});
        Item::new("TENANT#acme", "USER#u1", d.to_string(), 1)
    }

    #[test]
    fn user_changes_become_typed_events() {
        let mut with_schemas = user(true, "a");
        with_schemas.doc = with_schemas.doc.map(|d| d.replacen('{', r#"{"schemas":["x"],"#, 1));
        let e = derive(None, Some(&with_schemas));
        assert_eq!(e[0].kind, "user.created");
        assert_eq!(serde_json::from_str::<Value>(&e[0].to_line()).unwrap(), e[0].to_entry(), "the line is the entry");
        assert_eq!(e[0].detail["tenant"], "acme");
        assert_eq!(e[0].detail["externalId"], "e1");
        assert_eq!((&e[0].detail["userName"], &e[0].detail["active"]), (&json!("ann"), &json!(true)));
        assert_eq!(e[0].detail["changed"], json!(["active", "externalId", "id", "title", "userName"]), "what a creation set");
        let gone = derive(Some(&user(false, "a")), None);
        assert_eq!((gone[0].kind.as_str(), &gone[0].detail["externalId"]), ("user.deleted", &json!("e1")));
        assert!(gone[0].detail.get("userName").is_none(), "a deleted user's event names only its ids");
        let e = derive(Some(&user(true, "a")), Some(&user(false, "a")));
        assert_eq!(e[0].kind, "user.deactivated");
        assert_eq!(e[0].detail["changed"], json!(["active"]));
        assert_eq!(derive(Some(&user(false, "a")), Some(&user(true, "b")))[0].kind, "user.reactivated");
        assert_eq!(derive(Some(&user(true, "a")), Some(&user(true, "b")))[0].kind, "user.updated");
        assert_eq!(derive(Some(&user(true, "a")), None)[0].kind, "user.deleted");
    }

    #[test]
    fn changes_are_named_by_value_not_by_text() {
        let item = |d: Value| Item::new("TENANT#acme", "USER#u1", d.to_string(), 1);
        let ext = crate::schema::URN_ENTERPRISE;
        let before =
            item(json!({"userName": "ann", "name": {"givenName": "A", "familyName": "B"}, ext: {"department": "x", "costCenter": "1"},
                                 "meta": {"version": "W/\"1\""}}));
        // the same values, another key order and another meta: no change, no event
        let reordered =
            item(json!({"name": {"familyName": "B", "givenName": "A"}, ext: {"costCenter": "1", "department": "x"}, "userName": "ann",
                                    "meta": {"version": "W/\"2\""}}));
        assert!(derive(Some(&before), Some(&reordered)).is_empty());
        let after =
            item(json!({"userName": "ann", "name": {"givenName": "Z", "familyName": "B"}, ext: {"department": "y", "costCenter": "1"},
                                "title": "t", "meta": {"version": "W/\"2\""}}));
        let e = derive(Some(&before), Some(&after));
        assert_eq!(e[0].kind, "user.updated");
        assert_eq!(e[0].detail["changed"], json!(["name", "title", format!("{ext}:department")]));
        assert_eq!(
            (&e[0].detail["userName"], &e[0].detail["active"], &e[0].detail["externalId"]),
            (&json!("ann"), &json!(true), &Value::Null)
        );
        // an attribute only before (removed), and one whose name is written with an escape
        let with = Item::new("TENANT#acme", "USER#u1", r#"{"userName":"ann","nickName":"a","x\u0041":1}"#.into(), 1);
        let without = item(json!({"userName": "ann"}));
        assert_eq!(derive(Some(&with), Some(&without))[0].detail["changed"], json!(["nickName", "xA"]));
        // a creation names an extension by its sub-attributes, as an update does
        let names = json!(["name", format!("{ext}:costCenter"), format!("{ext}:department"), "userName"]);
        assert_eq!(derive(None, Some(&before))[0].detail["changed"], names);
        // named as the value comparison names them: a `urn:` that is no object, an empty one
        let odd = json!({"userName": "ann", "urn:a": "text", "urn:b": {}, "urn:c": {"x": 1, "y": null}, "urn:d": null});
        let by_value = crate::diff::changed_attributes(&Map::new(), odd.as_object().unwrap());
        assert_eq!(derive(None, Some(&item(odd.clone())))[0].detail["changed"], json!(by_value));
        assert_eq!(
            derive(Some(&item(odd)), Some(&item(json!({"userName": "ann"}))))[0].detail["changed"],
            json!(by_value[..4]),
            "removed: all but the unchanged userName"
        );
    }

    #[test]
    fn memberships_and_bookkeeping_items() {
        let m = Item::new("TENANT#acme#GROUP#g1", "MEMBER#u1", "{}".into(), 1);
        let e = derive(None, Some(&m));
        assert_eq!((e[0].kind.as_str(), &e[0].detail["group"], &e[0].detail["user"]), ("membership.added", &json!("g1"), &json!("u1")));
        assert_eq!(derive(Some(&m), None)[0].kind, "membership.removed");
        assert!(derive(None, Some(&Item::new("TENANT#acme", "USERNAME#ann", "{}".into(), 1))).is_empty());
        assert!(derive(None, Some(&Item::new("TENANT#acme", "COUNT", "{}".into(), 1))).is_empty());
        assert!(derive(None, Some(&Item::new("KEY#abc", "KEY", "{}".into(), 1))).is_empty());
    }
}
