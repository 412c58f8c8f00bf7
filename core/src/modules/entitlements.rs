//! One entitlement check for every module call: routes, pages, events,
//! filters and jobs of a module run for a tenant only if this says yes.
//!
//! Entitlements are rows in `module_entitlements` with their source
//! (`trial`, `license`, `subscription`, `manual`). This file is the single
//! place that answers "may tenant T use module M now?"; the licensing work
//! decides which rows exist.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::cache::TenantCache;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;

/// Days of the trial a self-hosted tenant gets for a newly installed module.
pub const TRIAL_DAYS: i64 = 30;

/// An entitlement row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Entitlement {
    /// Module id.
    pub module_id: String,
    /// trial, license, subscription or manual.
    pub source: String,
    /// active or revoked.
    pub status: String,
    /// Unix ms, or null for no end.
    pub valid_until: Option<i64>,
}

/// How long this process trusts what it read of a tenant's entitlements.
/// Writes through this file clear the cache at once; another process of a
/// scale-out install sees a change within this time.
pub const CACHE_TTL_MS: i64 = 5_000;

/// Active entitlements per tenant (entitlement key → end, if any). Every
/// module call (route, filter, event, job) asks; one query per tenant and
/// TTL instead of one per call keeps a filter chain through several modules
/// cheap.
fn cache() -> &'static TenantCache<HashMap<String, Option<i64>>> {
    static CACHE: OnceLock<TenantCache<HashMap<String, Option<i64>>>> = OnceLock::new();
    CACHE.get_or_init(|| TenantCache::new(CACHE_TTL_MS))
}

async fn active_keys(
    db: &Db,
    tenant: &TenantId,
    now: i64,
) -> Result<Arc<HashMap<String, Option<i64>>>> {
    if let Some(keys) = cache().get(tenant, now) {
        return Ok(keys);
    }
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT module_id, valid_until FROM module_entitlements WHERE tenant_id = $1 AND status = 'active'",
    )
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    Ok(cache().put(tenant, now, rows.into_iter().collect()))
}

/// Whether `tenant` may use module `entitlement_key` at `now`.
pub async fn is_entitled(
    db: &Db,
    tenant: &TenantId,
    entitlement_key: &str,
    now: i64,
) -> Result<bool> {
    let keys = active_keys(db, tenant, now).await?;
    Ok(matches!(keys.get(entitlement_key), Some(until) if until.is_none_or(|u| u > now)))
}

/// `Ok` if entitled, else `module_not_entitled` naming the module.
pub async fn check(
    db: &Db,
    tenant: &TenantId,
    module_id: &str,
    entitlement_key: &str,
    now: i64,
) -> Result<()> {
    if is_entitled(db, tenant, entitlement_key, now).await? {
        Ok(())
    } else {
        Err(Error::new(
            Code::ModuleNotEntitled,
            format!("this tenant is not entitled to the module `{module_id}`; a license or subscription unlocks it"),
        ))
    }
}

/// Grant (or renew) an entitlement.
pub async fn grant(
    db: &Db,
    tenant: &TenantId,
    entitlement_key: &str,
    source: &str,
    valid_until: Option<i64>,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO module_entitlements (tenant_id, module_id, source, status, valid_until, created_at, updated_at) \
         VALUES ($1, $2, $3, 'active', $4, $5, $5) \
         ON CONFLICT (tenant_id, module_id) DO UPDATE SET source = excluded.source, status = 'active', \
         valid_until = excluded.valid_until, updated_at = excluded.updated_at",
    )
    .bind(tenant.as_str())
    .bind(entitlement_key)
    .bind(source)
    .bind(valid_until)
    .bind(now)
    .execute(db.pool())
    .await?;
    cache().forget(Some(tenant));
    Ok(())
}

/// Give every tenant that has no entitlement for `entitlement_key` a trial
/// (self-hosted installs try new modules before licensing them).
pub async fn grant_trials(db: &Db, entitlement_key: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO module_entitlements (tenant_id, module_id, source, status, valid_until, created_at, updated_at) \
         SELECT id, $1, 'trial', 'active', $2, $3, $3 FROM tenants \
         WHERE TRUE ON CONFLICT (tenant_id, module_id) DO NOTHING",
    )
    .bind(entitlement_key)
    .bind(now + TRIAL_DAYS * 86_400_000)
    .bind(now)
    .execute(db.pool())
    .await?;
    cache().forget(None);
    Ok(())
}

/// Tenants entitled to `entitlement_key` at `now`.
pub async fn entitled_tenants(db: &Db, entitlement_key: &str, now: i64) -> Result<Vec<TenantId>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT tenant_id FROM module_entitlements WHERE module_id = $1 AND status = 'active' \
         AND (valid_until IS NULL OR valid_until > $2)",
    )
    .bind(entitlement_key)
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    Ok(ids.into_iter().map(TenantId::from_trusted).collect())
}
