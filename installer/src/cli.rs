//! The `kontor-install` command line: install (the default) and `upgrade`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::answers::Answers;
use crate::prompt::Ui;

/// Install Kontor on this machine, or upgrade an installation.
///
/// Interactive by default (every question has a default); with
/// `--non-interactive` nothing is asked: answers come from the flags and
/// `--answers answers.toml`, the rest takes its default.
#[derive(Debug, Parser)]
#[command(
    name = "kontor-install",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Upgrade instead of installing.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Install options.
    #[command(flatten)]
    pub install: InstallArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upgrade an installation with a signed update package: verify, back
    /// up, swap the binary, migrate, check; roll back on any failure.
    Upgrade(crate::upgrade::UpgradeArgs),
    /// Vendor side: build and sign an update package from a release binary.
    PackUpdate(crate::upgrade::PackArgs),
}

/// Flags of an install run.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Where `kontor.toml` is written (and looked for on a re-run).
    #[arg(long, default_value = "kontor.toml")]
    pub config: PathBuf,
    /// Ask nothing; missing answers take their defaults.
    #[arg(long)]
    pub non_interactive: bool,
    /// Read answers from a TOML file (keys as the flags, with `_`).
    #[arg(long = "answers", value_name = "FILE")]
    pub answers_file: Option<PathBuf>,
    /// On an existing installation: change settings, license, modules and addresses.
    #[arg(long)]
    pub reconfigure: bool,
    /// On an existing installation: re-run migrations and checks; changes no setting.
    #[arg(long, conflicts_with = "reconfigure")]
    pub repair: bool,
    /// Also write a systemd unit.
    #[arg(long)]
    pub systemd: bool,
    /// Where the systemd unit goes.
    #[arg(long, default_value = "/etc/systemd/system")]
    pub systemd_dir: PathBuf,
    /// The `kontor` binary the unit runs.
    #[arg(long, default_value = "/usr/bin/kontor")]
    pub kontor_bin: PathBuf,
    /// The user the unit runs as.
    #[arg(long, default_value = "kontor")]
    pub service_user: String,
    /// Do not start the server at the end to check it.
    #[arg(long)]
    pub skip_smoke_test: bool,
    /// Least free disk space for the data dir, in MiB.
    #[arg(long, default_value_t = 200)]
    pub min_free_mb: u64,
    /// The answers.
    #[command(flatten)]
    pub answers: Answers,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kontor-install: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Upgrade(args)) => runtime.block_on(crate::upgrade::run(args)).map(|_| ()),
        Some(Command::PackUpdate(args)) => crate::upgrade::pack(args),
        None => runtime.block_on(install(cli.install)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nkontor-install: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn install(args: InstallArgs) -> anyhow::Result<()> {
    let file = match &args.answers_file {
        Some(path) => Answers::from_file(path)?,
        None => Answers::default(),
    };
    let answers = args.answers.over(file);
    let ui = Ui {
        interactive: !args.non_interactive,
    };
    let options = crate::install::Options {
        config: args.config,
        reconfigure: args.reconfigure,
        repair: args.repair,
        systemd: args.systemd,
        systemd_dir: args.systemd_dir,
        kontor_bin: args.kontor_bin,
        service_user: args.service_user,
        skip_smoke_test: args.skip_smoke_test,
        min_free_mb: args.min_free_mb,
    };
    crate::install::run(answers, options, ui).await.map(|_| ())
}
