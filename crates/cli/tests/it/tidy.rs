//! Tidy checks: the repository stays true to ARCHITECTURE.md. Run with `UPDATE_EXPECT=1` to
//! rewrite the committed OpenAPI document after an API change.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|e| panic!("{e}"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn crates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no package name"))
        .to_owned()
}

#[test]
fn every_crate_is_in_the_code_map() {
    let architecture = read(&root().join("ARCHITECTURE.md"));
    for dir in crates() {
        let name = package_name(&read(&dir.join("Cargo.toml")));
        let folder = format!("crates/{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or_default());
        assert!(
            architecture.contains(&format!("`{name}`")) && architecture.contains(&format!("`{folder}`")),
            "ARCHITECTURE.md's code map does not name `{name}` in `{folder}`"
        );
    }
}

#[test]
fn every_source_file_starts_with_a_doc_comment() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    for file in files {
        let text = read(&file);
        assert!(text.starts_with("//!"), "{} does not start with a `//!` line saying what it is", file.display());
    }
}

/// Dependencies that only their own crates may use, and the folders allowed to.
const CONFINED: [(&str, &str, &[&str]); 3] = [
    ("aws-sdk-", "aws_sdk_", &["crates/aws"]),
    ("aws-config", "aws_config", &["crates/aws"]),
    // The test support crate creates the test databases.
    ("sqlx", "sqlx::", &["crates/catalog", "crates/test-support"]),
];

#[test]
fn adapters_stay_in_their_crates() {
    for dir in crates() {
        let folder = format!("crates/{}", dir.file_name().and_then(|n| n.to_str()).unwrap_or_default());
        let manifest = read(&dir.join("Cargo.toml"));
        let mut files = Vec::new();
        rust_files(&dir, &mut files);
        for (dependency, path, allowed) in CONFINED {
            if allowed.contains(&folder.as_str()) {
                continue;
            }
            let declared = manifest.lines().any(|l| l.trim_start().starts_with(dependency));
            assert!(!declared, "{folder}/Cargo.toml depends on {dependency}, which belongs to {allowed:?}");
            // This file names them to check for them.
            for file in files.iter().filter(|f| !f.ends_with("tests/it/tidy.rs")) {
                assert!(!read(file).contains(path), "{} names {path}, which belongs to {allowed:?}", file.display());
            }
        }
    }
}

#[test]
fn the_committed_openapi_document_is_current() {
    let path = root().join("docs/openapi.json");
    let generated = byos_api::openapi_json();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{e}"));
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed == generated, "docs/openapi.json is stale: run `UPDATE_EXPECT=1 cargo test -p byos tidy`");
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read(&root().join("README.md"));
    let ci = read(&root().join(".ci/run"));
    let head: String = readme.lines().take(12).collect::<Vec<_>>().join("\n");
    for command in ["cargo run --release -p byos -- serve", "scripts/test"] {
        assert!(head.contains(command), "the README's first lines do not give `{command}`");
    }
    assert!(ci.lines().any(|l| l.trim_start().starts_with("scripts/test")), ".ci/run does not call scripts/test");
}
