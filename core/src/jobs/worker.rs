//! The worker loop: claims jobs and runs the handler registered for their kind.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{claim, complete, fail, Job};
use crate::clock::SharedClock;
use crate::db::Db;

/// What a handler returns: `Err` with a message schedules a retry.
pub type JobResult = std::result::Result<(), String>;

type BoxedHandler =
    Arc<dyn Fn(Job) -> Pin<Box<dyn Future<Output = JobResult> + Send>> + Send + Sync>;

/// Handlers by job kind.
#[derive(Clone, Default)]
pub struct Handlers {
    map: HashMap<String, BoxedHandler>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

impl Handlers {
    /// Register the handler for `kind`.
    pub fn register<F, Fut>(&mut self, kind: &str, handler: F)
    where
        F: Fn(Job) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobResult> + Send + 'static,
    {
        self.map.insert(
            kind.to_string(),
            Arc::new(move |job| Box::pin(handler(job))),
        );
    }

    /// The core's own handlers.
    pub fn core(db: Db, clock: SharedClock) -> Self {
        let mut handlers = Handlers::default();
        handlers.register(crate::jobs::worker::PURGE_SESSIONS, move |_job| {
            let db = db.clone();
            let clock = clock.clone();
            async move {
                crate::auth::sessions::purge_expired(&db, clock.now_ms())
                    .await
                    .map(|n| tracing::info!(purged = n, "expired sessions purged"))
                    .map_err(|e| e.to_string())
            }
        });
        handlers
    }
}

/// Job kind: delete lapsed sessions.
pub const PURGE_SESSIONS: &str = "core.sessions.purge";

/// Claim and run one job. Returns whether there was one.
pub async fn run_once(
    db: &Db,
    clock: &SharedClock,
    handlers: &Handlers,
    worker_id: &str,
) -> crate::Result<bool> {
    let Some(job) = claim(db, worker_id, clock.now_ms()).await? else {
        return Ok(false);
    };
    let outcome = match handlers.map.get(&job.kind) {
        Some(handler) => {
            let handler = handler.clone();
            let job_for_task = job.clone();
            // A panicking handler fails its job, not the worker.
            match tokio::spawn(async move { handler(job_for_task).await }).await {
                Ok(result) => result,
                Err(e) => Err(format!("handler panicked: {e}")),
            }
        }
        None => Err(format!("no handler for job kind `{}`", job.kind)),
    };
    let now = clock.now_ms();
    match outcome {
        Ok(()) => complete(db, &job.id, now).await?,
        Err(message) => {
            tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %message, "job failed");
            fail(db, &job, &message, now).await?;
        }
    }
    Ok(true)
}

/// Run jobs until `shutdown` resolves; polls every second when idle and
/// enqueues the hourly session purge.
pub async fn run(
    db: Db,
    clock: SharedClock,
    handlers: Handlers,
    shutdown: impl Future<Output = ()>,
) {
    let worker_id = format!("{}-{}", std::process::id(), crate::ids::new_id());
    tokio::pin!(shutdown);
    let mut last_purge = 0i64;
    loop {
        let now = clock.now_ms();
        if now - last_purge > 3_600_000 {
            last_purge = now;
            let job = super::NewJob::new(PURGE_SESSIONS, serde_json::json!({}), now);
            if let Err(e) = super::enqueue(&db, &job, now).await {
                tracing::warn!(error = %e, "could not enqueue session purge");
            }
        }
        let ran = match run_once(&db, &clock, &handlers, &worker_id).await {
            Ok(ran) => ran,
            Err(e) => {
                tracing::warn!(error = %e, "job queue unavailable");
                false
            }
        };
        if ran {
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
