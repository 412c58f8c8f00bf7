//! Finding the module under test: its `module.toml` and the component
//! `kontor-module build` (or `cargo build --target wasm32-wasip2`) made.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context};

/// The Rust target modules compile to.
pub const TARGET: &str = "wasm32-wasip2";

/// Environment variable naming the component to test, overriding the search
/// (`kontor-module test` sets it to what it just built).
pub const WASM_ENV: &str = "KONTOR_TEST_WASM";

/// The library name cargo gives the module's `.wasm`: `[lib] name`, or the
/// package name with `-` as `_` (`my-module` builds `my_module.wasm`).
pub fn lib_name(module_dir: &Path) -> anyhow::Result<String> {
    let path = module_dir.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let lib = doc
        .get("lib")
        .and_then(|l| l.get("name"))
        .and_then(|n| n.as_str());
    let package = doc
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str());
    match lib.or(package) {
        Some(name) => Ok(name.replace('-', "_")),
        None => bail!("{}: no [package] name", path.display()),
    }
}

/// Target folders the build output may be in, most likely first: the one
/// this test binary was built in (`<target>/debug/deps/<test>`), then
/// `CARGO_TARGET_DIR`, then `<module>/target`.
fn target_dirs(module_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // Any ancestor that holds a wasm32-wasip2 folder: works for
        // `--target-dir`, workspaces and `cargo test --target <host>`.
        if let Some(dir) = exe.ancestors().find(|a| a.join(TARGET).is_dir()) {
            dirs.push(dir.to_path_buf());
        }
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        dirs.push(if dir.is_absolute() {
            dir
        } else {
            module_dir.join(dir)
        });
    }
    dirs.push(module_dir.join("target"));
    dirs
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The component of the module in `module_dir`: [`WASM_ENV`] if set, else
/// the newest of the debug and release builds in the first target folder
/// that has one.
pub fn find_wasm(module_dir: &Path) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(WASM_ENV) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("{WASM_ENV}={}: no such file", path.display());
        }
        return Ok(path);
    }
    let name = lib_name(module_dir)?;
    let file = format!("{name}.wasm");
    let dirs = target_dirs(module_dir);
    for dir in &dirs {
        let newest = ["debug", "release"]
            .iter()
            .map(|profile| dir.join(TARGET).join(profile).join(&file))
            .filter(|p| p.is_file())
            .max_by_key(|p| modified(p));
        if let Some(path) = newest {
            warn_if_stale(module_dir, &path);
            return Ok(path);
        }
    }
    bail!(
        "no built component {file} for the module in {} (looked in {}); run `kontor-module test`, which builds it first, or `kontor-module build` before `cargo test`",
        module_dir.display(),
        dirs.iter()
            .map(|d| d.join(TARGET).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Say so when a source file is newer than the component: the test would
/// run yesterday's module.
fn warn_if_stale(module_dir: &Path, wasm: &Path) {
    let Some(built) = modified(wasm) else {
        return;
    };
    let mut newer = None;
    let mut stack = vec![module_dir.join("src")];
    stack.push(module_dir.join("module.toml"));
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if modified(&path).is_some_and(|m| m > built) {
            newer = Some(path);
            break;
        }
    }
    if let Some(path) = newer {
        eprintln!(
            "kontor-test: warning: {} changed after {} was built; run `kontor-module test` (it builds first) to test the current code",
            path.display(),
            wasm.display()
        );
    }
}
