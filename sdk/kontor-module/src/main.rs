//! `kontor-module`: the module developer's tool. Scaffold a module, build
//! and check it against the contract, make a publisher key, pack a built
//! module into a `.kmod`, sign it, and look inside one — with the same code
//! the server uses to read manifests and open packages (`kontor::modules`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod build;
mod component;
mod dev;
mod include;
mod inspect;
mod keygen;
mod new;
mod pack;
mod sign;
mod test;
mod wit;

/// Scaffold, build, package, sign and inspect Kontor modules.
#[derive(Debug, Parser)]
#[command(name = "kontor-module", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scaffold a module crate: manifest, a route, a page, build settings.
    New(new::Args),
    /// Build a module for wasm32-wasip2 and check it against the contract.
    Build(build::Args),
    /// Build the module, then run its tests (`cargo test`, with kontor-test
    /// installing what was just built into a real host).
    Test(test::Args),
    /// Serve a local host with the module loaded from its build folder;
    /// reload it on every rebuild and print what it logs.
    Dev(dev::Args),
    /// Make a publisher signing key: `<key_id>.key` (secret) and `<key_id>.pub`.
    Keygen(keygen::Args),
    /// Pack a manifest, a built component and extra files into a `.kmod`.
    Pack(pack::Args),
    /// Sign a `.kmod` in place (replacing an earlier signature).
    Sign(sign::Args),
    /// Show what a `.kmod` holds and whether its signature is trusted.
    Inspect(inspect::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New(args) => new::run(args),
        Command::Build(args) => build::run(args),
        Command::Test(args) => test::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Keygen(args) => keygen::run(args),
        Command::Pack(args) => pack::run(args),
        Command::Sign(args) => sign::run(args),
        Command::Inspect(args) => inspect::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
