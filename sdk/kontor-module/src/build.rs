//! `build`: compile a module for `wasm32-wasip2`, then check the component
//! and its manifest against the contract this CLI was built against, and
//! the handlers the component registered against what the manifest
//! declares — so a mismatch shows up here with a fix instead of as a linker
//! error at install or a 404 in production.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use kontor::modules::manifest::Manifest;
use kontor::modules::package;

use crate::component;
use crate::wit::Contract;

/// The Rust target a Kontor module compiles to.
pub const TARGET: &str = "wasm32-wasip2";

/// Arguments of `build`; `test` and `dev` take the same ones (flattened,
/// so no argument group of their own: clap names groups after the type).
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Args {
    /// The module folder (holding `Cargo.toml` and `module.toml`).
    #[arg(long, default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Build with the release profile (what you pack and ship).
    #[arg(long)]
    pub(crate) release: bool,
}

/// Check the manifest, build, check the component, say what is next.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let manifest_path = args.dir.join("module.toml");
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "reading {}: run `kontor-module build` in a module folder or pass --dir (`kontor-module new` makes one)",
            manifest_path.display()
        )
    })?;
    let manifest = Manifest::parse(&manifest_path.display().to_string(), &text)?;
    let id = &manifest.id;
    let contract = Contract::load()?;
    // Before compiling: a wrong requirement is a one-line fix, not a
    // minute of cargo.
    if !manifest.api.matches(&contract.version) {
        bail!(
            "module {id}: {}: `api = \"{}\"` does not accept kontor:module {}, the contract this kontor-module checks against; set `api = \"{}\"` (and depend on the matching kontor-sdk), or use the kontor-module release for the contract you target",
            manifest_path.display(),
            manifest.api,
            contract.version,
            contract.api_requirement()
        );
    }
    if !args.dir.join("Cargo.toml").is_file() {
        bail!(
            "module {id}: no Cargo.toml in {}; a module is a Rust crate next to its module.toml (`kontor-module new` makes one)",
            args.dir.display()
        );
    }
    ensure_target(&args.dir)?;
    let wasm = cargo_build(id, &args.dir, args.release)?;
    let bytes =
        std::fs::read(&wasm).with_context(|| format!("module {id}: reading {}", wasm.display()))?;
    if !package::is_component(&bytes) {
        bail!(
            "module {id}: {} is a core WebAssembly module, not a component; build for {TARGET} (not wasm32-wasip1 or wasm32-unknown-unknown)",
            wasm.display()
        );
    }
    component::check(id, &bytes, &contract)?;
    // What the code registered against what the manifest declares: a
    // declared route without a handler is a 404 nobody expects.
    let handlers = component::describe(id, &bytes, &manifest.api)?;
    let handled = package::check_handlers(&manifest, &handlers);
    for warning in &handled.undeclared {
        eprintln!("warning: {warning}");
    }
    if !handled.is_complete() {
        bail!("{}", handled.missing.join("\nerror: "));
    }
    println!(
        "built module {id} {}: {} ({} bytes, a component for kontor:module {})",
        manifest.version,
        wasm.display(),
        bytes.len(),
        contract.version
    );
    println!(
        "next: kontor-module pack --manifest {} --wasm {} --out {id}.kmod",
        manifest_path.display(),
        wasm.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Run cargo; its diagnostics go to the terminal as usual, its JSON
/// messages tell where the `.wasm` landed (any target dir, any workspace).
fn cargo_build(id: &str, dir: &Path, release: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--target")
        .arg(TARGET)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let output = cmd
        .output()
        .with_context(|| format!("module {id}: running cargo (is it on PATH?)"))?;
    if !output.status.success() {
        bail!(
            "module {id}: cargo build --target {TARGET} failed in {} (its messages are above)",
            dir.display()
        );
    }
    let mut wasm = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if message["reason"] != "compiler-artifact" || !is_cdylib {
            continue;
        }
        let files = message["filenames"].as_array().into_iter().flatten();
        if let Some(file) = files
            .filter_map(|f| f.as_str())
            .find(|f| f.ends_with(".wasm"))
        {
            wasm = Some(PathBuf::from(file));
        }
    }
    wasm.with_context(|| {
        format!(
            "module {id}: cargo built no .wasm library; add `[lib] crate-type = [\"cdylib\"]` to {}",
            dir.join("Cargo.toml").display()
        )
    })
}

/// The standard library for the target must be installed; say how.
/// Asked in the module folder, so a `rust-toolchain.toml` there counts.
fn ensure_target(dir: &Path) -> anyhow::Result<()> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .context("running rustc --print sysroot (is Rust installed?)")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).exists() {
        return Ok(());
    }
    bail!(
        "the Rust target {TARGET} is not installed for {}; run: rustup target add {TARGET}",
        sysroot.display()
    )
}
