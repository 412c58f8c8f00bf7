//! `test`: build the module for `wasm32-wasip2` (as `build` does, with its
//! contract checks), then run the module's own tests on this machine with
//! `cargo test`. Those tests start a real host with `kontor-test` and
//! install the component just built, so a test never runs yesterday's code.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The module folder and the profile, as for `build`.
    #[command(flatten)]
    build: crate::build::Args,
    /// Passed on to `cargo test` (after `--`): a test name filter,
    /// `--nocapture`...
    #[arg(last = true)]
    cargo_args: Vec<OsString>,
}

/// Build, then run `cargo test` in the module folder with its output on
/// the terminal; exit with its status.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::build::run(args.build.clone())?;
    let wasm = built_wasm(&args.build.dir, args.build.release)?;
    println!("testing with {}", wasm.display());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // The tests themselves build in the debug profile either way: only the
    // component differs.
    cmd.arg("test").current_dir(&args.build.dir);
    cmd.args(&args.cargo_args)
        // The harness installs exactly what was just built.
        .env(kontor_test::build_output::WASM_ENV, &wasm);
    let status = cmd
        .status()
        .context("running cargo test (is cargo on PATH?)")?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Ended by a signal.
        None => ExitCode::FAILURE,
    })
}

/// Where cargo put the module's component for this profile: asked of
/// `cargo metadata`, so a target dir set anywhere (environment, config,
/// workspace) is found.
pub fn built_wasm(dir: &Path, release: bool) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(dir)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
    let target = meta["target_directory"]
        .as_str()
        .context("cargo metadata names no target directory")?;
    let name = kontor_test::build_output::lib_name(dir)?;
    let wasm = Path::new(target)
        .join(kontor_test::build_output::TARGET)
        .join(if release { "release" } else { "debug" })
        .join(format!("{name}.wasm"));
    if !wasm.is_file() {
        bail!("the build made no {}", wasm.display());
    }
    Ok(wasm)
}
