//! Resource validation: any JSON body becomes a canonical document or a 400.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_core::resource;
use scim_core::schema::{group_type, user_type};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for rt in [user_type(), group_type()] {
        match resource::normalize(rt, &body, &resource::Undeclared::default()) {
            // normalising a canonical document again changes nothing
            Ok(doc) => assert_eq!(resource::normalize(rt, &serde_json::Value::Object(doc.clone()), &resource::Undeclared::default()).ok(), Some(doc)),
            Err(e) => assert_eq!(e.status(), 400),
        }
    }
    let _ = scim_core::list_query::ListQuery::from_search(&body);
});
