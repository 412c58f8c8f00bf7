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
use crate::crm::customers::CustomerInput;
use crate::db::Db;
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;
use kontor_runtime::call::FilterResult;

/// Hooks where a failing module refuses the request instead of being skipped.
pub const FAIL_CLOSED: &[&str] = &["http.request", "auth.login"];
/// Hooks that only render (navigation links, dashboard cards, customer
/// tabs): a read-only module still runs them, as it still shows its pages.
pub const RENDER_HOOKS: &[&str] = &["nav.items", "dashboard.widgets", "customer.tabs"];

/// Run the `customer.before_save` filters on a customer's fields (`id`:
/// none for a new customer): they may change them or refuse them with a
/// message for the user. Every path that saves a customer for a caller —
/// the API, a module's `create-customer` — goes through here.
pub async fn customer_before_save(
    db: &Db,
    host: &ModuleHost,
    tenant: &TenantId,
    id: Option<&str>,
    input: CustomerInput,
    now: i64,
) -> Result<CustomerInput> {
    const HOOK: &str = "customer.before_save";
    if host.filters(HOOK).is_empty() {
        return Ok(input);
    }
    let mut payload = input.to_json();
    payload["id"] = serde_json::json!(id);
    let mut out = run(db, host, tenant, HOOK, payload, now).await?;
    if let Some(map) = out.as_object_mut() {
        map.remove("id");
    }
    serde_json::from_value(out).map_err(|e| {
        Error::new(
            Code::ModuleFailed,
            format!("a module changed the customer into something invalid: {e}"),
        )
    })
}

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
