//! `/api/v1/auth`: login, logout, the current user, sessions and API tokens.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{self, AuditEvent};
use crate::auth::sessions::{self, SessionInfo};
use crate::auth::tokens::{self, ApiToken, CreatedToken, NewToken};
use crate::auth::users::{User, UserRow, USER_COLUMNS};
use crate::auth::{normalize_email, password, Principal};
use crate::error::{Code, Error, ErrorBody, Result};
use crate::ids::{TenantId, UserId};
use crate::web::extract::{ApiJson, ClientIp, SESSION_COOKIE};
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
    /// Tenant slug; needed only when the e-mail exists in several tenants.
    #[serde(default)]
    pub tenant: Option<String>,
}

/// A successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Session token: send as `Authorization: Bearer <token>`. Also set as an HttpOnly cookie.
    pub token: String,
    /// The user.
    pub user: User,
    /// For cookie-authenticated writes: send as `X-CSRF-Token`.
    pub csrf_token: String,
    /// RFC 3339: when the session lapses without use.
    pub expires_at: String,
}

/// The outcome of checking credentials, shared by the API and the UI login.
pub(crate) struct LoggedIn {
    pub response: LoginResponse,
    pub max_age_secs: i64,
}

/// Check credentials with the brute-force limits, and open a session.
pub(crate) async fn authenticate_login(
    state: &AppState,
    req: &LoginRequest,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<LoggedIn> {
    let now = state.now_ms();
    let limiter = state.login_limiter();
    let email = normalize_email(&req.email);
    let ip_key = ip.unwrap_or("unknown").to_string();
    if let Some(wait) = limiter.per_ip.retry_after(&ip_key, now) {
        return Err(Error::rate_limited(wait));
    }
    if let Some(wait) = limiter.per_account.retry_after(&email, now) {
        return Err(Error::rate_limited(wait));
    }
    limiter.per_ip.record(&ip_key, now);

    let mut candidates = sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {} FROM users u WHERE u.email_norm = $1 AND u.status = 'active' \
         AND ($2 IS NULL OR u.tenant_id IN (SELECT id FROM tenants WHERE slug = $2)) ORDER BY u.created_at",
        USER_COLUMNS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(&email)
    .bind(&req.tenant)
    .fetch_all(state.db().pool())
    .await?;
    if candidates.len() > 1 {
        // Verify against every candidate would leak timing per tenant; the
        // caller must say which tenant, whatever the password.
        return Err(Error::new(
            Code::TenantRequired,
            "this e-mail has accounts in several tenants; add `tenant`",
        ));
    }
    let user = candidates.pop();
    let ok = password::verify(
        &req.password,
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let user = match (ok, user) {
        (true, Some(u)) => u,
        (_, user) => {
            limiter.per_account.record(&email, now);
            let mut event = AuditEvent::new("user.login_failed")
                .ip(ip)
                .data(serde_json::json!({ "email": email }));
            if let Some(u) = &user {
                event = event
                    .tenant(&TenantId::from_trusted(u.tenant_id.clone()))
                    .target("user", &u.id);
            }
            audit::record(state.db(), &event, now).await?;
            return Err(Error::new(
                Code::InvalidCredentials,
                "e-mail or password is wrong",
            ));
        }
    };
    limiter.per_account.clear(&email);
    let tenant = TenantId::from_trusted(user.tenant_id.clone());
    let user_id = UserId::from_trusted(user.id.clone());
    let idle = state.config().session_idle_hours;
    let session =
        sessions::create(state.db(), &tenant, &user_id, ip, user_agent, now, idle).await?;
    sqlx::query("UPDATE users SET last_login_at = $2 WHERE id = $1")
        .bind(&user.id)
        .bind(now)
        .execute(state.db().pool())
        .await?;
    audit::record(
        state.db(),
        &AuditEvent::new("user.login")
            .tenant(&tenant)
            .actor(&user.id)
            .target("user", &user.id)
            .ip(ip),
        now,
    )
    .await?;
    let mut api_user = user.to_api()?;
    api_user.last_login_at = Some(crate::clock::rfc3339(now));
    Ok(LoggedIn {
        response: LoginResponse {
            token: session.token,
            user: api_user,
            csrf_token: session.csrf_token,
            expires_at: crate::clock::rfc3339(session.expires_at),
        },
        max_age_secs: idle * 3600,
    })
}

/// The `Set-Cookie` value for a session token (empty token: clear it).
pub(crate) fn session_cookie(state: &AppState, token: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.config().secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let value = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Log in with e-mail and password.
///
/// Returns a session token (also set as an HttpOnly cookie). Failed attempts
/// are limited per account and per client address.
#[utoipa::path(post, path = "/auth/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, body = LoginResponse),
        (status = 401, description = "wrong e-mail or password", body = ErrorBody),
        (status = 429, description = "too many attempts; see Retry-After", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response> {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let done = authenticate_login(&state, &req, ip.as_deref(), ua).await?;
    let cookie = session_cookie(&state, &done.response.token, done.max_age_secs);
    Ok(([(header::SET_COOKIE, cookie)], ApiJson(done.response)).into_response())
}

/// End the current session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, who: Principal) -> Result<Response> {
    if let Some(id) = who.session_id() {
        sessions::revoke(state.db(), &who.tenant_id, &who.user_id, id, state.now_ms()).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie(&state, "", 0))],
    )
        .into_response())
}

/// The caller, their tenant and permissions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user.
    pub user: User,
    /// Tenant id.
    pub tenant_id: String,
    /// Permissions the user holds, sorted.
    pub permissions: Vec<String>,
}

/// Who am I?
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, who: Principal) -> Result<ApiJson<Me>> {
    let user = crate::auth::users::get(state.db(), &who.tenant_id, who.user_id.as_str()).await?;
    let mut permissions: Vec<String> = who.permissions.iter().cloned().collect();
    permissions.sort();
    Ok(ApiJson(Me {
        user,
        tenant_id: who.tenant_id.to_string(),
        permissions,
    }))
}

/// My live sessions.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth",
    responses((status = 200, body = Vec<SessionInfo>), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    who: Principal,
) -> Result<ApiJson<Vec<SessionInfo>>> {
    Ok(ApiJson(
        sessions::list_for_user(
            state.db(),
            &who.tenant_id,
            &who.user_id,
            who.session_id(),
            state.now_ms(),
        )
        .await?,
    ))
}

/// Revoke one of my sessions; it stops working at once.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    sessions::revoke(
        state.db(),
        &who.tenant_id,
        &who.user_id,
        &id,
        state.now_ms(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// My personal API tokens.
#[utoipa::path(get, path = "/auth/tokens", tag = "auth",
    responses((status = 200, body = Vec<ApiToken>), (status = 401, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    who: Principal,
) -> Result<ApiJson<Vec<ApiToken>>> {
    Ok(ApiJson(
        tokens::list(state.db(), &who.tenant_id, &who.user_id).await?,
    ))
}

/// Create a personal API token. The token is in this response only.
#[utoipa::path(post, path = "/auth/tokens", tag = "auth", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(req): ApiJson<NewToken>,
) -> Result<(StatusCode, ApiJson<CreatedToken>)> {
    let now = state.now_ms();
    let created = tokens::create(state.db(), &who.tenant_id, &who.user_id, &req, now).await?;
    audit::record(
        state.db(),
        &AuditEvent::new("token.created")
            .tenant(&who.tenant_id)
            .actor(who.user_id.as_str())
            .target("api_token", &created.info.id)
            .data(serde_json::json!({ "prefix": created.info.prefix })),
        now,
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(created)))
}

/// Revoke one of my API tokens.
#[utoipa::path(delete, path = "/auth/tokens/{id}", tag = "auth",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    tokens::revoke(
        state.db(),
        &who.tenant_id,
        &who.user_id,
        &id,
        state.now_ms(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
