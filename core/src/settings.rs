//! Settings of a tenant (and global ones under tenant id `''`).
//!
//! Every key is declared with a type and a default in [`CORE_SETTINGS`], so
//! a typo is refused instead of stored, and reading an unset key gives the
//! documented default. Modules declare theirs in their manifest, stored in
//! the same table as `module.{id}.{key}` ([`crate::modules::settings`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::cache::TenantCache;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::TenantId;

/// The type of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    /// Free text up to 500 characters.
    Text,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// An IANA time zone name like `Europe/Zurich`.
    TimeZone,
    /// An ISO 4217 currency code like `CHF`.
    Currency,
}

/// A declared setting: (key, type, default as JSON text, description).
pub type SettingDecl = (&'static str, SettingType, &'static str, &'static str);

/// The settings of the core.
pub const CORE_SETTINGS: &[SettingDecl] = &[
    (
        "company.name",
        SettingType::Text,
        "\"\"",
        "Company name shown in the UI and e-mails",
    ),
    (
        "locale.default",
        SettingType::Choice(&["de", "en"]),
        "\"de\"",
        "Default UI language",
    ),
    (
        "locale.timezone",
        SettingType::TimeZone,
        "\"Europe/Zurich\"",
        "Time zone for display",
    ),
    (
        "billing.currency",
        SettingType::Currency,
        "\"CHF\"",
        "Default currency",
    ),
];

fn decl(key: &str) -> Option<&'static SettingDecl> {
    CORE_SETTINGS.iter().find(|d| d.0 == key)
}

/// Check a value against the declaration of `key`.
pub fn validate(key: &str, value: &Value) -> Result<()> {
    let Some((_, ty, _, _)) = decl(key) else {
        return Err(Error::invalid("key", format!("unknown setting `{key}`")));
    };
    let s = value
        .as_str()
        .ok_or_else(|| Error::invalid(key, "expected a string"))?;
    let ok = match ty {
        SettingType::Text => s.chars().count() <= 500,
        SettingType::Choice(options) => options.contains(&s),
        SettingType::TimeZone => {
            let parts: Vec<&str> = s.split('/').collect();
            (s == "UTC" || parts.len() >= 2)
                && parts.iter().all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
                })
        }
        SettingType::Currency => s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase()),
    };
    if ok {
        Ok(())
    } else {
        let expected = match ty {
            SettingType::Text => "text of at most 500 characters".to_string(),
            SettingType::Choice(o) => format!("one of {}", o.join(", ")),
            SettingType::TimeZone => "a time zone like Europe/Zurich".to_string(),
            SettingType::Currency => "an ISO 4217 code like CHF".to_string(),
        };
        Err(Error::invalid(key, format!("expected {expected}")))
    }
}

/// Every setting of the tenant, defaults filled in.
pub async fn all(db: &Db, tenant: &TenantId) -> Result<BTreeMap<String, Value>> {
    let mut out: BTreeMap<String, Value> = CORE_SETTINGS
        .iter()
        .map(|(k, _, d, _)| {
            (
                k.to_string(),
                serde_json::from_str(d).unwrap_or(Value::Null),
            )
        })
        .collect();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM settings WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_all(db.pool())
            .await?;
    for (k, v) in rows {
        if out.contains_key(&k) {
            out.insert(k, serde_json::from_str(&v).unwrap_or(Value::Null));
        }
    }
    Ok(out)
}

/// One setting of the tenant (its default when unset).
pub async fn get(db: &Db, tenant: &TenantId, key: &str) -> Result<Value> {
    let mut all = all(db, tenant).await?;
    all.remove(key).ok_or_else(|| Error::not_found("setting"))
}

/// How long this process trusts what it read of a tenant's stored settings
/// (for module calls). Writes through [`set`] clear the cache at once;
/// another process of a scale-out install sees a change within this time.
pub const CACHE_TTL_MS: i64 = 5_000;

fn cache() -> &'static TenantCache<HashMap<String, String>> {
    static CACHE: OnceLock<TenantCache<HashMap<String, String>>> = OnceLock::new();
    CACHE.get_or_init(|| TenantCache::new(CACHE_TTL_MS))
}

/// Every setting the tenant has stored (key → JSON text), without defaults,
/// from a per-tenant cache: module calls read their settings on most calls,
/// and one query per tenant and TTL keeps a module route cheap.
pub async fn stored(db: &Db, tenant: &TenantId, now: i64) -> Result<Arc<HashMap<String, String>>> {
    if let Some(map) = cache().get(tenant, now) {
        return Ok(map);
    }
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT key, value FROM settings WHERE tenant_id = $1")
            .bind(tenant.as_str())
            .fetch_all(db.pool())
            .await?;
    Ok(cache().put(tenant, now, rows.into_iter().collect()))
}

/// Drop what this process remembers of a tenant's stored settings (or of
/// every tenant's), after a write that did not go through [`set`] (module
/// settings, validated against their module's manifest).
pub(crate) fn forget_cached(tenant: Option<&TenantId>) {
    cache().forget(tenant);
}

/// Store a setting after validating it.
pub async fn set(db: &Db, tenant: &TenantId, key: &str, value: &Value, now: i64) -> Result<()> {
    validate(key, value)?;
    sqlx::query(
        "INSERT INTO settings (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(tenant.as_str())
    .bind(key)
    .bind(value.to_string())
    .bind(now)
    .execute(db.pool())
    .await?;
    cache().forget(Some(tenant));
    Ok(())
}
