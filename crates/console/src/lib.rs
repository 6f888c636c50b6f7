//! The web console: one HTML shell, a style sheet and a few ES modules of hand-written
//! JavaScript, embedded in the binary, so that `byos serve` needs nothing else at run time and
//! `cargo build` needs no front-end toolchain.
//!
//! The script renders every page in the browser from the API's JSON: the server sends the same
//! shell for every console path (`/projects/{id}/data/runs/`, `/settings/storage/...`), so that
//! a pasted link or the back button lands on its page, and the script routes it. Names from
//! buckets and users reach the page only as text nodes (`textContent`), never as markup.
//!
//! Why no framework: the console is forms, tables and one uploader over an API that already
//! says everything; a few thousand lines of plain modules do that, keep the assets small, load
//! without a build step, and leave nothing to pin but the code itself.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Its path under `/assets/`, or `index.html` for the shell.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// A strong validator of the body: its FNV-1a hash, computed as the binary is built.
    etag: &'static str,
}

macro_rules! assets {
    ($($path:literal => $content_type:expr),* $(,)?) => {
        /// Every file of the console.
        pub static ASSETS: &[Asset] = &[$(
            Asset {
                path: $path,
                content_type: $content_type,
                body: include_bytes!(concat!("../assets/", $path)),
                etag: {
                    const HEX: [u8; 18] = etag(include_bytes!(concat!("../assets/", $path)));
                    match std::str::from_utf8(&HEX) {
                        Ok(etag) => etag,
                        Err(_) => panic!("an ETag is ASCII"),
                    }
                },
            },
        )*];
    };
}

const JS: &str = "text/javascript; charset=utf-8";

assets! {
    "index.html" => "text/html; charset=utf-8",
    "app.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => JS,
    "js/api.js" => JS,
    "js/dom.js" => JS,
    "js/settings.js" => JS,
    "js/projects.js" => JS,
    "js/browser.js" => JS,
    "js/uploads.js" => JS,
}

/// `"` + 16 hex digits of the FNV-1a hash of `body` + `"`.
const fn etag(body: &[u8]) -> [u8; 18] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < body.len() {
        hash ^= body[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    let digits = b"0123456789abcdef";
    let mut out = [b'"'; 18];
    let mut d = 0;
    while d < 16 {
        out[1 + d] = digits[((hash >> (60 - 4 * d)) & 0xf) as usize];
        d += 1;
    }
    out
}

/// The embedded file at `/assets/{path}`.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.path == path && asset.path != "index.html")
}

/// Whether `path` is the console's: everything but the API and the operations' routes.
pub fn is_console_path(path: &str) -> bool {
    let api = path == "/api" || path.starts_with("/api/");
    !api && !matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The answer to a GET of a console path: the asset it names under `/assets/`, or else the
/// shell, whose script routes the path. Both are revalidated by their ETag on every load, so
/// that a new binary's console is seen at once.
pub fn respond(path: &str, request: &HeaderMap) -> Response {
    let found = match path.strip_prefix("/assets/") {
        Some(rest) => asset(rest),
        None => ASSETS.iter().find(|asset| asset.path == "index.html"),
    };
    let Some(asset) = found else {
        return (StatusCode::NOT_FOUND, [(CONTENT_TYPE, "text/plain; charset=utf-8")], "no such asset\n")
            .into_response();
    };
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
        (ETAG, HeaderValue::from_static(asset.etag)),
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    let fresh = request
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == asset.etag || tag.trim() == "*");
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.body).into_response()
}

/// The Content-Security-Policy of every answer: scripts, styles and images from the console
/// itself only (no inline script, no eval), requests to the API and to the storage the console
/// uploads to (`storage_origins`), no framing, no plugins, forms to itself.
pub fn content_security_policy(storage_origins: &[String]) -> String {
    let mut connect = String::from("'self'");
    for origin in storage_origins {
        connect.push(' ');
        connect.push_str(origin);
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src {connect}; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_embedded_with_its_validator() {
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.path);
            assert_eq!(asset.etag.len(), 18, "{}", asset.path);
        }
        let etags: std::collections::HashSet<_> = ASSETS.iter().map(|a| a.etag).collect();
        assert_eq!(etags.len(), ASSETS.len(), "two assets with one ETag");
        assert!(asset("js/app.js").is_some());
        assert!(asset("index.html").is_none(), "the shell is served at console paths, not as an asset");
        assert!(asset("../Cargo.toml").is_none());
    }

    #[test]
    fn console_paths_leave_the_api_alone() {
        for path in ["/", "/projects", "/projects/x/data/a/b/", "/settings/storage/credentials", "/apis"] {
            assert!(is_console_path(path), "{path}");
        }
        for path in ["/api", "/api/", "/api/v1/nope", "/healthz", "/readyz", "/metrics"] {
            assert!(!is_console_path(path), "{path}");
        }
    }

    #[test]
    fn a_known_version_is_not_sent_again() {
        let shell = respond("/projects/1/data/a/", &HeaderMap::new());
        assert_eq!(shell.status(), StatusCode::OK);
        let etag = shell.headers().get(ETAG).cloned().unwrap_or_else(|| HeaderValue::from_static("none"));
        let mut again = HeaderMap::new();
        again.insert(IF_NONE_MATCH, etag);
        assert_eq!(respond("/settings", &again).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(respond("/assets/js/app.js", &again).status(), StatusCode::OK, "another file, another ETag");
        assert_eq!(respond("/assets/nope.js", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
