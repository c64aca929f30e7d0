//! Discovery endpoints (RFC 7644 §4): ServiceProviderConfig, ResourceTypes, Schemas — generated
//! from the schema registry and the server's real limits, so they describe exactly what is served.

use crate::error::{Result, ScimError};
use crate::list_query::{DEFAULT_COUNT, MAX_COUNT};
use crate::messages::ListResponse;
use crate::schema::{SchemaDef, URN_SPC};
use crate::tenant_types::TenantSchemas;
use serde_json::{Value, json};

/// Largest request body accepted, bytes (a BulkRequest's too).
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// The most operations one BulkRequest may carry (RFC 7644 §3.7).
pub const MAX_BULK_OPERATIONS: usize = 1000;

/// `GET /ServiceProviderConfig`.
pub fn service_provider_config(base_url: &str) -> Value {
    json!({
        "schemas": [URN_SPC],
        "documentationUri": "https://github.com/scim-serverless/scim-serverless#readme",
        "patch": {"supported": true},
        "bulk": {"supported": true, "maxOperations": MAX_BULK_OPERATIONS, "maxPayloadSize": MAX_PAYLOAD},
        "filter": {"supported": true, "maxResults": MAX_COUNT},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_COUNT,
            "maxPageSize": MAX_COUNT,
            "cursorTimeout": crate::cursor::TTL_SECS,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer API key",
            "description": "A tenant API key (scim_<id>_<secret>) sent as 'Authorization: Bearer <key>'.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base_url}/ServiceProviderConfig"),
        }
    })
}

fn list(resources: Vec<Value>) -> ListResponse {
    ListResponse::whole(resources)
}

/// `GET /ResourceTypes`: the tenant's types, its declared extensions listed with the built-in.
pub fn resource_type_list(base_url: &str, types: &TenantSchemas, with_access: bool) -> ListResponse {
    list(types.kinds().map(|k| types.of(k).to_json(base_url, with_access)).collect())
}

/// `GET /ResourceTypes/{name}`.
pub fn resource_type(base_url: &str, types: &TenantSchemas, name: &str, with_access: bool) -> Result<Value> {
    types
        .kinds()
        .map(|k| types.of(k))
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .map(|r| r.to_json(base_url, with_access))
        .ok_or_else(|| ScimError::NotFound(format!("no resource type '{name}'")))
}

/// Every schema a tenant is served: the User schemas (core, enterprise, the access extension
/// for tenants with a role policy, its own User extensions), then the Group ones, then its
/// declared types'.
fn schemas_of(types: &TenantSchemas, with_access: bool) -> impl Iterator<Item = &SchemaDef> {
    types.kinds().flat_map(|k| types.of(k).schemas()).filter(move |s| with_access || s.id != crate::schema::URN_ACCESS)
}

/// `GET /Schemas`.
pub fn schema_list(base_url: &str, types: &TenantSchemas, with_access: bool) -> ListResponse {
    list(schemas_of(types, with_access).map(|s| s.to_json(base_url)).collect())
}

/// `GET /Schemas/{urn}`.
pub fn schema(base_url: &str, types: &TenantSchemas, id: &str, with_access: bool) -> Result<Value> {
    schemas_of(types, with_access)
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .map(|s| s.to_json(base_url))
        .ok_or_else(|| ScimError::NotFound(format!("no schema '{id}'")))
}
