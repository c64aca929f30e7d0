//! The protocol's messages as typed values (RFC 7644 §3.4.2 ListResponse), serialized as
//! they are sent.

use crate::schema::URN_LIST;
use serde_json::Value;

/// An RFC 7644 §3.4.2 ListResponse as it is sent (RFC 9865's `nextCursor` beside the index
/// members).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    /// The message's schema URN, always `urn:ietf:params:scim:api:messages:2.0:ListResponse`.
    pub schemas: [&'static str; 1],
    /// `totalResults`: how many resources match the query, across all pages (omitted if unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_results: Option<u64>,
    /// `itemsPerPage`: how many resources this page returns.
    pub items_per_page: usize,
    /// `startIndex`: the 1-based index of this page's first resource (omitted on cursor pages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
    /// RFC 9865 `nextCursor`: the cursor for the next page, absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// `Resources`: the page's resources, rendered and projected.
    #[serde(rename = "Resources")]
    pub resources: Vec<Value>,
}

impl ListResponse {
    /// A whole list on one page: every resource, starting at 1.
    pub fn whole(resources: Vec<Value>) -> ListResponse {
        let n = resources.len();
        ListResponse {
            schemas: [URN_LIST],
            total_results: Some(n as u64),
            items_per_page: n,
            start_index: Some(1),
            next_cursor: None,
            resources,
        }
    }
}
