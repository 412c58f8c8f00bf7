//! The outbox: the e-mail log and the job that delivers what is in it.
//!
//! A message is written to `email_log` and a [`SEND`] job is queued in the
//! same transaction, so a change and the mail it causes commit together
//! (a ticket reply and its notification). The job sends through the
//! [`Mailer`]; a failure is retried with the job queue's backoff, and the
//! log row says what happened on every attempt.

use serde::Serialize;
use serde_json::json;

use super::{Mailer, Outgoing};
use crate::clock::SharedClock;
use crate::db::{Db, Tx};
use crate::error::{Error, Result};
use crate::ids::{new_id, TenantId};
use crate::jobs::worker::Handlers;
use crate::jobs::{Job, NewJob};

/// Job kind: deliver one logged message.
pub const SEND: &str = "core.mail.send";

/// Delivery attempts per message (the job queue's backoff spaces them out
/// over about half an hour).
pub const MAX_ATTEMPTS: i64 = 6;

/// Most recipients of one message.
pub const MAX_RECIPIENTS: usize = 50;

/// Who asks for a message to be sent: shown in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The core (a test message, account mail).
    Core,
    /// The license reminders of a self-hosted install.
    License,
    /// A module, through the `notify` capability.
    Module(String),
}

impl Source {
    fn as_stored(&self) -> String {
        match self {
            Source::Core => "core".into(),
            Source::License => "core.license".into(),
            Source::Module(id) => format!("module:{id}"),
        }
    }
}

/// A message to queue.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The tenant it is sent for; none for install-wide mail.
    pub tenant: Option<TenantId>,
    /// Who asks.
    pub source: Source,
    /// The template or kind it was made from.
    pub template: Option<String>,
    /// The message (its `message_id` is kept and logged).
    pub message: Outgoing,
}

/// Queue `queued` inside `tx`: a log row and its delivery job. Returns the
/// log id. Addresses are checked here, so a bad one is refused at once
/// instead of failing later in the worker.
pub async fn queue(tx: &mut Tx, queued: &Queued, now: i64) -> Result<String> {
    let message = &queued.message;
    if message.to.is_empty() {
        return Err(Error::invalid("to", "at least one recipient"));
    }
    if message.to.len() > MAX_RECIPIENTS {
        return Err(Error::invalid(
            "to",
            format!("at most {MAX_RECIPIENTS} recipients"),
        ));
    }
    let mut to = Vec::with_capacity(message.to.len());
    for (i, address) in message.to.iter().enumerate() {
        to.push(super::parse_mailbox(address).map_err(|m| Error::invalid(&format!("to[{i}]"), m))?);
    }
    let reply_to = match &message.reply_to {
        Some(r) => Some(super::parse_mailbox(r).map_err(|m| Error::invalid("reply_to", m))?),
        None => None,
    };
    if message.subject.contains(['\r', '\n']) {
        return Err(Error::invalid("subject", "one line only"));
    }
    let id = new_id();
    sqlx::query(
        "INSERT INTO email_log (id, tenant_id, source, template, recipients, subject, text_body, html_body, \
         reply_to, in_reply_to, message_id, status, attempts, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'queued', 0, $12)",
    )
    .bind(&id)
    .bind(queued.tenant.as_ref().map(TenantId::as_str))
    .bind(queued.source.as_stored())
    .bind(&queued.template)
    .bind(serde_json::to_string(&to).unwrap_or_else(|_| "[]".into()))
    .bind(&message.subject)
    .bind(&message.text)
    .bind(&message.html)
    .bind(&reply_to)
    .bind(&message.in_reply_to)
    .bind(&message.message_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let mut job = NewJob::new(SEND, json!({ "email_id": id }), now);
    job.tenant_id = queued.tenant.clone();
    job.max_attempts = MAX_ATTEMPTS;
    crate::jobs::enqueue_tx(tx, &job, now).await?;
    Ok(id)
}

/// Queue `queued` in a transaction of its own.
pub async fn queue_now(db: &Db, queued: &Queued, now: i64) -> Result<String> {
    let mut tx = db.begin().await?;
    let id = queue(&mut tx, queued, now).await?;
    tx.commit().await?;
    Ok(id)
}

#[derive(sqlx::FromRow)]
struct Row {
    recipients: String,
    subject: String,
    text_body: String,
    html_body: Option<String>,
    reply_to: Option<String>,
    in_reply_to: Option<String>,
    message_id: String,
    status: String,
}

/// Deliver the logged message `email_id` (the [`SEND`] job). A message
/// already sent is not sent again (a job retried after its worker died).
pub async fn deliver(
    db: &Db,
    mailer: &Mailer,
    job: &Job,
    now: i64,
) -> std::result::Result<(), String> {
    let email_id = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|p| p["email_id"].as_str().map(str::to_string))
        .ok_or("mail job without an email_id")?;
    let row: Option<Row> = sqlx::query_as(
        "SELECT recipients, subject, text_body, html_body, reply_to, in_reply_to, message_id, status \
         FROM email_log WHERE id = $1",
    )
    .bind(&email_id)
    .fetch_optional(db.pool())
    .await
    .map_err(|e| e.to_string())?;
    let Some(row) = row else {
        // Nothing to send: the log row went with its tenant.
        return Ok(());
    };
    if row.status == "sent" {
        return Ok(());
    }
    let message = Outgoing {
        to: serde_json::from_str(&row.recipients).unwrap_or_default(),
        subject: row.subject,
        text: row.text_body,
        html: row.html_body,
        reply_to: row.reply_to,
        in_reply_to: row.in_reply_to,
        message_id: row.message_id,
    };
    let result = mailer.send(&message).await;
    let (status, error, sent_at) = match &result {
        Ok(()) => ("sent", None, Some(now)),
        Err(e) if job.attempts >= job.max_attempts => ("failed", Some(e.to_string()), None),
        Err(e) => ("retrying", Some(e.to_string()), None),
    };
    sqlx::query(
        "UPDATE email_log SET status = $2, attempts = $3, last_error = $4, sent_at = $5 WHERE id = $1",
    )
    .bind(&email_id)
    .bind(status)
    .bind(job.attempts)
    .bind(&error)
    .bind(sent_at)
    .execute(db.pool())
    .await
    .map_err(|e| e.to_string())?;
    match result {
        Ok(()) => {
            tracing::info!(email = %email_id, "e-mail sent");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Register the [`SEND`] job's handler.
pub fn register(handlers: &mut Handlers, db: Db, clock: SharedClock, mailer: Mailer) {
    handlers.register(SEND, move |job| {
        let db = db.clone();
        let clock = clock.clone();
        let mailer = mailer.clone();
        async move { deliver(&db, &mailer, &job, clock.now_ms()).await }
    });
}

/// A message as the e-mail log shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct LoggedEmail {
    /// Id.
    pub id: String,
    /// `core`, `core.license` or `module:{id}`.
    pub source: String,
    /// The template or kind it was made from.
    pub template: Option<String>,
    /// Recipients, as a JSON array.
    #[serde(skip)]
    pub recipients: String,
    /// Subject line.
    pub subject: String,
    /// Plain text body, as sent.
    pub text_body: String,
    /// `queued`, `retrying`, `sent` or `failed`.
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The `Message-ID` header.
    pub message_id: String,
    /// When it was queued (Unix ms).
    pub created_at: i64,
    /// When the relay took it (Unix ms).
    pub sent_at: Option<i64>,
}

impl LoggedEmail {
    /// The recipient addresses.
    pub fn to(&self) -> Vec<String> {
        serde_json::from_str(&self.recipients).unwrap_or_default()
    }
}

/// The newest messages of `tenant`, at most `limit`, optionally only those
/// older than the log id `before` (paging).
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<LoggedEmail>> {
    let rows = sqlx::query_as::<_, LoggedEmail>(
        "SELECT id, source, template, recipients, subject, text_body, status, attempts, last_error, \
         message_id, created_at, sent_at FROM email_log \
         WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant.as_str())
    .bind(before)
    .bind(limit.clamp(1, 200))
    .fetch_all(db.pool())
    .await?;
    Ok(rows)
}
