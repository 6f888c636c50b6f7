//! The store's SQL, written once for both databases: [`SqlStore<D>`] implements every store
//! trait for a database `D` that is a [`Dialect`], SQLite ([`sqlite`]) or PostgreSQL
//! ([`postgres`]). The statements use `$N` parameters and the SQL both databases accept, bound
//! with each one's native types; the few places where the two differ are the items of
//! [`Dialect`] (starting a write transaction, locking a table, the database's clock, the JSON
//! aggregate of a browse page, the bulk statements of a catalog batch) and the pools each one's
//! `open` hands the store.
//!
//! One module per aggregate: [`configurations`] (credentials and configurations), [`tokens`],
//! [`meta`] (leases and the store's own facts), [`projects`], [`data`] (the projects' catalog),
//! [`sync`] (reconcile runs and dead letters), [`uploads`], [`jobs`] and [`audit`] (the audit log).
//! The schema's [`migrations`] are built in.
//!
//! # The where-clauses
//!
//! sqlx says what a database supports through trait impls on concrete types
//! (`&mut SqliteConnection: Executor`, `String: Encode<'_, Sqlite>`, ...), so code generic over
//! the database has to ask for each of them. Rust implies a trait's supertraits wherever the
//! trait is a bound, but not its other where-clauses, so no trait can carry these for us: every
//! `impl` over `D: Dialect` states the same where-clause, in full:
//!
//! ```text
//! where
//!     for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
//!     for<'q> D::Arguments<'q>: IntoArguments<'q, D>,
//!     for<'q> &'q str: Encode<'q, D> + Type<D> + ColumnIndex<D::Row>,
//!     for<'q> Option<&'q str>: Encode<'q, D>,
//!     usize: ColumnIndex<D::Row>,
//!     String: ColumnType<D>,
//!     Option<String>: ColumnType<D>,
//!     i64: ColumnType<D>,
//!     Option<i64>: ColumnType<D>,
//!     bool: ColumnType<D>,
//!     Vec<u8>: ColumnType<D>,
//! ```
//!
//! Line by line:
//!
//! - `for<'c> &'c mut D::Connection: Executor<'c, Database = D>`: statements run in a
//!   transaction (`&mut *tx`), and on a pool (sqlx's impl for `&Pool<D>` asks for this);
//! - `for<'q> D::Arguments<'q>: IntoArguments<'q, D>`: statements take bound parameters;
//! - `for<'q> &'q str: Encode<'q, D> + Type<D> + ColumnIndex<D::Row>` and
//!   `usize: ColumnIndex<D::Row>`: text parameters borrowed from the caller, and columns read by
//!   name ([`row!`]) or by position (tuples, `query_scalar`);
//! - `String: ColumnType<D>`, `i64`, `bool`, `Vec<u8>`, and `Option<String>`, `Option<i64>` and
//!   `Option<&str>` (sqlx encodes `Option<T>` per database, not for every `T` that it encodes):
//!   the Rust types of the catalog's columns. [`ColumnType`] gathers a type's three bounds
//!   (`Encode`, `Decode`, `Type`) as its supertraits, which Rust does imply.
//!
//! The compiler checks that both databases meet it where each one's `open` makes its store
//! ([`SqlStore::into_store`]); a statement that binds or reads a type the clause lacks fails to
//! compile, for both databases at once.
//!
//! Statements with a run of parameters (a chunk of keys) are written out as text with numbered
//! parameters, not with sqlx's `QueryBuilder`: over a generic `D`, the builder's arguments
//! (`D::Arguments<'args>`) cannot be shortened to the borrow that runs it, so the builder could
//! never be dropped after it ran.

/// A struct of a statement's columns, read by name: the struct, and the `sqlx::FromRow` impl that
/// `#[derive(sqlx::FromRow)]` would write, for any database whose rows decode its fields' types.
/// sqlx's derive comes with its procedural macros, which build both drivers a second time for the
/// compiler's host ([`migrations`] says why that matters).
macro_rules! row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $($field_vis:vis $field:ident: $ty:ty),* $(,)? }
    ) => {
        $(#[$meta])*
        $vis struct $name { $($field_vis $field: $ty),* }

        impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for $name
        where
            &'static str: sqlx::ColumnIndex<R>,
            $($ty: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,)*
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Ok($name { $($field: row.try_get(stringify!($field))?),* })
            }
        }
    };
}
pub(crate) use row;

pub(crate) mod audit;
pub(crate) mod configurations;
pub(crate) mod data;
pub(crate) mod jobs;
pub(crate) mod meta;
pub(crate) mod migrations;
pub(crate) mod postgres;
pub(crate) mod projects;
pub(crate) mod sqlite;
pub(crate) mod sync;
pub(crate) mod tokens;
pub(crate) mod uploads;

use std::future::Future;
use std::sync::Arc;

use sqlx::{Database, Decode, Encode, Pool, Transaction, Type};
use uuid::Uuid;

use crate::data::FileEntry;
use crate::{
    AuditStore, Backend, Closer, ConfigurationStore, CredentialStore, DataStore, JobStore, LeaseStore, MetaStore,
    ProjectStore, Result, Store, StoreError, SyncStore, TokenStore, UploadStore,
};

/// What differs between the databases the store runs on; everything else is shared SQL.
pub(crate) trait Dialect: Database {
    const BACKEND: Backend;

    /// The statement that folds a page of entries (the rows of the query `rows`) into one JSON
    /// array of arrays in [`data::ENTRY_COLUMNS`] order (see [`data::entries_from_json`]),
    /// folders first, each kind by name.
    fn entries_page(rows: &str) -> String;

    /// The database's clock in Unix milliseconds, for leases.
    const NOW_MS: &'static str;

    /// Writes parameter `index` of a generated statement, whose parameters come in order and
    /// each once: `$3` on PostgreSQL, a bare `?` on SQLite. SQLite takes `$3` and `?3` too, but
    /// as named parameters, and binding one looks its name up in a list: a multi-row insert of
    /// 500 rows of 4 parameters made applying a big batch 8 times as slow.
    fn write_parameter(sql: &mut String, index: usize);

    /// The stored rows of a project's `keys` (sorted byte by byte, unique; those it has), in a
    /// batch's transaction. Projects are named by their key (`projects.key`) in the catalog's
    /// tables.
    fn load_states(
        tx: &mut Transaction<'static, Self>,
        project: i64,
        keys: &[&str],
    ) -> impl Future<Output = sqlx::Result<Vec<data::KeyRow>>> + Send;

    /// The rows of a project's folders at `folders` (`(parent, name)` pairs, unique; those it
    /// has), in a batch's transaction: each one's parent, name, count of children and marker.
    fn load_folders(
        tx: &mut Transaction<'static, Self>,
        project: i64,
        folders: &[(&str, &str)],
    ) -> impl Future<Output = sqlx::Result<Vec<(String, String, i64, bool)>>> + Send;

    /// Writes a project's keys' states (`(key, state as JSON)`, keys unique) at `revision`:
    /// `new` ones, which the table does not have, and ones that replace the `stored` rows.
    fn write_states(
        tx: &mut Transaction<'static, Self>,
        project: i64,
        revision: i64,
        new: &[(&str, String)],
        stored: &[(&str, String)],
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// Writes a project's file entries (`(parent, name, file)`, paths unique): `new` ones, which
    /// the table does not have, and ones that replace the `stored` rows.
    fn write_files(
        tx: &mut Transaction<'static, Self>,
        project: i64,
        new: &[(&str, &str, &FileEntry)],
        stored: &[(&str, &str, &FileEntry)],
    ) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// How many rows a statement changed (sqlx has no trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Starts a write transaction on the store's writer.
    fn begin_write(writer: &Pool<Self>) -> impl Future<Output = sqlx::Result<Transaction<'static, Self>>> + Send;

    /// Serialises writers of `table` for the rest of the transaction, so that a check that reads
    /// several rows (the last admin token, overlapping prefixes) cannot race another writer.
    /// Plain reads go on.
    fn lock_table(
        tx: &mut Transaction<'static, Self>,
        table: &'static str,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
}

/// A Rust type that columns of database `D` hold, bound as a parameter and read from a row: the
/// three bounds under one name (see the module's documentation).
pub(crate) trait ColumnType<D: Database>: for<'q> Encode<'q, D> + for<'r> Decode<'r, D> + Type<D> {}

impl<D: Database, T> ColumnType<D> for T where T: for<'q> Encode<'q, D> + for<'r> Decode<'r, D> + Type<D> {}

/// The store on database `D`.
pub(crate) struct SqlStore<D: Database> {
    /// Reads.
    pool: Pool<D>,
    /// Writes, transactions and statements of their own alike: on SQLite one connection of its
    /// own (see [`sqlite`]), on PostgreSQL the same pool as `pool`.
    writer: Pool<D>,
}

impl<D: Dialect> SqlStore<D> {
    pub(crate) fn new(pool: Pool<D>, writer: Pool<D>) -> SqlStore<D> {
        SqlStore { pool, writer }
    }

    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, D>> {
        D::begin_write(&self.writer).await
    }

    /// The store, each aggregate's handle on this one.
    pub(crate) fn into_store(self) -> Store
    where
        Self: CredentialStore
            + ConfigurationStore
            + TokenStore
            + LeaseStore
            + MetaStore
            + ProjectStore
            + DataStore
            + SyncStore
            + UploadStore
            + JobStore
            + AuditStore
            + 'static,
    {
        let store = Arc::new(self);
        Store {
            credentials: store.clone(),
            configurations: store.clone(),
            tokens: store.clone(),
            leases: store.clone(),
            meta: store.clone(),
            projects: store.clone(),
            data: store.clone(),
            sync: store.clone(),
            uploads: store.clone(),
            jobs: store.clone(),
            audit: store.clone(),
            backend: D::BACKEND,
            closer: store,
        }
    }
}

#[async_trait::async_trait]
impl<D: Dialect> Closer for SqlStore<D> {
    async fn close(&self) {
        self.pool.close().await;
        // A second close of the same pool (PostgreSQL's writer) returns at once.
        self.writer.close().await;
    }
}

pub(crate) fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table, reason: reason.to_string() }
}

/// A size or a count as the database keeps it (S3's objects are at most 5 TiB, and no bucket
/// holds `i64::MAX` of anything).
pub(crate) fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A catalogue problem kept as its code and its rendered message (both, or neither).
pub(crate) fn stored_problem(
    table: &'static str,
    code: Option<String>,
    message: Option<String>,
) -> Result<Option<byos_domain::Problem>> {
    match (code, message) {
        (Some(code), Some(message)) => {
            let code = byos_domain::ErrorCode::from_code(&code)
                .ok_or_else(|| corrupt(table, format!("error code {code:?}")))?;
            Ok(Some(byos_domain::Problem::restore(code, message)))
        }
        (None, None) => Ok(None),
        _ => Err(corrupt(table, "error code without message, or the reverse")),
    }
}

pub(crate) fn uuid(table: &'static str, s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| corrupt(table, format!("id {s:?}: {e}")))
}

/// The text that names the constraint a unique violation broke, if `e` is one.
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<String> {
    let db = e.as_database_error()?;
    db.is_unique_violation().then(|| format!("{} {}", db.constraint().unwrap_or_default(), db.message()))
}

pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|db| db.is_foreign_key_violation())
}
