//! `/api/v1/mail`: the e-mail log of the tenant (what Kontor sent, or tried
//! to send, and why it failed) and a test message through the relay.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{Code, Error, ErrorBody, Result};
use crate::mail::outbox::{self, LoggedEmail};
use crate::web::extract::{ApiJson, ApiQuery};
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mail_log))
        .routes(routes!(send_test_mail))
}

/// Paging of the log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MailLogQuery {
    /// Only messages older than this log id (the last id of the previous page).
    pub before: Option<String>,
    /// At most this many (1 to 200, default 50).
    pub limit: Option<i64>,
}

/// One message of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailLogEntry {
    /// The message.
    #[serde(flatten)]
    pub email: LoggedEmail,
    /// Recipient addresses.
    pub to: Vec<String>,
}

/// The e-mail this tenant sent (core and modules), newest first.
#[utoipa::path(get, path = "/mail/log", tag = "mail", params(MailLogQuery),
    responses((status = 200, body = Vec<MailLogEntry>), (status = 403, body = ErrorBody)))]
async fn mail_log(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<MailLogQuery>,
) -> Result<ApiJson<Vec<MailLogEntry>>> {
    who.require("audit.read")?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Error::invalid("limit", "must be between 1 and 200"));
    }
    let rows = outbox::list(state.db(), &who.tenant_id, q.before.as_deref(), limit).await?;
    Ok(ApiJson(
        rows.into_iter()
            .map(|email| MailLogEntry {
                to: email.to(),
                email,
            })
            .collect(),
    ))
}

/// Where to send a test message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestMail {
    /// The recipient.
    pub to: String,
}

/// The relay took the message.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestMailSent {
    /// Always true.
    pub sent: bool,
    /// `host:port` of the relay.
    pub relay: String,
}

/// Send a test message right away (not queued), so an administrator sees at
/// once whether the SMTP settings work and, if not, what the relay said.
#[utoipa::path(post, path = "/mail/test", tag = "mail", request_body = TestMail,
    responses((status = 200, body = TestMailSent), (status = 403, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn send_test_mail(
    State(state): State<AppState>,
    who: Principal,
    ApiJson(body): ApiJson<TestMail>,
) -> Result<ApiJson<TestMailSent>> {
    Ok(ApiJson(send_test_as(&state, &who, &body.to).await?))
}

/// Send the test message to `to` for `who` (needs `settings.manage`) and
/// audit it: the API and the e-mail log page both go through here.
pub(crate) async fn send_test_as(
    state: &AppState,
    who: &Principal,
    to: &str,
) -> Result<TestMailSent> {
    who.require("settings.manage")?;
    let to = crate::mail::parse_mailbox(to).map_err(|m| Error::invalid("to", m))?;
    let Some(settings) = state.config().smtp.as_ref() else {
        return Err(Error::new(
            Code::MailNotConfigured,
            crate::mail::MailError::NotConfigured.to_string(),
        ));
    };
    crate::mail::send_test(settings, &to)
        .await
        .map_err(|e| Error::new(Code::MailFailed, e.to_string()))?;
    let event = crate::audit::AuditEvent::new("mail.test_sent")
        .by(who)
        .data(serde_json::json!({ "to": to }));
    crate::audit::record(state.db(), &event, state.now_ms()).await?;
    Ok(TestMailSent {
        sent: true,
        relay: format!("{}:{}", settings.host, settings.port),
    })
}
