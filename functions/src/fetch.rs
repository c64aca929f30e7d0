//! The JWKS fetcher of workload identity federation: an HTTPS GET (the system's root
//! certificates, rustls), bounded in time and size. Plain `http://` is only ever used for the
//! loopback URLs a federation may name in tests (`federation::Federation::validate`).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use scim_core::federation::{JwksFetch, MAX_JWKS_BYTES};
use std::time::Duration;

/// How long one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches JWKS documents over HTTPS.
pub struct HttpFetch {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl HttpFetch {
    /// A client trusting the system's root certificates; `Err` when none can be read.
    pub fn new() -> Result<HttpFetch, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("no root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpFetch { client: Client::builder(TokioExecutor::new()).build(https) })
    }
}

#[async_trait::async_trait]
impl JwksFetch for HttpFetch {
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let req = http::Request::get(uri).header(http::header::ACCEPT, "application/json").body(Empty::new()).map_err(|e| e.to_string())?;
        let fetch = async {
            let resp = self.client.request(req).await.map_err(|e| format!("request failed: {e}"))?;
            if resp.status() != http::StatusCode::OK {
                return Err(format!("answered {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect().await.map_err(|e| format!("body: {e}"))?;
            Ok(body.to_bytes().to_vec())
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch).await.map_err(|_| format!("no answer in {FETCH_TIMEOUT:?}"))?
    }
}

/// A service over a table that fetches identity providers' keys (when the system has root
/// certificates; without, client assertions are refused and the reason is logged).
pub fn service_over(table: std::sync::Arc<dyn scim_core::store::Table>) -> scim_core::service::Service {
    let service = scim_core::service::Service::over(table);
    match HttpFetch::new() {
        Ok(f) => service.with_jwks_fetch(std::sync::Arc::new(f)),
        Err(e) => {
            tracing::warn!(error = %e, "no JWKS fetcher: client assertions (workload identity federation) will be refused");
            service
        }
    }
}
