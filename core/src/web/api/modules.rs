//! `/api/v1/modules`: the installed modules (admins only). Installing,
//! enabling, disabling and removing act on the whole install, so they are
//! offered in self-hosted mode; a SaaS operator uses `kontor module ...`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::config::Mode;
use crate::error::{Code, Error, ErrorBody, Result};
use crate::modules::registry::{self, ModuleInfo};
use crate::web::extract::{ApiJson, ApiQuery};
use crate::web::AppState;

/// Largest package upload.
pub const MAX_PACKAGE_BYTES: usize = 64 * 1024 * 1024;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_modules, install_module))
        .routes(routes!(enable_module))
        .routes(routes!(disable_module))
        .routes(routes!(uninstall_module))
}

fn manage(state: &AppState, who: &Principal) -> Result<()> {
    who.require("modules.manage")?;
    if state.config().mode == Mode::Saas {
        return Err(Error::new(
            Code::WrongMode,
            "on a SaaS install the operator manages modules with `kontor module ...`",
        ));
    }
    Ok(())
}

/// Installed modules with their state and health.
#[utoipa::path(get, path = "/modules", tag = "modules",
    responses((status = 200, body = Vec<ModuleInfo>), (status = 403, body = ErrorBody)))]
async fn list_modules(
    State(state): State<AppState>,
    who: Principal,
) -> Result<ApiJson<Vec<ModuleInfo>>> {
    who.require("modules.manage")?;
    Ok(ApiJson(registry::list(state.db(), state.modules()).await?))
}

/// Install or upgrade a module from a signed `.kmod` package
/// (`Content-Type: application/octet-stream`). Dependencies are resolved
/// first; on any failure the installed version stays active.
#[utoipa::path(post, path = "/modules", tag = "modules",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ModuleInfo), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn install_module(
    State(state): State<AppState>,
    who: Principal,
    body: Body,
) -> Result<(StatusCode, ApiJson<ModuleInfo>)> {
    manage(&state, &who)?;
    let bytes = axum::body::to_bytes(body, MAX_PACKAGE_BYTES)
        .await
        .map_err(|_| {
            Error::new(
                Code::PayloadTooLarge,
                format!("packages are at most {MAX_PACKAGE_BYTES} bytes"),
            )
        })?;
    let info = registry::install_package(
        state.db(),
        state.modules(),
        state.config(),
        &bytes,
        state.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(info)))
}

/// Enable an installed module.
#[utoipa::path(post, path = "/modules/{module_id}/enable", tag = "modules",
    params(("module_id" = String, Path, description = "Module id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn enable_module(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
) -> Result<StatusCode> {
    manage(&state, &who)?;
    registry::enable(state.db(), state.modules(), &module_id, state.now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disable a module (refused while an enabled module needs it). Its data stays.
#[utoipa::path(post, path = "/modules/{module_id}/disable", tag = "modules",
    params(("module_id" = String, Path, description = "Module id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn disable_module(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
) -> Result<StatusCode> {
    manage(&state, &who)?;
    registry::disable(state.db(), state.modules(), &module_id, state.now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Options of an uninstall.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UninstallQuery {
    /// Also delete the module's records (default: keep them).
    #[serde(default)]
    pub purge: bool,
}

/// Remove a module; its records stay unless `purge=true`.
#[utoipa::path(delete, path = "/modules/{module_id}", tag = "modules",
    params(("module_id" = String, Path, description = "Module id"), UninstallQuery),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn uninstall_module(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
    ApiQuery(q): ApiQuery<UninstallQuery>,
) -> Result<StatusCode> {
    manage(&state, &who)?;
    registry::uninstall(
        state.db(),
        state.modules(),
        &module_id,
        q.purge,
        state.now_ms(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
