//! `scim-local`: the whole SCIM API at one local base URL.

use clap::Parser;
use scim_core::edge::App;
use scim_core::store::durability::Durability;
use scim_core::store::dynamo::DynamoConfig;
use scim_functions::cli::{self, Failure};
use scim_functions::local::{self, StoreChoice};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The local server is throughput-bound and allocates per request (JSON documents, items):
/// mimalloc's thread-local free lists beat the system allocator there (see docs/benchmarks.md).
/// The Lambdas keep the system allocator: one request at a time, smaller binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serves every SCIM route at http://HOST:PORT/scim/v2 with the same code as the Lambdas.
///
/// On first start it creates the tenant "local" and an admin API key, and prints lines on
/// stdout for scripts: SCIM_BASE_URL=<url>, SCIM_TOKEN=<key> (only when it was just made; it is
/// shown once), SCIM_PORTAL_URL=<a setup link for the local tenant, valid 24 hours, made anew
/// on every start> and SCIM_TOKEN_URL=<the OAuth token endpoint>. Later starts reuse the store. Everything for people goes to stderr.
#[derive(Parser, Debug)]
#[command(name = "scim-local", version)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8787, env = "SCIM_LOCAL_PORT")]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Where the embedded store keeps its data (default $XDG_DATA_HOME/scim-local, or
    /// ~/.local/share/scim-local: one place, whatever directory you start it from).
    #[arg(long, env = "SCIM_LOCAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The URL an identity provider reaches this server at (an HTTPS tunnel to it, say
    /// https://abc.example.dev): used for SCIM_BASE_URL, every location in responses, the
    /// portal's Tenant URL and setup links. Entra ID and Okta need a public HTTPS URL.
    #[arg(long, env = "SCIM_PUBLIC_URL")]
    public_url: Option<String>,
    /// When the embedded store answers a write: `sync` (the default) once it is on stable
    /// storage, one fdatasync shared by every write made meanwhile (group commit); `async` once
    /// it is in the file (a killed process loses nothing, a power cut may lose the last writes:
    /// for benchmarks and throwaway data).
    #[arg(long, default_value = "sync", value_parser = ["sync", "async"])]
    durability: String,
    /// Keep nothing: an in-memory store.
    #[arg(long, conflicts_with = "dynamodb_endpoint")]
    memory: bool,
    /// Use DynamoDB at this endpoint (moto, DynamoDB Local) instead of the embedded store.
    #[arg(long, env = "SCIM_DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// DynamoDB table name (created with its index if missing).
    #[arg(long, default_value = "scim-local", env = "SCIM_TABLE")]
    table: String,
    /// AWS region for DynamoDB (set explicitly: no instance-metadata probing).
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    region: String,
    /// Where change events go, one JSON line each (default: events.jsonl in the data directory;
    /// "-" turns them off). Not available on DynamoDB, whose stream feeds them in AWS.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Print a new admin key for the local tenant even if one was made before.
    #[arg(long)]
    new_key: bool,
    /// Also make an OAuth client (client credentials, role provisioner) for the local tenant and
    /// print CLIENT_ID= and CLIENT_SECRET= once, for an IdP that authenticates with OAuth.
    #[arg(long)]
    new_oauth_client: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    scim_functions::init_tracing(false);
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cli::fail("scim-local", e.as_ref()),
    }
}

type Outcome = Result<(), Box<dyn std::error::Error>>;

async fn run(args: Args) -> Outcome {
    let public = args.public_url.as_deref().map(local::PublicUrl::parse).transpose()?;
    let choice = match (&args.dynamodb_endpoint, args.memory) {
        (Some(e), _) => StoreChoice::Dynamo(DynamoConfig::new(args.table.clone(), args.region.clone(), Some(e.clone()))),
        (None, true) => StoreChoice::Memory,
        (None, false) => {
            let dir = cli::data_dir(args.data_dir.clone());
            eprintln!("scim-local: embedded store in {} ({})", dir.path.display(), dir.why);
            let durability = Durability::parse(&args.durability).unwrap_or_default();
            StoreChoice::Embedded(dir.path, durability)
        }
    };
    let events = match (&args.events, &choice) {
        (Some(p), _) if p.as_os_str() == "-" => None,
        (Some(p), _) => Some(p.clone()),
        (None, StoreChoice::Embedded(dir, _)) => Some(dir.join("events.jsonl")),
        (None, _) => None,
    };
    if let (Some(_), StoreChoice::Embedded(dir, _)) = (&events, &choice) {
        std::fs::create_dir_all(dir).map_err(|e| Failure(format!("cannot create {}: {e}", dir.display())))?;
    }
    let table = local::open_store(&choice, events.clone()).await.map_err(|e| Failure(format!("cannot open the store: {e}")))?;
    // listen before anything is made: a key shown once must never be made for a server that
    // then cannot start
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await.map_err(|e| listen_failure(&args, e))?;
    let addr = listener.local_addr()?;
    let base_url = match &public {
        Some(p) => p.base_url(),
        None => format!("http://{addr}{}", scim_core::BASE_PATH),
    };
    let app = Arc::new(App::new(scim_functions::fetch::service_over(table)));
    let token = local::bootstrap(&app, args.new_key).await.map_err(|e| Failure(format!("cannot set up the local tenant: {e}")))?;
    let client = match args.new_oauth_client {
        true => Some(
            scim_core::oauth::create_client(app.service.layout(), local::LOCAL_TENANT, "provisioner", None)
                .await
                .map_err(|e| Failure(format!("cannot make an OAuth client: {e}")))?,
        ),
        false => None,
    };
    let announced = announce(&app, &base_url, token.as_deref(), client.as_ref()).await;
    if let Err(e) = announced {
        if token.is_some() {
            eprintln!("scim-local: the admin key made now could not be shown; `scim-local --new-key` prints another");
        }
        return Err(e);
    }
    describe_start(&choice, &base_url, addr, token.is_some(), events.as_deref(), public.as_ref());
    tokio::select! {
        r = local::serve(listener, app, public) => r?,
        _ = tokio::signal::ctrl_c() => {
            scim_functions::access_log::flush();
            eprintln!("scim-local: stopped");
        }
    }
    Ok(())
}

/// Why the server cannot listen, with what to do about it.
fn listen_failure(args: &Args, e: std::io::Error) -> Failure {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!(
                "; is another scim-local (or another server) using port {}? Choose another with --port N (0 picks a free one)",
                args.port
            )
        }
        std::io::ErrorKind::PermissionDenied => "; ports below 1024 need privileges: choose another with --port N".into(),
        _ => String::new(),
    };
    Failure(format!("cannot listen on {}:{}: {e}{hint}", args.host, args.port))
}

/// Prints the lines scripts read, on stdout in one write (a reader that stops reading early,
/// `| head -1`, does not stop the server).
async fn announce(app: &App, base_url: &str, token: Option<&str>, client: Option<&scim_core::oauth::NewSecret>) -> Outcome {
    let portal = local::portal_link(app, base_url, 24).await.map_err(|e| Failure(format!("cannot make a setup link: {e}")))?;
    let mut lines = format!("SCIM_BASE_URL={base_url}\n");
    if let Some(t) = token {
        lines.push_str(&format!("SCIM_TOKEN={t}\n"));
    }
    lines.push_str(&format!("SCIM_PORTAL_URL={portal}\n"));
    let root = base_url.strip_suffix(scim_core::BASE_PATH).unwrap_or(base_url);
    lines.push_str(&format!("SCIM_TOKEN_URL={root}{}\n", scim_core::token_endpoint::TOKEN_PATH));
    if let Some(c) = client {
        lines.push_str(&format!("CLIENT_ID={}\nCLIENT_SECRET={}\n", c.client_id, c.secret));
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(lines.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("scim-local: could not write the URLs to standard output ({e}); serving anyway (--new-key makes another key)");
    }
    Ok(())
}

/// What a person reads on stderr at start.
fn describe_start(
    choice: &StoreChoice,
    base_url: &str,
    addr: std::net::SocketAddr,
    made_key: bool,
    events: Option<&std::path::Path>,
    public: Option<&local::PublicUrl>,
) {
    let store = match choice {
        StoreChoice::Embedded(d, Durability::Sync) => format!("embedded store in {}", d.display()),
        StoreChoice::Embedded(d, Durability::Async) => {
            format!("embedded store in {} (writes acknowledged before they are synced)", d.display())
        }
        StoreChoice::Memory => "in-memory store".into(),
        StoreChoice::Dynamo(c) => format!("DynamoDB table {} at {}", c.table, c.endpoint.as_deref().unwrap_or("AWS")),
    };
    if made_key {
        eprintln!("scim-local: tenant '{}' created; the SCIM_TOKEN above is shown only once", local::LOCAL_TENANT);
    } else {
        eprintln!("scim-local: reusing tenant '{}' (run with --new-key for another key)", local::LOCAL_TENANT);
    }
    eprintln!("scim-local: serving {base_url} on the {store}; Ctrl-C stops");
    if let Some(p) = public {
        eprintln!("scim-local: listening on http://{addr}{}: point the tunnel for {} at it", scim_core::BASE_PATH, p.base_url());
        if let Some(warning) = p.warning() {
            eprintln!("scim-local: {warning}");
        }
    }
    eprintln!("scim-local: the setup portal for the IT admin: open SCIM_PORTAL_URL (valid 24 hours; a new one on every start)");
    if let Some(p) = events {
        eprintln!("scim-local: change events are appended to {}", p.display());
    }
}
