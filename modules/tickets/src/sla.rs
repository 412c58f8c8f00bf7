//! SLA timers of a ticket, measured on business hours.
//!
//! Three timers, as in Zammad:
//! * **first response** — from opening to the first public reply by staff;
//! * **update** — from the customer's latest message (or the opening) to
//!   the next public reply by staff;
//! * **resolution** — from opening to resolving.
//!
//! Each counts only working time ([`BusinessHours`]) and only while the
//! ticket runs: `pending customer` and `on hold` pause the clock (the wait
//! is not the desk's), and so do `resolved` and `closed`. Due times are
//! computed from the ticket's history every time, never stored, so a
//! priority change mid-flight (other targets) or a corrected calendar
//! moves them at once. A breach is reported once: [`new_breaches`] names
//! only the timers not yet recorded as breached.

use jiff::{SignedDuration, Timestamp};

use crate::calendar::BusinessHours;

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Whenever there is time.
    Low,
    /// The default.
    Normal,
    /// Soon.
    High,
    /// Now.
    Urgent,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    /// The stored name: `low`, `normal`, `high`, `urgent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// The priority named `name`.
    pub fn parse(name: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// New or being worked on.
    Open,
    /// Waiting for the customer: the SLA clock stops.
    PendingCustomer,
    /// Waiting for staff.
    PendingStaff,
    /// Parked on purpose (a supplier, a maintenance window): the clock stops.
    OnHold,
    /// Solved; the customer may still reopen it.
    Resolved,
    /// Done for good.
    Closed,
}

impl Status {
    /// Every status, in the order the desk shows them.
    pub const ALL: [Status; 6] = [
        Status::Open,
        Status::PendingCustomer,
        Status::PendingStaff,
        Status::OnHold,
        Status::Resolved,
        Status::Closed,
    ];

    /// The stored name (`pending_customer`...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::PendingCustomer => "pending_customer",
            Status::PendingStaff => "pending_staff",
            Status::OnHold => "on_hold",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the SLA clock runs in this status.
    pub fn clock_runs(self) -> bool {
        matches!(self, Status::Open | Status::PendingStaff)
    }
}

/// The three targets of one priority, in working minutes; `None`: no target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Targets {
    /// First public staff reply.
    pub first_response: Option<u32>,
    /// Next public staff reply after a customer message.
    pub update: Option<u32>,
    /// Resolution.
    pub resolution: Option<u32>,
}

/// An SLA policy: targets per priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Targets of `low`, `normal`, `high`, `urgent`, in that order.
    pub targets: [Targets; 4],
}

impl Policy {
    /// The targets for `priority`.
    pub fn for_priority(&self, priority: Priority) -> Targets {
        self.targets[priority as usize]
    }
}

/// Which timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// First response.
    FirstResponse,
    /// Update.
    Update,
    /// Resolution.
    Resolution,
}

impl Timer {
    /// Every timer.
    pub const ALL: [Timer; 3] = [Timer::FirstResponse, Timer::Update, Timer::Resolution];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Timer::FirstResponse => "first_response",
            Timer::Update => "update",
            Timer::Resolution => "resolution",
        }
    }
}

/// What happened to a ticket, as far as the SLA cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// When it was opened.
    pub opened_at: Timestamp,
    /// Status changes after the opening (the opening status is `Open`), in order.
    pub status_changes: Vec<(Timestamp, Status)>,
    /// Public replies by staff, in order.
    pub staff_replies: Vec<Timestamp>,
    /// Messages from the customer after the opening message, in order.
    pub customer_messages: Vec<Timestamp>,
}

impl History {
    /// A ticket opened at `at`, nothing since.
    pub fn opened(at: Timestamp) -> History {
        History {
            opened_at: at,
            status_changes: Vec::new(),
            staff_replies: Vec::new(),
            customer_messages: Vec::new(),
        }
    }

    /// The status at `at`.
    pub fn status_at(&self, at: Timestamp) -> Status {
        self.status_changes
            .iter()
            .take_while(|(when, _)| *when <= at)
            .last()
            .map_or(Status::Open, |(_, s)| *s)
    }

    /// When the ticket was resolved or closed and stayed so, if it is now.
    fn finished_at(&self) -> Option<Timestamp> {
        let (at, status) = self.status_changes.last()?;
        matches!(status, Status::Resolved | Status::Closed).then(|| {
            // The first of a run of resolved/closed at the end.
            self.status_changes
                .iter()
                .rev()
                .take_while(|(_, s)| matches!(s, Status::Resolved | Status::Closed))
                .last()
                .map_or(*at, |(when, _)| *when)
        })
    }

    /// The stretches from `from` on during which the clock runs: `(start,
    /// end)`, the last one open-ended (`None`) if it still runs.
    fn running_from(&self, from: Timestamp) -> Vec<(Timestamp, Option<Timestamp>)> {
        let mut stretches = Vec::new();
        let mut current = self.status_at(from).clock_runs().then_some(from);
        for (at, status) in self.status_changes.iter().filter(|(at, _)| *at > from) {
            match (current, status.clock_runs()) {
                (Some(start), false) => {
                    stretches.push((start, Some(*at)));
                    current = None;
                }
                (None, true) => current = Some(*at),
                _ => {}
            }
        }
        if let Some(start) = current {
            stretches.push((start, None));
        }
        stretches
    }
}

/// A timer's state at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// No target for this priority, or nothing to measure (no customer
    /// message waits for an update).
    None,
    /// Met in time at this instant.
    Met(Timestamp),
    /// Met, but late: done at the first instant, due at the second.
    MetLate(Timestamp, Timestamp),
    /// Running: due at this instant (in the future).
    Running(Timestamp),
    /// Paused (waiting for the customer, on hold): this much working time is left.
    Paused(SignedDuration),
    /// Not met, and the due time has passed.
    Breached(Timestamp),
}

impl Due {
    /// Whether the timer is breached (now, or was when it was met).
    pub fn is_breached(self) -> bool {
        matches!(self, Due::Breached(_) | Due::MetLate(..))
    }

    /// The due time, when there is one to show.
    pub fn due_at(self) -> Option<Timestamp> {
        match self {
            Due::Running(at) | Due::Breached(at) | Due::MetLate(_, at) => Some(at),
            _ => None,
        }
    }
}

/// The due state of `timer` for a ticket of `priority` with `history`, under
/// `policy` and `hours`, at `now`.
pub fn due(
    policy: &Policy,
    priority: Priority,
    hours: &BusinessHours,
    history: &History,
    timer: Timer,
    now: Timestamp,
) -> Due {
    let targets = policy.for_priority(priority);
    let (target, started, done) = match timer {
        Timer::FirstResponse => (
            targets.first_response,
            history.opened_at,
            history.staff_replies.first().copied(),
        ),
        Timer::Update => {
            // Measured from the latest customer message (or the opening)
            // that has no staff reply after it.
            let last_customer = history
                .customer_messages
                .last()
                .copied()
                .unwrap_or(history.opened_at)
                .max(history.opened_at);
            let answered = history.staff_replies.iter().any(|r| *r >= last_customer);
            if answered {
                // The latest exchange is answered: report when it was.
                let reply = history
                    .staff_replies
                    .iter()
                    .copied()
                    .find(|r| *r >= last_customer);
                (targets.update, last_customer, reply)
            } else {
                (targets.update, last_customer, None)
            }
        }
        Timer::Resolution => (targets.resolution, history.opened_at, history.finished_at()),
    };
    let Some(minutes) = target else {
        return Due::None;
    };
    let target = SignedDuration::from_mins(i64::from(minutes));
    let until = done.unwrap_or(now).min(now);
    // Working time used while the clock ran, and where it runs now.
    let mut used = SignedDuration::ZERO;
    let mut running_since = None;
    for (start, end) in history.running_from(started) {
        // A stretch starting right now still runs (a ticket just opened).
        if start > until {
            break;
        }
        match end {
            Some(end) => used += hours.between(start, end.min(until)),
            None => {
                used += hours.between(start, until);
                running_since = Some(start);
            }
        }
    }
    // The due instant if the clock had kept running from where it last ran.
    let due_at =
        |used_before: SignedDuration, from: Timestamp| hours.add(from, target - used_before);
    if let Some(done) = done.filter(|d| *d <= now) {
        return if used <= target {
            Due::Met(done)
        } else {
            // Late: when was it due? Replay the running stretches.
            let mut before = SignedDuration::ZERO;
            for (start, end) in history.running_from(started) {
                let end = end.unwrap_or(done).min(done);
                let here = hours.between(start, end);
                if before + here >= target {
                    return match due_at(before, start) {
                        Some(at) => Due::MetLate(done, at),
                        None => Due::Met(done),
                    };
                }
                before += here;
            }
            Due::Met(done)
        };
    }
    match running_since {
        Some(start) => {
            let used_before = used - hours.between(start, now);
            match due_at(used_before, start) {
                Some(at) if at <= now => Due::Breached(at),
                Some(at) => Due::Running(at),
                None => Due::None,
            }
        }
        None if used >= target => {
            // Paused or stopped after running out: breached at the instant it ran out.
            let mut before = SignedDuration::ZERO;
            for (start, end) in history.running_from(started) {
                let end = end.unwrap_or(now).min(now);
                let here = hours.between(start, end);
                if before + here >= target {
                    if let Some(at) = due_at(before, start) {
                        return Due::Breached(at);
                    }
                }
                before += here;
            }
            Due::Paused(SignedDuration::ZERO)
        }
        None => Due::Paused(target - used),
    }
}

/// The timers that are breached at `now` and not in `recorded` (the timers
/// already reported for this ticket): the escalation job reports each
/// breach once, however often it runs.
pub fn new_breaches(
    policy: &Policy,
    priority: Priority,
    hours: &BusinessHours,
    history: &History,
    recorded: &[Timer],
    now: Timestamp,
) -> Vec<Timer> {
    Timer::ALL
        .into_iter()
        .filter(|t| !recorded.contains(t))
        // Before the customer writes again, the update timer measures the
        // same wait as the first response: one missed reply, one breach.
        .filter(|t| *t != Timer::Update || !history.customer_messages.is_empty())
        // Met late counts too: a reply after the due time that came before
        // the escalation job looked is still a breach, reported once.
        .filter(|t| due(policy, priority, hours, history, *t, now).is_breached())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::testing::{office, zurich as at};
    use jiff::civil::date;

    /// The first-response timer under [`policy`].
    fn first_response(
        priority: Priority,
        hours: &BusinessHours,
        history: &History,
        now: Timestamp,
    ) -> Due {
        due(
            &policy(),
            priority,
            hours,
            history,
            Timer::FirstResponse,
            now,
        )
    }

    /// Urgent: 1 h / 2 h / 8 h; high: 4 h / 8 h / 24 h; normal: 8 h / 16 h
    /// / 40 h; low: no first response target.
    fn policy() -> Policy {
        let t = |f: Option<u32>, u: u32, r: u32| Targets {
            first_response: f.map(|h| h * 60),
            update: Some(u * 60),
            resolution: Some(r * 60),
        };
        Policy {
            targets: [
                t(None, 40, 80),
                t(Some(8), 16, 40),
                t(Some(4), 8, 24),
                t(Some(1), 2, 8),
            ],
        }
    }

    #[test]
    fn first_response_due_across_the_weekend_then_breached_then_met_late() {
        // High priority opened Friday 16:00: 2 h on Friday, 2 h on Monday.
        let history = History::opened(at("2026-03-06T16:00"));
        let d = |now: &str| first_response(Priority::High, &office(), &history, at(now));
        assert_eq!(d("2026-03-07T12:00"), Due::Running(at("2026-03-09T10:00")));
        assert_eq!(d("2026-03-09T10:30"), Due::Breached(at("2026-03-09T10:00")));
        let mut answered = history.clone();
        answered.staff_replies.push(at("2026-03-09T09:15"));
        assert_eq!(
            first_response(Priority::High, &office(), &answered, at("2026-03-10T09:00")),
            Due::Met(at("2026-03-09T09:15"))
        );
        answered.staff_replies[0] = at("2026-03-09T11:00");
        assert_eq!(
            first_response(Priority::High, &office(), &answered, at("2026-03-10T09:00")),
            Due::MetLate(at("2026-03-09T11:00"), at("2026-03-09T10:00"))
        );
    }

    #[test]
    fn a_ticket_runs_its_timers_from_the_instant_it_is_opened() {
        // Asked at the very instant of opening (a queue shows a new ticket
        // at once), the timer already runs: it is not "paused".
        let opened = at("2026-03-09T09:00");
        let history = History::opened(opened);
        assert_eq!(
            first_response(Priority::High, &office(), &history, opened),
            Due::Running(at("2026-03-09T13:00"))
        );
    }

    #[test]
    fn a_holiday_moves_the_due_time() {
        let hours = office().with_holidays([date(2026, 3, 9)]);
        let history = History::opened(at("2026-03-06T16:00"));
        assert_eq!(
            first_response(Priority::High, &hours, &history, at("2026-03-09T12:00")),
            Due::Running(at("2026-03-10T10:00"))
        );
    }

    #[test]
    fn pending_customer_pauses_the_clock_and_keeps_what_is_left() {
        // Urgent, 8 h resolution. Opened Tue 08:00; waits for the customer
        // from 10:00 (2 h used) to Wed 14:00; due 6 working hours later.
        let mut history = History::opened(at("2026-03-03T08:00"));
        history
            .status_changes
            .push((at("2026-03-03T10:00"), Status::PendingCustomer));
        let paused = due(
            &policy(),
            Priority::Urgent,
            &office(),
            &history,
            Timer::Resolution,
            at("2026-03-04T09:00"),
        );
        assert_eq!(paused, Due::Paused(SignedDuration::from_hours(6)));
        history
            .status_changes
            .push((at("2026-03-04T14:00"), Status::Open));
        // Wed 14:00 + 6 h: 4 h on Wednesday, 2 h on Thursday.
        assert_eq!(
            due(
                &policy(),
                Priority::Urgent,
                &office(),
                &history,
                Timer::Resolution,
                at("2026-03-04T15:00")
            ),
            Due::Running(at("2026-03-05T10:00"))
        );
        // On hold pauses too; resolving meets it.
        history
            .status_changes
            .push((at("2026-03-04T16:00"), Status::OnHold));
        assert!(matches!(
            due(
                &policy(),
                Priority::Urgent,
                &office(),
                &history,
                Timer::Resolution,
                at("2026-03-06T09:00")
            ),
            Due::Paused(_)
        ));
        history
            .status_changes
            .push((at("2026-03-06T10:00"), Status::Open));
        history
            .status_changes
            .push((at("2026-03-06T11:00"), Status::Resolved));
        assert_eq!(
            due(
                &policy(),
                Priority::Urgent,
                &office(),
                &history,
                Timer::Resolution,
                at("2026-03-09T09:00")
            ),
            Due::Met(at("2026-03-06T11:00"))
        );
    }

    #[test]
    fn a_priority_change_mid_flight_moves_the_due_time() {
        // Opened Tue 08:00 as normal (8 h first response: due 16:00), raised
        // to urgent at 09:30: 1 h from the opening, so it is already breached
        // at 09:00 — the targets apply from the opening, as in Zammad.
        let history = History::opened(at("2026-03-03T08:00"));
        let at_0930 = at("2026-03-03T09:30");
        assert_eq!(
            first_response(Priority::Normal, &office(), &history, at_0930),
            Due::Running(at("2026-03-03T16:00"))
        );
        assert_eq!(
            first_response(Priority::Urgent, &office(), &history, at_0930),
            Due::Breached(at("2026-03-03T09:00"))
        );
        // Lowered to low: no first-response target at all.
        assert_eq!(
            first_response(Priority::Low, &office(), &history, at_0930),
            Due::None
        );
    }

    #[test]
    fn the_update_timer_restarts_with_each_customer_message() {
        // Urgent: 2 h update target.
        let mut history = History::opened(at("2026-03-03T08:00"));
        history.staff_replies.push(at("2026-03-03T08:30"));
        let update = |h: &History, now: &str| {
            due(
                &policy(),
                Priority::Urgent,
                &office(),
                h,
                Timer::Update,
                at(now),
            )
        };
        assert_eq!(
            update(&history, "2026-03-03T09:00"),
            Due::Met(at("2026-03-03T08:30"))
        );
        history.customer_messages.push(at("2026-03-03T11:00"));
        assert_eq!(
            update(&history, "2026-03-03T12:00"),
            Due::Running(at("2026-03-03T13:00"))
        );
        assert_eq!(
            update(&history, "2026-03-03T13:01"),
            Due::Breached(at("2026-03-03T13:00"))
        );
    }

    #[test]
    fn each_breach_is_reported_once() {
        let history = History::opened(at("2026-03-03T08:00"));
        let now = at("2026-03-04T12:00");
        let first = new_breaches(&policy(), Priority::Urgent, &office(), &history, &[], now);
        // The unanswered opening is one missed reply: the first response
        // breaches, not the update timer as well.
        assert_eq!(first, vec![Timer::FirstResponse, Timer::Resolution]);
        let again = new_breaches(
            &policy(),
            Priority::Urgent,
            &office(),
            &history,
            &first,
            now,
        );
        assert!(again.is_empty());
        // Nothing breached yet early on.
        assert!(new_breaches(
            &policy(),
            Priority::Urgent,
            &office(),
            &history,
            &[],
            at("2026-03-03T08:30")
        )
        .is_empty());
    }

    #[test]
    fn names_round_trip() {
        for p in Priority::ALL {
            assert_eq!(Priority::parse(p.as_str()), Some(p));
        }
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Priority::parse("asap"), None);
        assert!(!Status::PendingCustomer.clock_runs());
        assert!(Status::PendingStaff.clock_runs());
    }
}
