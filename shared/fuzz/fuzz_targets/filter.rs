//! Filter parser, compiler and evaluator: any text must give Ok or a SCIM 400, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_core::filter;
use scim_core::schema::{group_type, user_type};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let doc = serde_json::json!({
        "id": "u1", "userName": "Ann", "active": true, "name": {"givenName": "A"},
        "emails": [{"value": "a@x", "type": "work", "primary": true}],
        "meta": {"created": "2026-01-01T00:00:00Z"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "m"}},
        "members": [{"value": "u2"}]
    });
    let doc = doc.as_object().cloned().unwrap_or_default();
    for rt in [user_type(), group_type()] {
        match filter::compile_str(&text, rt) {
            Ok(e) => {
                let _ = e.matches(&doc);
                let _ = e.lookups();
            }
            Err(err) => assert_eq!(err.status(), 400),
        }
    }
});
