//! `byos serve`: opens the store, checks the master key, makes the first admin token if the
//! store is new, and serves the API until SIGTERM or Ctrl-C.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::extract::ConnectInfo;
use byos_api::{AppState, FirstStart};
use byos_catalog::{Store, StoreOptions};
use byos_domain::ErrorChain;
use byos_secrets::MasterKey;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use tracing_subscriber::EnvFilter;

use crate::settings::{HttpLimits, Settings};
use crate::{LogFormat, ServeArgs};

const MASTER_KEY_FILE: &str = "master.key";
const ADMIN_TOKEN_FILE: &str = "admin-token";

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(&args)?;
    init_logging(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(serve(settings))
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) => EnvFilter::try_new(filter).context("RUST_LOG")?,
        Err(_) => EnvFilter::try_new(&settings.log_filter).context("log.filter")?,
    };
    // Colours only for a terminal: a log file or a collector would get the escape codes as text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match settings.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

async fn serve(mut settings: Settings) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(settings.listen).await.with_context(|| format!("listening on {}", settings.listen))?;
    let address = listener.local_addr().context("reading the listening address")?;
    if settings.lifecycle.console_origin == format!("http://{}", settings.listen) {
        // Without `server.public_url`, the console is where the server listens: on the port
        // the system chose, when asked for port 0.
        settings.lifecycle.console_origin = format!("http://{address}");
    }
    create_data_dir(&settings.data_dir)?;
    let master_key = master_key(&settings)?;
    let options = StoreOptions {
        url: settings.database_url.clone(),
        max_connections: settings.max_connections,
        connect_timeout: settings.connect_timeout,
    };
    let store = Store::open(&options, &settings.data_dir).await.context("opening the store")?;
    tracing::info!(backend = ?store.backend(), "store open");
    byos_api::check_master_key(&store, &master_key).await?;
    let preset = std::env::var("BYOS_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
    if let Some(first) = byos_api::ensure_admin_token(&store, preset.as_deref()).await? {
        announce_admin_token(&settings, &first)?;
    }

    let aws =
        byos_aws::Aws::new(&settings.aws_settings()).await.with_sqs_endpoint_url(settings.aws_sqs_endpoint_url.clone());
    let buckets = byos_buckets::Buckets::new(store.clone(), aws.clone(), master_key.clone());
    let lifecycle =
        byos_lifecycle::Lifecycle::new(store.clone(), aws.clone(), buckets.clone(), settings.lifecycle.clone());
    let sync = byos_sync::SyncEngine::new(store.clone(), aws, buckets.clone(), settings.sync.clone());
    sync.refresh_routes().await.context("reading the projects")?;
    let jobs = byos_jobs::Jobs::new(
        store.clone(),
        buckets.clone(),
        sync.clone(),
        settings.jobs.clone(),
        settings.regions.clone(),
    );
    let state = AppState::new(byos_api::Parts {
        store: store.clone(),
        master_key,
        regions: settings.regions.clone(),
        buckets,
        lifecycle: lifecycle.clone(),
        sync: sync.clone(),
        jobs: jobs.clone(),
        data: settings.data.clone(),
    });
    let app = byos_api::router_with_request_timeout(state.clone(), settings.http.request_timeout);

    let worker = lifecycle.spawn_worker();
    let sync_workers = sync.spawn_workers();
    let job_workers = jobs.spawn_workers();
    tracing::info!(
        max_connections = settings.http.max_connections,
        header_read_timeout_seconds = settings.http.header_read_timeout.as_secs(),
        request_timeout_seconds = settings.http.request_timeout.as_secs(),
        "HTTP limits"
    );
    tracing::info!("byos listening on http://{address}");
    // On the signal, the worker stops taking new work while the HTTP server drains, each
    // within the grace period.
    let (drain, draining) = watch::channel(false);
    let sweeper = tokio::spawn(abort_abandoned_uploads(state.clone(), draining.clone()));
    let pruner = tokio::spawn(prune_audit_log(state.clone(), settings.audit_retention, draining.clone()));
    let token_uses = tokio::spawn(write_token_uses(state.clone(), draining.clone()));
    let serving = serve_http(listener, app, settings.http, draining);
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => {}
        () = shutdown_signal() => {
            worker.request_stop();
            sync_workers.request_stop();
            job_workers.request_stop();
            let _ = drain.send(true);
            if tokio::time::timeout(settings.shutdown_grace, &mut serving).await.is_err() {
                tracing::warn!("requests did not finish within the grace period");
            }
        }
    }
    let _ = drain.send(true);
    tokio::join!(
        worker.stop(settings.shutdown_grace),
        sync_workers.stop(settings.shutdown_grace),
        job_workers.stop(settings.shutdown_grace)
    );
    if sweeper.await.is_err() {
        tracing::warn!("the sweeper of abandoned uploads failed");
    }
    if pruner.await.is_err() {
        tracing::warn!("the audit log's pruner failed");
    }
    if token_uses.await.is_err() {
        tracing::warn!("the writer of token uses failed");
    }
    // The last requests' uses, now that none is served any more.
    if let Err(e) = state.services().flush_token_uses().await {
        tracing::warn!(error = %ErrorChain(&e), "cannot write when tokens were last used");
    }
    tracing::info!("shutting down: closing the store");
    if tokio::time::timeout(settings.shutdown_grace, store.close()).await.is_err() {
        tracing::warn!("the store did not close within the grace period");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Aborts the uploads nobody completed before they expired (`data.abandoned_upload_hours`),
/// every ten minutes, until `draining` turns true. Replicas may sweep at once: an abort is
/// idempotent, and the store lets one of them forget each upload.
async fn abort_abandoned_uploads(state: AppState, mut draining: watch::Receiver<bool>) {
    const EVERY: Duration = Duration::from_secs(600);
    const BATCH: u32 = 100;
    loop {
        loop {
            let aborted = match state.services().uploads().abort_expired(BATCH).await {
                Ok(aborted) => aborted,
                Err(e) => {
                    tracing::warn!(error = ?e, "cannot sweep abandoned uploads");
                    0
                }
            };
            if aborted > 0 {
                tracing::info!(aborted, "abandoned uploads aborted");
            }
            // A full batch may have more behind it.
            if aborted < BATCH as usize || *draining.borrow() {
                break;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = draining.wait_for(|d| *d) => return,
        }
    }
}

/// Writes the tokens' uses (`lastUsedAt`) every few seconds until `draining` turns true (the
/// server writes the last ones as it stops): checking a token only reads, so that no request
/// waits for the store's writer.
async fn write_token_uses(state: AppState, mut draining: watch::Receiver<bool>) {
    const EVERY: Duration = Duration::from_secs(5);
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = draining.wait_for(|d| *d) => return,
        }
        if let Err(e) = state.services().flush_token_uses().await {
            tracing::warn!(error = %ErrorChain(&e), "cannot write when tokens were last used; trying again");
        }
    }
}

/// Deletes the audit log's events older than `retention` (`audit.retention_days`), at start and
/// then hourly, until `draining` turns true. Replicas may prune at once: a delete of what is
/// already gone deletes nothing.
async fn prune_audit_log(state: AppState, retention: Duration, mut draining: watch::Receiver<bool>) {
    const EVERY: Duration = Duration::from_secs(3600);
    loop {
        match state.services().audit().prune(retention).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "audit events past their retention deleted"),
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "cannot prune the audit log"),
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = draining.wait_for(|d| *d) => return,
        }
    }
}

/// Serves HTTP/1 on `listener` until `draining` turns true, then stops accepting and lets the
/// open connections finish the requests they are in.
///
/// At most `limits.max_connections` connections are served at once. The loop takes a permit
/// before it accepts, so further connections wait in the kernel's listen queue rather than
/// being accepted and refused: a burst is served late instead of failing, and a waiting
/// connection costs the server no file descriptor. Slots come back as connections close, and
/// the header-read timeout closes the ones that idle or trickle their headers.
async fn serve_http(listener: TcpListener, app: axum::Router, limits: HttpLimits, mut draining: watch::Receiver<bool>) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = draining.wait_for(|d| *d) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            _ = draining.wait_for(|d| *d) => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %ErrorChain(&e), "cannot set TCP_NODELAY");
        }
        // The peer's address, for the audit log.
        let app = app.clone().map_request(move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app)));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %ErrorChain(&e), "connection closed with an error");
            }
            drop(permit);
        });
    }
    // New connections are refused from here on; open ones finish their current request.
    drop(listener);
    graceful.shutdown().await;
}

/// An accept that failed. A connection reset before it was accepted concerns that connection
/// only; anything else (out of file descriptors, say) would fail again at once, so the loop
/// pauses instead of spinning.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %ErrorChain(e), "cannot accept a connection; trying again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Creates the data directory, readable by its owner only, if it does not exist, and warns
/// when an existing one is open to others: its files are private, but their names and sizes
/// are not, and a directory others may write to lets them swap files.
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).with_context(|| format!("creating the data directory {}", dir.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let metadata =
            std::fs::metadata(dir).with_context(|| format!("reading the data directory {}", dir.display()))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %dir.display(),
                mode = format!("{mode:04o}"),
                "the data directory is open to others than its owner; make it private: chmod 700 {}",
                dir.display()
            );
        }
    }
    Ok(())
}

/// The master key: `BYOS_MASTER_KEY` (base64), or the file `BYOS_MASTER_KEY_FILE` names, or
/// `master.key` in the data directory, created on first start. A key file must be private to
/// its owner (mode 0600 or 0400).
fn master_key(settings: &Settings) -> anyhow::Result<MasterKey> {
    let from_env = std::env::var("BYOS_MASTER_KEY").ok().filter(|v| !v.is_empty());
    let from_file = std::env::var("BYOS_MASTER_KEY_FILE").ok().filter(|v| !v.is_empty());
    match (from_env, from_file) {
        (Some(_), Some(_)) => bail!("set BYOS_MASTER_KEY or BYOS_MASTER_KEY_FILE, not both"),
        (Some(value), None) => MasterKey::from_base64(&value).context("BYOS_MASTER_KEY"),
        (None, Some(path)) => MasterKey::from_file(Path::new(&path)).context("BYOS_MASTER_KEY_FILE"),
        (None, None) => {
            let path = settings.path_in_data_dir(MASTER_KEY_FILE);
            let (key, created) = MasterKey::load_or_create(&path)?;
            if created {
                tracing::warn!(
                    path = %path.display(),
                    "created a new master key; back it up: the stored secrets cannot be read without it"
                );
            }
            Ok(key)
        }
    }
}

/// Writes the first admin token to `admin-token` (0600) and shows it once.
fn announce_admin_token(settings: &Settings, first: &FirstStart) -> anyhow::Result<()> {
    let path = settings.path_in_data_dir(ADMIN_TOKEN_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("replacing {}", path.display())),
    }
    byos_secrets::write_private_file(&path, format!("{}\n", first.token.expose()).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    #[allow(clippy::print_stdout, reason = "the first admin token is shown once, to the operator")]
    if first.preset {
        println!("byos: the first admin token is BYOS_ADMIN_TOKEN's value; also written to {}", path.display());
    } else {
        println!("byos: first admin token (shown once, also written to {}):\n{}", path.display(), first.token.expose());
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
