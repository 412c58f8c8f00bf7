//! The database: one pool over SQLite or PostgreSQL, chosen by the URL.
//!
//! Queries are written once, in the SQL both engines share, with `$1`
//! placeholders (SQLite understands them too) and sqlx's `Any` driver. Where
//! the engines differ (row locks, full-text search) [`Backend`] says which
//! text to use. Timestamps are stored as Unix milliseconds in UTC, ids as
//! text UUIDs, JSON as text: the types both engines and `Any` agree on.

pub mod args;
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::error::Result;

/// The engine behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (the default).
    Sqlite,
    /// PostgreSQL (SaaS, scale-out).
    Postgres,
}

/// The page cache of each SQLite connection, in KiB: 32 MiB (SQLite's
/// default is 2 MiB). It keeps the indexes of a large customer table in
/// memory and only takes memory as the database grows.
pub const SQLITE_CACHE_KIB: i64 = 32_768;

/// A transaction on the core database.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The core database pool.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connect to `url`; for SQLite, create the file (and its folder) and use WAL.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let pool = match backend {
            Backend::Sqlite => {
                let url = sqlite_url_with_create(url)?;
                let options = AnyConnectOptions::from_str(&url)?;
                AnyPoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the one writer; the busy
                            // timeout makes writers queue instead of failing. The
                            // page cache (see `SQLITE_CACHE_KIB`) and reads through
                            // mmap keep the indexes of a large customer table in
                            // memory; both only take memory as the database grows.
                            conn.execute(
                                format!(
                                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                     PRAGMA cache_size = -{SQLITE_CACHE_KIB}; \
                                     PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 268435456;"
                                )
                                .as_str(),
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                let options = AnyConnectOptions::from_str(url)?;
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        Ok(Db { pool, backend })
    }

    /// Apply this release's migrations of this backend (see [`crate::release`]).
    pub async fn migrate(&self) -> Result<()> {
        self.migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Whether every migration of this release has been applied (for `/health/ready`).
    pub async fn migrations_applied(&self) -> Result<bool> {
        let latest = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = TRUE")
                .fetch_one(&self.pool)
                .await
                .ok()
                .flatten();
        Ok(applied.unwrap_or(0) >= latest)
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        crate::release::migrator(self.backend)
    }

    /// The pool, for queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Start a transaction that will write. SQLite gets `BEGIN IMMEDIATE`,
    /// which takes the write lock up front so concurrent writers queue on the
    /// busy timeout: a deferred transaction that reads first (load, check,
    /// update) fails with `SQLITE_BUSY` when it later tries to write after
    /// another writer committed in between, and no timeout helps it.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.begin_sqlx().await?)
    }

    /// [`Db::begin`] with sqlx's error type, for code that maps it itself.
    ///
    /// Cancel-safe: sqlx's `begin` is not (a future dropped while `BEGIN`
    /// is under way can hand a connection back to the pool inside a
    /// transaction nobody will end, and every later borrower of it fails).
    /// Module calls are cut off at their deadline mid-await, so the `BEGIN`
    /// runs in a task of its own that always finishes; if nobody waits for
    /// it any more, the transaction it opened is dropped there, which rolls
    /// it back properly.
    pub async fn begin_sqlx(&self) -> std::result::Result<Tx, sqlx::Error> {
        let pool = self.pool.clone();
        let backend = self.backend;
        tokio::spawn(async move {
            match backend {
                Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
                Backend::Postgres => pool.begin().await,
            }
        })
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("starting a transaction failed: {e}")))?
    }

    /// ` FOR UPDATE` on PostgreSQL; nothing on SQLite, where a write
    /// transaction already holds the database lock.
    pub fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Close the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Add `mode=rwc` to a SQLite URL and create its folder, so `kontor serve`
/// works on a fresh machine with no setup.
fn sqlite_url_with_create(url: &str) -> Result<String> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let file = path.split('?').next().unwrap_or_default();
    if !file.is_empty() && file != ":memory:" {
        if let Some(parent) = std::path::Path::new(file).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    crate::Error::internal(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
        }
    }
    Ok(if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Escape `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
