//! The schema's migrations, built into the binary: each file of `migrations/sqlite` and
//! `migrations/postgres`, read at compile time and handed to sqlx's migrator as it would read
//! the folder (the version before the first `_`, the rest of the name as the description, the
//! file's SHA-384 as its checksum, `-- no-transaction` honoured), so a database migrated by one
//! build is recognised by the next.
//!
//! sqlx's `migrate!` macro does the same, but it comes with sqlx's procedural macros, which
//! build both database drivers (SQLite's C source included), tokio and the TLS stack a second
//! time, for the compiler's host, in every cold build. A test checks that these lists and the
//! folders hold the same migrations.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

use crate::{Backend, OpenError};

/// One database's migrations up to a version: a [`MigrationSource`] for
/// [`sqlx::migrate::Migrator::new`].
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    files: &'static [(&'static str, &'static str)],
    up_to: i64,
}

impl Migrations {
    /// Every migration of `backend`'s schema.
    pub fn of(backend: Backend) -> Migrations {
        let files = match backend {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        };
        Migrations { files, up_to: i64::MAX }
    }

    /// Only the migrations up to `version`: a database as an earlier build left it.
    pub fn up_to(self, version: i64) -> Migrations {
        Migrations { up_to: version, ..self }
    }

    fn resolve_now(self) -> Result<Vec<Migration>, BoxDynError> {
        let mut migrations = Vec::with_capacity(self.files.len());
        for &(name, sql) in self.files {
            let (version, rest) =
                name.split_once('_').ok_or_else(|| format!("migration {name}: no `_` in its name"))?;
            let version: i64 = version.parse().map_err(|_| format!("migration {name}: no version before its `_`"))?;
            if version > self.up_to {
                continue;
            }
            let kind = MigrationType::from_filename(rest);
            let description = rest.trim_end_matches(kind.suffix()).replace('_', " ");
            let no_tx = sql.starts_with("-- no-transaction");
            migrations.push(Migration::new(version, Cow::Owned(description), kind, Cow::Borrowed(sql), no_tx));
        }
        migrations.sort_by_key(|m| m.version);
        Ok(migrations)
    }
}

impl MigrationSource<'static> for Migrations {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        Box::pin(std::future::ready(self.resolve_now()))
    }
}

/// The migrator of `backend`'s schema.
pub(crate) async fn migrator(backend: Backend) -> Result<Migrator, OpenError> {
    Migrator::new(Migrations::of(backend)).await.map_err(|e| OpenError::Migrate(Box::new(e)))
}

/// `SQLITE` and `POSTGRES`: each file name with the file of each folder (every migration is
/// written for both databases, under one name).
macro_rules! both {
    ($($name:literal),* $(,)?) => {
        const SQLITE: &[(&str, &str)] = &[$(($name, include_str!(concat!("../../migrations/sqlite/", $name)))),*];
        const POSTGRES: &[(&str, &str)] = &[$(($name, include_str!(concat!("../../migrations/postgres/", $name)))),*];
    };
}

// Append-only, like the files themselves (the tidy test pins each file's hash).
both!(
    "0001_foundation.sql",
    "0002_lifecycle.sql",
    "0003_projects.sql",
    "0004_token_expiry.sql",
    "0005_interrupted_runs_and_bucket_owners.sql",
    "0006_uploads.sql",
    "0007_jobs.sql",
    "0008_console_sessions.sql",
    "0009_copy_jobs.sql",
    "0010_audit_events.sql",
    "0011_outside_changes.sql",
    "0012_reconcile_baselines.sql",
    "0013_catalog_by_project_key.sql",
    "0014_catalog_without_foreign_keys.sql",
);

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// What sqlx reads from the folder, as `migrate!` would have built in.
    async fn from_folder(folder: &str) -> Vec<(i64, String, Vec<u8>, bool, bool)> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(folder);
        let migrator = Migrator::new(path.as_path()).await.expect("the folder's migrations");
        summary(&migrator)
    }

    fn summary(migrator: &Migrator) -> Vec<(i64, String, Vec<u8>, bool, bool)> {
        migrator
            .iter()
            .map(|m| {
                (m.version, m.description.to_string(), m.checksum.to_vec(), m.no_tx, m.migration_type.is_up_migration())
            })
            .collect()
    }

    #[tokio::test]
    async fn the_built_in_migrations_are_the_folders() {
        for (backend, folder) in [(Backend::Sqlite, "sqlite"), (Backend::Postgres, "postgres")] {
            let built_in = Migrator::new(Migrations::of(backend)).await.expect("the built-in migrations");
            assert_eq!(
                summary(&built_in),
                from_folder(folder).await,
                "migrations/{folder} and the list in sql/migrations.rs differ: list every file there"
            );
        }
    }

    #[tokio::test]
    async fn an_earlier_schema_stops_at_its_version() {
        let migrator = Migrator::new(Migrations::of(Backend::Sqlite).up_to(12)).await.expect("migrations");
        let versions: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        assert_eq!(versions, (1..=12).collect::<Vec<i64>>());
    }
}
