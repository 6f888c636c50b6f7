//! The `byos` binary end to end (started on a free port with a fresh data directory, on SQLite
//! and on PostgreSQL), the bucket owner's tools against moto, and the tidy checks that keep the
//! repository true to ARCHITECTURE.md.

// Helpers of a test binary may unwrap too: a test fails by panicking (clippy.toml covers
// only `#[test]` functions and `#[cfg(test)]` modules).
#![allow(clippy::unwrap_used)]

mod aws_tools;
mod client;
mod console;
mod owner;
mod serve;
mod sync;
mod tidy;
