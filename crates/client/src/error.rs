//! `ClientError`: what a client call can meet, the server's catalogue entries first.

use std::path::PathBuf;

/// An error body of the API: a catalogue entry with the message for this case and its fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Problem {
    /// The entry's type, e.g. `Invalid Parameter`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The entry's stable code, e.g. `file-exists`.
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub fix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request with a catalogue entry.
    #[error("{}", .problem.message)]
    Api { status: u16, problem: Problem },
    /// The server answered with a status and a body that is not a catalogue entry (a 5xx
    /// carries an error id only; a proxy may answer on its own).
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    /// The server could not be reached, or the answer not read.
    #[error("cannot reach {url}: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// S3 refused a presigned request.
    #[error("S3 answered {status} to {operation} of {path}: {message}")]
    S3 { operation: &'static str, path: String, status: u16, message: String },
    /// The bytes that arrived are not the bytes that were sent.
    #[error("{path}: {what}")]
    Integrity { path: String, what: String },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No server or token: neither a login profile nor `BYOS_SERVER` / `BYOS_TOKEN`.
    #[error("not logged in{}: run `byos login --server URL` (or set BYOS_SERVER and BYOS_TOKEN)", .profile.as_deref().map(|p| format!(" (profile {p})")).unwrap_or_default())]
    NotLoggedIn { profile: Option<String> },
    /// The destination has a file of that name, and nothing said to replace it.
    #[error("{path} exists: pass --overwrite to replace it, --no-clobber or --if-size-differ to keep it")]
    Exists { path: String },
    /// A command's input that cannot be used, said before anything is sent.
    #[error("{0}")]
    Usage(String),
    /// The login profiles' file cannot be read or written.
    #[error("{}: {what}", .path.display())]
    Config { path: PathBuf, what: String },
}

impl ClientError {
    /// The catalogue entry, when the server refused with one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Api { problem, .. } => Some(problem),
            _ => None,
        }
    }

    /// The catalogue's stable code for this error, for scripts: the server's entry, or
    /// `file-exists` for a local file in a download's way, as the server says it of a file in
    /// an upload's.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { problem, .. } => Some(&problem.code),
            ClientError::Exists { .. } => Some("file-exists"),
            _ => None,
        }
    }

    /// Whether the same request may succeed when sent again: throttling, a server error, a
    /// connection that failed. Refusals (4xx) are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Api { status, .. } | ClientError::Status { status, .. } | ClientError::S3 { status, .. } => {
                *status == 429 || *status == 503 || *status == 500 || *status == 502 || *status == 504
            }
            ClientError::Http { source, .. } => !source.is_builder() && !source.is_redirect(),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ClientError {
        let path = path.into();
        move |source| ClientError::Io { path, source }
    }
}
