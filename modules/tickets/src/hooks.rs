//! What the module does without a request: the escalation job, the GDPR
//! handling of deleted and erased customers, and what it adds to the
//! core's pages (a tab on each customer, a dashboard card).

use kontor_sdk::{Error, Event, Filter, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::service;
use crate::sla::Status;
use crate::store::{MESSAGES, TICKETS};

/// Tickets looked at per escalation run at most: a run must end well
/// inside the host's deadline; what is left waits a minute.
const ESCALATION_BATCH: usize = 1000;

/// The `escalate` job (every minute): every active ticket whose next due
/// time has passed is checked, and each newly breached timer recorded
/// once, announced by e-mail, the `tickets.sla.breached` event and an
/// entry on the customer's timeline.
pub fn escalate() -> Result<(), Error> {
    let now = service::now();
    let query = TICKETS
        .query()
        .lte("next_due_at", &now)
        .order_by("next_due_at")
        .limit(100);
    let mut page = query.fetch()?;
    let mut seen = 0;
    let mut breaches = 0;
    loop {
        for r in &page.records {
            breaches += service::escalate(&r.id)?.len();
        }
        seen += page.records.len();
        match page.next_cursor.take() {
            Some(c) if seen < ESCALATION_BATCH => page = query.clone().after(&c).fetch()?,
            _ => break,
        }
    }
    if breaches > 0 {
        kontor_sdk::info!("escalation: {breaches} SLA breaches in {seen} tickets due");
    }
    Ok(())
}

/// The part of the module's own ticket events the staff notice reads.
#[derive(Deserialize)]
struct TicketEvent {
    id: String,
    message: String,
    #[serde(default)]
    kind: Option<String>,
}

/// `tickets.ticket.opened` and `tickets.ticket.replied` (a customer's
/// message): tell the staff. Handled on the module's own events because
/// they run for the tenant, which may read the staff's addresses, while
/// the call that opened the ticket may be a portal user's.
pub fn notify_staff(event: Event) -> Result<(), Error> {
    let e: TicketEvent = event.json()?;
    let new_ticket = event.name == "tickets.ticket.opened";
    if !new_ticket && e.kind.as_deref() != Some("customer") {
        return Ok(());
    }
    let (Some(ticket), Some(message)) = (TICKETS.get(&e.id)?, MESSAGES.get(&e.message)?) else {
        // Erased meanwhile: nothing to tell.
        return Ok(());
    };
    crate::notifications::staff_notice(&ticket.data, &message.data, new_ticket);
    Ok(())
}

#[derive(Deserialize)]
struct CustomerGone {
    id: String,
}

/// `customer.deleted` and `customer.erased`: the customer's tickets keep
/// their numbers and times (the desk's statistics), but lose everything
/// personal — subject, messages, names, e-mail ids. A deleted customer's
/// active tickets are closed. Safe to receive twice.
pub fn forget_customer(event: Event) -> Result<(), Error> {
    let gone: CustomerGone = event.json()?;
    let deleted = event.name == "customer.deleted";
    let tickets = TICKETS
        .query()
        .eq("customer_id", &gone.id)
        .limit(200)
        .all()?;
    for t in tickets {
        let rules = crate::store::Rules::load(&t.data.policy_id)?;
        TICKETS.modify(&t.id, |current| {
            let mut ticket = current.unwrap_or_else(|| t.data.clone());
            ticket.subject = "(erased)".into();
            ticket.customer_name = "Erased customer".into();
            ticket.tags.clear();
            ticket.service_ref = None;
            let now = service::now();
            if deleted && ticket.status() != Status::Closed {
                ticket.status = Status::Closed.as_str().into();
                ticket.status_changes.push((now, ticket.status.clone()));
            }
            ticket.reindex(&rules.policy, &rules.hours, now);
            ticket
        })?;
        for m in MESSAGES.query().eq("ticket_id", &t.id).limit(500).all()? {
            let mut message = m.data;
            message.body = "(erased)".into();
            message.author_name = "Erased".into();
            message.email_message_id = None;
            MESSAGES.put(&m.id, &message)?;
        }
    }
    Ok(())
}

/// A UI hook's payload with `entry` added to its `list`.
fn push(filter: &Filter, list: &str, entry: Value) -> Result<Verdict, Error> {
    let mut payload: Value = filter.json()?;
    match payload.get_mut(list).and_then(Value::as_array_mut) {
        Some(items) => {
            items.push(entry);
            Verdict::modify(&payload)
        }
        None => Ok(Verdict::Pass),
    }
}

/// `customer.tabs`: the customer's tickets.
pub fn customer_tab(filter: Filter) -> Result<Verdict, Error> {
    let payload: Value = filter.json()?;
    let id = payload["customer_id"].as_str().unwrap_or_default();
    let tab = json!({
        "label": "Tickets",
        "href": format!("/app/tickets/?customer={}", form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()),
    });
    push(&filter, "tabs", tab)
}

/// Counts shown on the dashboard stop here ("1000+").
const COUNT_CAP: usize = 1000;

fn counted(n: usize) -> String {
    if n >= COUNT_CAP {
        format!("{COUNT_CAP}+")
    } else {
        n.to_string()
    }
}

/// `dashboard.widgets`: open, breached and due-today tickets.
pub fn dashboard_widget(filter: Filter) -> Result<Verdict, Error> {
    let open = service::count(TICKETS.query().gte("queue_department", ""), COUNT_CAP)?;
    let breached = service::count(TICKETS.query().eq("breached_open", &1), COUNT_CAP)?;
    let today = service::count(
        TICKETS
            .query()
            .lte("next_due_at", &service::end_of_today()?),
        COUNT_CAP,
    )?;
    let widget = json!({
        "title": "Tickets",
        "text": format!("{} open · {} breached · {} due today", counted(open), counted(breached), counted(today)),
        "href": "/app/tickets/?queue=all",
    });
    push(&filter, "widgets", widget)
}
