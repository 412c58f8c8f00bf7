//! `/api/v1/modules/{module_id}/outbound`: what an administrator opens for
//! a module's outbound HTTP beyond its manifest — private addresses and
//! TLS verification, per host ([`crate::modules::outbound`]). Install-wide,
//! like accepting capabilities, so offered to the administrators of a
//! self-hosted install.

use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ErrorBody, Result};
use crate::modules::outbound::{self, OutboundSettings};
use crate::modules::registry;
use crate::web::extract::ApiJson;
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_outbound, set_outbound))
}

/// A module's outbound HTTP: what its manifest allows and what an
/// administrator opened.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundView {
    /// The manifest's `allowed_outbound_hosts`: the only hosts it may reach.
    pub allowed_outbound_hosts: Vec<String>,
    /// The administrator's settings.
    #[serde(flatten)]
    pub settings: OutboundSettings,
}

async fn view(state: &AppState, id: &str) -> Result<OutboundView> {
    let manifest = registry::manifest(state.db(), id).await?;
    Ok(OutboundView {
        allowed_outbound_hosts: manifest.allowed_outbound_hosts,
        settings: outbound::settings(state.db(), id).await?,
    })
}

/// The module's allowed outbound hosts and the administrator's settings.
#[utoipa::path(get, path = "/modules/{module_id}/outbound", tag = "modules",
    params(("module_id" = String, Path, description = "Module id")),
    responses((status = 200, body = OutboundView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_outbound(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
) -> Result<ApiJson<OutboundView>> {
    who.require("modules.manage")?;
    Ok(ApiJson(view(&state, &module_id).await?))
}

/// Replace which of the module's allowed hosts may reach private addresses
/// and which skip TLS verification (audited; applies from the next call).
#[utoipa::path(put, path = "/modules/{module_id}/outbound", tag = "modules",
    request_body = OutboundSettings,
    params(("module_id" = String, Path, description = "Module id")),
    responses((status = 200, body = OutboundView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_outbound(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
    ApiJson(body): ApiJson<OutboundSettings>,
) -> Result<ApiJson<OutboundView>> {
    super::modules::manage(&state, &who)?;
    outbound::set_settings(state.db(), &who, &module_id, body, state.now_ms()).await?;
    Ok(ApiJson(view(&state, &module_id).await?))
}
