//! E-mail the desk sends through the `notify` capability, from the
//! templates in `module.toml`: the customer hears about their ticket being
//! opened, answered and its status changing; staff hear about new tickets,
//! customer replies, assignments and SLA breaches.
//!
//! Every message's subject carries the ticket number and answers the
//! ticket's first message (`In-Reply-To`), so mail clients thread them and
//! a reply finds its ticket again (see [`crate::inbound`]). A failed send
//! is logged; the change that caused it stands.

use kontor_sdk::crm::{self, Customer};
use kontor_sdk::notify::Email;
use serde_json::{json, Value};

use crate::sla::Timer;
use crate::store::{self, Department, Message, MESSAGES};
use crate::threading::subject_with_number;
use crate::ticket::Ticket;
use crate::who;

/// How a timer reads in a message.
pub fn timer_label(t: Timer) -> &'static str {
    match t {
        Timer::FirstResponse => "first response",
        Timer::Update => "update",
        Timer::Resolution => "resolution",
    }
}

/// How a status reads in a message.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "open" => "open",
        "pending_customer" => "waiting for your answer",
        "pending_staff" => "waiting for our team",
        "on_hold" => "on hold",
        "resolved" => "resolved",
        "closed" => "closed",
        _ => "changed",
    }
}

/// The variables every template gets.
fn base(ticket: &Ticket, department: Option<&Department>) -> Value {
    json!({
        "number": ticket.number,
        "subject": subject_with_number(&ticket.number, &ticket.subject),
        "title": ticket.subject,
        "customer_name": ticket.customer_name,
        "department": department.map_or("Support", |d| d.name.as_str()),
        "priority": ticket.priority,
        "status": ticket.status,
        "status_label": status_label(&ticket.status),
    })
}

fn with(mut data: Value, extra: Value) -> Value {
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    data
}

/// Send `template` to `to` (skipped when empty); the Message-ID, or none
/// when nothing was sent.
fn send(
    ticket: &Ticket,
    template: &str,
    to: &[String],
    data: &Value,
    department: Option<&Department>,
) -> Option<String> {
    if to.is_empty() {
        return None;
    }
    let mut email = Email::template(template).data(data);
    for address in to {
        email = email.to(address);
    }
    if let Some(reply_to) = department.and_then(|d| d.email.as_deref()) {
        email = email.reply_to(reply_to);
    }
    if let Some(first) = thread_root(ticket) {
        email = email.in_reply_to(&first);
    }
    match email.send() {
        Ok(id) => Some(id),
        Err(e) => {
            kontor_sdk::warn!("ticket {}: sending {template} failed: {e}", ticket.number);
            None
        }
    }
}

/// The Message-ID that starts the ticket's e-mail thread.
fn thread_root(ticket: &Ticket) -> Option<String> {
    MESSAGES
        .get(&store::message_id(&ticket.id, 1))
        .ok()
        .flatten()
        .and_then(|m| m.data.email_message_id)
}

fn customers_notified() -> bool {
    kontor_sdk::settings::get_or("notify_customers", true)
}

fn customer_address(ticket: &Ticket) -> Vec<String> {
    if !customers_notified() {
        return Vec::new();
    }
    crm::customer(&ticket.customer_id)
        .ok()
        .flatten()
        .and_then(|c| c.email)
        .into_iter()
        .collect()
}

/// The staff who should hear about a ticket: its assignee, else the
/// department's address.
fn staff_addresses(ticket: &Ticket, department: Option<&Department>) -> Vec<String> {
    if let Some(email) = ticket.assignee_id.as_deref().and_then(who::staff_email) {
        return vec![email];
    }
    department
        .and_then(|d| d.email.clone())
        .into_iter()
        .collect()
}

fn department_of(ticket: &Ticket) -> Option<Department> {
    store::DEPARTMENTS
        .get(&ticket.department_id)
        .ok()
        .flatten()
        .map(|d| d.data)
}

/// A new ticket: the customer's confirmation; its Message-ID is returned.
/// (The staff hear of it from [`staff_notice`], run on the module's own
/// event: a portal user's call may not read the staff's addresses.)
pub fn opened(
    ticket: &Ticket,
    department: &Department,
    customer: &Customer,
    message: &Message,
) -> Option<String> {
    let data = with(
        base(ticket, Some(department)),
        json!({ "body": message.body }),
    );
    let to: Vec<String> = if customers_notified() {
        customer.email.clone().into_iter().collect()
    } else {
        Vec::new()
    };
    send(ticket, "ticket_opened", &to, &data, Some(department))
}

/// A staff reply goes to the customer; returns the Message-ID of what was
/// sent. (A customer's message reaches the staff through [`staff_notice`].)
pub fn replied(ticket: &Ticket, message: &Message) -> Option<String> {
    if message.kind != "reply" {
        return None;
    }
    let department = department_of(ticket);
    let data = with(
        base(ticket, department.as_ref()),
        json!({ "body": message.body, "author": message.author_name }),
    );
    send(
        ticket,
        "ticket_reply",
        &customer_address(ticket),
        &data,
        department.as_ref(),
    )
}

/// The staff's notice of a new ticket (`ticket_new`) or of a customer's
/// message (`ticket_customer_reply`), to the assignee, else the
/// department's address. Runs on the module's own events, for the tenant:
/// the staff's addresses are not the portal user's to read.
pub fn staff_notice(ticket: &Ticket, message: &Message, new_ticket: bool) {
    let department = department_of(ticket);
    let data = with(
        base(ticket, department.as_ref()),
        json!({ "body": message.body, "author": message.author_name }),
    );
    let template = if new_ticket {
        "ticket_new"
    } else {
        "ticket_customer_reply"
    };
    let to = staff_addresses(ticket, department.as_ref());
    send(ticket, template, &to, &data, department.as_ref());
}

/// The ticket's status changed: the customer hears of it.
pub fn status_changed(ticket: &Ticket) {
    let department = department_of(ticket);
    let data = base(ticket, department.as_ref());
    send(
        ticket,
        "ticket_status",
        &customer_address(ticket),
        &data,
        department.as_ref(),
    );
}

/// The ticket was assigned to `user_id`.
pub fn assigned(ticket: &Ticket, user_id: &str) {
    let department = department_of(ticket);
    let to: Vec<String> = who::staff_email(user_id).into_iter().collect();
    send(
        ticket,
        "ticket_assigned",
        &to,
        &base(ticket, department.as_ref()),
        department.as_ref(),
    );
}

/// A timer was breached: the assignee and the department hear of it.
pub fn breached(ticket: &Ticket, timer: Timer, due_at: Option<i64>) {
    let department = department_of(ticket);
    let mut to: Vec<String> = ticket
        .assignee_id
        .as_deref()
        .and_then(who::staff_email)
        .into_iter()
        .collect();
    if let Some(d) = department.as_ref().and_then(|d| d.email.clone()) {
        if !to.contains(&d) {
            to.push(d);
        }
    }
    let due = due_at
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let data = with(
        base(ticket, department.as_ref()),
        json!({ "timer": timer_label(timer), "due_at": due }),
    );
    send(ticket, "sla_breached", &to, &data, department.as_ref());
}
