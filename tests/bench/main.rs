//! `bench`: figures, never assertions.
//!
//!   bench http --base-url URL --token KEY [--users 2000,20000] [--ops 2000] [--op-seconds 60]
//!              [--only get,filter,patch,page] [--extension N]
//!       the peers.md workload against any SCIM server: POST users, GET by id, filter
//!       userName eq, PATCH name.givenName, deep page (startIndex at 90 %, count=100);
//!       ops/s at 8 concurrent requests and p50/p99 at 1, per collection size. `--only` keeps
//!       the named measurements (the users are always created; POST is always printed).
//!       `--extension N` declares an N-attribute extension first (the key needs scim:configure)
//!       and every user created carries a value for each attribute.
//!   bench compare --target NAME=BASE_URL=TOKEN --target … [--users 2000,20000] [--ops 2000]
//!                 [--rounds 3] [--op-seconds 20]
//!       the same workload on several servers, interleaved round by round (a slow spell of the
//!       machine falls on all of them); median ops/s per server and the first server's ratio
//!       to the best of the others.
//!   bench cost
//!       DynamoDB round trips per SCIM operation, on the embedded store and on moto.
//!   bench extension [--attrs 20] [--users 2000] [--ops 2000] [--rounds 3]
//!       one in-process server, two tenants: one without declarations, one with a declared
//!       extension of `attrs` attributes whose users carry a value for each; the same workload
//!       on both, interleaved round by round; median ops/s and the ratio with/without.
//!   bench lambda-init --binary PATH --event FILE [--runs 5]
//!       starts a function binary against a local stand-in of the Lambda runtime API and
//!       prints init time (process start → first "next" call), first-invocation time and peak
//!       RSS; the function's environment (SCIM_TABLE, SCIM_DYNAMODB_ENDPOINT, …) is inherited.
//!   bench members [--size 10000] [--batch 100]
//!       builds a group by PATCHes of `batch` members and prints the per-PATCH cost, then the
//!       cost of adding and removing one member at full size.

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
        Some("lambda-init") => lambda_init(&args).await,
        _ => eprintln!(
            "usage: bench http --base-url URL --token KEY [--users 2000,20000] [--ops 2000] [--op-seconds 60] [--only get,filter,patch,page] | bench compare --target NAME=URL=TOKEN --target … [--rounds 3] | bench cost | bench members [--size N] [--batch N]"
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
            let mk = |op: Arc<Op>| {
                let (c, ids, run) = (c.clone(), snapshot.clone(), run.clone());
                move |i: usize| op(c.clone(), ids.clone(), run.clone(), i)
            };
            let (rate, _, _, err8) = measure(count, 8, cap, mk(op.clone())).await;
            let (_, p50, p99, err1) = measure((count / 4).max(20), 1, cap, mk(op.clone())).await;
            println!("{:<34} {:>8} {:>10.0} {:>9.2} {:>9.2} {:>7}", name, size, rate, p50, p99, err8 + err1);
            if name.starts_with("page") {
                deep.push((size, p50));
            }
        }
    }
    if let [(a, pa), .., (b, pb)] = deep.as_slice() {
        println!("deep page p50 {a}→{b} users: ×{:.2}", pb / pa.max(1e-9));
    }
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
async fn compare(args: &[String]) {
    let mut targets = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if a != "--target" {
            continue;
        }
        let spec = args.get(i + 1).cloned().unwrap_or_default();
        let mut parts = spec.splitn(3, '=');
        let (Some(name), Some(url), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
            eprintln!("--target takes NAME=BASE_URL=TOKEN, got '{spec}'");
            return;
        };
        targets.push(Target { name: name.into(), client: Client::new(url, token), ids: Default::default() });
    }
    if targets.len() < 2 {
        eprintln!("bench compare needs two or more --target NAME=BASE_URL=TOKEN (the first is compared with the best of the others)");
        return;
    }
    let (sizes, ops, cap) = workload_args(args, 20.0);
    let rounds: usize = arg(args, "--rounds").and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let run = format!("c{}-", std::process::id());
    let first = targets[0].name.clone();
    print!("{:<32} {:>6}", "operation (median of rounds)", "users");
    for t in &targets {
        print!(" {:>13}", t.name);
    }
    println!(" {:>9} {:>15}", "× others", format!("{first} p50/p99"));
    let row = |name: &str, size: usize, rates: &[f64], lat: Option<(f64, f64)>| {
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
    };
    let mut created = 0usize;
    for size in sizes {
        let want = size - created.min(size);
        eprintln!("bench: creating {want} users on each server (to {size}), in {rounds} rounds");
        let mut post: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
        let chunk = want.div_ceil(rounds);
        let mut done = 0;
        while done < want {
            let n = chunk.min(want - done);
            for (k, t) in targets.iter().enumerate() {
                let (rate, _, _, err) = create_users(&t.client, &run, &t.ids, created + done, n, None).await;
                if err > 0 {
                    eprintln!("bench: {} answered {err} of {n} POSTs wrongly", t.name);
                }
                post[k].push(rate);
            }
            done += n;
        }
        created = size;
        row("POST /Users (8 concurrent)", size, &post.into_iter().map(median).collect::<Vec<_>>(), None);
        let mut snapshots = Vec::new();
        for t in &targets {
            snapshots.push(Arc::new(t.ids.read().await.clone()));
        }
        for (_, name, op, count) in workload(ops, size) {
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
            row(name, size, &rates.into_iter().map(median).collect::<Vec<_>>(), Some((p50, p99)));
        }
    }
}

async fn cost() {
    println!("round trips per SCIM operation (authentication excluded), capacity units modelled from the");
    println!("items moved (DynamoDB's rules, see store::metered), and what moto reported with ReturnConsumedCapacity");
    println!(
        "{:<44} {:>9} {:>5} {:>9} {:>6} {:>6} {:>6} {:>6} {:>13}",
        "operation", "store", "get", "get_many", "query", "write", "RCU", "WCU", "moto r/w CU"
    );
    for store in [Store::Embedded, Store::Dynamo] {
        let srv = Server::start(store).await;
        let c = &srv.client;
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
        let carrier =
            c.post("/Users", &with_extension(user_body("carrier", 0), 20, 7)).await.body["id"].as_str().unwrap_or_default().to_string();
        let list = c.get("/Users?count=1").await;
        let id = list.body["Resources"][0]["id"].as_str().unwrap_or_default().to_string();
        let g = c.post("/Groups", &json!({"displayName": "cost", "members": [{"value": id}]})).await;
        let gid = g.body["id"].as_str().unwrap_or_default().to_string();
        let other = c.post("/Users", &user_body("extra", 0)).await.body["id"].as_str().unwrap_or_default().to_string();
        // the process's first cursor loads (or makes) the cursor sealing key once: not per request
        c.get("/Users?count=1&cursor=").await;
        // what authenticating a request costs (a warm process: one batched read of the key, its
        // tenant and its last-use stamp), measured on a request that reads nothing else and
        // taken off every row below: in AWS the authorizer does it, cached
        let (auth, auth_rcu, auth_reported) = {
            let before = srv.metered.counts();
            let reported = srv.metered.consumed_capacity();
            c.get("/ServiceProviderConfig").await;
            let after = srv.metered.counts();
            let reported_after = srv.metered.consumed_capacity();
            (
                (after.get - before.get, after.get_many - before.get_many),
                after.rcu - before.rcu,
                reported.zip(reported_after).map(|(a, b)| b.0 - a.0).unwrap_or(0.0),
            )
        };
        let patch = |v: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": v});
        let steps: Vec<(&str, &str, String, Option<Value>)> = vec![
            ("POST /Users", "POST", "/Users".into(), Some(user_body("c2", 1))),
            ("GET /Users/{id}", "GET", format!("/Users/{id}"), None),
            ("GET /Users/{id}?excludedAttributes=groups", "GET", format!("/Users/{id}?excludedAttributes=groups"), None),
            ("filter userName eq", "GET", format!("/Users?filter={}", scim_tests::encode("userName eq \"c000042@example.com\"")), None),
            ("filter externalId eq (no match)", "GET", format!("/Users?filter={}", scim_tests::encode("externalId eq \"nope\"")), None),
            (
                "filter externalId eq (3 holders)",
                "GET",
                format!("/Users?filter={}", scim_tests::encode("externalId eq \"shared-ext\"")),
                None,
            ),
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
            ("GET /Users/{id} of no user (404: an activity entry)", "GET", "/Users/no-such-user".into(), None),
        ];
        for (name, method, path, body) in steps {
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
                "{:<44} {:>9} {:>5} {:>9} {:>6} {:>6} {:>6.1} {:>6.1} {:>13}{}",
                name,
                if store == Store::Embedded { "embedded" } else { "dynamodb" },
                get,
                get_many,
                d(after.query, before.query),
                d(after.write, before.write),
                after.rcu - before.rcu - auth_rcu,
                after.wcu - before.wcu,
                reported,
                if r.status >= 400 { format!("  (status {})", r.status) } else { String::new() }
            );
        }
    }
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
async fn lambda_init(args: &[String]) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
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
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(&'static str, Instant, String)>();
        let ev = event.clone();
        let server = tokio::spawn(async move {
            let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (tx, ev, served) = (tx.clone(), ev.clone(), served.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (tx, ev, served) = (tx.clone(), ev.clone(), served.clone());
                        async move {
                            let now = Instant::now();
                            let path = req.uri().path().to_string();
                            if path.ends_with("/invocation/next") {
                                if served.swap(true, std::sync::atomic::Ordering::SeqCst) {
                                    // park the second "next" like the real API does between invocations
                                    let _ = tx.send(("next-again", now, String::new()));
                                    tokio::time::sleep(Duration::from_secs(30)).await;
                                }
                                let _ = tx.send(("next", now, String::new()));
                                let deadline = std::time::SystemTime::now()
                                    .duration_since(std::time::UNIX_EPOCH)
                                    .map(|d| d.as_millis() + 10_000)
                                    .unwrap_or(0);
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .header("lambda-runtime-aws-request-id", "bench-1")
                                        .header("lambda-runtime-deadline-ms", deadline.to_string())
                                        .header(
                                            "lambda-runtime-invoked-function-arn",
                                            "arn:aws:lambda:us-east-1:000000000000:function:bench",
                                        )
                                        .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
                                        .body(Full::new(Bytes::from(ev)))
                                        .unwrap_or_default(),
                                );
                            }
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| String::from_utf8_lossy(&b.to_bytes()).to_string())
                                .unwrap_or_default();
                            let _ = tx.send(("response", now, body));
                            Ok(hyper::Response::builder().status(202).body(Full::new(Bytes::new())).unwrap_or_default())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                });
            }
        });
        let started = Instant::now();
        let mut child = match tokio::process::Command::new(&binary)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cannot start {binary}: {e}");
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        let mut init = None;
        let mut first = None;
        let mut status = String::new();
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(("next", t, _)) if init.is_none() => init = Some(t - started),
                    Some(("response", t, body)) => {
                        first = Some(t - started);
                        status = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["statusCode"].as_u64().map(|s| s.to_string()).or_else(|| v["context"]["tenant_id"].as_str().map(|_| "policy".to_string()))).unwrap_or_else(|| "?".into());
                    }
                    Some(("next-again", _, _)) => break,
                    Some(_) => {}
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find(|l| l.starts_with("VmHWM")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok())
            })
            .map(|k| k / 1024.0)
            .unwrap_or(0.0);
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
