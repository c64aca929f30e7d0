//! The `scim-local` binary as a new user runs it: first start prints the URL and a token once;
//! a restart keeps the data and prints no token.

use super::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("scim-local");
    assert!(bin.exists(), "{} is missing: build it first (`cargo build --workspace --bins`, as scripts/test does)", bin.display());
    bin
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data: &std::path::Path) -> (Running, Vec<String>) {
    let mut child = Command::new(binary())
        .args(["--port", "0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn scim-local");
    let out = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    // up to the last line it prints (the setup link)
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        let l = line.trim().to_string();
        line.clear();
        let done = l.starts_with("SCIM_PORTAL_URL=");
        lines.push(l);
        if done {
            break;
        }
    }
    (Running(child), lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_url_and_token_then_restart_keeps_data() {
    let data = std::env::temp_dir().join(format!("scim-local-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (run, lines) = start(&data);
    let base = lines.iter().find_map(|l| l.strip_prefix("SCIM_BASE_URL=")).expect("base url line").to_string();
    let token = lines.iter().find_map(|l| l.strip_prefix("SCIM_TOKEN=")).expect("token line").to_string();
    assert!(base.starts_with("http://127.0.0.1:") && base.ends_with("/scim/v2"), "{base}");
    assert!(token.starts_with("scim_"));
    let c = scim_tests::Client::new(&base, &token);
    let id = id_of(&c.post("/Users", &user("persisted@example.com")).await.body);
    drop(run);

    // restart: the stdout has only the URL (the token was shown once) and the data is there
    let mut child = Command::new(binary())
        .args(["--port", "0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let out = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(out);
    let mut first = String::new();
    reader.read_line(&mut first).expect("line");
    let _guard = Running(child);
    let base2 = first.trim().strip_prefix("SCIM_BASE_URL=").expect("url line").to_string();
    let c2 = scim_tests::Client::new(&base2, &token);
    let got = c2.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.raw);
    assert_eq!(got.body["userName"], "persisted@example.com");
    // only paths under the base URL are SCIM paths: `/scim/v2Users` is not `/scim/v2/Users`
    let root = scim_tests::Client::new(base2.trim_end_matches("/scim/v2"), &token);
    for (path, status) in [("/scim/v2Users", 404), ("/scim/v2", 404), ("/scim/v2/", 404), ("/scim/v2/Users?count=1", 200)] {
        let r = root.get(path).await;
        assert_eq!(r.status, status, "{path}: {}", r.raw);
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_passwords_reach_neither_the_logs_nor_the_store() {
    let data = std::env::temp_dir().join(format!("scim-local-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("data dir");
    let log_path = data.join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    // the most talkative level an operator could set, for every crate
    let mut child = Command::new(binary())
        .args(["--port", "0", "--new-oauth-client", "--data-dir"])
        .arg(data.join("store"))
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("spawn scim-local");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut url, mut tok, mut portal) = (String::new(), String::new(), String::new());
    reader.read_line(&mut url).expect("url line");
    reader.read_line(&mut tok).expect("token line");
    reader.read_line(&mut portal).expect("portal line");
    let mut oauth_lines = Vec::new();
    for _ in 0..3 {
        let mut l = String::new();
        reader.read_line(&mut l).expect("the token endpoint and client lines");
        oauth_lines.push(l.trim().to_string());
    }
    let printed = |prefix: &str| oauth_lines.iter().find_map(|l| l.strip_prefix(prefix)).map(str::to_string).expect(prefix);
    let (client_id, client_secret) = (printed("CLIENT_ID="), printed("CLIENT_SECRET="));
    let guard = Running(child);
    let link_secret = portal.trim().split_once('#').map(|(_, s)| s.to_string()).expect("a setup link");
    let base = url.trim().strip_prefix("SCIM_BASE_URL=").expect("url").to_string();
    let token = tok.trim().strip_prefix("SCIM_TOKEN=").expect("token").to_string();
    // `scim_<key id>_<secret>`: the secret is base64url and may hold `_` itself, the key id never
    let (key_id, secret) = token.strip_prefix("scim_").and_then(|t| t.split_once('_')).expect("scim_<key id>_<secret>");
    let (key_id, secret) = (key_id.to_string(), secret.to_string());
    let wrong_secret = "W".repeat(43);
    let password = "Correct-Horse-Battery-9";

    let c = scim_tests::Client::new(&base, &token);
    let mut body = user("logged@example.com");
    body["password"] = json!(password);
    let id = id_of(&c.post("/Users", &body).await.body);
    let p = c.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "path": "password", "value": password}]))).await;
    assert_eq!(p.status, 200);
    assert!(!p.raw.contains(password), "a password is never returned");
    scim_tests::Client::new(&base, &format!("scim_{key_id}_{wrong_secret}")).get("/Users").await.assert_error(401, None);
    scim_tests::Client::new(&base, "not-a-key").get("/Users").await.assert_error(401, None);
    // the setup portal's API, with its link and with a changed one
    let root = scim_tests::Client::new(&base.replace("/scim/v2", ""), "");
    for (t, status) in [(link_secret.clone(), 200), (format!("{link_secret}x"), 401)] {
        assert_eq!(root.send("GET", "/portal/api/keys", None, &[("authorization", &format!("Portal {t}"))]).await.status, status);
    }
    // OAuth: a token for the client's secret, used; a wrong client secret refused
    use base64::Engine;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let basic = |secret: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}")));
    let wrong_client_secret = "C".repeat(43);
    let (good, bad) = (basic(&client_secret), basic(&wrong_client_secret));
    let issued = root.send("POST", "/oauth2/token", Some("grant_type=client_credentials"), &[form[0], ("authorization", &good)]).await;
    assert_eq!(issued.status, 200, "{}", issued.raw);
    let access_token = issued.body["access_token"].as_str().expect("a token").to_string();
    assert_eq!(scim_tests::Client::new(&base, &access_token).get("/Users").await.status, 200);
    let refused = root.send("POST", "/oauth2/token", Some("grant_type=client_credentials"), &[form[0], ("authorization", &bad)]).await;
    assert_eq!(refused.status, 401);
    let token_signature = access_token.rsplit('.').next().unwrap_or_default().to_string();
    // the request log is written every 50 ms (`access_log::FLUSH_EVERY`): let it reach the file
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(guard);

    let logs = std::fs::read_to_string(&log_path).expect("logs");
    assert!(logs.contains("authentication failed"), "the refusals were logged (else this test proves nothing):\n{logs}");
    assert!(logs.contains("INFO request method=GET path=/portal/api/keys status=401"), "the request log was written:\n{logs}");
    for (what, s) in [
        ("the key", token.as_str()),
        ("the key's secret", &secret),
        ("a wrong secret", &wrong_secret),
        ("a password", password),
        ("the setup link", &link_secret),
        ("the OAuth client secret", &client_secret),
        ("a wrong client secret", &wrong_client_secret),
        ("the Basic credentials", good.trim_start_matches("Basic ")),
        ("an access token", &access_token),
        ("an access token's signature", &token_signature),
    ] {
        assert!(!logs.contains(s), "{what} appears in the server's logs");
    }
    // nor in any file of the store (key records hold only the SHA-256 of the secret)
    let mut files = vec![data.join("store")];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).expect("dir").filter_map(|e| e.ok().map(|e| e.path())));
        } else {
            let bytes = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
            for s in [secret.as_str(), password, client_secret.as_str(), access_token.as_str(), token_signature.as_str()] {
                assert!(!bytes.contains(s), "{} holds a secret", p.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}

fn admin(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    let exe = std::env::current_exe().expect("test exe");
    let bin = exe.parent().and_then(|d| d.parent()).expect("target dir").join("scim-admin");
    Command::new(bin).arg("--data-dir").arg(data).args(args).output().expect("run scim-admin")
}

/// Reads scim-local's stdout up to its setup link line; returns (base URL, link).
fn start_for_link(data: &std::path::Path) -> (Running, String, String) {
    let (run, lines) = start(data);
    let printed = |prefix: &str| lines.iter().find_map(|l| l.strip_prefix(prefix)).unwrap_or_default().to_string();
    let (base, link) = (printed("SCIM_BASE_URL="), printed("SCIM_PORTAL_URL="));
    (run, base, link)
}

async fn session_status(base: &str, link: &str) -> u16 {
    let token = link.split_once('#').expect("a fragment").1;
    let root = scim_tests::Client::new(&base.replace("/scim/v2", ""), "");
    root.send("GET", "/portal/api/session", None, &[("authorization", &format!("Portal {token}"))]).await.status
}

/// The operator's way in: `scim-admin portal link` prints a link under the Tenant URL given,
/// `scim-admin portal revoke` ends every link made so far; scim-local prints one on each start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_links_from_scim_local_and_the_admin_cli() {
    let data = std::env::temp_dir().join(format!("scim-local-links-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (run, base, printed) = start_for_link(&data);
    assert!(printed.starts_with(&base.replace("/scim/v2", "/portal#")), "{printed}");
    assert_eq!(session_status(&base, &printed).await, 200);
    drop(run);

    let out = admin(
        &data,
        &["--json", "portal", "link", "--tenant", "local", "--tenant-url", "https://scim.example.com/v1/scim/v2", "--hours", "2"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let url = made["url"].as_str().expect("url").to_string();
    assert!(url.starts_with("https://scim.example.com/v1/portal#"), "{url}");
    for bad in [
        vec!["portal", "link", "--tenant", "local", "--tenant-url", "scim.example.com"],
        vec!["portal", "link", "--tenant", "local", "--tenant-url", "https://x/scim/v2", "--hours", "0"],
        vec!["portal", "link", "--tenant", "nobody", "--tenant-url", "https://x/scim/v2"],
    ] {
        let out = admin(&data, &bad);
        assert!(!out.status.success() && !out.stderr.is_empty(), "{bad:?} should fail with a reason");
    }

    let (run, base, _) = start_for_link(&data);
    assert_eq!(session_status(&base, &url).await, 200, "a link works whatever host it names");
    drop(run);
    let out = admin(&data, &["portal", "revoke", "--tenant", "local"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (run, base, fresh) = start_for_link(&data);
    assert_eq!(session_status(&base, &url).await, 401, "revoked");
    assert_eq!(session_status(&base, &printed).await, 401, "revoked");
    assert_eq!(session_status(&base, &fresh).await, 200, "made after the revocation");
    drop(run);
    let _ = std::fs::remove_dir_all(&data);
}

/// Runs scim-local until it exits (a start that fails); returns (status, stdout, stderr).
fn run_to_exit(args: &[&str], data: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(binary()).args(args).arg("--data-dir").arg(data).output().expect("run scim-local");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A failure is told in sentences: no Rust debug dump (`{`, `Some(`, quoted strings) in it.
fn assert_human(stderr: &str) {
    assert!(!stderr.contains('{') && !stderr.contains("Some(") && !stderr.contains("Error: \""), "a debug dump: {stderr}");
}

/// The first start with its port taken used to make the tenant and its admin key, then fail to
/// listen: the next start said "reusing" and the one-time key was lost. It now listens first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_that_cannot_listen_makes_nothing_and_says_what_to_do() {
    let data = std::env::temp_dir().join(format!("scim-local-port-{}", scim_tests::uuid_like()));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (ok, stdout, stderr) = run_to_exit(&["--port", &port], &data);
    assert!(!ok && stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("--port") && stderr.contains(&port), "{stderr}");
    assert_human(&stderr);
    drop(taken);
    let (run, lines) = start(&data);
    assert!(lines.iter().any(|l| l.starts_with("SCIM_TOKEN=scim_")), "the key is made by the start that serves: {lines:?}");
    drop(run);
    let _ = std::fs::remove_dir_all(&data);
}

/// `--public-url`: the URL an IdP reaches (a tunnel) is in SCIM_BASE_URL, the setup link, the
/// portal's Tenant URL and every location the server sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_is_every_url_the_server_shows() {
    let data = std::env::temp_dir().join(format!("scim-local-public-{}", scim_tests::uuid_like()));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut child = Command::new(binary())
        .args(["--port", &port, "--public-url", "https://tunnel.example.dev/", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..3 {
        let mut l = String::new();
        reader.read_line(&mut l).unwrap();
        lines.push(l.trim().to_string());
    }
    let _run = Running(child);
    let printed = |p: &str| lines.iter().find_map(|l| l.strip_prefix(p)).unwrap_or_default().to_string();
    assert_eq!(printed("SCIM_BASE_URL="), "https://tunnel.example.dev/scim/v2");
    let link = printed("SCIM_PORTAL_URL=");
    assert!(link.starts_with("https://tunnel.example.dev/portal#"), "{lines:?}");
    // what the tunnel would forward: the local port, every URL in the answers the public one
    let local = format!("http://127.0.0.1:{port}/scim/v2");
    let c = scim_tests::Client::new(&local, &printed("SCIM_TOKEN="));
    let made = c.post("/Users", &user("tunnel@example.com")).await;
    let location = made.header("location").unwrap_or_default().to_string();
    assert!(location.starts_with("https://tunnel.example.dev/scim/v2/Users/"), "{location}");
    assert_eq!(made.body["meta"]["location"], location.as_str());
    let root = scim_tests::Client::new(&format!("http://127.0.0.1:{port}"), "");
    let auth = format!("Portal {}", link.split_once('#').unwrap().1);
    let session = root.send("GET", "/portal/api/session", None, &[("authorization", &auth)]).await;
    assert_eq!(session.body["tenantUrl"], "https://tunnel.example.dev/scim/v2", "{}", session.raw);
    let _ = std::fs::remove_dir_all(&data);
    // a URL with a path, or not http(s): refused before anything starts
    for bad in ["ftp://x.example", "https://x.example/other", "not a url"] {
        let (ok, _, stderr) = run_to_exit(&["--port", "0", "--public-url", bad, "--memory"], &data);
        assert!(!ok && stderr.contains("--public-url"), "{bad}: {stderr}");
        assert_human(&stderr);
    }
}

/// scim-admin's failures are sentences; it says which store it uses and never makes one unasked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_admin_says_which_store_and_fails_in_sentences() {
    let data = std::env::temp_dir().join(format!("scim-admin-none-{}", scim_tests::uuid_like()));
    let out = admin(&data, &["tenant", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no store in") && stderr.contains("--create-store"), "{stderr}");
    assert!(!data.join("table.log").exists(), "no store made unasked");
    assert_human(&stderr);
    let out = admin(&data, &["--create-store", "tenant", "show", "nobody"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no tenant 'nobody'"), "{stderr}");
    assert!(stderr.contains(&format!("embedded store in {}", data.display())), "{stderr}");
    assert_human(&stderr);
    // the default place, wherever it is run from, is the one scim-local uses
    let home = std::env::temp_dir().join(format!("scim-home-{}", scim_tests::uuid_like()));
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap();
    let out = Command::new(bin.join("scim-admin"))
        .args(["tenant", "list"])
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("SCIM_LOCAL_DATA_DIR")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains(&home.join(".local/share/scim-local").display().to_string()));
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&home);
}

/// A flipped bit in a length field in the middle of the log: scim-local refuses to start and
/// changes nothing; `scim-admin repair` says what it would keep and drop, `repair --yes` does it
/// and keeps the damaged log; every user is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_refused_then_repaired_with_nothing_lost() {
    let data = std::env::temp_dir().join(format!("scim-local-repair-{}", scim_tests::uuid_like()));
    let (run, lines) = start(&data);
    let printed = |p: &str| lines.iter().find_map(|l| l.strip_prefix(p)).unwrap_or_default().to_string();
    let c = scim_tests::Client::new(&printed("SCIM_BASE_URL="), &printed("SCIM_TOKEN="));
    for n in 0..40 {
        assert_eq!(c.post("/Users", &user(&format!("u{n}@example.com"))).await.status, 201);
    }
    drop(run);
    let log = data.join("table.log");
    let mut bytes = std::fs::read(&log).unwrap();
    // walk the frames to the middle one and flip a bit of its length
    let (mut at, mut frames) = (scim_core::store::wal::MAGIC.len(), Vec::new());
    while at + 8 <= bytes.len() {
        frames.push(at);
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    let middle = frames[frames.len() / 2];
    bytes[middle + 2] ^= 0x04;
    std::fs::write(&log, &bytes).unwrap();
    let (ok, _, stderr) = run_to_exit(&["--port", "0"], &data);
    assert!(!ok && stderr.contains(&format!("damaged at byte {middle}")) && stderr.contains("repair"), "{stderr}");
    assert_human(&stderr);
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing changed");
    let plan = admin(&data, &["repair"]);
    let said = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success() && said.contains("length field is damaged") && said.contains("0 bytes are dropped"), "{said}");
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "a survey changes nothing");
    let done = admin(&data, &["repair", "--yes"]);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let kept: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("table.log.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read(kept[0].path()).unwrap(), bytes, "the damaged log is kept as it was");
    let (run, lines) = start(&data);
    let base = lines.iter().find_map(|l| l.strip_prefix("SCIM_BASE_URL=")).unwrap().to_string();
    let c = scim_tests::Client::new(&base, &c.token);
    assert_eq!(c.get("/Users?count=1").await.body["totalResults"], 40);
    for n in 0..40 {
        let r = c.filter("/Users", &format!("userName eq \"u{n}@example.com\""), "").await;
        assert_eq!(r.body["totalResults"], 1, "u{n}");
    }
    drop(run);
    let _ = std::fs::remove_dir_all(&data);
}

/// The shipped agent example declares with `scim-admin resource-type`, and scim-local serves it
/// at `/Agents` in the shape scim-sanity's agent checks send; the CLI lists and refuses to delete
/// a type that holds resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_example_declares_from_the_cli_and_is_served() {
    let data = std::env::temp_dir().join(format!("scim-local-agents-{}", scim_tests::uuid_like()));
    let _ = std::fs::remove_dir_all(&data);
    let (run, lines) = start(&data);
    let printed = |prefix: &str| lines.iter().find_map(|l| l.strip_prefix(prefix)).unwrap_or_default().to_string();
    let token = printed("SCIM_TOKEN=");
    drop(run);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/agents/agent-type.json");
    let example = example.to_str().expect("a path");
    let out = admin(&data, &["resource-type", "put", "--tenant", "local", "--name", "Agent", "--file", example]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("served at /Agents"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = admin(&data, &["resource-type", "list", "--tenant", "local"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Agent\t/Agents\t"), "{}", String::from_utf8_lossy(&out.stdout));

    let (run, lines) = start(&data);
    let base = lines.iter().find_map(|l| l.strip_prefix("SCIM_BASE_URL=")).expect("a base URL");
    let c = scim_tests::Client::new(base, &token);
    let agent = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Agent"], "name": "scim-sanity-test-agent-1",
        "displayName": "Test Agent", "active": true});
    let a = c.post("/Agents", &agent).await;
    assert_eq!((a.status, &a.body["meta"]["resourceType"]), (201, &json!("Agent")), "{}", a.raw);
    assert_eq!(a.header("etag"), a.body["meta"]["version"].as_str());
    let id = id_of(&a.body);
    let p = c
        .patch(
            &format!("/Agents/{id}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!((p.status, &p.body["active"]), (200, &json!(false)), "{}", p.raw);
    c.post("/Agents", &agent).await.assert_error(409, Some("uniqueness"));
    assert!(c.get("/ResourceTypes").await.raw.contains("\"/Agents\""));
    drop(run);
    let out = admin(&data, &["resource-type", "delete", "--tenant", "local", "--name", "Agent"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("1 resources"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&data);
}
