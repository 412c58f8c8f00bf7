//! SQLite: `VACUUM INTO` for a consistent copy of a live database, and
//! putting a copy back in place of the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sqlx::{ConnectOptions, Connection};

use super::{check_name, failed, BackupError};
use crate::db::Db;

/// Write a consistent copy of `db` to `path`; the rows per table and the
/// applied migrations, read from the copy.
pub(super) async fn snapshot(
    db: &Db,
    path: &Path,
) -> Result<(BTreeMap<String, u64>, Vec<i64>), BackupError> {
    let target = path.display().to_string().replace('\'', "''");
    sqlx::query(&format!("VACUUM INTO '{target}'"))
        .execute(db.pool())
        .await?;
    // Count in the copy, read-only and outside the pool (whose connection
    // setup would switch the copy to WAL).
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut counts = BTreeMap::new();
    for table in tables {
        check_name(&table)?;
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
            .fetch_one(&mut conn)
            .await?;
        counts.insert(table, u64::try_from(n).unwrap_or(0));
    }
    let migrations: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await?;
    conn.close().await?;
    Ok((counts, migrations))
}

/// The file of a `sqlite:` URL.
fn file_of(url: &str) -> Result<PathBuf, BackupError> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or_default();
    if file.is_empty() || file == ":memory:" {
        return Err(failed("the configured SQLite database is not a file"));
    }
    Ok(PathBuf::from(file))
}

/// Put `data` (a database file) where the URL's file is, replacing it and
/// its write-ahead log. Written beside it first, then renamed, so a
/// failure half-way leaves the old file.
pub(super) fn restore(url: &str, data: &[u8]) -> Result<(), BackupError> {
    let file = file_of(url)?;
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = file.with_extension("restore.tmp");
    std::fs::write(&tmp, data)?;
    for suffix in ["-wal", "-shm"] {
        let mut side = file.clone().into_os_string();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    std::fs::rename(&tmp, &file)?;
    Ok(())
}
