//! Debian's headless Chromium, driven over the W3C WebDriver protocol by chromedriver, for the
//! console's end-to-end tests.
//!
//! The client is the dozen WebDriver calls the tests make, over the reqwest the workspace has:
//! fantoccini would bring Mozilla's `webdriver` crate and with it second copies of `http`,
//! `base64` and `thiserror` for what is a few JSON requests.
//!
//! Chromium starts as `test-peers.md` says (headless, no sandbox as root, no background
//! networking, a fresh profile) and only ever loads loopback pages. A missing browser is a loud
//! failure: `scripts/test` installs the Debian packages `chromium` and `chromium-driver`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{TempDir, free_port, temp_dir};

/// The WebDriver id of an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium and its chromedriver; both end when it drops.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    /// `http://127.0.0.1:{port}/session/{id}`.
    session: String,
    profile: TempDir,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

/// One line of the browser's console.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

fn binary(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium and chromium-driver (scripts/test does), or set {env}",
        path.display()
    );
    path
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a browser window of `width` x `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromium = binary("BYOS_TEST_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = binary("BYOS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port();
        let profile = temp_dir();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        let http = reqwest::Client::builder().no_proxy().build().unwrap_or_default();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args, "prefs": {
                "download.default_directory": profile.path().join("downloads"),
                "download.prompt_for_download": false,
            }},
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "dismiss",
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap_or_else(|e| panic!("new WebDriver session: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("new WebDriver session: {e}"));
        let id = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}"));
        let session = format!("{base}/session/{id}");
        Browser { driver, http, session, profile }
    }

    /// Where the browser saves what it downloads.
    pub fn downloads(&self) -> PathBuf {
        self.profile.path().join("downloads")
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("{url}: {e}"))?;
        if status.is_success() { Ok(body["value"].clone()) } else { Err(format!("{url}: {status}: {}", body["value"])) }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body)).await.unwrap_or_else(|e| panic!("{e}"))
    }

    async fn get(&self, path: &str) -> Value {
        self.command(reqwest::Method::GET, path, None).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Loads `url` (a loopback URL) and waits for the page's load event.
    pub async fn goto(&self, url: &str) {
        assert!(url.starts_with("http://127.0.0.1") || url.starts_with("http://localhost"), "loopback only: {url}");
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn back(&self) {
        self.post("/back", json!({})).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or_default().to_owned()
    }

    /// The first element `css` selects, once there is one (within 20 s).
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = self.try_find(css).await {
                return found;
            }
            if Instant::now() >= deadline {
                panic!("no element {css:?} on {}; the console says {:#?}", self.url().await, self.console_log().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The first element `css` selects now, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let body = json!({"using": "css selector", "value": css});
        let found = self.command(reqwest::Method::POST, "/element", Some(body)).await.ok()?;
        found[ELEMENT].as_str().map(|id| Element(id.to_owned()))
    }

    /// Every element `css` selects now.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.post("/elements", json!({"using": "css selector", "value": css})).await;
        found
            .as_array()
            .map(|all| all.iter().filter_map(|e| e[ELEMENT].as_str()).map(|id| Element(id.to_owned())).collect())
            .unwrap_or_default()
    }

    /// The element whose text is exactly `text` among those `css` selects, once there is one.
    pub async fn find_text(&self, css: &str, text: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for element in self.find_all(css).await {
                if self.text(&element).await.trim() == text {
                    return element;
                }
            }
            assert!(Instant::now() < deadline, "no {css:?} reads {text:?} on {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, element: &Element) {
        self.post(&format!("/element/{}/click", element.0), json!({})).await;
    }

    /// Types `text` into an input (for a file input: the files' paths, one per line).
    pub async fn type_into(&self, element: &Element, text: &str) {
        self.post(&format!("/element/{}/value", element.0), json!({ "text": text })).await;
    }

    /// Empties an input.
    pub async fn clear(&self, element: &Element) {
        self.post(&format!("/element/{}/clear", element.0), json!({})).await;
    }

    pub async fn text(&self, element: &Element) -> String {
        let text = self.command(reqwest::Method::GET, &format!("/element/{}/text", element.0), None).await;
        text.ok().and_then(|t| t.as_str().map(str::to_owned)).unwrap_or_default()
    }

    /// The page's visible text.
    pub async fn page_text(&self) -> String {
        let body = self.find("body").await;
        self.text(&body).await
    }

    /// Waits until the page's text contains `needle` (within 60 s); the text then.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.page_text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "the page never said {needle:?}; it says:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args })).await
    }

    /// Runs an async `script` whose last argument is the callback to call with the result.
    pub async fn execute_async(&self, script: &str, args: Value) -> Value {
        self.post("/execute/async", json!({ "script": script, "args": args })).await
    }

    /// Saves a PNG of the window.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot: {e}"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub async fn set_window_size(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({ "width": width, "height": height })).await;
    }

    /// The browser console's lines since the last call (chromedriver's log endpoint).
    pub async fn console_log(&self) -> Vec<LogLine> {
        let lines = self.post("/se/log", json!({ "type": "browser" })).await;
        lines
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|line| LogLine {
                        level: line["level"].as_str().unwrap_or_default().to_owned(),
                        message: line["message"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium (killing chromedriver would leave it running);
        // a plain blocking request, as no runtime may be left to drive reqwest.
        use std::io::{Read as _, Write as _};
        if let Some((host, path)) = self.session.strip_prefix("http://").and_then(|rest| rest.split_once('/'))
            && let Ok(mut stream) = std::net::TcpStream::connect(host)
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let request = format!("DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            if stream.write_all(request.as_bytes()).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
