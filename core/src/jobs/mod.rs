//! The durable job queue.
//!
//! A job is a row: `queued` until a worker claims it (`running`, with a
//! lease), then `done`, or `queued` again with exponential backoff after a
//! failure, or `dead` when its attempts are used up — visible, never silent.
//! Claiming uses `FOR UPDATE SKIP LOCKED` on PostgreSQL, so many `kontor
//! serve` processes share one queue; on SQLite the single writer makes the
//! claim atomic. Jobs are enqueued inside the transaction of the change that
//! caused them, so a change and its follow-up work commit together.

pub mod worker;

use serde::Serialize;
use serde_json::Value;

use crate::db::{Backend, Db, Tx};
use crate::error::Result;
use crate::ids::{new_id, TenantId};

/// Attempts a job gets unless it asks for another number.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 5;
/// How long a claim lasts before another worker may take the job over.
pub const LEASE_MS: i64 = 5 * 60_000;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Which handler runs it, e.g. `core.sessions.purge`.
    pub kind: String,
    /// The tenant it works for, if any.
    pub tenant_id: Option<TenantId>,
    /// Its input.
    pub payload: Value,
    /// Attempts before it is marked dead.
    pub max_attempts: i64,
    /// Earliest start, Unix ms.
    pub run_at: i64,
}

impl NewJob {
    /// A job of `kind` with `payload`, runnable at `now`.
    pub fn new(kind: &str, payload: Value, now: i64) -> Self {
        NewJob {
            kind: kind.to_string(),
            tenant_id: None,
            payload,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            run_at: now,
        }
    }
}

/// A claimed job, handed to its handler.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    /// Id.
    pub id: String,
    /// Tenant, if any.
    pub tenant_id: Option<String>,
    /// Handler name.
    pub kind: String,
    /// Input as JSON text.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
}

/// A job's state, as the API and the UI show it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct JobStatus {
    /// Id.
    pub id: String,
    /// Handler name.
    pub kind: String,
    /// queued, running, done or dead.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

/// Enqueue a job inside the transaction of the change that causes it.
pub async fn enqueue_tx(tx: &mut Tx, job: &NewJob, now: i64) -> Result<String> {
    insert(&mut **tx, job, now).await
}

/// Record inside `tx` a job that is not to run now, as `dead` with
/// `reason` and no attempt made: it shows with the failed work and an admin
/// can [`replay`] it once what stopped it is fixed (an event for a module
/// that was read-only while its license had expired).
pub async fn record_skipped_tx(
    tx: &mut Tx,
    job: &NewJob,
    reason: &str,
    now: i64,
) -> Result<String> {
    let id = insert(&mut **tx, job, now).await?;
    let reason: String = reason.chars().take(2000).collect();
    sqlx::query("UPDATE jobs SET status = 'dead', last_error = $2, finished_at = $3 WHERE id = $1")
        .bind(&id)
        .bind(&reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

/// Enqueue a job on its own.
pub async fn enqueue(db: &Db, job: &NewJob, now: i64) -> Result<String> {
    insert(db.pool(), job, now).await
}

async fn insert<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
    exec: E,
    job: &NewJob,
    now: i64,
) -> Result<String> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO jobs (id, tenant_id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $7, $7)",
    )
    .bind(&id)
    .bind(job.tenant_id.as_ref().map(|t| t.to_string()))
    .bind(&job.kind)
    .bind(job.payload.to_string())
    .bind(job.max_attempts.max(1))
    .bind(job.run_at)
    .bind(now)
    .execute(exec)
    .await?;
    Ok(id)
}

/// Claim the next runnable job for `worker`, if any. Jobs whose lease ran
/// out (their worker died) are runnable again.
pub async fn claim(db: &Db, worker: &str, now: i64) -> Result<Option<Job>> {
    let pick = match db.backend() {
        Backend::Postgres => {
            "SELECT id FROM jobs WHERE (status = 'queued' AND run_at <= $2) \
             OR (status = 'running' AND locked_until < $2) \
             ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => {
            "SELECT id FROM jobs WHERE (status = 'queued' AND run_at <= $2) \
             OR (status = 'running' AND locked_until < $2) \
             ORDER BY run_at, id LIMIT 1"
        }
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = $1, \
         locked_until = $3, updated_at = $2 WHERE id = ({pick}) \
         RETURNING id, tenant_id, kind, payload, attempts, max_attempts"
    );
    let job = sqlx::query_as::<_, Job>(&sql)
        .bind(worker)
        .bind(now)
        .bind(now + LEASE_MS)
        .fetch_optional(db.pool())
        .await?;
    Ok(job)
}

/// Mark a job done.
pub async fn complete(db: &Db, id: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = 'done', locked_by = NULL, locked_until = NULL, \
         last_error = NULL, finished_at = $2, updated_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Backoff before attempt `attempts + 1`: 10 s, 40 s, 160 s... capped at an hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 10) as u32 - 1;
    (10_000i64 * 4i64.pow(exp)).min(3_600_000)
}

/// Record a failure: retry later, or mark dead when attempts are used up.
pub async fn fail(db: &Db, job: &Job, error: &str, now: i64) -> Result<()> {
    let dead = job.attempts >= job.max_attempts;
    let error: String = error.chars().take(2000).collect();
    sqlx::query(
        "UPDATE jobs SET status = $2, run_at = $3, locked_by = NULL, locked_until = NULL, \
         last_error = $4, updated_at = $5, finished_at = $6 WHERE id = $1",
    )
    .bind(&job.id)
    .bind(if dead { "dead" } else { "queued" })
    .bind(now + backoff_ms(job.attempts))
    .bind(&error)
    .bind(now)
    .bind(dead.then_some(now))
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Jobs waiting to run or running: the queue depth for health and metrics.
pub async fn depth(db: &Db) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")
            .fetch_one(db.pool())
            .await?,
    )
}

/// One job's state.
pub async fn status(db: &Db, id: &str) -> Result<Option<JobStatus>> {
    Ok(sqlx::query_as::<_, JobStatus>(
        "SELECT id, kind, status, attempts, last_error FROM jobs WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(super::backoff_ms(1), 10_000);
        assert_eq!(super::backoff_ms(2), 40_000);
        assert_eq!(super::backoff_ms(20), 3_600_000);
    }
}

/// A job as an admin sees it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobInfo {
    /// Id.
    pub id: String,
    /// Handler name, e.g. `module.event.deliver`.
    pub kind: String,
    /// queued, running, done or dead.
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Input (JSON text).
    pub payload: String,
    /// Unix ms of the last change.
    pub updated_at: i64,
}

/// The newest jobs of a tenant with `status`, newest first.
pub async fn list_for_tenant(
    db: &Db,
    tenant: &TenantId,
    status: &str,
    limit: i64,
) -> Result<Vec<JobInfo>> {
    Ok(sqlx::query_as::<_, JobInfo>(
        "SELECT id, kind, status, attempts, max_attempts, last_error, payload, updated_at FROM jobs \
         WHERE tenant_id = $1 AND status = $2 ORDER BY updated_at DESC, id DESC LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(status)
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// Run a dead job of the tenant again, with fresh attempts. `false` when
/// the tenant has no dead job with that id.
pub async fn replay(db: &Db, tenant: &TenantId, id: &str, now: i64) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $3, finished_at = NULL, updated_at = $3 \
         WHERE tenant_id = $1 AND id = $2 AND status = 'dead'",
    )
    .bind(tenant.as_str())
    .bind(id)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}
