//! `bootstrap --register URL`: creates the storage credential and the storage configuration on a
//! byos server over its REST API, then waits for the first validation and shows its report. A
//! configuration of the same bucket and prefix that already exists is left as it is.
//!
//! The requests carry an admin token and the access key's secret, so the server must be
//! `https://`; plain `http://` is accepted only on this machine's loopback.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use byos_domain::{BucketName, KeyPrefix, KmsKeyArn};
use serde_json::{Value, json};

use super::connect::say;
use super::steps::{Change, Key, Steps};

/// Where and what to register.
#[derive(Debug)]
pub(crate) struct Target<'a> {
    pub(crate) url: &'a str,
    pub(crate) token: &'a str,
    pub(crate) name: &'a str,
    pub(crate) region: &'a str,
    pub(crate) bucket: &'a BucketName,
    pub(crate) prefix: Option<&'a KeyPrefix>,
    pub(crate) kms_key: Option<&'a KmsKeyArn>,
    pub(crate) user: &'a str,
}

/// The `--register` URL, checked when the arguments are parsed (a refusal is a usage error):
/// `https://`, or `http://` to a loopback host (127.0.0.0/8, ::1, localhost). Anywhere else the
/// admin token and the access key's secret would cross the network in clear.
pub(crate) fn server_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("not a URL ({e}); give the server's, such as https://byos.example.com"))?;
    match url.scheme() {
        "https" => Ok(text.to_owned()),
        "http" if is_loopback(&url) => Ok(text.to_owned()),
        "http" => Err(format!(
            "plain http:// is accepted only for a server on this machine (127.0.0.0/8, ::1, localhost), \
             and {} is not: the admin token and the access key's secret would cross the network in clear; \
             use the server's https:// URL",
            url.host_str().unwrap_or_default()
        )),
        other => Err(format!("the server's URL is https:// (or http:// on this machine), not {other}://")),
    }
}

/// Whether the URL's host is this machine's loopback. The URL parser has already put IP
/// addresses in their canonical form (`127.1` is `127.0.0.1`); an IPv6 host is in brackets.
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// A thin client of the byos REST API.
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the byos server at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body["message"].as_str().unwrap_or("no message");
            let fix = body["fix"].as_str().map(|f| format!(" (fix: {f})")).unwrap_or_default();
            bail!("{what}: the server answered {status}: {message}{fix}");
        }
        Ok(body)
    }

    async fn get(&self, path: &str, what: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)), what).await
    }

    async fn post(&self, path: &str, body: &Value, what: &str) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body), what).await
    }
}

pub(crate) async fn run(target: &Target<'_>, key: Option<&Key>, steps: &mut Steps) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().context("an HTTP client")?,
        base: target.url.trim_end_matches('/').to_owned(),
        token: target.token.to_owned(),
    };
    let subject = format!("storage configuration {}", target.name);
    let prefix = target.prefix.map(KeyPrefix::as_str);
    let existing = api.get("/api/v1/storage-configurations", "listing storage configurations").await?;
    let same = existing["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["bucket"].as_str() == Some(target.bucket.as_str()) && c["keyPrefix"].as_str() == prefix);
    if let Some(found) = same {
        let detail = format!("{} exists on {} ({})", found["id"], target.url, found["status"].as_str().unwrap_or("?"));
        return steps.record(Change::Unchanged, &subject, &detail);
    }
    if steps.is_dry_run() {
        return steps.record(Change::Created, &subject, &format!("on {}, with a new storage credential", target.url));
    }
    let Some(key) = key else {
        bail!(
            "--register needs the access key's secret, which AWS shows only when the key is created: pass \
             --new-access-key, or the --secret-file a previous run wrote"
        );
    };
    let credential = api
        .post(
            "/api/v1/storage-credentials",
            &json!({
                "name": format!("{} {}", target.user, target.name),
                "type": "aws-user",
                "accessKeyId": key.access_key_id,
                "secretAccessKey": key.secret_access_key,
            }),
            "creating the storage credential",
        )
        .await?;
    let credential_id = credential["id"].as_str().context("the server's credential has no id")?;
    steps.record(Change::Created, &format!("storage credential {}", credential["name"]), credential_id)?;
    let mut body = json!({
        "name": target.name,
        "region": target.region,
        "bucket": target.bucket.as_str(),
        "credentialId": credential_id,
    });
    if let Some(prefix) = prefix {
        body["keyPrefix"] = json!(prefix);
    }
    if let Some(key) = target.kms_key {
        body["serverSideEncryption"] = json!({"algorithm": "aws:kms", "keyName": key.as_str()});
    }
    let created = api.post("/api/v1/storage-configurations", &body, "creating the storage configuration").await?;
    let id = created["id"].as_str().context("the server's configuration has no id")?.to_owned();
    steps.record(Change::Created, &subject, &id)?;
    wait_for_validation(&api, &id, steps).await
}

/// Polls the configuration until its first validation has run, and shows the outcome.
async fn wait_for_validation(api: &Api, id: &str, steps: &Steps) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = format!("/api/v1/storage-configurations/{id}");
    if steps.shows_table() {
        say("  waiting for the server to validate the configuration ...")?;
    }
    loop {
        let configuration = api.get(&path, "reading the storage configuration").await?;
        let status = configuration["status"].as_str().unwrap_or("?");
        if status != "initializing" {
            if steps.shows_table() {
                say(format_args!("  status: {status}"))?;
                for check in configuration["validation"]["checks"].as_array().into_iter().flatten() {
                    if check["result"] == "failed" {
                        say(format_args!(
                            "    {:<28} failed  {}",
                            check["name"].as_str().unwrap_or("?"),
                            check["detail"].as_str().unwrap_or("")
                        ))?;
                    }
                }
                if let Some(message) = configuration["error"]["message"].as_str() {
                    say(format_args!(
                        "  error: {message}\n  fix:   {}",
                        configuration["error"]["fix"].as_str().unwrap_or("")
                    ))?;
                }
            }
            if status == "error" {
                bail!("the server could not use the bucket: run `byos aws doctor` on it");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the server has not validated the configuration after 60 s; look at {path}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::server_url;

    #[test]
    fn plain_http_only_on_loopback() {
        for accepted in [
            "https://byos.example.com",
            "https://203.0.113.7:8443/",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://127.1:8080",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]:8080",
            "http://localhost:8080",
            "http://LOCALHOST",
        ] {
            assert_eq!(server_url(accepted).as_deref(), Ok(accepted));
        }
        for refused in [
            "http://byos.example.com",
            "http://10.0.0.5:8080",
            "http://0.0.0.0:8080",
            "http://[::]:8080",
            "http://localhost.example.com",
            "http://128.0.0.1",
        ] {
            let message = server_url(refused).err().unwrap_or_default();
            assert!(
                message.starts_with("plain http:// is accepted only for a server on this machine"),
                "{refused}: {message}"
            );
        }
        assert!(server_url("ftp://localhost").is_err_and(|m| m.contains("not ftp://")));
        assert!(server_url("byos.example.com").is_err_and(|m| m.starts_with("not a URL")));
    }
}
