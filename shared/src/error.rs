//! The one error type of the core: every failure maps to an HTTP status and an RFC 7644 §3.12
//! `scimType`, and renders as a SCIM Error body.

use crate::store::StoreError;
use serde_json::{Value, json};

/// RFC 7644 §3.12 `scimType` values (plus RFC 9865's cursor errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    /// The filter's syntax is invalid, or it combines an attribute and operator not supported.
    InvalidFilter,
    /// The request asks for more than the server is willing to process (results, operations,
    /// member changes, or a body too large).
    TooMany,
    /// An attribute value is already in use or reserved.
    Uniqueness,
    /// The change does not fit the target attribute's mutability (e.g. an immutable one).
    Mutability,
    /// The request body's structure is invalid or does not conform to the request schema.
    InvalidSyntax,
    /// The `path` is invalid or malformed.
    InvalidPath,
    /// The `path` did not yield an attribute or value that could be operated on.
    NoTarget,
    /// A required value is missing, or a value does not fit the operation, type or schema.
    InvalidValue,
    /// The SCIM protocol version requested is not supported.
    InvalidVers,
    /// The request cannot be completed because it passes sensitive information in its URI.
    Sensitive,
    /// The cursor is not one this server issued for this tenant and query (RFC 9865).
    InvalidCursor,
    /// The cursor was valid but has expired (RFC 9865).
    ExpiredCursor,
}

impl ScimType {
    /// The wire name, as RFC 7644 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::InvalidCursor => "invalidCursor",
            ScimType::ExpiredCursor => "expiredCursor",
        }
    }
}

/// Every error the core can return to a client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScimError {
    /// 400 with a `scimType`.
    #[error("{detail}")]
    BadRequest {
        /// The `scimType` sent with the 400.
        scim_type: ScimType,
        /// The human-readable `detail` sent to the client.
        detail: String,
    },
    /// 401: no, malformed, unknown, revoked or expired credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the key's role does not cover this route, or the source address is not allowed.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource in this tenant (or no such route).
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409 uniqueness.
    #[error("{0}")]
    Conflict(String),
    /// 409 without a `scimType`: the change conflicts with stored data (a schema change that
    /// values still held would not satisfy) or cannot be resolved against it (a Bulk operation
    /// referencing a `bulkId` that was not created).
    #[error("{0}")]
    InUse(String),
    /// 412: `If-Match` did not match the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: body larger than the configured maximum.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: slow down; `retry_after` seconds.
    #[error("{detail}")]
    TooManyRequests {
        /// The human-readable `detail` sent to the client.
        detail: String,
        /// Seconds to wait before retrying, sent as `Retry-After`.
        retry_after: u32,
    },
    /// 501: a SCIM feature this server does not offer (e.g. bulk before it lands).
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the store is unavailable for now; retry after `retry_after` seconds.
    #[error("{detail}")]
    Unavailable {
        /// The human-readable `detail` sent to the client (never the store's cause).
        detail: String,
        /// Seconds to wait before retrying, sent as `Retry-After`.
        retry_after: u32,
    },
    /// 500: a bug or a corrupt stored item. The cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Shorthand used across the core.
pub type Result<T, E = ScimError> = std::result::Result<T, E>;

impl ScimError {
    /// 400 with the given `scimType`.
    pub fn bad(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError::BadRequest { scim_type, detail: detail.into() }
    }
    /// 400 invalidValue.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidValue, detail)
    }
    /// 400 invalidSyntax.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidSyntax, detail)
    }
    /// 400 invalidFilter.
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidFilter, detail)
    }
    /// 400 invalidPath.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidPath, detail)
    }
    /// 400 mutability.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::Mutability, detail)
    }
    /// 400 noTarget.
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::NoTarget, detail)
    }

    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ScimError::BadRequest { .. } => 400,
            ScimError::Unauthorized(_) => 401,
            ScimError::Forbidden(_) => 403,
            ScimError::NotFound(_) => 404,
            ScimError::MethodNotAllowed(_) => 405,
            ScimError::Conflict(_) | ScimError::InUse(_) => 409,
            ScimError::PreconditionFailed(_) => 412,
            ScimError::PayloadTooLarge(_) => 413,
            ScimError::UnsupportedMediaType(_) => 415,
            ScimError::TooManyRequests { .. } => 429,
            ScimError::Internal(_) => 500,
            ScimError::NotImplemented(_) => 501,
            ScimError::Unavailable { .. } => 503,
        }
    }

    /// The `scimType`, where RFC 7644 defines one for this error.
    pub fn scim_type(&self) -> Option<ScimType> {
        match self {
            ScimError::BadRequest { scim_type, .. } => Some(*scim_type),
            ScimError::Conflict(_) => Some(ScimType::Uniqueness),
            ScimError::PayloadTooLarge(_) => Some(ScimType::TooMany),
            _ => None,
        }
    }

    /// Seconds for a `Retry-After` header, when the client should retry.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ScimError::TooManyRequests { retry_after, .. } | ScimError::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The text sent to the client. Internal causes stay in the logs.
    pub fn client_detail(&self) -> String {
        match self {
            ScimError::Internal(_) => "internal server error; the request id in the logs has the cause".to_string(),
            other => other.to_string(),
        }
    }

    /// The RFC 7644 §3.12 Error body.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [crate::schema::URN_ERROR],
            "status": self.status().to_string(),
            "detail": self.client_detail(),
        });
        if let (Some(t), Some(obj)) = (self.scim_type(), body.as_object_mut()) {
            obj.insert("scimType".into(), Value::String(t.as_str().into()));
        }
        body
    }
}

/// How a failure below the store seam reaches the client: throttling is 429, an unreachable store
/// or a lost race 503 (both with Retry-After), anything else 500.
impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Throttled => ScimError::TooManyRequests { detail: "the store is throttling; retry shortly".into(), retry_after: 1 },
            e @ StoreError::Unavailable { .. } => {
                tracing::warn!(cause = %e, "store unavailable");
                ScimError::Unavailable { detail: "the store is unavailable; retry shortly".into(), retry_after: 2 }
            }
            StoreError::TooLarge { what } => ScimError::PayloadTooLarge(what),
            StoreError::Conflict { index } => {
                ScimError::Unavailable { detail: format!("concurrent update (write {index}); retry"), retry_after: 1 }
            }
            e @ StoreError::Other { .. } => ScimError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_rfc_shape() {
        let e = ScimError::Conflict("userName \"a\" is taken".into());
        let b = e.to_json();
        assert_eq!(b["status"], "409");
        assert_eq!(b["scimType"], "uniqueness");
        assert_eq!(b["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    }

    #[test]
    fn internal_cause_is_not_sent() {
        let e = ScimError::Internal("table scim-x item corrupt at pk TENANT#a".into());
        assert!(!e.to_json()["detail"].as_str().unwrap_or_default().contains("TENANT#"));
    }
}
