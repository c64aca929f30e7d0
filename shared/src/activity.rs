//! The tenant's activity (audit) log: one typed entry per mutation attempt, per failed request,
//! per key the authorizer refused and per portal action — who (key id, the client's User-Agent),
//! what (route, method, path, resource id), the outcome (status, scimType, detail), when. Never
//! bodies or secrets; the client's text is cut to a bounded length here, whoever records it.
//! Recording never fails a request: a write that fails is logged and dropped.

use crate::store::layout::Layout;

/// How long entries are kept (the item's TTL).
pub const RETENTION_DAYS: i64 = 90;

/// One entry as stored (and read back by `scim-admin audit` and the portal).
#[derive(Debug, Default, serde::Serialize)]
pub struct Entry<'a> {
    /// The id of the API key that made the request (`portal` for a portal action).
    pub key_id: &'a str,
    /// The function of the matched route; absent when the request matched none (404, 405) or
    /// the authorizer refused the key first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a str>,
    /// The request's HTTP method (bounded to 16 bytes when recorded).
    pub method: &'a str,
    /// The request's path under the base URL (bounded to 512 bytes when recorded).
    pub path: &'a str,
    /// The id of the resource the request addressed, or the one a create made, if any.
    pub resource_id: Option<&'a str>,
    /// The HTTP status of the response.
    pub status: u16,
    /// The SCIM `scimType` of a failed request's error (RFC 7644 §3.12), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scim_type: Option<&'a str>,
    /// The error detail told the client, for a failure or refusal (bounded to 300 bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
    /// Which client sent it (Entra, Okta, …: the portal names the IdP from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    /// Extension URNs the request named that the tenant does not declare (dropped, under the
    /// tenant's `ignore` policy): why data an IdP reported sent is not there.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub undeclared_extensions: &'a [String],
    /// The sender proved nothing (a real key id with a wrong secret): nobody is attributed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unauthenticated: bool,
}

/// The entry with its time and the client's text bounded, as written.
#[derive(serde::Serialize)]
struct Stored<'a> {
    time: &'a str,
    #[serde(flatten)]
    entry: Entry<'a>,
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn bounded(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Records `entry` in `tenant`'s log, stamped now.
pub async fn record(layout: &Layout, tenant: &str, entry: Entry<'_>) {
    let time = crate::time::now();
    let entry = Entry {
        method: bounded(entry.method, 16),
        path: bounded(entry.path, 512),
        detail: entry.detail.map(|d| bounded(d, 300)),
        user_agent: entry.user_agent.map(|u| bounded(u, 200)),
        ..entry
    };
    if let Err(e) = layout.audit(tenant, &time, &Stored { time: &time, entry }, RETENTION_DAYS).await {
        tracing::warn!(error = %e, "activity entry not written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_cut_at_a_character_boundary() {
        assert_eq!(bounded("abc", 16), "abc");
        assert_eq!(bounded("ééé", 3), "é"); // 2 bytes each: the second would be split
        assert_eq!(bounded("", 0), "");
    }

    /// SECURITY.md: entries are kept 90 days (the item's TTL), in the tenant's own partition.
    #[tokio::test]
    async fn entries_expire_after_the_retention() {
        use crate::store::{Query, Table};
        let table = std::sync::Arc::new(crate::store::embedded::EmbeddedTable::in_memory());
        let layout = Layout::new(table.clone());
        record(&layout, "acme", Entry { key_id: "k1", method: "GET", path: "/Users/x", status: 404, ..Default::default() }).await;
        let day = crate::time::now().get(..10).unwrap().to_string();
        let items = table.query(&Query::prefix(format!("TENANT#acme#AUDIT#{day}"), "AT#", None, 10)).await.unwrap();
        assert_eq!(items.len(), 1);
        let ttl = items[0].expires_at.unwrap() - crate::time::unix_now();
        assert!((RETENTION_DAYS * 86_400 - 5..=RETENTION_DAYS * 86_400).contains(&ttl), "{ttl}");
        assert_eq!(RETENTION_DAYS, 90);
    }

    #[test]
    fn entries_are_stored_flat_with_their_time() {
        let urns = vec!["urn:x".to_string()];
        let e = Entry { key_id: "k1", method: "POST", path: "/Users", status: 201, undeclared_extensions: &urns, ..Default::default() };
        let v = serde_json::to_value(Stored { time: "2026-11-29T00:00:00Z", entry: e }).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"time": "2026-11-29T00:00:00Z", "key_id": "k1", "method": "POST", "path": "/Users",
                "resource_id": null, "status": 201, "undeclared_extensions": ["urn:x"]})
        );
    }
}
