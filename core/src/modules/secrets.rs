//! Module secrets: API keys and passwords an administrator sets per tenant
//! and module, read by the module through the `secrets` capability.
//!
//! A module reads only the names its manifest declares under `[[secrets]]`.
//! Values are sealed with the server's key ([`super::secret_key`]) before
//! they reach the database, and leave it only towards the module: the API
//! lists names and dates, audit events name the secret, and no error, log
//! line or `Debug` output carries a value ([`SecretValue`] hides itself).

use std::fmt;

use serde::Serialize;

use super::manifest::{Manifest, SecretDecl};
use super::secret_key::{Sealed, SecretKeys};
use crate::audit::{self, AuditEvent};
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::TenantId;

/// Largest secret value, in bytes.
pub const MAX_VALUE_BYTES: usize = 8 * 1024;

/// A secret value. Its `Debug` and `Display` print a placeholder, so a value
/// that ends up in a log line or an error by mistake shows nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wrap a value.
    pub fn new(value: String) -> SecretValue {
        SecretValue(value)
    }

    /// The value itself: call only to hand it to its module.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A declared secret as the API lists it: never its value.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SecretInfo {
    /// Name, as the module reads it.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether an administrator set it.
    pub set: bool,
    /// RFC 3339, when it was last set.
    pub updated_at: Option<String>,
}

/// The associated data of a value: it opens only in its own row.
fn binding(tenant: &TenantId, module_id: &str, name: &str) -> Vec<u8> {
    format!("kontor-module-secret:v1\0{tenant}\0{module_id}\0{name}").into_bytes()
}

/// The declaration of `name`, or a refusal listing what the module declares.
pub fn declared<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m SecretDecl> {
    manifest
        .secrets
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            let known: Vec<&str> = manifest.secrets.iter().map(|s| s.name.as_str()).collect();
            Error::invalid(
                "name",
                format!(
                    "module {} declares no secret `{name}` (it declares: {}); add it under [[secrets]] in module.toml",
                    manifest.id,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            )
        })
}

/// Every declared secret of the module for the tenant, in manifest order.
pub async fn list(db: &Db, tenant: &TenantId, manifest: &Manifest) -> Result<Vec<SecretInfo>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT name, updated_at FROM module_secrets WHERE tenant_id = $1 AND module_id = $2",
    )
    .bind(tenant.as_str())
    .bind(&manifest.id)
    .fetch_all(db.pool())
    .await?;
    Ok(manifest
        .secrets
        .iter()
        .map(|decl| {
            let updated = rows
                .iter()
                .find(|(n, _)| *n == decl.name)
                .map(|(_, at)| *at);
            SecretInfo {
                name: decl.name.clone(),
                description: decl.description.clone(),
                set: updated.is_some(),
                updated_at: updated.map(rfc3339),
            }
        })
        .collect())
}

/// What the audit trail records of a change: the secret's name, no value.
fn audit_event(action: &str, who: &Principal, manifest: &Manifest, name: &str) -> AuditEvent {
    AuditEvent::new(action)
        .by(who)
        .target("module", &manifest.id)
        .data(serde_json::json!({ "secret": name }))
}

/// Set (or replace) a secret; audited without its value.
pub async fn set(
    db: &Db,
    keys: &SecretKeys,
    who: &Principal,
    manifest: &Manifest,
    name: &str,
    value: &SecretValue,
    now: i64,
) -> Result<()> {
    who.require("modules.manage")?;
    declared(manifest, name)?;
    if value.expose().is_empty() {
        return Err(Error::invalid(
            "value",
            "must not be empty; remove the secret instead",
        ));
    }
    if value.expose().len() > MAX_VALUE_BYTES {
        return Err(Error::invalid(
            "value",
            format!("must be at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    let sealed = keys.seal(
        value.expose().as_bytes(),
        &binding(&who.tenant_id, &manifest.id, name),
    )?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO module_secrets (tenant_id, module_id, name, key_id, nonce, ciphertext, updated_at, updated_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id, module_id, name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, \
         ciphertext = excluded.ciphertext, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(who.tenant_id.as_str())
    .bind(&manifest.id)
    .bind(name)
    .bind(&sealed.key_id)
    .bind(sealed.nonce)
    .bind(sealed.ciphertext)
    .bind(now)
    .bind(who.user().map(|u| u.to_string()))
    .execute(&mut *tx)
    .await?;
    audit::record_tx(
        &mut tx,
        &audit_event("module.secret.set", who, manifest, name),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Remove a secret; `not_found` when it was not set. Audited.
pub async fn remove(
    db: &Db,
    who: &Principal,
    manifest: &Manifest,
    name: &str,
    now: i64,
) -> Result<()> {
    who.require("modules.manage")?;
    declared(manifest, name)?;
    let mut tx = db.begin().await?;
    let done = sqlx::query(
        "DELETE FROM module_secrets WHERE tenant_id = $1 AND module_id = $2 AND name = $3",
    )
    .bind(who.tenant_id.as_str())
    .bind(&manifest.id)
    .bind(name)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found("secret"));
    }
    audit::record_tx(
        &mut tx,
        &audit_event("module.secret.removed", who, manifest, name),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The secret `name` of the module for the tenant, for the module itself;
/// `None` while it is not set. Refused for an undeclared name.
pub async fn read(
    db: &Db,
    keys: &SecretKeys,
    tenant: &TenantId,
    manifest: &Manifest,
    name: &str,
) -> Result<Option<SecretValue>> {
    declared(manifest, name)?;
    let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT key_id, nonce, ciphertext FROM module_secrets WHERE tenant_id = $1 AND module_id = $2 AND name = $3",
    )
    .bind(tenant.as_str())
    .bind(&manifest.id)
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    let Some((key_id, nonce, ciphertext)) = row else {
        return Ok(None);
    };
    let sealed = Sealed {
        key_id,
        nonce,
        ciphertext,
    };
    let bytes = keys.open(&sealed, &binding(tenant, &manifest.id, name))?;
    let text =
        String::from_utf8(bytes).map_err(|_| Error::internal("a stored secret is not UTF-8"))?;
    Ok(Some(SecretValue(text)))
}

/// Delete every tenant's secrets of a module (uninstall with purge).
pub(crate) async fn purge(db: &Db, module_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM module_secrets WHERE module_id = $1")
        .bind(module_id)
        .execute(db.pool())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_value_never_prints() {
        let v = SecretValue::new("sk_live_do_not_print".into());
        assert!(!format!("{v:?} {v}").contains("sk_live"));
        assert_eq!(v.expose(), "sk_live_do_not_print");
        let a = binding(&TenantId::from_trusted("t1"), "m", "token");
        let b = binding(&TenantId::from_trusted("t1m"), "", "token");
        assert_ne!(a, b, "the separator keeps bindings apart");
    }
}
