//! Build the guest modules in `modules/` for `wasm32-wasip2`, so that a
//! plain `cargo build` / `cargo test` has real components to embed and test
//! with (the way wasmtime's own test-programs are built).
//!
//! The guests build with a cargo of their own, in a target dir of their
//! own (no lock shared with the outer build), with the outer build's
//! environment removed so its flags and target do not leak in.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root");
    let modules = root.join("modules");
    let sdk = root.join("sdk");
    println!("cargo:rerun-if-changed={}", modules.display());
    println!("cargo:rerun-if-changed={}", sdk.display());

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // OUT_DIR is <target>/<profile>/build/<pkg>/out: the guests get
    // <target>/kontor-modules, shared by every profile of the host build.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("kontor-modules"))
        .unwrap_or_else(|| out_dir.join("kontor-modules"));

    ensure_target();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--target")
        .arg(TARGET)
        .arg("--manifest-path")
        .arg(modules.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let keep = key == "CARGO_HOME"
            || key == "CARGO_NET_OFFLINE"
            || key == "CARGO_REGISTRIES_CRATES_IO_PROTOCOL";
        if (key.starts_with("CARGO_") && !keep)
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
        {
            cmd.env_remove(&key);
        }
    }
    // Rust's wasm default stack is 1 MiB; 64 KiB keeps stack, data and heap
    // start inside the part of linear memory the pool keeps resident
    // (engine.rs). A guest that recurses deeper traps, ending only its call.
    cmd.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-C link-arg=-zstack-size=65536",
    );
    let status = cmd.status().expect("run cargo for the guest modules");
    if !status.success() {
        panic!(
            "building the guest modules in {} failed (see the output above)",
            modules.display()
        );
    }
    let artifacts = target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=KONTOR_GUEST_DIR={}", artifacts.display());
    for (crate_name, id) in [
        ("kontor_module_hello", "hello"),
        ("kontor_tickets", "tickets"),
        ("kontor_test_faults", "faults"),
        ("kontor_test_caps", "caps"),
        ("kontor_test_fetch", "fetch"),
    ] {
        let wasm = artifacts.join(format!("{crate_name}.wasm"));
        assert!(
            wasm.exists(),
            "guest {id} was not built: {}",
            wasm.display()
        );
        std::fs::copy(&wasm, out_dir.join(format!("{id}.wasm"))).expect("copy guest");
    }
}

/// Make sure the wasm32-wasip2 target is installed; try to add it once.
fn ensure_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false);
    if installed || sysroot_has_target() {
        return;
    }
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !added {
        panic!("the Rust target {TARGET} is missing and could not be added; run: rustup target add {TARGET}");
    }
}

fn sysroot_has_target() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|sysroot| {
            Path::new(&sysroot)
                .join("lib/rustlib")
                .join(TARGET)
                .exists()
        })
}
