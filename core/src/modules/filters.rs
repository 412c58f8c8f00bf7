//! Filter hooks: modules see a JSON payload inline, in priority order, and
//! may let it pass, change it, or refuse it with a message for the user.
//!
//! A module that fails or runs past the short filter deadline is skipped
//! with a logged error — unless the hook is fail-closed (`http.request`,
//! `auth.login`): a broken security module must not open the door.

use serde_json::Value;

use super::host::ModuleHost;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;
use kontor_runtime::call::FilterResult;

/// Hooks where a failing module refuses the request instead of being skipped.
pub const FAIL_CLOSED: &[&str] = &["http.request", "auth.login"];

/// Run every entitled module's filter for `hook` on `payload`; returns the
/// payload as the last filter left it, or `validation_failed` with the
/// rejecting module's message.
pub async fn run(
    db: &Db,
    host: &ModuleHost,
    tenant: &TenantId,
    hook: &str,
    payload: Value,
    now: i64,
) -> Result<Value> {
    let mut current = payload;
    for module in host.filters(hook) {
        if !super::entitlements::is_entitled(db, tenant, module.manifest.entitlement_key(), now)
            .await?
        {
            continue;
        }
        match host
            .filter(&module, tenant, hook, &current.to_string())
            .await
        {
            Ok(FilterResult::Pass) => {}
            Ok(FilterResult::Modify(next)) => match serde_json::from_str(&next) {
                Ok(v) => current = v,
                Err(e) => {
                    tracing::error!(module = %module.manifest.id, hook, error = %e, "filter returned invalid JSON; ignored")
                }
            },
            Ok(FilterResult::Reject(message)) => {
                let message: String = message.chars().take(500).collect();
                return Err(Error::new(Code::ValidationFailed, message.clone())
                    .with_details(serde_json::json!({ "module": module.manifest.id, "hook": hook, "reason": message })));
            }
            Err(e) if FAIL_CLOSED.contains(&hook) => {
                return Err(Error::new(
                    Code::Forbidden,
                    format!(
                        "refused: the security check of module {} failed",
                        module.manifest.id
                    ),
                )
                .with_details(
                    serde_json::json!({ "module": module.manifest.id, "cause": e.code().as_str() }),
                ));
            }
            Err(e) => {
                tracing::error!(module = %module.manifest.id, hook, error = %e, "filter failed; skipped");
            }
        }
    }
    Ok(current)
}
