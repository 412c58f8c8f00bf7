//! Events: written to the outbox in the transaction of the change that
//! caused them, fanned out to every subscribed, enabled and entitled module
//! as a delivery job, delivered at least once with retries and backoff.
//!
//! A module that is read-only for the tenant (its license expired) gets no
//! delivery, but it is not lost either: it is recorded as a dead job whose
//! error says why (`skipped: ... [license_expired]`), so an admin sees what
//! the module missed and can replay it (`POST /api/v1/jobs/{id}/replay`)
//! once a valid license is installed. Not delivered automatically on
//! renewal, because a module acting weeks late (a welcome e-mail, a
//! reminder) surprises more than a list of what it skipped.
//!
//! Each delivery carries the event's id, the same on every retry, so a
//! module can deduplicate.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::host::ModuleHost;
use crate::db::{Backend, Db, Tx};
use crate::error::Result;
use crate::ids::{new_id, TenantId};
use crate::jobs::{self, NewJob};

/// Job kind of one delivery of one event to one module.
pub const DELIVER: &str = "module.event.deliver";

/// What a delivery job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// Event id (stable across retries).
    pub event_id: String,
    /// Module that receives it.
    pub module_id: String,
    /// Tenant it happened in.
    pub tenant_id: String,
    /// Event name.
    pub name: String,
    /// JSON payload.
    pub payload: String,
    /// Unix ms.
    pub occurred_at: i64,
}

/// Write an event inside the transaction of its cause.
pub async fn publish_tx(
    tx: &mut Tx,
    tenant: &TenantId,
    name: &str,
    payload: &Value,
    now: i64,
) -> Result<String> {
    let id = new_id();
    sqlx::query("INSERT INTO event_outbox (id, tenant_id, name, payload, occurred_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&id)
        .bind(tenant.as_str())
        .bind(name)
        .bind(payload.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

/// Write an event on its own (for causes without a transaction).
pub async fn publish(
    db: &Db,
    tenant: &TenantId,
    name: &str,
    payload: &Value,
    now: i64,
) -> Result<String> {
    let mut tx = db.begin().await?;
    let id = publish_tx(&mut tx, tenant, name, payload, now).await?;
    tx.commit().await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct Pending {
    id: String,
    tenant_id: Option<String>,
    name: String,
    payload: String,
    occurred_at: i64,
}

/// Fan out up to `limit` undispatched events: one delivery job per
/// subscribed, entitled module, and the event marked dispatched, in one
/// transaction. Returns how many events were handled.
pub async fn dispatch(db: &Db, host: &ModuleHost, now: i64, limit: i64) -> Result<usize> {
    // Read the license status before the transaction: on SQLite a first
    // read may have to write its row, which must not wait for this writer.
    host.licensing().status(db, now).await?;
    let mut tx = db.begin().await?;
    let lock = match db.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let pending = sqlx::query_as::<_, Pending>(&format!(
        "SELECT id, tenant_id, name, payload, occurred_at FROM event_outbox WHERE dispatched_at IS NULL \
         ORDER BY id LIMIT $1{lock}"
    ))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    for event in &pending {
        if let Some(tenant) = &event.tenant_id {
            let tenant_id = TenantId::from_trusted(tenant.clone());
            for module in host.subscribers(&event.name) {
                let access = super::entitlements::access(
                    db,
                    host.licensing(),
                    &tenant_id,
                    &module.manifest,
                    now,
                )
                .await?;
                if access.is_denied() {
                    continue;
                }
                let delivery = Delivery {
                    event_id: event.id.clone(),
                    module_id: module.manifest.id.clone(),
                    tenant_id: tenant.clone(),
                    name: event.name.clone(),
                    payload: event.payload.clone(),
                    occurred_at: event.occurred_at,
                };
                let mut job = NewJob::new(
                    DELIVER,
                    serde_json::to_value(&delivery).unwrap_or(Value::Null),
                    now,
                );
                job.tenant_id = Some(tenant_id.clone());
                match access.check_write() {
                    Ok(()) => jobs::enqueue_tx(&mut tx, &job, now).await?,
                    Err(refused) => {
                        let reason = skipped(&refused);
                        jobs::record_skipped_tx(&mut tx, &job, &reason, now).await?
                    }
                };
            }
        }
        sqlx::query("UPDATE event_outbox SET dispatched_at = $2 WHERE id = $1")
            .bind(&event.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(pending.len())
}

/// The recorded reason of work a module was refused: the refusal and its code.
pub(crate) fn skipped(refused: &crate::Error) -> String {
    format!("skipped: {refused} [{}]", refused.code().as_str())
}
