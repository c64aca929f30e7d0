//! A tenant's own settings over HTTP (`/Settings`, `/Settings/RoleMappings`): what a key with
//! `scim:configure` may see and change (IP allowlist, deactivation, externalId and
//! unknown-extension policies, the longest a new key may last) and what a key with
//! `mappings:manage` may set (the role mappings: default role, allowed `roles` values, the
//! group-name rule). Status and the request limit protect the operator and stay with the admin
//! CLI; custom roles define what keys may do, so a key cannot edit them either.
//!
//! Bodies are plain JSON objects in SCIM's camelCase; a PATCH sets only the members it names.

use crate::error::{Result, ScimError, ScimType};
use crate::roles::RolesPolicy;
use crate::setup_link;
use crate::store::layout::Layout;
use crate::tenancy::{self, Deactivation, ExternalIdPolicy, TenantChange, TenantRecord, UnknownExtensions};
use serde_json::{Value, json};

/// The `schemas` value of a settings body.
pub const URN_SETTINGS: &str = "urn:scim-serverless:api:messages:1.0:TenantSettings";
/// The `schemas` value of a setup link body.
pub const URN_PORTAL_LINK: &str = "urn:scim-serverless:api:messages:1.0:PortalLink";
/// The `schemas` value of a role mappings body.
pub const URN_ROLE_MAPPINGS: &str = "urn:scim-serverless:api:messages:1.0:RoleMappings";

/// Settings a key may change with `PATCH /Settings`.
const WRITABLE: [&str; 6] =
    ["ipAllowlist", "deactivation", "externalIdPolicy", "unknownExtensions", "maxKeyLifetimeDays", "tokenLifetimeMinutes"];
/// Settings shown but changed elsewhere, and where.
const READ_ONLY: [(&str, &str); 5] = [
    ("tenant", "the tenant id never changes"),
    ("status", "suspension is set by the operator (scim-admin tenant update)"),
    ("rateLimitPerSecond", "the request limit is set by the operator (scim-admin tenant update)"),
    ("customRoles", "custom roles are set by the operator (scim-admin role create)"),
    ("roleMappings", "role mappings are changed with PUT /Settings/RoleMappings"),
];

/// `GET /Settings`.
pub async fn view(layout: &Layout, tenant_id: &str, base_url: &str) -> Result<Value> {
    Ok(render(&tenancy::require_tenant(layout, tenant_id).await?, base_url))
}

fn render(t: &TenantRecord, base_url: &str) -> Value {
    json!({
        "schemas": [URN_SETTINGS],
        "tenant": t.id,
        "name": t.name,
        "status": t.status,
        "ipAllowlist": t.ip_allowlist,
        "deactivation": t.deactivation.as_str(),
        "externalIdPolicy": t.external_id_policy.as_str(),
        "unknownExtensions": t.unknown_extensions.as_str(),
        "rateLimitPerSecond": t.rate_limit,
        "maxKeyLifetimeDays": t.max_key_lifetime_days,
        "tokenLifetimeMinutes": crate::oauth::token_minutes(t),
        "roleMappings": t.roles_policy.as_ref().map(mappings_json),
        "customRoles": t.custom_roles,
        "meta": {"resourceType": "TenantSettings", "location": format!("{base_url}/Settings")},
    })
}

/// `PATCH /Settings`: validates the whole body first, then changes the tenant in one write.
pub async fn patch(layout: &Layout, tenant_id: &str, base_url: &str, body: &Value) -> Result<Value> {
    let change = change_of(body)?;
    Ok(render(&tenancy::update_tenant(layout, tenant_id, &change).await?, base_url))
}

/// The change a PATCH body asks for. Attribute names are case-insensitive, as in SCIM.
pub fn change_of(body: &Value) -> Result<TenantChange> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("send a JSON object of settings to change"))?;
    let mut change = TenantChange::default();
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") || k.eq_ignore_ascii_case("meta") {
            continue;
        }
        if let Some((_, why)) = READ_ONLY.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)) {
            return Err(ScimError::bad(ScimType::Mutability, format!("'{k}' cannot be changed here: {why}")));
        }
        if k.eq_ignore_ascii_case("ipAllowlist") {
            let list = match v {
                Value::Null => Vec::new(),
                Value::Array(a) => a
                    .iter()
                    .map(|c| c.as_str().map(str::to_string).ok_or_else(|| ScimError::invalid_value("ipAllowlist holds CIDR strings")))
                    .collect::<Result<Vec<_>>>()?,
                _ => return Err(ScimError::invalid_value("ipAllowlist is a list of CIDRs ([] allows any address)")),
            };
            change.ip_allowlist = Some(list);
        } else if k.eq_ignore_ascii_case("deactivation") {
            let name = v.as_str().unwrap_or_default();
            change.deactivation = Some(Deactivation::parse(name).ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "deactivation is '{}' or '{}'",
                    Deactivation::RemoveMemberships.as_str(),
                    Deactivation::KeepMemberships.as_str()
                ))
            })?);
        } else if k.eq_ignore_ascii_case("externalIdPolicy") {
            let name = v.as_str().unwrap_or_default();
            change.external_id_policy = Some(
                ExternalIdPolicy::parse(name)
                    .ok_or_else(|| ScimError::invalid_value("externalIdPolicy is 'none' (the RFC's default), 'unique' or 'relink'"))?,
            );
        } else if k.eq_ignore_ascii_case("maxKeyLifetimeDays") {
            // null removes the limit; keys already made keep the expiry they were given
            change.max_key_lifetime_days = Some(match v {
                Value::Null => None,
                v => Some(tenancy::key_days("maxKeyLifetimeDays", v)?),
            });
        } else if k.eq_ignore_ascii_case("tokenLifetimeMinutes") {
            // null goes back to the default; tokens already issued keep their expiry
            change.token_lifetime_minutes = Some(match v {
                Value::Null => None,
                v => Some(v.as_u64().and_then(|n| u32::try_from(n).ok()).filter(|m| tenancy::TOKEN_MINUTES.contains(m)).ok_or_else(
                    || {
                        ScimError::invalid_value(format!(
                            "tokenLifetimeMinutes is a whole number of minutes from {} to {}",
                            tenancy::TOKEN_MINUTES.start(),
                            tenancy::TOKEN_MINUTES.end()
                        ))
                    },
                )?),
            });
        } else if k.eq_ignore_ascii_case("unknownExtensions") {
            let name = v.as_str().unwrap_or_default();
            change.unknown_extensions =
                Some(UnknownExtensions::parse(name).ok_or_else(|| ScimError::invalid_value("unknownExtensions is 'ignore' or 'reject'"))?);
        } else {
            return Err(ScimError::bad(
                ScimType::InvalidPath,
                format!("'{k}' is not a setting; a PATCH may change {}", WRITABLE.join(", ")),
            ));
        }
    }
    Ok(change)
}

fn mappings_json(p: &RolesPolicy) -> Value {
    json!({
        "defaultRole": p.default_role,
        "userRoles": p.user_roles,
        "groupRule": p.group_rule,
        "groupRoles": p.group_roles,
    })
}

/// `GET /Settings/RoleMappings`; 404 when the tenant has none.
pub async fn role_mappings(layout: &Layout, tenant_id: &str) -> Result<Value> {
    let t = tenancy::require_tenant(layout, tenant_id).await?;
    let p = t
        .roles_policy
        .ok_or_else(|| ScimError::NotFound("this tenant has no role mappings (PUT /Settings/RoleMappings sets them)".into()))?;
    Ok(mappings_body(&p))
}

fn mappings_body(p: &RolesPolicy) -> Value {
    let mut v = mappings_json(p);
    v["schemas"] = json!([URN_ROLE_MAPPINGS]);
    v
}

/// `PUT /Settings/RoleMappings`: the whole policy, validated before anything is written.
pub async fn replace_role_mappings(layout: &Layout, tenant_id: &str, body: &Value) -> Result<Value> {
    let p = mappings_of(body)?;
    tenancy::set_roles_policy(layout, tenant_id, Some(&p)).await?;
    Ok(mappings_body(&p))
}

/// `DELETE /Settings/RoleMappings`: users keep the `roles` they hold; nothing is mapped any more.
pub async fn delete_role_mappings(layout: &Layout, tenant_id: &str) -> Result<()> {
    tenancy::set_roles_policy(layout, tenant_id, None).await.map(|_| ())
}

/// A role policy from a `RoleMappings` body.
pub fn mappings_of(body: &Value) -> Result<RolesPolicy> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("send a JSON object with defaultRole and userRoles"))?;
    let get = |name: &str| crate::names::value(obj, name);
    let known = ["schemas", "defaultRole", "userRoles", "groupRule", "groupRoles"];
    if let Some(k) = obj.keys().find(|k| !known.iter().any(|n| n.eq_ignore_ascii_case(k))) {
        return Err(ScimError::bad(ScimType::InvalidPath, format!("'{k}' is not part of role mappings ({})", known[1..].join(", "))));
    }
    let strings = |name: &str| -> Result<Vec<String>> {
        match get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::trim)
                        .filter(|s| !s.is_empty() && s.len() <= crate::roles::MAX_ROLE_NAME)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            ScimError::invalid_value(format!("{name} holds role names (1 to {} bytes)", crate::roles::MAX_ROLE_NAME))
                        })
                })
                .collect(),
            Some(_) => Err(ScimError::invalid_value(format!("{name} is a list of role names"))),
        }
    };
    let default_role = get("defaultRole")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ScimError::invalid_value("defaultRole is required (the role of users sent without one)"))?
        .to_string();
    let group_rule = match get("groupRule") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(_) => return Err(ScimError::invalid_value("groupRule is a pattern such as ws-{workspace}-role-{role}")),
    };
    let p = RolesPolicy { default_role, user_roles: strings("userRoles")?, group_rule, group_roles: strings("groupRoles")? };
    p.validate()?;
    Ok(p)
}

/// `POST /Settings/PortalLinks`: a setup link for the tenant's IT admin, valid `hours` (body
/// optional; default 72). The link is a credential: it is in the response only, never logged.
pub async fn create_portal_link(layout: &Layout, tenant_id: &str, base_url: &str, body: Option<&Value>) -> Result<Value> {
    let hours = match body.map(|b| &b["hours"]) {
        None | Some(Value::Null) => setup_link::DEFAULT_LINK_HOURS,
        Some(h) => h.as_i64().filter(|h| (1..=setup_link::MAX_LINK_HOURS).contains(h)).ok_or_else(|| {
            ScimError::invalid_value(format!("hours is a whole number from 1 to {} (got {h})", setup_link::MAX_LINK_HOURS))
        })?,
    };
    let (token, expires) = setup_link::make_link(layout, tenant_id, hours).await?;
    Ok(json!({
        "schemas": [URN_PORTAL_LINK],
        "url": setup_link::link_url(base_url, &token),
        "expires": crate::time::format_unix_millis(expires * 1000),
    }))
}

/// `DELETE /Settings/PortalLinks`: every setup link of the tenant made so far stops working.
pub async fn revoke_portal_links(layout: &Layout, tenant_id: &str) -> Result<()> {
    tenancy::revoke_portal_links(layout, tenant_id).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_bodies_are_checked_member_by_member() {
        let c = change_of(&json!({"schemas": [URN_SETTINGS], "IPAllowlist": ["10.0.0.0/8"], "deactivation": "keep-memberships"})).unwrap();
        assert_eq!(c.ip_allowlist, Some(vec!["10.0.0.0/8".to_string()]));
        assert_eq!(c.deactivation, Some(Deactivation::KeepMemberships));
        assert_eq!(change_of(&json!({"ipAllowlist": null})).unwrap().ip_allowlist, Some(vec![]));
        let e = change_of(&json!({"rateLimitPerSecond": 1000})).unwrap_err();
        assert_eq!((e.status(), e.to_json()["scimType"].as_str()), (400, Some("mutability")));
        assert_eq!(change_of(&json!({"status": "active"})).unwrap_err().status(), 400);
        assert_eq!(change_of(&json!({"deactivation": "delete"})).unwrap_err().status(), 400);
        assert_eq!(change_of(&json!({"ipAllowlist": "10.0.0.0/8"})).unwrap_err().status(), 400);
        assert_eq!(change_of(&json!({"colour": "blue"})).unwrap_err().to_json()["scimType"], "invalidPath");
        assert_eq!(change_of(&json!([1])).unwrap_err().status(), 400);
    }

    #[test]
    fn role_mappings_bodies_validate_like_the_cli() {
        let p = mappings_of(&json!({"defaultRole": "member", "userRoles": ["member", "admin", "owner"],
            "groupRule": "ws-{workspace}-role-{role}", "groupRoles": ["admin", "manager", "member"]}))
        .unwrap();
        assert_eq!(p.grant_of("ws-acme-role-admin"), Some(("acme".into(), "admin".into())));
        assert_eq!(mappings_body(&p)["groupRule"], "ws-{workspace}-role-{role}");
        assert!(mappings_of(&json!({"userRoles": ["member"]})).is_err(), "defaultRole is required");
        assert!(mappings_of(&json!({"defaultRole": "root", "userRoles": ["member"]})).is_err(), "default among user roles");
        assert!(mappings_of(&json!({"defaultRole": "member", "userRoles": ["member"], "groupRule": "ws-{role}"})).is_err());
        assert!(mappings_of(&json!({"defaultRole": "member", "userRoles": ["member"], "extra": 1})).is_err());
        assert!(mappings_of(&json!({"defaultRole": "member", "userRoles": [""]})).is_err());
    }
}
