//! The `byos` binary end to end (started on a free port with a fresh data directory, on SQLite
//! and on PostgreSQL), the bucket owner's tools against moto, and the tidy checks that keep the
//! repository true to ARCHITECTURE.md.

mod aws_tools;
mod owner;
mod serve;
mod sync;
mod tidy;
