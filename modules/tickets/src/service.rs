//! The desk's operations over the record store: open a ticket, write into
//! its thread, change it, list the queues. Routes, pages, the inbound
//! e-mail endpoint and the escalation job all go through here, so the
//! rules, events and notifications are the same whichever way a change
//! comes in.

use kontor_sdk::crm;
use kontor_sdk::records::{self, Batch, Record};
use kontor_sdk::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::notifications;
use crate::sla::{Priority, Status, Timer};
use crate::store::{self, Message, Rules, MESSAGES, TICKETS};
use crate::ticket::{Refusal, Ticket};
use crate::who::Who;

/// Longest subject, in characters.
pub const MAX_SUBJECT: usize = 200;
/// Longest message body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Attempts at a write that lost a race with another writer of the ticket.
const RETRIES: usize = 5;

/// Now, on the host's clock (tests move it).
pub fn now() -> i64 {
    kontor_sdk::time::now_ms()
}

/// A new ticket as a route or the inbound endpoint sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// One line.
    pub subject: String,
    /// The first message.
    pub body: String,
    /// The customer (staff only; a portal user opens for themselves).
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Department slug; default: the `default_department` setting.
    #[serde(default)]
    pub department_id: Option<String>,
    /// `low`, `normal` (default), `high`, `urgent`.
    #[serde(default)]
    pub priority: Option<String>,
    /// A service the ticket concerns (an id other modules understand).
    #[serde(default)]
    pub service_ref: Option<String>,
    /// Free tags (staff only).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Assign to this staff user instead of the department's rule (staff only).
    #[serde(default)]
    pub assignee_id: Option<String>,
}

/// A route's answer to a refusal of the ticket rules.
fn refused(r: Refusal) -> Error {
    match r {
        Refusal::NotFound => Error::not_found("no such ticket"),
        Refusal::NotAllowed(m) => Error::new(409, "not_allowed", m),
    }
}

/// Check a subject and a body; `Err` names the field.
fn check_text(subject: Option<&str>, body: &str) -> Result<(), Error> {
    if let Some(s) = subject {
        if s.trim().is_empty() {
            return Err(Error::invalid("subject", "a ticket needs a subject"));
        }
        if s.chars().count() > MAX_SUBJECT || s.contains(['\r', '\n']) {
            return Err(Error::invalid(
                "subject",
                format!("one line of at most {MAX_SUBJECT} characters"),
            ));
        }
    }
    if body.trim().is_empty() {
        return Err(Error::invalid("body", "the message is empty"));
    }
    if body.len() > MAX_BODY {
        return Err(Error::invalid(
            "body",
            format!("at most {MAX_BODY} bytes; attachments are not supported yet"),
        ));
    }
    Ok(())
}

fn parse_priority(p: Option<&str>) -> Result<Priority, Error> {
    match p {
        None => Ok(Priority::Normal),
        Some(p) => Priority::parse(p).ok_or_else(|| {
            Error::invalid("priority", "one of low, normal, high, urgent".to_string())
        }),
    }
}

/// Check that `id` is an active staff user of the tenant (an assignee).
pub fn check_assignee(id: &str) -> Result<(), Error> {
    let users = crm::users()?;
    match users.iter().find(|u| u.id == id) {
        Some(u) if u.active && matches!(u.role.as_str(), "owner" | "admin" | "staff") => Ok(()),
        Some(_) => Err(Error::invalid(
            "assignee_id",
            "only active staff users can be assigned",
        )),
        None => Err(Error::invalid("assignee_id", format!("no user `{id}`"))),
    }
}

/// Open a ticket. The number is taken last, after everything is checked,
/// so a refused ticket leaves no gap in the sequence.
/// `via_email` is the Message-ID of the e-mail the ticket came in as.
pub fn open(
    who: &Who,
    new: NewTicket,
    via_email: Option<&str>,
) -> Result<(Ticket, Message), Error> {
    check_text(Some(&new.subject), &new.body)?;
    let priority = parse_priority(new.priority.as_deref())?;
    if !who.is_staff() && (new.assignee_id.is_some() || !new.tags.is_empty()) {
        return Err(Error::forbidden(
            "only staff set the assignee and tags of a new ticket",
        ));
    }
    let customer_id = match who {
        Who::Customer { customer_id, .. } | Who::Sender { customer_id, .. } => {
            if new.customer_id.as_ref().is_some_and(|c| c != customer_id) {
                return Err(Error::forbidden(
                    "a portal user opens tickets for their own customer only",
                ));
            }
            customer_id.clone()
        }
        Who::Staff { .. } => new
            .customer_id
            .clone()
            .ok_or_else(|| Error::invalid("customer_id", "which customer is the ticket for?"))?,
    };
    let customer = crm::customer(&customer_id)?
        .ok_or_else(|| Error::invalid("customer_id", format!("no customer `{customer_id}`")))?;
    let department_id = new.department_id.clone().unwrap_or_else(|| {
        kontor_sdk::settings::get_or("default_department", store::DEFAULT_DEPARTMENT.to_string())
    });
    let department = store::department(&department_id)?;
    let assignee = match &new.assignee_id {
        Some(a) => {
            check_assignee(a)?;
            Some(a.clone())
        }
        None => store::assign(&department_id)?,
    };
    let policy_id = store::policy_for(&customer.tags)?;
    let rules = Rules::load(&policy_id)?;

    let now = now();
    // The year as the desk sees it: a ticket opened at 00:30 on New
    // Year's Day in Zurich is of the new year.
    let year = jiff::Timestamp::from_millisecond(now)
        .map(|t| t.to_zoned(store::time_zone()).year())
        .unwrap_or(1970);
    let sequence = records::next_sequence(&format!("ticket-{year}"))?;
    let number = crate::desk::ticket_number(year, sequence);
    let mut ticket = Ticket {
        id: number.clone(),
        number,
        subject: new.subject.trim().to_string(),
        customer_id: customer.id.clone(),
        service_ref: new.service_ref.clone(),
        department_id: department_id.clone(),
        priority: priority.as_str().into(),
        status: Status::Open.as_str().into(),
        assignee_id: assignee,
        tags: new.tags.clone(),
        opened_at: now,
        status_changes: Vec::new(),
        staff_replies: Vec::new(),
        customer_messages: Vec::new(),
        breached: Vec::new(),
        policy_id,
        customer_name: customer.display_name.clone(),
        message_count: 1,
        updated_at: now,
        queue_assignee: None,
        queue_department: None,
        next_due_at: None,
        breached_open: None,
    };
    ticket.reindex(&rules.policy, &rules.hours, now);
    let mut message = Message {
        ticket_id: ticket.id.clone(),
        kind: "customer".into(),
        author_id: who.user_id().map(str::to_string),
        author_name: customer.display_name.clone(),
        body: new.body.clone(),
        at: now,
        email_message_id: via_email.map(str::to_string),
    };
    let message_key = store::message_id(&ticket.id, 1);
    Batch::new()
        .insert(&TICKETS, &ticket.id, &ticket)
        .insert(&MESSAGES, &message_key, &message)
        .commit()?;

    emit("ticket.opened", &ticket, json!({ "message": message_key }));
    timeline(
        &ticket,
        "ticket.opened",
        &format!("Ticket {} opened: {}", ticket.number, ticket.subject),
    );
    // The confirmation's Message-ID threads the customer's reply to it,
    // unless the ticket came in by e-mail (their own Message-ID does that).
    let sent = notifications::opened(&ticket, &department.data, &customer, &message);
    if message.email_message_id.is_none() {
        if let Some(id) = sent {
            message.email_message_id = Some(id);
            if let Err(e) = MESSAGES.put(&message_key, &message) {
                kontor_sdk::warn!(
                    "ticket {}: keeping the confirmation's Message-ID failed: {e}",
                    ticket.number
                );
            }
        }
    }
    Ok((ticket, message))
}

/// A ticket the caller may see; 404 otherwise (never 403: ids do not leak).
pub fn visible(who: Option<&Who>, id: &str) -> Result<Record<Ticket>, Error> {
    let record = TICKETS
        .get(id)?
        .ok_or_else(|| Error::not_found("no such ticket"))?;
    if let Some(w) = who {
        if !record.data.visible_to(&w.actor()) {
            return Err(Error::not_found("no such ticket"));
        }
    }
    Ok(record)
}

/// Run `change` on ticket `id` and store it with `extra` messages,
/// retrying when another writer got there first. `change` returns the
/// messages to add (each gets the next number of the thread).
fn write<R>(
    who: Option<&Who>,
    id: &str,
    mut change: impl FnMut(&mut Ticket, i64) -> Result<(Vec<Message>, R), Error>,
) -> Result<(Ticket, Vec<Message>, R), Error> {
    let mut last = None;
    for _ in 0..RETRIES {
        let record = visible(who, id)?;
        let mut ticket = record.data;
        let now = now();
        let (messages, extra) = change(&mut ticket, now)?;
        let rules = Rules::load(&ticket.policy_id)?;
        // A timer met late by this change is a breach too: taken here,
        // once, as the escalation job would.
        let breached = ticket.take_new_breaches(&rules.policy, &rules.hours, now);
        ticket.reindex(&rules.policy, &rules.hours, now);
        let mut batch = Batch::new();
        for m in &messages {
            ticket.message_count += 1;
            batch = batch.insert(
                &MESSAGES,
                &store::message_id(&ticket.id, ticket.message_count),
                m,
            );
        }
        match batch
            .update(&TICKETS, &ticket.id, record.version, &ticket)
            .commit()
        {
            Ok(_) => {
                announce_breaches(&ticket, &rules, &breached, now);
                return Ok((ticket, messages, extra));
            }
            Err(e @ records::Error::Conflict(_)) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::conflict(format!(
        "the ticket changed {RETRIES} times while this change was written; try again ({})",
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// A reply or note as a route sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// Plain text.
    pub body: String,
    /// An internal note (staff only), not shown to the customer.
    #[serde(default)]
    pub internal: bool,
    /// A status to set with the reply (staff: `pending_customer` after
    /// asking something).
    #[serde(default)]
    pub status: Option<String>,
}

/// Write a message into ticket `id`'s thread. `via_email` is the
/// Message-ID of the e-mail it came in as.
pub fn reply(
    who: &Who,
    id: &str,
    new: NewMessage,
    via_email: Option<&str>,
) -> Result<(Ticket, Message), Error> {
    check_text(None, &new.body)?;
    let to = match &new.status {
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| Error::invalid("status", format!("one of {}", status_names())))?,
        ),
        None => None,
    };
    let author_name = who.display_name();
    let kind = match (who.is_staff(), new.internal) {
        (true, true) => "note",
        (true, false) => "reply",
        (false, _) => "customer",
    };
    let (ticket, messages, before) = write(Some(who), id, |t, now| {
        let before = t.status.clone();
        t.record_message(&who.actor(), new.internal, now)
            .map_err(refused)?;
        if let Some(to) = to {
            t.set_status(&who.actor(), to, now).map_err(refused)?;
        }
        let message = Message {
            ticket_id: t.id.clone(),
            kind: kind.into(),
            author_id: who.user_id().map(str::to_string),
            author_name: author_name.clone(),
            body: new.body.clone(),
            at: now,
            email_message_id: via_email.map(str::to_string),
        };
        Ok((vec![message], before))
    })?;
    let message = messages.into_iter().next().expect("one message written");
    emit(
        "ticket.replied",
        &ticket,
        json!({
            "kind": message.kind,
            "author_id": message.author_id,
            "message": store::message_id(&ticket.id, ticket.message_count),
        }),
    );
    if ticket.status != before {
        status_changed(&ticket, &before, who);
    }
    // Its Message-ID lets an answer by e-mail find the ticket.
    let mut message = message;
    if let Some(sent) = notifications::replied(&ticket, &message) {
        if message.email_message_id.is_none() {
            message.email_message_id = Some(sent);
            let key = store::message_id(&ticket.id, ticket.message_count);
            if let Err(e) = MESSAGES.put(&key, &message) {
                kontor_sdk::warn!("ticket {}: keeping a Message-ID failed: {e}", ticket.number);
            }
        }
    }
    Ok((ticket, message))
}

/// A change to a ticket's fields (staff).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// New status.
    #[serde(default)]
    pub status: Option<String>,
    /// New priority: the SLA due times are measured anew with its targets.
    #[serde(default)]
    pub priority: Option<String>,
    /// New assignee; `null` unassigns.
    #[serde(default, deserialize_with = "some")]
    pub assignee_id: Option<Option<String>>,
    /// Move to this department.
    #[serde(default)]
    pub department_id: Option<String>,
    /// Replace the tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

/// `"x"` → `Some(Some(x))`, `null` → `Some(None)`; absent stays `None`.
fn some<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn status_names() -> String {
    Status::ALL.map(Status::as_str).join(", ")
}

/// Change ticket `id` as `who`. A customer may only close (or reopen a
/// resolved ticket); everything else is staff's.
pub fn change(who: &Who, id: &str, change: Change) -> Result<Ticket, Error> {
    let to = match &change.status {
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| Error::invalid("status", format!("one of {}", status_names())))?,
        ),
        None => None,
    };
    let priority = match &change.priority {
        Some(p) => Some(parse_priority(Some(p))?),
        None => None,
    };
    let staff_fields = priority.is_some()
        || change.assignee_id.is_some()
        || change.department_id.is_some()
        || change.tags.is_some();
    if staff_fields && !who.is_staff() {
        return Err(Error::forbidden(
            "only staff change a ticket's priority, assignee, department or tags",
        ));
    }
    if let Some(Some(a)) = &change.assignee_id {
        check_assignee(a)?;
    }
    if let Some(d) = &change.department_id {
        store::department(d)?;
    }
    let (ticket, _, before) = write(Some(who), id, |t, now| {
        let before = t.clone();
        if let Some(to) = to {
            t.set_status(&who.actor(), to, now).map_err(refused)?;
        }
        if t.status() == Status::Closed && before.status() == Status::Closed && staff_fields {
            return Err(refused(Refusal::NotAllowed(
                "the ticket is closed; open a new ticket instead".into(),
            )));
        }
        if let Some(p) = priority {
            t.priority = p.as_str().into();
        }
        if let Some(a) = &change.assignee_id {
            t.assignee_id = a.clone();
        }
        if let Some(d) = &change.department_id {
            t.department_id = d.clone();
        }
        if let Some(tags) = &change.tags {
            t.tags = tags.clone();
        }
        Ok((Vec::new(), before))
    })?;
    if ticket.status != before.status {
        status_changed(&ticket, &before.status, who);
    }
    if ticket.assignee_id != before.assignee_id {
        if let Some(a) = &ticket.assignee_id {
            notifications::assigned(&ticket, a);
        }
    }
    Ok(ticket)
}

/// Events, a timeline entry and — when staff made it — the customer's
/// e-mail for a status change.
fn status_changed(ticket: &Ticket, from: &str, by: &Who) {
    emit("ticket.status_changed", ticket, json!({ "from": from }));
    if ticket.status() == Status::Closed {
        emit("ticket.closed", ticket, json!({}));
        timeline(
            ticket,
            "ticket.closed",
            &format!("Ticket {} closed: {}", ticket.number, ticket.subject),
        );
    }
    if by.is_staff() {
        notifications::status_changed(ticket);
    }
}

/// Record breaches of ticket `id` found at the current time: each timer's
/// breach is taken once (a version-checked write), then announced. Returns
/// the timers newly breached.
pub fn escalate(id: &str) -> Result<Vec<Timer>, Error> {
    let record = visible(None, id)?;
    let mut ticket = record.data;
    let rules = Rules::load(&ticket.policy_id)?;
    let now = now();
    let breached = ticket.take_new_breaches(&rules.policy, &rules.hours, now);
    ticket.reindex(&rules.policy, &rules.hours, now);
    // Written even with nothing new, so a ticket whose due time passed
    // without a breach (a timer met meanwhile) gets its next due time.
    match TICKETS.update(id, record.version, &ticket) {
        Ok(_) => {}
        // Changed meanwhile: the next run looks again.
        Err(records::Error::Conflict(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    }
    announce_breaches(&ticket, &rules, &breached, now);
    Ok(breached)
}

/// Announce breaches just recorded on `ticket`: the event, a timeline
/// entry on the customer and the staff's e-mail, once per breach.
fn announce_breaches(ticket: &Ticket, rules: &Rules, breached: &[Timer], now: i64) {
    if breached.is_empty() {
        return;
    }
    let dues = ticket.dues(&rules.policy, &rules.hours, now);
    for timer in breached {
        let due_at = dues
            .iter()
            .find(|(t, _)| t == timer)
            .and_then(|(_, d)| d.due_at())
            .map(|d| d.as_millisecond());
        emit(
            "sla.breached",
            ticket,
            json!({ "timer": timer.as_str(), "due_at": due_at }),
        );
        timeline(
            ticket,
            "sla.breached",
            &format!(
                "Ticket {}: the {} target was missed",
                ticket.number,
                crate::notifications::timer_label(*timer)
            ),
        );
        notifications::breached(ticket, *timer, due_at);
    }
}

/// The public facts of a ticket for events.
pub fn facts(ticket: &Ticket) -> Value {
    json!({
        "id": ticket.id,
        "number": ticket.number,
        "subject": ticket.subject,
        "customer_id": ticket.customer_id,
        "department_id": ticket.department_id,
        "priority": ticket.priority,
        "status": ticket.status,
        "assignee_id": ticket.assignee_id,
        "service_ref": ticket.service_ref,
    })
}

/// Emit `tickets.{name}`; a failure is logged, the change stands.
fn emit(name: &str, ticket: &Ticket, extra: Value) {
    let mut payload = facts(ticket);
    if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    if let Err(e) = kontor_sdk::events::emit(name, &payload) {
        kontor_sdk::warn!("ticket {}: emitting {name} failed: {e}", ticket.number);
    }
}

/// An entry on the customer's timeline; a failure is logged.
fn timeline(ticket: &Ticket, kind: &str, summary: &str) {
    if let Err(e) = crm::add_timeline_entry(&ticket.customer_id, kind, summary, &facts(ticket)) {
        kontor_sdk::warn!("ticket {}: timeline entry failed: {e}", ticket.number);
    }
}

/// The thread of `ticket` as `who` may read it (customers never see notes).
pub fn thread(who: Option<&Who>, ticket: &Ticket) -> Result<Vec<Message>, Error> {
    let all = MESSAGES
        .query()
        .eq("ticket_id", &ticket.id)
        .limit(500)
        .all()?;
    Ok(all
        .into_iter()
        .map(|r| r.data)
        .filter(|m| who.is_none_or(Who::is_staff) || m.is_public())
        .collect())
}

/// Which tickets a list shows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    /// `mine`, `unassigned`, `breached`, `department`, `due_today` or `all`
    /// (default; customers: their own).
    #[serde(default)]
    pub queue: Option<String>,
    /// The department of `queue=department`.
    #[serde(default)]
    pub department: Option<String>,
    /// Only this customer's tickets (staff).
    #[serde(default)]
    pub customer: Option<String>,
    /// Only this status.
    #[serde(default)]
    pub status: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// The queue names.
pub const QUEUES: [&str; 6] = [
    "all",
    "mine",
    "unassigned",
    "breached",
    "department",
    "due_today",
];

/// One page of tickets, newest first (due-today: soonest due first).
pub fn list(who: &Who, q: &ListQuery) -> Result<(Vec<Record<Ticket>>, Option<String>), Error> {
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let mut query = TICKETS.query().limit(limit).descending();
    if let Who::Customer { customer_id, .. } = who {
        query = query.eq("customer_id", customer_id);
    } else if let Some(c) = &q.customer {
        query = query.eq("customer_id", c);
    }
    match q.queue.as_deref().unwrap_or("all") {
        "all" => {}
        _ if !who.is_staff() => {
            return Err(Error::invalid("queue", "customers see their own tickets"))
        }
        "mine" => query = query.eq("queue_assignee", who.user_id().unwrap_or_default()),
        "unassigned" => query = query.eq("queue_assignee", crate::ticket::NOBODY),
        "breached" => query = query.eq("breached_open", &1),
        "department" => {
            let d = q
                .department
                .as_deref()
                .ok_or_else(|| Error::invalid("department", "which department?"))?;
            query = query.eq("queue_department", d);
        }
        "due_today" => {
            // Soonest due first (ordering by the due time, not the id).
            let end = end_of_today()?;
            let mut due = TICKETS
                .query()
                .limit(limit)
                .lte("next_due_at", &end)
                .order_by("next_due_at");
            if let Some(c) = &q.customer {
                due = due.eq("customer_id", c);
            }
            query = due;
        }
        other => {
            return Err(Error::invalid(
                "queue",
                format!("`{other}` is not one of {}", QUEUES.join(", ")),
            ))
        }
    }
    if let Some(s) = &q.status {
        if Status::parse(s).is_none() {
            return Err(Error::invalid(
                "status",
                format!("one of {}", status_names()),
            ));
        }
        query = query.eq("status", s);
    }
    if let Some(c) = &q.cursor {
        query = query.after(c);
    }
    let page = query.fetch()?;
    Ok((page.records, page.next_cursor))
}

/// The end of the current day in the desk's time zone, Unix ms.
pub fn end_of_today() -> Result<i64, Error> {
    let zone = store::time_zone();
    let today = jiff::Timestamp::from_millisecond(now())
        .map_err(|e| Error::internal(e.to_string()))?
        .to_zoned(zone.clone())
        .date();
    let tomorrow = today
        .tomorrow()
        .map_err(|e| Error::internal(e.to_string()))?;
    let start = tomorrow
        .to_zoned(zone)
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok(start.timestamp().as_millisecond() - 1)
}

/// Count the records of `query` up to `cap` (the dashboard says "500+").
pub fn count(query: records::Query<Ticket>, cap: usize) -> Result<usize, Error> {
    let mut n = 0;
    let mut q = query.limit(500);
    loop {
        let page = q.fetch()?;
        n += page.records.len();
        match page.next_cursor {
            Some(c) if n < cap => q = q.after(&c),
            _ => return Ok(n),
        }
    }
}
