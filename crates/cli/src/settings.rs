//! The server's configuration: defaults, then a TOML file, then `BYOS__SECTION__KEY` environment
//! variables, then command-line flags. It is read and checked once, at start-up, and passed on
//! explicitly.
//!
//! Secrets never come from this file: the master key is `BYOS_MASTER_KEY` or
//! `BYOS_MASTER_KEY_FILE`, and the preset admin token is `BYOS_ADMIN_TOKEN`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use byos_domain::{Region, RegionTable};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::{LogFormat, ServeArgs};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    aws: RawAws,
    #[serde(default)]
    lifecycle: RawLifecycle,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    data: RawData,
    #[serde(default)]
    jobs: RawJobs,
    #[serde(default)]
    audit: RawAudit,
    /// Replaces the built-in region table when given.
    regions: Option<Vec<Region>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    shutdown_grace_seconds: Option<u64>,
    /// The URL people reach the server (and its console) at: the origin bucket CORS must allow.
    public_url: Option<String>,
    /// How long a lease on a piece of work (a validation, a reconcile) lasts unless renewed:
    /// how soon another replica takes over the work of one that died.
    lease_seconds: Option<u64>,
    header_read_timeout_seconds: Option<u64>,
    request_timeout_seconds: Option<u64>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    /// An S3-compatible or local endpoint instead of AWS.
    endpoint_url: Option<String>,
    /// Where the queue traffic goes instead, when not with the rest.
    sqs_endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    reverify_interval_seconds: Option<u64>,
    retry_base_seconds: Option<u64>,
    concurrency: Option<usize>,
    queue_name_prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    pollers: Option<usize>,
    in_flight: Option<usize>,
    batch_window_ms: Option<u64>,
    commit_delay_ms: Option<u64>,
    listing_concurrency: Option<usize>,
    inventory_max_age_hours: Option<u64>,
    reconcile_interval_seconds: Option<u64>,
    visibility_timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJobs {
    concurrency: Option<usize>,
    copies_at_once: Option<usize>,
    copy_range_objects: Option<u64>,
    objects_per_second: Option<u32>,
    copy_part_threshold_bytes: Option<u64>,
    copy_part_size_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    retention_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    url_expiry_seconds: Option<u64>,
    credentials_per_minute: Option<u32>,
    multipart_threshold_bytes: Option<u64>,
    part_size_bytes: Option<u64>,
    abandoned_upload_hours: Option<u64>,
}

/// A size of S3's parts: 5 MiB to 5 GiB, `default` when not given.
fn part_bytes(value: Option<u64>, default: u64, key: &str) -> anyhow::Result<u64> {
    match value {
        Some(n) if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&n) => {
            bail!("{key}: {MIN_PART_BYTES} to {MAX_PART_BYTES} bytes (5 MiB to 5 GiB, S3's part sizes)")
        }
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// S3's smallest part (but the last) and largest part.
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;

fn uploads(raw: &RawData, defaults: &byos_api::UploadSettings) -> anyhow::Result<byos_api::UploadSettings> {
    let part_size = match raw.part_size_bytes {
        Some(n) if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&n) => {
            bail!("data.part_size_bytes: {MIN_PART_BYTES} (5 MiB) to {MAX_PART_BYTES} (5 GiB), S3's limits")
        }
        Some(n) => n,
        None => defaults.part_size,
    };
    let multipart_threshold = match raw.multipart_threshold_bytes {
        Some(n) if !(MIN_PART_BYTES..=MAX_PART_BYTES).contains(&n) => {
            bail!(
                "data.multipart_threshold_bytes: {MIN_PART_BYTES} (5 MiB) to {MAX_PART_BYTES} (5 GiB, S3's largest PUT)"
            )
        }
        Some(n) => n,
        None => defaults.multipart_threshold,
    };
    let abandoned_after = match raw.abandoned_upload_hours {
        Some(0) => bail!("data.abandoned_upload_hours: at least 1"),
        Some(h) => Duration::from_secs(h.saturating_mul(3600)),
        None => defaults.abandoned_after,
    };
    Ok(byos_api::UploadSettings { multipart_threshold, part_size, abandoned_after })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    max_connections: Option<u32>,
    connect_timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<LogFormat>,
    /// A tracing filter, such as `info` or `byos=debug,sqlx=warn`. `RUST_LOG` overrides it.
    filter: Option<String>,
}

/// The checked configuration.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) shutdown_grace: Duration,
    pub(crate) http: HttpLimits,
    /// `None`: SQLite in the data directory.
    pub(crate) database_url: Option<String>,
    pub(crate) max_connections: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) log_format: LogFormat,
    pub(crate) log_filter: String,
    pub(crate) regions: RegionTable,
    pub(crate) aws_endpoint_url: Option<String>,
    pub(crate) aws_sqs_endpoint_url: Option<String>,
    pub(crate) lifecycle: byos_lifecycle::LifecycleSettings,
    pub(crate) sync: byos_sync::SyncSettings,
    pub(crate) data: byos_api::DataSettings,
    pub(crate) jobs: byos_jobs::JobSettings,
    /// How long the audit log keeps an event.
    pub(crate) audit_retention: Duration,
}

/// What one client may hold of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HttpLimits {
    /// How long a connection may take to send a request's headers; also how long an idle
    /// keep-alive connection stays open.
    pub(crate) header_read_timeout: Duration,
    /// How long a handler may take to answer.
    pub(crate) request_timeout: Duration,
    /// Connections served at once; more wait in the kernel's listen queue.
    pub(crate) max_connections: usize,
}

impl HttpLimits {
    const DEFAULT: HttpLimits = HttpLimits {
        header_read_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(60),
        max_connections: 512,
    };
}

/// The most listing requests a reconcile makes at once: S3 serves thousands a second per prefix,
/// and each request in flight holds pages in memory.
const MAX_LISTING_CONCURRENCY: usize = 256;
/// A poller that waits longer than a long poll between receives only delays the catalog.
const MAX_BATCH_WINDOW_MS: u64 = 20_000;
/// A group commit that waits a second for more batches holds their messages past any gain.
const MAX_COMMIT_DELAY_MS: u64 = 1000;
/// A report older than S3 Inventory's weekly schedule plus its delivery is of no use.
const MAX_INVENTORY_AGE_HOURS: u64 = 8 * 24;

/// SigV4's longest presigned validity, in seconds.
const MAX_URL_EXPIRY_SECONDS: u64 = 7 * 24 * 3600;

impl Settings {
    pub(crate) const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub(crate) const DEFAULT_DATA_DIR: &'static str = "byos-data";

    /// Reads the layers in order and checks the result.
    pub(crate) fn load(args: &ServeArgs) -> anyhow::Result<Settings> {
        let mut figment = Figment::new();
        if let Some(file) = &args.config {
            if !file.is_file() {
                bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("BYOS__").split("__"));
        let raw: Raw = figment.extract().context("invalid configuration")?;
        Settings::check(raw, args)
    }

    fn check(raw: Raw, args: &ServeArgs) -> anyhow::Result<Settings> {
        let listen_text =
            args.listen.clone().or(raw.server.listen).unwrap_or_else(|| Settings::DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text
            .parse()
            .with_context(|| format!("server.listen: {listen_text:?} is not an address such as 127.0.0.1:8080"))?;
        let data_dir =
            args.data_dir.clone().or(raw.server.data_dir).unwrap_or_else(|| PathBuf::from(Settings::DEFAULT_DATA_DIR));
        let database_url = raw.database.url.filter(|u| !u.trim().is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:"))
        {
            bail!("database.url: {:?} is neither postgres://... nor sqlite:...", byos_catalog::redact_url(url));
        }
        let max_connections = raw.database.max_connections.unwrap_or(10);
        if max_connections == 0 {
            bail!("database.max_connections: at least 1");
        }
        let regions = match raw.regions {
            None => RegionTable::builtin(),
            Some(regions) => RegionTable::new(regions).context("regions")?,
        };
        let public_url = raw.server.public_url.unwrap_or_else(|| format!("http://{listen}"));
        let console_origin = origin(&public_url)?;
        let aws_endpoint_url = raw.aws.endpoint_url.filter(|u| !u.trim().is_empty());
        if let Some(url) = &aws_endpoint_url {
            origin(url).context("aws.endpoint_url")?;
        }
        let server_seconds = |value: Option<u64>, default: Duration, key: &str| -> anyhow::Result<Duration> {
            match value {
                Some(0) => bail!("server.{key}: at least 1"),
                Some(s) => Ok(Duration::from_secs(s)),
                None => Ok(default),
            }
        };
        let http = HttpLimits {
            header_read_timeout: server_seconds(
                raw.server.header_read_timeout_seconds,
                HttpLimits::DEFAULT.header_read_timeout,
                "header_read_timeout_seconds",
            )?,
            request_timeout: server_seconds(
                raw.server.request_timeout_seconds,
                HttpLimits::DEFAULT.request_timeout,
                "request_timeout_seconds",
            )?,
            max_connections: match raw.server.max_connections {
                Some(0) => bail!("server.max_connections: at least 1"),
                Some(n) => n,
                None => HttpLimits::DEFAULT.max_connections,
            },
        };
        let aws_sqs_endpoint_url = raw.aws.sqs_endpoint_url.filter(|u| !u.trim().is_empty());
        if let Some(url) = &aws_sqs_endpoint_url {
            origin(url).context("aws.sqs_endpoint_url")?;
        }
        let defaults = byos_lifecycle::LifecycleSettings::default();
        let seconds = |value: Option<u64>, default: Duration, key: &str| -> anyhow::Result<Duration> {
            match value {
                Some(0) => bail!("lifecycle.{key}: at least 1"),
                Some(s) => Ok(Duration::from_secs(s)),
                None => Ok(default),
            }
        };
        let queue_name_prefix = raw.lifecycle.queue_name_prefix.unwrap_or(defaults.queue_name_prefix.clone());
        if queue_name_prefix.is_empty()
            || queue_name_prefix.len() > 60
            || !queue_name_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("lifecycle.queue_name_prefix: 1 to 60 letters, digits, '-' or '_'");
        }
        let reverify_interval =
            seconds(raw.lifecycle.reverify_interval_seconds, defaults.reverify_interval, "reverify_interval_seconds")?;
        let retry_base = seconds(raw.lifecycle.retry_base_seconds, defaults.retry_base, "retry_base_seconds")?;
        let lease = match raw.server.lease_seconds {
            Some(s) if s < 3 => bail!("server.lease_seconds: at least 3 (renewals come every third of it)"),
            Some(s) => Duration::from_secs(s),
            None => defaults.lease,
        };
        let lifecycle = byos_lifecycle::LifecycleSettings {
            queue_name_prefix,
            lease,
            reverify_interval,
            retry_base,
            // Look for due work at least as often as the shortest delay asks for.
            tick: defaults.tick.min(retry_base).min(reverify_interval),
            console_origin,
            concurrency: raw.lifecycle.concurrency.unwrap_or(defaults.concurrency).max(1),
            ..defaults
        };
        let sync_defaults = byos_sync::SyncSettings::default();
        let sync_seconds = |value: Option<u64>, default: Duration, key: &str| -> anyhow::Result<Duration> {
            match value {
                Some(0) => bail!("sync.{key}: at least 1"),
                Some(s) => Ok(Duration::from_secs(s)),
                None => Ok(default),
            }
        };
        let sync = byos_sync::SyncSettings {
            queue_name_prefix: lifecycle.queue_name_prefix.clone(),
            pollers: raw.sync.pollers.unwrap_or(sync_defaults.pollers).max(1),
            in_flight: match raw.sync.in_flight {
                Some(n) if n < 10 => bail!("sync.in_flight: at least 10 (a receive's worth of messages)"),
                Some(n) => n,
                None => sync_defaults.in_flight,
            },
            batch_window: match raw.sync.batch_window_ms {
                Some(ms) if ms > MAX_BATCH_WINDOW_MS => bail!("sync.batch_window_ms: 0 to {MAX_BATCH_WINDOW_MS}"),
                Some(ms) => Duration::from_millis(ms),
                None => sync_defaults.batch_window,
            },
            commit_delay: match raw.sync.commit_delay_ms {
                Some(ms) if ms > MAX_COMMIT_DELAY_MS => bail!("sync.commit_delay_ms: 0 to {MAX_COMMIT_DELAY_MS}"),
                Some(ms) => Duration::from_millis(ms),
                None => sync_defaults.commit_delay,
            },
            listing_concurrency: match raw.sync.listing_concurrency {
                Some(n) if !(1..=MAX_LISTING_CONCURRENCY).contains(&n) => {
                    bail!("sync.listing_concurrency: 1 to {MAX_LISTING_CONCURRENCY}")
                }
                Some(n) => n,
                None => sync_defaults.listing_concurrency,
            },
            inventory_max_age: match raw.sync.inventory_max_age_hours {
                Some(h) if h > MAX_INVENTORY_AGE_HOURS => {
                    bail!("sync.inventory_max_age_hours: 0 (never) to {MAX_INVENTORY_AGE_HOURS}")
                }
                Some(h) => Duration::from_secs(h * 3600),
                None => sync_defaults.inventory_max_age,
            },
            reconcile_interval: sync_seconds(
                raw.sync.reconcile_interval_seconds,
                sync_defaults.reconcile_interval,
                "reconcile_interval_seconds",
            )?,
            visibility: sync_seconds(
                raw.sync.visibility_timeout_seconds,
                sync_defaults.visibility,
                "visibility_timeout_seconds",
            )?,
            replica: lifecycle.replica.clone(),
            lease: lifecycle.lease,
            ..sync_defaults
        };
        let data_defaults = byos_api::DataSettings::default();
        let data = byos_api::DataSettings {
            url_expiry: match raw.data.url_expiry_seconds {
                Some(s) if !(1..=MAX_URL_EXPIRY_SECONDS).contains(&s) => {
                    bail!("data.url_expiry_seconds: 1 to {MAX_URL_EXPIRY_SECONDS} (SigV4's 7 days)")
                }
                Some(s) => Duration::from_secs(s),
                None => data_defaults.url_expiry,
            },
            credentials_per_minute: match raw.data.credentials_per_minute {
                Some(0) => bail!("data.credentials_per_minute: at least 1"),
                Some(n) => n,
                None => data_defaults.credentials_per_minute,
            },
            uploads: uploads(&raw.data, &data_defaults.uploads)?,
        };
        let job_defaults = byos_jobs::JobSettings::default();
        let jobs = byos_jobs::JobSettings {
            concurrency: match raw.jobs.concurrency {
                Some(0) => bail!("jobs.concurrency: at least 1"),
                Some(n) => n,
                None => job_defaults.concurrency,
            },
            copies_at_once: match raw.jobs.copies_at_once {
                Some(0) => bail!("jobs.copies_at_once: at least 1"),
                Some(n) => n,
                None => job_defaults.copies_at_once,
            },
            copy_range_objects: match raw.jobs.copy_range_objects {
                Some(0) => bail!("jobs.copy_range_objects: at least 1"),
                Some(n) => n,
                None => job_defaults.copy_range_objects,
            },
            objects_per_second: match raw.jobs.objects_per_second {
                Some(0) => bail!("jobs.objects_per_second: at least 1"),
                Some(n) => n,
                None => job_defaults.objects_per_second,
            },
            copies: byos_api::CopySettings {
                threshold: part_bytes(
                    raw.jobs.copy_part_threshold_bytes,
                    job_defaults.copies.threshold,
                    "jobs.copy_part_threshold_bytes",
                )?,
                part_size: part_bytes(
                    raw.jobs.copy_part_size_bytes,
                    job_defaults.copies.part_size,
                    "jobs.copy_part_size_bytes",
                )?,
                ..job_defaults.copies
            },
            tick: sync.tick,
            lease: lifecycle.lease,
            replica: lifecycle.replica.clone(),
        };
        Ok(Settings {
            listen,
            data_dir,
            shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_seconds.unwrap_or(30)),
            http,
            database_url,
            max_connections,
            connect_timeout: Duration::from_secs(raw.database.connect_timeout_seconds.unwrap_or(10)),
            log_format: args.log_format.or(raw.log.format).unwrap_or(LogFormat::Text),
            log_filter: raw.log.filter.unwrap_or_else(|| "info".to_owned()),
            regions,
            aws_endpoint_url,
            aws_sqs_endpoint_url,
            lifecycle,
            sync,
            data,
            jobs,
            audit_retention: match raw.audit.retention_days {
                Some(0) => bail!("audit.retention_days: at least 1"),
                Some(days) => Duration::from_secs(days.saturating_mul(86_400)),
                None => Duration::from_secs(400 * 86_400),
            },
        })
    }

    pub(crate) fn aws_settings(&self) -> byos_aws::AwsSettings {
        byos_aws::AwsSettings { endpoint_url: self.aws_endpoint_url.clone(), ..byos_aws::AwsSettings::default() }
    }

    pub(crate) fn path_in_data_dir(&self, name: &str) -> PathBuf {
        Path::new(&self.data_dir).join(name)
    }
}

/// The origin (`scheme://host[:port]`) of an http or https URL.
fn origin(url: &str) -> anyhow::Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("{url:?} is not an http:// or https:// URL");
    };
    if !matches!(scheme, "http" | "https") {
        bail!("{url:?} is not an http:// or https:// URL");
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        bail!("{url:?} has no host");
    }
    Ok(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ServeArgs {
        ServeArgs { data_dir: None, listen: None, config: None, log_format: None }
    }

    #[allow(clippy::result_large_err, reason = "figment::Jail fixes the closure's error type")]
    fn load_from(toml: &str, env: &[(&str, &str)], args: &ServeArgs) -> anyhow::Result<Settings> {
        // The jail gives the closure its own directory and environment, restored afterwards.
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.create_file("byos.toml", toml)?;
            for (k, v) in env {
                jail.set_env(k, v);
            }
            let with_file = ServeArgs { config: Some(PathBuf::from("byos.toml")), ..args.clone() };
            result = Some(Settings::load(&with_file));
            Ok(())
        });
        result.unwrap_or_else(|| unreachable!("the jail ran the closure"))
    }

    #[test]
    fn layers_apply_in_order() {
        let toml =
            "[server]\nlisten = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/byos\"\n[database]\nmax_connections = 3\n";
        let s = load_from(toml, &[], &args()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(s.max_connections, 3);
        assert_eq!(s.database_url, None);
        assert_eq!(s.regions.regions().len(), 12);
        assert_eq!(s.lifecycle.console_origin, "http://127.0.0.1:9000");
        assert_eq!(s.aws_endpoint_url, None);
        assert_eq!(s.http, HttpLimits::DEFAULT);

        let env = [
            ("BYOS__SERVER__LISTEN", "127.0.0.1:9100"),
            ("BYOS__DATABASE__URL", "postgres://db/byos"),
            ("BYOS__AWS__ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("BYOS__SERVER__PUBLIC_URL", "https://byos.example.com/console/"),
            ("BYOS__LIFECYCLE__REVERIFY_INTERVAL_SECONDS", "60"),
            ("BYOS__SYNC__IN_FLIGHT", "2000"),
            ("BYOS__SYNC__BATCH_WINDOW_MS", "250"),
            ("BYOS__SYNC__COMMIT_DELAY_MS", "30"),
            ("BYOS__SYNC__LISTING_CONCURRENCY", "4"),
            ("BYOS__SYNC__INVENTORY_MAX_AGE_HOURS", "0"),
            ("BYOS__SERVER__HEADER_READ_TIMEOUT_SECONDS", "5"),
            ("BYOS__SERVER__REQUEST_TIMEOUT_SECONDS", "120"),
            ("BYOS__SERVER__MAX_CONNECTIONS", "64"),
        ];
        let s = load_from(toml, &env, &args()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(s.database_url.as_deref(), Some("postgres://db/byos"));
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/byos"));
        assert_eq!(s.aws_endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(s.lifecycle.console_origin, "https://byos.example.com");
        assert_eq!(s.lifecycle.reverify_interval, Duration::from_secs(60));
        assert_eq!(s.sync.in_flight, 2000);
        assert_eq!(s.sync.batch_window, Duration::from_millis(250));
        assert_eq!(s.sync.commit_delay, Duration::from_millis(30));
        assert_eq!(s.sync.listing_concurrency, 4);
        assert_eq!(s.sync.inventory_max_age, Duration::ZERO);
        let limits = HttpLimits {
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            max_connections: 64,
        };
        assert_eq!(s.http, limits);

        let flags =
            ServeArgs { listen: Some("127.0.0.1:9200".to_owned()), log_format: Some(LogFormat::Json), ..args() };
        let s = load_from(toml, &env, &flags).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.listen.to_string(), "127.0.0.1:9200");
        assert_eq!(s.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_settings_are_refused_with_the_key() {
        let cases = [
            ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
            ("[database]\nurl = \"mysql://x\"\n", "database.url"),
            ("[database]\nmax_connections = 0\n", "database.max_connections"),
            ("[server]\nlisen = \"127.0.0.1:1\"\n", "lisen"),
            ("[server]\npublic_url = \"ftp://x\"\n", "ftp://x"),
            ("[aws]\nendpoint_url = \"localhost:5000\"\n", "aws.endpoint_url"),
            ("[lifecycle]\nreverify_interval_seconds = 0\n", "lifecycle.reverify_interval_seconds"),
            ("[lifecycle]\nqueue_name_prefix = \"bad name\"\n", "lifecycle.queue_name_prefix"),
            ("[sync]\nin_flight = 5\n", "sync.in_flight"),
            ("[sync]\nbatch_window_ms = 60000\n", "sync.batch_window_ms"),
            ("[sync]\ncommit_delay_ms = 5000\n", "sync.commit_delay_ms"),
            ("[sync]\nlisting_concurrency = 0\n", "sync.listing_concurrency"),
            ("[sync]\nlisting_concurrency = 1000\n", "sync.listing_concurrency"),
            ("[sync]\ninventory_max_age_hours = 1000\n", "sync.inventory_max_age_hours"),
            ("[jobs]\nconcurrency = 0\n", "jobs.concurrency"),
            ("[jobs]\nobjects_per_second = 0\n", "jobs.objects_per_second"),
            ("[jobs]\ncopy_range_objects = 0\n", "jobs.copy_range_objects"),
            ("[jobs]\ncopy_part_size_bytes = 1024\n", "jobs.copy_part_size_bytes"),
            ("[data]\nurl_expiry_seconds = 0\n", "data.url_expiry_seconds"),
            ("[data]\nurl_expiry_seconds = 604801\n", "data.url_expiry_seconds"),
            ("[data]\npart_size_bytes = 1024\n", "data.part_size_bytes"),
            ("[data]\nmultipart_threshold_bytes = 6000000000\n", "data.multipart_threshold_bytes"),
            ("[data]\nabandoned_upload_hours = 0\n", "data.abandoned_upload_hours"),
            ("[audit]\nretention_days = 0\n", "audit.retention_days"),
            ("[server]\nlease_seconds = 1\n", "server.lease_seconds"),
            ("[server]\nheader_read_timeout_seconds = 0\n", "server.header_read_timeout_seconds"),
            ("[server]\nrequest_timeout_seconds = 0\n", "server.request_timeout_seconds"),
            ("[server]\nmax_connections = 0\n", "server.max_connections"),
            (
                "[[regions]]\ncode = \"X\"\nname = \"X\"\nawsRegion = \"nowhere\"\ncrossAccountRoleArn = \"arn:aws:iam::123456789012:role/r\"\n",
                "regions",
            ),
        ];
        for (toml, key) in cases {
            let err = load_from(toml, &[], &args()).err().map(|e| format!("{e:#}"));
            assert!(err.as_deref().is_some_and(|e| e.contains(key)), "{toml:?}: {err:?}");
        }
    }

    #[test]
    fn queue_traffic_can_have_an_endpoint_of_its_own() {
        let env = [
            ("BYOS__AWS__ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("BYOS__AWS__SQS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        ];
        let s = load_from("", &env, &args()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.aws_endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert_eq!(s.aws_sqs_endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
        let s = load_from("[aws]\nsqs_endpoint_url = \"https://sqs.example.com/\"\n", &[], &args())
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!((s.aws_endpoint_url, s.aws_sqs_endpoint_url.as_deref()), (None, Some("https://sqs.example.com/")));
        let err =
            load_from("[aws]\nsqs_endpoint_url = \"localhost:4566\"\n", &[], &args()).err().map(|e| format!("{e:#}"));
        assert!(err.as_deref().is_some_and(|e| e.contains("aws.sqs_endpoint_url")), "{err:?}");
    }

    #[test]
    fn regions_can_be_replaced() {
        let toml = "[[regions]]\ncode = \"IE\"\nname = \"Ireland\"\nawsRegion = \"eu-west-1\"\ncrossAccountRoleArn = \"arn:aws:iam::123456789012:role/copy\"\n";
        let s = load_from(toml, &[], &args()).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(s.regions.aws_region_list(), "eu-west-1");
    }
}
