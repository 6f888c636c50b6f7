//! Rebuilds the crate when a migration file is added or changed: `sqlx::migrate!` embeds the
//! migrations at compile time, and cargo does not watch those files by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
