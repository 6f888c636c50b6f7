//! The byos domain: regions, validated names, storage credentials and configurations, and the
//! error catalogue. Everything here is pure data and rules; nothing does I/O.
//!
//! Values that reach this crate from the outside (an API request, a configuration file, an AWS
//! response) come in through parse constructors such as [`BucketName::parse`]; once a value has
//! one of these types it is known to be valid, so the rest of the code never checks it again.

mod catalogue;
mod chain;
mod checks;
pub mod cors;
mod dates;
pub mod events;
pub mod iam;
mod names;
pub mod notifications;
pub mod objects;
pub mod policies;
mod region;
pub mod session;
mod storage;
mod token;

pub use catalogue::{CatalogueEntry, ErrorCode, Problem};
pub use chain::ErrorChain;
pub use checks::{Check, PROBE_MARKER, is_probe_key};
pub use names::{
    AccessKeyId, AwsRegion, BucketName, ExternalId, KeyPrefix, KmsKeyArn, NameError, ProjectFolder, ResourceName,
    RoleArn, SecretAccessKey, is_aws_region_id, policy_safe,
};
pub use region::{Region, RegionTable, RegionTableError};
pub use storage::{
    CheckResult, ConfigurationStatus, CredentialKind, ServerSideEncryption, SseAlgorithm, ValidationCheck,
    ValidationReport, VersioningState,
};
pub use token::{ProjectAccess, Role, TokenName};
