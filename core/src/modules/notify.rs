//! The `notify` capability: a module sends e-mail from the templates its
//! manifest ships, through the core's outbox ([`crate::mail::outbox`]), so
//! module mail is queued, retried and logged like the core's own.

use kontor_runtime::host::{Email, NotifyError};

use super::manifest::Manifest;
use crate::db::Db;
use crate::error::Error;
use crate::ids::TenantId;
use crate::mail::outbox::{self, Queued, Source};
use crate::mail::{Mailer, Outgoing};

/// Render `email` with the module's template and queue it for `tenant`;
/// returns its Message-ID. The caller has checked the capability.
pub async fn send(
    db: &Db,
    mailer: &Mailer,
    tenant: &TenantId,
    manifest: &Manifest,
    email: Email,
    now: i64,
) -> Result<String, NotifyError> {
    let id = &manifest.id;
    let template = manifest
        .templates
        .iter()
        .find(|t| t.name == email.template)
        .ok_or_else(|| {
            NotifyError::Invalid(format!(
                "module `{id}` has no e-mail template `{}`: declare it under [[templates]] in module.toml",
                email.template
            ))
        })?;
    let data: serde_json::Value = serde_json::from_str(&email.data)
        .map_err(|e| NotifyError::Invalid(format!("the template data is not JSON: {e}")))?;
    // Rendered off the guest's fiber: module calls run on a small stack
    // of their own, and the template parser checks for 64 KiB of headroom.
    let template = template.clone();
    let rendered = tokio::task::spawn_blocking(move || template.render(&data))
        .await
        .map_err(|e| NotifyError::Internal(format!("rendering failed: {e}")))?
        .map_err(NotifyError::Invalid)?;
    let message_id = mailer.new_message_id();
    let queued = Queued {
        tenant: Some(tenant.clone()),
        source: Source::Module(id.clone()),
        template: Some(email.template),
        message: Outgoing {
            to: email.to,
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            reply_to: email.reply_to,
            in_reply_to: email.in_reply_to,
            message_id: message_id.clone(),
        },
    };
    match outbox::queue_now(db, &queued, now).await {
        Ok(_) => Ok(message_id),
        Err(e @ Error::Api { .. }) => Err(NotifyError::Invalid(e.to_string())),
        Err(e) => {
            tracing::error!(module = %id, error = %e, "could not queue a module's e-mail");
            Err(NotifyError::Internal(
                "the host could not queue the e-mail; try again".into(),
            ))
        }
    }
}
