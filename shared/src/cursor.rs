//! RFC 9865 cursors: an opaque token for "the rest of this listing". A cursor carries where the
//! next page starts (the last id returned, or an offset), which tenant and which query (its
//! shape: filter, sort, projection) it was made for, and when it expires; it is authenticated
//! with HMAC-SHA256 under the deployment's seal key, so a client can neither forge nor alter one,
//! nor take one to another tenant or query.

use crate::error::{Result, ScimError, ScimType};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a cursor stays valid, seconds.
pub const TTL_SECS: i64 = 3600;

/// Where a cursor continues: after an id (cursor pages) or at an offset (index pages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The id of the last resource returned: a cursor page continues after it.
    #[serde(rename = "a")]
    pub after: Option<String>,
    /// The 0-based position in the matching resources where the next page starts.
    #[serde(rename = "o")]
    pub offset: Option<u64>,
}

/// What is sealed.
#[derive(Serialize, Deserialize)]
struct Payload {
    #[serde(rename = "t")]
    tenant: String,
    #[serde(flatten)]
    position: Position,
    #[serde(rename = "s")]
    shape: String,
    #[serde(rename = "x")]
    expires: i64,
}

fn mac(key: &[u8]) -> Result<Hmac<Sha256>> {
    Hmac::<Sha256>::new_from_slice(key).map_err(|e| ScimError::Internal(e.to_string()))
}

/// A cursor for `tenant` and a query of `shape`, continuing at `position`, valid for
/// [`TTL_SECS`] from `now`.
pub fn seal(key: &[u8], tenant: &str, shape: &str, position: Position, now: i64) -> Result<String> {
    let payload = Payload { tenant: tenant.into(), position, shape: shape.into(), expires: now + TTL_SECS };
    let text = crate::json_text(&payload);
    let mut m = mac(key)?;
    m.update(text.as_bytes());
    let tag = m.finalize().into_bytes();
    Ok(format!("{}.{}", crate::crypto::b64(text.as_bytes()), crate::crypto::b64(&tag[..16])))
}

/// The position a cursor continues at, when it is genuine, made for this tenant and query shape,
/// and not expired (`400 invalidCursor` / `expiredCursor` otherwise).
pub fn open(key: &[u8], cursor: &str, tenant: &str, shape: &str, now: i64) -> Result<Position> {
    let invalid = || ScimError::bad(ScimType::InvalidCursor, "the cursor is not valid for this tenant and query");
    let (p, t) = cursor.split_once('.').ok_or_else(invalid)?;
    let text = crate::crypto::b64_decode(p).ok_or_else(invalid)?;
    let tag = crate::crypto::b64_decode(t).filter(|t| t.len() == 16).ok_or_else(invalid)?;
    let mut m = mac(key)?;
    m.update(&text);
    m.verify_truncated_left(&tag).map_err(|_| invalid())?;
    let payload: Payload = serde_json::from_slice(&text).map_err(|_| invalid())?;
    if payload.tenant != tenant || payload.shape != shape {
        return Err(invalid());
    }
    if payload.expires < now {
        return Err(ScimError::bad(ScimType::ExpiredCursor, "the cursor has expired; start again"));
    }
    Ok(payload.position)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    fn refused(r: Result<Position>) -> Option<ScimType> {
        r.err().and_then(|e| e.scim_type())
    }

    #[test]
    fn a_cursor_continues_where_it_was_made() {
        let at = Position { after: Some("u-42".into()), offset: None };
        let c = seal(KEY, "acme", "f=1", at.clone(), NOW).unwrap();
        assert_eq!(open(KEY, &c, "acme", "f=1", NOW + 10).unwrap(), at);
        let c = seal(KEY, "acme", "", Position { after: None, offset: Some(300) }, NOW).unwrap();
        assert_eq!(open(KEY, &c, "acme", "", NOW).unwrap().offset, Some(300));
    }

    #[test]
    fn a_cursor_serves_only_its_tenant_query_and_lifetime() {
        let c = seal(KEY, "acme", "f=1", Position::default(), NOW).unwrap();
        assert_eq!(refused(open(KEY, &c, "other", "f=1", NOW)), Some(ScimType::InvalidCursor), "another tenant");
        assert_eq!(refused(open(KEY, &c, "acme", "f=2", NOW)), Some(ScimType::InvalidCursor), "another query");
        assert_eq!(refused(open(KEY, &c, "acme", "f=1", NOW + TTL_SECS + 1)), Some(ScimType::ExpiredCursor));
        assert_eq!(refused(open(b"another deployment's seal key!!", &c, "acme", "f=1", NOW)), Some(ScimType::InvalidCursor));
    }

    #[test]
    fn forged_and_altered_cursors_are_refused() {
        let c = seal(KEY, "acme", "", Position { after: Some("u-1".into()), offset: None }, NOW).unwrap();
        let (payload, tag) = c.split_once('.').unwrap();
        // the same payload claiming another position, under the old tag
        let text = String::from_utf8(crate::crypto::b64_decode(payload).unwrap()).unwrap().replace("u-1", "u-9");
        let altered = format!("{}.{tag}", crate::crypto::b64(text.as_bytes()));
        for bad in [altered.as_str(), "", ".", "abc", "abc.def", &format!("{payload}.{}", crate::crypto::b64(&[0u8; 16]))] {
            assert_eq!(refused(open(KEY, bad, "acme", "", NOW)), Some(ScimType::InvalidCursor), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn opening_never_panics(s in "\\PC{0,80}") {
            let _ = open(KEY, &s, "acme", "", NOW);
        }
    }
}
