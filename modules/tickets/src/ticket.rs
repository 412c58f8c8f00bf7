//! A ticket and the rules of changing it: who may see it, which status
//! changes are allowed and by whom, and the queues staff work from.
//!
//! These are the records the module stores (serde), kept free of the SDK so
//! the rules are tested natively; the module's routes call them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::calendar::BusinessHours;
use crate::sla::{self, Due, History, Policy, Priority, Status, Timer};

/// A ticket as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Record id.
    pub id: String,
    /// `T-2026-000123`.
    pub number: String,
    /// One line.
    pub subject: String,
    /// The core CRM customer it is about.
    pub customer_id: String,
    /// A service it concerns (an id other modules understand), if any.
    #[serde(default)]
    pub service_ref: Option<String>,
    /// Department id.
    pub department_id: String,
    /// `low`, `normal`, `high`, `urgent`.
    pub priority: String,
    /// `open`, `pending_customer`, ...
    pub status: String,
    /// The staff user working on it.
    #[serde(default)]
    pub assignee_id: Option<String>,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Unix ms.
    pub opened_at: i64,
    /// The SLA history (status changes, replies), Unix ms.
    #[serde(default)]
    pub status_changes: Vec<(i64, String)>,
    /// Public staff replies, Unix ms.
    #[serde(default)]
    pub staff_replies: Vec<i64>,
    /// Customer messages after the opening one, Unix ms.
    #[serde(default)]
    pub customer_messages: Vec<i64>,
    /// Timers already reported as breached (`first_response`...). The
    /// update timer leaves the list when the customer writes again: each
    /// exchange can breach it once.
    #[serde(default)]
    pub breached: Vec<String>,
    /// The SLA policy the ticket is measured by.
    #[serde(default = "default_policy")]
    pub policy_id: String,
    /// The customer's name when the ticket was opened, for the queues.
    #[serde(default)]
    pub customer_name: String,
    /// Messages in the thread; message ids are `{ticket id}.{n:05}`.
    #[serde(default)]
    pub message_count: u32,
    /// Unix ms of the last change.
    #[serde(default)]
    pub updated_at: i64,
    /// Indexed: the assignee (`-`: nobody) while the ticket is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_assignee: Option<String>,
    /// Indexed: the department while the ticket is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_department: Option<String>,
    /// Indexed: the earliest due time of a running timer, Unix ms: what the
    /// escalation job and "due today" look at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_due_at: Option<i64>,
    /// Indexed: 1 while the ticket is active with a breached timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_open: Option<i64>,
}

fn default_policy() -> String {
    "default".into()
}

/// A staff queue's `queue_assignee` for "nobody".
pub const NOBODY: &str = "-";

/// Who acts on a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor<'a> {
    /// A staff user (owner, admin, staff) with `tickets.view`.
    Staff {
        /// User id.
        user_id: &'a str,
    },
    /// A portal user, belonging to this customer.
    Customer {
        /// The customer the portal user belongs to.
        customer_id: &'a str,
    },
}

/// Why a change is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The actor may not see the ticket: answer 404, never 403, so ids do
    /// not leak.
    NotFound,
    /// The change is not allowed; the message says why.
    NotAllowed(String),
}

fn ms(t: i64) -> Timestamp {
    Timestamp::from_millisecond(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Ticket {
    /// Whether `actor` may see the ticket: staff see every ticket of the
    /// tenant, a customer only their own.
    pub fn visible_to(&self, actor: &Actor<'_>) -> bool {
        match actor {
            Actor::Staff { .. } => true,
            Actor::Customer { customer_id } => self.customer_id == *customer_id,
        }
    }

    /// The status as a value.
    pub fn status(&self) -> Status {
        Status::parse(&self.status).unwrap_or(Status::Open)
    }

    /// The priority as a value.
    pub fn priority(&self) -> Priority {
        Priority::parse(&self.priority).unwrap_or(Priority::Normal)
    }

    /// Change the status to `to` at `now` as `actor`. Customers may close
    /// their ticket or reopen a resolved one; staff may set any status but
    /// may not reopen a closed ticket (a new one is opened instead).
    pub fn set_status(&mut self, actor: &Actor<'_>, to: Status, now: i64) -> Result<(), Refusal> {
        if !self.visible_to(actor) {
            return Err(Refusal::NotFound);
        }
        let from = self.status();
        if from == to {
            return Ok(());
        }
        if from == Status::Closed {
            return Err(Refusal::NotAllowed(
                "the ticket is closed; open a new ticket instead".into(),
            ));
        }
        if let Actor::Customer { .. } = actor {
            let allowed = to == Status::Closed || (from == Status::Resolved && to == Status::Open);
            if !allowed {
                return Err(Refusal::NotAllowed(format!(
                    "a customer can close the ticket or reopen a resolved one, not set it to {}",
                    to.as_str()
                )));
            }
        }
        self.status = to.as_str().into();
        self.status_changes.push((now, self.status.clone()));
        Ok(())
    }

    /// Record a message at `now`: a public staff reply (internal notes do
    /// not count for the SLA), or a customer message, which also reopens a
    /// ticket waiting for the customer or resolved.
    pub fn record_message(
        &mut self,
        actor: &Actor<'_>,
        internal: bool,
        now: i64,
    ) -> Result<(), Refusal> {
        if !self.visible_to(actor) {
            return Err(Refusal::NotFound);
        }
        if self.status() == Status::Closed {
            return Err(Refusal::NotAllowed(
                "the ticket is closed; open a new ticket instead".into(),
            ));
        }
        match actor {
            Actor::Staff { .. } if internal => {}
            Actor::Staff { .. } => self.staff_replies.push(now),
            Actor::Customer { .. } if internal => {
                return Err(Refusal::NotAllowed(
                    "customers cannot write internal notes".into(),
                ))
            }
            Actor::Customer { .. } => {
                self.customer_messages.push(now);
                // A new exchange: its update timer can breach again.
                self.breached.retain(|b| b != Timer::Update.as_str());
                if matches!(self.status(), Status::PendingCustomer | Status::Resolved) {
                    self.status = Status::Open.as_str().into();
                    self.status_changes.push((now, self.status.clone()));
                }
            }
        }
        Ok(())
    }

    /// The SLA history of the ticket.
    pub fn history(&self) -> History {
        History {
            opened_at: ms(self.opened_at),
            status_changes: self
                .status_changes
                .iter()
                .filter_map(|(at, s)| Some((ms(*at), Status::parse(s)?)))
                .collect(),
            staff_replies: self.staff_replies.iter().map(|t| ms(*t)).collect(),
            customer_messages: self.customer_messages.iter().map(|t| ms(*t)).collect(),
        }
    }

    /// The state of each timer at `now`.
    pub fn dues(&self, policy: &Policy, hours: &BusinessHours, now: i64) -> [(Timer, Due); 3] {
        let history = self.history();
        Timer::ALL.map(|t| {
            (
                t,
                sla::due(policy, self.priority(), hours, &history, t, ms(now)),
            )
        })
    }

    /// The timers newly breached at `now`, now recorded on the ticket so
    /// each is reported once.
    pub fn take_new_breaches(
        &mut self,
        policy: &Policy,
        hours: &BusinessHours,
        now: i64,
    ) -> Vec<Timer> {
        let recorded: Vec<Timer> = Timer::ALL
            .into_iter()
            .filter(|t| self.breached.iter().any(|b| b == t.as_str()))
            .collect();
        let new = sla::new_breaches(
            policy,
            self.priority(),
            hours,
            &self.history(),
            &recorded,
            ms(now),
        );
        self.breached
            .extend(new.iter().map(|t| t.as_str().to_string()));
        new
    }
}

impl Ticket {
    /// Whether the ticket still needs work (not resolved or closed).
    pub fn is_active(&self) -> bool {
        !matches!(self.status(), Status::Resolved | Status::Closed)
    }

    /// Set the derived index fields (queues, next due time, breach flag)
    /// from the ticket as it is at `now`; every write calls this last.
    pub fn reindex(&mut self, policy: &Policy, hours: &BusinessHours, now: i64) {
        let active = self.is_active();
        self.updated_at = now;
        self.queue_assignee =
            active.then(|| self.assignee_id.clone().unwrap_or_else(|| NOBODY.into()));
        self.queue_department = active.then(|| self.department_id.clone());
        self.next_due_at = if active {
            self.dues(policy, hours, now)
                .iter()
                .filter_map(|(_, due)| match due {
                    Due::Running(at) => Some(at.as_millisecond()),
                    _ => None,
                })
                .min()
        } else {
            None
        };
        self.breached_open = (active && !self.breached.is_empty()).then_some(1);
    }
}

/// The staff queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queue<'a> {
    /// Assigned to this user and not done.
    Mine(&'a str),
    /// Nobody assigned, not done.
    Unassigned,
    /// A timer breached, not done.
    Breached,
    /// Of this department, not done.
    Department(&'a str),
}

impl Queue<'_> {
    /// Whether `ticket` belongs in the queue.
    pub fn contains(&self, ticket: &Ticket) -> bool {
        let active = !matches!(ticket.status(), Status::Resolved | Status::Closed);
        active
            && match self {
                Queue::Mine(user) => ticket.assignee_id.as_deref() == Some(*user),
                Queue::Unassigned => ticket.assignee_id.is_none(),
                Queue::Breached => !ticket.breached.is_empty(),
                Queue::Department(d) => ticket.department_id == *d,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::testing::office;
    use crate::sla::Targets;

    const T0: i64 = 1_772_524_800_000; // Tuesday 2026-03-03 08:00 UTC (09:00 Zurich)
    const HOUR: i64 = 3_600_000;

    fn ticket() -> Ticket {
        Ticket {
            id: "t1".into(),
            number: "T-2026-000001".into(),
            subject: "Server down".into(),
            customer_id: "ada".into(),
            service_ref: None,
            department_id: "support".into(),
            priority: "urgent".into(),
            status: "open".into(),
            assignee_id: None,
            tags: vec![],
            opened_at: T0,
            status_changes: vec![],
            staff_replies: vec![],
            customer_messages: vec![],
            breached: vec![],
            policy_id: "default".into(),
            customer_name: "Ada".into(),
            message_count: 1,
            updated_at: T0,
            queue_assignee: None,
            queue_department: None,
            next_due_at: None,
            breached_open: None,
        }
    }

    fn policy() -> Policy {
        let urgent = Targets {
            first_response: Some(60),
            update: Some(120),
            resolution: Some(480),
        };
        Policy {
            targets: [
                Targets::default(),
                Targets::default(),
                Targets::default(),
                urgent,
            ],
        }
    }

    const STAFF: Actor<'static> = Actor::Staff { user_id: "grace" };
    const ADA: Actor<'static> = Actor::Customer { customer_id: "ada" };
    const EVE: Actor<'static> = Actor::Customer { customer_id: "eve" };

    #[test]
    fn customers_see_only_their_own_tickets() {
        let t = ticket();
        assert!(t.visible_to(&STAFF));
        assert!(t.visible_to(&ADA));
        assert!(!t.visible_to(&EVE));
        let mut t = ticket();
        assert_eq!(
            t.set_status(&EVE, Status::Closed, T0),
            Err(Refusal::NotFound)
        );
        assert_eq!(t.record_message(&EVE, false, T0), Err(Refusal::NotFound));
    }

    #[test]
    fn status_rules_for_customers_and_staff() {
        let mut t = ticket();
        assert!(matches!(
            t.set_status(&ADA, Status::OnHold, T0),
            Err(Refusal::NotAllowed(_))
        ));
        t.set_status(&STAFF, Status::Resolved, T0 + HOUR).unwrap();
        t.set_status(&ADA, Status::Open, T0 + 2 * HOUR).unwrap();
        t.set_status(&ADA, Status::Closed, T0 + 3 * HOUR).unwrap();
        assert!(matches!(
            t.set_status(&STAFF, Status::Open, T0 + 4 * HOUR),
            Err(Refusal::NotAllowed(_))
        ));
        assert!(matches!(
            t.record_message(&ADA, false, T0 + 4 * HOUR),
            Err(Refusal::NotAllowed(_))
        ));
        assert_eq!(t.status_changes.len(), 3);
    }

    #[test]
    fn a_customer_reply_reopens_a_waiting_ticket_and_notes_do_not_count() {
        let mut t = ticket();
        t.record_message(&STAFF, true, T0 + HOUR / 4).unwrap();
        assert!(
            t.staff_replies.is_empty(),
            "an internal note is not a reply"
        );
        assert!(matches!(
            t.record_message(&ADA, true, T0),
            Err(Refusal::NotAllowed(_))
        ));
        t.record_message(&STAFF, false, T0 + HOUR / 2).unwrap();
        t.set_status(&STAFF, Status::PendingCustomer, T0 + HOUR / 2)
            .unwrap();
        t.record_message(&ADA, false, T0 + HOUR).unwrap();
        assert_eq!(t.status(), Status::Open);
        assert_eq!(t.customer_messages, vec![T0 + HOUR]);
    }

    #[test]
    fn breaches_are_taken_once_and_queues_filter() {
        let mut t = ticket();
        // Urgent, 1 h first response (2 h update): breached 90 minutes in.
        assert!(t
            .take_new_breaches(&policy(), &office(), T0 + HOUR / 2)
            .is_empty());
        let first = t.take_new_breaches(&policy(), &office(), T0 + 3 * HOUR / 2);
        assert_eq!(first, vec![Timer::FirstResponse]);
        assert!(t
            .take_new_breaches(&policy(), &office(), T0 + 3 * HOUR / 2)
            .is_empty());
        assert_eq!(t.breached, vec!["first_response".to_string()]);
        assert!(matches!(
            t.dues(&policy(), &office(), T0 + 3 * HOUR / 2)[0],
            (Timer::FirstResponse, Due::Breached(_))
        ));

        assert!(Queue::Breached.contains(&t));
        assert!(Queue::Unassigned.contains(&t));
        assert!(Queue::Department("support").contains(&t));
        assert!(!Queue::Mine("grace").contains(&t));
        t.assignee_id = Some("grace".into());
        assert!(Queue::Mine("grace").contains(&t));
        t.set_status(&STAFF, Status::Resolved, T0 + 3 * HOUR)
            .unwrap();
        assert!(
            !Queue::Mine("grace").contains(&t),
            "done tickets leave the queues"
        );
        t.reindex(&policy(), &office(), T0 + 3 * HOUR);
        assert_eq!(
            (t.queue_assignee.as_deref(), t.next_due_at, t.breached_open),
            (None, None, None),
            "a done ticket is in no queue and has nothing due"
        );
        let stored = serde_json_round_trip(&t);
        assert_eq!(stored, t);
    }

    #[test]
    fn the_index_fields_follow_the_ticket() {
        let mut t = ticket();
        t.reindex(&policy(), &office(), T0);
        assert_eq!(t.queue_assignee.as_deref(), Some(NOBODY));
        assert_eq!(t.queue_department.as_deref(), Some("support"));
        // Urgent: the first response (1 h) is the earliest due.
        assert_eq!(t.next_due_at, Some(T0 + HOUR));
        assert_eq!(t.breached_open, None);
        let breached = t.take_new_breaches(&policy(), &office(), T0 + 2 * HOUR);
        assert!(breached.contains(&Timer::FirstResponse));
        t.reindex(&policy(), &office(), T0 + 2 * HOUR);
        assert_eq!(t.breached_open, Some(1));
        // Waiting for the customer: nothing runs, nothing is due.
        t.set_status(&STAFF, Status::PendingCustomer, T0 + 2 * HOUR)
            .unwrap();
        t.reindex(&policy(), &office(), T0 + 2 * HOUR);
        assert_eq!(t.next_due_at, None);
    }

    #[test]
    fn each_exchange_can_breach_the_update_timer_once() {
        let mut t = ticket();
        t.record_message(&STAFF, false, T0 + HOUR / 2).unwrap();
        t.record_message(&ADA, false, T0 + HOUR).unwrap();
        // 2 h update target: breached at T0 + 3 h.
        let first = t.take_new_breaches(&policy(), &office(), T0 + 4 * HOUR);
        assert_eq!(first, vec![Timer::Update]);
        assert!(t
            .take_new_breaches(&policy(), &office(), T0 + 5 * HOUR)
            .is_empty());
        t.record_message(&STAFF, false, T0 + 5 * HOUR).unwrap();
        t.record_message(&ADA, false, T0 + 6 * HOUR).unwrap();
        // Past 18:00 Zurich the desk is closed; the next morning breaches it again.
        let again = t.take_new_breaches(&policy(), &office(), T0 + 26 * HOUR);
        assert!(again.contains(&Timer::Update), "{again:?}");
    }

    fn serde_json_round_trip(t: &Ticket) -> Ticket {
        // The record store keeps JSON; a ticket must survive it.
        let text = serde_json::to_string(t).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}
