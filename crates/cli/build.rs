//! How the `byos` binary is linked.
#![allow(clippy::print_stdout, reason = "a build script speaks to cargo on stdout")]

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    // Identical code folding: the linker keeps one copy of the functions whose machine code is
    // the same, such as a generic function instantiated alike in several crates; 2 MB less in a
    // 44 MB binary. Rust gives distinct functions no distinct addresses (rustc marks them
    // `unnamed_addr`), so folding them is sound, and lld folds code only, never data such as
    // vtables. Release builds only, since a test binary has no use for the link time it costs;
    // and only where rustc links with its own lld (rustup's toolchains on x86_64 Linux): GNU ld,
    // which a distribution's rustc may use instead, does not know the flag.
    let target = std::env::var("TARGET").unwrap_or_default();
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if target == "x86_64-unknown-linux-gnu" && release && ships_lld(&target) {
        println!("cargo::rustc-link-arg-bins=-Wl,--icf=all");
    }
}

/// Whether the compiler's sysroot has the lld it links this target with.
fn ships_lld(target: &str) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    sysroot.join("lib/rustlib").join(target).join("bin/gcc-ld/ld.lld").is_file()
}
