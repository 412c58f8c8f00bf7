//! `/api/v1/modules`: installed modules. The module runtime fills this in;
//! until then the list is empty.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ErrorBody, Result};
use crate::web::extract::ApiJson;
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_modules))
}

/// An installed module.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModuleInfo {
    /// Module id.
    pub id: String,
    /// Installed version.
    pub version: String,
    /// `enabled` or `disabled`.
    pub state: String,
}

/// Installed modules (admin only).
#[utoipa::path(get, path = "/modules", tag = "modules",
    responses((status = 200, body = Vec<ModuleInfo>), (status = 403, body = ErrorBody)))]
async fn list_modules(
    State(_state): State<AppState>,
    who: Principal,
) -> Result<ApiJson<Vec<ModuleInfo>>> {
    who.require("modules.manage")?;
    Ok(ApiJson(Vec::new()))
}
