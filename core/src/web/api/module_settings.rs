//! `/api/v1/modules/{module_id}/settings`: a module's typed settings in
//! this tenant, as its manifest declares them.

use axum::extract::{Path, State};
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::modules::tenant_module;
use crate::auth::Principal;
use crate::error::{ErrorBody, Result};
use crate::modules::settings::{self, ModuleSetting};
use crate::web::extract::ApiJson;
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_module_settings, put_module_settings))
}

/// Every setting the module declares: type, default, and the value it reads now.
#[utoipa::path(get, path = "/modules/{module_id}/settings", tag = "modules",
    params(("module_id" = String, Path, description = "Module id")),
    responses((status = 200, body = Vec<ModuleSetting>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_module_settings(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
) -> Result<ApiJson<Vec<ModuleSetting>>> {
    who.require("settings.read")?;
    let manifest = tenant_module(&state, &who, &module_id).await?;
    Ok(ApiJson(
        settings::list(state.db(), &who.tenant_id, &manifest).await?,
    ))
}

/// Change settings: an object of key → value (`null` restores the default).
/// Each value is checked against the type the manifest declares; unknown
/// keys are refused; nothing is stored unless every field is valid
/// (`details.fields` names each bad one).
#[utoipa::path(put, path = "/modules/{module_id}/settings", tag = "modules",
    request_body(content = Object, description = "Setting key → new value, or null for the default"),
    params(("module_id" = String, Path, description = "Module id")),
    responses((status = 200, body = Vec<ModuleSetting>), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_module_settings(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
    ApiJson(changes): ApiJson<Map<String, Value>>,
) -> Result<ApiJson<Vec<ModuleSetting>>> {
    who.require("settings.manage")?;
    let manifest = tenant_module(&state, &who, &module_id).await?;
    Ok(ApiJson(
        settings::save(state.db(), &who, &manifest, &changes, state.now_ms()).await?,
    ))
}
