//! `byos serve` as the benchmarks run it: the release binary beside the example, started on a
//! free port with its log in a file, and the API calls that set it up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use uuid::Uuid;

/// The default byos binary: `target/<profile>/byos`, beside this example's `examples/` directory.
pub(crate) fn byos_beside_this_example() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile = exe.parent().and_then(Path::parent).context("this example is not in target/<profile>/examples")?;
    Ok(profile.join("byos"))
}

/// A running `byos serve`, its log in a file.
pub(crate) struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    /// When it said it was listening: its workers are running by then.
    pub(crate) listening: Instant,
}

impl Server {
    pub(crate) fn start(byos: &Path, dir: &Path, env: &[(&str, String)]) -> Result<Server> {
        let log = dir.join(format!("byos-{}.log", Uuid::new_v4().simple()));
        let mut command = Process::new(byos);
        // The benchmark's own environment must not leak into the server's configuration.
        for (key, _) in std::env::vars() {
            if key.starts_with("BYOS_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        let child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", byos.display()))?;
        let mut server = Server { child, base: String::new(), log, listening: Instant::now() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            if let Some(at) = text.find("listening on http://") {
                server.listening = Instant::now();
                let rest = &text[at + "listening on ".len()..];
                let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
                server.base = rest[..end].to_owned();
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("byos exited with {status} before listening:\n{text}");
            }
            ensure!(Instant::now() < deadline, "byos did not listen within 60 s:\n{text}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and the clean exit it must end in.
    pub(crate) async fn stop(mut self) -> Result<()> {
        let pid = self.child.id().to_string();
        let sent = Process::new("kill").args(["-TERM", &pid]).status()?;
        ensure!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "byos exited with {status}:\n{}", self.log());
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "byos did not stop within 60 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One API call as an operator's client makes it; an answer other than 2xx is an error.
pub(crate) async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| url.to_owned())?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "{url}: {status} {body}");
    Ok(body)
}

/// Polls `url` until `done` holds; `failed` ends the wait at once.
pub(crate) async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    done: impl Fn(&Value) -> bool,
    failed: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body = call(client, reqwest::Method::GET, url, token, None).await?;
        if done(&body) {
            return Ok(body);
        }
        ensure!(!failed(&body), "{url}: {body}");
        ensure!(Instant::now() < deadline, "{url}: still {body} after 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
