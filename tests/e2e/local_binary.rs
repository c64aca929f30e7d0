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
        .args(["--port", "0", "--data-dir"])
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
    let guard = Running(child);
    let link_secret = portal.trim().split_once('#').map(|(_, s)| s.to_string()).expect("a setup link");
    let base = url.trim().strip_prefix("SCIM_BASE_URL=").expect("url").to_string();
    let token = tok.trim().strip_prefix("SCIM_TOKEN=").expect("token").to_string();
    let secret = token.rsplit_once('_').map(|(_, s)| s.to_string()).expect("secret part");
    let key_id = token.split('_').nth(1).expect("key id").to_string();
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
            assert!(!bytes.contains(&secret) && !bytes.contains(password), "{} holds a secret", p.display());
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
