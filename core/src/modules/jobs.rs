//! Module work in the background: fanning out the event outbox, scheduling
//! cron jobs, and the job handlers that deliver events and run jobs.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::events::{self, Delivery, DELIVER};
use super::host::ModuleHost;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::ids::TenantId;
use crate::jobs::worker::Handlers;
use crate::jobs::{self, NewJob};

/// Job kind of one scheduled run of a module job for one tenant.
pub const RUN_JOB: &str = "module.job.run";

/// What a scheduled-run job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRun {
    /// Module.
    pub module_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Job name from the manifest.
    pub job: String,
}

/// The loaded module and tenant a job names, if the module may work for
/// the tenant now. `None` when the tenant is no longer entitled (the work
/// is then no longer the module's: done); an error while the module is
/// read-only, so the work is retried and then stays dead with the reason,
/// replayable once a valid license is installed — never run meanwhile.
async fn target(
    host: &ModuleHost,
    db: &Db,
    clock: &SharedClock,
    module_id: &str,
    tenant_id: &str,
) -> Result<Option<(std::sync::Arc<super::host::Loaded>, TenantId)>, String> {
    let module = host
        .get(module_id)
        .ok_or_else(|| format!("module {module_id} is not loaded"))?;
    let tenant = TenantId::from_trusted(tenant_id);
    let access = super::entitlements::access(
        db,
        host.licensing(),
        &tenant,
        &module.manifest,
        clock.now_ms(),
    )
    .await
    .map_err(|e| e.to_string())?;
    if access.is_denied() {
        return Ok(None);
    }
    access.check_write().map_err(|e| events::skipped(&e))?;
    Ok(Some((module, tenant)))
}

/// Turn a module's answer into the job's outcome: its own error asks for a retry.
fn outcome(result: crate::Result<Result<(), String>>, what: &str) -> Result<(), String> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(format!("{what}: {message}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Register the handlers of module jobs.
pub fn register(handlers: &mut Handlers, host: ModuleHost, db: Db, clock: SharedClock) {
    let (h, d, c) = (host.clone(), db.clone(), clock.clone());
    handlers.register(DELIVER, move |job| {
        let (host, db, clock) = (h.clone(), d.clone(), c.clone());
        async move {
            let delivery: Delivery =
                serde_json::from_str(&job.payload).map_err(|e| format!("bad delivery: {e}"))?;
            let Some((module, tenant)) =
                target(&host, &db, &clock, &delivery.module_id, &delivery.tenant_id).await?
            else {
                return Ok(());
            };
            let event = kontor_runtime::call::Event {
                id: delivery.event_id,
                name: delivery.name,
                payload: delivery.payload,
                occurred_at: delivery.occurred_at,
            };
            let what = format!("module {} asked for a retry", module.manifest.id);
            outcome(host.deliver(&module, &tenant, event).await, &what)
        }
    });
    handlers.register(RUN_JOB, move |job| {
        let (host, db, clock) = (host.clone(), db.clone(), clock.clone());
        async move {
            let run: JobRun =
                serde_json::from_str(&job.payload).map_err(|e| format!("bad job run: {e}"))?;
            let Some((module, tenant)) =
                target(&host, &db, &clock, &run.module_id, &run.tenant_id).await?
            else {
                return Ok(());
            };
            let what = format!("job {} of {} failed", run.job, module.manifest.id);
            outcome(host.run_job(&module, &tenant, &run.job).await, &what)
        }
    });
}

/// Enqueue every module job whose schedule came due, once per tenant: a
/// run missed while the host was down runs once, not once per missed slot.
/// The last-run row is moved with a compare-and-set, so concurrent hosts
/// schedule a slot only once.
pub async fn schedule_due(db: &Db, host: &ModuleHost, now: i64) -> crate::Result<usize> {
    let mut enqueued = 0;
    for module in host.all() {
        if module.manifest.jobs.is_empty() {
            continue;
        }
        // Read-only modules are not scheduled: their slots pass unrun and,
        // as after downtime, the missed ones run once when it is enabled again.
        let tenants =
            super::entitlements::entitled_tenants(db, host.licensing(), &module.manifest, now)
                .await?;
        for decl in &module.manifest.jobs {
            let Ok(schedule) = super::cron::Schedule::parse(&decl.schedule) else {
                continue;
            };
            for tenant in &tenants {
                let last: Option<i64> = sqlx::query_scalar(
                    "SELECT last_run_at FROM module_job_runs WHERE tenant_id = $1 AND module_id = $2 AND job = $3",
                )
                .bind(tenant.as_str())
                .bind(&module.manifest.id)
                .bind(&decl.name)
                .fetch_optional(db.pool())
                .await?;
                let mut tx = db.begin().await?;
                let due = match last {
                    None => {
                        // First sight: start counting from now; the first run is the next slot.
                        sqlx::query(
                            "INSERT INTO module_job_runs (tenant_id, module_id, job, last_run_at) VALUES ($1, $2, $3, $4) \
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(tenant.as_str())
                        .bind(&module.manifest.id)
                        .bind(&decl.name)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        false
                    }
                    Some(last) => {
                        let next = schedule
                            .next_after(crate::clock::from_ms(last))
                            .map(crate::clock::to_ms);
                        match next {
                            Some(n) if n <= now => {
                                let moved = sqlx::query(
                                    "UPDATE module_job_runs SET last_run_at = $5 \
                                     WHERE tenant_id = $1 AND module_id = $2 AND job = $3 AND last_run_at = $4",
                                )
                                .bind(tenant.as_str())
                                .bind(&module.manifest.id)
                                .bind(&decl.name)
                                .bind(last)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                                moved.rows_affected() == 1
                            }
                            _ => false,
                        }
                    }
                };
                if due {
                    let run = JobRun {
                        module_id: module.manifest.id.clone(),
                        tenant_id: tenant.to_string(),
                        job: decl.name.clone(),
                    };
                    let mut job =
                        NewJob::new(RUN_JOB, serde_json::to_value(&run).unwrap_or_default(), now);
                    job.tenant_id = Some(tenant.clone());
                    jobs::enqueue_tx(&mut tx, &job, now).await?;
                    enqueued += 1;
                }
                tx.commit().await?;
            }
        }
    }
    Ok(enqueued)
}

/// Fan out events and schedule jobs until `shutdown` resolves.
pub async fn run_background(
    db: Db,
    host: ModuleHost,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut last_schedule = 0i64;
    loop {
        let now = clock.now_ms();
        let dispatched = match events::dispatch(&db, &host, now, 200).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "event dispatch failed");
                0
            }
        };
        if now - last_schedule >= 15_000 {
            last_schedule = now;
            if let Err(e) = schedule_due(&db, &host, now).await {
                tracing::warn!(error = %e, "module job scheduling failed");
            }
        }
        if dispatched > 0 {
            continue;
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
