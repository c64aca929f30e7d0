//! End-to-end tests through the HTTP edge, each run on the embedded store and on DynamoDB
//! (moto). One test binary, many modules.

mod bulk;
mod edges;
mod errors;
mod extensions;
mod faults;
mod federation;
mod filters;
mod groups;
mod iam_grants;
mod identity_text;
mod idp;
mod isolation;
mod lambda_events;
mod local_binary;
mod oauth;
mod paging;
mod pipe_filter;
mod portal;
mod resource_types;
mod route_table;
mod store_contract;
mod tenant_settings;
mod tracing;
mod upgrade;
mod users;

use serde_json::{Value, json};

/// A minimal user body.
pub fn user(name: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": true})
}

/// The id of a created resource.
pub fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// A PatchOp body.
pub fn patch_op(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}
