//! `kontor backup` and `kontor restore`: one archive holding everything an
//! installation needs to come back — the database as a consistent snapshot,
//! the license, the encrypted module secrets (module packages and secrets
//! live in the database), the config file without its secrets unless
//! asked, and the key that opens the secrets only if asked.
//!
//! * SQLite: `VACUUM INTO` writes a consistent copy while the server runs;
//!   restoring puts the file back (the server must be stopped).
//! * PostgreSQL: every table of the schema is exported with `COPY` inside
//!   one `REPEATABLE READ READ ONLY` transaction, so all tables show the
//!   same moment. Restoring drops the schema's tables, recreates them with
//!   the migrations the backup had applied, and loads the rows in foreign
//!   key order in one transaction.
//!
//! Either way the restore then counts every table against the counts the
//! backup recorded, and refuses to call a short restore a success.
//!
//! **The secrets key.** Module secrets are stored encrypted with a key that
//! is deliberately *not* in the database (`secrets.key` in the data dir, or
//! `secret_key` in the config). A backup without the key cannot reveal the
//! secrets to whoever gets hold of it — and cannot restore them either
//! unless the key is kept elsewhere. `--include-secret-key` puts the key in
//! the archive: convenient, but then the archive must be guarded like the
//! key itself.

pub mod cli;
mod postgres;
mod sqlite;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::{Backend, Db};

/// The archive's description of itself.
pub const MANIFEST_PATH: &str = "backup.json";
/// The SQLite snapshot inside the archive.
pub const SQLITE_PATH: &str = "database/kontor.sqlite";
/// The config file inside the archive.
pub const CONFIG_PATH: &str = "config/kontor.toml";
/// The license text inside the archive (also in the database; here for people).
pub const LICENSE_PATH: &str = "license/license.txt";
/// The secrets key inside the archive (only with `--include-secret-key`).
pub const SECRET_KEY_PATH: &str = "keys/secrets.key";
/// Format of [`Manifest`].
pub const FORMAT: u32 = 1;

/// Config keys that hold secrets; left out of a backup unless asked.
const SECRET_CONFIG_KEYS: &[&str] = &[
    "secret_key",
    "payment_webhook_secret",
    "operator_token",
    "smtp_password",
];

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A refusal or failure, in words that say what to do.
    #[error("{0}")]
    Failed(String),
    /// The database.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations while restoring.
    #[error("recreating the schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The core.
    #[error("{0}")]
    Core(#[from] crate::Error),
}

fn failed(message: impl Into<String>) -> BackupError {
    BackupError::Failed(message.into())
}

/// What a backup holds (`backup.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The Kontor version that made it.
    pub kontor_version: String,
    /// When (Unix ms).
    pub created_at: i64,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Applied migration versions at the time of the backup.
    pub migrations: Vec<i64>,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
    /// PostgreSQL: each table's columns in export order.
    #[serde(default)]
    pub columns: BTreeMap<String, Vec<String>>,
    /// Whether the config file kept its secrets.
    pub config_secrets: bool,
    /// Whether the secrets key is inside.
    pub secret_key: bool,
}

/// What to put in a backup beyond the data.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackupOptions {
    /// Keep the config's secrets (database password, keys, tokens).
    pub include_config_secrets: bool,
    /// Include the key that opens module secrets (see the module docs).
    pub include_secret_key: bool,
}

/// How to restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// Replace a database that holds data.
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The backup's manifest.
    pub manifest: Manifest,
    /// Whether the secrets key was written to the data dir.
    pub secret_key_restored: bool,
}

/// Write a backup archive of the installation `config` describes to `out`.
/// `config_file` is the config file to include (when there is one).
pub async fn create(
    config: &Config,
    config_file: Option<&Path>,
    out: &Path,
    options: BackupOptions,
    now: i64,
) -> Result<Manifest, BackupError> {
    let db = Db::connect(&config.database_url).await?;
    let result = create_with(&db, config, config_file, out, options, now).await;
    db.close().await;
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

async fn create_with(
    db: &Db,
    config: &Config,
    config_file: Option<&Path>,
    out: &Path,
    options: BackupOptions,
    now: i64,
) -> Result<Manifest, BackupError> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let file = create_private(out)?;
    let mut tar = tar::Builder::new(file);
    let mut manifest = Manifest {
        format: FORMAT,
        kontor_version: crate::release::version().to_string(),
        created_at: now,
        backend: String::new(),
        migrations: Vec::new(),
        tables: BTreeMap::new(),
        columns: BTreeMap::new(),
        config_secrets: options.include_config_secrets,
        secret_key: false,
    };
    match db.backend() {
        Backend::Sqlite => {
            manifest.backend = "sqlite".into();
            let snapshot = out.with_extension("snapshot.tmp");
            let _ = std::fs::remove_file(&snapshot);
            let counted = sqlite::snapshot(db, &snapshot).await;
            let added = counted.and_then(|(tables, migrations)| {
                manifest.tables = tables;
                manifest.migrations = migrations;
                tar.append_path_with_name(&snapshot, SQLITE_PATH)?;
                Ok(())
            });
            let _ = std::fs::remove_file(&snapshot);
            added?;
        }
        Backend::Postgres => {
            manifest.backend = "postgres".into();
            let export = postgres::export(&config.database_url).await?;
            manifest.migrations = export.migrations;
            for table in export.tables {
                manifest.tables.insert(table.name.clone(), table.rows);
                manifest.columns.insert(table.name.clone(), table.columns);
                append(&mut tar, &postgres::entry_path(&table.name), &table.data)?;
            }
        }
    }
    if let Some(path) = config_file.filter(|p| p.is_file()) {
        let text = std::fs::read_to_string(path)?;
        let text = if options.include_config_secrets {
            text
        } else {
            without_secrets(&text)?
        };
        append(&mut tar, CONFIG_PATH, text.as_bytes())?;
    }
    let license: Option<String> =
        sqlx::query_scalar("SELECT license_text FROM license_installation WHERE id = 1")
            .fetch_optional(db.pool())
            .await?
            .flatten();
    if let Some(text) = license {
        append(&mut tar, LICENSE_PATH, text.as_bytes())?;
    }
    if options.include_secret_key {
        let key_file = config.data_dir.join(crate::modules::secret_key::KEY_FILE);
        if key_file.is_file() {
            append(&mut tar, SECRET_KEY_PATH, &std::fs::read(&key_file)?)?;
            manifest.secret_key = true;
        } else if config.secret_key.is_none() {
            // No key yet: nothing was ever sealed, so nothing is lost.
        }
    }
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| failed(e.to_string()))?;
    append(&mut tar, MANIFEST_PATH, &json)?;
    let mut file = tar.into_inner()?;
    file.flush()?;
    file.sync_all()?;
    Ok(manifest)
}

/// Restore the archive at `archive` into the installation `config`
/// describes. The server must be stopped.
pub async fn restore(
    config: &Config,
    archive: &Path,
    options: RestoreOptions,
) -> Result<RestoreReport, BackupError> {
    let mut entries = read_archive(archive)?;
    let manifest: Manifest =
        serde_json::from_slice(&entries.remove(MANIFEST_PATH).ok_or_else(|| {
            failed(format!(
                "{} is not a Kontor backup (no {MANIFEST_PATH})",
                archive.display()
            ))
        })?)
        .map_err(|e| failed(format!("{MANIFEST_PATH}: {e}")))?;
    if manifest.format != FORMAT {
        return Err(failed(format!(
            "backup format {} is not supported by this version (it reads format {FORMAT})",
            manifest.format
        )));
    }
    let backend = if config.database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    if manifest.backend != backend {
        return Err(failed(format!(
            "this backup is of a {} database and the configured database is {backend}; restore it into a {} installation",
            manifest.backend, manifest.backend
        )));
    }
    if !options.force && has_users(&config.database_url).await {
        return Err(failed(
            "the configured database already holds data; restoring replaces all of it. Stop the server, make a backup of it if in doubt, and run again with --force",
        ));
    }
    match backend {
        "sqlite" => {
            let data = entries
                .remove(SQLITE_PATH)
                .ok_or_else(|| failed(format!("the backup has no {SQLITE_PATH}")))?;
            sqlite::restore(&config.database_url, &data)?;
        }
        _ => postgres::restore(&config.database_url, &manifest, &mut entries).await?,
    }
    // Count everything against what the backup recorded.
    let db = Db::connect(&config.database_url).await?;
    let counts = count_tables(&db, manifest.tables.keys()).await;
    db.close().await;
    let counts = counts?;
    for (table, rows) in &manifest.tables {
        let got = counts.get(table).copied().unwrap_or(0);
        if got != *rows {
            return Err(failed(format!(
                "after restoring, table {table} has {got} rows where the backup recorded {rows}"
            )));
        }
    }
    let mut secret_key_restored = false;
    if let Some(key) = entries.remove(SECRET_KEY_PATH) {
        let path = config.data_dir.join(crate::modules::secret_key::KEY_FILE);
        if !path.exists() || options.force {
            std::fs::create_dir_all(&config.data_dir)?;
            let mut f = create_private(&path)?;
            f.write_all(&key)?;
            secret_key_restored = true;
        }
    }
    Ok(RestoreReport {
        manifest,
        secret_key_restored,
    })
}

async fn has_users(url: &str) -> bool {
    let Ok(db) = Db::connect(url).await else {
        return false;
    };
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(db.pool())
        .await
        .unwrap_or(0);
    db.close().await;
    n > 0
}

/// Rows per table, for the tables named.
async fn count_tables<'a>(
    db: &Db,
    tables: impl Iterator<Item = &'a String>,
) -> Result<BTreeMap<String, u64>, BackupError> {
    let mut out = BTreeMap::new();
    for table in tables {
        check_name(table)?;
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
            .fetch_one(db.pool())
            .await?;
        out.insert(table.clone(), u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

/// Table and column names come from the database's catalog or from a
/// backup file; either way only plain names are put into SQL.
fn check_name(name: &str) -> Result<(), BackupError> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(failed(format!("unexpected table or column name {name:?}")))
    }
}

/// The config text with every secret value removed (and the password of
/// the database URL).
fn without_secrets(text: &str) -> Result<String, BackupError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e| failed(format!("cannot read the config file: {e}")))?;
    for key in SECRET_CONFIG_KEYS {
        table.remove(*key);
    }
    if let Some(toml::Value::String(url)) = table.get("database_url") {
        if let Ok(mut u) = url::Url::parse(url) {
            if u.password().is_some() {
                let _ = u.set_password(None);
                table.insert("database_url".into(), toml::Value::String(u.to_string()));
            }
        }
    }
    let body = toml::to_string(&table).map_err(|e| failed(e.to_string()))?;
    Ok(format!(
        "# From a Kontor backup, secrets removed (the database password and {}).\n{body}",
        SECRET_CONFIG_KEYS.join(", ")
    ))
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

fn append<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, path, data)
}

/// Every regular file of the archive by path (the archive is the
/// operator's own, but still only plain relative paths are read).
fn read_archive(path: &Path) -> Result<BTreeMap<String, Vec<u8>>, BackupError> {
    let file = std::fs::File::open(path)
        .map_err(|e| failed(format!("cannot read {}: {e}", path.display())))?;
    let mut archive = tar::Archive::new(file);
    let mut out = BTreeMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry.path()?.to_string_lossy().to_string();
        if name.starts_with('/') || name.split('/').any(|p| p == "..") {
            return Err(failed(format!("unexpected path {name:?} in the backup")));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        out.insert(name, data);
    }
    Ok(out)
}

/// The default file name of a backup made at `now`.
pub fn default_file_name(now: i64) -> PathBuf {
    let stamp = time::OffsetDateTime::from_unix_timestamp(now / 1000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year][month][day]-[hour][minute][second]"
            ))
            .ok()
        })
        .unwrap_or_else(|| now.to_string());
    PathBuf::from(format!("kontor-backup-{stamp}.tar"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_secrets_are_left_out_unless_asked() {
        let text = "database_url = \"postgres://kontor:hunter22@db/kontor\"\nsecret_key = \"abc\"\nlisten = \"127.0.0.1:8080\"\n";
        let out = without_secrets(text).unwrap();
        assert!(!out.contains("hunter22"), "{out}");
        assert!(!out.contains("abc\""), "{out}");
        assert!(out.contains("127.0.0.1:8080"));
        assert!(out.contains("postgres://kontor@db/kontor"), "{out}");
    }
}
