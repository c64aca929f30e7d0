//! Group membership changes. Members live in items of their own, so a PATCH is turned into a
//! plan of member ids to add and remove, and only a "replace all" or "remove all" (or an unusual
//! member filter) needs the current member list.

use crate::error::{Result, ScimError};
use crate::filter::{CompareOp, Filter};
use crate::patch::{OpKind, Operation, PatchOp, PatchPath};
use serde_json::Value;
use std::collections::BTreeSet;

/// One change to a group's members.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberOp {
    /// Add these member ids (`add` on `members`, or a no-path `add` naming `members`).
    Add(Vec<String>),
    /// Remove these member ids (a `remove` with a value, or a `members[value eq …]` filter).
    Remove(Vec<String>),
    /// Remove the members a value filter matches (`members[display co "x"]`): needs the list.
    RemoveMatching(Filter),
    /// Remove every member (`remove` on `members` with no value and no filter).
    RemoveAll,
    /// Make these ids the whole member list (`replace` on `members`, or a no-path `replace`).
    Replace(Vec<String>),
}

/// Most member changes accepted in one request.
pub const MAX_MEMBER_CHANGES: usize = 10_000;

fn too_many() -> ScimError {
    ScimError::bad(crate::error::ScimType::TooMany, format!("at most {MAX_MEMBER_CHANGES} member changes per request"))
}

/// Member ids from a PATCH or body value: `[{"value": id}, …]`, `{"value": id}` or `"id"`,
/// each once, in the order given. `$ref`, `display` and `type` are ignored (IdPs send them).
/// More than [`MAX_MEMBER_CHANGES`] is `400 tooMany` before anything else is done with them.
pub fn ids_of(value: &Value) -> Result<Vec<String>> {
    let items: Vec<&Value> = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    if items.len() > MAX_MEMBER_CHANGES {
        return Err(too_many());
    }
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::with_capacity(items.len());
    let mut out: Vec<String> = Vec::new();
    for item in items {
        let id = match item {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => crate::names::value(o, "value").and_then(Value::as_str),
            _ => None,
        };
        let id = id
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ScimError::invalid_value("each member needs a \"value\" with the member's id"))?;
        if seen.insert(id) {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

fn is_members(p: &PatchPath) -> bool {
    p.extension.is_none()
        && p.attr.attr.eq_ignore_ascii_case("members")
        && p.attr.urn.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(crate::schema::URN_GROUP))
}

/// `value eq "a" or value eq "b"` → the ids; anything else → None.
fn eq_values(f: &Filter) -> Option<Vec<String>> {
    match f {
        Filter::Compare { path, op: CompareOp::Eq, value: Value::String(s) }
            if path.urn.is_none() && path.sub.is_none() && path.attr.eq_ignore_ascii_case("value") =>
        {
            Some(vec![s.clone()])
        }
        Filter::Or(a, b) => {
            let mut v = eq_values(a)?;
            v.extend(eq_values(b)?);
            Some(v)
        }
        _ => None,
    }
}

/// Splits a group PatchOp into membership changes and the operations on the group document.
pub fn split(patch: &PatchOp) -> Result<(Vec<MemberOp>, PatchOp)> {
    let mut members = Vec::new();
    let mut rest = Vec::new();
    for op in &patch.operations {
        match &op.path {
            Some(p) if is_members(p) => {
                if p.sub.is_some() {
                    return Err(ScimError::mutability("member sub-attributes cannot be changed; remove and add the member instead"));
                }
                let value = op.value.as_ref();
                members.push(match (op.op, &p.filter) {
                    (OpKind::Remove, Some(f)) => match eq_values(f) {
                        Some(ids) => MemberOp::Remove(ids),
                        None => MemberOp::RemoveMatching(f.clone()),
                    },
                    (OpKind::Remove, None) => match value {
                        Some(v) if !v.is_null() => MemberOp::Remove(ids_of(v)?),
                        _ => MemberOp::RemoveAll,
                    },
                    (_, Some(_)) => {
                        return Err(ScimError::mutability("members cannot be changed through a value filter; use add or remove"));
                    }
                    (OpKind::Add, None) => MemberOp::Add(ids_of(value.unwrap_or(&Value::Null))?),
                    (OpKind::Replace, None) => MemberOp::Replace(ids_of(value.unwrap_or(&Value::Null))?),
                });
            }
            None if matches!(&op.value, Some(Value::Object(o)) if o.keys().any(|k| k.eq_ignore_ascii_case("members"))) => {
                let Some(Value::Object(o)) = &op.value else { continue };
                let mut others = o.clone();
                let key = crate::names::member(o, "members").map(|(k, _)| k.clone()).unwrap_or_default();
                let v = others.remove(&key).unwrap_or(Value::Null);
                members.push(match op.op {
                    OpKind::Add => MemberOp::Add(ids_of(&v)?),
                    _ => MemberOp::Replace(ids_of(&v)?),
                });
                if !others.is_empty() {
                    rest.push(Operation { op: op.op, path: None, value: Some(Value::Object(others)) });
                }
            }
            _ => rest.push(op.clone()),
        }
    }
    Ok((members, PatchOp { operations: rest }))
}

/// The membership a sequence of operations leads to, relative to the current one.
#[derive(Debug, Clone)]
pub enum Plan {
    /// Adds and removes relative to the current members.
    Delta {
        /// The member ids to add.
        add: BTreeSet<String>,
        /// The member ids to remove.
        remove: BTreeSet<String>,
    },
    /// The complete new member set.
    Full(BTreeSet<String>),
}

impl Plan {
    /// Whether applying the operations needs the current member list.
    pub fn needs_current(ops: &[MemberOp]) -> bool {
        ops.iter().any(|o| matches!(o, MemberOp::RemoveMatching(_)))
    }

    /// Folds the operations, in order. `current` is given when `needs_current` said so.
    pub fn fold(ops: &[MemberOp], current: Option<&BTreeSet<String>>, matches: impl Fn(&Filter, &str) -> bool) -> Plan {
        let mut plan = match current {
            Some(c) => Plan::Full(c.clone()),
            None => Plan::Delta { add: BTreeSet::new(), remove: BTreeSet::new() },
        };
        for op in ops {
            plan = match (plan, op) {
                (Plan::Delta { mut add, mut remove }, MemberOp::Add(ids)) => {
                    for id in ids {
                        remove.remove(id);
                        add.insert(id.clone());
                    }
                    Plan::Delta { add, remove }
                }
                (Plan::Delta { mut add, mut remove }, MemberOp::Remove(ids)) => {
                    for id in ids {
                        add.remove(id);
                        remove.insert(id.clone());
                    }
                    Plan::Delta { add, remove }
                }
                (Plan::Full(mut set), MemberOp::Add(ids)) => {
                    set.extend(ids.iter().cloned());
                    Plan::Full(set)
                }
                (Plan::Full(mut set), MemberOp::Remove(ids)) => {
                    for id in ids {
                        set.remove(id);
                    }
                    Plan::Full(set)
                }
                (Plan::Full(set), MemberOp::RemoveMatching(f)) => Plan::Full(set.into_iter().filter(|id| !matches(f, id)).collect()),
                (_, MemberOp::RemoveAll) => Plan::Full(BTreeSet::new()),
                (_, MemberOp::Replace(ids)) => Plan::Full(ids.iter().cloned().collect()),
                // RemoveMatching always starts from the current list (needs_current)
                (p @ Plan::Delta { .. }, MemberOp::RemoveMatching(_)) => p,
            };
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(v: Value) -> Vec<MemberOp> {
        let p = PatchOp::parse(&json!({"schemas": [crate::schema::URN_PATCH], "Operations": v})).unwrap();
        split(&p).unwrap().0
    }

    #[test]
    fn entra_and_okta_member_forms() {
        assert_eq!(
            ops(json!([{"op": "Add", "path": "members", "value": [{"value": "a"}, {"value": "b", "$ref": null, "display": "B"}]}])),
            vec![MemberOp::Add(vec!["a".into(), "b".into()])]
        );
        assert_eq!(ops(json!([{"op": "Remove", "path": "members[value eq \"a\"]"}])), vec![MemberOp::Remove(vec!["a".into()])]);
        assert_eq!(ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "a"}]}])), vec![MemberOp::Remove(vec!["a".into()])]);
        assert_eq!(ops(json!([{"op": "remove", "path": "members"}])), vec![MemberOp::RemoveAll]);
        assert_eq!(
            ops(json!([{"op": "replace", "path": "members", "value": [{"value": "c"}]}])),
            vec![MemberOp::Replace(vec!["c".into()])]
        );
        let p = PatchOp::parse(
            &json!({"Operations": [{"op": "replace", "value": {"id": "g", "displayName": "New", "members": [{"value": "x"}]}}]}),
        )
        .unwrap();
        let (m, rest) = split(&p).unwrap();
        assert_eq!(m, vec![MemberOp::Replace(vec!["x".into()])]);
        assert_eq!(rest.operations.len(), 1);
    }

    #[test]
    fn folding_orders_adds_and_removes() {
        let plan = Plan::fold(&[MemberOp::Add(vec!["a".into(), "b".into()]), MemberOp::Remove(vec!["a".into()])], None, |_, _| false);
        match plan {
            Plan::Delta { add, remove } => {
                assert_eq!(add.into_iter().collect::<Vec<_>>(), vec!["b".to_string()]);
                assert_eq!(remove.into_iter().collect::<Vec<_>>(), vec!["a".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(Plan::fold(&[MemberOp::RemoveAll, MemberOp::Add(vec!["z".into()])], None, |_, _| false), Plan::Full(s) if s.len() == 1)
        );
    }
}
