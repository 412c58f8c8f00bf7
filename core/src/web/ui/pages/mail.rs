//! `/mail`: the e-mail log (what Kontor sent for this tenant, core and
//! modules, and why a message failed) and a button that sends a test
//! message through the relay, as WHMCS's and FOSSBilling's e-mail logs do.

use axum::extract::State;
use axum::response::Response;
use axum::Form;
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::error::Result;
use crate::mail::outbox::{self, LoggedEmail};
use crate::web::ui::render::{FormError, Page};
use crate::web::ui::session::UiUser;
use crate::web::AppState;

/// Messages the page shows (the newest).
const SHOWN: i64 = 100;

/// Fields of the test form.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct TestForm {
    #[serde(rename = "_csrf", skip_serializing)]
    csrf: String,
    to: String,
}

/// A log row as the template sees it.
#[derive(Debug, Serialize)]
struct Row {
    #[serde(flatten)]
    email: LoggedEmail,
    to: Vec<String>,
}

/// `GET /mail`.
pub(crate) async fn index(State(state): State<AppState>, user: UiUser) -> Response {
    let page = user.page(&state);
    page.finish(render(&state, &user, &page, &TestForm::default(), None, None).await)
}

/// `POST /mail/test`: send a test message now and show what happened.
pub(crate) async fn send_test(
    State(state): State<AppState>,
    user: UiUser,
    Form(form): Form<TestForm>,
) -> Response {
    let page = user.page(&state);
    page.finish(test(&state, &user, &page, form).await)
}

async fn test(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    form: TestForm,
) -> Result<Response> {
    user.check_csrf(&form.csrf)?;
    let outcome = crate::web::api::mail::send_test_as(state, &user.principal, &form.to).await;
    match outcome {
        Ok(_) => render(state, user, page, &form, None, Some(form.to.trim())).await,
        Err(e) => {
            let error = FormError::from_error(page, e)?;
            render(state, user, page, &form, Some(error), None).await
        }
    }
}

async fn render(
    state: &AppState,
    user: &UiUser,
    page: &Page<'_>,
    form: &TestForm,
    error: Option<FormError>,
    sent_to: Option<&str>,
) -> Result<Response> {
    let who = &user.principal;
    who.require("audit.read")?;
    let rows: Vec<Row> = outbox::list(state.db(), &who.tenant_id, None, SHOWN)
        .await?
        .into_iter()
        .map(|email| Row {
            to: email.to(),
            email,
        })
        .collect();
    let mut ctx = Context::new();
    ctx.insert("emails", &rows);
    ctx.insert("can_test", &who.can("settings.manage"));
    ctx.insert("configured", &state.mailer().is_configured());
    ctx.insert("form", form);
    ctx.insert("sent_to", &sent_to);
    ctx.insert("tz", &page.time_zone().await);
    let status = FormError::insert_into(&error, &mut ctx);
    page.render_status(status, "mail/log.html", ctx)
}
