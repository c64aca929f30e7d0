//! scim-core: the SCIM 2.0 domain of scim-serverless (schemas, resources, filter, PATCH,
//! projection, list queries, errors, auth), the storage seam with its DynamoDB and embedded
//! stores, and the HTTP-agnostic edge every Lambda and the local server call. No Lambda types.
#![warn(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo, clippy::unimplemented)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod activity;
pub mod auth;
pub mod casefold;
pub mod crypto;
pub mod cursor;
pub mod declarations;
pub mod diff;
pub mod discovery;
pub mod edge;
pub mod error;
pub mod events;
pub mod extensions;
pub mod federation;
pub mod filter;
pub mod json;
pub mod jwt;
pub mod kind;
pub mod list_query;
pub mod members;
pub mod messages;
pub mod migrate;
pub mod names;
pub mod oauth;
pub mod oauth_clients;
pub mod patch;
pub mod path;
pub mod portal;
pub mod projection;
pub mod resource;
pub mod resource_types;
pub mod roles;
pub mod schema;
pub mod security_event;
pub mod service;
pub mod settings;
pub mod setup_link;
pub mod store;
pub mod tenancy;
pub mod tenant_types;
pub mod time;
pub mod token_endpoint;
pub mod trace;

/// The path of the SCIM API under its root: a Tenant URL is `https://<api>[/<stage>]/scim/v2`.
pub const BASE_PATH: &str = "/scim/v2";

/// The JSON text of a document. Everything stored or sent goes through here: serde_json's
/// `Display` for `Value` (what `to_string()` calls) hands every token to a `fmt::Formatter`
/// one at a time, while this writes into one buffer (measured: the hot path's largest
/// serialization cost). Serializing a JSON value cannot fail.
pub fn json_text<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
