//! From subscriptions to module entitlements.
//!
//! A tenant's entitlement rows with source `subscription` are derived from
//! all of its subscriptions at once: a module covered by several gets the
//! best access any of them gives. The rows are written in the transaction
//! of the subscription change; the entitlement cache of this process is
//! cleared after the commit (other processes see it within the cache's
//! time to live).
//!
//! Rows of another source (`manual`, `license`, `trial`) that still grant
//! access are left alone — a subscription that ends must not take away what
//! the operator granted by hand. A subscription takes such a row over only
//! to grant `active` where it no longer does.
//!
//! Time changes access too (a trial, a period or a grace runs out), so
//! [`sweep`] runs every minute in the worker (`kontor serve` with
//! `run_worker`) and applies what came due.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::Duration;

use super::access::{Access, Policy};
use super::lifecycle::{load_locked, record, write, Actor};
use crate::clock::SharedClock;
use crate::db::{Db, Tx};
use crate::error::Result;
use crate::ids::TenantId;

/// The source the rows written here carry.
pub const SOURCE: &str = "subscription";

/// Bring the tenant's entitlements in line with its subscriptions at `now`,
/// inside `tx`; store what time alone changed (a trial that ended unpaid is
/// past due). Returns whether any entitlement row changed.
pub(crate) async fn tenant_tx(
    tx: &mut Tx,
    db: &Db,
    tenant: &TenantId,
    policy: Policy,
    now: i64,
) -> Result<bool> {
    let mut wanted: BTreeMap<String, Access> = BTreeMap::new();
    for (mut row, plan) in load_locked(tx, db, tenant).await? {
        let stored = row.timeline()?;
        let t = row.timeline_at(&plan, now)?;
        if t != stored {
            row.status = t.status.as_str().to_string();
            row.current_period_start = t.period_start;
            row.current_period_end = t.period_end;
            row.past_due_since = t.past_due_since;
            write(tx, &row, now).await?;
            if t.status != stored.status {
                record(
                    tx,
                    &Actor::Schedule,
                    "subscription.lapsed",
                    &row,
                    &plan,
                    now,
                )
                .await?;
            }
        }
        let access = t.access(plan.is_free(), policy, now);
        for module in &plan.modules {
            let best = wanted.entry(module.clone()).or_insert(access);
            *best = (*best).max(access);
        }
    }

    let existing: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT module_id, source, status, valid_until FROM module_entitlements WHERE tenant_id = $1",
    )
    .bind(tenant.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let existing: HashMap<String, (String, String, Option<i64>)> = existing
        .into_iter()
        .map(|(m, source, status, until)| (m, (source, status, until)))
        .collect();

    let mut changed = false;
    for (module, access) in &wanted {
        let status = access.entitlement_status();
        let write = match existing.get(module) {
            None => true,
            Some((source, current, until)) if source == SOURCE => {
                current != status || until.is_some()
            }
            // Another source's row: taken over only to grant access it no
            // longer gives.
            Some((_, current, until)) => {
                let grants = current == "active" && until.is_none_or(|u| u > now);
                *access == Access::Active && !grants
            }
        };
        if write {
            upsert(tx, tenant, module, status, now).await?;
            changed = true;
        }
    }
    // Rows this source wrote for modules no subscription covers any more:
    // read-only, never removed.
    for (module, (source, current, _)) in &existing {
        if source == SOURCE && !wanted.contains_key(module) && current != "read_only" {
            upsert(
                tx,
                tenant,
                module,
                Access::ReadOnly.entitlement_status(),
                now,
            )
            .await?;
            changed = true;
        }
    }
    Ok(changed)
}

async fn upsert(
    tx: &mut Tx,
    tenant: &TenantId,
    module: &str,
    status: &str,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO module_entitlements (tenant_id, module_id, source, status, valid_until, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, NULL, $5, $5) \
         ON CONFLICT (tenant_id, module_id) DO UPDATE SET source = excluded.source, \
         status = excluded.status, valid_until = NULL, updated_at = excluded.updated_at",
    )
    .bind(tenant.as_str())
    .bind(module)
    .bind(SOURCE)
    .bind(status)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// After the commit of a change: forget this process's cached
/// entitlements of `tenant` if its rows changed.
pub(crate) fn after_commit(tenant: &TenantId, changed: bool) {
    if changed {
        crate::modules::entitlements::forget(Some(tenant));
    }
}

/// Apply what came due by `now` for every tenant it concerns: a trial or
/// period that ended unpaid, a grace that ran out, a canceled period that
/// ended, a free plan's renewal. Returns how many tenants' entitlements
/// changed. Safe to run in several processes at once: each tenant is
/// handled in one transaction that locks its subscriptions.
pub async fn sweep(db: &Db, policy: Policy, now: i64) -> Result<usize> {
    // Tenants with a period that ran out, or with access still granted by a
    // subscription that may have to end it. Settled tenants (read-only
    // already) are not visited again.
    let tenants: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT s.tenant_id FROM subscriptions s WHERE \
         (s.status IN ('trialing', 'active') AND s.current_period_end <= $1) \
         OR (((s.status = 'past_due' AND s.past_due_since <= $2) \
             OR (s.status = 'canceled' AND s.current_period_end <= $1)) \
            AND EXISTS (SELECT 1 FROM module_entitlements e WHERE e.tenant_id = s.tenant_id \
                AND e.source = 'subscription' AND e.status = 'active'))",
    )
    .bind(now)
    .bind(now - policy.grace_ms)
    .fetch_all(db.pool())
    .await?;
    let mut changed = 0;
    for tenant in tenants {
        let tenant = TenantId::from_trusted(tenant);
        let mut tx = db.begin().await?;
        let did = tenant_tx(&mut tx, db, &tenant, policy, now).await?;
        tx.commit().await?;
        after_commit(&tenant, did);
        changed += usize::from(did);
    }
    Ok(changed)
}

/// How often the worker sweeps: access changes by the day, so a minute late is fine.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Sweep every [`SWEEP_EVERY`] until `shutdown` resolves (SaaS mode, in
/// the process that runs the worker).
pub async fn run(db: Db, clock: SharedClock, policy: Policy, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        match sweep(&db, policy, clock.now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tenants = n, "subscription entitlements updated"),
            Err(e) => tracing::warn!(error = %e, "subscription sweep failed"),
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
