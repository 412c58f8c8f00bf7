//! The database step before migrations: for PostgreSQL, make the database
//! when it does not exist and the role may create databases; when it may
//! not, say exactly which SQL an administrator has to run.

use sqlx::Connection;

use crate::preflight::Problem;

/// What [`ensure_postgres`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgDatabase {
    /// It was there already.
    Existing,
    /// The installer created it.
    Created,
}

/// The parts of a PostgreSQL URL the installer needs.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// The database name.
    pub database: String,
    /// The role.
    pub user: String,
    /// The same URL pointing at the `postgres` maintenance database.
    pub maintenance_url: String,
}

/// A URL with its password replaced by `***`, for printing.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Read a `postgres://` URL.
pub fn pg_target(url: &str) -> anyhow::Result<PgTarget> {
    let parsed =
        url::Url::parse(url).map_err(|e| anyhow::anyhow!("--database-url {}: {e}", redact(url)))?;
    let database = parsed.path().trim_start_matches('/').to_string();
    if database.is_empty()
        || !database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        anyhow::bail!(
            "--database-url {}: name the database in the path (letters, digits, `_`, `-`), e.g. postgres://kontor@localhost:5432/kontor",
            redact(url)
        );
    }
    let user = match parsed.username() {
        "" => std::env::var("USER").unwrap_or_else(|_| "postgres".to_string()),
        u => u.to_string(),
    };
    let mut maintenance = parsed.clone();
    maintenance.set_path("/postgres");
    Ok(PgTarget {
        database,
        user,
        maintenance_url: maintenance.to_string(),
    })
}

fn is_missing_database(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000"))
}

fn unreachable(url: &str, e: &sqlx::Error) -> Problem {
    Problem {
        what: format!("PostgreSQL at {} is not reachable: {e}", redact(url)),
        fix: "check host, port, user and password; is the server running (`pg_isready -h <host> -p <port>`), and does pg_hba.conf let this machine and role in?".to_string(),
    }
}

/// Preflight: can the server be reached and logged into? A database that
/// does not exist yet is fine here (the database step makes it).
pub async fn check_postgres(url: &str) -> Option<Problem> {
    match sqlx::PgConnection::connect(url).await {
        Ok(conn) => {
            let _ = conn.close().await;
            None
        }
        Err(e) if is_missing_database(&e) => {
            let target = match pg_target(url) {
                Ok(t) => t,
                Err(e) => {
                    return Some(Problem {
                        what: e.to_string(),
                        fix: "correct --database-url".into(),
                    })
                }
            };
            match sqlx::PgConnection::connect(&target.maintenance_url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    None
                }
                Err(e) => Some(unreachable(url, &e)),
            }
        }
        Err(e) => Some(unreachable(url, &e)),
    }
}

/// Make sure the database of `url` exists: create it when it is missing
/// and the role may (`CREATEDB` or superuser); otherwise fail with the SQL
/// to run as a PostgreSQL administrator.
pub async fn ensure_postgres(url: &str) -> anyhow::Result<PgDatabase> {
    match sqlx::PgConnection::connect(url).await {
        Ok(conn) => {
            let _ = conn.close().await;
            return Ok(PgDatabase::Existing);
        }
        Err(e) if is_missing_database(&e) => {}
        Err(e) => anyhow::bail!("{}", unreachable(url, &e)),
    }
    let target = pg_target(url)?;
    let mut conn = sqlx::PgConnection::connect(&target.maintenance_url)
        .await
        .map_err(|e| anyhow::anyhow!("{}", unreachable(url, &e)))?;
    let may_create: bool = sqlx::query_scalar(
        "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_optional(&mut conn)
    .await?
    .unwrap_or(false);
    let sql = format!(
        "CREATE DATABASE \"{}\" OWNER \"{}\";",
        target.database,
        target.user.replace('"', "\"\"")
    );
    if !may_create {
        let _ = conn.close().await;
        anyhow::bail!(
            "the database `{}` does not exist and role `{}` may not create databases. Ask a PostgreSQL administrator to run:\n\n    {sql}\n\n(e.g. `sudo -u postgres psql -c '{sql}'`), then run the installer again.",
            target.database,
            target.user
        );
    }
    // The name was checked to hold only letters, digits, `_` and `-`.
    sqlx::query(&format!("CREATE DATABASE \"{}\"", target.database))
        .execute(&mut conn)
        .await
        .map_err(|e| anyhow::anyhow!("CREATE DATABASE {} failed: {e}", target.database))?;
    let _ = conn.close().await;
    Ok(PgDatabase::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_printed_and_the_database_name_is_checked() {
        let url = "postgres://kontor:s3cret@db.example:5432/kontor";
        assert!(!redact(url).contains("s3cret"));
        let t = pg_target(url).unwrap();
        assert_eq!(t.database, "kontor");
        assert_eq!(t.user, "kontor");
        assert!(t.maintenance_url.ends_with("/postgres"));
        assert!(pg_target("postgres://x@h/evil\";drop").is_err());
        assert!(pg_target("postgres://x@h/").is_err());
    }
}
