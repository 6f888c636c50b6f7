//! The client commands as a person or a script runs them: `byos login`, `cp`, `ls`, `rm`, `mv`,
//! `credentials`, `exec` as processes, against `byos serve` on moto (behind the shim that lets
//! the SDK read moto's multipart answers) and on s3s-fs (which checks the signature of every
//! presigned request), with files compared byte for byte.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use byos_aws::{Aws, AwsSettings};
use byos_test_support::{
    EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY, Fault, FaultPlan, FaultProxy, Moto, MotoShim, S3sFs, TempDir,
    region, temp_dir,
};
use serde_json::{Value, json};

use crate::serve::{Server, call, read};

const REGION: &str = "eu-central-1";
const BUCKET: &str = "client-bucket";
const MIB: usize = 1024 * 1024;

/// The S3 a lab's server and client talk to.
enum Peer {
    /// moto behind the shim that lets the SDK read its multipart answers.
    Moto { _moto: Moto, shim: MotoShim },
    /// s3s-fs, which checks every signature: presigned URLs the server signed included.
    S3sFs(S3sFs),
    /// moto behind a proxy that fails some of the calls of the server and the client alike.
    Faulty { _moto: Moto, proxy: FaultProxy },
}

impl Peer {
    fn url(&self) -> &str {
        match self {
            Peer::Moto { shim, .. } => shim.url(),
            Peer::S3sFs(s3) => s3.url(),
            Peer::Faulty { proxy, .. } => proxy.url(),
        }
    }
}

/// A server with a ready configuration and the project `study`, and a client home.
struct Lab {
    peer: Peer,
    server: Server,
    token: String,
    project: String,
    /// The client's `XDG_CONFIG_HOME` and working folder.
    home: TempDir,
    dir: TempDir,
    /// The server's environment, to start it again.
    env: Vec<(String, String)>,
}

impl Lab {
    /// On moto: the configuration validated and provisioned for real.
    async fn new() -> Lab {
        Lab::with_env(&[]).await
    }

    /// On moto, the server with `extra` in its environment.
    async fn with_env(extra: &[(&str, &str)]) -> Lab {
        let moto = Moto::start();
        let shim = MotoShim::start(&moto).await;
        Lab::build(Peer::Moto { _moto: moto, shim }, "testing", "testing", extra).await
    }

    /// On moto behind a proxy that fails calls as `plan` says, from the start.
    async fn through_faults(plan: FaultPlan) -> Lab {
        let moto = Moto::start();
        let proxy = FaultProxy::start(moto.url(), plan, 0xFA17).await;
        Lab::build(Peer::Faulty { _moto: moto, proxy }, "testing", "testing", &[]).await
    }

    /// Kills the server with SIGKILL and starts it again on its data directory.
    fn restart(&mut self) {
        self.server.kill();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.server = Server::start(self.dir.path(), &env, &[]);
    }

    /// On s3s-fs, which has no notifications: the configuration's failed validation is
    /// overwritten with a ready one in the store, and nothing validates it again during the
    /// test. Every transfer's signature is checked.
    async fn on_s3s_fs() -> Lab {
        let s3 = S3sFs::start(EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY);
        Lab::build(Peer::S3sFs(s3), EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY, &[]).await
    }

    async fn build(peer: Peer, access_key_id: &str, secret: &str, extra: &[(&str, &str)]) -> Lab {
        let aws = Aws::new(&AwsSettings {
            endpoint_url: Some(peer.url().to_owned()),
            static_credentials: Some((access_key_id.to_owned(), secret.to_owned())),
            profile: None,
            sts_endpoint_url: None,
        })
        .await;
        aws.setup(&region(REGION)).create_bucket(BUCKET).await.unwrap();
        let dir = temp_dir();
        let mut env = vec![
            ("BYOS__AWS__ENDPOINT_URL", peer.url()),
            ("BYOS__LIFECYCLE__REVERIFY_INTERVAL_SECONDS", "86400"),
            ("BYOS__LIFECYCLE__RETRY_BASE_SECONDS", "86400"),
            ("AWS_ACCESS_KEY_ID", access_key_id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        env.extend_from_slice(extra);
        let server = Server::start(dir.path(), &env, &[]);
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let token = read(&dir.path().join("data/admin-token")).trim().to_owned();
        // moto takes any key; s3s-fs only its own.
        let stored_secret = if secret.len() < 16 { EXAMPLE_SECRET_ACCESS_KEY } else { secret };
        let mut lab = Lab { peer, server, token, project: String::new(), home: temp_dir(), dir, env };
        let credential = lab
            .post(
                "/api/v1/storage-credentials",
                json!({"name": "key", "type": "aws-user", "accessKeyId": EXAMPLE_ACCESS_KEY_ID,
                       "secretAccessKey": stored_secret}),
            )
            .await;
        let configuration = lab
            .post(
                "/api/v1/storage-configurations",
                json!({"name": "lab", "region": REGION, "bucket": BUCKET, "keyPrefix": "data/",
                       "credentialId": credential["id"]}),
            )
            .await;
        let id = configuration["id"].as_str().unwrap().to_owned();
        let settled = lab.wait_for_validation(&id).await;
        if matches!(lab.peer, Peer::S3sFs(_)) {
            assert_eq!(settled, "error", "s3s-fs has no notifications to provision");
            let store = crate::sync::open_store(lab.dir.path()).await;
            let ready = byos_test_support::validation_outcome(byos_domain::ConfigurationStatus::Ready);
            store.configurations.record_validation(uuid::Uuid::parse_str(&id).unwrap(), &ready).await.unwrap();
            store.close().await;
        } else {
            assert_eq!(settled, "ready");
        }
        let created = lab
            .post(
                "/api/v1/projects",
                json!({"name": "study", "region": REGION, "storageConfigurationId": id, "folder": "study"}),
            )
            .await;
        lab.project = created["id"].as_str().unwrap().to_owned();
        lab
    }

    /// Waits for the first validation to end; its status.
    async fn wait_for_validation(&self, id: &str) -> String {
        let path = format!("/api/v1/storage-configurations/{id}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, body) = call(reqwest::Method::GET, &self.server.url(&path), &self.token, None).await;
            if body["status"] != "initializing" {
                return body["status"].as_str().unwrap_or_default().to_owned();
            }
            assert!(Instant::now() < deadline, "the configuration was not validated: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, reply) = call(reqwest::Method::POST, &self.server.url(path), &self.token, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {reply}\n{}", self.server.output());
        reply
    }

    /// A member token with `grants`.
    async fn member(&self, grants: Value) -> String {
        let reply = self.post("/api/v1/tokens", json!({"name": "member", "role": "member", "projects": grants})).await;
        reply["value"].as_str().unwrap().to_owned()
    }

    /// `byos ARGS` as the logged-in client, in the client's home folder.
    fn byos(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_byos"));
        for (key, _) in std::env::vars() {
            if key.starts_with("BYOS_") || key.starts_with("AWS_") {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .current_dir(self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("HOME", self.home.path())
            .stdin(Stdio::null());
        command
    }

    /// Runs `byos ARGS`; its output, whatever its exit code.
    fn run(&self, args: &[&str]) -> Output {
        self.byos(args).output().unwrap_or_else(|e| panic!("byos {args:?}: {e}"))
    }

    /// Runs `byos ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(output.status.success(), "byos {args:?}: {}\n{}", output.status, text(&output.stderr));
        text(&output.stdout)
    }

    /// `byos login` with `token` on standard input.
    fn login(&self, token: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .byos(&["login", "--server", &self.server.url("")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{token}\n").as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.home.path().join(relative)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Bytes that differ from file to file and from offset to offset.
fn content(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Every file below `root`, by its `/`-separated path, with its bytes.
fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut found = std::collections::BTreeMap::new();
    let mut folders = vec![root.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                found.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

/// JSON Lines: one value per line.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// Login; a tree of 200 files (three of 20 MiB, in parts) up with `cp -r`, listed with `ls`,
/// down again byte-exact; filters and a dry run print exactly the planned files and move none;
/// `rm -r` and `mv`; `--output json` parses for each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_goes_up_and_comes_down_byte_exact() {
    let lab = Lab::new().await;
    let login = lab.login(&lab.token);
    assert!(login.status.success(), "{}", text(&login.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let config = lab.path("config/byos/config.toml");
        let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the token is kept private");
    }
    let bad = lab.login("byos_not_a_token");
    assert_eq!(bad.status.code(), Some(1), "a wrong token is refused: {}", text(&bad.stderr));

    let local = lab.path("run42");
    for i in 0..197 {
        write(&local.join(format!("lane-{}/sample-{i:03}.csv", i % 4)), &content(1000 + i * 37, i));
    }
    for i in 0..3 {
        write(&local.join(format!("big/reads-{i}.bam")), &content(20 * MIB + i * 4099, 1000 + i));
    }
    let up =
        lab.ok(&["cp", "-r", "run42/", "study:/in/", "--part-size", "5MiB", "--concurrency", "8", "--output", "json"]);
    let summary: Value = serde_json::from_str(&up).unwrap();
    assert_eq!((summary["files"].clone(), summary["failed"].clone()), (json!(200), json!([])), "{summary}");

    let listed = json_lines(&lab.ok(&["ls", "-R", "study:/in/", "--output", "json"]));
    let mut paths: Vec<String> = listed.iter().map(|e| e["path"].as_str().unwrap().to_owned()).collect();
    paths.sort();
    let mut want: Vec<String> = tree(&local).keys().map(|k| format!("/in/{k}")).collect();
    want.sort();
    assert_eq!(paths, want, "every file shows in the listing, in its folder");
    let names = lab.ok(&["ls", "study:/in/"]);
    assert_eq!(names.lines().collect::<Vec<_>>(), ["big/", "lane-0/", "lane-1/", "lane-2/", "lane-3/"]);

    lab.ok(&["cp", "-r", "study:/in/", "down/", "--part-size", "5MiB"]);
    assert!(tree(&lab.path("down")) == tree(&local), "the tree came down byte-exact");
    // Down again: every file exists, and nothing says to replace it. Each is refused, and none
    // is touched or leaves a temporary file behind; with --overwrite each is replaced.
    std::fs::write(lab.path("down/lane-0/sample-000.csv"), b"changed here").unwrap();
    let refused = lab.run(&["cp", "-r", "study:/in/lane-0/", "down/lane-0/", "--output", "json"]);
    assert_eq!(refused.status.code(), Some(3), "partial: {}", text(&refused.stderr));
    let refused: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(refused["failed"].as_array().map(Vec::len), Some(50), "{refused}");
    assert_eq!(refused["failed"][0]["code"], json!("file-exists"), "{refused}");
    let mut changed = tree(&local);
    changed.insert("lane-0/sample-000.csv".to_owned(), b"changed here".to_vec());
    assert!(tree(&lab.path("down")) == changed, "the refused files stay as they were");
    lab.ok(&["cp", "-r", "study:/in/lane-0/", "down/lane-0/", "--overwrite"]);
    assert!(tree(&lab.path("down")) == tree(&local), "replaced with --overwrite");

    // Again: every file exists now, and nothing says to replace it.
    let again = lab.run(&["cp", "-r", "run42/lane-0/", "study:/in/lane-0/", "--output", "json"]);
    assert_eq!(again.status.code(), Some(3), "partial: {}", text(&again.stderr));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["failed"].as_array().map(Vec::len), Some(50), "{again}");
    assert_eq!(again["failed"][0]["code"], json!("file-exists"), "{again}");
    let skipped = lab.ok(&["cp", "-r", "run42/lane-0/", "study:/in/lane-0/", "--no-clobber", "--output", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&skipped).unwrap()["skipped"], json!(50));

    let planned = lab.ok(&[
        "cp",
        "-r",
        "run42/",
        "study:/other/",
        "--include",
        "lane-1/*",
        "--exclude",
        "*-00?.csv",
        "--dry-run",
    ]);
    let planned: Vec<&str> = planned.lines().collect();
    let expected: Vec<String> = tree(&local)
        .keys()
        .filter(|k| k.starts_with("lane-1/") && !k.contains("-00"))
        .map(|k| format!("(dry run) upload run42/{k} -> /other/{k}"))
        .collect();
    assert_eq!(planned, expected, "exactly the planned files");
    let nothing = lab.run(&["ls", "study:/other/"]);
    assert!(!nothing.status.success(), "a dry run moves nothing");

    let removed = lab.ok(&["rm", "-r", "study:/in/lane-3/", "--output", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&removed).unwrap()["status"], json!("succeeded"), "{removed}");
    let moved = lab.ok(&["mv", "study:/in/big/reads-0.bam", "study:/in/reads.bam", "--output", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&moved).unwrap()["path"], json!("/in/reads.bam"));
    let names = lab.ok(&["ls", "study:/in/"]);
    assert_eq!(names.lines().collect::<Vec<_>>(), ["big/", "lane-0/", "lane-1/", "lane-2/", "reads.bam"]);
    let projects: Value = serde_json::from_str(&lab.ok(&["projects", "ls", "--output", "json"])).unwrap();
    assert_eq!(projects[0]["id"], json!(lab.project));
    let jobs: Value = serde_json::from_str(&lab.ok(&["jobs", "ls", "--output", "json"])).unwrap();
    assert_eq!(jobs[0]["type"], json!("delete-folder"), "{jobs}");
}

/// A tenth of every call to the storage fails (the server's and the client's presigned ones:
/// 503 SlowDown, 500 InternalError, resets before and after the call, answers cut short,
/// latency): a tree of small files and files in parts goes up and comes down byte-exact, each
/// file once, and the faults were met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_through_failing_storage_arrive_byte_exact() {
    let lab = Lab::through_faults(FaultPlan::every_call(0.1, Fault::all())).await;
    assert!(lab.login(&lab.token).status.success());
    let local = lab.path("faulty");
    for i in 0..60 {
        write(&local.join(format!("lane-{}/sample-{i:03}.csv", i % 3)), &content(1000 + i * 41, i));
    }
    for i in 0..2 {
        write(&local.join(format!("big/reads-{i}.bam")), &content(12 * MIB + i * 4099, 2000 + i));
    }
    let up = lab.ok(&["cp", "-r", "faulty/", "study:/in/", "--part-size", "5MiB", "--output", "json"]);
    let summary: Value = serde_json::from_str(&up).unwrap();
    assert_eq!((summary["files"].clone(), summary["failed"].clone()), (json!(62), json!([])), "{summary}");
    lab.ok(&["cp", "-r", "study:/in/", "down/", "--part-size", "5MiB"]);
    assert!(tree(&lab.path("down")) == tree(&local), "the tree came down byte-exact");
    let Peer::Faulty { proxy, .. } = &lab.peer else { unreachable!("a faulty lab") };
    let injected = proxy.injected();
    assert!(injected.faults >= 10 && injected.faults * 20 >= injected.calls, "{injected:?}");
}

/// A client killed in the middle of a multipart upload: the next `cp` of the same file
/// continues the open upload (it is completed, not left open beside a new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_upload_resumes() {
    let lab = Lab::new().await;
    assert!(lab.login(&lab.token).status.success());
    // Sixteen parts sent one at a time: time enough to see two arrive, on any machine.
    let bytes = content(80 * MIB + 123, 5);
    write(&lab.path("big.bin"), &bytes);
    let uploads = lab.server.url(&format!("/api/v1/projects/{}/uploads", lab.project));
    let mut client = lab
        .byos(&["cp", "big.bin", "study:/big.bin", "--part-size", "5MiB", "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once S3 holds two parts of the seventeen.
    let deadline = Instant::now() + Duration::from_secs(300);
    let id = loop {
        let (_, open) = call(reqwest::Method::GET, &uploads, &lab.token, None).await;
        if let Some(id) = open["items"][0]["id"].as_str() {
            let (_, upload) = call(reqwest::Method::GET, &format!("{uploads}/{id}"), &lab.token, None).await;
            if upload["parts"].as_array().is_some_and(|p| p.len() >= 2) {
                break id.to_owned();
            }
        }
        assert!(client.try_wait().unwrap().is_none(), "the upload ended before it could be interrupted");
        assert!(Instant::now() < deadline, "no parts within 300 s: {open}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    client.kill().unwrap();
    client.wait().unwrap();
    let (_, open) = call(reqwest::Method::GET, &format!("{uploads}/{id}"), &lab.token, None).await;
    assert_ne!(open["parts"].as_array().map(Vec::len), Some(17), "interrupted before the end: {open}");

    lab.ok(&["cp", "big.bin", "study:/big.bin", "--part-size", "5MiB"]);
    let (_, open) = call(reqwest::Method::GET, &uploads, &lab.token, None).await;
    assert_eq!(open["items"], json!([]), "the interrupted upload was the one completed");
    lab.ok(&["cp", "study:/big.bin", "back.bin"]);
    assert!(std::fs::read(lab.path("back.bin")).unwrap() == bytes, "byte-exact");
}

/// Access: a `read` member's upload is refused before any byte moves (the catalogue's message),
/// a token without the project gets the API's 404, the exit codes say which is which, and the
/// scoped credentials work for the AWS CLI and `exec` passes exit codes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_credentials_and_exit_codes() {
    let lab = Lab::new().await;
    write(&lab.path("a.txt"), b"hello");
    let reader = lab.member(json!([{"id": lab.project, "access": "read"}])).await;
    assert!(lab.login(&reader).status.success());
    let refused = lab.run(&["cp", "a.txt", "study:/a.txt"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(stderr.contains("read-write") && stderr.contains("fix:"), "{stderr}");
    assert_eq!(lab.ok(&["ls", "-R", "study:/"]), "", "nothing was uploaded; the reader may list");

    let outsider = lab.member(json!([])).await;
    assert!(lab.login(&outsider).status.success());
    for target in ["study:/", &format!("{}:/", lab.project)] {
        let hidden = lab.run(&["ls", target]);
        assert_eq!(hidden.status.code(), Some(1));
        assert!(text(&hidden.stderr).contains("does not exist"), "{}", text(&hidden.stderr));
    }

    assert!(lab.login(&lab.token).status.success());
    lab.ok(&["cp", "a.txt", "study:/in/a.txt"]);
    let code = lab.run(&["exec", "study", "--", "sh", "-c", "test -n \"$AWS_SESSION_TOKEN\" && exit 7"]);
    assert_eq!(code.status.code(), Some(7), "exec passes the exit code through: {}", text(&code.stderr));
    let usage = lab.run(&["cp", "study:/in/a.txt", "study:/b.txt"]);
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage.stderr));

    let lines = lab.ok(&["credentials", "study", "--format", "env"]);
    let mut aws = Command::new(std::env::var("BYOS_TEST_AWS_CLI").expect("BYOS_TEST_AWS_CLI: run scripts/test"));
    for line in lines.lines().filter_map(|l| l.strip_prefix("export ")) {
        let (key, value) = line.split_once('=').unwrap();
        aws.env(key, value);
    }
    let listed = aws
        .args(["s3", "ls", "--recursive", "--endpoint-url", lab.peer.url(), &format!("s3://{BUCKET}/data/study/")])
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains("data/study/in/a.txt"), "{}", text(&listed.stdout));
    let json: Value = serde_json::from_str(&lab.ok(&["credentials", "study", "--output", "json"])).unwrap();
    assert!(json["accessKeyId"].is_string() && json["sessionToken"].is_string(), "{json}");
}

/// On s3s-fs, which checks every signature: a tree with a multipart file goes up and comes down
/// through URLs the server presigned, byte-exact; a tampered URL is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_hold_on_s3s_fs() {
    let lab = Lab::on_s3s_fs().await;
    assert!(lab.login(&lab.token).status.success());
    let local = lab.path("run7");
    write(&local.join("big.bin"), &content(12 * MIB + 5, 3));
    for i in 0..20 {
        write(&local.join(format!("small/{i:02}.txt")), &content(100 + i * 1000, i));
    }
    lab.ok(&["cp", "-r", "run7/", "study:/run7/", "--part-size", "5MiB"]);
    lab.ok(&["cp", "-r", "study:/run7/", "back/", "--part-size", "5MiB"]);
    assert!(tree(&lab.path("back")) == tree(&local), "byte-exact through signed URLs");

    let reply = lab
        .post(&format!("/api/v1/projects/{}/data/download-url", lab.project), json!({"path": "/run7/big.bin"}))
        .await;
    let url = reply["url"].as_str().unwrap().to_owned();
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &url[at..=at] == "0" { "1" } else { "0" };
    let url = format!("{}{flipped}{}", &url[..at], &url[at + 1..]);
    let refused = reqwest::Client::new().get(url).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 403, "s3s-fs checks signatures");
}

/// The other commands, as a script runs them: each answers JSON that parses, or fails with the
/// catalogue's message and exit code 1; an AWS profile is written beside the others; logout
/// forgets the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_json_or_a_catalogue_error() {
    let lab = Lab::new().await;
    assert!(lab.login(&lab.token).status.success());
    let json = |args: &[&str]| -> Value {
        let mut with = args.to_vec();
        with.extend(["--output", "json"]);
        let out = lab.ok(&with);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("byos {args:?}: {e}: {out}"))
    };
    assert_eq!(json(&["mkdir", "study:/made"])["path"], json!("/made/"));
    write(&lab.path("notes.txt"), b"v1");
    lab.ok(&["cp", "notes.txt", "study:/made/notes.txt"]);
    // The lab's bucket is unversioned: versions are refused with the catalogue's fix.
    let versions = lab.run(&["versions", "study:/made/notes.txt"]);
    assert_eq!(versions.status.code(), Some(1));
    assert!(text(&versions.stderr).contains("fix: Versions, restores of versions and undeletes need S3 versioning"));
    assert_eq!(json(&["projects", "show", "study"])["id"], json!(lab.project));
    let configurations = json(&["configs", "ls"]);
    assert_eq!(configurations[0]["status"], json!("ready"), "{configurations}");
    let shown = json(&["configs", "show", "lab"]);
    assert_eq!(shown["validation"]["checks"].as_array().map(Vec::len), Some(15), "{shown}");
    let validated = lab.run(&["configs", "validate", "lab"]);
    assert!(validated.status.success(), "{}{}", text(&validated.stdout), text(&validated.stderr));
    assert!(text(&validated.stdout).contains("bucket-exists"), "the report as a table");
    // The lab's bucket has no CORS rule: advice, with its fix under the table.
    assert!(text(&validated.stdout).contains("cors-allows-console-origin: fix: Add the console's CORS rule"));

    lab.ok(&["cp", "notes.txt", "study:/made/more/notes.txt"]);
    let job = json(&["rm", "-r", "study:/made/more/", "--no-wait"]);
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(json(&["jobs", "wait", &id])["status"], json!("succeeded"));
    assert_eq!(json(&["jobs", "show", &id])["type"], json!("delete-folder"));

    let archived = lab.run(&["archive-restore", "study:/made/notes.txt", "--days", "2"]);
    assert_eq!(archived.status.code(), Some(1));
    assert!(text(&archived.stderr).contains("fix:"), "{}", text(&archived.stderr));
    let undelete = lab.run(&["undelete", "study:/made/notes.txt"]);
    assert_eq!(undelete.status.code(), Some(1), "{}", text(&undelete.stderr));
    let missing = lab.run(&["restore-version", "study:/made/notes.txt", "no-such-version"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing.stderr));

    std::fs::create_dir_all(lab.path(".aws")).unwrap();
    std::fs::write(lab.path(".aws/credentials"), "[default]\naws_access_key_id = MINE\n").unwrap();
    lab.ok(&["credentials", "study", "--format", "aws-profile", "--aws-profile", "study"]);
    let written = std::fs::read_to_string(lab.path(".aws/credentials")).unwrap();
    assert!(written.starts_with("[default]\naws_access_key_id = MINE\n"), "{written}");
    assert!(written.contains("[study]\naws_access_key_id = ") && written.contains("aws_session_token = "), "{written}");

    // The audit log, as an admin reads it: the folder made above, by whom, from where, with the
    // request id the server's log lines carry.
    let events = json_lines(&lab.ok(&["audit", "--action", "create_folder", "--output", "json"]));
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(
        (&event["outcome"], &event["target"]),
        (&json!("succeeded"), &json!(format!("/api/v1/projects/{}/folders", lab.project)))
    );
    assert_eq!(
        (&event["sourceIp"], &event["userAgent"]),
        (&json!("127.0.0.1"), &json!(concat!("byos/", env!("CARGO_PKG_VERSION"))))
    );
    let request = format!("request{{id={}}}", event["requestId"].as_str().unwrap());
    // Without a terminal, the log has no colour codes to break the line up.
    assert!(lab.server.output().contains(&request), "no log line of {request}");
    let table = lab.ok(&["audit", "-n", "2"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two changes: {table}");
    assert!(lines[0].starts_with("TIME") && lines[1].contains("succeeded (2"), "{table}");

    lab.ok(&["logout"]);
    let out = lab.run(&["projects", "ls"]);
    assert_eq!(out.status.code(), Some(2), "not logged in is a usage error: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("byos login"), "{}", text(&out.stderr));
}

/// A copy job between two projects, killed with SIGKILL part-way and taken up by the next
/// start: it ends with every object copied, and none of those it recorded before the kill
/// copied again (their copies are older than the restart). Then `byos cp -r` between projects
/// (a folder's contents into a folder, as `aws s3 cp --recursive`), a dry run that prints its
/// plan, the report as CSV, and `byos mv` into another project.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_between_projects_survives_a_kill() {
    // 40 objects a second: the job runs for several seconds, time to kill it on any machine.
    let mut lab = Lab::with_env(&[("BYOS__JOBS__OBJECTS_PER_SECOND", "40")]).await;
    assert!(lab.login(&lab.token).status.success());
    for i in 0..300 {
        write(&lab.path(&format!("run/lane-{}/read-{i:03}.txt", i % 3)), &content(100 + i, i));
    }
    lab.ok(&["cp", "-r", "run", "study:/run/"]);
    let configuration =
        call(reqwest::Method::GET, &lab.server.url(&format!("/api/v1/projects/{}", lab.project)), &lab.token, None)
            .await
            .1;
    let created = lab
        .post(
            "/api/v1/projects",
            json!({"name": "archive", "region": REGION, "folder": "archive",
                   "storageConfigurationId": configuration["storageConfigurationId"]}),
        )
        .await;
    let archive = created["id"].as_str().unwrap().to_owned();

    let job = lab
        .post(
            "/api/v1/jobs",
            json!({"type": "copy", "source": {"projectId": lab.project, "paths": ["/run/"]},
                   "destination": {"projectId": archive, "path": "/kept/"}}),
        )
        .await;
    let job_path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let done_before = loop {
        let (_, now) = call(reqwest::Method::GET, &lab.server.url(&job_path), &lab.token, None).await;
        let done = now["progress"]["objectsDone"].as_u64().unwrap_or_default();
        if done >= 40 {
            break done;
        }
        assert!(now["status"] == "running" || now["status"] == "queued", "ended before the kill: {now}");
        assert!(Instant::now() < deadline, "no progress: {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    lab.server.kill();
    // The copies made before the kill are older than this, to S3's second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let restarted_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    lab.restart();
    let deadline = Instant::now() + Duration::from_secs(120);
    let ended = loop {
        let (_, now) = call(reqwest::Method::GET, &lab.server.url(&job_path), &lab.token, None).await;
        if now["status"] == "succeeded" || now["status"] == "failed" {
            break now;
        }
        assert!(Instant::now() < deadline, "the job was not taken up again: {now}\n{}", lab.server.output());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["progress"]["objectsDone"], 300, "{ended}");
    let aws = Aws::new(&AwsSettings {
        endpoint_url: Some(lab.peer.url().to_owned()),
        static_credentials: Some(("testing".to_owned(), "testing".to_owned())),
        profile: None,
        sts_endpoint_url: None,
    })
    .await;
    let bucket = aws.own_bucket_access(&region(REGION));
    let mut copies = Vec::new();
    let mut marker = None;
    loop {
        let page = bucket.list_objects_page(BUCKET, "data/archive/kept/", marker.as_ref(), 1000).await.unwrap();
        copies.extend(page.entries);
        marker = page.next;
        if marker.is_none() {
            break;
        }
    }
    assert_eq!(copies.len(), 300);
    let older = copies.iter().filter(|c| c.last_modified_ms < restarted_ms).count() as u64;
    assert!(
        older >= done_before,
        "{done_before} objects were recorded copied before the kill, only {older} copies predate the restart"
    );

    // The client: a folder's contents into a folder, with a dry run first.
    assert!(lab.login(&lab.token).status.success(), "the server moved to another port");
    let plan = lab.ok(&["cp", "-r", "--dry-run", "--include", "lane-1/*", "study:/run/", "archive:/in/"]);
    let planned: Vec<&str> = plan.lines().filter(|l| l.starts_with("planned")).collect();
    assert_eq!(planned.len(), 100, "{plan}");
    assert!(planned[0].ends_with("/run/lane-1/read-001.txt -> /in/lane-1/read-001.txt"), "{plan}");
    lab.ok(&["cp", "-r", "study:/run/", "archive:/in/"]);
    let listed = lab.ok(&["ls", "-R", "archive:/in/"]);
    assert_eq!(listed.lines().count(), 300, "{listed}");
    assert!(listed.lines().any(|l| l == "/in/lane-2/read-299.txt"), "{listed}");
    let jobs = lab.ok(&["jobs", "ls", "--project", "archive", "--output", "json"]);
    let jobs: Value = serde_json::from_str(&jobs).unwrap();
    let newest = jobs[0]["id"].as_str().unwrap();
    let csv = lab.ok(&["jobs", "report", newest, "--csv"]);
    assert!(csv.starts_with("source,versionId,destination,bytes,result,error\r\n"), "{csv}");
    assert_eq!(csv.lines().filter(|l| l.ends_with(",copied,")).count(), 300, "{csv}");

    // A move into another project takes the folder itself, and its sources go.
    lab.ok(&["mv", "study:/run/lane-0/", "archive:/moved/"]);
    assert_eq!(lab.ok(&["ls", "-R", "archive:/moved/"]).lines().count(), 100);
    let left = lab.run(&["ls", "study:/run/lane-0/"]);
    assert!(!left.status.success(), "the moved folder is gone: {}", text(&left.stdout));
    let refused = lab.run(&["cp", "study:/run/lane-1/read-001.txt", "archive:/renamed.txt"]);
    assert!(text(&refused.stderr).contains("keeps each file's name"), "{}", text(&refused.stderr));
}

/// Completing an upload in parts whose answer is lost half the time, after S3 did it or before
/// it arrived (the SDK does not send it again once it may have arrived): the server finds out
/// from the object, or completes it again, and every file arrives, byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_completion_answer_is_lost_still_completes() {
    let plan = FaultPlan {
        rate: 0.5,
        faults: vec![Fault::ResetAfter, Fault::ResetBefore],
        only: std::sync::Arc::new(|call| call.operation.starts_with("POST object uploadId")),
    };
    let lab = Lab::through_faults(plan).await;
    assert!(lab.login(&lab.token).status.success());
    let local = lab.path("parts");
    for i in 0..6 {
        write(&local.join(format!("reads-{i}.bam")), &content(11 * MIB + i * 4099, 3000 + i));
    }
    let up = lab.ok(&["cp", "-r", "parts/", "study:/in/", "--part-size", "5MiB", "--output", "json"]);
    let summary: Value = serde_json::from_str(&up).unwrap();
    assert_eq!((summary["files"].clone(), summary["failed"].clone()), (json!(6), json!([])), "{summary}");
    let Peer::Faulty { proxy, .. } = &lab.peer else { unreachable!("a faulty lab") };
    assert!(proxy.injected().faults >= 2, "{:?}", proxy.injected());
    lab.ok(&["cp", "-r", "study:/in/", "down/"]);
    assert!(tree(&lab.path("down")) == tree(&local), "the files came down byte-exact");
}
