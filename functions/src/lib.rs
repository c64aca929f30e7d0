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
pub mod metrics;
pub mod parse_errors;

use scim_core::store::Table;
use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
use std::sync::Arc;

/// Logs as JSON lines (CloudWatch) or text (terminal); level from `RUST_LOG` (default info).
/// Request bodies, tokens and query strings are never logged.
pub fn init_tracing(json: bool) {
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if json {
        let _ = json_logs(filter, std::io::stderr).try_init();
    } else {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
    }
}

/// The Lambdas' log lines: one JSON object each, with an RFC 3339 `timestamp` and a `level`
/// (what Lambda's JSON log format reads; a line without a level would count as INFO).
pub fn json_logs<W>(
    filter: tracing_subscriber::EnvFilter,
    writer: W,
) -> tracing_subscriber::fmt::Subscriber<
    tracing_subscriber::fmt::format::JsonFields,
    tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Json>,
    tracing_subscriber::EnvFilter,
    W,
>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).json().with_current_span(false).finish()
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_log_line_is_json_with_a_timestamp_and_a_level() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = super::json_logs(tracing_subscriber::EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(status = 503, "the store failed");
            tracing::info!("a request");
            tracing::debug!("filtered out at info");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        assert_eq!(lines.len(), 2, "{text}");
        for l in &lines {
            let t = l["timestamp"].as_str().expect("a timestamp");
            assert!(time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(), "{t}");
        }
        assert_eq!((lines[0]["level"].as_str(), lines[1]["level"].as_str()), (Some("WARN"), Some("INFO")));
    }
}
