//! `/api/v1/users`: the people of the tenant.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{self, AuditEvent};
use crate::auth::users::{self, NewUser, User, UserPatch};
use crate::auth::{Principal, Role};
use crate::error::{Code, Error, ErrorBody, Result};
use crate::license::LimitKind;
use crate::web::extract::ApiJson;
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
}

/// Users of the tenant.
#[utoipa::path(get, path = "/users", tag = "users",
    responses((status = 200, body = Vec<User>), (status = 403, body = ErrorBody)))]
async fn list_users(State(state): State<AppState>, who: Principal) -> Result<ApiJson<Vec<User>>> {
    who.require("users.read")?;
    Ok(ApiJson(users::list(state.db(), &who.tenant_id).await?))
}

/// Create a user. Only an owner creates owners. A license that caps users
/// refuses one more with `license_limit_reached`.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, ApiJson<User>)> {
    who.require("users.manage")?;
    if new.role == Role::Owner && who.role != Role::Owner {
        return Err(Error::new(
            Code::Forbidden,
            "only an owner can make a new owner",
        ));
    }
    let now = state.now_ms();
    let quota = users::quota_for(state.licensing(), state.db(), new.role, now).await?;
    let mut tx = state.db().begin().await?;
    quota.check_tx(&mut tx).await?;
    let user = users::create(&mut tx, &who.tenant_id, &new, now).await?;
    audit::record_tx(
        &mut tx,
        &AuditEvent::new("user.created")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .target("user", &user.id)
            .data(serde_json::json!({ "role": user.role })),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, ApiJson(user)))
}

/// One user.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<User>> {
    if id != who.user_id.as_str() {
        who.require("users.read")?;
    }
    Ok(ApiJson(users::get(state.db(), &who.tenant_id, &id).await?))
}

/// Change a user (name, role, status, locale, password). Disabling a user
/// or setting a new password ends their sessions.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<ApiJson<User>> {
    let own_profile_only =
        id == who.user_id.as_str() && patch.role.is_none() && patch.status.is_none();
    if !own_profile_only {
        who.require("users.manage")?;
    }
    let now = state.now_ms();
    let quota = state
        .licensing()
        .quota(state.db(), LimitKind::Users, now)
        .await?;
    let user = users::update(
        state.db(),
        &who.tenant_id,
        &id,
        &patch,
        who.role,
        &quota,
        now,
    )
    .await?;
    audit::record(
        state.db(),
        &AuditEvent::new("user.updated")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .target("user", &id)
            .data(serde_json::json!({
                "role": patch.role, "status": patch.status, "password_changed": patch.password.is_some()
            })),
        now,
    )
    .await?;
    Ok(ApiJson(user))
}
