//! `pack`: a manifest, a component and extra files into an unsigned `.kmod`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use kontor::modules::manifest::Manifest;
use kontor::modules::package::{self, COMPONENT_PREAMBLE};

/// Arguments of `pack`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The module's `module.toml`.
    #[arg(long)]
    manifest: PathBuf,
    /// The built component (`target/wasm32-wasip2/release/<name>.wasm`).
    #[arg(long)]
    wasm: PathBuf,
    /// A `templates`, `assets` or `locales` folder to carry (repeatable).
    #[arg(long)]
    include: Vec<PathBuf>,
    /// The package to write.
    #[arg(long)]
    out: PathBuf,
}

/// Check everything a server would, then write the package.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("reading {}", args.manifest.display()))?;
    let manifest = Manifest::parse(&args.manifest.display().to_string(), &text)?;
    let wasm =
        std::fs::read(&args.wasm).with_context(|| format!("reading {}", args.wasm.display()))?;
    check_component(&args.wasm.display().to_string(), &wasm)?;
    let mut extra = Vec::new();
    for dir in &args.include {
        extra.extend(crate::include::collect(dir)?);
    }
    let bytes = package::pack(&text, &wasm, &extra)?;
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "packed {} {} into {} ({} extra files, {} bytes, unsigned; sign it with `kontor-module sign --key <file> {}`)",
        manifest.id,
        manifest.version,
        args.out.display(),
        extra.len(),
        bytes.len(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A component starts with the wasm magic and the component version/layer;
/// say which mistake it is when it does not.
fn check_component(file: &str, wasm: &[u8]) -> anyhow::Result<()> {
    if package::is_component(wasm) {
        return Ok(());
    }
    if wasm.starts_with(b"\0asm") {
        bail!(
            "{file} is a core WebAssembly module, not a component (it must start with {COMPONENT_PREAMBLE:02x?}); build it for wasm32-wasip2"
        );
    }
    bail!("{file} is not WebAssembly (it must start with {COMPONENT_PREAMBLE:02x?})")
}
