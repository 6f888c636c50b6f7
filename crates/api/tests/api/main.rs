//! The API's tests, through `Router::oneshot` on a real SQLite store: authorization of every
//! route, each resource's behaviour, catalogue messages, bad input, and secrets kept out of
//! every response and log line.

// Helpers of a test binary may unwrap too: a test fails by panicking (clippy.toml covers
// only `#[test]` functions and `#[cfg(test)]` modules).
#![allow(clippy::unwrap_used)]

mod audit;
mod authorization;
mod bad_input;
mod configurations;
mod console;
mod copies;
mod credentials;
mod jobs;
mod metrics;
mod projects;
mod reference;
mod support;
mod tokens;
mod transfers;
mod uploads;
