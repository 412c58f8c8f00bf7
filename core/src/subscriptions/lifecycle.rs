//! A tenant's subscription and how it changes.
//!
//! Every change runs in one transaction that locks the tenant's
//! subscriptions (in id order, so two changes never deadlock), applies
//! what time alone changed first ([`Timeline::at`]), writes the new state,
//! the audit entry, the `subscription.changed` event and the tenant's
//! module entitlements ([`super::sync`]) — all or nothing.
//!
//! | change | from | to |
//! | --- | --- | --- |
//! | start | (none open) | trialing (trial days), active (free plan) or past_due (paid, no trial: payment due now) |
//! | paid (webhook `invoice.paid`) | trialing | active, a period from now |
//! | paid | active, past_due | active, the next period from the current period's end (from now if that period is over too) |
//! | activate (operator) | like paid, but an active subscription stays as it is | |
//! | payment failed | trialing, active, past_due | past_due (the grace runs from the first failure) |
//! | cancel (owner) | any open | canceled; modules work to the period end |
//! | ended (webhook `customer.subscription.deleted`) | any | canceled now; modules read-only |

use serde::Serialize;
use serde_json::json;

pub use super::access::Status;
use super::access::{Access, Policy, Timeline};
use super::plans::{Plan, PLAN_COLUMNS};
use crate::audit::{self, AuditEvent};
use crate::auth::Principal;
use crate::clock::rfc3339;
use crate::db::{Db, Tx};
use crate::error::{Code, Error, Result};
use crate::ids::{new_id, TenantId};

/// A subscription as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Subscription {
    /// Id.
    pub id: String,
    /// The plan subscribed to.
    pub plan: Plan,
    /// trialing, active, past_due or canceled.
    pub status: Status,
    /// RFC 3339: start of the trial or paid period.
    pub current_period_start: String,
    /// RFC 3339: end of the trial or paid period.
    pub current_period_end: String,
    /// RFC 3339: when the payment became overdue (past_due only).
    pub past_due_since: Option<String>,
    /// RFC 3339: when it was canceled.
    pub canceled_at: Option<String>,
    /// What the plan's modules get now: `active` or `read_only`.
    pub access: Access,
    /// RFC 3339: when the modules go read-only unless a payment comes first;
    /// null while nothing is due.
    pub read_only_from: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A stored subscription.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct SubRow {
    pub id: String,
    pub tenant_id: String,
    pub plan_id: String,
    pub status: String,
    pub current_period_start: i64,
    pub current_period_end: i64,
    pub past_due_since: Option<i64>,
    pub canceled_at: Option<i64>,
    pub created_at: i64,
}

const SUB_COLUMNS: &str = "id, tenant_id, plan_id, status, current_period_start, \
     current_period_end, past_due_since, canceled_at, created_at";

impl SubRow {
    pub(crate) fn timeline(&self) -> Result<Timeline> {
        Ok(Timeline {
            status: Status::parse(&self.status).ok_or_else(|| {
                Error::internal(format!(
                    "subscription {} has state {}",
                    self.id, self.status
                ))
            })?,
            period_start: self.current_period_start,
            period_end: self.current_period_end,
            past_due_since: self.past_due_since,
        })
    }

    /// The timeline at `now`, with what time alone changed applied.
    pub(crate) fn timeline_at(&self, plan: &Plan, now: i64) -> Result<Timeline> {
        Ok(self.timeline()?.at(plan.is_free(), plan.interval, now))
    }

    fn view(&self, plan: &Plan, policy: Policy, now: i64) -> Result<Subscription> {
        let t = self.timeline_at(plan, now)?;
        Ok(Subscription {
            id: self.id.clone(),
            plan: plan.clone(),
            status: t.status,
            current_period_start: rfc3339(t.period_start),
            current_period_end: rfc3339(t.period_end),
            past_due_since: t.past_due_since.map(rfc3339),
            canceled_at: self.canceled_at.map(rfc3339),
            access: t.access(plan.is_free(), policy, now),
            read_only_from: t.read_only_from(plan.is_free(), policy).map(rfc3339),
            created_at: rfc3339(self.created_at),
        })
    }
}

/// The tenant's subscriptions with their plans, newest first, locked for
/// the rest of `tx` on PostgreSQL.
pub(crate) async fn load_locked(
    tx: &mut Tx,
    db: &Db,
    tenant: &TenantId,
) -> Result<Vec<(SubRow, Plan)>> {
    // Lock in id order (the same in every transaction), then sort for people.
    let mut rows = sqlx::query_as::<_, SubRow>(&format!(
        "SELECT {SUB_COLUMNS} FROM subscriptions WHERE tenant_id = $1 ORDER BY id{}",
        db.for_update()
    ))
    .bind(tenant.as_str())
    .fetch_all(&mut **tx)
    .await?;
    rows.reverse();
    let plans: Vec<Plan> = sqlx::query_as::<_, super::plans::PlanRow>(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE id IN \
         (SELECT plan_id FROM subscriptions WHERE tenant_id = $1)"
    ))
    .bind(tenant.as_str())
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .map(Plan::try_from)
    .collect::<Result<_>>()?;
    rows.into_iter()
        .map(|row| {
            let plan = plans
                .iter()
                .find(|p| p.id == row.plan_id)
                .cloned()
                .ok_or_else(|| Error::internal(format!("plan {} vanished", row.plan_id)))?;
            Ok((row, plan))
        })
        .collect()
}

/// The tenant's subscriptions, newest first.
pub async fn list(
    db: &Db,
    tenant: &TenantId,
    policy: Policy,
    now: i64,
) -> Result<Vec<Subscription>> {
    let rows = sqlx::query_as::<_, SubRow>(&format!(
        "SELECT {SUB_COLUMNS} FROM subscriptions WHERE tenant_id = $1 ORDER BY id DESC"
    ))
    .bind(tenant.as_str())
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let plan = super::plans::get(db, &row.plan_id)
            .await?
            .ok_or_else(|| Error::internal(format!("plan {} vanished", row.plan_id)))?;
        out.push(row.view(&plan, policy, now)?);
    }
    Ok(out)
}

/// Who changes a subscription, for the audit trail.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A user of the tenant (its owner).
    User(&'a Principal),
    /// The platform operator (operator token or command line).
    Operator,
    /// Time: a trial or period ran out without a payment.
    Schedule,
    /// The payment provider, by a webhook event.
    Payment {
        /// The provider's event id.
        event_id: &'a str,
    },
}

impl Actor<'_> {
    fn audit(&self, action: &str, tenant: &TenantId) -> AuditEvent {
        let event = AuditEvent::new(action).tenant(tenant);
        match self {
            Actor::User(who) => event.by(who).data(json!({ "via": "owner" })),
            Actor::Operator => event.data(json!({ "via": "operator" })),
            Actor::Schedule => event.data(json!({ "via": "schedule" })),
            Actor::Payment { event_id } => {
                event.data(json!({ "via": "payment_webhook", "event_id": event_id }))
            }
        }
    }
}

/// Start a subscription of the tenant to an offered plan.
pub async fn start(
    db: &Db,
    tenant: &TenantId,
    plan_id: &str,
    actor: Actor<'_>,
    policy: Policy,
    now: i64,
) -> Result<Subscription> {
    let plan = super::plans::get(db, plan_id)
        .await?
        .filter(|p| p.status == "active")
        .ok_or_else(|| Error::invalid("plan_id", "no plan with this id is offered"))?;
    let mut tx = db.begin().await?;
    if let Some((open, _)) = load_locked(&mut tx, db, tenant)
        .await?
        .into_iter()
        .find(|(s, _)| s.status != Status::Canceled.as_str())
    {
        return Err(open_exists(&open.id));
    }
    let (status, end, past_due_since) = if plan.is_free() {
        (Status::Active, plan.interval.add_to(now), None)
    } else if plan.trial_days > 0 {
        (Status::Trialing, now + plan.trial_days * 86_400_000, None)
    } else {
        // No trial: the first payment is due now, with the usual grace.
        (Status::PastDue, now, Some(now))
    };
    let row = SubRow {
        id: new_id(),
        tenant_id: tenant.to_string(),
        plan_id: plan.id.clone(),
        status: status.as_str().to_string(),
        current_period_start: now,
        current_period_end: end,
        past_due_since,
        canceled_at: None,
        created_at: now,
    };
    sqlx::query(&format!(
        "INSERT INTO subscriptions ({SUB_COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
    ))
    .bind(&row.id)
    .bind(&row.tenant_id)
    .bind(&row.plan_id)
    .bind(&row.status)
    .bind(row.current_period_start)
    .bind(row.current_period_end)
    .bind(row.past_due_since)
    .bind(row.canceled_at)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        Error::from(e).on_unique(
            "subscriptions_one_open_per_tenant",
            Code::Conflict,
            OPEN_EXISTS,
        )
    })?;
    record(&mut tx, &actor, "subscription.started", &row, &plan, now).await?;
    let changed = super::sync::tenant_tx(&mut tx, db, tenant, policy, now).await?;
    tx.commit().await?;
    super::sync::after_commit(tenant, changed);
    row.view(&plan, policy, now)
}

const OPEN_EXISTS: &str =
    "this tenant already has an open subscription; cancel it before starting another";

fn open_exists(id: &str) -> Error {
    Error::new(Code::Conflict, OPEN_EXISTS).with_details(json!({ "subscription_id": id }))
}

/// A change to an existing subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A payment arrived (webhook `invoice.paid`): it pays one period.
    Paid,
    /// The operator activates it (a payment outside the provider); an
    /// active subscription stays as it is, so repeating this is harmless.
    Activate,
    /// A payment failed (webhook `invoice.payment_failed`).
    PaymentFailed,
    /// The owner cancels: modules work to the period end.
    Cancel,
    /// The payment provider ended it (webhook `customer.subscription.deleted`).
    Ended,
}

impl Change {
    fn action(self) -> &'static str {
        match self {
            Change::Paid => "subscription.paid",
            Change::Activate => "subscription.activated",
            Change::PaymentFailed => "subscription.payment_failed",
            Change::Cancel => "subscription.canceled",
            Change::Ended => "subscription.ended",
        }
    }
}

/// What a change does to a timeline at `now`: the new timeline and
/// `canceled_at`, or `None` when there is nothing to do.
fn next(
    t: Timeline,
    canceled_at: Option<i64>,
    plan: &Plan,
    change: Change,
    now: i64,
) -> Result<Option<(Timeline, Option<i64>)>> {
    use Status::*;
    let paid_from = |start: i64| Timeline {
        status: Active,
        period_start: start,
        period_end: plan.interval.add_to(start),
        past_due_since: None,
    };
    let canceled = || {
        Error::new(
            Code::Conflict,
            "this subscription is canceled and stays so; start a new one",
        )
    };
    Ok(match (change, t.status) {
        (Change::Paid | Change::Activate, Canceled) => return Err(canceled()),
        (Change::Activate, Active) => None,
        // The trial ends now; the first paid period starts.
        (Change::Paid | Change::Activate, Trialing) => Some((paid_from(now), None)),
        // The payment is for the period after the current one (paid early,
        // or paid late for the period that started when it fell due) — unless
        // that period is over too: then it pays one from now.
        (Change::Paid | Change::Activate, Active | PastDue) => {
            let next_period = paid_from(t.period_end);
            if next_period.period_end > now {
                Some((next_period, None))
            } else {
                Some((paid_from(now), None))
            }
        }
        (Change::PaymentFailed, Canceled) => None,
        (Change::PaymentFailed, _) => Some((
            Timeline {
                status: PastDue,
                past_due_since: Some(t.past_due_since.unwrap_or(now)),
                ..t
            },
            None,
        )),
        (Change::Cancel, Canceled) => None,
        (Change::Cancel, _) => Some((
            Timeline {
                status: Canceled,
                past_due_since: None,
                ..t
            },
            Some(now),
        )),
        (Change::Ended, Canceled) if t.period_end <= now => None,
        (Change::Ended, _) => Some((
            Timeline {
                status: Canceled,
                past_due_since: None,
                period_end: t.period_end.min(now),
                ..t
            },
            Some(canceled_at.unwrap_or(now)),
        )),
    })
}

/// Whose subscriptions a caller may change.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Only this tenant's (a user of the tenant): another tenant's id is not found.
    Tenant(&'a TenantId),
    /// Any tenant's (the operator, the payment provider).
    Any,
}

/// The subscription a change is for: its id, looked up within a scope.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Whose subscriptions the id is looked up among.
    pub scope: Scope<'a>,
    /// Subscription id.
    pub id: &'a str,
}

/// The outcome of [`apply_tx`].
#[derive(Debug)]
pub(crate) struct Applied {
    /// The subscription afterwards.
    pub subscription: Subscription,
    /// Its tenant.
    pub tenant: TenantId,
    /// Whether entitlements changed (the cache must be cleared after commit).
    pub entitlements_changed: bool,
}

/// Apply `change` to subscription `id` inside `tx`.
pub(crate) async fn apply_tx(
    tx: &mut Tx,
    db: &Db,
    Target { scope, id }: Target<'_>,
    change: Change,
    actor: Actor<'_>,
    policy: Policy,
    now: i64,
) -> Result<Applied> {
    let tenant: Option<String> = match scope {
        Scope::Tenant(t) => {
            sqlx::query_scalar(
                "SELECT tenant_id FROM subscriptions WHERE id = $1 AND tenant_id = $2",
            )
            .bind(id)
            .bind(t.as_str())
            .fetch_optional(&mut **tx)
            .await?
        }
        Scope::Any => {
            sqlx::query_scalar("SELECT tenant_id FROM subscriptions WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **tx)
                .await?
        }
    };
    let tenant = TenantId::from_trusted(tenant.ok_or_else(|| Error::not_found("subscription"))?);
    let (mut row, plan) = load_locked(tx, db, &tenant)
        .await?
        .into_iter()
        .find(|(s, _)| s.id == id)
        .ok_or_else(|| Error::not_found("subscription"))?;
    let current = row.timeline_at(&plan, now)?;
    if let Some((t, canceled_at)) = next(current, row.canceled_at, &plan, change, now)? {
        row.status = t.status.as_str().to_string();
        row.current_period_start = t.period_start;
        row.current_period_end = t.period_end;
        row.past_due_since = t.past_due_since;
        row.canceled_at = canceled_at.or(row.canceled_at);
        write(tx, &row, now).await?;
        record(tx, &actor, change.action(), &row, &plan, now).await?;
    }
    let entitlements_changed = super::sync::tenant_tx(tx, db, &tenant, policy, now).await?;
    Ok(Applied {
        subscription: row.view(&plan, policy, now)?,
        tenant,
        entitlements_changed,
    })
}

/// Apply `change` to subscription `id` in a transaction of its own.
pub async fn apply(
    db: &Db,
    target: Target<'_>,
    change: Change,
    actor: Actor<'_>,
    policy: Policy,
    now: i64,
) -> Result<Subscription> {
    let mut tx = db.begin().await?;
    let applied = apply_tx(&mut tx, db, target, change, actor, policy, now).await?;
    tx.commit().await?;
    super::sync::after_commit(&applied.tenant, applied.entitlements_changed);
    Ok(applied.subscription)
}

/// Store a subscription's state and dates.
pub(crate) async fn write(tx: &mut Tx, row: &SubRow, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE subscriptions SET status = $2, current_period_start = $3, current_period_end = $4, \
         past_due_since = $5, canceled_at = $6, updated_at = $7 WHERE id = $1",
    )
    .bind(&row.id)
    .bind(&row.status)
    .bind(row.current_period_start)
    .bind(row.current_period_end)
    .bind(row.past_due_since)
    .bind(row.canceled_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The audit entry and the `subscription.changed` event of a change, in
/// its transaction.
pub(crate) async fn record(
    tx: &mut Tx,
    actor: &Actor<'_>,
    action: &str,
    row: &SubRow,
    plan: &Plan,
    now: i64,
) -> Result<()> {
    let tenant = TenantId::from_trusted(row.tenant_id.clone());
    audit::record_tx(
        tx,
        &actor.audit(action, &tenant).target("subscription", &row.id),
        now,
    )
    .await?;
    crate::modules::events::publish_tx(
        tx,
        &tenant,
        "subscription.changed",
        &json!({
            "subscription_id": row.id,
            "plan_id": plan.id,
            "status": row.status,
            "modules": plan.modules,
            "current_period_end": rfc3339(row.current_period_end),
        }),
        now,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscriptions::plans::Interval;

    const DAY: i64 = 86_400_000;
    /// 2026-03-02 09:00 UTC.
    const NOW: i64 = 1_772_442_000_000;

    fn plan() -> Plan {
        Plan {
            id: "p".into(),
            name: "P".into(),
            modules: vec!["hello".into()],
            price_minor: 4900,
            currency: "CHF".into(),
            interval: Interval::Month,
            trial_days: 14,
            status: "active".into(),
            created_at: String::new(),
        }
    }

    fn at(status: Status, start: i64, end: i64, past_due_since: Option<i64>) -> Timeline {
        Timeline {
            status,
            period_start: start,
            period_end: end,
            past_due_since,
        }
    }

    /// Every row of the table in the module documentation.
    #[test]
    fn each_change_moves_each_state_as_documented() {
        use Status::*;
        let month = |from: i64| Interval::Month.add_to(from);
        let p = plan();
        let trial = at(Trialing, NOW - DAY, NOW + 13 * DAY, None);
        let active = at(Active, NOW - 10 * DAY, NOW + 20 * DAY, None);
        let overdue = at(PastDue, NOW - 40 * DAY, NOW - 9 * DAY, Some(NOW - 9 * DAY));
        let long_overdue = at(
            PastDue,
            NOW - 90 * DAY,
            NOW - 60 * DAY,
            Some(NOW - 60 * DAY),
        );
        let canceled = at(Canceled, NOW - 10 * DAY, NOW + 20 * DAY, None);
        let paid = |start: i64| Some((at(Active, start, month(start), None), None));
        let cases = [
            (Change::Paid, trial, paid(NOW), "a trial ends when paid"),
            (
                Change::Paid,
                active,
                paid(active.period_end),
                "renewal paid early",
            ),
            (
                Change::Paid,
                overdue,
                paid(overdue.period_end),
                "the overdue period",
            ),
            (
                Change::Paid,
                long_overdue,
                paid(NOW),
                "paid after more than a period",
            ),
            (
                Change::Activate,
                trial,
                paid(NOW),
                "operator ends the trial",
            ),
            (Change::Activate, active, None, "already active"),
            (
                Change::PaymentFailed,
                active,
                Some((
                    at(PastDue, active.period_start, active.period_end, Some(NOW)),
                    None,
                )),
                "the grace starts now",
            ),
            (
                Change::PaymentFailed,
                overdue,
                Some((overdue, None)),
                "the grace is not extended",
            ),
            (Change::PaymentFailed, canceled, None, "canceled stays"),
            (
                Change::Cancel,
                active,
                Some((
                    at(Canceled, active.period_start, active.period_end, None),
                    Some(NOW),
                )),
                "to the period end",
            ),
            (Change::Cancel, canceled, None, "canceling twice"),
            (
                Change::Ended,
                active,
                Some((at(Canceled, active.period_start, NOW, None), Some(NOW))),
                "ended now",
            ),
        ];
        for (change, from, expected, why) in cases {
            assert_eq!(
                next(from, None, &p, change, NOW).unwrap(),
                expected,
                "{why}"
            );
        }
        for change in [Change::Paid, Change::Activate] {
            let err = next(canceled, Some(NOW), &p, change, NOW).unwrap_err();
            assert_eq!(
                err.code(),
                Code::Conflict,
                "a canceled subscription stays so"
            );
        }
    }
}
