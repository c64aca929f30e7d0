//! The protocol's messages as typed values (RFC 7644 §3.4.2 ListResponse), serialized as
//! they are sent.

use crate::schema::URN_LIST;
use serde_json::Value;

/// An RFC 7644 §3.4.2 ListResponse as it is sent (RFC 9865's `nextCursor` beside the index
/// members).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse {
    pub schemas: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_results: Option<u64>,
    pub items_per_page: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
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
