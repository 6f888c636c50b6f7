//! Tidy checks: the repository stays true to ARCHITECTURE.md. Run with `UPDATE_EXPECT=1` to
//! rewrite the committed OpenAPI document after an API change.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn crates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
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

/// The modules ARCHITECTURE.md's code map names: the paths of its `- `crates/...rs`` lines.
fn mapped_modules(architecture: &str) -> Vec<String> {
    let mut mapped: Vec<String> = architecture
        .lines()
        .filter_map(|line| line.strip_prefix("- `crates/"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(path, _)| format!("crates/{path}"))
        .collect();
    mapped.sort();
    mapped
}

#[test]
fn the_code_map_names_every_module() {
    let root = root();
    let mut modules: Vec<String> = Vec::new();
    for dir in crates() {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        modules.extend(files.iter().map(|f| f.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/")));
    }
    modules.sort();
    let mapped = mapped_modules(&read(&root.join("ARCHITECTURE.md")));
    let unmapped: Vec<&String> = modules.iter().filter(|m| !mapped.contains(m)).collect();
    let gone: Vec<&String> = mapped.iter().filter(|m| !modules.contains(m)).collect();
    assert!(
        unmapped.is_empty(),
        "ARCHITECTURE.md's code map does not name these modules; add a line `- `path`: what it is.` \
         under its crate: {unmapped:?}"
    );
    assert!(gone.is_empty(), "ARCHITECTURE.md's code map names modules that do not exist: {gone:?}");
}

/// The crates in layers: a crate's dependencies come from lower layers only (test support is for
/// tests, and may depend on anything but is depended on only by tests).
const LAYERS: [&[&str]; 9] = [
    &["byos-domain", "byos-secrets", "byos-client", "byos-console"],
    &["byos-aws", "byos-catalog"],
    &["byos-buckets"],
    &["byos-lifecycle", "byos-sync"],
    &["byos-jobs"],
    &["byos-service"],
    &["byos-api"],
    &["byos"],
    &["byos-test-support"],
];

/// The byos crates a manifest's `[dependencies]` (not its dev-dependencies) name.
fn byos_dependencies(manifest: &str) -> Vec<String> {
    let mut section = "";
    let mut found = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[dependencies]"
            && let Some((name, _)) = line.split_once(['.', ' ', '='])
            && name.starts_with("byos")
        {
            found.push(name.to_owned());
        }
    }
    found
}

#[test]
fn crates_depend_downwards() {
    let layer = |name: &str| {
        LAYERS
            .iter()
            .position(|crates| crates.contains(&name))
            .unwrap_or_else(|| panic!("{name} is in no layer of LAYERS in crates/cli/tests/it/tidy.rs: add it"))
    };
    for dir in crates() {
        let manifest = read(&dir.join("Cargo.toml"));
        let name = package_name(&manifest);
        for dependency in byos_dependencies(&manifest) {
            assert!(
                layer(&dependency) < layer(&name),
                "{name} depends on {dependency}, which is not in a lower layer (ARCHITECTURE.md)"
            );
        }
    }
}

/// The part of a source file that is not its tests.
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or_default()
}

#[test]
fn every_route_is_in_the_openapi_document() {
    let root = root();
    for folder in ["crates/api/src", "crates/cli/src"] {
        let mut files = Vec::new();
        rust_files(&root.join(folder), &mut files);
        for file in files {
            let text = read(&file);
            for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
                assert!(
                    !without_tests(&text).contains(call),
                    "{} registers a route with `{call}`: register it with utoipa_axum's `routes!` \
                     on an `OpenApiRouter`, so that the OpenAPI document (and the authorization and \
                     bad-input tests that walk it) see it",
                    file.display()
                );
            }
        }
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

#[test]
fn the_aws_adapter_compiles_its_calls_itself() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/aws/src"), &mut files);
    for file in files {
        let text = read(&file);
        let lines: Vec<&str> = without_tests(&text).lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with("pub async fn ") {
                continue;
            }
            let mut attributes = lines[..i].iter().rev().take_while(|l| l.trim_start().starts_with("#["));
            assert!(
                attributes.any(|l| l.trim() == "#[boxed]"),
                "{}:{}: a public `async fn` of byos-aws without `#[boxed]`: its body, and the SDK's \
                 request pipeline with it, would be compiled again in every crate that awaits it",
                file.display(),
                i + 1
            );
        }
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
        std::fs::write(&path, &generated).unwrap();
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

/// Every migration file as it was committed, by its SHA-256. A database that has applied a
/// migration never runs it again, so an edited migration changes nothing there and makes fresh
/// databases differ from upgraded ones: a change to the schema is a new migration, for both
/// databases, and its hash goes here.
const MIGRATIONS: [(&str, &str); 28] = [
    ("postgres/0001_foundation.sql", "19995f15a95ab68c03bd1dc3a317acb697727f2c152c3f76b5522710d0550756"),
    ("postgres/0002_lifecycle.sql", "5bb9200e95f5dc57100b491ed623cad5ec4975b5b0d740950caea7e18881620f"),
    ("postgres/0003_projects.sql", "28eba14ece25746099b3752df3770d09c58e3a64d49ce2257c7b11abd3965d74"),
    ("postgres/0004_token_expiry.sql", "72ab1a1e328f5380dd4af103b7f3460091e8e2d20040c08a0b8a289f1cf5216b"),
    (
        "postgres/0005_interrupted_runs_and_bucket_owners.sql",
        "1d847631d6ed8f0c6e77aac3c649df9d85457dd7f4346587a3421e97769dd820",
    ),
    ("postgres/0006_uploads.sql", "45050f30a552a08fd5d9fa2493ee2a17523f62bbc6bc174ceeed48fd79cb45a4"),
    ("postgres/0007_jobs.sql", "c4300877802307df970c52d36d073cd25ccb466c6ffd0f373abdb78088a9be31"),
    ("postgres/0008_console_sessions.sql", "072e095d337c264a50362c005b6e53002e478679124ba77f8e04db86838b25f7"),
    ("postgres/0009_copy_jobs.sql", "a6052ed371030945cec9659c28044e5790554e6ca87f3d45fa08fe455d1b97f1"),
    ("postgres/0010_audit_events.sql", "0d5ffd5b515f7af685fbf4a57a55ef11d605dc24c50caed3e0b528f5040601ae"),
    ("postgres/0011_outside_changes.sql", "fb5dc01241efc00aa7fcc2679e231110476a8f8223fc65a4fae220550e2d027f"),
    ("postgres/0012_reconcile_baselines.sql", "11bd1c86f24847fb89788ad0261163e9fb11003b8425a34a41b6185052f064cf"),
    ("postgres/0013_catalog_by_project_key.sql", "43d04f4d56f1808052c57cc9dba22c87a08c32b854530e5a56cafaef3dfdf288"),
    (
        "postgres/0014_catalog_without_foreign_keys.sql",
        "d22c95c42bbf06ac2f561e6ece7a22c74834db0d34a433d08f73d873e8371c5f",
    ),
    ("sqlite/0001_foundation.sql", "ccf4711d40d790fff698dc66bd25d7f65764b726e3718d561ffff512b0644d0d"),
    ("sqlite/0002_lifecycle.sql", "4ccd8e3ab682b1a5d4b330a55c16d9a2387fe5dadafa3132ac2d20c5dc021b64"),
    ("sqlite/0003_projects.sql", "d0b1b8515d3b1018db2569200dfc77ef52921f9a8df5b6cdf64c46ffc1902145"),
    ("sqlite/0004_token_expiry.sql", "b813d27f8d30d1b9fff208b2d0a56406c2f237d3f9626121efef6113ae231fa9"),
    (
        "sqlite/0005_interrupted_runs_and_bucket_owners.sql",
        "a5e2aab3732854c686ac686524f1bdfe8d15815b7e3fcb51a8ec1746dc0969a5",
    ),
    ("sqlite/0006_uploads.sql", "ce790c69cf74c35a50a479937b254beb9f782c3edd076274e9282578c3ab1720"),
    ("sqlite/0007_jobs.sql", "10f51481d36f8f5f344427a9a700da529333ba016dc4d072601dbfc306d870a1"),
    ("sqlite/0008_console_sessions.sql", "3624b3a1877d0b9aa78cd31ef99812bf3ef4aec25f404b6ac15cebfe678b7c2e"),
    ("sqlite/0009_copy_jobs.sql", "6e83897965da92b9390892522f65dfb3109cebb9f2f90d5f391ca210d214df7f"),
    ("sqlite/0010_audit_events.sql", "0ce3b581f7561a81b78fb8ca4e1d8f0461f42707470d51b39cbdb325baee79c1"),
    ("sqlite/0011_outside_changes.sql", "bfbc1327b270c27fa93dec410fe492610a3bd5b01d65832ccac27246694cefef"),
    ("sqlite/0012_reconcile_baselines.sql", "11bd1c86f24847fb89788ad0261163e9fb11003b8425a34a41b6185052f064cf"),
    ("sqlite/0013_catalog_by_project_key.sql", "849668795ae3b253c7119f05f5d9774e28bf5e5c90a2ffa3a45f2c0069296355"),
    (
        "sqlite/0014_catalog_without_foreign_keys.sql",
        "286ba4bd83d1b1008fce40968d8f79ac6efb46f16f178f8f8bed35b5e111413d",
    ),
];

#[test]
fn migrations_are_append_only() {
    let folder = root().join("crates/catalog/migrations");
    let mut found = Vec::new();
    for database in ["postgres", "sqlite"] {
        let dir = folder.join(database);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
            let hash: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            found.push((format!("{database}/{name}"), hash));
        }
    }
    found.sort();
    for (file, hash) in &found {
        match MIGRATIONS.iter().find(|(listed, _)| listed == file) {
            Some((_, pinned)) => assert!(
                pinned == hash,
                "crates/catalog/migrations/{file} changed (SHA-256 {hash}, committed as {pinned}): \
                 migrations are append-only: restore the file and add a new migration instead"
            ),
            None => panic!(
                "crates/catalog/migrations/{file} is new: add its hash to MIGRATIONS in \
                 crates/cli/tests/it/tidy.rs: (\"{file}\", \"{hash}\")"
            ),
        }
    }
    for (listed, _) in MIGRATIONS {
        assert!(
            found.iter().any(|(file, _)| file == listed),
            "crates/catalog/migrations/{listed} is missing: migrations are append-only, restore it"
        );
    }
    // Both databases get every migration.
    let names = |database: &str| -> Vec<String> {
        found.iter().filter_map(|(file, _)| file.strip_prefix(&format!("{database}/")).map(str::to_owned)).collect()
    };
    assert_eq!(names("postgres"), names("sqlite"), "every migration is written for both databases");
}
