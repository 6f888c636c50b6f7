//! The API's tests, through `Router::oneshot` on a real SQLite store: authorization of every
//! route, each resource's behaviour, catalogue messages, bad input, and secrets kept out of
//! every response and log line.

mod authorization;
mod bad_input;
mod configurations;
mod credentials;
mod metrics;
mod projects;
mod reference;
mod support;
mod tokens;
