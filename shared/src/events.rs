//! Change events for host applications, derived from item images (old, new) — the same
//! function serves DynamoDB's stream (through the `events` Lambda, an EventBridge Pipes
//! enrichment) and the embedded store's change feed (`scim-local` writes them as JSON lines).
//! Nothing is written on the request path for events.

use crate::store::Item;
use crate::store::layout::{ItemKey, Kind, parse_key};
use serde_json::{Map, Value, json};

/// The event source on the bus.
pub const SOURCE: &str = "scim-serverless";

/// One event: `detail-type` and `detail`, as put on the bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: String,
    pub detail: Value,
}

impl Event {
    /// The EventBridge entry shape (`source`, `detail-type`, `detail`).
    pub fn to_entry(&self) -> Value {
        json!({"source": SOURCE, "detail-type": self.kind, "detail": self.detail})
    }
}

fn doc(i: Option<&Item>) -> Option<Map<String, Value>> {
    i.and_then(|i| i.doc.as_deref()).and_then(|d| serde_json::from_str::<Map<String, Value>>(d).ok())
}

/// The events one item change means. Claims, counters, checkpoints and keys mean none.
pub fn derive(old: Option<&Item>, new: Option<&Item>) -> Vec<Event> {
    let Some(any) = new.or(old) else { return Vec::new() };
    let Some(key) = parse_key(&any.pk, &any.sk) else { return Vec::new() };
    let at = crate::time::now();
    match key {
        ItemKey::Membership { tenant, group, user } => {
            let kind = match (old, new) {
                (None, Some(_)) => "membership.added",
                (Some(_), None) => "membership.removed",
                _ => return Vec::new(),
            };
            vec![Event { kind: kind.into(), detail: json!({"tenant": tenant, "group": group, "user": user, "time": at}) }]
        }
        ItemKey::Resource { tenant, kind, id } => {
            let noun = match kind {
                Kind::User => "user",
                Kind::Group => "group",
            };
            let (before, after) = (doc(old), doc(new));
            let external_id = after.as_ref().or(before.as_ref()).and_then(|d| d.get("externalId")).cloned().unwrap_or(Value::Null);
            let (verb, changed) = match (&before, &after) {
                (None, Some(_)) => ("created", Vec::new()),
                (Some(_), None) => ("deleted", Vec::new()),
                (Some(b), Some(a)) => {
                    let changed = crate::patch::changed_attributes(b, a);
                    if changed.is_empty() {
                        return Vec::new();
                    }
                    let active = |d: &Map<String, Value>| d.get("active") != Some(&Value::Bool(false));
                    let verb = match (kind, active(b), active(a)) {
                        (Kind::User, true, false) => "deactivated",
                        (Kind::User, false, true) => "reactivated",
                        _ => "updated",
                    };
                    (verb, changed)
                }
                (None, None) => return Vec::new(),
            };
            let mut detail = json!({"tenant": tenant, "id": id, "externalId": external_id, "time": at});
            if !changed.is_empty()
                && let Some(o) = detail.as_object_mut()
            {
                o.insert("changed".into(), json!(changed));
            }
            if let (Some(a), Some(o)) = (&after, detail.as_object_mut())
                && kind == Kind::User
            {
                o.insert("userName".into(), a.get("userName").cloned().unwrap_or(Value::Null));
                o.insert("active".into(), Value::Bool(a.get("active") != Some(&Value::Bool(false))));
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
        let e = derive(None, Some(&user(true, "a")));
        assert_eq!(e[0].kind, "user.created");
        assert_eq!(e[0].detail["tenant"], "acme");
        assert_eq!(e[0].detail["externalId"], "e1");
        let e = derive(Some(&user(true, "a")), Some(&user(false, "a")));
        assert_eq!(e[0].kind, "user.deactivated");
        assert_eq!(e[0].detail["changed"], json!(["active"]));
        assert_eq!(derive(Some(&user(false, "a")), Some(&user(true, "b")))[0].kind, "user.reactivated");
        assert_eq!(derive(Some(&user(true, "a")), Some(&user(true, "b")))[0].kind, "user.updated");
        assert_eq!(derive(Some(&user(true, "a")), None)[0].kind, "user.deleted");
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
