//! The `http` capability: outbound HTTP of modules through `wasi:http`.
//!
//! Three parties decide where a module's request may go:
//! * the module's manifest lists the hosts (`allowed_outbound_hosts`, Spin's
//!   syntax, checked when the manifest is parsed) — nothing else is ever
//!   reachable;
//! * an administrator accepts the `http` capability
//!   ([`super::capabilities::check`]) — until then every request is refused;
//! * an administrator opens, per module, what is closed by default
//!   ([`OutboundSettings`]): private, loopback and link-local addresses
//!   (SSRF) and TLS verification, each for named hosts only.
//!
//! The settings are per module for the whole install, not per tenant, like
//! the accepted capabilities: which machines of the server's own network a
//! module may reach, and which certificates it may trust without checking,
//! are the operator's decisions about the operator's network. In a
//! self-hosted install (one tenant) the two are the same; in SaaS a tenant
//! must never be able to point a module at the host's internal services.
//!
//! The runtime enforces the policy built here on every request
//! ([`kontor_runtime::host::http`]), against the addresses it actually
//! connects to.

use std::sync::Arc;

use kontor_runtime::host::{HostPattern, OutboundLimits, OutboundPolicy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::capabilities::Capability;
use super::manifest::Manifest;
use crate::auth::Principal;
use crate::db::Db;
use crate::error::{Code, Error, Result};

/// At most this many `allowed_outbound_hosts`, and as many entries in each
/// administrator list: an allow-list is meant to be read by a person.
pub const MAX_PATTERNS: usize = 64;

/// Validate `allowed_outbound_hosts` of a manifest: each entry parses, no
/// entry twice, and the list comes with the `http` capability (and the
/// capability with a list). Errors are `(key, message)`.
pub fn check_manifest(hosts: &[String], capabilities: &[String]) -> Result<(), (String, String)> {
    let declares_http = capabilities.iter().any(|c| c == Capability::Http.as_str());
    if !hosts.is_empty() && !declares_http {
        return Err((
            "allowed_outbound_hosts".into(),
            "outbound hosts need the capability: add `capabilities = [\"http\"]`".into(),
        ));
    }
    if declares_http && hosts.is_empty() {
        return Err((
            "allowed_outbound_hosts".into(),
            "the `http` capability needs the hosts it may reach, e.g. \
             `allowed_outbound_hosts = [\"https://api.example.com\"]`"
                .into(),
        ));
    }
    if hosts.len() > MAX_PATTERNS {
        return Err((
            "allowed_outbound_hosts".into(),
            format!("at most {MAX_PATTERNS} hosts"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, h) in hosts.iter().enumerate() {
        let key = format!("allowed_outbound_hosts[{i}]");
        HostPattern::parse(h).map_err(|m| (key.clone(), m))?;
        if !seen.insert(h.trim()) {
            return Err((key, format!("`{h}` is listed twice")));
        }
    }
    Ok(())
}

/// What an administrator opened for a module's outbound HTTP, beyond the
/// manifest. Each entry is a host pattern in the manifest's syntax; it takes
/// effect only for requests the manifest allows anyway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundSettings {
    /// Requests matching one of these may connect to private, loopback and
    /// link-local addresses (`https://pve.lan:8006`, `http://10.0.0.5:*`).
    /// Without a match, such addresses are refused.
    #[serde(default)]
    pub private_hosts: Vec<String>,
    /// Requests matching one of these do not verify the server's TLS
    /// certificate (self-signed Proxmox or Plesk hosts). Verification is on
    /// for every other host.
    #[serde(default)]
    pub insecure_tls_hosts: Vec<String>,
}

impl OutboundSettings {
    /// Refuse a pattern that does not parse, naming the field and entry.
    fn validate(&self) -> Result<()> {
        for (field, list) in [
            ("private_hosts", &self.private_hosts),
            ("insecure_tls_hosts", &self.insecure_tls_hosts),
        ] {
            if list.len() > MAX_PATTERNS {
                return Err(Error::invalid(
                    field,
                    format!("at most {MAX_PATTERNS} hosts"),
                ));
            }
            for (i, p) in list.iter().enumerate() {
                HostPattern::parse(p).map_err(|m| Error::invalid(&format!("{field}[{i}]"), m))?;
            }
        }
        Ok(())
    }

    fn trimmed(mut self) -> Self {
        for list in [&mut self.private_hosts, &mut self.insecure_tls_hosts] {
            *list = list.iter().map(|p| p.trim().to_string()).collect();
            list.dedup();
        }
        self
    }
}

fn patterns(list: &[String]) -> Vec<HostPattern> {
    // Stored entries were validated when they were written; one that no
    // longer parses (a stricter future syntax) opens nothing.
    list.iter()
        .filter_map(|p| HostPattern::parse(p).ok())
        .collect()
}

fn from_stored(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn to_stored(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// The outbound settings of installed module `id`.
pub async fn settings(db: &Db, id: &str) -> Result<OutboundSettings> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT outbound_private_hosts, outbound_insecure_tls_hosts FROM modules WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    let (private, insecure) = row.ok_or_else(|| {
        Error::new(
            Code::ModuleNotFound,
            format!("module {id} is not installed"),
        )
    })?;
    Ok(OutboundSettings {
        private_hosts: from_stored(&private),
        insecure_tls_hosts: from_stored(&insecure),
    })
}

/// Replace the outbound settings of installed module `id`, audited with
/// both lists as they were and as they are. Applies from the next call.
pub async fn set_settings(
    db: &Db,
    who: &Principal,
    id: &str,
    new: OutboundSettings,
    now: i64,
) -> Result<OutboundSettings> {
    let new = new.trimmed();
    new.validate()?;
    let before = settings(db, id).await?;
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE modules SET outbound_private_hosts = $2, outbound_insecure_tls_hosts = $3, updated_at = $4 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(to_stored(&new.private_hosts))
    .bind(to_stored(&new.insecure_tls_hosts))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    crate::audit::record_tx(
        &mut tx,
        &crate::audit::AuditEvent::new("module.outbound.updated")
            .by(who)
            .target("module", id)
            .data(serde_json::json!({ "before": before, "after": new })),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(new)
}

/// The policy of `manifest`'s module under `settings`.
pub fn policy(manifest: &Manifest, settings: &OutboundSettings) -> OutboundPolicy {
    OutboundPolicy {
        allowed: patterns(&manifest.allowed_outbound_hosts),
        private_hosts: patterns(&settings.private_hosts),
        insecure_tls_hosts: patterns(&settings.insecure_tls_hosts),
        limits: OutboundLimits::default(),
    }
}

/// The policy for one call of `manifest`'s module, read from the database
/// (the capability check comes first, in [`super::caps`]). `Err` is the
/// reason the module is told; a database failure is logged, not shown.
pub async fn policy_for_call(
    db: &Db,
    manifest: &Manifest,
) -> std::result::Result<Arc<OutboundPolicy>, String> {
    match settings(db, &manifest.id).await {
        Ok(s) => Ok(Arc::new(policy(manifest, &s))),
        Err(e) => {
            tracing::error!(module = %manifest.id, error = %e, "could not read outbound settings");
            Err(format!(
                "module `{}`: the host could not read its outbound settings; try again",
                manifest.id
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn manifest_hosts_need_the_capability_and_valid_patterns() {
        check_manifest(&caps(&["https://api.example.com"]), &caps(&["http"])).unwrap();
        check_manifest(&[], &[]).unwrap();
        let (key, m) = check_manifest(&caps(&["https://api.example.com"]), &[]).unwrap_err();
        assert_eq!(key, "allowed_outbound_hosts");
        assert!(m.contains("capabilities = [\"http\"]"), "{m}");
        let (key, m) = check_manifest(&[], &caps(&["http"])).unwrap_err();
        assert_eq!(key, "allowed_outbound_hosts");
        assert!(m.contains("needs the hosts"), "{m}");
        let (key, m) = check_manifest(
            &caps(&["https://api.example.com", "api.example.com"]),
            &caps(&["http"]),
        )
        .unwrap_err();
        assert_eq!(key, "allowed_outbound_hosts[1]");
        assert!(m.contains("has no scheme"), "{m}");
        let (key, m) = check_manifest(
            &caps(&["https://a.example.com", "https://a.example.com"]),
            &caps(&["http"]),
        )
        .unwrap_err();
        assert_eq!(key, "allowed_outbound_hosts[1]");
        assert!(m.contains("twice"), "{m}");
    }

    #[test]
    fn administrator_patterns_are_validated_by_entry() {
        let bad = OutboundSettings {
            private_hosts: caps(&["http://10.0.0.5"]),
            insecure_tls_hosts: caps(&["https://ok.example.com", "pve.lan:8006"]),
        };
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains("insecure_tls_hosts[1]"), "{e}");
        assert!(e.contains("has no scheme"), "{e}");
    }
}
