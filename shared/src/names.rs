//! Names matched ignoring ASCII case: JSON member and attribute names (RFC 7643 §2.1: "attribute
//! names are case insensitive"), header field names (RFC 9110 §5.1) and query parameter names.
//! The one place such a lookup is written; the first match wins, as clients send each name once.

use serde_json::{Map, Value};

/// The member of `obj` whose name is `name` in any case, with the name as sent.
pub fn member<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<(&'a String, &'a Value)> {
    obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))
}

/// The value of the member of `obj` named `name` in any case.
pub fn value<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    member(obj, name).map(|(_, v)| v)
}

/// The value of the first pair named `name` in any case (headers, query parameters).
pub fn pair<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_in_any_ascii_case_and_keep_their_spelling() {
        let o = json!({"Operations": [1], "userName": "a"});
        let o = o.as_object().unwrap();
        assert_eq!(member(o, "operations").map(|(k, _)| k.as_str()), Some("Operations"));
        assert_eq!(value(o, "USERNAME"), Some(&json!("a")));
        assert_eq!(value(o, "user_name"), None);
        let headers = vec![("Content-Type".to_string(), "application/scim+json".to_string())];
        assert_eq!(pair(&headers, "content-type"), Some("application/scim+json"));
        assert_eq!(pair(&headers, "accept"), None);
    }
}
