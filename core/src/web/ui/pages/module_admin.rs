//! `/modules`: the administrator's list of installed modules — version,
//! state, what this tenant may do with each (enabled, read-only or denied,
//! and why), the capabilities it asked for and was granted (with the hosts
//! it may reach over HTTP and what an administrator opened), its failures —
//! with a link to each module's settings.

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use tera::Context;

use crate::modules::entitlements::Access;
use crate::web::api::modules::listings;
use crate::web::ui::session::UiUser;
use crate::web::AppState;

/// One row of the table.
#[derive(Debug, Serialize)]
struct Row {
    id: String,
    name: String,
    version: String,
    publisher: String,
    enabled: bool,
    /// `enabled`, `read_only` or `denied`.
    access: &'static str,
    /// Why not more, in the licensing's words.
    access_reason: Option<String>,
    capabilities: Vec<String>,
    accepted_capabilities: Vec<String>,
    /// Where it may connect (`http` capability), and what an administrator
    /// opened: private addresses and unverified TLS, per host.
    outbound_hosts: Vec<String>,
    outbound: crate::modules::outbound::OutboundSettings,
    failures: i64,
    last_error: Option<String>,
    has_settings: bool,
}

/// `GET /modules`.
pub(crate) async fn list(State(state): State<AppState>, user: UiUser) -> Response {
    let page = user.page(&state);
    page.finish(
        async {
            user.principal.require("modules.manage")?;
            let mut rows: Vec<Row> = Vec::new();
            for (l, manifest) in listings(&state, &user.principal).await? {
                let outbound = if manifest.allowed_outbound_hosts.is_empty() {
                    Default::default()
                } else {
                    crate::modules::outbound::settings(state.db(), &manifest.id).await?
                };
                rows.push({
                    let (access, access_reason) = match l.access {
                        Access::Enabled => ("enabled", None),
                        Access::ReadOnly { reason } => ("read_only", Some(reason)),
                        Access::Denied { reason } => ("denied", Some(reason)),
                    };
                    let m = l.module;
                    Row {
                        enabled: m.state == "enabled",
                        id: m.id,
                        name: m.name,
                        version: m.version,
                        publisher: m.publisher,
                        access,
                        access_reason,
                        capabilities: m.capabilities,
                        accepted_capabilities: m.accepted_capabilities,
                        outbound_hosts: manifest.allowed_outbound_hosts,
                        outbound,
                        failures: m.failures,
                        last_error: m.last_error,
                        has_settings: !manifest.settings.is_empty(),
                    }
                });
            }
            let mut ctx = Context::new();
            ctx.insert("modules", &rows);
            page.render("modules/list.html", ctx)
        }
        .await,
    )
}
