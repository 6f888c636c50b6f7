//! A client of the byos API: typed calls (`Api`), login profiles (`Profiles`), and transfers
//! between local files and a project that go straight to S3 over presigned URLs (`transfer`).
//! The `byos` binary's client commands are written over it.

mod api;
mod config;
mod error;
mod remote;
pub mod transfer;

pub use api::{
    Api, AuditActor, AuditEvent, AuditFilter, AuditPage, Change, Check, Configuration, Credentials, DownloadUrl, Entry,
    Job, JobProgress, Page, Project, Rest, SignedPart, Upload, UploadedPart, Validation, Version,
};
pub use config::{DEFAULT_PROFILE, Login, Profiles, write_private};
pub use error::{ClientError, Problem};
pub use remote::{ProjectRemote, Remote};
