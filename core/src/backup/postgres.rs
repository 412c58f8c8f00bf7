//! PostgreSQL: a transaction-consistent export of every table of the schema
//! with `COPY`, and a restore that replaces them in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use sqlx::{Connection, Executor, PgConnection};

use super::{check_name, failed, BackupError, Manifest};

/// One exported table.
pub(super) struct Table {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: u64,
    pub data: Vec<u8>,
}

/// Everything exported.
pub(super) struct Export {
    pub tables: Vec<Table>,
    pub migrations: Vec<i64>,
}

/// Where a table's rows go in the archive.
pub(super) fn entry_path(table: &str) -> String {
    format!("database/{table}.copy")
}

async fn tables(conn: &mut PgConnection) -> Result<Vec<String>, BackupError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
    )
    .fetch_all(&mut *conn)
    .await?;
    for n in &names {
        check_name(n)?;
    }
    Ok(names)
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Export every table of the current schema in one `REPEATABLE READ READ
/// ONLY` transaction: all tables as of the same moment, while the server
/// keeps running.
pub(super) async fn export(url: &str) -> Result<Export, BackupError> {
    let mut conn = PgConnection::connect(url).await?;
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let mut out = Vec::new();
    for name in tables(&mut conn).await? {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(&mut conn)
        .await?;
        for c in &columns {
            check_name(c)?;
        }
        let statement = format!("COPY \"{name}\" ({}) TO STDOUT", column_list(&columns));
        let mut data = Vec::new();
        {
            let mut stream = conn.copy_out_raw(&statement).await?;
            while let Some(chunk) = stream.try_next().await? {
                data.extend_from_slice(&chunk);
            }
        }
        // The text format ends every row with a newline and escapes the
        // ones inside values, so lines are rows.
        let rows = data.iter().filter(|b| **b == b'\n').count() as u64;
        out.push(Table {
            name,
            columns,
            rows,
            data,
        });
    }
    let migrations: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut conn)
            .await?;
    conn.execute("COMMIT").await?;
    conn.close().await?;
    Ok(Export {
        tables: out,
        migrations,
    })
}

/// The table sqlx keeps its migrations in, as sqlx creates it.
const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Tables in an order where every table comes after the ones its foreign
/// keys point to.
async fn load_order(
    conn: &mut PgConnection,
    names: &BTreeSet<String>,
) -> Result<Vec<String>, BackupError> {
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text FROM pg_constraint c \
         JOIN pg_class child ON child.oid = c.conrelid \
         JOIN pg_class parent ON parent.oid = c.confrelid \
         JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE c.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut needs: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (child, parent) in &edges {
        if child != parent {
            needs
                .entry(child.as_str())
                .or_default()
                .insert(parent.as_str());
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < names.len() {
        let before = done.len();
        for name in names {
            if done.contains(name.as_str()) {
                continue;
            }
            let ready = needs
                .get(name.as_str())
                .is_none_or(|ps| ps.iter().all(|p| done.contains(p) || !names.contains(*p)));
            if ready {
                done.insert(name.as_str());
                order.push(name.clone());
            }
        }
        if done.len() == before {
            return Err(failed(
                "the tables' foreign keys form a cycle; cannot order the restore",
            ));
        }
    }
    Ok(order)
}

/// Replace every table of the current schema with the backup's, in one
/// transaction: drop them, recreate the schema with the migrations the
/// backup had applied, load the rows in foreign-key order. A failure rolls
/// everything back and leaves the database as it was.
pub(super) async fn restore(
    url: &str,
    manifest: &Manifest,
    entries: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), BackupError> {
    let known: BTreeMap<i64, &sqlx::migrate::Migration> =
        crate::release::migrator(crate::db::Backend::Postgres)
            .iter()
            .map(|m| (m.version, m))
            .collect();
    if let Some(v) = manifest.migrations.iter().find(|v| !known.contains_key(v)) {
        return Err(failed(format!(
            "the backup was made by Kontor {} with migration {v}, which this version does not know; restore it with Kontor {} or newer",
            manifest.kontor_version, manifest.kontor_version
        )));
    }
    for name in manifest.tables.keys() {
        check_name(name)?;
        if !entries.contains_key(&entry_path(name)) {
            return Err(failed(format!(
                "the backup has no rows file for table {name}"
            )));
        }
    }
    let mut conn = PgConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    let existing = tables(&mut tx).await?;
    if !existing.is_empty() {
        let list = existing
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ");
        (&mut *tx)
            .execute(format!("DROP TABLE {list} CASCADE").as_str())
            .await?;
    }
    (&mut *tx).execute(MIGRATIONS_TABLE).await?;
    for version in &manifest.migrations {
        if let Some(m) = known.get(version) {
            (&mut *tx)
                .execute(sqlx::raw_sql(&m.sql))
                .await
                .map_err(|e| failed(format!("recreating the schema, migration {version}: {e}")))?;
        }
    }
    // Migrations may seed rows; the backup's rows replace them.
    let names: BTreeSet<String> = manifest.tables.keys().cloned().collect();
    let list = names
        .iter()
        .map(|t| format!("\"{t}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if !names.is_empty() {
        (&mut *tx)
            .execute(format!("TRUNCATE {list} CASCADE").as_str())
            .await?;
    }
    for name in load_order(&mut tx, &names).await? {
        let data = entries.remove(&entry_path(&name)).unwrap_or_default();
        let columns = manifest.columns.get(&name).cloned().unwrap_or_default();
        for c in &columns {
            check_name(c)?;
        }
        let statement = if columns.is_empty() {
            format!("COPY \"{name}\" FROM STDIN")
        } else {
            format!("COPY \"{name}\" ({}) FROM STDIN", column_list(&columns))
        };
        let mut copy = tx.copy_in_raw(&statement).await?;
        copy.send(data).await?;
        copy.finish().await?;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}
