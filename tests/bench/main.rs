//! `bench`: figures, never assertions.
//!
//!   bench http --base-url URL --token KEY [--users 2000,20000] [--ops 2000] [--op-seconds 60]
//!              [--only get,filter,patch,page] [--extension N]
//!       the peers.md workload against any SCIM server: POST users, GET by id, filter
//!       userName eq, PATCH name.givenName, deep page (startIndex at 90 %, count=100);
//!       ops/s at 8 concurrent requests and p50/p99 at 1, per collection size. `--only` keeps
//!       the named measurements (the users are always created; POST is always printed).
//!       `--extension N` declares an N-attribute extension first (the key needs scim:configure)
//!       and every user created carries a value for each attribute. `--oauth-client ID:SECRET`
//!       also obtains an access token from the server's token endpoint and measures GET by id
//!       with it, right after the same GET with the key (`scim-local --new-oauth-client`
//!       prints a client).
//!   bench compare --target NAME=BASE_URL=TOKEN --target … [--users 2000,20000] [--ops 2000]
//!                 [--rounds 3] [--op-seconds 20] [--only get,filter,patch,page]
//!       the same workload on several servers, interleaved round by round (a slow spell of the
//!       machine falls on all of them); median ops/s per server and the first server's ratio
//!       to the best of the others.
//!       `--only get,…` keeps the named measurements (POSTs always run).
//!   bench static-server [--port 8081]
//!       the ceiling for `compare`: a bare hyper server answering every request with one static
//!       ~1 KB SCIM User (no routing, no parsing, no store).
//!   bench ceiling --scim BASE_URL=TOKEN --static BASE_URL [--ops 50000] [--rounds 5]
//!       GET by id on a SCIM server against the static server, interleaved rounds, with a
//!       hand-written HTTP/1.1 load generator (an HTTP client library would be the bottleneck);
//!       tests/bench/ceiling.sh runs both servers pinned to one core and the load on the other.
//!   bench cost
//!       DynamoDB round trips per SCIM operation, on the embedded store and on moto; first what
//!       authenticating costs, with an API key and with an OAuth access token, side by side.
//!   bench extension [--attrs 20] [--users 2000] [--ops 2000] [--rounds 3]
//!       one in-process server, two tenants: one without declarations, one with a declared
//!       extension of `attrs` attributes whose users carry a value for each; the same workload
//!       on both, interleaved round by round; median ops/s and the ratio with/without.
//!   bench lambda-init --binary PATH --event FILE [--runs 5]
//!       starts a function binary against a local stand-in of the Lambda runtime API and
//!       prints init time (process start → first "next" call), first-invocation time and peak
//!       RSS; the function's environment (SCIM_TABLE, SCIM_DYNAMODB_ENDPOINT, …) is inherited.
//!   bench scale [--users 1000000] [--members 100000] [--ops 2000] [--binary target/release/scim-local]
//!       one scim-local process (durability sync) filled by Bulk requests, a group of `members`
//!       users, then restarted: RSS per user (and after the restart), the restart time, and
//!       GET / filter / PATCH / deep page / membership check ops/s at 8 in flight and p50/p99 at 1.
//!   bench sessions [--tenants 30]
//!       what tenant-scoped credentials cost: on moto, a tenant's first request (an STS
//!       AssumeRole) and later ones, with tenant sessions and with the process's credentials.
//!   bench members [--size 10000] [--batch 100]
//!       builds a group by PATCHes of `batch` members and prints the per-PATCH cost, then the
//!       cost of adding and removing one member at full size.

mod scale;
mod sessions;

use scim_core::store::Table;
use scim_tests::{Client, Server, Store};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("http") => http(&args).await,
        Some("compare") => compare(&args).await,
        Some("cost") => cost().await,
        Some("extension") => extension(&args).await,
        Some("members") => members(&args).await,
        Some("bulk") => bulk(&args).await,
        Some("lambda-init") => lambda_init(&args).await,
        Some("static-server") => static_server(&args).await,
        Some("ceiling") => ceiling(&args).await,
        Some("durability") => durability(&args).await,
        Some("scale") => scale::scale(&args).await,
        Some("sessions") => sessions::sessions(&args).await,
        _ => eprintln!(
            "usage: bench http --base-url URL --token KEY [--users 2000,20000] [--ops 2000] [--op-seconds 60] [--only get,filter,patch,page] | bench compare --target NAME=URL=TOKEN --target … [--rounds 3] | bench cost | bench members [--size N] [--batch N] | bench bulk [--users N] [--batch N] [--max N] [--dynamodb] | bench durability [--ops N] [--rounds N]"
        ),
    }
}

/// Runs `n` calls of `f` with `conc` in flight; returns (ops/s, p50 ms, p99 ms, errors).
/// Runs `n` operations with `conc` in flight; with a `cap`, stops starting new ones after that
/// long (slow peers), and reports the rate over the ones done.
async fn measure<F, Fut>(n: usize, conc: usize, cap: Option<Duration>, f: F) -> (f64, f64, f64, usize)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n || cap.is_some_and(|c| started.elapsed() > c) {
                    return (lat, errors);
                }
                let t = Instant::now();
                if !f(i).await {
                    errors += 1;
                }
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let pct =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0);
    (all.len() as f64 / secs, pct(0.5), pct(0.99), errors)
}

fn user_body(prefix: &str, i: usize) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{prefix}{i:06}@example.com"),
           "name": {"givenName": "Bench", "familyName": format!("User{i}")}, "emails": [{"value": format!("{prefix}{i:06}@example.com"), "type": "work", "primary": true}], "active": true})
}

/// `--users`, `--ops` and `--op-seconds` (with its default), as both workload commands take them.
fn workload_args(args: &[String], op_seconds: f64) -> (Vec<usize>, usize, Option<Duration>) {
    let sizes = arg(args, "--users").unwrap_or("2000,20000".into()).split(',').filter_map(|s| s.parse().ok()).collect();
    let ops = arg(args, "--ops").and_then(|s| s.parse().ok()).unwrap_or(2000);
    let cap = Duration::from_secs_f64(arg(args, "--op-seconds").and_then(|s| s.parse().ok()).unwrap_or(op_seconds));
    (sizes, ops, Some(cap))
}

/// POSTs `n` users (numbered from `from`) with 8 in flight, keeping their ids; the measurement.
async fn create_users(
    c: &Client,
    run: &str,
    ids: &Arc<tokio::sync::RwLock<Vec<String>>>,
    from: usize,
    n: usize,
    extension: Option<usize>,
) -> (f64, f64, f64, usize) {
    let (c, run, ids) = (c.clone(), run.to_string(), ids.clone());
    measure(n, 8, None, move |i| {
        let (c, run, ids) = (c.clone(), run.clone(), ids.clone());
        async move {
            let body = match extension {
                Some(n_attrs) => with_extension(user_body(&run, from + i), n_attrs, from + i),
                None => user_body(&run, from + i),
            };
            let r = c.post("/Users", &body).await;
            if let Some(id) = r.body["id"].as_str() {
                ids.write().await.push(id.to_string());
            }
            r.status == 201
        }
    })
    .await
}

async fn http(args: &[String]) {
    let (Some(base), Some(token)) = (arg(args, "--base-url"), arg(args, "--token")) else {
        eprintln!("bench http needs --base-url and --token");
        return;
    };
    let (sizes, ops, cap) = workload_args(args, 60.0);
    let only: Option<Vec<String>> = arg(args, "--only").map(|s| s.split(',').map(|o| o.trim().to_ascii_lowercase()).collect());
    let wanted = |key: &str| only.as_ref().is_none_or(|o| o.iter().any(|k| k == key));
    let c = Client::new(&base, &token);
    let extension: Option<usize> = arg(args, "--extension").and_then(|s| s.parse().ok());
    if let Some(n) = extension {
        let d = c.put(&format!("/Settings/Schemas/{EXT}"), &extension_declaration(n)).await;
        if !matches!(d.status, 200 | 201) {
            eprintln!("bench: declaring the extension failed: {}", d.raw);
            return;
        }
    }
    let oauth = match arg(args, "--oauth-client") {
        Some(pair) => match access_token(&base, &pair).await {
            Ok(t) => Some(Client::new(&base, &t)),
            Err(e) => {
                eprintln!("bench: no access token: {e}");
                return;
            }
        },
        None => None,
    };
    let run = format!("b{}-", std::process::id());
    let mut created = 0usize;
    let ids = Arc::new(tokio::sync::RwLock::new(Vec::<String>::new()));
    println!("{:<34} {:>8} {:>10} {:>9} {:>9} {:>7}", "operation", "users", "ops/s @8", "p50 ms", "p99 ms", "errors");
    let mut deep: Vec<(usize, f64)> = Vec::new();
    for size in sizes {
        let want = size - created.min(size);
        eprintln!("bench: creating {want} users (to {size})");
        let (rate, p50, p99, err) = create_users(&c, &run, &ids, created, want, extension).await;
        created = size;
        println!("{:<34} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>7}", "POST /Users (8 concurrent)", size, rate, p50, p99, err);
        let snapshot: Arc<Vec<String>> = Arc::new(ids.read().await.clone());
        let cases = workload(ops, snapshot.len());
        for (key, name, op, count) in cases {
            if !wanted(key) {
                continue;
            }
            let op = Arc::new(op);
            let mk = |op: Arc<Op>, c: &Client| {
                let (c, ids, run) = (c.clone(), snapshot.clone(), run.clone());
                move |i: usize| op(c.clone(), ids.clone(), run.clone(), i)
            };
            let (rate, _, _, err8) = measure(count, 8, cap, mk(op.clone(), &c)).await;
            let (_, p50, p99, err1) = measure((count / 4).max(20), 1, cap, mk(op.clone(), &c)).await;
            println!("{:<34} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>7}", name, size, rate, p50, p99, err8 + err1);
            if let Some(tc) = oauth.as_ref().filter(|_| key == "get") {
                let (t_rate, _, _, e8) = measure(count, 8, cap, mk(op.clone(), tc)).await;
                let (_, t50, t99, e1) = measure((count / 4).max(20), 1, cap, mk(op.clone(), tc)).await;
                println!("{:<34} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>7}", "GET /Users/{id} (access token)", size, t_rate, t50, t99, e8 + e1);
                println!("access token / API key, GET ops/s: {:.2}", t_rate / rate.max(1e-9));
            }
            if name.starts_with("page") {
                deep.push((size, p50));
            }
        }
    }
    if let [(a, pa), .., (b, pb)] = deep.as_slice() {
        println!("deep page p50 {a}→{b} users: ×{:.2}", pb / pa.max(1e-9));
    }
}

/// An access token from the token endpoint beside a base URL, for `ID:SECRET`.
async fn access_token(base: &str, pair: &str) -> Result<String, String> {
    use base64::Engine;
    let (id, secret) = pair.split_once(':').ok_or("--oauth-client is ID:SECRET")?;
    let root = base.strip_suffix("/scim/v2").unwrap_or(base);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")));
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("authorization", basic.as_str())];
    let r = Client::new(root, "").send("POST", "/oauth2/token", Some("grant_type=client_credentials"), &headers).await;
    r.body["access_token"].as_str().map(str::to_string).ok_or_else(|| format!("{} {}", r.status, r.raw))
}

/// One measured operation of the workload: a request built from (client, user ids, run prefix,
/// sequence number), answering whether the server got it right.
type Op = Box<dyn Fn(Client, Arc<Vec<String>>, String, usize) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// The read and update operations of the peers' workload, at `n` users: (key for `--only`, name,
/// operation, how many to run at 8 in flight).
fn workload(ops: usize, n: usize) -> Vec<(&'static str, &'static str, Op, usize)> {
    vec![
        (
            "get",
            "GET /Users/{id}",
            Box::new(|c, ids, _, i| Box::pin(async move { c.get(&format!("/Users/{}", ids[i % ids.len()])).await.status == 200 })),
            ops,
        ),
        (
            "filter",
            "filter userName eq",
            Box::new(|c, ids, run, i| {
                Box::pin(async move {
                    let k = (i * 7919) % ids.len();
                    let r = c.filter("/Users", &format!("userName eq \"{run}{k:06}@example.com\""), "").await;
                    r.status == 200 && r.body["totalResults"] == 1
                })
            }),
            ops,
        ),
        (
            "patch",
            "PATCH name.givenName",
            Box::new(|c, ids, _, i| {
                Box::pin(async move {
                    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "name.givenName", "value": format!("G{i}")}]});
                    matches!(c.patch(&format!("/Users/{}", ids[i % ids.len()]), &body).await.status, 200 | 204)
                })
            }),
            ops,
        ),
        (
            "page",
            "page startIndex=90%, count=100",
            Box::new(move |c, _, _, _| {
                Box::pin(async move {
                    let r = c.get(&format!("/Users?startIndex={}&count=100", n * 9 / 10)).await;
                    r.status == 200 && r.body["Resources"].as_array().is_some_and(|a| a.len() == 100)
                })
            }),
            (ops / 10).max(50),
        ),
    ]
}

/// One server of `bench compare`.
struct Target {
    name: String,
    client: Client,
    ids: Arc<tokio::sync::RwLock<Vec<String>>>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// `bench compare`: the `http` workload on several servers at once, interleaved. Each
/// measurement is split into rounds and the servers take turns round by round, so a slow spell
/// of a shared machine falls on all of them alike; the figure per server is its median round.
/// The `--target NAME=BASE_URL=TOKEN` arguments; `None` (after saying why) when malformed.
fn compare_targets(args: &[String]) -> Option<Vec<Target>> {
    let mut targets = Vec::new();
    for spec in args.iter().zip(args.iter().skip(1)).filter(|(a, _)| *a == "--target").map(|(_, s)| s) {
        let mut parts = spec.splitn(3, '=');
        let (Some(name), Some(url), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
            eprintln!("--target takes NAME=BASE_URL=TOKEN, got '{spec}'");
            return None;
        };
        targets.push(Target { name: name.into(), client: Client::new(url, token), ids: Default::default() });
    }
    if targets.len() < 2 {
        eprintln!("bench compare needs two or more --target NAME=BASE_URL=TOKEN (the first is compared with the best of the others)");
        return None;
    }
    Some(targets)
}

/// One row of `bench compare`: the median rate of each target and the first one's ratio to the
/// best of the others.
fn compare_row(name: &str, size: usize, rates: &[f64], lat: Option<(f64, f64)>) {
    print!("{name:<32} {size:>6}");
    for r in rates {
        if *r < 10.0 {
            print!(" {:>13.1}", r);
        } else {
            print!(" {:>13.0}", r);
        }
    }
    let best_other = rates.iter().skip(1).copied().fold(0.0, f64::max);
    let ratio = rates.first().copied().unwrap_or(0.0) / best_other.max(1e-9);
    println!(" {:>8.1}× {:>15}", ratio, lat.map(|(a, b)| format!("{a:.2} / {b:.2}")).unwrap_or_default());
}

/// Grows every target's collection from `created` to `size` users, round by round; the POST rates.
async fn compare_create(targets: &[Target], run: &str, created: usize, size: usize, rounds: usize) -> Vec<f64> {
    let want = size - created.min(size);
    eprintln!("bench: creating {want} users on each server (to {size}), in {rounds} rounds");
    let mut post: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    let chunk = want.div_ceil(rounds);
    let mut done = 0;
    while done < want {
        let n = chunk.min(want - done);
        for (k, t) in targets.iter().enumerate() {
            let (rate, _, _, err) = create_users(&t.client, run, &t.ids, created + done, n, None).await;
            if err > 0 {
                eprintln!("bench: {} answered {err} of {n} POSTs wrongly", t.name);
            }
            post[k].push(rate);
        }
        done += n;
    }
    post.into_iter().map(median).collect()
}

async fn compare(args: &[String]) {
    let Some(targets) = compare_targets(args) else { return };
    let (sizes, ops, cap) = workload_args(args, 20.0);
    let only: Option<Vec<String>> = arg(args, "--only").map(|s| s.split(',').map(|o| o.trim().to_ascii_lowercase()).collect());
    let rounds: usize = arg(args, "--rounds").and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let run = format!("c{}-", std::process::id());
    print!("{:<32} {:>6}", "operation (median of rounds)", "users");
    for t in &targets {
        print!(" {:>13}", t.name);
    }
    println!(" {:>9} {:>15}", "× others", format!("{} p50/p99", targets[0].name));
    let mut created = 0usize;
    for size in sizes {
        let post = compare_create(&targets, &run, created, size, rounds).await;
        created = size;
        compare_row("POST /Users (8 concurrent)", size, &post, None);
        let mut snapshots = Vec::new();
        for t in &targets {
            snapshots.push(Arc::new(t.ids.read().await.clone()));
        }
        for (key, name, op, count) in workload(ops, size) {
            if only.as_ref().is_some_and(|o| !o.iter().any(|k| k == key)) {
                continue;
            }
            let op = Arc::new(op);
            let mk = |k: usize| {
                let (c, ids, run, op) = (targets[k].client.clone(), snapshots[k].clone(), run.clone(), op.clone());
                move |i: usize| op(c.clone(), ids.clone(), run.clone(), i)
            };
            let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
            for _ in 0..rounds {
                for (k, t) in targets.iter().enumerate() {
                    let (rate, _, _, err) = measure(count, 8, cap, mk(k)).await;
                    if err > 0 {
                        eprintln!("bench: {} answered {err} {name} requests wrongly", t.name);
                    }
                    rates[k].push(rate);
                }
            }
            let (_, p50, p99, _) = measure((count / 4).max(20), 1, cap, mk(0)).await;
            compare_row(name, size, &rates.into_iter().map(median).collect::<Vec<_>>(), Some((p50, p99)));
        }
    }
}

/// `GET path` `n` times over one kept-alive connection to `addr`, written and read by hand (no
/// HTTP client library: the load generator must cost far less than the servers it measures).
/// The number of 200 answers.
async fn raw_gets(addr: std::net::SocketAddr, request: Arc<Vec<u8>>, n: usize) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else { return 0 };
    let _ = conn.set_nodelay(true);
    let (mut buf, mut ok) = (Vec::with_capacity(8192), 0);
    for _ in 0..n {
        if conn.write_all(&request).await.is_err() {
            return ok;
        }
        buf.clear();
        // read the head, then as many body bytes as content-length says
        let (head_end, length) = loop {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return ok,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse::<usize>().ok());
                break (end + 4, length.unwrap_or(0));
            }
        };
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return ok,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        ok += usize::from(buf.starts_with(b"HTTP/1.1 200"));
    }
    ok
}

/// Requests per second of `conns` connections sharing `n` GETs; and how many were not 200.
async fn raw_rate(addr: std::net::SocketAddr, request: Arc<Vec<u8>>, conns: usize, n: usize) -> (f64, usize) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..conns).map(|_| tokio::spawn(raw_gets(addr, request.clone(), n / conns))).collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    (ok as f64 / started.elapsed().as_secs_f64(), (n / conns) * conns - ok)
}

/// `bench ceiling --scim BASE_URL=TOKEN --static BASE_URL [--ops 50000] [--rounds 5]`: GET by id on
/// scim-local against the static server, round by round, with a hand-written HTTP/1.1 load
/// generator (8 kept-alive connections); the median rate of each and their ratio.
async fn ceiling(args: &[String]) {
    let (Some(scim), Some(stat)) = (arg(args, "--scim"), arg(args, "--static")) else {
        eprintln!("bench ceiling needs --scim BASE_URL=TOKEN and --static BASE_URL");
        return;
    };
    let Some((base, token)) = scim.split_once('=') else {
        eprintln!("--scim takes BASE_URL=TOKEN");
        return;
    };
    let ops: usize = arg(args, "--ops").and_then(|s| s.parse().ok()).unwrap_or(50_000);
    let rounds: usize = arg(args, "--rounds").and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let client = Client::new(base, token);
    let created = client.post("/Users", &user_body("ceiling", 0)).await;
    let Some(id) = created.body["id"].as_str() else {
        eprintln!("bench ceiling: creating the user failed: {}", created.raw);
        return;
    };
    let target = |url: &str, path: String| {
        let rest = url.trim_start_matches("http://");
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let addr: std::net::SocketAddr = host.parse().expect("--scim and --static are http://IP:PORT/… URLs");
        let request = format!(
            "GET /{prefix}{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nAccept: application/scim+json\r\n\r\n"
        );
        (addr, Arc::new(request.into_bytes()))
    };
    let (scim_addr, scim_req) = target(base, format!("/Users/{id}"));
    let (static_addr, static_req) = target(&stat, format!("/Users/{id}"));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (r, bad) = raw_rate(scim_addr, scim_req.clone(), 8, ops).await;
        a.push(r);
        let (s, bad_static) = raw_rate(static_addr, static_req.clone(), 8, ops).await;
        b.push(s);
        if bad + bad_static > 0 {
            eprintln!("bench ceiling: {bad} scim-local and {bad_static} static answers were not 200");
        }
    }
    // each round's ratio is taken between two runs a second apart, so a machine whose speed
    // drifts over the run (shared cores) moves both sides of it alike
    let ratios: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x / y.max(1e-9)).collect();
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    let (a, b, r) = (median(a), median(b), median(ratios));
    println!("GET /Users/{{id}}, 8 connections, median of {rounds} rounds of {ops}:");
    println!(
        "  scim-local {a:>9.0} /s\n  static     {b:>9.0} /s\n  ratio      {r:>9.2}  (median of the rounds' ratios: {})",
        shown.join(" ")
    );
}

/// The ceiling `bench compare` measures the request path against: a bare hyper server answering
/// every request with one static ~1 KB SCIM User (201 to a POST, 200 otherwise), no routing, no
/// parsing, no store.
async fn static_server(args: &[String]) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let port: u16 = arg(args, "--port").and_then(|p| p.parse().ok()).unwrap_or(8081);
    let body = Bytes::from(static_user().to_string());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the static server's port");
    println!("static server on http://127.0.0.1:{port}/scim/v2 ({} byte body)", body.len());
    while let Ok((stream, _)) = listener.accept().await {
        let body = body.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let status = if req.method() == hyper::Method::POST { 201 } else { 200 };
                let r =
                    hyper::Response::builder().status(status).header("content-type", "application/scim+json").body(Full::new(body.clone()));
                async move { r }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
        });
    }
}

/// A SCIM User of about 1 KB, the size `GET /Users/{id}` answers with in the peers' workload.
fn static_user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": "0190f3a2-7c1e-7b4a-9d2e-5f6a7b8c9d0e",
        "externalId": "00u1a2b3c4d5e6f7g8h9",
        "userName": "static.user@example.com",
        "name": {"formatted": "Static User", "familyName": "User", "givenName": "Static"},
        "displayName": "Static User",
        "active": true,
        "emails": [{"value": "static.user@example.com", "type": "work", "primary": true}],
        "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
        "title": "Engineer",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "Europe/Paris",
        "groups": [],
        "meta": {
            "resourceType": "User",
            "created": "2026-11-29T10:00:00.000Z",
            "lastModified": "2026-11-29T10:00:00.000Z",
            "version": "W/\"1\"",
            "location": "http://127.0.0.1:8081/scim/v2/Users/0190f3a2-7c1e-7b4a-9d2e-5f6a7b8c9d0e"
        },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "100042", "costCenter": "CC-1000", "organization": "Example", "division": "R&D",
            "department": "Identity", "manager": {"value": "0190f3a2-0000-7000-8000-000000000001", "displayName": "Manager"}
        }
    })
}

/// The ids `bench cost` works on: a user, one carrying a 20-attribute extension, a group with
/// that user, and a user in no group.
struct CostFixture {
    id: String,
    carrier: String,
    gid: String,
    other: String,
    widget: String,
}

/// A declared resource type shaped like a User's cost: a unique `serial` (as `userName`) and 20
/// more attributes.
fn widget_type() -> Value {
    let mut attrs = vec![json!({"name": "serial", "type": "string", "required": true, "uniqueness": "server"})];
    attrs.extend((0..20).map(|i| json!({"name": format!("attr{i:02}"), "type": "string"})));
    json!({"name": "Widget", "endpoint": "/Widgets", "schema": "urn:bench:Widget",
        "schemaDefinitions": [{"id": "urn:bench:Widget", "attributes": attrs}]})
}

fn widget_body(i: usize) -> Value {
    let mut w = json!({"serial": format!("w{i:06}")});
    for a in 0..20 {
        w[format!("attr{a:02}")] = json!(format!("value {a}"));
    }
    w
}

/// 300 users, three holding one externalId, a declared extension and a user carrying it, a group.
async fn cost_fixture(c: &Client) -> CostFixture {
    for i in 0..300 {
        c.post("/Users", &user_body("c", i)).await;
    }
    // three users holding one externalId (not unique, RFC 7643 §3.1)
    for i in 0..3 {
        let mut u = user_body("shared", i);
        u["externalId"] = json!("shared-ext");
        c.post("/Users", &u).await;
    }
    // a declared 20-attribute extension (one attribute unique), and a user carrying it
    c.put(&format!("/Settings/Schemas/{EXT}"), &extension_declaration(20)).await;
    let id_of = |v: &Value| v["id"].as_str().unwrap_or_default().to_string();
    let carrier = id_of(&c.post("/Users", &with_extension(user_body("carrier", 0), 20, 7)).await.body);
    let id = id_of(&c.get("/Users?count=1").await.body["Resources"][0]);
    let gid = id_of(&c.post("/Groups", &json!({"displayName": "cost", "members": [{"value": id}]})).await.body);
    let other = id_of(&c.post("/Users", &user_body("extra", 0)).await.body);
    // a declared resource type holding 300 resources
    c.put("/Settings/ResourceTypes/Widget", &widget_type()).await;
    for i in 0..300 {
        c.post("/Widgets", &widget_body(i)).await;
    }
    let widget = id_of(&c.get("/Widgets?count=1").await.body["Resources"][0]);
    // the process's first cursor loads (or makes) the cursor sealing key once: not per request
    c.get("/Users?count=1&cursor=").await;
    CostFixture { id, carrier, gid, other, widget }
}

/// What authenticating a request costs (a warm process: one batched read of the key, its tenant
/// and its last-use stamp), measured on a request that reads nothing else and taken off every row
/// of `bench cost`: in AWS the authorizer does it, cached. (gets, batch gets), RCU, moto's RCU.
async fn auth_cost(srv: &Server) -> ((u64, u64), f64, f64) {
    let before = srv.metered.counts();
    let reported = srv.metered.consumed_capacity();
    srv.client.get("/ServiceProviderConfig").await;
    let after = srv.metered.counts();
    let reported_after = srv.metered.consumed_capacity();
    (
        (after.get - before.get, after.get_many - before.get_many),
        after.rcu - before.rcu,
        reported.zip(reported_after).map(|(a, b)| b.0 - a.0).unwrap_or(0.0),
    )
}

/// The operations `bench cost` measures: (row name, method, path, body).
fn cost_steps(f: &CostFixture) -> Vec<(&'static str, &'static str, String, Option<Value>)> {
    let CostFixture { id, carrier, gid, other, widget } = f;
    let patch = |v: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": v});
    vec![
        ("POST /Users", "POST", "/Users".into(), Some(user_body("c2", 1))),
        ("GET /Users/{id}", "GET", format!("/Users/{id}"), None),
        ("GET /Users/{id}?excludedAttributes=groups", "GET", format!("/Users/{id}?excludedAttributes=groups"), None),
        ("filter userName eq", "GET", format!("/Users?filter={}", scim_tests::encode("userName eq \"c000042@example.com\"")), None),
        ("filter externalId eq (no match)", "GET", format!("/Users?filter={}", scim_tests::encode("externalId eq \"nope\"")), None),
        ("filter externalId eq (3 holders)", "GET", format!("/Users?filter={}", scim_tests::encode("externalId eq \"shared-ext\"")), None),
        ("POST /Users with a 20-attribute extension", "POST", "/Users".into(), Some(with_extension(user_body("carrier", 1), 20, 8))),
        ("GET /Users/{id} with a 20-attribute extension", "GET", format!("/Users/{carrier}?excludedAttributes=groups"), None),
        (
            "PATCH one extension attribute",
            "PATCH",
            format!("/Users/{carrier}"),
            Some(patch(json!([{"op": "replace", "path": format!("{EXT}:attr03"), "value": "changed"}]))),
        ),
        (
            "filter unique extension attribute eq",
            "GET",
            format!("/Users?filter={}", scim_tests::encode(&format!("{EXT}:badge eq 7"))),
            None,
        ),
        (
            "PATCH name.givenName",
            "PATCH",
            format!("/Users/{id}"),
            Some(patch(json!([{"op": "replace", "path": "name.givenName", "value": "Z"}]))),
        ),
        ("page startIndex=1 count=100", "GET", "/Users?startIndex=1&count=100".into(), None),
        ("page startIndex=101 count=100 (next page)", "GET", "/Users?startIndex=101&count=100".into(), None),
        ("page startIndex=201 count=100 (next page)", "GET", "/Users?startIndex=201&count=100".into(), None),
        ("cursor page count=100", "GET", "/Users?count=100&cursor=".into(), None),
        (
            "group add 1 member",
            "PATCH",
            format!("/Groups/{gid}"),
            Some(patch(json!([{"op": "add", "path": "members", "value": [{"value": other}]}]))),
        ),
        (
            "group membership check",
            "GET",
            format!(
                "/Groups?excludedAttributes=members&filter={}",
                scim_tests::encode(&format!("id eq \"{gid}\" and members[value eq \"{other}\"]"))
            ),
            None,
        ),
        (
            "deactivate user in 1 group",
            "PATCH",
            format!("/Users/{other}"),
            Some(patch(json!([{"op": "replace", "value": {"active": false}}]))),
        ),
        ("DELETE /Users/{id}", "DELETE", format!("/Users/{other}"), None),
        ("POST /Widgets (a declared type)", "POST", "/Widgets".into(), Some(widget_body(1000))),
        ("GET /Widgets/{id}", "GET", format!("/Widgets/{widget}"), None),
        (
            "filter unique serial eq (declared type)",
            "GET",
            format!("/Widgets?filter={}", scim_tests::encode("serial eq \"w000042\"")),
            None,
        ),
        (
            "PATCH one declared-type attribute",
            "PATCH",
            format!("/Widgets/{widget}"),
            Some(patch(json!([{"op": "replace", "path": "attr03", "value": "changed"}]))),
        ),
        ("page /Widgets startIndex=1 count=100", "GET", "/Widgets?startIndex=1&count=100".into(), None),
        ("DELETE /Widgets/{id}", "DELETE", format!("/Widgets/{widget}"), None),
        ("GET /Users/{id} of no user (404: an activity entry)", "GET", "/Users/no-such-user".into(), None),
    ]
}

/// What authenticating one request costs with an API key and with an access token, in a warm
/// process (the key's tenant and the token's signing key learnt): round trips and RCU.
async fn auth_costs() {
    println!("authentication per request, warm process: round trips and modelled RCU (in AWS the authorizer does it, cached)");
    println!("{:<28} {:>9} {:>5} {:>9} {:>6}", "credential", "store", "get", "get_many", "RCU");
    for store in [Store::Embedded, Store::Dynamo] {
        let srv = Server::start(store).await;
        let layout = srv.app.service.layout();
        let client = scim_core::oauth::create_client(layout, "local", "reader", None).await.expect("an OAuth client");
        let token = access_token(&srv.base, &format!("{}:{}", client.client_id, client.secret)).await.expect("a token");
        let by_token = Client::new(&srv.base, &token);
        for (name, c) in [("API key", &srv.client), ("OAuth access token", &by_token)] {
            c.get("/ServiceProviderConfig").await; // warm
            let before = srv.metered.counts();
            c.get("/ServiceProviderConfig").await;
            let after = srv.metered.counts();
            let store = if store == Store::Embedded { "embedded" } else { "dynamodb" };
            println!(
                "{name:<28} {store:>9} {:>5} {:>9} {:>6.1}",
                after.get - before.get,
                after.get_many - before.get_many,
                after.rcu - before.rcu
            );
        }
    }
    println!();
}

async fn cost() {
    auth_costs().await;
    println!("round trips per SCIM operation (authentication excluded), capacity units modelled from the");
    println!("items moved (DynamoDB's rules, see store::metered), and what moto reported with ReturnConsumedCapacity");
    println!(
        "{:<44} {:>9} {:>5} {:>9} {:>6} {:>6} {:>6} {:>6} {:>7} {:>13}",
        "operation", "store", "get", "get_many", "query", "write", "RCU", "WCU", "resp B", "moto r/w CU"
    );
    for store in [Store::Embedded, Store::Dynamo] {
        let srv = Server::start(store).await;
        let c = &srv.client;
        let fixture = cost_fixture(c).await;
        let (auth, auth_rcu, auth_reported) = auth_cost(&srv).await;
        for (name, method, path, body) in cost_steps(&fixture) {
            let before = srv.metered.counts();
            let reported_before = srv.metered.consumed_capacity();
            let r = c.send(method, &path, body.as_ref().map(|b| b.to_string()).as_deref(), &[]).await;
            let after = srv.metered.counts();
            let reported = match (reported_before, srv.metered.consumed_capacity()) {
                (Some(a), Some(b)) => format!("{:.1} / {:.1}", b.0 - a.0 - auth_reported, b.1 - a.1),
                _ => "-".into(),
            };
            let d = |a: u64, b: u64| a - b;
            let get = d(after.get, before.get).saturating_sub(auth.0);
            let get_many = d(after.get_many, before.get_many).saturating_sub(auth.1);
            println!(
                "{:<44} {:>9} {:>5} {:>9} {:>6} {:>6} {:>6.1} {:>6.1} {:>7} {:>13}{}",
                name,
                if store == Store::Embedded { "embedded" } else { "dynamodb" },
                get,
                get_many,
                d(after.query, before.query),
                d(after.write, before.write),
                after.rcu - before.rcu - auth_rcu,
                after.wcu - before.wcu,
                // the response body as sent (compact JSON): what data transfer out is billed on
                if r.body.is_null() { 0 } else { r.body.to_string().len() },
                reported,
                if r.status >= 400 { format!("  (status {})", r.status) } else { String::new() }
            );
        }
    }
}

/// The same users created one POST at a time and in Bulk requests of `--batch` operations,
/// side by side on one server: users per second each way, store round trips per user, and the
/// time of one Bulk request of `--max` creates (default `maxOperations`).
async fn bulk(args: &[String]) {
    let users: usize = arg(args, "--users").and_then(|s| s.parse().ok()).unwrap_or(2000);
    let batch: usize = arg(args, "--batch").and_then(|s| s.parse().ok()).unwrap_or(100).clamp(1, 1000);
    let max: usize = arg(args, "--max").and_then(|s| s.parse().ok()).unwrap_or(1000).clamp(1, 1000);
    let store = if args.iter().any(|a| a == "--dynamodb") { Store::Dynamo } else { Store::Embedded };
    let srv = Server::start(store).await;
    let c = &srv.client;
    let bulk_of = |prefix: &str, from: usize, n: usize| {
        let ops: Vec<Value> = (from..from + n)
            .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": user_body(prefix, i)}))
            .collect();
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
    };
    eprintln!("bench: {users} users one POST at a time and in Bulk requests of {batch}, alternating rounds, on the {store:?} store");
    // alternating rounds, so both ways meet the same table size (a store may slow as it grows)
    let (mut single, mut bulked) = ((Duration::ZERO, 0u64, 0usize), (Duration::ZERO, 0u64, 0usize));
    for (round, from) in (0..users).step_by(batch).enumerate() {
        let n = batch.min(users - from);
        // which way goes first alternates too (moto's transactions slow as its table grows)
        for bulk_turn in [round % 2 == 1, round % 2 == 0] {
            let (before, t) = (srv.metered.counts().total(), Instant::now());
            let tally = if bulk_turn {
                let r = c.post("/Bulk", &bulk_of("bulk", from, n)).await;
                bulked.2 += r.body["Operations"].as_array().map_or(n, |o| o.iter().filter(|o| o["status"] != "201").count());
                &mut bulked
            } else {
                for i in from..from + n {
                    single.2 += usize::from(c.post("/Users", &user_body("single", i)).await.status != 201);
                }
                &mut single
            };
            tally.0 += t.elapsed();
            tally.1 += srv.metered.counts().total() - before;
        }
    }
    println!("{:<30} {:>8} {:>10} {:>14} {:>8}", "how", "users", "users/s", "round trips/u", "errors");
    let rate = |d: Duration| users as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "{:<30} {:>8} {:>10.0} {:>14.2} {:>8}",
        "POST /Users, one at a time",
        users,
        rate(single.0),
        single.1 as f64 / users as f64,
        single.2
    );
    println!(
        "{:<30} {:>8} {:>10.0} {:>14.2} {:>8}",
        format!("POST /Bulk of {batch}"),
        users,
        rate(bulked.0),
        bulked.1 as f64 / users as f64,
        bulked.2
    );
    let t = Instant::now();
    let r = c.post("/Bulk", &bulk_of("max", 0, max)).await;
    let ok = r.body["Operations"].as_array().map_or(0, |o| o.iter().filter(|o| o["status"] == "201").count());
    println!("one Bulk request of {max} creates: {:.0} ms, {ok} created", t.elapsed().as_secs_f64() * 1e3);
    println!("bulk / single, users/s: {:.2}", rate(bulked.0) / rate(single.0));
}

async fn members(args: &[String]) {
    let size: usize = arg(args, "--size").and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let batch: usize = arg(args, "--batch").and_then(|s| s.parse().ok()).unwrap_or(100);
    let store = if args.iter().any(|a| a == "--dynamodb") { Store::Dynamo } else { Store::Embedded };
    let srv = Server::start(store).await;
    let c = &srv.client;
    eprintln!("bench: creating {size} users on the {store:?} store");
    let mut ids = Vec::with_capacity(size + 1);
    for i in 0..=size {
        let r = c.post("/Users", &user_body("m", i)).await;
        ids.push(r.body["id"].as_str().unwrap_or_default().to_string());
    }
    let gid = c.post("/Groups", &json!({"displayName": "big"})).await.body["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/Groups/{gid}");
    let patch = |v: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": v});
    println!("{:>8} {:>10} {:>10} {:>8} {:>8}", "members", "round trips", "writes", "ms", "status");
    for (k, chunk) in ids[..size].chunks(batch).enumerate() {
        let vals: Vec<Value> = chunk.iter().map(|i| json!({"value": i})).collect();
        let before = srv.metered.counts();
        let t = Instant::now();
        let r = c.patch(&path, &patch(json!([{"op": "add", "path": "members", "value": vals}]))).await;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let after = srv.metered.counts();
        let done = (k + 1) * batch;
        if k == 0 || done.is_multiple_of((size / 10).max(batch)) {
            println!(
                "{:>8} {:>10} {:>10} {:>8.2} {:>8}",
                done.min(size),
                after.total() - before.total(),
                after.write - before.write,
                ms,
                r.status
            );
        }
    }
    for (what, body) in [
        ("add one member at full size", patch(json!([{"op": "add", "path": "members", "value": [{"value": ids[size]}]}]))),
        ("remove one member at full size", patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[size])}]))),
    ] {
        let before = srv.metered.counts();
        let t = Instant::now();
        let r = c.patch(&path, &body).await;
        let after = srv.metered.counts();
        println!(
            "{what}: {} round trips (get {}, get_many {}, query {}, write {}), {:.2} ms, status {}",
            after.total() - before.total(),
            after.get - before.get,
            after.get_many - before.get_many,
            after.query - before.query,
            after.write - before.write,
            t.elapsed().as_secs_f64() * 1e3,
            r.status
        );
    }
}

/// A stand-in for the Lambda runtime API: hands out one event, records when the function first
/// asked for work and when it answered.
/// What the runtime API stand-in saw: ("next" | "next-again" | "response", when, body).
type RuntimeEvent = (&'static str, Instant, String);

/// One answer of the runtime API stand-in: the first `next` gets `event`, a second one is parked
/// (as between invocations), a response is reported with its body.
async fn runtime_api_answer(
    req: hyper::Request<hyper::body::Incoming>,
    tx: tokio::sync::mpsc::UnboundedSender<RuntimeEvent>,
    event: String,
    served: Arc<std::sync::atomic::AtomicBool>,
) -> Result<hyper::Response<http_body_util::Full<hyper::body::Bytes>>, std::convert::Infallible> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let now = Instant::now();
    if !req.uri().path().ends_with("/invocation/next") {
        let body = req.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).to_string()).unwrap_or_default();
        let _ = tx.send(("response", now, body));
        return Ok(hyper::Response::builder().status(202).body(Full::new(Bytes::new())).unwrap_or_default());
    }
    if served.swap(true, std::sync::atomic::Ordering::SeqCst) {
        // park the second "next" like the real API does between invocations
        let _ = tx.send(("next-again", now, String::new()));
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let _ = tx.send(("next", now, String::new()));
    let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() + 10_000).unwrap_or(0);
    Ok(hyper::Response::builder()
        .header("lambda-runtime-aws-request-id", "bench-1")
        .header("lambda-runtime-deadline-ms", deadline.to_string())
        .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
        .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
        .body(Full::new(Bytes::from(event)))
        .unwrap_or_default())
}

/// A local stand-in of the Lambda runtime API on `listener`, serving `event` once.
fn runtime_api_stand_in(
    listener: tokio::net::TcpListener,
    event: String,
    tx: tokio::sync::mpsc::UnboundedSender<RuntimeEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
        while let Ok((stream, _)) = listener.accept().await {
            let (tx, ev, served) = (tx.clone(), event.clone(), served.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| runtime_api_answer(req, tx.clone(), ev.clone(), served.clone()));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
            });
        }
    })
}

/// The function binary started as Lambda would, against the runtime API at `addr`.
fn start_function(binary: &str, addr: std::net::SocketAddr) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
}

/// Peak resident memory of a process, MiB (0 when unknown).
fn peak_rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmHWM")
}

/// A memory figure of a process's `/proc/<pid>/status` (`VmHWM`, `VmRSS`), MiB (0 when unknown).
fn status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok());
    kib.map(|k| k / 1024.0).unwrap_or(0.0)
}

/// The status a function answered: the proxy response's statusCode, or "policy" for an authorizer.
fn answered(body: &str) -> String {
    let v = serde_json::from_str::<Value>(body).unwrap_or_default();
    v["statusCode"]
        .as_u64()
        .map(|s| s.to_string())
        .or_else(|| v["context"]["tenant_id"].as_str().map(|_| "policy".to_string()))
        .unwrap_or_else(|| "?".into())
}

async fn lambda_init(args: &[String]) {
    let (Some(binary), Some(event)) = (arg(args, "--binary"), arg(args, "--event")) else {
        eprintln!("bench lambda-init needs --binary and --event");
        return;
    };
    let runs: usize = arg(args, "--runs").and_then(|s| s.parse().ok()).unwrap_or(5);
    let event = std::fs::read_to_string(&event).unwrap_or_default();
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    println!("binary {binary}: {:.2} MiB", size as f64 / 1048576.0);
    println!("{:>4} {:>10} {:>14} {:>10} {:>8}", "run", "init ms", "first call ms", "RSS MiB", "status");
    for run in 0..runs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<RuntimeEvent>();
        let server = runtime_api_stand_in(listener, event.clone(), tx);
        let started = Instant::now();
        let mut child = match start_function(&binary, addr) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot start {binary}: {e}");
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        let (mut init, mut first, mut status) = (None, None, String::new());
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(("next", t, _)) if init.is_none() => init = Some(t - started),
                    Some(("response", t, body)) => (first, status) = (Some(t - started), answered(&body)),
                    Some(("next-again", _, _)) | None => break,
                    Some(_) => {}
                },
                _ = &mut deadline => break,
            }
        }
        let rss = peak_rss_mib(pid);
        let _ = child.kill().await;
        server.abort();
        let ms = |d: Option<Duration>| d.map(|d| format!("{:.1}", d.as_secs_f64() * 1e3)).unwrap_or("-".into());
        println!("{:>4} {:>10} {:>14} {:>10.1} {:>8}", run + 1, ms(init), ms(first), rss, status);
    }
}

/// The extension `bench cost` and `bench extension` declare.
const EXT: &str = "urn:ietf:params:scim:schemas:extension:bench:2.0:User";

/// A declaration of `n` attributes: `badge` (integer, unique) and `attr01`… (strings).
fn extension_declaration(n: usize) -> Value {
    let mut attrs = vec![json!({"name": "badge", "type": "integer", "uniqueness": "server"})];
    attrs.extend((1..n).map(|i| json!({"name": format!("attr{i:02}"), "type": "string"})));
    json!({"attributes": attrs})
}

/// A user body carrying a value for each of the extension's `n` attributes.
fn with_extension(mut body: Value, n: usize, badge: usize) -> Value {
    let mut ext = serde_json::Map::new();
    ext.insert("badge".into(), json!(badge));
    // short values, as custom attributes mostly are (cost centers, divisions, codes)
    for i in 1..n {
        ext.insert(format!("attr{i:02}"), json!(format!("v{i}-{}", badge % 1000)));
    }
    body[EXT] = Value::Object(ext);
    body
}

/// `bench extension`: the cost of a declared extension on the request path, measured against a
/// tenant without declarations in the same process and the same run (rounds interleaved).
async fn extension(args: &[String]) {
    let n_attrs: usize = arg(args, "--attrs").and_then(|s| s.parse().ok()).unwrap_or(20);
    let users: usize = arg(args, "--users").and_then(|s| s.parse().ok()).unwrap_or(2000);
    let ops: usize = arg(args, "--ops").and_then(|s| s.parse().ok()).unwrap_or(2000);
    let rounds: usize = arg(args, "--rounds").and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let srv = Server::start(Store::Embedded).await;
    let plain = srv.client.clone();
    let declared = srv.tenant_key("declared", "admin").await;
    let with = srv.tenant_key("ext", "admin").await;
    for c in [&declared, &with] {
        let d = c.put(&format!("/Settings/Schemas/{EXT}"), &extension_declaration(n_attrs)).await;
        if d.status != 201 {
            eprintln!("bench: declaring the extension failed: {}", d.raw);
            return;
        }
    }
    // the machinery alone (declared, users carry no values), then users carrying every value
    let tenants = [("no declaration", plain, false), ("declared, unused", declared, false), ("values in every user", with, true)];
    let ids: Vec<Arc<tokio::sync::RwLock<Vec<String>>>> = vec![Default::default(), Default::default(), Default::default()];
    let mut post = [Vec::new(), Vec::new(), Vec::new()];
    let chunk = users.div_ceil(rounds);
    for r in 0..rounds {
        for (k, (_, c, ext)) in tenants.iter().enumerate() {
            let (c, ids, ext) = (c.clone(), ids[k].clone(), *ext);
            let (rate, _, _, err) = measure(chunk, 8, None, move |i| {
                let (c, ids) = (c.clone(), ids.clone());
                async move {
                    let n = r * chunk + i;
                    let body = if ext { with_extension(user_body("x", n), n_attrs, n) } else { user_body("x", n) };
                    let resp = c.post("/Users", &body).await;
                    if let Some(id) = resp.body["id"].as_str() {
                        ids.write().await.push(id.to_string());
                    }
                    resp.status == 201
                }
            })
            .await;
            if err > 0 {
                eprintln!("bench: {err} POSTs failed");
            }
            post[k].push(rate);
        }
    }
    println!("{n_attrs}-attribute extension; ops/s with 8 in flight, median of {rounds} interleaved rounds, ratio to no declaration");
    println!("{:<28} {:>15} {:>24} {:>24}", "operation", tenants[0].0, tenants[1].0, tenants[2].0);
    let row = |name: &str, r: &[f64]| {
        let base = r[0].max(1e-9);
        println!("{name:<28} {:>15.0} {:>16.0} ({:>4.2}) {:>16.0} ({:>4.2})", r[0], r[1], r[1] / base, r[2], r[2] / base);
    };
    row("POST /Users", &post.iter().map(|p| median(p.clone())).collect::<Vec<_>>());
    let mut snapshots = Vec::new();
    for i in &ids {
        snapshots.push(Arc::new(i.read().await.clone()));
    }
    for (_, name, op, count) in workload(ops, users).into_iter().filter(|w| w.0 != "page") {
        let op = Arc::new(op);
        let mut rates = [Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (k, (_, c, _)) in tenants.iter().enumerate() {
                let (c, ids, op) = (c.clone(), snapshots[k].clone(), op.clone());
                let (rate, _, _, _) = measure(count, 8, None, move |i| op(c.clone(), ids.clone(), "x".into(), i)).await;
                rates[k].push(rate);
            }
        }
        row(name, &rates.iter().map(|r| median(r.clone())).collect::<Vec<_>>());
    }
}

/// One measured row of `bench durability`: ops/s, p99 ms, syncs run.
type DurabilityRun = (f64, f64, u64);

/// POST and PATCH ops/s on the embedded store with writes acknowledged once synced (group
/// commit) and once written, 8 and 64 requests in flight, rounds alternating so both meet the
/// same disk: the cost of `--durability sync`.
async fn durability(args: &[String]) {
    use scim_core::store::durability::Durability;
    use scim_core::store::embedded::EmbeddedTable;
    let ops: usize = arg(args, "--ops").and_then(|s| s.parse().ok()).unwrap_or(2000);
    let rounds: usize = arg(args, "--rounds").and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut rows: std::collections::BTreeMap<(&str, usize, &str), Vec<DurabilityRun>> = Default::default();
    for round in 0..rounds {
        let order = if round % 2 == 0 { [Durability::Sync, Durability::Async] } else { [Durability::Async, Durability::Sync] };
        for d in order {
            let dir = std::env::temp_dir().join(format!("bench-durability-{}", scim_tests::uuid_like()));
            let table = Arc::new(EmbeddedTable::open_with(&dir, d).expect("open"));
            let srv = Server::start_on(Store::Embedded, table.clone(), Arc::default()).await.expect("a server");
            let name = if d == Durability::Sync { "sync" } else { "async" };
            for conc in [8, 64] {
                let c = srv.client.clone();
                let prefix = format!("d{conc}");
                let syncs = table.syncs();
                let (rate, _, p99, errors) = measure(ops, conc, None, move |i| {
                    let (c, p) = (c.clone(), prefix.clone());
                    async move { c.post("/Users", &user_body(&p, i)).await.status == 201 }
                })
                .await;
                assert_eq!(errors, 0, "POST errors");
                rows.entry(("POST /Users", conc, name)).or_default().push((rate, p99, table.syncs() - syncs));
                let ids: Vec<String> =
                    srv.client.get(&format!("/Users?count={conc}&filter=userName%20sw%20%22d{conc}%22")).await.body["Resources"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|u| u["id"].as_str().map(str::to_string)).collect())
                        .unwrap_or_default();
                let (c, ids) = (srv.client.clone(), Arc::new(ids));
                let syncs = table.syncs();
                let (rate, _, p99, errors) = measure(ops, conc, None, move |i| {
                    let (c, ids) = (c.clone(), ids.clone());
                    async move {
                        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "title", "value": format!("t{i}")}]});
                        c.patch(&format!("/Users/{}", ids[i % ids.len()]), &body).await.status == 200
                    }
                })
                .await;
                assert_eq!(errors, 0, "PATCH errors");
                rows.entry(("PATCH /Users/{id}", conc, name)).or_default().push((rate, p99, table.syncs() - syncs));
            }
            drop(srv);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    println!("{ops} operations per row, median of {rounds} rounds, embedded store, one process");
    println!("{:<20} {:>9} {:>11} {:>10} {:>9} {:>12}", "operation", "in flight", "durability", "ops/s", "p99 ms", "requests/sync");
    let med = |v: &[DurabilityRun], f: fn(&DurabilityRun) -> f64| median(v.iter().map(f).collect());
    for ((op, conc, name), v) in &rows {
        let per_sync = if *name == "sync" { format!("{:.1}", ops as f64 / med(v, |r| r.2 as f64).max(1.0)) } else { "-".into() };
        println!("{op:<20} {conc:>9} {name:>11} {:>10.0} {:>9.2} {per_sync:>12}", med(v, |r| r.0), med(v, |r| r.1));
    }
    for op in ["POST /Users", "PATCH /Users/{id}"] {
        for conc in [8, 64] {
            let (s, a) = (&rows[&(op, conc, "sync")], &rows[&(op, conc, "async")]);
            println!("{op} at {conc} in flight: sync / async = {:.2}", med(s, |r| r.0) / med(a, |r| r.0));
        }
    }
}
