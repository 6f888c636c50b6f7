//! `Api`: the byos REST API as typed calls. Each resource keeps the fields the client reads,
//! and every other field of the server's answer in `rest`, so that printing it as JSON shows
//! the server's object as the OpenAPI document describes it, not a subset.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ClientError, Problem};

/// What a query value keeps as it is: RFC 3986's unreserved characters, and `/`, which paths
/// are made of.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

/// The other fields of a resource, kept as the server sent them.
pub type Rest = Map<String, Value>;

/// A project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A storage configuration with its last validation report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub id: String,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub validation: Option<Validation>,
    #[serde(default)]
    pub error: Option<Problem>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    pub checked_at: String,
    pub checks: Vec<Check>,
}

/// One named check of a validation: `passed`, `failed` or `skipped`, with its detail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    pub name: String,
    pub result: String,
    pub detail: String,
    /// For a failed check: what to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A file or folder of a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub name: String,
    /// The path in the project: `/a/b.txt`, or `/a/` for a folder.
    pub path: String,
    /// `file` or `folder`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub e_tag: Option<String>,
    #[serde(default)]
    pub last_modified: Option<String>,
    #[serde(default)]
    pub storage_class: Option<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl Entry {
    pub fn is_folder(&self) -> bool {
        self.kind == "folder"
    }
}

/// A page of a folder's children.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub items: Vec<Entry>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// One event of the audit log: a state-changing call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: String,
    pub at: String,
    pub actor: AuditActor,
    pub action: String,
    pub target: String,
    /// `succeeded`, `refused` or `failed`.
    pub outcome: String,
    pub status: u16,
    #[serde(flatten)]
    pub rest: Rest,
}

/// The token that made a call, named as it was then.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditActor {
    pub token_id: String,
    pub name: String,
}

/// A page of the audit log.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditEvent>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// Which events of the audit log to read; each filter as the API takes it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// A version or delete marker of a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub version_id: String,
    pub size: u64,
    #[serde(default)]
    pub last_modified: Option<String>,
    pub is_latest: bool,
    pub is_delete_marker: bool,
    #[serde(flatten)]
    pub rest: Rest,
}

/// A job: a folder's delete or move.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub path: String,
    #[serde(default)]
    pub to: Option<String>,
    pub status: String,
    pub progress: JobProgress,
    #[serde(default)]
    pub error: Option<Problem>,
    #[serde(flatten)]
    pub rest: Rest,
}

impl Job {
    /// Whether the job has ended (succeeded, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    pub objects_done: u64,
    #[serde(default)]
    pub objects_total: Option<u64>,
    pub objects_skipped: u64,
    pub objects_failed: u64,
    pub bytes_done: u64,
    #[serde(default)]
    pub bytes_total: Option<u64>,
}

/// What a delete or a move did: a file's at once, a folder's in a job.
#[derive(Debug, Clone)]
pub enum Change {
    /// Done: for a move, the file's new entry.
    Done(Option<Box<Entry>>),
    /// A job does it.
    Job(Box<Job>),
}

/// An upload in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    pub id: String,
    pub path: String,
    /// `single` or `multipart`.
    pub kind: String,
    pub size: u64,
    pub part_size: u64,
    pub part_count: u32,
    /// A single upload's presigned PUT.
    #[serde(default)]
    pub url: Option<String>,
    /// The headers the PUT must carry, as they were signed.
    #[serde(default)]
    pub headers: Map<String, Value>,
    /// The parts S3 holds (`GET .../uploads/{id}` only).
    #[serde(default)]
    pub parts: Option<Vec<UploadedPart>>,
}

impl Upload {
    pub fn is_multipart(&self) -> bool {
        self.kind == "multipart"
    }
}

/// A part S3 holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedPart {
    pub part_number: u32,
    pub size: u64,
    pub e_tag: String,
}

/// A presigned request: its URL and the headers it must carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedPart {
    pub part_number: u32,
    pub url: String,
    #[serde(default)]
    pub headers: Map<String, Value>,
}

/// A presigned GET.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadUrl {
    pub url: String,
    pub expires_at: String,
    pub size: u64,
}

/// Temporary AWS credentials for a project's prefix.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_at: String,
    pub region: String,
    pub s3_uri: String,
    pub env: Vec<String>,
    #[serde(flatten)]
    pub rest: Rest,
}

#[derive(Debug, Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct Parts {
    parts: Vec<SignedPart>,
}

/// A client of one byos server with one token.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of the server at `base` (`http://host:port`), calling with `token`.
    pub fn new(base: &str, token: &str) -> Result<Api, ClientError> {
        let base = base.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Usage(format!("server: {base:?} is not an http:// or https:// URL")));
        }
        Ok(Api { base: base.to_owned(), token: token.to_owned(), http: http_client() })
    }

    /// The server's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client, shared with the transfers to S3 (one connection pool per process).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, ClientError> {
        let text = self.send(method, path, body).await?;
        serde_json::from_str(&text).map_err(|e| ClientError::Status {
            status: 200,
            body: format!("an answer this client cannot read ({e}): {}", truncate(&text)),
        })
    }

    /// Sends a request; the answer's body when its status is a success.
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.base);
        let response = self.respond(self.http.request(method, &url), body).await?;
        response.text().await.map_err(|source| ClientError::Http { url, source })
    }

    /// Sends a request; a success's response to read as it comes, anything else as its error.
    async fn respond(&self, request: reqwest::RequestBuilder, body: Option<Value>) -> Result<Response, ClientError> {
        let mut request = request.bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|source| ClientError::Http { url: self.base.clone(), source })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let url = response.url().to_string();
        let text = response.text().await.map_err(|source| ClientError::Http { url, source })?;
        Err(match serde_json::from_str::<Problem>(&text) {
            Ok(problem) => ClientError::Api { status: status.as_u16(), problem },
            Err(_) => ClientError::Status { status: status.as_u16(), body: truncate(&text) },
        })
    }

    // Projects and configurations.

    pub async fn projects(&self) -> Result<Vec<Project>, ClientError> {
        Ok(self.call::<Items<Project>>(Method::GET, "/api/v1/projects", None).await?.items)
    }

    pub async fn project(&self, id: &str) -> Result<Project, ClientError> {
        self.call(Method::GET, &format!("/api/v1/projects/{}", segment(id)), None).await
    }

    /// Creates a project: answers the project and its initial import, as the server does.
    pub async fn create_project(&self, name: &str, configuration: &str, folder: &str) -> Result<Value, ClientError> {
        let body = json!({"name": name, "storageConfigurationId": configuration, "folder": folder});
        self.call(Method::POST, "/api/v1/projects", Some(body)).await
    }

    pub async fn delete_project(&self, id: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, &format!("/api/v1/projects/{}", segment(id)), None).await.map(drop)
    }

    pub async fn configurations(&self) -> Result<Vec<Configuration>, ClientError> {
        Ok(self.call::<Items<Configuration>>(Method::GET, "/api/v1/storage-configurations", None).await?.items)
    }

    pub async fn configuration(&self, id: &str) -> Result<Configuration, ClientError> {
        self.call(Method::GET, &format!("/api/v1/storage-configurations/{}", segment(id)), None).await
    }

    /// Validates a configuration now; answers it with the new report.
    pub async fn validate_configuration(&self, id: &str) -> Result<Configuration, ClientError> {
        self.call(Method::POST, &format!("/api/v1/storage-configurations/{}/validate", segment(id)), None).await
    }

    // Data.

    /// One page of a folder's children (`folder` ends with `/`), or the entry of a file.
    pub async fn browse(&self, project: &str, path: &str, page_token: Option<&str>) -> Result<Page, ClientError> {
        let mut url = format!("/api/v1/projects/{}/data?path={}&limit=1000", segment(project), query(path));
        if let Some(token) = page_token {
            url.push_str(&format!("&pageToken={}", query(token)));
        }
        self.call(Method::GET, &url, None).await
    }

    /// The entry at `path`; `None` when there is none.
    pub async fn entry(&self, project: &str, path: &str) -> Result<Option<Entry>, ClientError> {
        match self.browse(project, path, None).await {
            Ok(page) => Ok(page.items.into_iter().next()),
            // The project's own absence is an error; the path's is an answer.
            Err(ClientError::Api { status: 404, ref problem })
                if problem.code == "not-found" && problem.message.starts_with("Path ") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn create_folder(&self, project: &str, path: &str) -> Result<Entry, ClientError> {
        let url = format!("/api/v1/projects/{}/folders", segment(project));
        self.call(Method::POST, &url, Some(json!({"path": path}))).await
    }

    /// Deletes a file at once, or a folder by a job.
    pub async fn delete(&self, project: &str, path: &str) -> Result<Change, ClientError> {
        let url = format!("/api/v1/projects/{}/data?path={}", segment(project), query(path));
        let text = self.send(Method::DELETE, &url, None).await?;
        if text.trim().is_empty() {
            return Ok(Change::Done(None));
        }
        let job = serde_json::from_str(&text).map_err(|e| ClientError::Status { status: 202, body: e.to_string() })?;
        Ok(Change::Job(Box::new(job)))
    }

    /// Moves a file at once (answers its new entry), or a folder by a job.
    pub async fn move_path(&self, project: &str, from: &str, to: &str, overwrite: bool) -> Result<Change, ClientError> {
        let url = format!("/api/v1/projects/{}/data/move", segment(project));
        let value: Value =
            self.call(Method::POST, &url, Some(json!({"from": from, "to": to, "overwrite": overwrite}))).await?;
        let unreadable = |e: serde_json::Error| ClientError::Status { status: 200, body: e.to_string() };
        if value.get("progress").is_some() {
            Ok(Change::Job(Box::new(serde_json::from_value(value).map_err(unreadable)?)))
        } else {
            Ok(Change::Done(Some(Box::new(serde_json::from_value(value).map_err(unreadable)?))))
        }
    }

    pub async fn versions(&self, project: &str, path: &str) -> Result<Vec<Version>, ClientError> {
        let url = format!("/api/v1/projects/{}/data/versions?path={}", segment(project), query(path));
        Ok(self.call::<Items<Version>>(Method::GET, &url, None).await?.items)
    }

    pub async fn restore_version(&self, project: &str, path: &str, version: &str) -> Result<Entry, ClientError> {
        let url = format!("/api/v1/projects/{}/data/restore-version", segment(project));
        self.call(Method::POST, &url, Some(json!({"path": path, "versionId": version}))).await
    }

    pub async fn undelete(&self, project: &str, path: &str) -> Result<Entry, ClientError> {
        let url = format!("/api/v1/projects/{}/data/undelete", segment(project));
        self.call(Method::POST, &url, Some(json!({"path": path}))).await
    }

    /// Asks S3 to restore an archived file for `days`; answers the server's acknowledgement.
    pub async fn archive_restore(
        &self,
        project: &str,
        path: &str,
        days: u64,
        tier: Option<&str>,
    ) -> Result<Value, ClientError> {
        let url = format!("/api/v1/projects/{}/data/archive-restore", segment(project));
        let mut body = json!({"path": path, "days": days});
        if let Some(tier) = tier {
            body["tier"] = json!(tier);
        }
        self.call(Method::POST, &url, Some(body)).await
    }

    pub async fn download_url(&self, project: &str, path: &str) -> Result<DownloadUrl, ClientError> {
        let url = format!("/api/v1/projects/{}/data/download-url", segment(project));
        self.call(Method::POST, &url, Some(json!({"path": path}))).await
    }

    /// URLs for many files at once, in the order asked: each file's, or its catalogue entry.
    pub async fn download_urls(
        &self,
        project: &str,
        paths: &[String],
    ) -> Result<Vec<Result<DownloadUrl, ClientError>>, ClientError> {
        #[derive(Deserialize)]
        struct Item {
            #[serde(flatten)]
            url: Option<DownloadUrl>,
            #[serde(default)]
            error: Option<Problem>,
        }
        let url = format!("/api/v1/projects/{}/data/download-urls", segment(project));
        let items = self.call::<Items<Item>>(Method::POST, &url, Some(json!({"paths": paths}))).await?.items;
        Ok(items
            .into_iter()
            .map(|item| match (item.url, item.error) {
                (_, Some(problem)) => Err(ClientError::Api { status: 404, problem }),
                (Some(url), None) => Ok(url),
                (None, None) => Err(ClientError::Status { status: 200, body: "an item without a URL".to_owned() }),
            })
            .collect())
    }

    pub async fn temporary_credentials(
        &self,
        project: &str,
        access: &str,
        duration: Option<Duration>,
        path: Option<&str>,
    ) -> Result<Credentials, ClientError> {
        let url = format!("/api/v1/projects/{}/temporary-credentials", segment(project));
        let mut body = json!({"access": access});
        if let Some(duration) = duration {
            body["durationSeconds"] = json!(duration.as_secs());
        }
        if let Some(path) = path {
            body["path"] = json!(path);
        }
        self.call(Method::POST, &url, Some(body)).await
    }

    // Uploads.

    /// Starts an upload of `size` bytes to `path`; `part_size` asks for parts of that size.
    pub async fn create_upload(
        &self,
        project: &str,
        path: &str,
        size: u64,
        part_size: Option<u64>,
        overwrite: bool,
    ) -> Result<Upload, ClientError> {
        let url = format!("/api/v1/projects/{}/uploads", segment(project));
        let mut body = json!({"path": path, "size": size, "overwrite": overwrite});
        if let Some(part_size) = part_size {
            body["partSize"] = json!(part_size);
        }
        self.call(Method::POST, &url, Some(body)).await
    }

    /// The project's open uploads.
    pub async fn uploads(&self, project: &str) -> Result<Vec<Upload>, ClientError> {
        let url = format!("/api/v1/projects/{}/uploads", segment(project));
        Ok(self.call::<Items<Upload>>(Method::GET, &url, None).await?.items)
    }

    /// An upload with the parts S3 holds.
    pub async fn upload(&self, project: &str, id: &str) -> Result<Upload, ClientError> {
        let url = format!("/api/v1/projects/{}/uploads/{}", segment(project), segment(id));
        self.call(Method::GET, &url, None).await
    }

    pub async fn sign_parts(&self, project: &str, id: &str, numbers: &[u32]) -> Result<Vec<SignedPart>, ClientError> {
        let url = format!("/api/v1/projects/{}/uploads/{}/parts", segment(project), segment(id));
        Ok(self.call::<Parts>(Method::POST, &url, Some(json!({"partNumbers": numbers}))).await?.parts)
    }

    /// Completes an upload from its parts' numbers and ETags (none for a single PUT).
    pub async fn complete_upload(
        &self,
        project: &str,
        id: &str,
        parts: &[(u32, String)],
    ) -> Result<Entry, ClientError> {
        let url = format!("/api/v1/projects/{}/uploads/{}/complete", segment(project), segment(id));
        let parts: Vec<Value> = parts.iter().map(|(n, e)| json!({"partNumber": n, "eTag": e})).collect();
        self.call(Method::POST, &url, Some(json!({"parts": parts}))).await
    }

    pub async fn abort_upload(&self, project: &str, id: &str) -> Result<(), ClientError> {
        let url = format!("/api/v1/projects/{}/uploads/{}", segment(project), segment(id));
        self.send(Method::DELETE, &url, None).await.map(drop)
    }

    // The audit log.

    /// A page of up to `limit` events of the audit log, newest first.
    pub async fn audit_events(
        &self,
        filter: &AuditFilter,
        limit: u32,
        page_token: Option<&str>,
    ) -> Result<AuditPage, ClientError> {
        let mut url = format!("/api/v1/audit-events?limit={limit}");
        let fields = [
            ("actor", &filter.actor),
            ("action", &filter.action),
            ("target", &filter.target),
            ("since", &filter.since),
            ("until", &filter.until),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                url.push_str(&format!("&{name}={}", query(value)));
            }
        }
        if let Some(token) = page_token {
            url.push_str(&format!("&pageToken={}", query(token)));
        }
        self.call(Method::GET, &url, None).await
    }

    // Jobs.

    pub async fn jobs(&self, project: Option<&str>) -> Result<Vec<Job>, ClientError> {
        let url = match project {
            Some(p) => format!("/api/v1/jobs?projectId={}", query(p)),
            None => "/api/v1/jobs".to_owned(),
        };
        Ok(self.call::<Items<Job>>(Method::GET, &url, None).await?.items)
    }

    pub async fn job(&self, id: &str) -> Result<Job, ClientError> {
        self.call(Method::GET, &format!("/api/v1/jobs/{}", segment(id)), None).await
    }

    pub async fn cancel_job(&self, id: &str) -> Result<Job, ClientError> {
        self.call(Method::POST, &format!("/api/v1/jobs/{}/cancel", segment(id)), None).await
    }

    /// Starts a copy or move job: `body` as `POST /api/v1/jobs` takes it.
    pub async fn start_copy(&self, body: Value) -> Result<Job, ClientError> {
        self.call(Method::POST, "/api/v1/jobs", Some(body)).await
    }

    /// A copy job's report, as the server streams it: JSON lines, or CSV.
    pub async fn job_report(&self, id: &str, csv: bool) -> Result<Response, ClientError> {
        let url = format!("{}/api/v1/jobs/{}/report", self.base, segment(id));
        let accept = if csv { "text/csv" } else { "application/x-ndjson" };
        self.respond(self.http.get(&url).header(reqwest::header::ACCEPT, accept), None).await
    }
}

/// One HTTP client for the API and S3: keep-alive pools sized for many transfers at once, no
/// proxy from the environment for loopback servers (reqwest's default honours it elsewhere).
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        // The server's audit log names the tool that made a change.
        .user_agent(concat!("byos/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// A path segment (an id), encoded.
fn segment(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// A query value, encoded.
fn query(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(500) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}
