//! `scim-local`: the whole SCIM API at one local base URL.

use clap::Parser;
use scim_core::edge::App;
use scim_core::store::dynamo::DynamoConfig;
use scim_functions::local::{self, StoreChoice};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The local server is throughput-bound and allocates per request (JSON documents, items):
/// mimalloc's thread-local free lists beat the system allocator there (see README, Benchmarks).
/// The Lambdas keep the system allocator: one request at a time, smaller binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serves every SCIM route at http://HOST:PORT/scim/v2 with the same code as the Lambdas.
///
/// On first start it creates the tenant "local" and an admin API key, and prints lines on
/// stdout for scripts: SCIM_BASE_URL=<url>, SCIM_TOKEN=<key> (only when it was just made; it is
/// shown once) and SCIM_PORTAL_URL=<a setup link for the local tenant, valid 24 hours, made anew
/// on every start>. Later starts reuse the store.
#[derive(Parser, Debug)]
#[command(name = "scim-local", version)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8787, env = "SCIM_LOCAL_PORT")]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Where the embedded store keeps its data.
    #[arg(long, default_value = ".scim-local", env = "SCIM_LOCAL_DATA_DIR")]
    data_dir: PathBuf,
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    scim_functions::init_tracing(false);
    let args = Args::parse();
    let choice = match (&args.dynamodb_endpoint, args.memory) {
        (Some(e), _) => StoreChoice::Dynamo(DynamoConfig::new(args.table.clone(), args.region.clone(), Some(e.clone()))),
        (None, true) => StoreChoice::Memory,
        (None, false) => StoreChoice::Embedded(args.data_dir.clone()),
    };
    let events = match (&args.events, &choice) {
        (Some(p), _) if p.as_os_str() == "-" => None,
        (Some(p), _) => Some(p.clone()),
        (None, StoreChoice::Embedded(dir)) => Some(dir.join("events.jsonl")),
        (None, _) => None,
    };
    if let (Some(_), StoreChoice::Embedded(dir)) = (&events, &choice) {
        std::fs::create_dir_all(dir)?;
    }
    let table = local::open_store(&choice, events.clone()).await.map_err(|e| format!("cannot open the store: {e}"))?;
    let app = Arc::new(App::new(table));
    let token = local::bootstrap(&app, args.new_key).await.map_err(|e| format!("cannot bootstrap the local tenant: {e}"))?;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}{}", scim_core::BASE_PATH);
    let portal = local::portal_link(&app, &base_url, 24).await.map_err(|e| format!("cannot make a setup link: {e}"))?;
    // one write; a reader that stops reading early (`| head -1`) does not stop the server
    let mut lines = format!("SCIM_BASE_URL={base_url}\n");
    if let Some(t) = &token {
        lines.push_str(&format!("SCIM_TOKEN={t}\n"));
    }
    lines.push_str(&format!("SCIM_PORTAL_URL={portal}\n"));
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(lines.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("scim-local: could not write the URLs to standard output ({e}); serving anyway (--new-key makes another key)");
    }
    drop(out);
    let store = match &choice {
        StoreChoice::Embedded(d) => format!("embedded store in {}", d.display()),
        StoreChoice::Memory => "in-memory store".into(),
        StoreChoice::Dynamo(c) => format!("DynamoDB table {} at {}", c.table, c.endpoint.as_deref().unwrap_or("AWS")),
    };
    if token.is_some() {
        eprintln!("scim-local: tenant '{}' created; the SCIM_TOKEN above is shown only once", local::LOCAL_TENANT);
    } else {
        eprintln!("scim-local: reusing tenant '{}' (run with --new-key for another key)", local::LOCAL_TENANT);
    }
    eprintln!("scim-local: serving {base_url} on the {store}; Ctrl-C stops");
    eprintln!("scim-local: the setup portal for the IT admin: open SCIM_PORTAL_URL (valid 24 hours; a new one on every start)");
    if let Some(p) = &events {
        eprintln!("scim-local: change events are appended to {}", p.display());
    }
    tokio::select! {
        r = local::serve(listener, app) => r?,
        _ = tokio::signal::ctrl_c() => {
            scim_functions::access_log::flush();
            eprintln!("scim-local: stopped");
        }
    }
    Ok(())
}
