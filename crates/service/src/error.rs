//! [`ServiceError`]: a catalogue problem the caller can act on, or an internal failure whose
//! cause is kept for the log. Interfaces show the first as it is and only an id for the second.
//!
//! The store's answers become problems here: "not found" names the resource asked for, and each
//! [`Conflict`] (a write that would break one of the store's invariants) its catalogue entry.

use byos_catalog::{Conflict, StoreError};
use byos_domain::{ErrorCode, Problem};
use byos_lifecycle::LifecycleError;
use byos_sync::SyncError;
use uuid::Uuid;

/// Why an operation of the services failed.
///
/// Not `#[non_exhaustive]`: interfaces match it exhaustively, so that a new kind of failure
/// must be given its answer everywhere.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request cannot be done as asked: the problem says why and what to do.
    #[error(transparent)]
    Problem(Problem),
    /// The platform failed. The caller learns only that; the cause is for the log.
    #[error(transparent)]
    Internal(#[from] Internal),
}

impl ServiceError {
    /// The problem for the caller, unless the failure is internal.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ServiceError::Problem(problem) => Some(problem),
            ServiceError::Internal(_) => None,
        }
    }
}

impl From<Problem> for ServiceError {
    fn from(problem: Problem) -> ServiceError {
        ServiceError::Problem(problem)
    }
}

impl From<ErrorCode> for ServiceError {
    fn from(code: ErrorCode) -> ServiceError {
        Problem::from(code).into()
    }
}

/// An internal failure, with its cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Internal {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// A bucket that cannot be opened: its credential's secret, or the store.
    #[error(transparent)]
    Open(#[from] byos_buckets::OpenError),
    /// Records that contradict each other.
    #[error("the store is inconsistent: {0}")]
    Inconsistent(String),
    /// A stored secret that cannot be opened, or that does not hold what it should.
    #[error("the sealed secret of storage credential {credential} cannot be read")]
    SealedSecret {
        credential: Uuid,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A store error of an operation on one resource: `resource` names it for the caller
/// ("Storage credential"), `id` is the id asked for.
pub(crate) fn store_error(e: StoreError, resource: &str, id: Uuid) -> ServiceError {
    match e {
        StoreError::NotFound => Problem::not_found(resource, &id.to_string()).into(),
        StoreError::Conflict(c) => conflict(c),
        e => Internal::Store(e).into(),
    }
}

/// A store error where "not found" cannot be the caller's doing.
pub(crate) fn internal(e: impl Into<Internal>) -> ServiceError {
    ServiceError::Internal(e.into())
}

/// The catalogue entry of a conflict.
pub(crate) fn conflict(conflict: Conflict) -> ServiceError {
    let problem = match conflict {
        Conflict::NameTaken { resource, name } => {
            Problem::new(ErrorCode::NameTaken, &[("resource", resource), ("name", &name)])
        }
        Conflict::DefaultForRegionTaken { name, region } => {
            Problem::new(ErrorCode::DefaultForRegionTaken, &[("name", &name), ("region", region.as_str())])
        }
        Conflict::InUse { resource, name, used_by, users } => {
            let users = users.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(", ");
            let resource = capitalise(resource);
            Problem::new(
                ErrorCode::InUse,
                &[("resource", &resource), ("name", &name), ("users", &format!("{used_by}(s) {users}"))],
            )
        }
        Conflict::ProjectPrefixOverlap { name, bucket, prefix } => {
            Problem::new(ErrorCode::ProjectPrefixOverlap, &[("name", &name), ("prefix", &prefix), ("bucket", &bucket)])
        }
        Conflict::LastAdminToken { name } => Problem::new(ErrorCode::LastAdminToken, &[("name", &name)]),
        Conflict::PrefixOverlap { name, bucket, prefix } => {
            let prefix = prefix.map_or_else(|| "the whole".to_owned(), |p| format!("the prefix '{p}'"));
            Problem::new(
                ErrorCode::ConfigurationPrefixOverlap,
                &[("name", &name), ("prefix", &prefix), ("bucket", &bucket)],
            )
        }
    };
    problem.into()
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use byos_domain::AwsRegion;

    use super::*;

    fn check(c: Conflict, expect: Expect) {
        let answer = match conflict(c) {
            ServiceError::Problem(p) => format!("{}: {}", p.entry().code, p.message()),
            ServiceError::Internal(e) => format!("internal: {e}"),
        };
        expect.assert_eq(&answer);
    }

    #[test]
    fn conflicts_have_their_entries() {
        check(
            Conflict::NameTaken { resource: "project", name: "study".to_owned() },
            expect!["name-taken: A project named 'study' already exists"],
        );
        check(
            Conflict::DefaultForRegionTaken {
                name: "genomics".to_owned(),
                region: AwsRegion::parse("eu-central-1").unwrap(),
            },
            expect![
                "default-for-region-taken: Storage configuration 'genomics' is already the default for region eu-central-1"
            ],
        );
        check(
            Conflict::InUse {
                resource: "storage configuration",
                name: "genomics".to_owned(),
                used_by: "project",
                users: vec!["a".to_owned(), "b".to_owned()],
            },
            expect!["in-use: Storage configuration 'genomics' is used by project(s) 'a', 'b'"],
        );
        check(
            Conflict::LastAdminToken { name: "first admin".to_owned() },
            expect![
                "last-admin-token: Token 'first admin' is the last admin token that does not expire, and cannot be deleted"
            ],
        );
        check(
            Conflict::PrefixOverlap { name: "genomics".to_owned(), bucket: "b".to_owned(), prefix: None },
            expect![
                "configuration-prefix-overlap: Storage configuration 'genomics' already uses the whole of bucket 'b', which overlaps this key prefix"
            ],
        );
        check(
            Conflict::PrefixOverlap {
                name: "genomics".to_owned(),
                bucket: "b".to_owned(),
                prefix: Some("data/".to_owned()),
            },
            expect![
                "configuration-prefix-overlap: Storage configuration 'genomics' already uses the prefix 'data/' of bucket 'b', which overlaps this key prefix"
            ],
        );
        check(
            Conflict::ProjectPrefixOverlap {
                name: "study".to_owned(),
                bucket: "b".to_owned(),
                prefix: "data/study/".to_owned(),
            },
            expect![
                "project-prefix-overlap: Project 'study' already owns 'data/study/' of bucket 'b', which overlaps this project's folder"
            ],
        );
    }

    #[test]
    fn not_found_names_the_resource_asked_for() {
        let error = store_error(StoreError::NotFound, "Project", Uuid::nil());
        let message = error.problem().map(Problem::message);
        assert_eq!(message, Some("Project '00000000-0000-0000-0000-000000000000' does not exist"));
        let error =
            store_error(StoreError::Corrupt { table: "projects", reason: "bad".to_owned() }, "Project", Uuid::nil());
        assert!(matches!(error, ServiceError::Internal(Internal::Store(_))), "{error:?}");
    }
}
