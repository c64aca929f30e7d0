//! Permissions, the built-in roles and a tenant's custom roles, and the role policy that maps a
//! user's `roles` and group names to application roles.

use crate::error::{Result, ScimError};
use std::collections::BTreeMap;

/// What a role may do (the permissions SaaS setup guides ask for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read Users, Groups and discovery endpoints.
    ScimRead,
    /// Create, replace, patch and delete Users and Groups.
    ScimWrite,
    /// Set the `roles` attribute of users.
    EditRoles,
    /// Manage identity mappings (group → role rules).
    ManageMappings,
    /// Configure SCIM for the tenant (keys, settings).
    ConfigureScim,
}

/// Every permission, in wire order.
pub const ALL_PERMISSIONS: [Permission; 5] =
    [Permission::ScimRead, Permission::ScimWrite, Permission::EditRoles, Permission::ManageMappings, Permission::ConfigureScim];

impl Permission {
    /// The permission's name in records and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ScimRead => "scim:read",
            Permission::ScimWrite => "scim:write",
            Permission::EditRoles => "roles:edit",
            Permission::ManageMappings => "mappings:manage",
            Permission::ConfigureScim => "scim:configure",
        }
    }

    /// A permission from its name.
    pub fn parse(name: &str) -> Option<Permission> {
        ALL_PERMISSIONS.into_iter().find(|p| p.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// A permission travels by its name (`scim:read`, …), as records and policies write it.
impl serde::Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Permission, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Permission::parse(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown permission '{name}'")))
    }
}

/// The permissions of a built-in role; `None` for any other name.
pub fn role_permissions(role: &str) -> Option<&'static [Permission]> {
    match role {
        "admin" => Some(&ALL_PERMISSIONS),
        "provisioner" => Some(&[Permission::ScimRead, Permission::ScimWrite, Permission::EditRoles]),
        "reader" => Some(&[Permission::ScimRead]),
        _ => None,
    }
}

/// The permissions of a role for a tenant: built-in, or one of the tenant's custom roles
/// (`custom_roles` of its record: name → permission names; unknown names grant nothing).
pub fn resolve_role(role: &str, custom_roles: &BTreeMap<String, Vec<String>>) -> Option<Vec<Permission>> {
    if let Some(p) = role_permissions(role) {
        return Some(p.to_vec());
    }
    Some(custom_roles.get(role)?.iter().filter_map(|n| Permission::parse(n)).collect())
}

/// Most roles in each list of a role policy.
pub const MAX_POLICY_ROLES: usize = 32;
/// Longest role name, bytes.
pub const MAX_ROLE_NAME: usize = 40;
/// Longest group rule, bytes.
pub const MAX_RULE: usize = 100;

/// How a tenant's users get application roles (Portkey-style): the `roles` values a user may
/// hold (others fall back to the default), the default for users sent without roles, and a
/// group-name rule such as `ws-{workspace}-role-{role}` granting workspace roles.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RolesPolicy {
    /// The role a user sent without `roles` gets, and the one any value outside
    /// `user_roles` falls back to (must be one of `user_roles`).
    pub default_role: String,
    /// The `roles` values a user may hold (matched case-insensitively, stored as written here).
    pub user_roles: Vec<String>,
    /// The group-name rule granting workspace roles, with `{workspace}` before `{role}`
    /// (e.g. `ws-{workspace}-role-{role}`); none grants no workspace roles.
    #[serde(default)]
    pub group_rule: Option<String>,
    /// The roles the group rule may grant, strongest first (a user in several groups for one
    /// workspace gets the earliest).
    #[serde(default)]
    pub group_roles: Vec<String>,
}

impl RolesPolicy {
    /// Checks the policy is usable: default among the user roles, the rule has both placeholders,
    /// and it is small enough to travel with every request (at most [`MAX_POLICY_ROLES`] roles of
    /// [`MAX_ROLE_NAME`] bytes per list, a rule of at most [`MAX_RULE`] bytes).
    pub fn validate(&self) -> Result<()> {
        let long = |r: &String| r.is_empty() || r.len() > MAX_ROLE_NAME;
        if self.user_roles.len() > MAX_POLICY_ROLES || self.group_roles.len() > MAX_POLICY_ROLES {
            return Err(ScimError::invalid_value(format!("a role policy names at most {MAX_POLICY_ROLES} roles per list")));
        }
        if self.user_roles.iter().chain(&self.group_roles).chain([&self.default_role]).any(long) {
            return Err(ScimError::invalid_value(format!("role names are 1 to {MAX_ROLE_NAME} bytes")));
        }
        if self.group_rule.as_ref().is_some_and(|r| r.len() > MAX_RULE) {
            return Err(ScimError::invalid_value(format!("the group rule is at most {MAX_RULE} bytes")));
        }
        if !self.user_roles.iter().any(|r| r.eq_ignore_ascii_case(&self.default_role)) {
            return Err(ScimError::invalid_value("the default role must be one of the user roles"));
        }
        if let Some(rule) = &self.group_rule {
            let (w, r) = (rule.find("{workspace}"), rule.find("{role}"));
            if !matches!((w, r), (Some(w), Some(r)) if w < r) {
                return Err(ScimError::invalid_value("the group rule needs {workspace} before {role}, e.g. ws-{workspace}-role-{role}"));
            }
            if self.group_roles.is_empty() {
                return Err(ScimError::invalid_value("a group rule needs the roles it may grant"));
            }
        }
        Ok(())
    }

    /// The workspace and role a group name grants under the rule, if any.
    pub fn grant_of(&self, group_name: &str) -> Option<(String, String)> {
        let rule = self.group_rule.as_deref()?;
        let (prefix, rest) = rule.split_once("{workspace}")?;
        let (middle, suffix) = rest.split_once("{role}")?;
        let body = group_name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        let (workspace, role) = body.rsplit_once(middle)?;
        let role = self.group_roles.iter().find(|r| r.eq_ignore_ascii_case(role))?;
        (!workspace.is_empty()).then(|| (workspace.to_string(), role.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_rule_grants_workspace_roles() {
        let p = RolesPolicy {
            default_role: "member".into(),
            user_roles: vec!["member".into(), "admin".into(), "owner".into()],
            group_rule: Some("ws-{workspace}-role-{role}".into()),
            group_roles: vec!["admin".into(), "manager".into(), "member".into()],
        };
        p.validate().unwrap();
        assert_eq!(p.grant_of("ws-acme-role-admin"), Some(("acme".into(), "admin".into())));
        assert_eq!(p.grant_of("ws-my-team-role-Manager"), Some(("my-team".into(), "manager".into())));
        assert_eq!(p.grant_of("ws-acme-role-owner"), None, "not a group role");
        assert_eq!(p.grant_of("Engineering"), None);
        assert_eq!(p.grant_of("ws--role-admin"), None);
        let bad = RolesPolicy { default_role: "root".into(), ..p.clone() };
        assert!(bad.validate().is_err());
    }
}
