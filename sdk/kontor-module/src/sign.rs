//! `sign`: add or replace a package's signature, in place.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kontor::modules::{package, trust};

/// Arguments of `sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The private key file (`<key_id>.key` from `keygen`).
    #[arg(long)]
    key: PathBuf,
    /// The package to sign.
    package: PathBuf,
}

/// Sign, then replace the file in one rename, so an interrupted run never
/// leaves half a package.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (key_id, key) = trust::read_signing_key(&args.key)?;
    let bytes = std::fs::read(&args.package)
        .with_context(|| format!("reading {}", args.package.display()))?;
    let signed = package::sign(&bytes, &key)?;
    let mut tmp = args.package.clone().into_os_string();
    tmp.push(".signing");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, &signed).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.package)
        .with_context(|| format!("replacing {}", args.package.display()))?;
    println!("signed {} with key {key_id}", args.package.display());
    Ok(ExitCode::SUCCESS)
}
