//! The rules of byos's resources, whatever interface asks: storage credentials, storage
//! configurations, API tokens, projects and their data, and the audit log. The HTTP API calls them, and so will the
//! console's server side; nothing here knows HTTP.
//!
//! [`Services`] holds what the rules need: the store, the master key, the region table, the
//! lifecycle, the sync engine and the job engine. Each resource has a handle ([`Services::credentials`],
//! [`Services::projects`], ...) whose operations take the [`Caller`], so that who may see and do
//! what is decided here and not by each interface.
//!
//! Requests come as a client sends them (`Option<String>` fields) and are checked here, in the
//! order that gives the catalogue's most specific message first. Messages name the fields as the
//! API spells them (`storageConfigurationId`): the console and the CLI show the same fields.
//! Answers are the catalog's models; failures are a [`ServiceError`].

mod audit;
mod bootstrap;
mod caller;
mod changes;
mod configurations;
mod credentials;
mod data;
mod error;
mod jobs;
mod pages;
mod projects;
mod sessions;
#[cfg(test)]
mod testing;
mod tokens;
mod transfers;
mod uploads;

use std::sync::Arc;

use byos_buckets::Buckets;
use byos_catalog::Store;
use byos_domain::RegionTable;
use byos_lifecycle::Lifecycle;
use byos_secrets::MasterKey;
use byos_sync::SyncEngine;
use time::OffsetDateTime;

pub use audit::{Audit, AuditPage, AuditRequest};
pub use bootstrap::{BootstrapError, FirstStart, check_master_key, ensure_admin_token};
/// A presigned request, as uploads and downloads answer it.
pub use byos_aws::Presigned;
pub use byos_jobs::{CopySettings, JobSettings, Jobs as JobEngine};
pub use caller::{Access, Caller, ProjectScope, Read, ReadWrite};
pub use changes::{Changes, Deleted, Moved};
pub use configurations::{ConfigurationRequest, Configurations, EncryptionRequest};
pub use credentials::{CredentialDetails, CredentialRequest, Credentials, RotationRequest};
pub use data::{ArchiveState, BrowseRequest, Data, Listing, archive_state};
pub use error::{Internal, ServiceError};
pub use jobs::{CopyRequest, Jobs, MAX_COPY_PATHS, ReportPage};
pub use projects::{CreatedProject, ProjectRequest, Projects};
pub use sessions::{ConsoleSession, SESSION_LIFETIME, Sessions, SignedIn};
pub use tokens::{CreatedToken, GrantRequest, TokenRequest, Tokens};
pub use transfers::{CredentialsRequest, DataSettings, DownloadRequest, DownloadUrl, TemporaryCredentials, Transfers};
pub use uploads::{MAX_OBJECT_BYTES, StartedUpload, UploadRequest, UploadSettings, UploadState, Uploads};

/// What the rules work with. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct Services {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    master_key: MasterKey,
    regions: RegionTable,
    buckets: Buckets,
    lifecycle: Lifecycle,
    sync: SyncEngine,
    jobs: byos_jobs::Jobs,
    data: DataSettings,
    vends: transfers::VendCounter,
    token_uses: tokens::TokenUses,
}

/// What the services are built on: the store, the keys, the bucket opener and the engines.
#[derive(Debug, Clone)]
pub struct Parts {
    pub store: Store,
    pub master_key: MasterKey,
    pub regions: RegionTable,
    pub buckets: Buckets,
    pub lifecycle: Lifecycle,
    pub sync: SyncEngine,
    pub jobs: byos_jobs::Jobs,
    pub data: DataSettings,
}

impl Services {
    pub fn new(parts: Parts) -> Services {
        let Parts { store, master_key, regions, buckets, lifecycle, sync, jobs, data } = parts;
        let vends = transfers::VendCounter::default();
        let token_uses = tokens::TokenUses::default();
        let inner = Inner { store, master_key, regions, buckets, lifecycle, sync, jobs, data, vends, token_uses };
        Services { inner: Arc::new(inner) }
    }

    /// Storage credentials: System Settings.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials::new(self)
    }

    /// Storage configurations: System Settings.
    pub fn configurations(&self) -> Configurations<'_> {
        Configurations::new(self)
    }

    /// API tokens, and the caller a presented token makes.
    pub fn tokens(&self) -> Tokens<'_> {
        Tokens::new(self)
    }

    /// Console sessions: signing in with a token, and out.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions::new(self)
    }

    /// Projects and their reconciles.
    pub fn projects(&self) -> Projects<'_> {
        Projects::new(self)
    }

    /// A project's data.
    pub fn data(&self) -> Data<'_> {
        Data::new(self)
    }

    /// Folders, deletes and versions of a project's data.
    pub fn changes(&self) -> Changes<'_> {
        Changes::new(self)
    }

    /// Uploads straight to the bucket, single or in parts.
    pub fn uploads(&self) -> Uploads<'_> {
        Uploads::new(self)
    }

    /// Jobs: folder deletes and moves, as they run.
    pub fn jobs(&self) -> Jobs<'_> {
        Jobs::new(self)
    }

    /// The audit log: recorded by the interfaces, read by admins.
    pub fn audit(&self) -> Audit<'_> {
        Audit::new(self)
    }

    /// Downloads and uploads of a project's data.
    pub fn transfers(&self) -> Transfers<'_> {
        Transfers::new(self)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.inner.master_key
    }

    pub fn regions(&self) -> &RegionTable {
        &self.inner.regions
    }

    /// The opener of customers' buckets, shared with the lifecycle and the sync engine.
    pub fn buckets(&self) -> &Buckets {
        &self.inner.buckets
    }

    pub fn data_settings(&self) -> &DataSettings {
        &self.inner.data
    }

    fn vends(&self) -> &transfers::VendCounter {
        &self.inner.vends
    }

    fn token_uses(&self) -> &tokens::TokenUses {
        &self.inner.token_uses
    }

    /// Writes the token uses noted since the last call (each token's `lastUsedAt`) in one
    /// transaction; returns how many. Uses that could not be written are kept for the next call.
    pub async fn flush_token_uses(&self) -> Result<usize, ServiceError> {
        let uses = self.token_uses().take();
        let count = uses.len();
        if let Err(e) = self.store().tokens.note_token_uses(&uses).await {
            self.token_uses().restore(uses);
            return Err(error::internal(e));
        }
        Ok(count)
    }

    pub fn lifecycle(&self) -> &Lifecycle {
        &self.inner.lifecycle
    }

    pub fn sync(&self) -> &SyncEngine {
        &self.inner.sync
    }

    /// The job engine, which the workers of `byos serve` run.
    pub fn job_engine(&self) -> &byos_jobs::Jobs {
        &self.inner.jobs
    }
}

/// The current time at the store's resolution (milliseconds), so that what a create answers
/// equals what a later read returns.
fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_millisecond(t.millisecond()).unwrap_or(t)
}

/// A required field's value, or the message that says it is missing.
fn required<'a>(field: &str, value: Option<&'a str>) -> Result<&'a str, String> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(format!("{field}: required")),
    }
}
