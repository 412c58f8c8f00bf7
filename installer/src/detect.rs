//! Is Kontor already installed here? A config file that loads and a
//! database with at least one user mean yes: then the installer changes
//! nothing unless asked (`--reconfigure`, `--repair`), and never wipes data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kontor::config::Config;
use kontor::db::Db;

/// The version file in the data dir: which version the installer last
/// installed or upgraded to (upgrades refuse to go back from it).
pub const VERSION_FILE: &str = "installed-version";

/// An installation found at a config path.
#[derive(Debug)]
pub struct Existing {
    /// The config file.
    pub config_path: PathBuf,
    /// Its contents, validated by the core.
    pub config: Config,
    /// Users in the database (0: installed config, no admin yet).
    pub users: i64,
    /// The version recorded by the last install or upgrade.
    pub version: Option<semver::Version>,
}

impl Existing {
    /// Installed: the config loads and somebody can log in.
    pub fn is_complete(&self) -> bool {
        self.users > 0
    }
}

/// Load a `kontor.toml` the way the server does, but from the file alone:
/// the installer describes the file, not this shell's environment.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::from_sources(Some(path), &HashMap::new()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The version recorded in `data_dir`, if any.
pub fn recorded_version(data_dir: &Path) -> Option<semver::Version> {
    std::fs::read_to_string(data_dir.join(VERSION_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// Record `version` as installed in `data_dir`.
pub fn record_version(data_dir: &Path, version: &semver::Version) -> anyhow::Result<()> {
    let path = data_dir.join(VERSION_FILE);
    std::fs::write(&path, format!("{version}\n"))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Look for an installation at `config_path`.
pub async fn find(config_path: &Path) -> anyhow::Result<Option<Existing>> {
    if !config_path.exists() {
        return Ok(None);
    }
    let config = load_config(config_path)?;
    let db = Db::connect(&config.database_url).await.map_err(|e| {
        anyhow::anyhow!(
            "{} exists but its database is not reachable ({e}); fix the database or the file, then run again (`--repair` re-checks everything)",
            config_path.display()
        )
    })?;
    // A database the installer made but never finished has no users table
    // yet: that is "not installed", not an error.
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db.pool())
        .await
        .unwrap_or(0);
    db.close().await;
    Ok(Some(Existing {
        config_path: config_path.to_path_buf(),
        version: recorded_version(&config.data_dir),
        config,
        users,
    }))
}
