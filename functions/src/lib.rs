//! The edges of scim-serverless: one Lambda binary per SCIM route (`lambda`), the REQUEST
//! authorizer (`authorizer`), the OAuth token endpoint (`lambda::run_token`, signing with a
//! KMS key: `kms`), and the `scim-local` server (`local`). All of them call the same
//! core: `scim_core::edge::App`.

pub mod access_log;
pub mod authorizer;
pub mod cli;
pub mod events;
pub mod fetch;
pub mod kms;
pub mod lambda;
pub mod local;
pub mod parse_errors;

use scim_core::store::Table;
use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
use std::sync::Arc;

/// Logs as JSON lines (CloudWatch) or text (terminal); level from `RUST_LOG` (default info).
/// Request bodies, tokens and query strings are never logged.
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { b.json().with_current_span(false).without_time().try_init() } else { b.with_ansi(false).try_init() };
}

/// The DynamoDB table named by the environment (`SCIM_TABLE`, `AWS_REGION`, optional
/// `SCIM_DYNAMODB_ENDPOINT`), client built once per process.
pub fn table_from_env() -> Result<Arc<dyn Table>, scim_core::store::StoreError> {
    let cfg = DynamoConfig::from_env()?;
    Ok(Arc::new(DynamoTable::connect(&cfg)?))
}

/// The app over the table the environment names, with the KMS signing keys when
/// `SCIM_TOKEN_SIGNING_KEYS` names any (the authorizer and the token function; elsewhere the
/// keys are never used) and, for the token function (`federation`), a JWKS fetcher (reading
/// the system's root certificates costs cold-start time the authorizer need not pay).
pub fn app_from_env(federation: bool) -> Result<scim_core::edge::App, String> {
    let table = table_from_env().map_err(|e| e.to_string())?;
    let service = if federation { fetch::service_over(table) } else { scim_core::service::Service::over(table) };
    Ok(scim_core::edge::App::new(match kms::KmsKeys::from_env() {
        Some(keys) => service.with_signing_keys(Arc::new(keys?)),
        None => service,
    }))
}
