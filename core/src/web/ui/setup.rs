//! `/setup`: the first-run wizard in the browser, for installs started with
//! `kontor serve` on an empty database instead of `kontor-install`.
//!
//! Anybody on the network could reach a fresh server first, so the wizard
//! needs the setup token that `kontor serve` prints to its console (and
//! only there) when it starts without any user; the token is compared in
//! constant time. The wizard closes for good once a user exists: claiming
//! the install works exactly once.

use std::sync::Mutex;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;

use crate::auth::roles::PermissionRegistry;
use crate::auth::users::NewUser;
use crate::auth::Role;
use crate::config::Mode;
use crate::ids::TenantId;
use crate::web::AppState;

static TOKEN: Mutex<Option<String>> = Mutex::new(None);

/// The setup token of this process, made on first use: `kontor serve`
/// prints it when it starts on an empty database.
pub fn issue_token() -> String {
    let mut guard = TOKEN.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .get_or_insert_with(|| {
            use rand::Rng;
            let bytes: [u8; 24] = rand::rngs::OsRng.gen();
            hex::encode(bytes)
        })
        .clone()
}

fn token_matches(given: &str) -> bool {
    let guard = TOKEN.lock().unwrap_or_else(|p| p.into_inner());
    let Some(expected) = guard.as_deref() else {
        return false;
    };
    // Constant time: the comparison does not say how much matched.
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the install still needs its first user.
pub async fn needs_setup(state: &AppState) -> crate::Result<bool> {
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(state.db().pool())
        .await?;
    Ok(users == 0 && state.config().mode == Mode::SelfHosted)
}

/// Query of `GET /setup`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetupQuery {
    token: String,
}

/// The form of `POST /setup`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetupForm {
    token: String,
    company: String,
    email: String,
    name: String,
    password: String,
    language: String,
    timezone: String,
    currency: String,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(form: &SetupForm, error: Option<&str>) -> Html<String> {
    let field = |label: &str, name: &str, kind: &str, value: &str| {
        format!(
            "<label>{label}<br><input type=\"{kind}\" name=\"{name}\" value=\"{}\" required></label><br>\n",
            escape(value)
        )
    };
    let or = |v: &str, d: &str| {
        if v.is_empty() {
            d.to_string()
        } else {
            v.to_string()
        }
    };
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Set up Kontor</title></head><body>\
         <h1>Set up Kontor</h1>{error}<form method=\"post\" action=\"/setup\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\n{}{}{}{}{}{}{}\
         <button type=\"submit\">Create the administrator</button></form></body></html>",
        field("Company name", "company", "text", &form.company),
        field("Administrator e-mail", "email", "email", &form.email),
        field("Administrator name", "name", "text", &or(&form.name, "Administrator")),
        field("Password (at least 10 characters)", "password", "password", ""),
        field("Language (de or en)", "language", "text", &or(&form.language, "de")),
        field("Time zone", "timezone", "text", &or(&form.timezone, "Europe/Zurich")),
        field("Currency", "currency", "text", &or(&form.currency, "CHF")),
        token = escape(&form.token),
    ))
}

fn closed() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Kontor is already set up; log in at /login.",
    )
        .into_response()
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "The setup wizard needs the setup token that `kontor serve` printed to its console: open the link shown there.",
    )
        .into_response()
}

async fn show(State(state): State<AppState>, Query(q): Query<SetupQuery>) -> Response {
    match needs_setup(&state).await {
        Ok(true) => {}
        Ok(false) => return closed(),
        Err(e) => return e.into_response(),
    }
    if !token_matches(&q.token) {
        return forbidden();
    }
    let form = SetupForm {
        token: q.token,
        ..SetupForm::default()
    };
    page(&form, None).into_response()
}

async fn submit(State(state): State<AppState>, Form(form): Form<SetupForm>) -> Response {
    match needs_setup(&state).await {
        Ok(true) => {}
        Ok(false) => return closed(),
        Err(e) => return e.into_response(),
    }
    if !token_matches(&form.token) {
        return forbidden();
    }
    match create(&state, &form).await {
        Ok(()) => Redirect::to("/login").into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(&form, Some(&e.to_string())),
        )
            .into_response(),
    }
}

/// The same steps as the installer's: tenant and owner, base settings,
/// the trial.
async fn create(state: &AppState, form: &SetupForm) -> crate::Result<()> {
    let settings = [
        ("company.name", form.company.trim()),
        ("locale.default", form.language.trim()),
        ("locale.timezone", form.timezone.trim()),
        ("billing.currency", form.currency.trim()),
    ];
    for (key, value) in settings {
        crate::settings::validate(key, &json!(value))?;
    }
    crate::auth::password::check_policy(&form.password)?;
    let now = state.now_ms();
    let company = if form.company.trim().is_empty() {
        "Kontor"
    } else {
        form.company.trim()
    };
    let (tenant, _) = crate::tenants::create(
        state.db(),
        &PermissionRegistry::default(),
        Mode::SelfHosted,
        company,
        NewUser {
            email: form.email.trim().to_string(),
            name: form.name.trim().to_string(),
            role: Role::Owner,
            password: form.password.clone(),
            locale: Some(form.language.trim().to_string()),
            customer_id: None,
        },
        now,
    )
    .await?;
    let tenant = TenantId::from_trusted(tenant.id);
    for (key, value) in settings {
        crate::settings::set(state.db(), &tenant, key, &json!(value), now).await?;
    }
    crate::license::store::ensure(state.db(), now).await?;
    Ok(())
}

/// `/setup` routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/setup", get(show).post(submit))
}
