//! `/api/v1/modules`: the installed modules (admins only). Installing,
//! enabling, disabling, removing and accepting capabilities act on the whole
//! install, so they are offered in self-hosted mode; a SaaS operator uses
//! `kontor module ...`. A module's secrets and settings belong to each
//! tenant ([`super::module_secrets`], [`super::module_settings`]).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::config::Mode;
use crate::error::{Code, Error, ErrorBody, Result};
use crate::modules::capabilities;
use crate::modules::entitlements::{self, Access};
use crate::modules::manifest::Manifest;
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
        .routes(routes!(accept_module_capabilities))
}

/// The manifest of an installed module the caller's tenant is entitled to:
/// what tenant-scoped module configuration (secrets, settings) acts on.
/// Disabled modules count, so they can be set up before they are enabled.
/// A read-only module (expired license) can still be configured, so it is
/// ready when a license is installed.
pub(crate) async fn tenant_module(state: &AppState, who: &Principal, id: &str) -> Result<Manifest> {
    let manifest = registry::manifest(state.db(), id).await?;
    entitlements::check(
        state.db(),
        state.licensing(),
        &who.tenant_id,
        &manifest,
        state.now_ms(),
    )
    .await?;
    Ok(manifest)
}

/// Refuse unless `who` manages modules on an install whose modules its
/// administrators manage (self-hosted).
pub(crate) fn manage(state: &AppState, who: &Principal) -> Result<()> {
    who.require("modules.manage")?;
    if state.config().mode == Mode::Saas {
        return Err(Error::new(
            Code::WrongMode,
            "on a SaaS install the operator manages modules with `kontor module ...`",
        ));
    }
    Ok(())
}

/// An installed module in the admin's listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModuleListing {
    /// The module, its state and health.
    #[serde(flatten)]
    pub module: ModuleInfo,
    /// What the caller's tenant may do with it now — enabled, read-only
    /// (expired license: GET routes and pages only) or denied — and why.
    pub access: Access,
}

/// Installed modules with their state, health and the caller's tenant's access.
#[utoipa::path(get, path = "/modules", tag = "modules",
    responses((status = 200, body = Vec<ModuleListing>), (status = 403, body = ErrorBody)))]
async fn list_modules(
    State(state): State<AppState>,
    who: Principal,
) -> Result<ApiJson<Vec<ModuleListing>>> {
    who.require("modules.manage")?;
    Ok(ApiJson(
        listings(&state, &who)
            .await?
            .into_iter()
            .map(|(listing, _)| listing)
            .collect(),
    ))
}

/// The installed modules with the caller's tenant's access to each, and
/// their manifests (the admin's API listing and modules page).
pub(crate) async fn listings(
    state: &AppState,
    who: &Principal,
) -> Result<Vec<(ModuleListing, crate::modules::manifest::Manifest)>> {
    let now = state.now_ms();
    let mut out = Vec::new();
    for module in registry::list(state.db(), state.modules()).await? {
        let manifest = registry::manifest(state.db(), &module.id).await?;
        let access = entitlements::access(
            state.db(),
            state.licensing(),
            &who.tenant_id,
            &manifest,
            now,
        )
        .await?;
        out.push((ModuleListing { module, access }, manifest));
    }
    Ok(out)
}

/// Options of an install.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InstallQuery {
    /// Capabilities of the package the administrator accepts, comma-separated
    /// (`secrets,crm`). Requested ones not listed stay refused to the module
    /// until accepted with `PUT /modules/{module_id}/capabilities`; the
    /// answer lists both.
    #[serde(default)]
    pub accept: Option<String>,
}

/// Install or upgrade a module from a signed `.kmod` package
/// (`Content-Type: application/octet-stream`). Dependencies are resolved
/// first; on any failure the installed version stays active. The answer
/// shows the capabilities the package requests and those accepted.
#[utoipa::path(post, path = "/modules", tag = "modules",
    params(InstallQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ModuleInfo), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn install_module(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<InstallQuery>,
    body: Body,
) -> Result<(StatusCode, ApiJson<ModuleInfo>)> {
    manage(&state, &who)?;
    let names: Vec<&str> = q.accept.as_deref().unwrap_or_default().split(',').collect();
    let accept = capabilities::parse_list("accept", &names)?;
    let bytes = axum::body::to_bytes(body, MAX_PACKAGE_BYTES)
        .await
        .map_err(|_| {
            Error::new(
                Code::PayloadTooLarge,
                format!("packages are at most {MAX_PACKAGE_BYTES} bytes"),
            )
        })?;
    let info = registry::install_package_accepting(
        state.db(),
        state.modules(),
        state.config(),
        &bytes,
        &accept,
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

/// The capabilities an administrator accepts for a module.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapabilityAcceptance {
    /// Every accepted capability (`secrets`, `crm`...): a subset of what the
    /// module requests; the rest are refused to it from now on.
    pub accepted: Vec<String>,
}

/// Accept (or withdraw) capabilities a module requests, for the whole install.
#[utoipa::path(put, path = "/modules/{module_id}/capabilities", tag = "modules",
    request_body = CapabilityAcceptance,
    params(("module_id" = String, Path, description = "Module id")),
    responses((status = 200, body = ModuleInfo), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn accept_module_capabilities(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
    ApiJson(body): ApiJson<CapabilityAcceptance>,
) -> Result<ApiJson<ModuleInfo>> {
    manage(&state, &who)?;
    let accepted = capabilities::parse_list("accepted", &body.accepted)?;
    registry::accept_capabilities(state.db(), &module_id, &accepted, state.now_ms()).await?;
    registry::list(state.db(), state.modules())
        .await?
        .into_iter()
        .find(|m| m.id == module_id)
        .map(ApiJson)
        .ok_or_else(|| Error::not_found("module"))
}
