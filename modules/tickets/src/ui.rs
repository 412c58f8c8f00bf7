//! The module's pages inside the core layout (`/app/tickets/...`) and the
//! HTML fragments its htmx forms swap in.
//!
//! * `/` — the staff queues (mine, unassigned, breached, due today, all,
//!   by department, or one customer's), refreshed every 15 seconds;
//! * `/ticket?id=` — a ticket for staff: SLA due times, the thread,
//!   reply or note (with canned responses), status, priority, assignee;
//! * `/new` — staff open a ticket for a customer;
//! * `/portal` and `/portal/ticket?id=` — the customer portal: their own
//!   tickets, a new one, replies, closing.
//!
//! Everything that came from a user goes through [`escape_html`].

use std::collections::BTreeMap;

use kontor_sdk::crm::{self, CustomerQuery};
use kontor_sdk::records::Record;
use kontor_sdk::{escape_html as e, Error, Page, Pages, Request};

use crate::api;
use crate::service::{self, QUEUES};
use crate::sla::{Priority, Status};
use crate::store::{self, Message};
use crate::ticket::Ticket;
use crate::who::Who;

const API: &str = "/api/v1/tickets";

/// A time as the desk reads it: `2026-03-02 17:00` in `zone`, the desk's
/// time zone ([`store::time_zone`], read once per page, not per row).
fn when(zone: &jiff::tz::TimeZone, ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

fn label(s: &str) -> String {
    let mut out = s.replace('_', " ");
    if let Some(first) = out.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    out
}

/// Staff user names by id (empty when the CRM does not list users).
fn staff_names() -> BTreeMap<String, String> {
    crm::users()
        .unwrap_or_default()
        .into_iter()
        .filter(|u| u.role != "customer")
        .map(|u| (u.id, u.name))
        .collect()
}

fn ticket_href(who: &Who, id: &str) -> String {
    let page = if who.is_staff() {
        "ticket"
    } else {
        "portal/ticket"
    };
    format!("/app/tickets/{page}?id={}", e(id))
}

fn status_badge(status: &str) -> String {
    let class = match status {
        "open" | "pending_staff" => "badge badge-warn",
        "resolved" | "closed" => "badge badge-ok",
        _ => "badge",
    };
    format!("<span class=\"{class}\">{}</span>", e(&label(status)))
}

/// The queue's table (also what its poll swaps in).
pub fn queue_table(who: &Who, records: &[Record<Ticket>]) -> String {
    if records.is_empty() {
        return "<p class=\"empty\">No tickets here.</p>".into();
    }
    let names = if who.is_staff() {
        staff_names()
    } else {
        BTreeMap::new()
    };
    let zone = store::time_zone();
    let mut rows = String::new();
    for r in records {
        let t = &r.data;
        let breached = if t.breached_open.is_some() {
            " <span class=\"badge badge-error\">SLA breached</span>"
        } else {
            ""
        };
        let due = t.next_due_at.map(|ms| when(&zone, ms)).unwrap_or_default();
        let staff_cols = if who.is_staff() {
            let assignee = t
                .assignee_id
                .as_ref()
                .map(|a| names.get(a).cloned().unwrap_or_else(|| a.clone()))
                .unwrap_or_else(|| "—".into());
            format!(
                "<td>{}</td><td>{}</td><td>{}</td>",
                e(&t.customer_name),
                e(&assignee),
                e(&label(&t.priority))
            )
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr data-ticket=\"{id}\"><td><a href=\"{href}\">{number}</a></td><td>{subject}{breached}</td>{staff_cols}<td>{status}</td><td>{due}</td></tr>",
            id = e(&t.id),
            href = ticket_href(who, &t.id),
            number = e(&t.number),
            subject = e(&t.subject),
            status = status_badge(&t.status),
        ));
    }
    let staff_heads = if who.is_staff() {
        "<th scope=\"col\">Customer</th><th scope=\"col\">Assignee</th><th scope=\"col\">Priority</th>"
    } else {
        ""
    };
    format!(
        "<div class=\"table-scroll\"><table class=\"table tickets\"><thead><tr><th scope=\"col\">Ticket</th><th scope=\"col\">Subject</th>{staff_heads}<th scope=\"col\">Status</th><th scope=\"col\">Next due</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

/// What a page shows instead when the caller may not use it.
fn not_for(who: &Who, staff_page: bool) -> Option<Page> {
    if who.is_staff() == staff_page {
        return None;
    }
    let (title, text) = if staff_page {
        ("Support", "The ticket queues are for the support team. Your tickets are in the <a href=\"/app/tickets/portal\">support portal</a>.")
    } else {
        ("Support portal", "The support portal is for customers. The team works tickets in the <a href=\"/app/tickets/\">queues</a>.")
    };
    Some(Page::new(title, format!("<p class=\"empty\">{text}</p>")))
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// `/`: the staff queues.
fn queues(req: Request) -> Result<Page, Error> {
    let who = Who::of(&req)?;
    if let Some(p) = not_for(&who, true) {
        return Ok(p);
    }
    let queue = req.query("queue").unwrap_or_else(|| {
        if req.query("customer").is_some() {
            "all".into()
        } else {
            "mine".into()
        }
    });
    let department = req.query("department");
    let customer = req.query("customer");
    let q = service::ListQuery {
        queue: Some(queue.clone()),
        department: department.clone(),
        customer: customer.clone(),
        ..service::ListQuery::default()
    };
    let (records, _) = service::list(&who, &q)?;
    let mut tabs = String::new();
    let mut tab = |href: String, text: &str, active: bool| {
        let current = if active {
            " aria-current=\"page\" class=\"active\""
        } else {
            ""
        };
        tabs.push_str(&format!(
            "<li><a href=\"{href}\"{current}>{}</a></li>",
            e(text)
        ));
    };
    for name in QUEUES.iter().filter(|q| **q != "department") {
        tab(
            format!("/app/tickets/?queue={name}"),
            &label(name),
            queue == *name && customer.is_none(),
        );
    }
    for d in store::DEPARTMENTS.query().limit(50).all()? {
        tab(
            format!("/app/tickets/?queue=department&department={}", e(&d.id)),
            &d.data.name,
            queue == "department" && department.as_deref() == Some(d.id.as_str()),
        );
    }
    let heading = match &customer {
        Some(c) => {
            let name = crm::customer(c)?
                .map(|c| c.display_name)
                .unwrap_or_else(|| c.clone());
            format!("Tickets of {}", e(&name))
        }
        None => "Tickets".into(),
    };
    let poll = format!(
        "{API}/tickets?{}",
        query_string(&[
            ("queue", Some(queue)),
            ("department", department),
            ("customer", customer.clone()),
        ])
    );
    let new_href = match &customer {
        Some(c) => format!("/app/tickets/new?customer={}", e(c)),
        None => "/app/tickets/new".into(),
    };
    Ok(Page::new(
        "Tickets",
        format!(
            "<div class=\"page-head\"><h1>{heading}</h1><a class=\"button button-primary\" href=\"{new_href}\">New ticket</a></div>\
             <nav class=\"tabs\" aria-label=\"Queues\"><ul>{tabs}</ul></nav>\
             <div id=\"queue\" class=\"card card-flush\" hx-get=\"{poll}\" hx-trigger=\"every 15s\" hx-swap=\"innerHTML\">{table}</div>",
            poll = e(&poll),
            table = queue_table(&who, &records),
        ),
    ))
}

fn options<'a>(items: impl IntoIterator<Item = (&'a str, String)>, selected: &str) -> String {
    items
        .into_iter()
        .map(|(value, text)| {
            let sel = if value == selected { " selected" } else { "" };
            format!("<option value=\"{}\"{sel}>{}</option>", e(value), e(&text))
        })
        .collect()
}

fn department_options(selected: &str) -> Result<String, Error> {
    store::department(store::DEFAULT_DEPARTMENT)?;
    let departments = store::DEPARTMENTS.query().limit(200).all()?;
    Ok(options(
        departments
            .iter()
            .map(|d| (d.id.as_str(), d.data.name.clone())),
        selected,
    ))
}

fn priority_options(selected: &str) -> String {
    options(
        Priority::ALL.map(|p| (p.as_str(), label(p.as_str()))),
        selected,
    )
}

/// The reply box (a canned response fills it through htmx).
pub fn reply_box(text: &str) -> String {
    format!(
        "<textarea id=\"reply-body\" name=\"body\" rows=\"6\" required maxlength=\"65536\">{}</textarea>",
        e(text)
    )
}

/// A canned response's text for `ticket`, its placeholders filled in.
pub fn fill_canned(text: &str, ticket: &Ticket, who: &Who) -> String {
    let customer = crm::customer(&ticket.customer_id).ok().flatten();
    let department = store::DEPARTMENTS
        .get(&ticket.department_id)
        .ok()
        .flatten()
        .map(|d| d.data.name)
        .unwrap_or_default();
    let values = BTreeMap::from([
        ("customer.name", ticket.customer_name.clone()),
        (
            "customer.email",
            customer.and_then(|c| c.email).unwrap_or_default(),
        ),
        ("ticket.number", ticket.number.clone()),
        ("ticket.subject", ticket.subject.clone()),
        ("agent.name", who.display_name()),
        ("department.name", department),
    ]);
    crate::canned::fill(text, &values)
}

fn sla_list(ticket: &Ticket, zone: &jiff::tz::TimeZone) -> Result<String, Error> {
    let sla = api::sla(ticket)?;
    let mut items = String::new();
    for (timer, v) in sla.as_object().into_iter().flatten() {
        let state = v["state"].as_str().unwrap_or("none");
        if state == "none" {
            continue;
        }
        let detail = match state {
            "paused" => format!("paused, {} working minutes left", v["left_minutes"]),
            "met" => format!("met at {}", when(zone, v["at"].as_i64().unwrap_or(0))),
            _ => format!(
                "{} — due {}",
                label(state),
                when(zone, v["due_at"].as_i64().unwrap_or(0))
            ),
        };
        let class = if matches!(state, "breached" | "met_late") {
            "badge badge-error"
        } else {
            "badge"
        };
        items.push_str(&format!(
            "<li data-timer=\"{timer}\"><span class=\"{class}\">{}</span> {}</li>",
            e(&label(timer)),
            e(&detail)
        ));
    }
    Ok(if items.is_empty() {
        String::new()
    } else {
        format!("<ul class=\"list sla\">{items}</ul>")
    })
}

fn thread_html(messages: &[Message], zone: &jiff::tz::TimeZone) -> String {
    let mut out = String::from("<ol class=\"timeline thread\">");
    for m in messages {
        let kind = match m.kind.as_str() {
            "note" => "Internal note",
            "reply" => "Reply",
            _ => "Message",
        };
        out.push_str(&format!(
            "<li class=\"message message-{k}\"><p class=\"small muted\">{kind} · {author} · {at}</p><div class=\"note-body\">{body}</div></li>",
            k = e(&m.kind),
            author = e(&m.author_name),
            at = when(zone, m.at),
            body = e(&m.body).replace('\n', "<br>"),
        ));
    }
    out.push_str("</ol>");
    out
}

/// The ticket as a page shows it, with its forms; what htmx swaps in
/// after a change (`#ticket`).
pub fn ticket_panel(who: &Who, ticket: &Ticket) -> Result<String, Error> {
    let messages = service::thread(Some(who), ticket)?;
    let zone = store::time_zone();
    let url = format!("{API}/tickets/{}", e(&ticket.id));
    let closed = ticket.status() == Status::Closed;
    let mut facts = format!(
        "<dl class=\"facts\"><dt>Status</dt><dd>{}</dd><dt>Priority</dt><dd>{}</dd><dt>Opened</dt><dd>{}</dd>",
        status_badge(&ticket.status),
        e(&label(&ticket.priority)),
        when(&zone, ticket.opened_at)
    );
    if who.is_staff() {
        facts.push_str(&format!(
            "<dt>Customer</dt><dd><a href=\"/customers/{}\">{}</a></dd>",
            e(&ticket.customer_id),
            e(&ticket.customer_name)
        ));
    }
    facts.push_str("</dl>");
    let mut forms = String::new();
    if !closed {
        let mut extra = String::new();
        if who.is_staff() {
            let canned = store::CANNED.query().limit(100).all()?;
            if !canned.is_empty() {
                extra.push_str("<details class=\"canned\"><summary>Canned responses</summary><ul class=\"list\">");
                for c in canned {
                    extra.push_str(&format!(
                        "<li><button type=\"button\" class=\"button button-quiet\" hx-get=\"{API}/canned/{}/render?ticket={}\" hx-target=\"#reply-body\" hx-swap=\"outerHTML\">{}</button></li>",
                        e(&c.id),
                        e(&ticket.id),
                        e(&c.data.title)
                    ));
                }
                extra.push_str("</ul></details>");
            }
            extra.push_str(&format!(
                "<label class=\"field\"><input type=\"checkbox\" name=\"internal\"> Internal note (the customer does not see it)</label>\
                 <label class=\"field\">Then set status <select name=\"status\"><option value=\"\">unchanged</option>{}</select></label>",
                options(
                    Status::ALL.map(|s| (s.as_str(), label(s.as_str()))),
                    ""
                )
            ));
        }
        forms.push_str(&format!(
            "<form class=\"form card\" hx-post=\"{url}/replies\" hx-target=\"#ticket\" hx-swap=\"outerHTML\">\
             <h2>Reply</h2>{extra}{box}\
             <div class=\"form-actions\"><button type=\"submit\" class=\"button button-primary\">Send</button></div></form>",
            box = reply_box("")
        ));
        if who.is_staff() {
            let names = staff_names();
            let assignee = ticket.assignee_id.clone().unwrap_or_default();
            let people = std::iter::once(("", "Nobody".to_string()))
                .chain(names.iter().map(|(id, n)| (id.as_str(), n.clone())));
            forms.push_str(&format!(
                "<form class=\"form form-compact card\" hx-patch=\"{url}\" hx-target=\"#ticket\" hx-swap=\"outerHTML\">\
                 <h2>Change</h2>\
                 <label class=\"field\">Status <select name=\"status\">{status}</select></label>\
                 <label class=\"field\">Priority <select name=\"priority\">{priority}</select></label>\
                 <label class=\"field\">Assignee <select name=\"assignee_id\">{people}</select></label>\
                 <label class=\"field\">Department <select name=\"department_id\">{departments}</select></label>\
                 <div class=\"form-actions\"><button type=\"submit\" class=\"button\">Save</button></div></form>",
                status = options(
                    Status::ALL.map(|s| (s.as_str(), label(s.as_str()))),
                    &ticket.status
                ),
                priority = priority_options(&ticket.priority),
                people = options(people, &assignee),
                departments = department_options(&ticket.department_id)?,
            ));
        } else {
            forms.push_str(&format!(
                "<form class=\"inline-form\" hx-post=\"{url}/close\" hx-target=\"#ticket\" hx-swap=\"outerHTML\">\
                 <button type=\"submit\" class=\"button\">Close this ticket</button></form>"
            ));
        }
    } else {
        forms.push_str(
            "<p class=\"muted\">This ticket is closed. Open a new ticket to write to us again.</p>",
        );
    }
    Ok(format!(
        "<div id=\"ticket\" data-status=\"{status}\"><div class=\"page-head\"><h1>{number} · {subject}</h1></div>\
         <div class=\"columns\"><div class=\"column\">{thread}{forms}</div>\
         <aside class=\"column\"><section class=\"card\">{facts}{sla}</section></aside></div></div>",
        status = e(&ticket.status),
        number = e(&ticket.number),
        subject = e(&ticket.subject),
        thread = thread_html(&messages, &zone),
        sla = sla_list(ticket, &zone)?,
    ))
}

/// The ticket panel with an error above it: htmx swaps only successful
/// answers, so a refused change comes back as a 200 that says why.
pub fn panel_with_error(who: &Who, id: &str, error: &Error) -> String {
    let alert = format!(
        "<div class=\"alert alert-error\" role=\"alert\">{}</div>",
        e(error.message())
    );
    match service::visible(Some(who), id).and_then(|t| ticket_panel(who, &t.data)) {
        Ok(panel) => panel.replacen(
            "<div class=\"page-head\">",
            &format!("{alert}<div class=\"page-head\">"),
            1,
        ),
        Err(_) => format!("<div id=\"ticket\">{alert}</div>"),
    }
}

fn ticket_page(req: Request, staff_page: bool) -> Result<Page, Error> {
    let who = Who::of(&req)?;
    if let Some(p) = not_for(&who, staff_page) {
        return Ok(p);
    }
    let id = req
        .query("id")
        .ok_or_else(|| Error::not_found("which ticket? (?id=T-...)"))?;
    let ticket = service::visible(Some(&who), &id)?.data;
    Ok(Page::new(
        format!("{} · {}", ticket.number, ticket.subject),
        ticket_panel(&who, &ticket)?,
    ))
}

/// What a page shows after opening a ticket.
pub fn opened_notice(who: &Who, ticket: &Ticket) -> String {
    format!(
        "<div class=\"alert alert-ok\" role=\"status\">Ticket <a href=\"{}\">{}</a> is open. We will answer soon.</div>",
        ticket_href(who, &ticket.id),
        e(&ticket.number)
    )
}

fn new_ticket_form(who: &Who, customer: Option<&str>) -> Result<String, Error> {
    let customer_field = if who.is_staff() {
        let customers = crm::customers(&CustomerQuery::all().limit(200))?;
        format!(
            "<label class=\"field\">Customer <select name=\"customer_id\" required>{}</select></label>",
            options(
                customers
                    .customers
                    .iter()
                    .map(|c| (c.id.as_str(), c.display_name.clone())),
                customer.unwrap_or_default()
            )
        )
    } else {
        String::new()
    };
    let default_department =
        kontor_sdk::settings::get_or("default_department", store::DEFAULT_DEPARTMENT.to_string());
    Ok(format!(
        "<div id=\"new-ticket\"><form class=\"form card\" hx-post=\"{API}/tickets\" hx-target=\"#new-ticket\" hx-swap=\"innerHTML\">\
         {customer_field}\
         <label class=\"field\">Subject <input name=\"subject\" required maxlength=\"{max}\"></label>\
         <label class=\"field\">Department <select name=\"department_id\">{departments}</select></label>\
         <label class=\"field\">Priority <select name=\"priority\">{priorities}</select></label>\
         <label class=\"field\">Message <textarea name=\"body\" rows=\"8\" required maxlength=\"65536\"></textarea></label>\
         <div class=\"form-actions\"><button type=\"submit\" class=\"button button-primary\">Open ticket</button></div></form></div>",
        max = service::MAX_SUBJECT,
        departments = department_options(&default_department)?,
        priorities = priority_options("normal"),
    ))
}

/// `/new`: staff open a ticket for a customer.
fn new_page(req: Request) -> Result<Page, Error> {
    let who = Who::of(&req)?;
    if let Some(p) = not_for(&who, true) {
        return Ok(p);
    }
    let form = new_ticket_form(&who, req.query("customer").as_deref())?;
    Ok(Page::new(
        "New ticket",
        format!("<div class=\"page-head\"><h1>New ticket</h1></div>{form}"),
    ))
}

/// `/portal`: a customer's tickets and a form for a new one.
fn portal(req: Request) -> Result<Page, Error> {
    let who = Who::of(&req)?;
    if let Some(p) = not_for(&who, false) {
        return Ok(p);
    }
    let (records, _) = service::list(&who, &service::ListQuery::default())?;
    Ok(Page::new(
        "Support",
        format!(
            "<div class=\"page-head\"><h1>Your tickets</h1></div>\
             <div id=\"queue\" class=\"card card-flush\" hx-get=\"{API}/tickets\" hx-trigger=\"every 30s\" hx-swap=\"innerHTML\">{table}</div>\
             <h2>Open a new ticket</h2>{form}",
            table = queue_table(&who, &records),
            form = new_ticket_form(&who, None)?,
        ),
    ))
}

/// Every page of the module.
pub fn pages() -> Pages {
    Pages::new()
        .page("/", queues)
        .page("/ticket", |req| ticket_page(req, true))
        .page("/new", new_page)
        .page("/portal", portal)
        .page("/portal/ticket", |req| ticket_page(req, false))
}
