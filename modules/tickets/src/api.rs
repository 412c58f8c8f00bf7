//! The module's API under `/api/v1/tickets` (JSON in and out), also
//! answering the htmx forms of its pages: a request with the `hx-request`
//! header may send its body form-encoded and gets back the HTML fragment
//! the page swaps in.

use kontor_sdk::records::Record;
use kontor_sdk::{Error, Html, IntoResponse, Json, Request, Response, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::service::{self, Change, ListQuery, NewMessage, NewTicket};
use crate::store::{self, CalendarRecord, Canned, Department, PolicyRecord};
use crate::ticket::Ticket;
use crate::ui;
use crate::who::Who;

/// Whether the request comes from htmx (a page's form or poll).
pub fn is_htmx(req: &Request) -> bool {
    req.header("hx-request").is_some()
}

/// The body as `T`: JSON, or a form (`application/x-www-form-urlencoded`)
/// where an empty field is `null` and a checkbox (`on`) is `true`.
pub fn body<T: DeserializeOwned>(req: &Request) -> Result<T, Error> {
    let form = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return req.json();
    }
    let mut map = Map::new();
    for (k, v) in form_urlencoded::parse(req.body()) {
        let value = match v.as_ref() {
            "" => Value::Null,
            "on" => Value::Bool(true),
            s => Value::String(s.to_string()),
        };
        map.insert(k.into_owned(), value);
    }
    // A form's empty optional fields mean "not given", except where null
    // has a meaning of its own (unassigning).
    map.retain(|k, v| !v.is_null() || k == "assignee_id");
    serde_json::from_value(Value::Object(map)).map_err(|e| {
        Error::new(
            422,
            "validation_failed",
            format!("the form does not fit: {e}"),
        )
    })
}

/// A ticket as the API shows it: the record and its SLA state now.
#[derive(Serialize)]
pub struct TicketOut<'a> {
    #[serde(flatten)]
    ticket: &'a Ticket,
    /// Per timer: `state` (`none`, `running`, `paused`, `met`, `met_late`,
    /// `breached`), `due_at` (Unix ms) and, while paused, `left_minutes`.
    sla: Value,
}

/// The SLA state of `ticket` at the current time.
pub fn sla(ticket: &Ticket) -> Result<Value, Error> {
    let rules = store::Rules::load(&ticket.policy_id)?;
    Ok(sla_under(ticket, &rules.policy, &rules.hours))
}

/// [`sla`] with the rules already loaded (a list loads them once).
fn sla_under(
    ticket: &Ticket,
    policy: &crate::sla::Policy,
    hours: &crate::calendar::BusinessHours,
) -> Value {
    use crate::sla::Due;
    let mut out = Map::new();
    for (timer, due) in ticket.dues(policy, hours, service::now()) {
        let ms = |t: jiff::Timestamp| t.as_millisecond();
        let v = match due {
            Due::None => json!({ "state": "none" }),
            Due::Met(at) => json!({ "state": "met", "at": ms(at) }),
            Due::MetLate(at, due) => {
                json!({ "state": "met_late", "at": ms(at), "due_at": ms(due) })
            }
            Due::Running(due) => json!({ "state": "running", "due_at": ms(due) }),
            Due::Paused(left) => json!({ "state": "paused", "left_minutes": left.as_mins() }),
            Due::Breached(due) => json!({ "state": "breached", "due_at": ms(due) }),
        };
        out.insert(timer.as_str().into(), v);
    }
    Value::Object(out)
}

/// `ticket` with its SLA state, for a JSON answer.
pub fn ticket_out(ticket: &Ticket) -> Result<Value, Error> {
    Ok(serde_json::to_value(TicketOut {
        ticket,
        sla: sla(ticket)?,
    })?)
}

/// The desk's own fields of a ticket, which a portal customer does not get
/// (who works it, tags, the SLA bookkeeping; a message count that would
/// tell internal notes exist).
const STAFF_FIELDS: [&str; 13] = [
    "assignee_id",
    "tags",
    "policy_id",
    "breached",
    "message_count",
    "status_changes",
    "staff_replies",
    "customer_messages",
    "queue_assignee",
    "queue_department",
    "next_due_at",
    "breached_open",
    "updated_at",
];

/// `out` as `who` may see it.
fn for_caller(who: &Who, mut out: Value) -> Value {
    if !who.is_staff() {
        if let Some(o) = out.as_object_mut() {
            for f in STAFF_FIELDS {
                o.remove(f);
            }
        }
    }
    out
}

fn list(req: Request) -> Result<Response, Error> {
    let who = Who::of(&req)?;
    let q: ListQuery = serde_urlencoded_query(&req)?;
    let (records, next) = service::list(&who, &q)?;
    if is_htmx(&req) {
        return Ok(Html(ui::queue_table(&who, &records)).into_response());
    }
    // The hours once and each policy once per page, not per ticket.
    let hours = store::hours()?;
    let mut policies = std::collections::BTreeMap::new();
    let mut items = Vec::with_capacity(records.len());
    for r in &records {
        let id = r.data.policy_id.clone();
        if !policies.contains_key(&id) {
            policies.insert(id.clone(), store::policy(&id)?);
        }
        let sla = sla_under(&r.data, &policies[&id], &hours);
        items.push(serde_json::to_value(TicketOut {
            ticket: &r.data,
            sla,
        })?);
    }
    Ok(Json(json!({ "items": items, "next_cursor": next })).into_response())
}

/// The query string as `T` (every value a string; numbers parsed).
fn serde_urlencoded_query<T: DeserializeOwned>(req: &Request) -> Result<T, Error> {
    let mut map = Map::new();
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        if v.is_empty() {
            continue;
        }
        let value = match v.parse::<u32>() {
            Ok(n) if k == "limit" => Value::from(n),
            _ => Value::String(v.into_owned()),
        };
        map.insert(k.into_owned(), value);
    }
    serde_json::from_value(Value::Object(map))
        .map_err(|e| Error::new(400, "bad_request", format!("query: {e}")))
}

fn open(req: Request) -> Result<Response, Error> {
    let who = Who::of(&req)?;
    let new: NewTicket = body(&req)?;
    let (ticket, _) = service::open(&who, new, None)?;
    if is_htmx(&req) {
        return Ok(Html(ui::opened_notice(&who, &ticket)).into_response());
    }
    Ok((201, Json(for_caller(&who, ticket_out(&ticket)?))).into_response())
}

fn show(req: Request) -> Result<Json<Value>, Error> {
    let who = Who::of(&req)?;
    let ticket = service::visible(Some(&who), req.require_param("id")?)?.data;
    let thread = service::thread(Some(&who), &ticket)?;
    let mut out = for_caller(&who, ticket_out(&ticket)?);
    out["messages"] = serde_json::to_value(thread)?;
    Ok(Json(out))
}

/// After a change from a page, the ticket panel again; else the ticket.
fn changed(req: &Request, who: &Who, ticket: &Ticket, status: u16) -> Result<Response, Error> {
    if is_htmx(req) {
        return Ok(Html(ui::ticket_panel(who, ticket)?).into_response());
    }
    Ok((status, Json(for_caller(who, ticket_out(ticket)?))).into_response())
}

/// A change to ticket `{id}` by `act`; a page's form gets the panel back,
/// with the refusal in it when there is one.
fn on_ticket(
    req: Request,
    status: u16,
    act: impl FnOnce(&Request, &Who, &str) -> Result<Ticket, Error>,
) -> Result<Response, Error> {
    let who = Who::of(&req)?;
    let id = req.require_param("id")?.to_string();
    match act(&req, &who, &id) {
        Ok(ticket) => changed(&req, &who, &ticket, status),
        Err(err) if is_htmx(&req) => {
            Ok(Html(ui::panel_with_error(&who, &id, &err)).into_response())
        }
        Err(err) => Err(err),
    }
}

fn patch(req: Request) -> Result<Response, Error> {
    on_ticket(req, 200, |req, who, id| {
        service::change(who, id, body(req)?)
    })
}

fn reply(req: Request) -> Result<Response, Error> {
    on_ticket(req, 201, |req, who, id| {
        let new: NewMessage = body(req)?;
        if new.internal && !who.is_staff() {
            return Err(Error::forbidden("customers cannot write internal notes"));
        }
        Ok(service::reply(who, id, new, None)?.0)
    })
}

fn close(req: Request) -> Result<Response, Error> {
    on_ticket(req, 200, |_, who, id| {
        let c = Change {
            status: Some("closed".into()),
            ..Change::default()
        };
        service::change(who, id, c)
    })
}

/// Only staff configure the desk (the manifest asks `tickets.manage`
/// already; a portal user granted it by mistake still may not).
fn staff(req: &Request) -> Result<Who, Error> {
    let who = Who::of(req)?;
    if !who.is_staff() {
        return Err(Error::forbidden("only staff configure the support desk"));
    }
    Ok(who)
}

fn items<T: Serialize>(records: Vec<Record<T>>) -> Json<Value> {
    let items: Vec<Value> = records
        .into_iter()
        .map(|r| {
            let mut v = serde_json::to_value(&r.data).unwrap_or(Value::Null);
            v["id"] = Value::String(r.id);
            v
        })
        .collect();
    Json(json!({ "items": items }))
}

/// A slug: lower-case letters, digits and `-`, 1 to 64.
fn check_slug(field: &str, id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            "lower-case letters, digits and `-`, at most 64",
        ))
    }
}

fn departments(_req: Request) -> Result<Json<Value>, Error> {
    // The default department exists once anyone looks.
    store::department(store::DEFAULT_DEPARTMENT)?;
    Ok(items(store::DEPARTMENTS.query().limit(200).all()?))
}

/// A department as an administrator sends it (`id` only on create).
#[derive(Deserialize)]
struct DepartmentIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(flatten)]
    department: Department,
}

fn save_department(
    req: &Request,
    id: &str,
    mut d: Department,
    create: bool,
) -> Result<Response, Error> {
    staff(req)?;
    check_slug("id", id)?;
    d.email = d.email.map(|e| e.trim().to_ascii_lowercase());
    d.validate()?;
    for m in d.members.iter().chain(&d.default_assignee) {
        service::check_assignee(m)
            .map_err(|_| Error::invalid("members", format!("`{m}` is not an active staff user")))?;
    }
    if let Some(email) = &d.email {
        let taken = store::DEPARTMENTS
            .query()
            .eq("email", email)
            .limit(2)
            .fetch()?;
        if taken.records.iter().any(|r| r.id != id) {
            return Err(Error::invalid(
                "email",
                format!("{email} belongs to another department"),
            ));
        }
    }
    let existing = store::DEPARTMENTS.get(id)?;
    if create && existing.is_some() {
        return Err(Error::conflict(format!("department `{id}` exists")));
    }
    if !create && existing.is_none() && id != store::DEFAULT_DEPARTMENT {
        return Err(Error::not_found(format!("no department `{id}`")));
    }
    // Round robin goes on where it was.
    d.last_assigned = existing.and_then(|e| e.data.last_assigned);
    store::DEPARTMENTS.put(id, &d)?;
    let mut out = serde_json::to_value(&d)?;
    out["id"] = id.into();
    Ok((if create { 201 } else { 200 }, Json(out)).into_response())
}

fn create_department(req: Request) -> Result<Response, Error> {
    let d: DepartmentIn = body(&req)?;
    let id =
        d.id.clone()
            .ok_or_else(|| Error::invalid("id", "a department needs an id (`billing`)"))?;
    save_department(&req, &id, d.department, true)
}

fn update_department(req: Request) -> Result<Response, Error> {
    let d: DepartmentIn = body(&req)?;
    let id = req.require_param("id")?.to_string();
    save_department(&req, &id, d.department, false)
}

fn canned_list(_req: Request) -> Result<Json<Value>, Error> {
    Ok(items(store::CANNED.query().limit(500).all()?))
}

fn canned_create(req: Request) -> Result<Response, Error> {
    staff(&req)?;
    let c: Canned = body(&req)?;
    c.validate()?;
    let id = format!("c{:06}", kontor_sdk::records::next_sequence("canned")?);
    store::CANNED.insert(&id, &c)?;
    let mut out = serde_json::to_value(&c)?;
    out["id"] = id.into();
    Ok((201, Json(out)).into_response())
}

fn canned_update(req: Request) -> Result<Json<Value>, Error> {
    staff(&req)?;
    let id = req.require_param("id")?;
    let c: Canned = body(&req)?;
    c.validate()?;
    if store::CANNED.get(id)?.is_none() {
        return Err(Error::not_found(format!("no canned response `{id}`")));
    }
    store::CANNED.put(id, &c)?;
    let mut out = serde_json::to_value(&c)?;
    out["id"] = id.into();
    Ok(Json(out))
}

fn canned_delete(req: Request) -> Result<Response, Error> {
    staff(&req)?;
    let id = req.require_param("id")?;
    if !store::CANNED.delete(id)? {
        return Err(Error::not_found(format!("no canned response `{id}`")));
    }
    Ok(Response::new(204))
}

/// `GET /canned/{id}/render?ticket=T-...`: the text with the ticket's
/// placeholders filled in; for htmx, the reply box holding it.
fn canned_render(req: Request) -> Result<Response, Error> {
    let who = staff(&req)?;
    let canned = store::CANNED
        .get(req.require_param("id")?)?
        .ok_or_else(|| Error::not_found("no such canned response"))?;
    let ticket_id = req
        .query("ticket")
        .ok_or_else(|| Error::invalid("ticket", "which ticket is the text for?"))?;
    let ticket = service::visible(Some(&who), &ticket_id)?.data;
    let text = ui::fill_canned(&canned.data.body, &ticket, &who);
    if is_htmx(&req) {
        return Ok(Html(ui::reply_box(&text)).into_response());
    }
    Ok(Json(json!({ "text": text })).into_response())
}

fn calendar(_req: Request) -> Result<Json<Value>, Error> {
    let c = store::CALENDAR
        .get("calendar")?
        .map(|r| r.data)
        .unwrap_or_else(store::default_calendar);
    Ok(Json(serde_json::to_value(c)?))
}

fn put_calendar(req: Request) -> Result<Json<Value>, Error> {
    staff(&req)?;
    let c: CalendarRecord = body(&req)?;
    c.hours()?;
    store::CALENDAR.put("calendar", &c)?;
    Ok(Json(serde_json::to_value(c)?))
}

fn policies(_req: Request) -> Result<Json<Value>, Error> {
    let mut records = store::POLICIES.query().limit(100).all()?;
    if !records.iter().any(|r| r.id == "default") {
        records.insert(
            0,
            Record {
                id: "default".into(),
                version: 0,
                data: store::default_policy(),
                created_at: 0,
                updated_at: 0,
            },
        );
    }
    Ok(items(records))
}

fn put_policy(req: Request) -> Result<Json<Value>, Error> {
    staff(&req)?;
    let id = req.require_param("id")?;
    check_slug("id", id)?;
    let p: PolicyRecord = body(&req)?;
    p.validate()?;
    if id == "default" && p.customer_tag.is_some() {
        return Err(Error::invalid(
            "customer_tag",
            "the default policy applies to every customer; give a tier policy its own id",
        ));
    }
    store::POLICIES.put(id, &p)?;
    let mut out = serde_json::to_value(&p)?;
    out["id"] = id.into();
    Ok(Json(out))
}

/// Every route of the module.
pub fn routes() -> Router {
    Router::new()
        .get("/tickets", list)
        .post("/tickets", open)
        .get("/tickets/{id}", show)
        .patch("/tickets/{id}", patch)
        .post("/tickets/{id}/replies", reply)
        .post("/tickets/{id}/close", close)
        .get("/departments", departments)
        .post("/departments", create_department)
        .put("/departments/{id}", update_department)
        .get("/canned", canned_list)
        .post("/canned", canned_create)
        .put("/canned/{id}", canned_update)
        .delete("/canned/{id}", canned_delete)
        .get("/canned/{id}/render", canned_render)
        .get("/calendar", calendar)
        .put("/calendar", put_calendar)
        .get("/policies", policies)
        .put("/policies/{id}", put_policy)
        .post("/inbound", crate::inbound::receive)
}
