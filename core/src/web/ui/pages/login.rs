//! `/login` and `/logout`.
//!
//! The login form has no session whose CSRF token it could carry, so it is
//! protected by a double-submit token ([`super::guest_csrf`]) in the
//! `kontor_login_csrf` cookie, only sent to `/login`.

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tera::Context;

use super::guest_csrf::{GuestCsrf, MAX_AGE_SECS};
use super::present;
use crate::auth::sessions;
use crate::error::{Code, Error, Result};
use crate::web::api::auth::{authenticate_login, session_cookie, LoginRequest};
use crate::web::extract::{principal_of, ClientIp};
use crate::web::ui::render::Page;
use crate::web::ui::session::{safe_next, Guest, UiUser};
use crate::web::AppState;

/// Cookie of the login form's double-submit token.
pub const LOGIN_CSRF_COOKIE: &str = "kontor_login_csrf";

/// The login form's double-submit token.
const LOGIN_CSRF: GuestCsrf = GuestCsrf {
    cookie: LOGIN_CSRF_COOKIE,
    path: "/login",
};

/// Query of `GET /login`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// Fields of the login form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoginForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    email: String,
    password: String,
    tenant: String,
    next: String,
}

/// What the login form shows besides its fields.
#[derive(Default)]
struct LoginView<'a> {
    email: &'a str,
    tenant: &'a str,
    next: Option<&'a str>,
    error: Option<String>,
    ask_tenant: bool,
}

/// `GET /login`.
pub(crate) async fn show(
    State(state): State<AppState>,
    guest: Guest,
    parts: Parts,
    Query(query): Query<LoginQuery>,
) -> Response {
    let page = guest.page(&state);
    let next = safe_next(query.next.as_deref());
    // Already signed in: nothing to do here.
    if let Ok(Some(_)) = principal_of(&parts, &state).await {
        return Redirect::to(next.unwrap_or("/")).into_response();
    }
    let token = LOGIN_CSRF.token_for_form(&parts);
    let view = LoginView {
        next,
        ..Default::default()
    };
    page.finish(render(&state, &page, StatusCode::OK, &token, view))
}

/// `POST /login`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    guest: Guest,
    ClientIp(ip): ClientIp,
    parts: Parts,
    Form(form): Form<LoginForm>,
) -> Response {
    let page = guest.page(&state);
    let next = safe_next(Some(form.next.as_str()));
    let fresh = crate::auth::random_secret();
    let view = |error: String, ask_tenant: bool| LoginView {
        email: &form.email,
        tenant: &form.tenant,
        next,
        error: Some(error),
        ask_tenant,
    };
    if !LOGIN_CSRF.verify(&parts, &form.csrf) {
        let error = page.text("login.error.csrf", &[]);
        return page.finish(render(
            &state,
            &page,
            StatusCode::FORBIDDEN,
            &fresh,
            view(error, false),
        ));
    }
    let request = LoginRequest {
        email: form.email.clone(),
        password: form.password.clone(),
        tenant: present(&form.tenant),
    };
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    match authenticate_login(&state, &request, ip.as_deref(), user_agent).await {
        Ok(done) => {
            let mut res = Redirect::to(next.unwrap_or("/")).into_response();
            let h = res.headers_mut();
            h.append(
                header::SET_COOKIE,
                session_cookie(&state, &done.response.token, done.max_age_secs),
            );
            h.append(header::SET_COOKIE, LOGIN_CSRF.set_cookie(&state, "", 0));
            res
        }
        Err(e) => {
            let (status, error, ask_tenant) = match &e {
                Error::Api {
                    code: Code::RateLimited,
                    retry_after,
                    ..
                } => {
                    let secs = retry_after.unwrap_or(60).to_string();
                    let text = page.text("login.error.rate_limited", &[("seconds", &secs)]);
                    (StatusCode::TOO_MANY_REQUESTS, text, false)
                }
                _ if e.code() == Code::InvalidCredentials => (
                    StatusCode::UNAUTHORIZED,
                    page.text("login.error.invalid", &[]),
                    !form.tenant.is_empty(),
                ),
                _ if e.code() == Code::TenantRequired => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    page.text("login.error.tenant_required", &[]),
                    true,
                ),
                _ => return page.error(e),
            };
            let mut res = page.finish(render(
                &state,
                &page,
                status,
                &fresh,
                view(error, ask_tenant),
            ));
            if let Error::Api {
                retry_after: Some(secs),
                ..
            } = &e
            {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            res
        }
    }
}

fn render(
    state: &AppState,
    page: &Page<'_>,
    status: StatusCode,
    token: &str,
    view: LoginView<'_>,
) -> Result<Response> {
    let mut ctx = Context::new();
    ctx.insert("csrf_token", token);
    ctx.insert("email", view.email);
    ctx.insert("tenant", view.tenant);
    ctx.insert("next", &view.next);
    ctx.insert("error", &view.error);
    ctx.insert("ask_tenant", &view.ask_tenant);
    // SaaS: new companies register themselves (the onboarding wizard).
    ctx.insert(
        "can_register",
        &(state.config().mode == crate::config::Mode::Saas),
    );
    let mut res = page.render_status(status, "login.html", ctx)?;
    res.headers_mut().append(
        header::SET_COOKIE,
        LOGIN_CSRF.set_cookie(state, token, MAX_AGE_SECS),
    );
    Ok(res)
}

/// A form that carries nothing but its CSRF token.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// `POST /logout`: end the session and forget its cookie.
pub(crate) async fn logout(
    State(state): State<AppState>,
    user: UiUser,
    Form(form): Form<CsrfForm>,
) -> Response {
    let page = user.page(&state);
    page.finish(end_session(&state, &user, &form).await)
}

async fn end_session(state: &AppState, user: &UiUser, form: &CsrfForm) -> Result<Response> {
    user.check_csrf(&form.csrf)?;
    let who = &user.principal;
    if let Some(id) = who.session_id() {
        match sessions::revoke(state.db(), &who.tenant_id, &who.user_id, id, state.now_ms()).await {
            Ok(()) => {}
            // Revoked in another tab meanwhile: the goal is reached.
            Err(e) if e.code() == Code::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut()
        .append(header::SET_COOKIE, session_cookie(state, "", 0));
    Ok(res)
}
