//! The smallest real Kontor module.
//!
//! * `GET /api/v1/hello/greeting?name=Ada` → `{"greeting": "Hello, Ada"}`;
//! * `POST /api/v1/hello/greeting` with `{"name": "Ada"}` → the same (a
//!   route that is not GET, as writes are);
//! * `GET /api/v1/hello/seen` → the customers it saw being created;
//! * a page at `/app/hello/`;
//! * on `customer.created` it stores the customer's name in its `seen` collection;
//! * the `customer.before_save` filter refuses a company called "Forbidden";
//! * UI hooks: a dashboard card (`dashboard.widgets`) and a tab on every
//!   customer's page (`customer.tabs`) that opens its page for that customer;
//! * the `tick` job counts its runs in a record.
//!
//! Written with the public SDK only: each `Module` method below lists the
//! handlers for one section of `module.toml`.

use kontor_sdk::records::Collection;
use kontor_sdk::{
    escape_html, Error, Event, Events, Filter, Filters, Jobs, Json, Module, Page, Pages, Request,
    Router, Verdict,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

struct Hello;

/// A customer the module saw being created; the record id is the customer id.
#[derive(Serialize, Deserialize)]
struct Seen {
    customer_id: String,
    name: String,
    event_id: String,
}

/// The `tick` job's counter: a record of its own (`_ticks`) in `seen`.
#[derive(Serialize, Deserialize)]
struct Ticks {
    name: String,
    ticks: u64,
}

const SEEN: Collection<Seen> = Collection::new("seen");
const TICKS: Collection<Ticks> = Collection::new("seen");
/// Every record of `seen` as it is stored, customers and the counter alike.
const SEEN_RECORDS: Collection<Value> = Collection::new("seen");

/// The `seen` records (at most 100, by name).
fn seen_records() -> Result<Vec<Value>, kontor_sdk::records::Error> {
    let page = SEEN_RECORDS.query().order_by("name").limit(100).fetch()?;
    Ok(page.records.into_iter().map(|r| r.data).collect())
}

/// The tenant's greeting word (the `greeting` setting).
fn greeting_word() -> String {
    kontor_sdk::settings::get_or("greeting", "Hello".to_string())
}

/// `{"greeting": "Hello, <name>"}`, with the tenant's greeting word.
fn greeting(name: &str) -> Json<Value> {
    Json(json!({ "greeting": format!("{}, {name}", greeting_word()) }))
}

fn get_greeting(req: Request) -> Json<Value> {
    greeting(&req.query("name").unwrap_or_else(|| "world".into()))
}

/// Lenient on purpose: a body without a name greets the world.
fn post_greeting(req: Request) -> Json<Value> {
    let body: Value = req.json().unwrap_or(Value::Null);
    greeting(body["name"].as_str().unwrap_or("world"))
}

fn list_seen(_req: Request) -> Result<Json<Value>, Error> {
    let items = seen_records().map_err(|e| Error::new(500, "records_failed", e.to_string()))?;
    Ok(Json(json!({ "items": items })))
}

fn index(req: Request) -> Result<Page, Error> {
    let name = req.user_id().unwrap_or("guest");
    // Opened from the tab it adds to a customer's page.
    let about = match req.query("customer") {
        Some(id) => {
            let text = if SEEN_RECORDS.get(&id)?.is_some() {
                "The hello module greeted this customer when they were created."
            } else {
                "The hello module has not seen this customer being created."
            };
            format!("<p class=\"hello-customer\">{text}</p>")
        }
        None => String::new(),
    };
    Ok(Page::new(
        "Hello",
        format!(
            "<section class=\"hello\"><h2>{}, {}</h2><p>This page comes from the hello module.</p>{about}</section>",
            escape_html(&greeting_word()),
            escape_html(name)
        ),
    ))
}

/// The part of a `customer.created` payload the module reads.
#[derive(Deserialize)]
struct NewCustomer {
    id: Option<String>,
    display_name: Option<String>,
}

fn customer_created(event: Event) -> Result<(), Error> {
    let customer: NewCustomer = event.json()?;
    let id = customer
        .id
        .ok_or_else(|| Error::bad_request("event without customer id"))?;
    // The customer id is the record id: a redelivered event writes the
    // same record again instead of a second one.
    let seen = Seen {
        customer_id: id.clone(),
        name: customer.display_name.unwrap_or_default(),
        event_id: event.id,
    };
    SEEN.put(&id, &seen)?;
    kontor_sdk::info!("saw customer {id}");
    Ok(())
}

fn before_save(filter: Filter) -> Result<Verdict, Error> {
    let customer: Value = filter.json().unwrap_or(Value::Null);
    if customer["company"].as_str() == Some("Forbidden") {
        return Ok(Verdict::reject(
            "The hello module does not allow this company name.",
        ));
    }
    Ok(Verdict::Pass)
}

/// A UI hook's payload with `entry` appended to its `list`.
fn push(filter: &Filter, list: &str, entry: Value) -> Result<Verdict, Error> {
    let mut payload: Value = filter.json().unwrap_or(Value::Null);
    match payload.get_mut(list).and_then(Value::as_array_mut) {
        Some(items) => {
            items.push(entry);
            Verdict::modify(&payload)
        }
        None => Ok(Verdict::Pass),
    }
}

fn dashboard_widget(filter: Filter) -> Result<Verdict, Error> {
    let greeted = seen_records()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["customer_id"].is_string())
        .count();
    let widget = json!({
        "title": "Hello",
        "text": format!("{greeted} new customers greeted"),
        "href": "/app/hello/",
    });
    push(&filter, "widgets", widget)
}

fn customer_tab(filter: Filter) -> Result<Verdict, Error> {
    let payload: Value = filter.json().unwrap_or(Value::Null);
    let id = payload["customer_id"].as_str().unwrap_or_default();
    let tab = json!({ "label": "Hello", "href": format!("/app/hello/?customer={id}") });
    push(&filter, "tabs", tab)
}

fn tick() -> Result<(), Error> {
    TICKS.modify("_ticks", |current| Ticks {
        name: "_ticks".into(),
        ticks: current.map_or(0, |t| t.ticks) + 1,
    })?;
    Ok(())
}

impl Module for Hello {
    fn routes() -> Router {
        Router::new()
            .get("/greeting", get_greeting)
            .post("/greeting", post_greeting)
            .get("/seen", list_seen)
    }

    fn pages() -> Pages {
        Pages::new().page("/", index)
    }

    fn events() -> Events {
        Events::new().on("customer.created", customer_created)
    }

    fn filters() -> Filters {
        Filters::new()
            .hook("customer.before_save", before_save)
            .hook("dashboard.widgets", dashboard_widget)
            .hook("customer.tabs", customer_tab)
    }

    fn jobs() -> Jobs {
        Jobs::new().job("tick", tick)
    }
}

kontor_sdk::module!(Hello);
