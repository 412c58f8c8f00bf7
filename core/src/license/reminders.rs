//! The license reminder e-mail of a self-hosted install.
//!
//! While the license needs attention ([`LicenseState::needs_attention`]:
//! the last days of the trial, grace after expiry, expired, a clock set
//! back), the owners and administrators get one e-mail a day saying what
//! the state means and what to do — like the banner, but for admins who do
//! not log in every day. It stops by itself once a valid license is
//! installed. One row per UTC day in `license_reminders` makes several
//! `kontor serve` processes send it once, not once each.

use std::future::Future;

use time::OffsetDateTime;

use super::licensing::Licensing;
use super::state::LicenseState;
use crate::clock::SharedClock;
use crate::db::Db;
use crate::error::Result;
use crate::ids::TenantId;
use crate::mail::outbox::{self, Queued, Source};
use crate::mail::{Mailer, Outgoing};

/// Most administrators one reminder goes to.
const MAX_RECIPIENTS: i64 = 20;

/// Queue today's reminder if the license needs attention and none went out
/// today. Returns the e-mail log id of the reminder it queued.
pub async fn send_if_due(
    db: &Db,
    licensing: &Licensing,
    mailer: &Mailer,
    public_url: Option<&url::Url>,
    now: i64,
) -> Result<Option<String>> {
    if !licensing.applies() {
        return Ok(None);
    }
    let status = licensing.status(db, now).await?;
    if !status.state.needs_attention(now) {
        return Ok(None);
    }
    let Some(tenant) =
        sqlx::query_scalar::<_, String>("SELECT id FROM tenants ORDER BY created_at, id LIMIT 1")
            .fetch_optional(db.pool())
            .await?
    else {
        return Ok(None);
    };
    let to: Vec<String> = sqlx::query_scalar(
        "SELECT email FROM users WHERE tenant_id = $1 AND role IN ('owner', 'admin') \
         AND status = 'active' ORDER BY created_at, id LIMIT $2",
    )
    .bind(&tenant)
    .bind(MAX_RECIPIENTS)
    .fetch_all(db.pool())
    .await?;
    if to.is_empty() {
        return Ok(None);
    }

    let mut tx = db.begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO license_reminders (day, state, sent_at) VALUES ($1, $2, $3) \
         ON CONFLICT (day) DO NOTHING",
    )
    .bind(utc_day(now))
    .bind(status.state.name())
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        // Another process (or an earlier run of this one) sent today's.
        return Ok(None);
    }
    let mut text = status.explanation();
    text.push_str("\n\n");
    if let Some(url) = public_url.and_then(|u| u.join("/license").ok()) {
        text.push_str(&format!("The license page: {url}\n\n"));
    }
    text.push_str(
        "Kontor sends this reminder once a day while the license needs attention; \
         it stops when a valid license is installed. No data is deleted or hidden in any state.\n",
    );
    let queued = Queued {
        tenant: Some(TenantId::from_trusted(tenant)),
        source: Source::License,
        template: Some(format!("license.{}", status.state.name())),
        message: Outgoing {
            to,
            subject: subject(&status.state),
            text,
            html: None,
            reply_to: None,
            in_reply_to: None,
            message_id: mailer.new_message_id(),
        },
    };
    let id = outbox::queue(&mut tx, &queued, now).await?;
    sqlx::query("UPDATE license_reminders SET email_id = $2 WHERE day = $1")
        .bind(utc_day(now))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(state = status.state.name(), email = %id, "license reminder queued");
    Ok(Some(id))
}

/// Check every [`super::licensing::RECORD_TIME_EVERY`] (and once at start)
/// until `shutdown`.
pub async fn run(
    db: Db,
    licensing: Licensing,
    mailer: Mailer,
    public_url: Option<url::Url>,
    clock: SharedClock,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = send_if_due(
            &db,
            &licensing,
            &mailer,
            public_url.as_ref(),
            clock.now_ms(),
        )
        .await
        {
            tracing::warn!(error = %e, "could not queue the license reminder");
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(super::licensing::RECORD_TIME_EVERY) => {}
        }
    }
}

fn subject(state: &LicenseState) -> String {
    match state {
        LicenseState::Trial { ends_at } => {
            format!("Kontor: the trial ends on {}", date(*ends_at))
        }
        LicenseState::Grace { read_only_from, .. } => format!(
            "Kontor: the license has expired; licensed modules become read-only on {}",
            date(*read_only_from)
        ),
        LicenseState::Expired { .. } => {
            "Kontor: the license has expired; licensed modules are read-only".into()
        }
        LicenseState::ClockMovedBack { .. } => {
            "Kontor: the server clock moved back; licensed modules are read-only".into()
        }
        LicenseState::Active { .. } => "Kontor: license status".into(),
    }
}

fn utc_day(ms: i64) -> String {
    date(ms)
}

/// `YYYY-MM-DD` (UTC) of a Unix ms time.
fn date(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| ms.to_string())
}
