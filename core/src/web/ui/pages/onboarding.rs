//! The SaaS onboarding wizard: `/register` (company, name, e-mail,
//! password) makes a tenant with its owner and signs the owner in;
//! `/onboarding/plan` chooses a plan, which starts the subscription and
//! unlocks the plan's modules; then the dashboard, whose navigation shows
//! the modules the tenant is entitled to.
//!
//! Registration has no session yet, so its form carries a double-submit
//! token like the login form, and is limited per client address like login
//! attempts. Both pages exist in SaaS mode only.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use tera::Context;

use super::guest_csrf::{GuestCsrf, MAX_AGE_SECS};
use crate::auth::users::NewUser;
use crate::auth::{sessions, Role};
use crate::config::Mode;
use crate::error::{Code, Error, Result};
use crate::ids::{TenantId, UserId};
use crate::subscriptions::{lifecycle, plans, Plan, Policy, Status};
use crate::web::api::auth::session_cookie;
use crate::web::extract::{principal_of, ClientIp};
use crate::web::ui::render::{FormError, Page};
use crate::web::ui::session::{Guest, UiUser};
use crate::web::AppState;

/// The registration form's double-submit token.
const REGISTER_CSRF: GuestCsrf = GuestCsrf {
    cookie: "kontor_register_csrf",
    path: "/register",
};

/// Where the wizard goes after registering.
const PLAN_PAGE: &str = "/onboarding/plan";

/// Fields of the registration form.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct RegisterForm {
    #[serde(rename = "_csrf", skip_serializing)]
    csrf: String,
    organization: String,
    name: String,
    email: String,
    #[serde(skip_serializing)]
    password: String,
}

fn saas_only(state: &AppState) -> Result<()> {
    if state.config().mode == Mode::Saas {
        Ok(())
    } else {
        Err(Error::not_found("page"))
    }
}

/// `GET /register`.
pub(crate) async fn register_form(
    State(state): State<AppState>,
    guest: Guest,
    parts: Parts,
) -> Response {
    let page = guest.page(&state);
    if let Err(e) = saas_only(&state) {
        return page.error(e);
    }
    if let Ok(Some(_)) = principal_of(&parts, &state).await {
        return Redirect::to("/").into_response();
    }
    let token = REGISTER_CSRF.token_for_form(&parts);
    page.finish(render_register(
        &state,
        &page,
        &token,
        &RegisterForm::default(),
        None,
    ))
}

/// `POST /register`.
pub(crate) async fn register(
    State(state): State<AppState>,
    guest: Guest,
    ClientIp(ip): ClientIp,
    parts: Parts,
    Form(form): Form<RegisterForm>,
) -> Response {
    let page = guest.page(&state);
    if let Err(e) = saas_only(&state) {
        return page.error(e);
    }
    let fresh = crate::auth::random_secret();
    let refuse = |status: StatusCode, key: &str, args: &[(&str, &str)]| {
        let error = FormError {
            field: None,
            message: page.text(key, args),
        };
        let res = render_register(&state, &page, &fresh, &form, Some(error));
        page.finish(res.map(|mut r| {
            *r.status_mut() = status;
            r
        }))
    };
    if !REGISTER_CSRF.verify(&parts, &form.csrf) {
        return refuse(StatusCode::FORBIDDEN, "register.error.csrf", &[]);
    }
    let limiter = &state.login_limiter().registrations_per_ip;
    let ip_key = ip.as_deref().unwrap_or("unknown");
    let now = state.now_ms();
    if let Some(wait) = limiter.retry_after(ip_key, now) {
        let secs = wait.to_string();
        let mut res = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "register.error.rate_limited",
            &[("seconds", &secs)],
        );
        if let Ok(v) = header::HeaderValue::from_str(&secs) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return res;
    }
    limiter.record(ip_key, now);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    match create_tenant(&state, &form, ip.as_deref(), user_agent).await {
        Ok(cookie) => {
            let mut res = Redirect::to(PLAN_PAGE).into_response();
            let h = res.headers_mut();
            h.append(header::SET_COOKIE, cookie);
            h.append(header::SET_COOKIE, REGISTER_CSRF.set_cookie(&state, "", 0));
            res
        }
        Err(e) => match FormError::from_error(&page, e) {
            Ok(error) => page.finish(render_register(&state, &page, &fresh, &form, Some(error))),
            Err(e) => page.error(e),
        },
    }
}

/// Make the tenant and its owner, and open the owner's session; returns
/// the session cookie.
async fn create_tenant(
    state: &AppState,
    form: &RegisterForm,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> Result<header::HeaderValue> {
    let organization = form.organization.trim();
    if organization.is_empty() || organization.chars().count() > 200 {
        return Err(Error::invalid(
            "organization",
            "must be 1 to 200 characters",
        ));
    }
    let owner = NewUser {
        email: form.email.trim().to_string(),
        name: form.name.trim().to_string(),
        role: Role::Owner,
        password: form.password.clone(),
        locale: None,
        customer_id: None,
    };
    let now = state.now_ms();
    let (tenant, user) = crate::tenants::create(
        state.db(),
        state.permissions(),
        Mode::Saas,
        organization,
        owner,
        now,
    )
    .await?;
    let idle = state.config().session_idle_hours;
    let session = sessions::create(
        state.db(),
        &TenantId::from_trusted(tenant.id),
        &UserId::from_trusted(user.id),
        ip,
        user_agent,
        now,
        idle,
    )
    .await?;
    Ok(session_cookie(state, &session.token, idle * 3600))
}

fn render_register(
    state: &AppState,
    page: &Page<'_>,
    token: &str,
    form: &RegisterForm,
    error: Option<FormError>,
) -> Result<Response> {
    let mut ctx = Context::new();
    ctx.insert("csrf_token", token);
    ctx.insert("form", form);
    let status = FormError::insert_into(&error, &mut ctx);
    let mut res = page.render_status(status, "onboarding/register.html", ctx)?;
    res.headers_mut().append(
        header::SET_COOKIE,
        REGISTER_CSRF.set_cookie(state, token, MAX_AGE_SECS),
    );
    Ok(res)
}

/// A plan as the plan page shows it.
#[derive(Debug, Serialize)]
struct PlanChoice {
    id: String,
    name: String,
    price: String,
    free: bool,
    yearly: bool,
    trial_days: i64,
    modules: Vec<String>,
}

/// Fields of the plan form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PlanForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    plan_id: String,
}

/// `GET /onboarding/plan`.
pub(crate) async fn plan_form(State(state): State<AppState>, user: UiUser) -> Response {
    let page = user.page(&state);
    page.finish(show_plans(&state, &user, &page, None).await)
}

/// `POST /onboarding/plan`: subscribe, then to the dashboard.
pub(crate) async fn choose_plan(
    State(state): State<AppState>,
    user: UiUser,
    Form(form): Form<PlanForm>,
) -> Response {
    let page = user.page(&state);
    page.finish(subscribe(&state, &user, &page, &form).await)
}

/// Whether the tenant has a subscription that is not canceled.
async fn has_open_subscription(state: &AppState, user: &UiUser) -> Result<bool> {
    let policy = Policy::from_config(state.config());
    Ok(lifecycle::list(
        state.db(),
        &user.principal.tenant_id,
        policy,
        state.now_ms(),
    )
    .await?
    .iter()
    .any(|s| s.status != Status::Canceled))
}

async fn show_plans(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    error: Option<FormError>,
) -> Result<Response> {
    saas_only(state)?;
    user.principal.require("subscriptions.manage")?;
    if has_open_subscription(state, user).await? {
        return Ok(Redirect::to("/").into_response());
    }
    let choices: Vec<PlanChoice> = plans::list(state.db(), false)
        .await?
        .into_iter()
        .map(|p| choice(state, p))
        .collect();
    let mut ctx = Context::new();
    ctx.insert("plans", &choices);
    let status = FormError::insert_into(&error, &mut ctx);
    page.render_status(status, "onboarding/plan.html", ctx)
}

/// A plan for people: its price and the names of its modules (the
/// installed module's name, else the entitlement key).
fn choice(state: &AppState, plan: Plan) -> PlanChoice {
    let installed = state.modules().all();
    let modules = plan
        .modules
        .iter()
        .map(|key| {
            installed
                .iter()
                .find(|m| m.manifest.entitlement_key() == key)
                .map_or_else(|| key.clone(), |m| m.manifest.name.clone())
        })
        .collect();
    PlanChoice {
        price: plan.price_text(),
        free: plan.is_free(),
        yearly: plan.interval == plans::Interval::Year,
        trial_days: plan.trial_days,
        modules,
        id: plan.id,
        name: plan.name,
    }
}

async fn subscribe(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    form: &PlanForm,
) -> Result<Response> {
    user.check_csrf(&form.csrf)?;
    saas_only(state)?;
    let who = &user.principal;
    who.require("subscriptions.manage")?;
    let started = lifecycle::start(
        state.db(),
        &who.tenant_id,
        &form.plan_id,
        lifecycle::Actor::User(who),
        Policy::from_config(state.config()),
        state.now_ms(),
    )
    .await;
    match started {
        Ok(_) => Ok(Redirect::to("/").into_response()),
        // Chosen in another tab meanwhile: the goal is reached.
        Err(e) if e.code() == Code::Conflict => Ok(Redirect::to("/").into_response()),
        Err(e) if e.code() == Code::ValidationFailed => {
            let error = FormError {
                field: Some("plan_id".into()),
                message: page.text("onboarding.error.plan", &[]),
            };
            show_plans(state, user, page, Some(error)).await
        }
        Err(e) => Err(e),
    }
}
