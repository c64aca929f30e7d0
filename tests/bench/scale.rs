//! `bench scale`: one scim-local (a release build, its own process) holding a large tenant, the
//! figures of issue 27 side by side: RSS per user, restart time, GET / filter / PATCH / deep
//! page / membership check at that size. Figures, never assertions.

use super::{arg, measure, user_body};
use scim_tests::Client;
use serde_json::{Value, json};
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Local {
    child: Child,
    base: String,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` on `dir` and waits until it answers; the bootstrap token when it printed one,
/// and the seconds from spawn to the first answer.
async fn start(binary: &str, dir: &std::path::Path, port: u16, durability: &str) -> (Local, Option<String>, f64) {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args(["--port", &port.to_string(), "--data-dir"])
        .arg(dir)
        .args(["--durability", durability])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let token = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut token = None;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(t) = line.strip_prefix("SCIM_TOKEN=") {
                token = Some(t.trim().to_string());
            }
            if line.starts_with("SCIM_PORTAL_URL") || line.contains("listening") {
                break;
            }
        }
        token
    });
    let base = format!("http://127.0.0.1:{port}/scim/v2");
    let probe = Client::new(&base, "none");
    loop {
        let status = probe.get("/ServiceProviderConfig").await.status;
        if status != 0 && status < 500 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "scim-local did not answer within 10 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let token = tokio::task::spawn_blocking(move || token.join().ok().flatten()).await.ok().flatten();
    (Local { child, base }, token, secs)
}

/// Resident memory of a process now, MiB.
fn rss_mib(pid: u32) -> f64 {
    super::status_mib(pid, "VmRSS")
}

fn bulk_of(from: usize, n: usize) -> Value {
    let ops: Vec<Value> = (from..from + n)
        .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": user_body("s", i)}))
        .collect();
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops})
}

/// Creates `users` users in Bulk requests of 1000, two in flight, with a progress line: their ids
/// in creation order, and the seconds it took.
async fn fill(c: &Client, users: usize) -> (Vec<String>, f64) {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(users);
    let batches: Vec<usize> = (0..users).step_by(1000).collect();
    for (k, pair) in batches.chunks(2).enumerate() {
        let sends: Vec<_> = pair
            .iter()
            .map(|&from| {
                let c = c.clone();
                let n = 1000.min(users - from);
                tokio::spawn(async move { c.post("/Bulk", &bulk_of(from, n)).await })
            })
            .collect();
        for s in sends {
            let r = s.await.expect("a Bulk request");
            assert_eq!(r.status, 200, "Bulk: {}", r.body);
            for op in r.body["Operations"].as_array().into_iter().flatten() {
                let location = op["location"].as_str().unwrap_or_else(|| panic!("a created user's location: {op}"));
                ids.push(location.rsplit('/').next().unwrap_or_default().to_string());
            }
        }
        let done = ((k + 1) * 2000).min(users);
        if done % 100_000 < 2000 || done == users {
            eprintln!("bench scale: {done} of {users} users ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    (ids, started.elapsed().as_secs_f64())
}

/// A group holding the first `members` users, built by PATCHes of 1000 members.
async fn big_group(c: &Client, ids: &[String], members: usize) -> String {
    let gid = c.post("/Groups", &json!({"displayName": "everyone-big"})).await.body["id"].as_str().expect("group id").to_string();
    for chunk in ids[..members.min(ids.len())].chunks(1000) {
        let value: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                           "Operations": [{"op": "add", "path": "members", "value": value}]});
        let r = c.patch(&format!("/Groups/{gid}"), &patch).await;
        assert!(r.status < 300, "group PATCH: {} {}", r.status, r.body);
    }
    gid
}

/// What filling and restarting measured.
struct Store {
    rss_empty: f64,
    rss_full: f64,
    rss_restarted: f64,
    first_start: f64,
    restarts: Vec<f64>,
    fill_secs: f64,
}

/// The server filled with `users` users and a group of the first `members`, restarted three
/// times: the running server, its token, every 1000th user's id, the members' ids, the group's
/// id, and what it measured.
async fn filled(
    binary: &str,
    dir: &std::path::Path,
    port: u16,
    users: usize,
    members: usize,
) -> (Local, String, Vec<String>, Vec<String>, String, Store) {
    let (local, token, first_start) = start(binary, dir, port, "sync").await;
    let token = token.expect("a bootstrap token on the first start");
    let c = Client::new(&local.base, &token);
    let rss_empty = rss_mib(local.child.id());
    let (all, fill_secs) = fill(&c, users).await;
    let rss_full = rss_mib(local.child.id());
    // every 1000th user for the reads and PATCHes; the group holds the first `members`
    let ids: Vec<String> = all.iter().step_by((users / 1000).max(1)).cloned().collect();
    let member_ids: Vec<String> = all[..members.min(users)].to_vec();
    drop(all);
    let gid = big_group(&c, &member_ids, members).await;
    drop(local);
    // three restarts: the first right after the writes (the page cache may still be writing
    // them back), the others as a restart later would find the machine
    let mut restarts = Vec::new();
    for _ in 0..2 {
        let (local, _, secs) = start(binary, dir, port, "sync").await;
        restarts.push(secs);
        drop(local);
    }
    let (local, _, last) = start(binary, dir, port, "sync").await;
    restarts.push(last);
    let rss_restarted = rss_mib(local.child.id());
    let store = Store { rss_empty, rss_full, rss_restarted, first_start, restarts, fill_secs };
    (local, token, ids, member_ids, gid, store)
}

fn print_store(s: &Store, users: usize, log: u64) {
    let per_user = |mib: f64| (mib - s.rss_empty) * 1048.576 / users as f64;
    println!("{:<44} {:>12}", "created (Bulk of 1000, 2 in flight)", format!("{:.0} users/s", users as f64 / s.fill_secs));
    println!("{:<44} {:>12.0}", "RSS empty, MiB", s.rss_empty);
    println!("{:<44} {:>12.0}", "RSS full, MiB", s.rss_full);
    println!("{:<44} {:>12.2}", "RSS per user, KB (full - empty)", per_user(s.rss_full));
    println!("{:<44} {:>12.2}", "RSS per user after restart, KB", per_user(s.rss_restarted));
    println!("{:<44} {:>12.2}", "first start (empty), s", s.first_start);
    let shown: Vec<String> = s.restarts.iter().map(|r| format!("{r:.2}")).collect();
    println!("{:<44} {:>12}", "restarts to first answer, s (3 in a row)", shown.join(" "));
    println!("{:<44} {:>12.0}", "log, bytes per user", log as f64 / users as f64);
}

pub async fn scale(args: &[String]) {
    let binary = arg(args, "--binary").unwrap_or_else(|| "target/release/scim-local".into());
    let users: usize = arg(args, "--users").and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let members: usize = arg(args, "--members").and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let ops: usize = arg(args, "--ops").and_then(|s| s.parse().ok()).unwrap_or(2000);
    let port: u16 = arg(args, "--port").and_then(|s| s.parse().ok()).unwrap_or(18787);
    let dir = std::env::temp_dir().join(format!("bench-scale-{}", scim_tests::uuid_like()));
    eprintln!("bench scale: {users} users and a {members}-member group on {binary}, data in {}", dir.display());
    let (local, token, ids, member_ids, gid, store) = filled(&binary, &dir, port, users, members).await;
    println!("bench scale: {users} users, one group of {members} members, {binary} (durability sync)");
    print_store(&store, users, std::fs::metadata(dir.join("table.log")).map(|m| m.len()).unwrap_or(0));
    println!();
    operations(&Client::new(&local.base, &token), ids, member_ids, gid, ops, users, members).await;
    drop(local);
    if args.iter().any(|a| a == "--keep-data") {
        eprintln!("bench scale: the data is kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// GET, filter, PATCH, deep page and the membership check, each at 8 in flight and one at a time.
async fn operations(c: &Client, ids: Vec<String>, member_ids: Vec<String>, gid: String, ops: usize, users: usize, members: usize) {
    println!("{:<44} {:>10} {:>10} {:>10}", "operation", "ops/s (8)", "p50 ms", "p99 ms (1)");
    let ids = Arc::new(ids);
    let n = users;
    let (cc, ii) = (c.clone(), ids.clone());
    row(
        "GET /Users/{id}",
        both(ops, move |i| {
            let (c, ids) = (cc.clone(), ii.clone());
            async move { c.get(&format!("/Users/{}?excludedAttributes=groups", ids[i % ids.len()])).await.status == 200 }
        })
        .await,
    );
    let cc = c.clone();
    row(
        "filter userName eq",
        both(ops, move |i| {
            let c = cc.clone();
            async move { c.filter("/Users", &format!("userName eq \"s{:06}@example.com\"", (i * 7919) % n), "").await.status == 200 }
        })
        .await,
    );
    let (cc, ii) = (c.clone(), ids.clone());
    row(
        "PATCH name.givenName",
        both(ops, move |i| {
            let (c, ids) = (cc.clone(), ii.clone());
            async move {
                let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                               "Operations": [{"op": "replace", "path": "name.givenName", "value": format!("G{i}")}]});
                c.patch(&format!("/Users/{}", ids[i % ids.len()]), &patch).await.status == 200
            }
        })
        .await,
    );
    // at 90 % of the collection, and every page whole whatever its size
    let (cc, deep) = (c.clone(), (n * 9 / 10).min(n.saturating_sub(1000)));
    row(
        "deep page (startIndex at 90 %, count=100)",
        both(ops, move |i| {
            let c = cc.clone();
            async move {
                let r = c.get(&format!("/Users?startIndex={}&count=100", deep + (i % 10) * 100)).await;
                r.status == 200 && r.body["Resources"].as_array().is_some_and(|a| a.len() == 100)
            }
        })
        .await,
    );
    let (cc, m) = (c.clone(), Arc::new(member_ids));
    row(
        &format!("membership check, {members}-member group"),
        both(ops, move |i| {
            let (c, m, gid) = (cc.clone(), m.clone(), gid.clone());
            async move {
                let f = format!("id eq \"{gid}\" and members[value eq \"{}\"]", m[(i * 7919) % m.len()]);
                let r = c.filter("/Groups", &f, "&excludedAttributes=members").await;
                r.status == 200 && r.body["totalResults"] == 1
            }
        })
        .await,
    );
}

type Figures = (f64, f64, f64, usize);

/// The same operation at 8 in flight (its rate) and one at a time (its latency).
async fn both<F, Fut>(ops: usize, f: F) -> (Figures, Figures)
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let cap = Some(Duration::from_secs(60));
    (measure(ops, 8, cap, f.clone()).await, measure(ops, 1, cap, f).await)
}

fn row(name: &str, ((rate, _, _, e8), (_, p50, p99, e1)): (Figures, Figures)) {
    let errors = e8 + e1;
    println!("{name:<44} {rate:>10.0} {p50:>10.2} {p99:>10.2}{}", if errors > 0 { format!("  ({errors} errors)") } else { String::new() });
}
