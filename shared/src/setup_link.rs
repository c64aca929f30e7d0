//! Setup links: what lets a tenant's IT admin into the setup portal without a SCIM key.
//!
//! A link is `…/portal#<token>`: the token sits in the URL fragment, which browsers send to no
//! server (not in request lines, logs or `Referer`). A token is
//! `base64url(payload).base64url(tag)`: the payload names the tenant, an expiry and the
//! tenant's link epoch; the tag is HMAC-SHA256 (truncated to 128 bits) under a key derived from
//! the deployment's sealing key. Revoking a tenant's links moves its epoch on, which every
//! earlier link names.

use crate::crypto::{b64, b64_decode, random_bytes};
use crate::error::{Result, ScimError};
use crate::store::layout::Layout;
use crate::tenancy;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// How long a link made by `scim-admin portal link` lasts unless told otherwise.
pub const DEFAULT_LINK_HOURS: i64 = 72;
/// The longest a link may last.
pub const MAX_LINK_HOURS: i64 = 24 * 30;

/// A tenant reached through a valid link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The id of the tenant the link was made for: the portal acts on it alone.
    pub tenant: String,
    /// Unix seconds.
    pub expires: i64,
}

async fn link_key(layout: &Layout) -> Result<Vec<u8>> {
    let seal = layout.seal_key().await?.ok_or_else(|| ScimError::Unavailable {
        detail: "this deployment is not set up yet (run any scim-admin command once)".into(),
        retry_after: 60,
    })?;
    // a key of its own, derived from the sealing key: a link is never a valid cursor, nor the reverse
    let mut mac = Hmac::<Sha256>::new_from_slice(&seal).map_err(|e| ScimError::Internal(e.to_string()))?;
    mac.update(b"scim-serverless portal link v1");
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Makes a setup link token for a tenant, valid `hours`; returns it with its expiry.
pub async fn make_link(layout: &Layout, tenant: &str, hours: i64) -> Result<(String, i64)> {
    if !(1..=MAX_LINK_HOURS).contains(&hours) {
        return Err(ScimError::invalid_value(format!("a link lasts 1 to {MAX_LINK_HOURS} hours")));
    }
    let rec = tenancy::require_tenant(layout, tenant).await?;
    let expires = crate::time::unix_now() + hours * 3600;
    let payload = json!({"t": tenant, "e": rec.portal_epoch, "x": expires, "n": b64(&random_bytes(8))}).to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(&link_key(layout).await?).map_err(|e| ScimError::Internal(e.to_string()))?;
    mac.update(payload.as_bytes());
    let tag = mac.finalize().into_bytes();
    Ok((format!("{}.{}", b64(payload.as_bytes()), b64(&tag[..16])), expires))
}

/// The path of the API's root under its host: `/v1` for `https://host/v1/scim/v2`, empty for
/// `https://host/scim/v2` (what the page's links to its assets and API start with).
pub fn root_path(scim_base_url: &str) -> String {
    let root = scim_base_url.trim_end_matches('/').trim_end_matches(crate::BASE_PATH);
    let after_scheme = root.split_once("://").map(|(_, r)| r).unwrap_or(root);
    after_scheme.find('/').map(|i| after_scheme[i..].to_string()).unwrap_or_default()
}

/// The setup link for a token: the portal page under the API's root (`…/scim/v2` → `…/portal`).
pub fn link_url(scim_base_url: &str, token: &str) -> String {
    let root = scim_base_url.trim_end_matches('/').trim_end_matches(crate::BASE_PATH);
    format!("{root}/portal#{token}")
}

/// Checks a link token: its tag (constant time), expiry, the tenant's link epoch (revocation)
/// and status. Every refusal says only that the link is not valid: 401 (403 for a suspended
/// tenant), nothing of the tenant.
pub async fn verify(layout: &Layout, token: &str) -> Result<Session> {
    let invalid = |why: &str| {
        tracing::info!(reason = why, "portal link refused");
        ScimError::Unauthorized("this setup link is not valid: it expired, was revoked or was changed; ask for a new one".into())
    };
    let (p, t) = token.trim().split_once('.').ok_or_else(|| invalid("malformed"))?;
    let payload = b64_decode(p).ok_or_else(|| invalid("malformed"))?;
    let tag = b64_decode(t).filter(|t| t.len() == 16).ok_or_else(|| invalid("malformed"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&link_key(layout).await?).map_err(|e| ScimError::Internal(e.to_string()))?;
    mac.update(&payload);
    mac.verify_truncated_left(&tag).map_err(|_| invalid("tampered"))?;
    let v: Value = serde_json::from_slice(&payload).map_err(|_| invalid("malformed"))?;
    let (Some(tenant), Some(epoch), Some(expires)) = (v["t"].as_str(), v["e"].as_u64(), v["x"].as_i64()) else {
        return Err(invalid("malformed"));
    };
    if expires <= crate::time::unix_now() {
        return Err(invalid("expired"));
    }
    // a link the server signed names its tenant: its record is read acting for it
    let rec =
        crate::store::scope::acting_for(tenant, tenancy::get_tenant(layout, tenant)).await?.ok_or_else(|| invalid("no such tenant"))?;
    if rec.portal_epoch != epoch {
        return Err(invalid("revoked"));
    }
    if !rec.is_active() {
        return Err(ScimError::Forbidden("this tenant is suspended".into()));
    }
    Ok(Session { tenant: tenant.to_string(), expires })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_point_at_the_page_beside_the_scim_base() {
        assert_eq!(link_url("https://api.example.com/v1/scim/v2", "t.k"), "https://api.example.com/v1/portal#t.k");
        assert_eq!(link_url("http://127.0.0.1:8787/scim/v2/", "t.k"), "http://127.0.0.1:8787/portal#t.k");
        assert_eq!(root_path("https://api.example.com/v1/scim/v2"), "/v1");
        assert_eq!(root_path("http://127.0.0.1:8787/scim/v2"), "");
    }
}
