//! `scim-local`: every route at `http://<host>:<port>/scim/v2`, through the same authentication
//! and the same `App::handle` the Lambdas use, on the embedded store or on DynamoDB.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use scim_core::discovery::MAX_PAYLOAD;
use scim_core::edge::{self, App};
use scim_core::error::ScimError;
use scim_core::store::Table;
use scim_core::store::durability::Durability;
use scim_core::store::dynamo::{DynamoConfig, DynamoTable};
use scim_core::store::embedded::EmbeddedTable;
use scim_core::{BASE_PATH, tenancy};
use std::convert::Infallible;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The tenant the local server creates on first start.
pub const LOCAL_TENANT: &str = "local";

/// Which store the local server runs on.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// Persistent, under a data directory.
    Embedded(PathBuf, Durability),
    /// Nothing kept after exit.
    Memory,
    /// A DynamoDB table (created if missing), e.g. on moto or DynamoDB Local.
    Dynamo(DynamoConfig),
}

/// Opens the chosen store. On the embedded store, change events (what the table's stream
/// produces in AWS) are appended to `events` as JSON lines when a path is given.
pub async fn open_store(choice: &StoreChoice, events: Option<PathBuf>) -> Result<Arc<dyn Table>, scim_core::store::StoreError> {
    let with_events = |t: EmbeddedTable| -> Result<Arc<dyn Table>, scim_core::store::StoreError> {
        if let Some(path) = &events {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| scim_core::store::StoreError::caused(format!("cannot open {}", path.display()), e))?;
            // events carry user names and ids: readable by the owner only, like the store
            scim_core::store::embedded::owner_only(path, 0o600)?;
            // a writer thread appends the lines, so the request path only derives and hands over
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            std::thread::spawn(move || {
                let mut w = std::io::BufWriter::new(file);
                while let Ok(line) = rx.recv() {
                    // gather what arrives within a few milliseconds: one wake-up and one write
                    // per batch, not per event (waking a thread per event costs the server a
                    // context switch each)
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    let _ = w.write_all(line.as_bytes());
                    while let Ok(more) = rx.try_recv() {
                        let _ = w.write_all(more.as_bytes());
                    }
                    let _ = w.flush();
                }
            });
            t.on_change(Box::new(move |old, new| {
                for mut e in scim_core::events::derive(old, new) {
                    e.identify_locally();
                    let mut line = e.to_line();
                    line.push('\n');
                    let _ = tx.send(line);
                }
            }));
        }
        Ok(Arc::new(t))
    };
    Ok(match choice {
        StoreChoice::Embedded(dir, durability) => with_events(EmbeddedTable::open_with(dir, *durability)?)?,
        StoreChoice::Memory => with_events(EmbeddedTable::in_memory())?,
        StoreChoice::Dynamo(cfg) => {
            let t = DynamoTable::connect(cfg)?;
            t.create_table().await?;
            Arc::new(t)
        }
    })
}

/// Brings the store to the current layout (an upgrade prints its progress and any names it
/// could not merge on stderr), then makes the local tenant and an admin key on first start;
/// returns the key when it made one (or when `new_key` asks for another).
pub async fn bootstrap(app: &App, new_key: bool) -> Result<Option<String>, ScimError> {
    let report = scim_core::migrate::upgrade(app.service.layout(), &mut |line| eprintln!("scim-local: {line}")).await?;
    if report.from.is_some_and(|v| v < report.to) || (report.from.is_none() && !report.initialised) {
        eprintln!("scim-local: store upgraded to layout {}", report.to);
    }
    for c in &report.collisions {
        eprintln!(
            "scim-local: {} '{}' of {} and the one of {} are one name now (case and Unicode form are ignored); rename or delete one",
            c.attribute, c.name, c.id, c.holder
        );
    }
    scim_core::oauth::ensure_signing_key(app.service.layout()).await?;
    let created = tenancy::create_tenant(app.service.layout(), LOCAL_TENANT, "Local development tenant").await?;
    // a tenant without a single key: a first start that stopped between making the tenant and
    // its key (the key is made again rather than lost)
    let keyless = !created && tenancy::list_keys(app.service.layout(), LOCAL_TENANT).await?.is_empty();
    if created || keyless || new_key {
        return Ok(Some(tenancy::create_key(app.service.layout(), LOCAL_TENANT, "admin", None).await?.token));
    }
    Ok(None)
}

/// The URL an identity provider reaches the local server at (`--public-url`): an origin, with
/// or without the base path. Every URL the server shows or signs starts with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `https://host[:port]`, without a trailing slash.
    origin: String,
}

impl PublicUrl {
    /// Reads `https://host[:port]` or `https://host[:port]/scim/v2`; anything else is refused
    /// with what to give instead.
    pub fn parse(url: &str) -> Result<PublicUrl, crate::cli::Failure> {
        let bad =
            |why: &str| crate::cli::Failure(format!("--public-url {url}: {why} (give the tunnel's origin, e.g. https://abc.example.dev)"));
        let trimmed = url.trim().trim_end_matches('/');
        let origin = trimmed.strip_suffix(BASE_PATH).unwrap_or(trimmed);
        let uri: http::Uri = origin.parse().map_err(|_| bad("not a URL"))?;
        if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.authority().is_none() {
            return Err(bad("not an http(s) URL"));
        }
        if !uri.path().trim_end_matches('/').is_empty() || uri.query().is_some() || origin.contains('#') {
            return Err(bad("a path, query or fragment other than /scim/v2 cannot reach this server"));
        }
        Ok(PublicUrl { origin: origin.to_string() })
    }

    /// The SCIM base URL under it.
    pub fn base_url(&self) -> String {
        edge::base_url(&self.origin, "")
    }

    /// What to tell the person starting the server about it, if anything.
    pub fn warning(&self) -> Option<&'static str> {
        (!self.origin.starts_with("https://"))
            .then_some("the public URL is not HTTPS: Entra ID and Okta accept only a public HTTPS Tenant URL")
    }
}

/// A fresh setup link for the local tenant (printed as `SCIM_PORTAL_URL` on every start).
pub async fn portal_link(app: &App, base_url: &str, hours: i64) -> Result<String, ScimError> {
    let (token, _) = scim_core::setup_link::make_link(app.service.layout(), LOCAL_TENANT, hours).await?;
    Ok(scim_core::setup_link::link_url(base_url, &token))
}

/// Serves connections until the listener fails. With a public URL, every URL the server shows
/// starts with it; without one, with the `Host` the client used.
pub async fn serve(listener: TcpListener, app: Arc<App>, public: Option<PublicUrl>) -> std::io::Result<()> {
    let base: Option<Arc<str>> = public.map(|p| Arc::from(p.base_url()));
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (app, base) = (app.clone(), base.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let (app, base) = (app.clone(), base.clone());
                async move { Ok::<_, Infallible>(handle(&app, req, peer.ip(), base.as_deref()).await) }
            });
            // responses are small: one contiguous write costs less CPU than a vectored one
            // (headers and body apart); measured in docs/benchmarks.md
            let io = TokioIo::new(crate::parse_errors::ScimAnswers::new(stream));
            let _ = http1::Builder::new().keep_alive(true).writev(false).serve_connection(io, svc).await;
        });
    }
}

fn scim_response(r: edge::Response) -> hyper::Response<Full<Bytes>> {
    r.into_http().map(Full::new)
}

async fn handle(app: &App, req: hyper::Request<Incoming>, peer: std::net::IpAddr, base: Option<&str>) -> hyper::Response<Full<Bytes>> {
    if !crate::access_log::enabled() {
        return scim_response(serve_one(app, req, peer, base).await);
    }
    let started = std::time::Instant::now();
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let resp = serve_one(app, req, peer, base).await;
    crate::access_log::record(method.as_str(), uri.path(), resp.status, started.elapsed());
    scim_response(resp)
}

async fn serve_one(app: &App, req: hyper::Request<Incoming>, peer: std::net::IpAddr, base: Option<&str>) -> edge::Response {
    let (parts, body) = req.into_parts();
    let base_url = match base {
        Some(b) => b.to_string(),
        None => {
            let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
            edge::base_url(&["http://", host].concat(), "")
        }
    };
    if parts.uri.path() == "/portal" || parts.uri.path().starts_with("/portal/") {
        let body = match read_body(body).await {
            Ok(b) => b,
            Err(e) => return edge::Response::error(&e),
        };
        let preq = hyper::Request::from_parts(parts, body);
        return scim_core::portal::handle(app.service.layout(), &preq, &base_url).await;
    }
    if scim_core::token_endpoint::serves(parts.uri.path()) {
        let path = parts.uri.path().to_string();
        let body = match read_body(body).await {
            Ok(b) => b,
            Err(e) => return scim_core::token_endpoint::error(&scim_core::oauth::TokenError::bad("invalid_request", e.client_detail())),
        };
        let root = base_url.strip_suffix(BASE_PATH).unwrap_or(&base_url);
        return scim_core::token_endpoint::handle(&app.service, &hyper::Request::from_parts(parts, body), &path, root).await.response;
    }
    // the URI the client sent (a clone shares its bytes): the path under the base URL is cut
    // from it once, and the request keeps it unchanged
    let uri = parts.uri.clone();
    // `/scim/v2Users` is not under the base URL
    let Some(path) = edge::path_under_base(uri.path()) else {
        return edge::Response::error(&ScimError::NotFound(format!("no endpoint at {}; the base URL is {BASE_PATH}", uri.path())));
    };
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let attempt =
        scim_core::auth::Attempt { method: parts.method.as_str(), path, user_agent: header(http::header::USER_AGENT), audience: &base_url };
    let principal = match app.authenticate_attempt(header(http::header::AUTHORIZATION), Some(peer), attempt).await {
        Ok(p) => p,
        Err(e) => return edge::Response::error(&e),
    };
    match read_body(body).await {
        Ok(body) => app.handle_under(&principal, &hyper::Request::from_parts(parts, body), path, &base_url, None).await,
        // refused before the body was read whole: audited all the same (the key is known)
        Err(e) => app.refuse_under(&principal, &hyper::Request::from_parts(parts, Bytes::new()), path, &e).await,
    }
}

/// A request's body, at most [`MAX_PAYLOAD`] bytes (413 past it); a body whose framing is broken
/// (a malformed chunk) is 400. A request that declares none (a GET) is not read at all.
async fn read_body(body: Incoming) -> Result<Bytes, ScimError> {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    match Limited::new(body, MAX_PAYLOAD + 1).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ScimError::PayloadTooLarge(format!("request body over {MAX_PAYLOAD} bytes")))
        }
        Err(e) => Err(ScimError::invalid_syntax(format!("the request body could not be read: {e}"))),
    }
}
