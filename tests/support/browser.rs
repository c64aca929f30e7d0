//! A headless Chromium driven over the W3C WebDriver protocol (Debian's `chromium` and
//! `chromium-driver`; `scripts/test` installs them when missing). No browser library: the
//! protocol is JSON over HTTP, spoken with the same hyper client as the SCIM tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver with one browser session; both end when this is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: HyperClient<HttpConnector, Full<Bytes>>,
    profile: std::path::PathBuf,
}

/// Where the browser and its driver are, when installed.
pub fn installed() -> Option<(String, String)> {
    let find = |names: &[&str]| names.iter().map(std::path::PathBuf::from).find(|p| p.exists()).map(|p| p.display().to_string());
    Some((find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])?, find(&["/usr/bin/chromedriver"])?))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium `width` pixels wide.
    pub async fn start(width: u32) -> Browser {
        let (chromium, chromedriver) =
            installed().expect("chromium and chromedriver (apt-get install chromium chromium-driver; scripts/test does)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = HyperClient::builder(TokioExecutor::new()).build_http();
        let profile = std::env::temp_dir().join(format!("scim-chromium-{}", crate::uuid_like()));
        let mut b = Browser { driver, base: format!("http://127.0.0.1:{port}"), session: String::new(), http, profile };
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.call("GET", "/status", None).await.get("value").and_then(|v| v.get("ready")) != Some(&json!(true)) {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // the flags a closed network and a root user need (no sandbox, no background traffic)
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--window-size={width},1400"),
            format!("--user-data-dir={}", b.profile.display()),
        ];
        // a desktop window is at least 500 px wide; narrower screens need the device emulation
        let mut options = json!({"binary": chromium, "args": args});
        if width < 500 {
            options["mobileEmulation"] = json!({"deviceMetrics": {"width": width, "height": 740, "pixelRatio": 1.0}});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}});
        let r = b.call("POST", "/session", Some(caps)).await;
        b.session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no browser session: {r}")).to_string();
        b
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
            .expect("request");
        match self.http.request(req).await {
            Ok(resp) => {
                let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            }
            Err(_) => Value::Null,
        }
    }

    async fn session(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.call(method, &format!("/session/{}{path}", self.session), body).await;
        if let Some(err) = r["value"]["error"].as_str() {
            panic!("webdriver {method} {path}: {err}: {}", r["value"]["message"]);
        }
        r["value"].clone()
    }

    /// Opens a URL.
    pub async fn open(&self, url: &str) {
        self.session("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// Runs JavaScript in the page and returns its value.
    pub async fn script(&self, js: &str) -> Value {
        self.session("POST", "/execute/sync", Some(json!({"script": js, "args": []}))).await
    }

    /// Waits until a JavaScript expression is true (panics naming it after `secs`).
    pub async fn wait_for(&self, expr: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.script(&format!("return !!({expr});")).await == json!(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for: {expr}\npage: {}",
                self.script("return document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let v = self.session("POST", "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    /// Clicks the element a CSS selector names (a real click: the page must show it).
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.session("POST", &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    /// Types into the element a CSS selector names.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.session("POST", &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    /// Presses Tab `n` times and returns the id of the focused element.
    pub async fn tab(&self, n: usize) -> String {
        let keys: Vec<Value> =
            (0..n).flat_map(|_| [json!({"type": "keyDown", "value": "\u{E004}"}), json!({"type": "keyUp", "value": "\u{E004}"})]).collect();
        self.session("POST", "/actions", Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": keys}]}))).await;
        self.script("return document.activeElement && (document.activeElement.id || document.activeElement.textContent)")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Accepts the page's `confirm()` dialog.
    pub async fn accept_dialog(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = self.call("POST", &format!("/session/{}/alert/accept", self.session), Some(json!({}))).await;
            if r["value"].is_null() || r["value"]["error"].is_null() {
                return;
            }
            assert!(Instant::now() < deadline, "no dialog to accept: {r}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the window.
    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let b64 = self.session("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap_or_default()).expect("png");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("screenshot");
    }
}

impl Browser {
    /// Ends the browser session (the browser exits), then the driver.
    pub async fn close(self) {
        self.call("DELETE", &format!("/session/{}", self.session), None).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
