//! `/license`: the installation's license for admins (`license.manage`,
//! self-hosted) — its state and what it means, its fields, and a form to
//! install a new one — and the banner the layout shows them while it needs
//! attention. Nothing about licensing ever locks an admin out of here.

use axum::extract::{Multipart, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::error::{Code, Error, Result};
use crate::license::state::{ExpiryCause, LicenseState};
use crate::license::LicenseStatus;
use crate::web::api::license::{self as api, LicenseInfo};
use crate::web::ui::i18n::Catalog;
use crate::web::ui::render::{FormError, Page};
use crate::web::ui::session::UiUser;
use crate::web::AppState;

/// Query of `GET /license`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LicenseParams {
    /// Set after a license was installed, to confirm it.
    installed: Option<String>,
}

/// Fields of the install form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LicenseForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    /// The armored license text.
    license: String,
}

/// The layout's warning for admins.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LicenseNotice {
    /// The state in words, in the user's language.
    pub text: String,
}

/// The warning `who` sees in the layout: for those who may manage the
/// license of a self-hosted install, while it needs attention (grace,
/// expired, clock moved back, the trial's last week, an installed license
/// that cannot be used).
pub(crate) async fn notice(
    state: &AppState,
    who: &Principal,
    catalog: &Catalog,
) -> Option<LicenseNotice> {
    if !state.licensing().applies() || !who.can(api::PERMISSION) {
        return None;
    }
    let now = state.now_ms();
    let status = state.licensing().status(state.db(), now).await.ok()?;
    let problem = status.problem.is_some();
    (status.state.needs_attention(now) || problem).then(|| LicenseNotice {
        text: state_text(&status, catalog),
    })
}

/// What the state means, in the user's language (the API's explanation is
/// English, for logs and support).
fn state_text(status: &LicenseStatus, catalog: &Catalog) -> String {
    let day = |ms: i64| rfc3339(ms).chars().take(10).collect::<String>();
    let text = match status.state {
        LicenseState::Trial { ends_at } => {
            catalog.text("license.explain.trial", &[("date", &day(ends_at))])
        }
        LicenseState::Active { expires_at: None } => catalog.text("license.explain.perpetual", &[]),
        LicenseState::Active {
            expires_at: Some(at),
        } => catalog.text("license.explain.active", &[("date", &day(at))]),
        LicenseState::Grace {
            expired_at,
            read_only_from,
        } => catalog.text(
            "license.explain.grace",
            &[("date", &day(expired_at)), ("until", &day(read_only_from))],
        ),
        LicenseState::Expired {
            cause: ExpiryCause::License,
            ..
        } => catalog.text("license.explain.expired", &[]),
        LicenseState::Expired {
            cause: ExpiryCause::Trial,
            ..
        } => catalog.text("license.explain.trial_ended", &[]),
        LicenseState::ClockMovedBack { .. } => {
            catalog.text("license.explain.clock_moved_back", &[])
        }
    };
    match &status.problem {
        Some(p) => format!(
            "{} {text}",
            catalog.text("license.explain.problem", &[("code", p.code().as_str())])
        ),
        None => text,
    }
}

/// `GET /license`.
pub(crate) async fn show(
    State(state): State<AppState>,
    user: UiUser,
    Query(params): Query<LicenseParams>,
) -> Response {
    let page = user.page(&state);
    let installed = params.installed.is_some();
    page.finish(render(&state, &user, &page, "", None, installed).await)
}

async fn render(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    text: &str,
    error: Option<FormError>,
    installed: bool,
) -> Result<Response> {
    api::authorize(state, &user.principal)?;
    let now = state.now_ms();
    let status = state.licensing().status(state.db(), now).await?;
    let info = LicenseInfo::new(&status, state.licensing().trusts_test_key(), now);
    let mut ctx = Context::new();
    ctx.insert("info", &info);
    ctx.insert("explanation", &state_text(&status, page.catalog()));
    ctx.insert("text", text);
    ctx.insert("installed", &installed);
    let status = FormError::insert_into(&error, &mut ctx);
    page.render_status(status, "license/show.html", ctx)
}

/// `POST /license`: install the pasted license, then back to the page.
pub(crate) async fn install(
    State(state): State<AppState>,
    user: UiUser,
    Form(form): Form<LicenseForm>,
) -> Response {
    let page = user.page(&state);
    page.finish(install_license(&state, &user, &page, form).await)
}

async fn install_license(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    form: LicenseForm,
) -> Result<Response> {
    install_text(state, user, page, &form.csrf, form.license).await
}

/// Largest license file the upload takes (a license is a few KiB).
const MAX_FILE_BYTES: usize = 64 * 1024;

/// `POST /license/upload`: install an uploaded license file (multipart,
/// fields `_csrf` and `file`), then back to the page.
pub(crate) async fn upload(
    State(state): State<AppState>,
    user: UiUser,
    multipart: Multipart,
) -> Response {
    let page = user.page(&state);
    page.finish(upload_license(&state, &user, &page, multipart).await)
}

async fn upload_license(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    mut multipart: Multipart,
) -> Result<Response> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        Error::new(Code::BadRequest, format!("the upload cannot be read: {e}"))
    };
    let mut csrf = String::new();
    let mut text = String::new();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("_csrf") => csrf = field.text().await.map_err(unreadable)?,
            Some("file") => {
                let bytes = field.bytes().await.map_err(unreadable)?;
                if bytes.len() > MAX_FILE_BYTES {
                    return Err(Error::new(
                        Code::PayloadTooLarge,
                        format!("a license file is at most {MAX_FILE_BYTES} bytes"),
                    ));
                }
                // Not text: the verifier explains that it is no license.
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            _ => {}
        }
    }
    install_text(state, user, page, &csrf, text).await
}

/// Check the form's CSRF token, install `text`, and answer as the page does.
async fn install_text(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    csrf: &str,
    text: String,
) -> Result<Response> {
    user.check_csrf(csrf)?;
    api::authorize(state, &user.principal)?;
    match api::install(state, &user.principal, text.as_bytes()).await {
        Ok(()) => Ok(Redirect::to("/license?installed=1").into_response()),
        Err(e @ Error::Api { .. }) => {
            // The refusal's sentence says what is wrong and what to do.
            let error = FormError {
                field: Some("license".into()),
                message: page.text(
                    "license.refused",
                    &[("reason", &e.to_string()), ("code", e.code().as_str())],
                ),
            };
            render(state, user, page, &text, Some(error), false).await
        }
        Err(e) => Err(e),
    }
}
