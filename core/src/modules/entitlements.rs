//! One entitlement check for every module call: routes, pages, events,
//! filters and jobs of a module ask [`access`] what tenant T may do with
//! module M now, and get [`Access::Enabled`], [`Access::ReadOnly`] or
//! [`Access::Denied`], with the reason.
//!
//! Two things decide; the harsher answer wins:
//! * the tenant's row in `module_entitlements` (source `trial`, `license`,
//!   `subscription` or `manual`): status `active` → enabled, `read_only` →
//!   read-only (e.g. a SaaS subscription past its grace), `revoked`, no row,
//!   or past its `valid_until` → denied;
//! * in self-hosted mode, the installation's license
//!   ([`Licensing::module_access`]): trial, active and grace → enabled;
//!   expired, not covered or clock moved back → read-only. A license never
//!   denies: a module's data stays visible.
//!
//! What each answer lets a module do: enabled — everything; read-only —
//! GET routes and pages (data can be seen and exported), while other
//! methods are refused with `license_expired`, jobs are not run, events are
//! recorded as skipped (`crate::modules::events`), and filters are skipped
//! except fail-closed security hooks; denied — nothing
//! (`module_not_entitled`).
//!
//! # Self-hosted trials
//!
//! [`grant_trials`] gives every tenant of a self-hosted install a row with
//! source `trial` for each installed module: the row says the tenant has
//! the module. How long it may use it is the license's to say: the
//! installation gets one 30-day trial of every module from its first start
//! (`license_installation`), then needs a license, or its modules go
//! read-only. So in self-hosted mode a `trial` row has no end of its own,
//! and the `valid_until` that older versions wrote on such rows is
//! ignored: if it counted, a module would be *denied* 30 days after its
//! install even under a valid license, and an ended trial would hide data
//! instead of making it read-only. Other rows (an operator's `manual`
//! grant with an end) keep their end.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use super::manifest::Manifest;
use crate::cache::TenantCache;
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;
use crate::license::{Licensing, ModuleAccess};

/// Days of the trial a self-hosted installation gets for every module.
pub const TRIAL_DAYS: i64 = 30;

/// Source of the rows [`grant_trials`] writes.
pub const TRIAL_SOURCE: &str = "trial";

/// An entitlement row.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Entitlement {
    /// Module id.
    pub module_id: String,
    /// trial, license, subscription or manual.
    pub source: String,
    /// active, read_only or revoked.
    pub status: String,
    /// Unix ms, or null for no end.
    pub valid_until: Option<i64>,
}

/// The status of an entitlement row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The module works.
    Active,
    /// GET routes and pages only.
    ReadOnly,
    /// Nothing.
    Revoked,
}

impl Status {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::ReadOnly => "read_only",
            Status::Revoked => "revoked",
        }
    }
}

/// What a tenant may do with a module now, and why not more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Access {
    /// Routes, pages, filters, events and jobs.
    Enabled,
    /// GET routes and pages (its data stays visible and exportable); writes
    /// are refused with `license_expired`, jobs and events are not run.
    ReadOnly {
        /// Why, and what unlocks it.
        reason: String,
    },
    /// Nothing: `module_not_entitled`.
    Denied {
        /// Why, and what unlocks it.
        reason: String,
    },
}

impl Access {
    /// Whether everything is allowed.
    pub fn is_enabled(&self) -> bool {
        matches!(self, Access::Enabled)
    }

    /// Whether nothing is.
    pub fn is_denied(&self) -> bool {
        matches!(self, Access::Denied { .. })
    }

    /// For reading (GET routes, pages, the module's configuration):
    /// `module_not_entitled` when denied.
    pub fn check_read(&self) -> Result<()> {
        match self {
            Access::Denied { reason } => Err(Error::new(Code::ModuleNotEntitled, reason.clone())),
            Access::Enabled | Access::ReadOnly { .. } => Ok(()),
        }
    }

    /// For changing (other methods, jobs, events): also `license_expired`
    /// when read-only.
    pub fn check_write(&self) -> Result<()> {
        match self {
            Access::ReadOnly { reason } => Err(Error::new(Code::LicenseExpired, reason.clone())),
            other => other.check_read(),
        }
    }
}

/// How long this process trusts what it read of a tenant's entitlements.
/// Writes through this file clear the cache at once; another process of a
/// scale-out install sees a change within this time.
pub const CACHE_TTL_MS: i64 = 5_000;

/// A row as the check needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    status: String,
    source: String,
    valid_until: Option<i64>,
}

/// Every entitlement row per tenant (entitlement key → row). Every module
/// call (route, filter, event, job) asks; one query per tenant and TTL
/// instead of one per call keeps a filter chain through several modules
/// cheap.
fn cache() -> &'static TenantCache<HashMap<String, Row>> {
    static CACHE: OnceLock<TenantCache<HashMap<String, Row>>> = OnceLock::new();
    CACHE.get_or_init(|| TenantCache::new(CACHE_TTL_MS))
}

/// Forget what this process read of `tenant`'s entitlements (all tenants
/// with `None`), after writing them other than through this file.
pub fn forget(tenant: Option<&TenantId>) {
    cache().forget(tenant);
}

async fn tenant_rows(db: &Db, tenant: &TenantId, now: i64) -> Result<Arc<HashMap<String, Row>>> {
    if let Some(rows) = cache().get(tenant, now) {
        return Ok(rows);
    }
    let rows: Vec<(String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT module_id, status, source, valid_until FROM module_entitlements WHERE tenant_id = $1",
    )
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    let rows = rows
        .into_iter()
        .map(|(key, status, source, valid_until)| {
            (
                key,
                Row {
                    status,
                    source,
                    valid_until,
                },
            )
        })
        .collect();
    Ok(cache().put(tenant, now, rows))
}

/// What the tenant's row alone allows module `id` (see the module docs;
/// `self_hosted`: the license decides how long a trial lasts).
fn row_access(row: Option<&Row>, id: &str, self_hosted: bool, now: i64) -> Access {
    let unlock = "a license or subscription unlocks it";
    let Some(row) = row else {
        return Access::Denied {
            reason: format!("this tenant is not entitled to the module `{id}`; {unlock}"),
        };
    };
    let ends = !(self_hosted && row.source == TRIAL_SOURCE);
    match row.valid_until {
        Some(until) if ends && until <= now => {
            return Access::Denied {
                reason: format!(
                "this tenant's entitlement to the module `{id}` ({}) ended at {}; {unlock} again",
                row.source,
                rfc3339(until)
            ),
            }
        }
        _ => {}
    }
    match row.status.as_str() {
        "active" => Access::Enabled,
        "read_only" => Access::ReadOnly {
            reason: format!(
                "the module `{id}` is read-only for this tenant: its {} entitlement is not active. Its data stays visible; changes, jobs and events resume once it is active again",
                row.source
            ),
        },
        _ => Access::Denied {
            reason: format!(
                "this tenant's entitlement to the module `{id}` ({}) was revoked; {unlock} again",
                row.source
            ),
        },
    }
}

/// What `tenant` may do with `module` at `now`: the one entitlement check.
pub async fn access(
    db: &Db,
    licensing: &Licensing,
    tenant: &TenantId,
    module: &Manifest,
    now: i64,
) -> Result<Access> {
    let key = module.entitlement_key();
    let rows = tenant_rows(db, tenant, now).await?;
    let by_row = row_access(rows.get(key), &module.id, licensing.applies(), now);
    if !by_row.is_enabled() {
        return Ok(by_row);
    }
    // The license covers the entitlement key: a module that shares another
    // one's key is licensed with it.
    Ok(
        match licensing
            .module_access(db, key, &module.version, now)
            .await?
        {
            Some(ModuleAccess::ReadOnly { reason }) => Access::ReadOnly { reason },
            Some(ModuleAccess::Enabled) | None => Access::Enabled,
        },
    )
}

/// [`access`], refusing with `module_not_entitled` when denied: for what
/// reads (GET routes, pages, the module's configuration). The answer says
/// whether writes are allowed too.
pub async fn check(
    db: &Db,
    licensing: &Licensing,
    tenant: &TenantId,
    module: &Manifest,
    now: i64,
) -> Result<Access> {
    let access = access(db, licensing, tenant, module, now).await?;
    access.check_read()?;
    Ok(access)
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
    forget(Some(tenant));
    Ok(())
}

/// Set the status of an existing entitlement (read-only after a grace,
/// revoked, active again). Returns whether the tenant had one.
pub async fn set_status(
    db: &Db,
    tenant: &TenantId,
    entitlement_key: &str,
    status: Status,
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE module_entitlements SET status = $3, updated_at = $4 WHERE tenant_id = $1 AND module_id = $2",
    )
    .bind(tenant.as_str())
    .bind(entitlement_key)
    .bind(status.as_str())
    .bind(now)
    .execute(db.pool())
    .await?;
    forget(Some(tenant));
    Ok(done.rows_affected() == 1)
}

/// Give every tenant that has no entitlement for `entitlement_key` a trial
/// row (self-hosted installs only: the installation's license, its trial
/// included, decides how long it lasts — see the module docs).
pub async fn grant_trials(db: &Db, entitlement_key: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO module_entitlements (tenant_id, module_id, source, status, valid_until, created_at, updated_at) \
         SELECT id, $1, $2, 'active', NULL, $3, $3 FROM tenants \
         WHERE TRUE ON CONFLICT (tenant_id, module_id) DO NOTHING",
    )
    .bind(entitlement_key)
    .bind(TRIAL_SOURCE)
    .bind(now)
    .execute(db.pool())
    .await?;
    forget(None);
    Ok(())
}

/// Tenants whose access to `module` is [`Access::Enabled`] at `now`: whose
/// jobs run. One query for all tenants (not one per tenant through the cache).
pub async fn entitled_tenants(
    db: &Db,
    licensing: &Licensing,
    module: &Manifest,
    now: i64,
) -> Result<Vec<TenantId>> {
    let key = module.entitlement_key();
    if let Some(ModuleAccess::ReadOnly { .. }) = licensing
        .module_access(db, key, &module.version, now)
        .await?
    {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT tenant_id, source, valid_until FROM module_entitlements WHERE module_id = $1 AND status = 'active'",
    )
    .bind(key)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, source, valid_until)| {
            let row = Row {
                status: Status::Active.as_str().to_string(),
                source: source.clone(),
                valid_until: *valid_until,
            };
            row_access(Some(&row), &module.id, licensing.applies(), now).is_enabled()
        })
        .map(|(tenant, _, _)| TenantId::from_trusted(tenant))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(status: &str, source: &str, valid_until: Option<i64>) -> Row {
        Row {
            status: status.into(),
            source: source.into(),
            valid_until,
        }
    }

    #[test]
    fn the_row_decides_enabled_read_only_or_denied_with_a_reason() {
        let now = 1_000_000;
        let cases: Vec<(&str, Option<Row>, bool, &str, &str)> = vec![
            ("no row", None, false, "denied", "not entitled"),
            (
                "active",
                Some(row("active", "subscription", None)),
                false,
                "enabled",
                "",
            ),
            (
                "active until later",
                Some(row("active", "manual", Some(now + 1))),
                false,
                "enabled",
                "",
            ),
            (
                "ended",
                Some(row("active", "manual", Some(now))),
                false,
                "denied",
                "ended at",
            ),
            (
                "ended, self-hosted manual grant",
                Some(row("active", "manual", Some(now))),
                true,
                "denied",
                "ended at",
            ),
            (
                "trial row past its old end, self-hosted: the license decides",
                Some(row("active", "trial", Some(now - 1))),
                true,
                "enabled",
                "",
            ),
            (
                "trial row past its end, SaaS",
                Some(row("active", "trial", Some(now - 1))),
                false,
                "denied",
                "ended at",
            ),
            (
                "read-only",
                Some(row("read_only", "subscription", None)),
                false,
                "read_only",
                "read-only",
            ),
            (
                "read-only and ended",
                Some(row("read_only", "subscription", Some(now))),
                false,
                "denied",
                "ended at",
            ),
            (
                "revoked",
                Some(row("revoked", "subscription", None)),
                false,
                "denied",
                "revoked",
            ),
        ];
        for (name, row, self_hosted, expected, needle) in cases {
            let access = row_access(row.as_ref(), "hello", self_hosted, now);
            let (state, reason) = match &access {
                Access::Enabled => ("enabled", ""),
                Access::ReadOnly { reason } => ("read_only", reason.as_str()),
                Access::Denied { reason } => ("denied", reason.as_str()),
            };
            assert_eq!(state, expected, "{name}: {access:?}");
            assert!(reason.contains(needle), "{name}: {reason}");
            if !access.is_enabled() {
                assert!(
                    reason.contains("`hello`"),
                    "{name} names the module: {reason}"
                );
            }
        }
    }

    #[test]
    fn writes_need_enabled_reads_need_not_denied() {
        let read_only = Access::ReadOnly { reason: "r".into() };
        let denied = Access::Denied { reason: "d".into() };
        assert!(Access::Enabled.check_write().is_ok());
        assert!(read_only.check_read().is_ok());
        assert_eq!(
            read_only.check_write().unwrap_err().code(),
            Code::LicenseExpired
        );
        for result in [denied.check_read(), denied.check_write()] {
            assert_eq!(result.unwrap_err().code(), Code::ModuleNotEntitled);
        }
    }
}
