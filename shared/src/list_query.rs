//! List and search parameters (RFC 7644 §3.4.2, §3.4.3; RFC 9865 cursors), from a query string
//! or a SearchRequest body, with RFC defaults and limits.

use crate::error::{Result, ScimError};
use crate::schema::URN_SEARCH;
use serde_json::Value;

/// Page size when the client gives none.
pub const DEFAULT_COUNT: u64 = 100;
/// Largest page served; larger `count`s are clamped (RFC 7644 allows fewer than asked).
pub const MAX_COUNT: u64 = 1000;

/// A list request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// The `filter` expression (RFC 7644 §3.4.2.2), unparsed; `None` when absent or blank.
    pub filter: Option<String>,
    /// 1-based.
    pub start_index: u64,
    /// `count`: the most resources per page, [`DEFAULT_COUNT`] if not given, at most
    /// [`MAX_COUNT`].
    pub count: u64,
    /// `sortBy`: the attribute path to sort on (§3.4.2.3); `None` when absent or blank.
    pub sort_by: Option<String>,
    /// Whether `sortOrder` is `descending` (ascending otherwise).
    pub descending: bool,
    /// `attributes`: the comma-separated attributes to return (§3.4.2.5).
    pub attributes: Option<String>,
    /// `excludedAttributes`: the comma-separated attributes to leave out (§3.4.2.5).
    pub excluded_attributes: Option<String>,
    /// RFC 9865: `Some("")` asks for the first cursor page.
    pub cursor: Option<String>,
}

fn parse_int(name: &str, v: &str) -> Result<i64> {
    v.trim().parse::<i64>().map_err(|_| ScimError::invalid_value(format!("'{name}' must be an integer, got '{v}'")))
}

impl ListQuery {
    #[allow(clippy::too_many_arguments)]
    fn finish(
        filter: Option<String>,
        start: Option<i64>,
        count: Option<i64>,
        sort_by: Option<String>,
        order: Option<String>,
        attributes: Option<String>,
        excluded: Option<String>,
        cursor: Option<String>,
    ) -> Result<ListQuery> {
        let descending = match order.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("ascending") => false,
            Some("descending") => true,
            Some(o) => {
                return Err(ScimError::invalid_value(format!("sortOrder must be 'ascending' or 'descending', got '{o}'")));
            }
        };
        if cursor.is_some() && start.is_some() {
            return Err(ScimError::invalid_value("use either 'cursor' or 'startIndex', not both"));
        }
        Ok(ListQuery {
            filter: filter.filter(|f| !f.trim().is_empty()),
            start_index: start.unwrap_or(1).max(1) as u64,
            count: count.map(|c| c.max(0) as u64).unwrap_or(DEFAULT_COUNT).min(MAX_COUNT),
            sort_by: sort_by.filter(|s| !s.trim().is_empty()),
            descending,
            attributes,
            excluded_attributes: excluded,
            cursor,
        })
    }

    /// From query parameters (names case-insensitive).
    pub fn from_params(params: &[(String, String)]) -> Result<ListQuery> {
        let get = |name: &str| crate::names::pair(params, name).map(str::to_string);
        let start = get("startIndex").map(|v| parse_int("startIndex", &v)).transpose()?;
        let count = get("count").map(|v| parse_int("count", &v)).transpose()?;
        Self::finish(
            get("filter"),
            start,
            count,
            get("sortBy"),
            get("sortOrder"),
            get("attributes"),
            get("excludedAttributes"),
            get("cursor"),
        )
    }

    /// From a SearchRequest body (`POST /.search`).
    pub fn from_search(body: &Value) -> Result<ListQuery> {
        let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let get = |name: &str| crate::names::value(obj, name);
        if let Some(s) = get("schemas") {
            let ok = s.as_array().is_some_and(|a| a.iter().filter_map(Value::as_str).any(|u| u.eq_ignore_ascii_case(URN_SEARCH)));
            if !ok {
                return Err(ScimError::invalid_syntax(format!("'schemas' must be [\"{URN_SEARCH}\"]")));
            }
        }
        let text = |name: &str| -> Result<Option<String>> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(a)) if name.ends_with("ttributes") => {
                    let parts: Option<Vec<&str>> = a.iter().map(Value::as_str).collect();
                    parts.map(|p| Some(p.join(","))).ok_or_else(|| ScimError::invalid_value(format!("'{name}' must list strings")))
                }
                Some(_) => Err(ScimError::invalid_value(format!("'{name}' must be a string"))),
            }
        };
        let int = |name: &str| -> Result<Option<i64>> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => {
                    n.as_i64().map(Some).ok_or_else(|| ScimError::invalid_value(format!("'{name}' must be an integer")))
                }
                Some(Value::String(s)) => parse_int(name, s).map(Some),
                Some(_) => Err(ScimError::invalid_value(format!("'{name}' must be an integer"))),
            }
        };
        Self::finish(
            text("filter")?,
            int("startIndex")?,
            int("count")?,
            text("sortBy")?,
            text("sortOrder")?,
            text("attributes")?,
            text("excludedAttributes")?,
            text("cursor")?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_clamps() {
        let q = ListQuery::from_params(&[("COUNT".into(), "5000".into()), ("startIndex".into(), "-3".into())]).unwrap();
        assert_eq!((q.start_index, q.count), (1, MAX_COUNT));
        assert!(ListQuery::from_params(&[("count".into(), "ten".into())]).is_err());
        let q = ListQuery::from_search(
            &json!({"schemas": [URN_SEARCH], "filter": "userName eq \"a\"", "attributes": ["userName", "id"], "count": 2}),
        )
        .unwrap();
        assert_eq!(q.attributes.as_deref(), Some("userName,id"));
        assert_eq!(q.count, 2);
        assert!(ListQuery::from_search(&json!({"sortOrder": "up"})).is_err());
    }
}
