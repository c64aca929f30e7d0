//! PATCH: path parser and engine. Any body must give a new valid document or a 4xx.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scim_core::patch::{self, PatchOp, PatchPath};
use scim_core::schema::{group_type, user_type};

fuzz_target!(|data: &[u8]| {
    let _ = PatchPath::parse(&String::from_utf8_lossy(data));
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let user = serde_json::json!({
        "id": "u1", "userName": "ann", "active": true, "name": {"givenName": "A"},
        "emails": [{"value": "a@x", "type": "work", "primary": true}],
        "meta": {"version": "W/\"1\""}
    });
    let user = user.as_object().cloned().unwrap_or_default();
    match PatchOp::parse(&body) {
        Ok(op) => {
            for rt in [user_type(), group_type()] {
                match patch::apply(rt, &user, &op, &scim_core::resource::Undeclared::default()) {
                    Ok(new) => {
                        assert_eq!(new.get("id"), user.get("id"), "PATCH never changes the id");
                        let _ = scim_core::diff::changed_attributes(&user, &new);
                    }
                    Err(e) => assert!((400..500).contains(&e.status()), "{e:?}"),
                }
            }
            let _ = scim_core::members::split(&op);
        }
        Err(e) => assert!((400..500).contains(&e.status())),
    }
});
