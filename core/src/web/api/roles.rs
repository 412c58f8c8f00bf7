//! `/api/v1/roles`: the role → permission map of the tenant.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{self, AuditEvent};
use crate::auth::roles::{role_map, set_role_permissions, PermissionDef};
use crate::auth::{Principal, Role};
use crate::error::{ErrorBody, Result};
use crate::web::extract::ApiJson;
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_roles))
        .routes(routes!(set_role))
}

/// Every permission and which role holds which.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleMap {
    /// Every permission known to this host (core and modules).
    pub permissions: Vec<PermissionDef>,
    /// Role → permissions it holds.
    #[schema(value_type = Object)]
    pub roles: BTreeMap<Role, BTreeSet<String>>,
}

/// The new permissions of a role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePermissions {
    /// The complete list; permissions not listed are taken away.
    pub permissions: Vec<String>,
}

/// The role → permission map.
#[utoipa::path(get, path = "/roles", tag = "users",
    responses((status = 200, body = RoleMap), (status = 403, body = ErrorBody)))]
async fn get_roles(State(state): State<AppState>, who: Principal) -> Result<ApiJson<RoleMap>> {
    who.require("roles.manage")?;
    Ok(ApiJson(RoleMap {
        permissions: state.permissions().all(),
        roles: role_map(state.db(), state.permissions(), &who.tenant_id).await?,
    }))
}

/// Replace the permissions of a role (not `owner`, which holds all).
#[utoipa::path(put, path = "/roles/{role}", tag = "users", request_body = RolePermissions,
    params(("role" = Role, Path, description = "Role")),
    responses((status = 200, body = RoleMap), (status = 422, body = ErrorBody)))]
async fn set_role(
    State(state): State<AppState>,
    who: Principal,
    Path(role): Path<String>,
    ApiJson(body): ApiJson<RolePermissions>,
) -> Result<ApiJson<RoleMap>> {
    who.require("roles.manage")?;
    let role: Role = role.parse()?;
    set_role_permissions(
        state.db(),
        state.permissions(),
        &who.tenant_id,
        role,
        &body.permissions,
    )
    .await?;
    audit::record(
        state.db(),
        &AuditEvent::new("role.changed")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .target("role", role.as_str())
            .data(serde_json::json!({ "permissions": body.permissions })),
        state.now_ms(),
    )
    .await?;
    Ok(ApiJson(RoleMap {
        permissions: state.permissions().all(),
        roles: role_map(state.db(), state.permissions(), &who.tenant_id).await?,
    }))
}
