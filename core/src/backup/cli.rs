//! `kontor backup` and `kontor restore` on the command line.

use std::path::{Path, PathBuf};

use super::{BackupOptions, RestoreOptions};
use crate::config::Config;

/// `kontor backup` flags.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The archive to write (default `kontor-backup-<time>.tar` in the
    /// working directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the config file's secrets (database password, keys, tokens) in
    /// the archive.
    #[arg(long)]
    pub include_config_secrets: bool,
    /// Put the key that decrypts module secrets into the archive. Without
    /// it the archive's module secrets stay sealed; keep the key file
    /// (`secrets.key` in the data dir) safe elsewhere, or they are lost
    /// with the machine. With it, guard the archive like the key.
    #[arg(long)]
    pub include_secret_key: bool,
}

/// `kontor restore` flags.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The archive `kontor backup` wrote.
    pub archive: PathBuf,
    /// Replace a database that already holds data.
    #[arg(long)]
    pub force: bool,
}

/// The config file the server would read: the one named, else
/// `kontor.toml` in the working directory when present.
pub fn config_file(named: Option<&Path>) -> Option<PathBuf> {
    named.map(Path::to_path_buf).or_else(|| {
        let default = PathBuf::from("kontor.toml");
        default.exists().then_some(default)
    })
}

/// `kontor backup`.
pub async fn backup(
    config: &Config,
    config_path: Option<&Path>,
    args: BackupArgs,
    now: i64,
) -> anyhow::Result<()> {
    let out = args.out.unwrap_or_else(|| super::default_file_name(now));
    let manifest = super::create(
        config,
        config_file(config_path).as_deref(),
        &out,
        BackupOptions {
            include_config_secrets: args.include_config_secrets,
            include_secret_key: args.include_secret_key,
        },
        now,
    )
    .await?;
    let rows: u64 = manifest.tables.values().sum();
    println!(
        "wrote {} ({} database, {} tables, {rows} rows)",
        out.display(),
        manifest.backend,
        manifest.tables.len()
    );
    if !manifest.secret_key {
        println!("the secrets key is not in the archive: keep {} safe separately (or back up with --include-secret-key)", config.data_dir.join(crate::modules::secret_key::KEY_FILE).display());
    }
    Ok(())
}

/// `kontor restore`: refused while a server answers on the configured
/// address, since it would keep writing to what is being replaced.
pub async fn restore(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    if std::net::TcpStream::connect_timeout(&config.listen, std::time::Duration::from_secs(1))
        .is_ok()
    {
        anyhow::bail!(
            "something is listening on {} — stop the Kontor server before restoring (e.g. `systemctl stop kontor`)",
            config.listen
        );
    }
    let report =
        super::restore(config, &args.archive, RestoreOptions { force: args.force }).await?;
    let rows: u64 = report.manifest.tables.values().sum();
    println!(
        "restored {} ({} tables, {rows} rows, made by Kontor {}); every table's row count matches the backup",
        args.archive.display(),
        report.manifest.tables.len(),
        report.manifest.kontor_version
    );
    if report.secret_key_restored {
        println!("the secrets key was restored into the data dir");
    }
    if report.manifest.kontor_version != crate::release::version() {
        println!("the backup is from Kontor {}; `kontor migrate` (or starting the server) brings it to {}", report.manifest.kontor_version, crate::release::version());
    }
    Ok(())
}
