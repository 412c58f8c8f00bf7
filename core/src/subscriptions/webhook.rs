//! Payment webhook events: verified, then applied exactly once each.
//!
//! The body is a Stripe-style event, of which Kontor reads:
//!
//! ```json
//! {"id": "evt_123", "type": "invoice.paid",
//!  "data": {"object": {"subscription": "<Kontor subscription id>", "metadata": {}}}}
//! ```
//!
//! The subscription is `data.object.metadata.kontor_subscription_id` when
//! set (how a provider carries a foreign id), else `data.object.subscription`
//! (invoice events) or `data.object.id` (subscription events).
//!
//! | event | change |
//! | --- | --- |
//! | `invoice.paid` | paid: active for the next period |
//! | `invoice.payment_failed` | past due (the grace starts) |
//! | `customer.subscription.deleted` | canceled now; modules read-only |
//! | anything else | acknowledged, ignored (`invoice.payment_succeeded` too: Stripe sends it beside `invoice.paid` for the same payment) |
//!
//! The event id is stored in the transaction that applies the event, so a
//! redelivery — the provider retries until it gets a 2xx — is acknowledged
//! and changes nothing. Events Kontor cannot apply (unknown subscription,
//! already canceled) are acknowledged as ignored, so the provider stops
//! retrying; the reason is stored and logged.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::lifecycle::{apply_tx, Actor, Change, Scope, Target};
use super::{Policy, Secret};
use crate::auth::signature;
use crate::db::Db;
use crate::error::{Code, Error, Result};

/// What the webhook answers (200) to an event it accepted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    /// The event's id.
    pub event_id: String,
    /// `applied`, `duplicate` (seen before: not applied again) or `ignored`.
    pub outcome: String,
    /// Why an event was ignored.
    pub reason: Option<String>,
}

/// The parts of an event Kontor reads.
#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: EventData,
}

#[derive(Debug, Default, Deserialize)]
struct EventData {
    #[serde(default)]
    object: Value,
}

impl Event {
    fn change(&self) -> Option<Change> {
        match self.kind.as_str() {
            "invoice.paid" => Some(Change::Paid),
            "invoice.payment_failed" => Some(Change::PaymentFailed),
            "customer.subscription.deleted" => Some(Change::Ended),
            _ => None,
        }
    }

    fn subscription_id(&self) -> Option<&str> {
        let object = &self.data.object;
        let own_key = if self.kind.starts_with("customer.subscription.") {
            "id"
        } else {
            "subscription"
        };
        object["metadata"]["kontor_subscription_id"]
            .as_str()
            .or_else(|| object[own_key].as_str())
            .filter(|s| !s.is_empty())
    }
}

/// Verify and apply one webhook delivery: `header` is the
/// `Kontor-Signature` value, `body` the raw bytes as received.
pub async fn receive(
    db: &Db,
    secret: Option<&Secret>,
    header: Option<&str>,
    body: &[u8],
    policy: Policy,
    now: i64,
) -> Result<Receipt> {
    let secret = secret.ok_or_else(|| {
        Error::new(
            Code::PaymentsNotConfigured,
            "payment webhooks are not configured on this server: set KONTOR_PAYMENT_WEBHOOK_SECRET",
        )
    })?;
    signature::verify(secret.expose().as_bytes(), header, body, now)
        .map_err(|r| r.error("payment webhook secret (KONTOR_PAYMENT_WEBHOOK_SECRET)"))?;
    let event: Event = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            Code::InvalidBody,
            format!("the event is not an object with `id`, `type` and `data`: {e}"),
        )
    })?;
    if event.id.is_empty() || event.id.len() > 255 {
        return Err(Error::invalid(
            "id",
            "the event id must be 1 to 255 characters",
        ));
    }

    let mut tx = db.begin().await?;
    let fresh = sqlx::query(
        "INSERT INTO payment_webhook_events (event_id, event_type, subscription_id, outcome, received_at) \
         VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(event.subscription_id())
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        tx.rollback().await?;
        return Ok(Receipt {
            event_id: event.id,
            outcome: "duplicate".into(),
            reason: None,
        });
    }

    let mut changed_tenant = None;
    let ignored = match (event.change(), event.subscription_id()) {
        (None, _) => Some(format!("event type `{}` is not used", event.kind)),
        (Some(_), None) => Some("the event names no subscription".to_string()),
        (Some(change), Some(id)) => {
            let actor = Actor::Payment {
                event_id: &event.id,
            };
            let target = Target {
                scope: Scope::Any,
                id,
            };
            match apply_tx(&mut tx, db, target, change, actor, policy, now).await {
                Ok(applied) => {
                    changed_tenant = Some((applied.tenant, applied.entitlements_changed));
                    None
                }
                Err(e) if e.code() == Code::NotFound => Some(format!("no subscription `{id}`")),
                Err(e) if e.code() == Code::Conflict => Some(e.to_string()),
                Err(e) => return Err(e),
            }
        }
    };
    let outcome = if ignored.is_some() {
        "ignored"
    } else {
        "applied"
    };
    sqlx::query("UPDATE payment_webhook_events SET outcome = $2 WHERE event_id = $1")
        .bind(&event.id)
        .bind(match &ignored {
            Some(why) => format!("ignored: {why}"),
            None => outcome.to_string(),
        })
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if let Some((tenant, changed)) = &changed_tenant {
        super::sync::after_commit(tenant, *changed);
    }
    if let Some(why) = &ignored {
        tracing::warn!(event_id = %event.id, kind = %event.kind, reason = %why, "payment event ignored");
    }
    Ok(Receipt {
        event_id: event.id,
        outcome: outcome.into(),
        reason: ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, object: Value) -> Event {
        serde_json::from_value(
            serde_json::json!({"id": "evt", "type": kind, "data": {"object": object}}),
        )
        .unwrap()
    }

    #[test]
    fn the_subscription_is_found_where_each_event_kind_carries_it() {
        let invoice = event(
            "invoice.paid",
            serde_json::json!({"id": "in_1", "subscription": "s1"}),
        );
        assert_eq!(invoice.subscription_id(), Some("s1"));
        assert_eq!(invoice.change(), Some(Change::Paid));
        let deleted = event(
            "customer.subscription.deleted",
            serde_json::json!({"id": "s2"}),
        );
        assert_eq!(deleted.subscription_id(), Some("s2"));
        let with_metadata = event(
            "invoice.payment_failed",
            serde_json::json!({"subscription": "sub_stripe", "metadata": {"kontor_subscription_id": "s3"}}),
        );
        assert_eq!(with_metadata.subscription_id(), Some("s3"));
        assert_eq!(event("invoice.paid", Value::Null).subscription_id(), None);
        assert_eq!(
            event("invoice.payment_succeeded", Value::Null).change(),
            None
        );
    }
}
