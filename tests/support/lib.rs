//! Test support: start the real HTTP edge (the same `serve` as `scim-local`) on either store,
//! start moto's DynamoDB server when none is given, and a small HTTP client.

pub mod browser;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use scim_core::edge::App;
use scim_core::store::Table;
use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
use scim_core::store::embedded::EmbeddedTable;
use scim_core::store::metered::Metered;
use scim_core::tenancy;
use serde_json::Value;
use std::net::TcpListener as StdListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Embedded,
    Dynamo,
}

/// The DynamoDB endpoint for tests: `SCIM_TEST_DYNAMODB_ENDPOINT`, or a moto server this test
/// process starts once (it exits with the process).
pub fn moto_endpoint() -> String {
    static EP: OnceLock<String> = OnceLock::new();
    EP.get_or_init(|| {
        if let Ok(e) = std::env::var("SCIM_TEST_DYNAMODB_ENDPOINT")
            && !e.is_empty()
        {
            return e;
        }
        let port = StdListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(45999);
        // a watchdog shell: moto dies when this test process does
        // scripts/moto-serial.py: moto with request handling serialised (see the script)
        let serial = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/moto-serial.py");
        let script = format!(
            "python3 {} {port} >/dev/null 2>&1 & m=$!; while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill $m",
            serial.display(),
            pid = std::process::id()
        );
        let watchdog =
            Command::new("sh").arg("-c").arg(script).stdin(Stdio::null()).spawn().expect("start moto (pip install 'moto[server]')");
        // the watchdog outlives this function on purpose: it ends with the test process
        std::mem::forget(watchdog);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on port {port}; is moto[server] installed?");
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
    .clone()
}

/// A running server on a fresh store with a bootstrap tenant (`local`) and admin key.
pub struct Server {
    pub base: String,
    pub token: String,
    pub app: Arc<App>,
    pub metered: Arc<Metered>,
    pub store: Store,
    pub client: Client,
    /// Change events, on the embedded store (its change feed; DynamoDB's stream is AWS-only).
    pub events: Arc<std::sync::Mutex<Vec<scim_core::events::Event>>>,
}

impl Server {
    /// Starts a server on a fresh table of the given store.
    pub async fn start(store: Store) -> Server {
        let events: Arc<std::sync::Mutex<Vec<scim_core::events::Event>>> = Arc::default();
        let table = fresh_table(store, Some(events.clone())).await;
        Server::start_on(store, table, events).await.expect("a new key")
    }

    /// Starts a server on a table that may hold data already (the same start-up as
    /// `scim-local`: upgrade to the current layout, then the bootstrap tenant). Returns the
    /// bootstrap key only when it was made now.
    pub async fn start_on(
        store: Store,
        table: Arc<dyn Table>,
        events: Arc<std::sync::Mutex<Vec<scim_core::events::Event>>>,
    ) -> Option<Server> {
        let metered = Arc::new(Metered::new(table));
        let app = Arc::new(App::new(scim_functions::fetch::service_over(metered.clone())));
        let token = scim_functions::local::bootstrap(&app, false).await.expect("bootstrap")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(scim_functions::local::serve(listener, app.clone(), None));
        let base = format!("http://{addr}/scim/v2");
        Some(Server { client: Client::new(&base, &token), base, token, app, metered, store, events })
    }

    /// A key for another tenant (created if needed) with a role.
    pub async fn tenant_key(&self, tenant: &str, role: &str) -> Client {
        tenancy::create_tenant(self.app.service.layout(), tenant, tenant).await.expect("tenant");
        let k = tenancy::create_key(self.app.service.layout(), tenant, role, None).await.expect("key");
        Client::new(&self.base, &k.token)
    }
}

/// A fresh, empty table of a store (on the embedded store, change events go to `events`).
pub async fn fresh_table(store: Store, events: Option<Arc<std::sync::Mutex<Vec<scim_core::events::Event>>>>) -> Arc<dyn Table> {
    match store {
        Store::Embedded => {
            let dir = std::env::temp_dir().join(format!("scim-test-{}", uuid_like()));
            let t = EmbeddedTable::open(&dir).expect("open embedded");
            if let Some(sink) = events {
                t.on_change(Box::new(move |old, new| {
                    if let Ok(mut v) = sink.lock() {
                        v.extend(scim_core::events::derive(old, new));
                    }
                }));
            }
            Arc::new(t)
        }
        Store::Dynamo => Arc::new(fresh_dynamo_table(&format!("t{}", uuid_like())).await),
    }
}

/// A new DynamoDB table on moto with the layout's key schema and index.
pub async fn fresh_dynamo_table(name: &str) -> DynamoTable {
    // moto handles one request at a time (scripts/moto-serial.py) for every test of the run, so
    // a call may queue behind many others: wait for it rather than time out and retry
    let cfg = DynamoConfig {
        attempt_timeout: Duration::from_secs(30),
        operation_timeout: Duration::from_secs(90),
        ..DynamoConfig::new(name, "us-east-1", Some(moto_endpoint()))
    };
    let t = DynamoTable::connect(&cfg).expect("connect");
    t.create_table().await.expect("create table");
    t
}

/// A name unique to this process and call (temporary directories, table names).
pub fn uuid_like() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{t}-{n}", std::process::id())
}

/// A response, decoded.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub raw: String,
}

impl Resp {
    /// A header by name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    /// Asserts the response is a SCIM Error with this status (and scimType, when given).
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status, status, "{}", self.raw);
        assert_eq!(self.header("content-type"), Some("application/scim+json"), "{}", self.raw);
        assert_eq!(self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{}", self.raw);
        assert_eq!(self.body["status"], status.to_string(), "{}", self.raw);
        if let Some(t) = scim_type {
            assert_eq!(self.body["scimType"], t, "{}", self.raw);
        }
    }
}

/// A bearer-authenticated HTTP client for one base URL.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Client {
    /// A client with a token.
    pub fn new(base: &str, token: &str) -> Client {
        Client { base: base.to_string(), token: token.to_string(), http: HyperClient::builder(TokioExecutor::new()).build_http() }
    }

    /// Sends a request with optional JSON body and extra headers. A transport failure (refused,
    /// reset) is a response with status 0 and the error as its text, never a panic.
    pub async fn send(&self, method: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Resp {
        let mut b = hyper::Request::builder().method(method).uri(format!("{}{}", self.base, path));
        if !self.token.is_empty() {
            b = b.header("authorization", format!("Bearer {}", self.token));
        }
        if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            b = b.header("content-type", "application/scim+json");
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::from(body.unwrap_or_default().to_string()))).expect("request");
        let transport = |e: String| Resp { status: 0, headers: Vec::new(), body: Value::String(e.clone()), raw: e };
        let resp = match self.http.request(req).await {
            Ok(r) => r,
            Err(e) => return transport(format!("transport error: {e}")),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string())).collect();
        let bytes = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return transport(format!("transport error reading the body: {e}")),
        };
        let raw = String::from_utf8_lossy(&bytes).to_string();
        let body = if raw.is_empty() { Value::Null } else { serde_json::from_str(&raw).unwrap_or(Value::String(raw.clone())) };
        Resp { status, headers, body, raw }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, &[]).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(&body.to_string()), &[]).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send("PUT", path, Some(&body.to_string()), &[]).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send("PATCH", path, Some(&body.to_string()), &[]).await
    }
    /// `GET /Users?filter=...` with the filter URL-encoded.
    pub async fn filter(&self, collection: &str, filter: &str, extra: &str) -> Resp {
        self.get(&format!("{collection}?filter={}{extra}", encode(filter))).await
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs a test body against both stores.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, |$srv:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($srv: scim_tests::Server) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                run(scim_tests::Server::start(scim_tests::Store::Embedded).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn dynamodb() {
                run(scim_tests::Server::start(scim_tests::Store::Dynamo).await).await
            }
        }
    };
}
