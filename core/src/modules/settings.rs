//! Module settings: typed values a module declares in its manifest
//! (`[[settings]]` with key, type and default), set per tenant by an
//! administrator, read by the module through the `settings` import.
//!
//! They live in the tenant's settings table as `module.{id}.{key}`, with
//! JSON values. Every write is checked against the manifest: an unknown key
//! or a value of the wrong type is refused per field, so the module reads
//! only values of the type it declared (or its default).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::manifest::{Manifest, SettingDecl};
use crate::audit::{self, AuditEvent};
use crate::auth::Principal;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;

/// Longest text a `string` setting holds.
pub const MAX_TEXT: usize = 2_000;

/// A module setting as the API and the form show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModuleSetting {
    /// Key, as the module reads it.
    pub key: String,
    /// `string`, `number` or `boolean`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What it is for.
    pub description: String,
    /// The manifest's default, if any.
    #[schema(value_type = Object, nullable = true)]
    pub default: Option<Value>,
    /// The value the module reads now: the stored one, else the default.
    #[schema(value_type = Object, nullable = true)]
    pub value: Option<Value>,
    /// Whether an administrator stored a value (false: the default applies).
    pub is_set: bool,
}

/// The key in the settings table.
pub fn storage_key(module_id: &str, key: &str) -> String {
    format!("module.{module_id}.{key}")
}

/// The manifest's default as JSON.
pub fn default_value(decl: &SettingDecl) -> Option<Value> {
    decl.default
        .as_ref()
        .and_then(|d| serde_json::to_value(d).ok())
}

/// Check `value` against the declared type; the message says what is expected.
pub fn check(decl: &SettingDecl, value: &Value) -> std::result::Result<(), String> {
    let ok = match (decl.kind.as_str(), value) {
        ("string", Value::String(s)) => {
            if s.chars().count() > MAX_TEXT {
                return Err(format!("at most {MAX_TEXT} characters"));
            }
            true
        }
        ("number", Value::Number(_)) => true,
        ("boolean", Value::Bool(_)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(match decl.kind.as_str() {
            "string" => "expected text".to_string(),
            "number" => "expected a number".to_string(),
            "boolean" => "expected true or false".to_string(),
            other => format!("expected a value of type {other}"),
        })
    }
}

async fn stored(db: &Db, tenant: &TenantId, module_id: &str) -> Result<BTreeMap<String, Value>> {
    let prefix = storage_key(module_id, "");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT key, value FROM settings WHERE tenant_id = $1 AND key LIKE $2 ESCAPE '\\'",
    )
    .bind(tenant.as_str())
    .bind(format!("{}%", crate::db::like_escape(&prefix)))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(&prefix)?.to_string();
            Some((key, serde_json::from_str(&v).ok()?))
        })
        .collect())
}

/// Every declared setting of the module for the tenant, in manifest order.
/// A stored value that no longer fits its declaration (the module changed
/// the type in an upgrade) is shown as unset: the module reads the default.
pub async fn list(db: &Db, tenant: &TenantId, manifest: &Manifest) -> Result<Vec<ModuleSetting>> {
    let stored = stored(db, tenant, &manifest.id).await?;
    Ok(manifest
        .settings
        .iter()
        .map(|decl| {
            let value = stored
                .get(&decl.key)
                .filter(|v| check(decl, v).is_ok())
                .cloned();
            ModuleSetting {
                key: decl.key.clone(),
                kind: decl.kind.clone(),
                description: decl.description.clone(),
                default: default_value(decl),
                is_set: value.is_some(),
                value: value.or_else(|| default_value(decl)),
            }
        })
        .collect())
}

/// Change several settings at once: each key to its value, `null` back to
/// the default. Nothing is stored unless every field is valid; the refusal
/// lists every bad field (`details.fields`: key → what is expected).
pub async fn save(
    db: &Db,
    who: &Principal,
    manifest: &Manifest,
    changes: &Map<String, Value>,
    now: i64,
) -> Result<Vec<ModuleSetting>> {
    who.require("settings.manage")?;
    let mut problems: BTreeMap<&str, String> = BTreeMap::new();
    for (key, value) in changes {
        match manifest.settings.iter().find(|d| &d.key == key) {
            None => {
                let known: Vec<&str> = manifest.settings.iter().map(|d| d.key.as_str()).collect();
                problems.insert(
                    key,
                    format!(
                        "module {} has no setting `{key}` (it has: {})",
                        manifest.id,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            Some(_) if value.is_null() => {}
            Some(decl) => {
                if let Err(m) = check(decl, value) {
                    problems.insert(key, m);
                }
            }
        }
    }
    if let Some((first, _)) = problems.first_key_value() {
        let first = first.to_string();
        let summary: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        return Err(Error::new(
            Code::ValidationFailed,
            format!("settings of module {}: {}", manifest.id, summary.join("; ")),
        )
        .with_details(serde_json::json!({ "field": first, "fields": problems })));
    }
    let mut tx = db.begin().await?;
    for (key, value) in changes {
        let storage = storage_key(&manifest.id, key);
        if value.is_null() {
            sqlx::query("DELETE FROM settings WHERE tenant_id = $1 AND key = $2")
                .bind(who.tenant_id.as_str())
                .bind(&storage)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO settings (tenant_id, key, value, updated_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(who.tenant_id.as_str())
            .bind(&storage)
            .bind(value.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
    }
    if !changes.is_empty() {
        let event = AuditEvent::new("module.settings.changed")
            .by(who)
            .target("module", &manifest.id)
            .data(serde_json::json!({ "keys": changes.keys().collect::<Vec<_>>() }));
        audit::record_tx(&mut tx, &event, now).await?;
    }
    tx.commit().await?;
    crate::settings::forget_cached(Some(&who.tenant_id));
    list(db, &who.tenant_id, manifest).await
}

/// The value a module reads for `key` (JSON text): the stored one if it fits
/// the declaration, else the default; `None` for an undeclared key. From the
/// per-tenant settings cache: modules read settings on most calls.
pub async fn value(
    db: &Db,
    tenant: &TenantId,
    manifest: &Manifest,
    key: &str,
    now: i64,
) -> Option<String> {
    let decl = manifest.settings.iter().find(|s| s.key == key)?;
    let stored = crate::settings::stored(db, tenant, now)
        .await
        .ok()
        .and_then(|all| all.get(&storage_key(&manifest.id, key)).cloned())
        .filter(|text| serde_json::from_str::<Value>(text).is_ok_and(|v| check(decl, &v).is_ok()));
    stored.or_else(|| default_value(decl).map(|d| d.to_string()))
}

/// Delete every tenant's settings of a module (uninstall with purge).
pub(crate) async fn purge(db: &Db, module_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM settings WHERE key LIKE $1 ESCAPE '\\'")
        .bind(format!(
            "{}%",
            crate::db::like_escape(&storage_key(module_id, ""))
        ))
        .execute(db.pool())
        .await?;
    crate::settings::forget_cached(None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(kind: &str) -> SettingDecl {
        SettingDecl {
            key: "k".into(),
            kind: kind.into(),
            default: None,
            description: String::new(),
        }
    }

    #[test]
    fn values_are_checked_against_their_declared_type() {
        assert!(check(&decl("string"), &Value::from("hi")).is_ok());
        assert!(check(&decl("number"), &Value::from(2.5)).is_ok());
        assert!(check(&decl("boolean"), &Value::from(true)).is_ok());
        assert_eq!(
            check(&decl("number"), &Value::from("3")).unwrap_err(),
            "expected a number"
        );
        assert_eq!(
            check(&decl("boolean"), &Value::from(1)).unwrap_err(),
            "expected true or false"
        );
        assert!(check(&decl("string"), &Value::from("x".repeat(MAX_TEXT + 1))).is_err());
        assert!(check(&decl("string"), &serde_json::json!(["a"])).is_err());
        assert_eq!(storage_key("hello", "greeting"), "module.hello.greeting");
    }
}
