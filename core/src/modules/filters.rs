//! Filter hooks: modules see a JSON payload inline, in priority order, and
//! may let it pass, change it, or refuse it with a message for the user.
//!
//! A module that fails or runs past the short filter deadline is skipped
//! with a logged error — unless the hook is fail-closed (`http.request`,
//! `auth.login`): a broken security module must not open the door.
//!
//! A module that is read-only for the tenant (its license expired) is
//! skipped too, since a filter changes or refuses data — except on the
//! fail-closed hooks, where it keeps running (a lapsed license must not
//! open the door either), and on the UI's [`RENDER_HOOKS`], which only put
//! links and cards on pages: like its pages, they keep its data in reach.

use serde_json::Value;

use super::host::ModuleHost;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;
use kontor_runtime::call::FilterResult;

/// Hooks where a failing module refuses the request instead of being skipped.
pub const FAIL_CLOSED: &[&str] = &["http.request", "auth.login"];
/// Hooks that only render (navigation links, dashboard cards, customer
/// tabs): a read-only module still runs them, as it still shows its pages.
pub const RENDER_HOOKS: &[&str] = &["nav.items", "dashboard.widgets", "customer.tabs"];

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
        let access =
            super::entitlements::access(db, host.licensing(), tenant, &module.manifest, now)
                .await?;
        let still_runs = FAIL_CLOSED.contains(&hook) || RENDER_HOOKS.contains(&hook);
        if access.is_denied() || (!access.is_enabled() && !still_runs) {
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
