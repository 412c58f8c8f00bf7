//! What a subscription's state means for its modules at a given time.
//!
//! Pure functions over a [`Timeline`] (state and dates), so every rule is
//! checked by a table of cases without a database or a clock:
//!
//! | state | modules |
//! | --- | --- |
//! | trialing, active | active until the period ends; then past due (no payment came) |
//! | past_due | active for the grace (`payment_grace_days`) after the payment became overdue, then read-only |
//! | canceled | active until the period ends, then read-only |
//!
//! A free plan's period renews itself. Read-only, never removed: GET routes
//! and pages of the modules keep working, so the data stays visible.

use serde::Serialize;

use super::plans::Interval;
use crate::config::Config;

/// Days a past-due subscription keeps its modules working unless configured
/// (`payment_grace_days`): a week to fix a card, like most SaaS.
pub const DEFAULT_GRACE_DAYS: i64 = 7;

const DAY_MS: i64 = 86_400_000;

/// The states of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In its free trial; nothing paid yet.
    Trialing,
    /// Paid for the current period.
    Active,
    /// A payment failed or did not come; modules work for the grace period.
    PastDue,
    /// Ended by the owner or the payment provider; modules work to the period end.
    Canceled,
}

impl Status {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Trialing => "trialing",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Canceled => "canceled",
        }
    }

    /// The stored text as a state.
    pub fn parse(stored: &str) -> Option<Status> {
        [
            Status::Trialing,
            Status::Active,
            Status::PastDue,
            Status::Canceled,
        ]
        .into_iter()
        .find(|s| s.as_str() == stored)
    }
}

/// What the modules of a subscription get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Data visible, nothing changes (entitlement status `read_only`).
    ReadOnly,
    /// Everything works (entitlement status `active`).
    Active,
}

impl Access {
    /// The `module_entitlements.status` that says this.
    pub fn entitlement_status(self) -> &'static str {
        match self {
            Access::Active => "active",
            Access::ReadOnly => "read_only",
        }
    }
}

/// The operator's rules for subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long modules keep working after a payment became overdue.
    pub grace_ms: i64,
}

impl Policy {
    /// The policy with a grace of `days`.
    pub fn with_grace_days(days: i64) -> Self {
        Policy {
            grace_ms: days * DAY_MS,
        }
    }

    /// The policy of this install's configuration.
    pub fn from_config(config: &Config) -> Self {
        Policy::with_grace_days(config.payment_grace_days)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::with_grace_days(DEFAULT_GRACE_DAYS)
    }
}

/// A subscription's state and dates (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// The state.
    pub status: Status,
    /// Start of the trial or paid period.
    pub period_start: i64,
    /// End of the trial or paid period.
    pub period_end: i64,
    /// When the payment became overdue (past due only).
    pub past_due_since: Option<i64>,
}

impl Timeline {
    /// The timeline at `now` with what time alone changes applied: a trial
    /// or paid period that ended without a payment is past due since its
    /// end; a free plan's period renews itself.
    pub fn at(self, free: bool, interval: Interval, now: i64) -> Timeline {
        match self.status {
            Status::Trialing | Status::Active if self.period_end <= now => {
                if free {
                    let mut t = self;
                    t.status = Status::Active;
                    while t.period_end <= now {
                        t.period_start = t.period_end;
                        t.period_end = interval.add_to(t.period_end);
                    }
                    t
                } else {
                    Timeline {
                        status: Status::PastDue,
                        past_due_since: Some(self.period_end),
                        ..self
                    }
                }
            }
            _ => self,
        }
    }

    /// When the modules go read-only unless a payment comes first; `None`
    /// while nothing is due.
    pub fn read_only_from(self, free: bool, policy: Policy) -> Option<i64> {
        match self.status {
            Status::Trialing | Status::Active if free => None,
            Status::Trialing | Status::Active => Some(self.period_end + policy.grace_ms),
            Status::PastDue => {
                Some(self.past_due_since.unwrap_or(self.period_end) + policy.grace_ms)
            }
            Status::Canceled => Some(self.period_end),
        }
    }

    /// What the modules get at `now`.
    pub fn access(self, free: bool, policy: Policy, now: i64) -> Access {
        match self.read_only_from(free, policy) {
            Some(at) if at <= now => Access::ReadOnly,
            _ => Access::Active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const DAY: i64 = DAY_MS;

    fn timeline(status: Status, end_in_days: i64, past_due_days_ago: Option<i64>) -> Timeline {
        Timeline {
            status,
            period_start: T0 - 10 * DAY,
            period_end: T0 + end_in_days * DAY,
            past_due_since: past_due_days_ago.map(|d| T0 - d * DAY),
        }
    }

    /// Every state × the moments that matter, with a grace of 7 days.
    #[test]
    fn states_map_to_module_access_at_every_moment() {
        use Access::{Active as A, ReadOnly as R};
        use Status::*;
        let policy = Policy::default();
        let cases = [
            // (state, period ends in days, overdue since days ago, free, expected, why)
            (Trialing, 3, None, false, A, "trial running"),
            (
                Trialing,
                0,
                None,
                false,
                A,
                "trial just ended: grace starts",
            ),
            (
                Trialing,
                -6,
                None,
                false,
                A,
                "trial ended 6 days ago: in grace",
            ),
            (Trialing, -7, None, false, R, "trial ended a grace ago"),
            (Active, 20, None, false, A, "paid period running"),
            (Active, -3, None, false, A, "renewal missing: in grace"),
            (Active, -8, None, false, R, "renewal missing past the grace"),
            (Active, -400, None, true, A, "free plans renew themselves"),
            (PastDue, 20, Some(1), false, A, "payment failed yesterday"),
            (PastDue, 20, Some(7), false, R, "payment failed a grace ago"),
            (Canceled, 5, None, false, A, "canceled: to the period end"),
            (
                Canceled,
                0,
                None,
                false,
                R,
                "canceled and the period is over",
            ),
            (
                Canceled,
                5,
                None,
                true,
                A,
                "free and canceled: to the period end",
            ),
        ];
        for (status, end, overdue, free, expected, why) in cases {
            let t = timeline(status, end, overdue).at(free, Interval::Month, T0);
            assert_eq!(t.access(free, policy, T0), expected, "{why}");
        }
    }

    #[test]
    fn an_unpaid_period_end_makes_the_subscription_past_due_since_then() {
        let t = timeline(Status::Trialing, -2, None).at(false, Interval::Month, T0);
        assert_eq!(t.status, Status::PastDue);
        assert_eq!(t.past_due_since, Some(T0 - 2 * DAY));
        let free = timeline(Status::Active, -40, None).at(true, Interval::Month, T0);
        assert_eq!(free.status, Status::Active);
        assert!(free.period_start <= T0 && T0 < free.period_end, "{free:?}");
        let running = timeline(Status::Active, 2, None);
        assert_eq!(running.at(false, Interval::Month, T0), running);
    }

    #[test]
    fn the_grace_comes_from_the_policy() {
        let t = timeline(Status::PastDue, 20, Some(2));
        assert_eq!(
            t.access(false, Policy::with_grace_days(1), T0),
            Access::ReadOnly
        );
        assert_eq!(
            t.access(false, Policy::with_grace_days(3), T0),
            Access::Active
        );
        assert_eq!(
            t.access(false, Policy::with_grace_days(0), T0),
            Access::ReadOnly,
            "no grace: read-only as soon as it is overdue"
        );
    }
}
