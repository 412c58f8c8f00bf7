//! Which release this binary is: the version it reports and the database
//! migrations it carries.
//!
//! A build is the release Cargo made: [`crate::VERSION`] and the migrations
//! embedded from `migrations/`. Test builds (feature `test-releases`) can
//! also stand for *another* release: a copy of the binary with a release
//! trailer appended ([`trailer::append`]) reports the trailer's version and
//! runs the trailer's migrations after the embedded ones. The installer's
//! upgrade tests make their "next versions" that way — a real server, real
//! migrations run by the real migrator on real data, a real failure —
//! without compiling Kontor once per version.

use sqlx::migrate::Migrator;

use crate::db::Backend;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// The version this binary reports (`kontor --version`, `/health`, backups).
pub fn version() -> &'static str {
    #[cfg(feature = "test-releases")]
    if let Some(r) = trailer::adopted() {
        return &r.version;
    }
    crate::VERSION
}

/// The migrations this binary applies on `backend`, in order.
pub fn migrator(backend: Backend) -> &'static Migrator {
    #[cfg(feature = "test-releases")]
    if let Some(r) = trailer::adopted() {
        return match backend {
            Backend::Sqlite => &r.sqlite,
            Backend::Postgres => &r.postgres,
        };
    }
    match backend {
        Backend::Sqlite => &SQLITE_MIGRATOR,
        Backend::Postgres => &POSTGRES_MIGRATOR,
    }
}

/// Test builds only: a release trailer at the end of the executable.
///
/// The layout is `<executable><TOML><length: u64 LE><MAGIC>`; an ELF
/// executable runs the same with bytes after its end. The TOML is a
/// [`TestRelease`].
#[cfg(feature = "test-releases")]
pub mod trailer {
    use std::borrow::Cow;
    use std::io::{Read, Seek, SeekFrom};
    use std::sync::OnceLock;

    use serde::{Deserialize, Serialize};
    use sqlx::migrate::{Migration, MigrationType, Migrator};

    const MAGIC: &[u8; 24] = b"\0KONTOR-TEST-RELEASE-v1\0";

    /// The release a binary stands for.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct TestRelease {
        /// The version it reports.
        pub version: String,
        /// Migrations after the embedded ones, in the order given.
        #[serde(default)]
        pub migrations: Vec<TestMigration>,
    }

    /// One migration of a [`TestRelease`]: the same SQL on both engines.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct TestMigration {
        /// Its version; above every embedded one.
        pub version: i64,
        /// What it does.
        pub description: String,
        /// The SQL.
        pub sql: String,
    }

    pub(super) struct Adopted {
        pub version: String,
        pub sqlite: Migrator,
        pub postgres: Migrator,
    }

    static ADOPTED: OnceLock<Adopted> = OnceLock::new();

    pub(super) fn adopted() -> Option<&'static Adopted> {
        ADOPTED.get()
    }

    /// `binary` with `release` appended.
    pub fn append(binary: &[u8], release: &TestRelease) -> Result<Vec<u8>, String> {
        let text =
            toml::to_string(release).map_err(|e| format!("cannot write the trailer: {e}"))?;
        let mut out = Vec::with_capacity(binary.len() + text.len() + 32);
        out.extend_from_slice(binary);
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(&(text.len() as u64).to_le_bytes());
        out.extend_from_slice(MAGIC);
        Ok(out)
    }

    /// Read this process's executable; if it carries a trailer, be that
    /// release from now on. Call it first thing in `main`.
    pub fn adopt_own() -> Result<Option<TestRelease>, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find my executable: {e}"))?;
        let Some(release) = read(&exe)? else {
            return Ok(None);
        };
        let with = |base: &Migrator| {
            let mut migrations = base.migrations.to_vec();
            migrations.extend(release.migrations.iter().map(|m| {
                Migration::new(
                    m.version,
                    Cow::Owned(m.description.clone()),
                    MigrationType::Simple,
                    Cow::Owned(m.sql.clone()),
                    false,
                )
            }));
            Migrator {
                migrations: Cow::Owned(migrations),
                ..Migrator::DEFAULT
            }
        };
        let adopted = Adopted {
            version: release.version.clone(),
            sqlite: with(&super::SQLITE_MIGRATOR),
            postgres: with(&super::POSTGRES_MIGRATOR),
        };
        ADOPTED
            .set(adopted)
            .map_err(|_| "a release was adopted already".to_string())?;
        Ok(Some(release))
    }

    fn read(path: &std::path::Path) -> Result<Option<TestRelease>, String> {
        let fail = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
        let mut f = std::fs::File::open(path).map_err(fail)?;
        let size = f.metadata().map_err(fail)?.len();
        let tail = MAGIC.len() as u64 + 8;
        if size < tail {
            return Ok(None);
        }
        f.seek(SeekFrom::Start(size - tail)).map_err(fail)?;
        let mut len = [0u8; 8];
        let mut magic = [0u8; MAGIC.len()];
        f.read_exact(&mut len).map_err(fail)?;
        f.read_exact(&mut magic).map_err(fail)?;
        if &magic != MAGIC {
            return Ok(None);
        }
        let len = u64::from_le_bytes(len);
        let start = size
            .checked_sub(tail + len)
            .ok_or_else(|| format!("{}: release trailer longer than the file", path.display()))?;
        f.seek(SeekFrom::Start(start)).map_err(fail)?;
        let mut text = vec![0u8; len as usize];
        f.read_exact(&mut text).map_err(fail)?;
        let text = String::from_utf8(text)
            .map_err(|e| format!("{}: release trailer is not UTF-8: {e}", path.display()))?;
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: bad release trailer: {e}", path.display()))
    }
}
