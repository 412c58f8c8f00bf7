//! Keeping every process of a scale-out install serving the same modules.
//!
//! The registry (the `modules` table) is the truth; each `kontor serve`
//! process serves the modules it loaded. A change one process makes
//! (install, upgrade, enable, disable, uninstall) is announced with
//! PostgreSQL's `NOTIFY` on [`CHANNEL`]; every process `LISTEN`s and brings
//! what it serves in line with the registry at once ([`reconcile`]). In case
//! a notification is lost (a dropped listener connection) or several
//! processes share one SQLite file, each process also compares a fingerprint
//! of the registry every [`POLL`].

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use super::host::ModuleHost;
use crate::db::{Backend, Db};
use crate::error::Result;

/// The PostgreSQL notification channel of registry changes.
pub const CHANNEL: &str = "kontor_modules";

/// How often a process checks the registry without being notified.
pub const POLL: Duration = Duration::from_secs(10);

/// Tell the other processes that the registry changed (after the change
/// committed). A failure is logged: they still see it within [`POLL`].
pub async fn announce(db: &Db) {
    if db.backend() != Backend::Postgres {
        return;
    }
    if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(db.pool())
        .await
    {
        tracing::warn!(error = %e, "could not announce a module registry change");
    }
}

/// The enabled modules as the registry has them: id → component digest.
async fn enabled(db: &Db) -> Result<HashMap<String, String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT id, component_digest FROM modules WHERE state = 'enabled'")
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().collect())
}

/// Serve what the registry says: unload modules that are no longer enabled,
/// load enabled ones this process does not serve or serves in another
/// version. Returns how many modules changed. A module that fails to load
/// is logged and skipped, as at start.
pub async fn reconcile(db: &Db, host: &ModuleHost) -> Result<usize> {
    let wanted = enabled(db).await?;
    let mut changed = 0;
    for id in host.ids() {
        if !wanted.contains_key(&id) {
            host.unload(&id);
            tracing::info!(module = %id, "module unloaded: disabled or removed elsewhere");
            changed += 1;
        }
    }
    for (id, digest) in &wanted {
        if host.get(id).is_some_and(|m| m.digest() == digest) {
            continue;
        }
        match super::registry::load_one(db, host, id).await {
            Ok(()) => {
                tracing::info!(module = %id, "module loaded: enabled or upgraded elsewhere");
                changed += 1;
            }
            Err(e) => tracing::error!(module = %id, error = %e, "module not loaded"),
        }
    }
    Ok(changed)
}

/// Keep `host` in line with the registry until `shutdown`: on every
/// notification (PostgreSQL) and every [`POLL`].
pub async fn run(
    db: Db,
    host: ModuleHost,
    database_url: String,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut listener = match db.backend() {
        Backend::Postgres => listen(&database_url).await,
        Backend::Sqlite => None,
    };
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
            got = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(|_| ()),
                    None => std::future::pending().await,
                }
            } => {
                if let Err(e) = got {
                    // PgListener reconnects by itself on the next recv; the
                    // poll covers what was missed meanwhile.
                    tracing::warn!(error = %e, "module registry listener interrupted");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        if let Err(e) = reconcile(&db, &host).await {
            tracing::warn!(error = %e, "module registry check failed");
        }
    }
}

async fn listen(url: &str) -> Option<sqlx::postgres::PgListener> {
    let result = async {
        let mut l = sqlx::postgres::PgListener::connect(url).await?;
        l.listen(CHANNEL).await?;
        Ok::<_, sqlx::Error>(l)
    }
    .await;
    match result {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for module registry changes; polling only");
            None
        }
    }
}
