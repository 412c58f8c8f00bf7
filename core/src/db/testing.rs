//! Databases for tests and benchmarks: a fresh SQLite file, or a fresh
//! PostgreSQL schema on the server named by `KONTOR_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`).
//!
//! Outside CI a missing PostgreSQL skips the PostgreSQL half of a test with a
//! printed notice; with `CI` set it is a failure, so CI can never pass by
//! skipping.

use sqlx::Connection;

use super::{Backend, Db};

/// Default server for PostgreSQL tests.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database made for one test; the SQLite file is removed when dropped
/// (PostgreSQL schemas are dropped by [`TestDb::cleanup`]).
#[derive(Debug)]
pub struct TestDb {
    /// The connected, migrated database.
    pub db: Db,
    /// The URL it was opened with.
    pub url: String,
    dir: Option<std::path::PathBuf>,
    schema: Option<(String, String)>,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

impl TestDb {
    /// A fresh, migrated database on `backend`; `None` when PostgreSQL is not
    /// reachable outside CI (the notice is printed).
    #[allow(
        clippy::expect_used,
        reason = "test support: a database that cannot be set up must fail the test loudly"
    )]
    pub async fn new(backend: Backend) -> Option<Self> {
        let (url, dir, schema) = match backend {
            Backend::Sqlite => {
                let dir =
                    std::env::temp_dir().join(format!("kontor-test-{}", uuid::Uuid::new_v4()));
                let url = format!("sqlite://{}", dir.join("kontor.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let base = std::env::var("KONTOR_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                match prepare_schema(&base, &schema).await {
                    Ok(()) => {}
                    Err(e) if !in_ci() => {
                        eprintln!(
                            "NOTICE: PostgreSQL at {base} not reachable ({e}); skipping the PostgreSQL run of this test"
                        );
                        return None;
                    }
                    Err(e) => panic!("PostgreSQL at {base} is required in CI: {e}"),
                }
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema},public");
                (url, None, Some((base, schema)))
            }
        };
        let db = Db::connect(&url).await.expect("connect test database");
        db.migrate().await.expect("migrate test database");
        Some(TestDb {
            db,
            url,
            dir,
            schema,
        })
    }

    /// Close the pool and drop what the test made.
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Some((base, schema)) = &self.schema {
            if let Ok(mut conn) = sqlx::PgConnection::connect(base).await {
                let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn)
                    .await;
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn prepare_schema(base: &str, schema: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(base).await?;
    // The trigram extension is database-wide; install it once in `public`
    // (concurrent tests may race on it, and either winner is fine).
    let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        .execute(&mut conn)
        .await;
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// Every row of every table of `db` as sorted text (`column=value|...`),
/// by table: what backup, restore and upgrade tests compare in full.
pub async fn dump_tables(
    db: &Db,
) -> crate::Result<std::collections::BTreeMap<String, Vec<String>>> {
    use sqlx::{Column, Row};
    let tables: Vec<String> = match db.backend() {
        Backend::Sqlite => sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .fetch_all(db.pool())
        .await?,
        Backend::Postgres => sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
        )
        .fetch_all(db.pool())
        .await?,
    };
    let mut out = std::collections::BTreeMap::new();
    for table in tables {
        // The migrations table's timestamp is a type the `Any` driver cannot
        // read; its other columns say everything.
        let columns = if table == "_sqlx_migrations" {
            "version, description, CAST(success AS INTEGER) AS success, checksum"
        } else {
            "*"
        };
        let rows = sqlx::query(&format!("SELECT {columns} FROM \"{table}\""))
            .fetch_all(db.pool())
            .await?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut cells = Vec::with_capacity(row.columns().len());
            for (i, column) in row.columns().iter().enumerate() {
                let name = column.name();
                let value = if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                    format!("{v:?}")
                } else if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                    format!("{v:?}")
                } else if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
                    format!("{v:?}")
                } else if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
                    format!("{v:?}")
                } else if let Ok(v) = row.try_get::<Option<Vec<u8>>, _>(i) {
                    format!("{v:?}")
                } else if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
                    format!("{v:?}")
                } else {
                    return Err(crate::Error::Internal(format!(
                        "{table}.{name}: no comparable type"
                    )));
                };
                cells.push(format!("{name}={value}"));
            }
            lines.push(cells.join("|"));
        }
        lines.sort();
        out.insert(table, lines);
    }
    Ok(out)
}
