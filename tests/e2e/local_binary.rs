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
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        let l = line.trim().to_string();
        line.clear();
        let done = l.starts_with("SCIM_BASE_URL=");
        lines.push(l);
        if done {
            break;
        }
    }
    // the token line, when present, comes right after the URL line
    if let Ok(n) = reader.read_line(&mut line)
        && n > 0
    {
        lines.push(line.trim().to_string());
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
    let _ = std::fs::remove_dir_all(&data);
}
