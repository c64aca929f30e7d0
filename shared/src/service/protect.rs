//! What an update may not change: protected attributes (only a key holding their permission
//! changes them, compared on the documents a request would produce), immutable ones, and the
//! tenant's role policy applied to users (default roles, effective roles).

use super::*;

/// Attributes that only a key holding a permission may change, whatever the request's form:
/// the check compares the document a request would store with the stored one (see
/// `check_protected`), so no spelling of a body can get around it.
pub const PROTECTED: &[(Kind, &str, Permission)] = &[(Kind::User, "roles", Permission::EditRoles)];

/// Refuses (403, before anything is written) a create or an update whose resulting document
/// would change a protected attribute the caller may not change. `old` is the stored document
/// (`None` for a create); `new_doc` the document the request produces, before the tenant's
/// role policy. Both sides go through the policy, so what the server itself fills in (a default
/// role) is never counted as the caller's change, and clearing counts as much as setting.
pub(super) fn check_protected(ctx: Ctx<'_>, kind: Kind, old: Option<&Map<String, Value>>, new_doc: &Map<String, Value>) -> Result<()> {
    for (k, attr, permission) in PROTECTED {
        if *k != kind || ctx.may(*permission) {
            continue;
        }
        let before = effective(ctx, attr, old.and_then(|d| d.get(*attr)));
        let after = effective(ctx, attr, new_doc.get(*attr));
        if !same_values(&before, &after) {
            return Err(ScimError::Forbidden(format!(
                "this request would change '{attr}', and the key's role may not (it needs {})",
                permission.as_str()
            )));
        }
    }
    Ok(())
}

/// The workspace role a group grants its members under the tenant's rule (by its name).
fn grant(ctx: Ctx<'_>, doc: Option<&Map<String, Value>>) -> Option<(String, String)> {
    let name = doc?.get("displayName")?.as_str()?;
    ctx.roles()?.grant_of(name)
}

/// What a group write does to the workspace roles the tenant's rule derives from group names,
/// judged on its effect as `roles` is: a write that changes which users a role-granting group
/// grants its role to — a create with members, a member change, a rename into, out of or
/// across the rule while it has members, a delete while it has members — changes those users'
/// effective roles, and needs `roles:edit` (403 before anything is written). `old` is the
/// stored group (`None` for a create), `new` what it would become (`None` for a delete);
/// `has_members` is asked only when the grant itself changes.
pub(super) async fn check_group_grants(
    ctx: Ctx<'_>,
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
    delta: &MemberDelta,
    has_members: impl std::future::Future<Output = Result<bool>>,
) -> Result<()> {
    if ctx.may(Permission::EditRoles) || ctx.roles().is_none_or(|p| p.group_rule.is_none()) {
        return Ok(());
    }
    let (before, after) = (grant(ctx, old), grant(ctx, new));
    let changes = match (&before, &after) {
        (None, None) => false,
        (b, a) if b == a => !delta.is_empty(),
        // the grant moves: every member, before or after, gains or loses it
        _ => !delta.add.is_empty() || (old.is_some() && has_members.await?),
    };
    if !changes {
        return Ok(());
    }
    let (workspace, role) = after.or(before).unwrap_or_default();
    Err(ScimError::Forbidden(format!(
        "this request would change who holds the role '{role}' of workspace '{workspace}' (the group's name grants it), \
         and the key's role may not (it needs {})",
        Permission::EditRoles.as_str()
    )))
}

/// RFC 7643 §7 `immutable`: an attribute (core or extension) with a value keeps it (it may be set when it
/// has none). 400 `mutability` otherwise, before anything is written.
pub(super) fn check_immutable(rt: &ResourceType, old: &Map<String, Value>, new: &Map<String, Value>) -> Result<()> {
    let core = std::iter::once((None, &*rt.schema));
    for (urn, schema) in core.chain(rt.extensions.iter().map(|e| (Some(&*e.id), &**e))) {
        let value = |doc: &Map<String, Value>, name: &str| {
            let holder = match urn {
                Some(u) => doc.get(u).and_then(Value::as_object),
                None => Some(doc),
            };
            holder.and_then(|h| h.get(name)).filter(|v| !v.is_null()).cloned()
        };
        for d in schema.attrs.iter().filter(|d| d.mutability == crate::schema::Mutability::Immutable) {
            if let Some(before) = value(old, &d.name)
                && value(new, &d.name).as_ref() != Some(&before)
            {
                let name = urn.map(|u| format!("{u}:{}", d.name)).unwrap_or_else(|| d.name.to_string());
                return Err(ScimError::mutability(format!("'{name}' is immutable: it keeps the value it was given")));
            }
        }
    }
    Ok(())
}

/// A protected attribute's value as it would be stored: the role policy applies to `roles`.
pub(super) fn effective(ctx: Ctx<'_>, attr: &str, v: Option<&Value>) -> Value {
    let mut doc = Map::new();
    if let Some(v) = v {
        doc.insert(attr.to_string(), v.clone());
    }
    if attr == "roles" {
        apply_roles_policy(&mut doc, ctx.roles());
    }
    doc.remove(attr).unwrap_or(Value::Null)
}

/// Equal as stored values: absent, null and `[]` are one; multi-valued attributes compare as
/// multisets (element order carries no meaning), objects by members (not their order).
pub(super) fn same_values(a: &Value, b: &Value) -> bool {
    let items = |v: &Value| -> Vec<Value> {
        match v {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        }
    };
    let (a, mut b) = (items(a), items(b));
    a.len() == b.len()
        && a.iter().all(|x| match b.iter().position(|y| y == x) {
            Some(i) => {
                b.swap_remove(i);
                true
            }
            None => false,
        })
}

/// Applies a tenant's role policy to a user document: `roles` values outside the tenant's user
/// roles fall back to the default role, and a user sent without roles gets the default.
pub(super) fn apply_roles_policy(doc: &mut Map<String, Value>, policy: Option<&crate::roles::RolesPolicy>) {
    let Some(p) = policy else { return };
    let canonical = |v: &str| p.user_roles.iter().find(|r| r.eq_ignore_ascii_case(v)).cloned().unwrap_or_else(|| p.default_role.clone());
    let mut roles: Vec<Value> = Vec::new();
    for r in doc.get("roles").and_then(Value::as_array).cloned().unwrap_or_default() {
        let mut r = r;
        let value = canonical(r.get("value").and_then(Value::as_str).unwrap_or_default());
        r["value"] = Value::String(value.clone());
        if !roles.iter().any(|x| x["value"] == Value::String(value.clone())) {
            roles.push(r);
        }
    }
    if roles.is_empty() {
        roles.push(json!({"value": p.default_role, "primary": true}));
    }
    doc.insert("roles".into(), Value::Array(roles));
}

/// The access extension of a rendered user: organisation roles from `roles`, workspace roles
/// from groups matching the rule (the strongest per workspace, in the order of the rule's roles).
pub(super) fn effective_roles(doc: &mut Map<String, Value>, policy: Option<&crate::roles::RolesPolicy>) {
    let Some(p) = policy else { return };
    let mut out: Vec<Value> = Vec::new();
    if doc.get("active") != Some(&Value::Bool(false)) {
        for r in doc.get("roles").and_then(Value::as_array).into_iter().flatten() {
            if let Some(v) = r.get("value").and_then(Value::as_str) {
                out.push(json!({"value": v, "source": "roles"}));
            }
        }
        let mut best: std::collections::BTreeMap<String, (usize, String, String)> = std::collections::BTreeMap::new();
        for g in doc.get("groups").and_then(Value::as_array).into_iter().flatten() {
            let (Some(name), Some(gid)) = (g.get("display").and_then(Value::as_str), g.get("value").and_then(Value::as_str)) else {
                continue;
            };
            if let Some((ws, role)) = p.grant_of(name) {
                let rank = p.group_roles.iter().position(|r| *r == role).unwrap_or(usize::MAX);
                if best.get(&ws).is_none_or(|(r, _, _)| rank < *r) {
                    best.insert(ws, (rank, role, gid.to_string()));
                }
            }
        }
        for (ws, (_, role, gid)) in best {
            out.push(json!({"value": role, "workspace": ws, "source": format!("group:{gid}")}));
        }
    }
    doc.insert(crate::schema::URN_ACCESS.into(), json!({"effectiveRoles": out}));
}
