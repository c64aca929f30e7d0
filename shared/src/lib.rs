//! scim-core: the SCIM 2.0 domain of scim-serverless (schemas, resources, filter, PATCH,
//! projection, list queries, errors, auth), the storage seam with its DynamoDB and embedded
//! stores, and the HTTP-agnostic edge every Lambda and the local server call. No Lambda types.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::todo, clippy::unimplemented)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod auth;
pub mod discovery;
pub mod edge;
pub mod error;
pub mod events;
pub mod filter;
pub mod list_query;
pub mod members;
pub mod patch;
pub mod path;
pub mod projection;
pub mod resource;
pub mod schema;
pub mod service;
pub mod settings;
pub mod store;
pub mod time;
