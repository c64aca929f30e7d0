//! Group membership changes: which users a change may add, and the member delta a PATCH makes.

use super::*;
use crate::filter;
use crate::members::Plan;
use std::collections::BTreeSet;

impl Service {
    /// The users a member change may add: every id must name a user of this tenant (400 naming
    /// the unknown ones); under the default deactivation policy inactive users are left out (a
    /// deactivated user belongs to no group), without failing the request.
    pub(super) async fn addable_users(&self, ctx: Ctx<'_>, ids: &[String]) -> Result<Vec<String>> {
        if ids.len() > MAX_MEMBER_CHANGES {
            return Err(ScimError::bad(
                crate::error::ScimType::TooMany,
                format!("at most {MAX_MEMBER_CHANGES} member changes per request"),
            ));
        }
        let mut found: BTreeSet<String> = BTreeSet::new();
        let mut addable: BTreeSet<String> = BTreeSet::new();
        for chunk in ids.chunks(100) {
            for s in self.layout.get_many(ctx.tenant(), Kind::User, chunk).await? {
                if !deprovisions(ctx, &s.doc) {
                    addable.insert(s.id().to_string());
                }
                found.insert(s.id().to_string());
            }
        }
        let unknown: Vec<&str> = ids.iter().filter(|i| !found.contains(*i)).map(String::as_str).take(20).collect();
        if unknown.is_empty() {
            Ok(ids.iter().filter(|i| addable.contains(*i)).cloned().collect())
        } else {
            Err(ScimError::invalid_value(format!("unknown member ids (no such user in this tenant): {}", unknown.join(", "))))
        }
    }

    /// The member changes a list of member operations makes, as a delta on the stored members.
    pub(super) async fn member_delta(&self, ctx: Ctx<'_>, gid: &str, ops: &[MemberOp]) -> Result<MemberDelta> {
        if ops.is_empty() {
            return Ok(MemberDelta::default());
        }
        // refused before any read: a request naming more ids than it may change costs nothing
        let named: usize =
            ops.iter().map(|o| if let MemberOp::Add(v) | MemberOp::Remove(v) | MemberOp::Replace(v) = o { v.len() } else { 0 }).sum();
        if named > MAX_MEMBER_CHANGES {
            return Err(ScimError::bad(
                crate::error::ScimType::TooMany,
                format!("at most {MAX_MEMBER_CHANGES} member changes per request"),
            ));
        }
        let needs_all = Plan::needs_current(ops) || ops.iter().any(|o| matches!(o, MemberOp::Replace(_) | MemberOp::RemoveAll));
        let current: Option<BTreeSet<String>> =
            if needs_all { Some(self.layout.members(ctx.tenant(), gid).await?.into_iter().collect()) } else { None };
        let rt = group_type();
        let matches = |f: &filter::Filter, uid: &str| {
            let target = crate::path::Target { ext: None, def: rt.schema.attr("members").unwrap_or(&rt.schema.attrs[0]), sub: None };
            let mut el = Map::new();
            el.insert("value".into(), Value::String(uid.to_string()));
            filter::compile_element(f, rt, target).is_ok_and(|e| e.matches_element(&Map::new(), &el))
        };
        let mut delta = match Plan::fold(ops, current.as_ref(), matches) {
            Plan::Full(set) => {
                let cur = current.unwrap_or_default();
                MemberDelta { add: set.difference(&cur).cloned().collect(), remove: cur.difference(&set).cloned().collect() }
            }
            Plan::Delta { add, remove } => {
                // re-adding a member or removing an absent one writes nothing (IdPs retry)
                let asked: Vec<String> = add.iter().chain(remove.iter()).cloned().collect();
                let present: BTreeSet<String> = self.layout.are_members(ctx.tenant(), gid, &asked).await?.into_iter().collect();
                MemberDelta {
                    add: add.into_iter().filter(|u| !present.contains(u)).collect(),
                    remove: remove.into_iter().filter(|u| present.contains(u)).collect(),
                }
            }
        };
        delta.add.sort();
        delta.remove.sort();
        delta.add = self.addable_users(ctx, &delta.add).await?;
        if delta.add.len() + delta.remove.len() > MAX_MEMBER_CHANGES {
            return Err(ScimError::bad(
                crate::error::ScimType::TooMany,
                format!("at most {MAX_MEMBER_CHANGES} member changes per request"),
            ));
        }
        Ok(delta)
    }
}
