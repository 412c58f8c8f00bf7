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

use kontor_sdk::records;
use kontor_sdk::{error, json, query_param, Event, FilterResult, HttpRequest, HttpResponse, Page};
use serde_json::{json, Value};

struct Hello;

/// The `seen` records (at most 100, by name): the customers the module saw
/// being created, and the `tick` job's counter.
fn seen_records() -> Result<Vec<Value>, String> {
    let query = records::QuerySpec {
        collection: "seen".into(),
        conditions: vec![],
        order_by: Some("name".into()),
        descending: false,
        limit: 100,
        cursor: None,
    };
    let page = records::query(&query).map_err(|e| format!("{e:?}"))?;
    Ok(page
        .records
        .iter()
        .filter_map(|r| serde_json::from_str(&r.data).ok())
        .collect())
}

/// A UI hook's payload with `entry` appended to its `list`.
fn push(payload: &mut Value, list: &str, entry: Value) -> FilterResult {
    match payload.get_mut(list).and_then(Value::as_array_mut) {
        Some(items) => {
            items.push(entry);
            FilterResult::Modify(payload.to_string())
        }
        None => FilterResult::Pass,
    }
}

fn greeting_word() -> String {
    kontor_sdk::settings::get("greeting")
        .and_then(|v| serde_json::from_str::<String>(&v).ok())
        .unwrap_or_else(|| "Hello".to_string())
}

/// `{"greeting": "Hello, <name>"}`, with the tenant's greeting word.
fn greeting(name: &str) -> HttpResponse {
    json(
        200,
        &json!({ "greeting": format!("{}, {name}", greeting_word()) }),
    )
}

impl kontor_sdk::Guest for Hello {
    fn handle_http(request: HttpRequest) -> HttpResponse {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/greeting") => {
                greeting(&query_param(&request.query, "name").unwrap_or_else(|| "world".into()))
            }
            ("POST", "/greeting") => {
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                greeting(body["name"].as_str().unwrap_or("world"))
            }
            ("GET", "/seen") => match seen_records() {
                Ok(items) => json(200, &json!({ "items": items })),
                Err(e) => error(500, "records_failed", &e),
            },
            _ => error(404, "not_found", "no such route in the hello module"),
        }
    }

    fn render_page(request: HttpRequest) -> Result<Page, String> {
        let name = request
            .principal
            .as_ref()
            .map(|p| p.user_id.clone())
            .unwrap_or_else(|| "guest".into());
        // Opened from the tab it adds to a customer's page.
        let about = match query_param(&request.query, "customer") {
            Some(id) => {
                let seen = records::get("seen", &id).map_err(|e| format!("{e:?}"))?;
                let text = if seen.is_some() {
                    "The hello module greeted this customer when they were created."
                } else {
                    "The hello module has not seen this customer being created."
                };
                format!("<p class=\"hello-customer\">{text}</p>")
            }
            None => String::new(),
        };
        Ok(Page {
            title: "Hello".into(),
            html: format!(
                "<section class=\"hello\"><h2>{}, {}</h2><p>This page comes from the hello module.</p>{about}</section>",
                kontor_sdk::escape_html(&greeting_word()),
                kontor_sdk::escape_html(&name)
            ),
        })
    }

    fn on_event(event: Event) -> Result<(), String> {
        if event.name != "customer.created" {
            return Ok(());
        }
        let payload: Value = serde_json::from_str(&event.payload).map_err(|e| e.to_string())?;
        let id = payload["id"].as_str().ok_or("event without customer id")?;
        let name = payload["display_name"].as_str().unwrap_or_default();
        // The customer id is the record id: a redelivered event writes the
        // same record again instead of a second one.
        let data = json!({ "customer_id": id, "name": name, "event_id": event.id });
        records::put("seen", id, &data.to_string(), None).map_err(|e| format!("{e:?}"))?;
        kontor_sdk::log_info(&format!("saw customer {id}"));
        Ok(())
    }

    fn filter(hook: String, payload: String) -> FilterResult {
        let mut value: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
        match hook.as_str() {
            "customer.before_save" if value["company"].as_str() == Some("Forbidden") => {
                FilterResult::Reject("The hello module does not allow this company name.".into())
            }
            "dashboard.widgets" => {
                let seen = seen_records()
                    .unwrap_or_default()
                    .iter()
                    .filter(|r| r["customer_id"].is_string())
                    .count();
                push(
                    &mut value,
                    "widgets",
                    json!({
                        "title": "Hello",
                        "text": format!("{seen} new customers greeted"),
                        "href": "/app/hello/",
                    }),
                )
            }
            "customer.tabs" => {
                let id = value["customer_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                push(
                    &mut value,
                    "tabs",
                    json!({ "label": "Hello", "href": format!("/app/hello/?customer={id}") }),
                )
            }
            _ => FilterResult::Pass,
        }
    }

    fn run_job(name: String) -> Result<(), String> {
        if name != "tick" {
            return Err(format!("unknown job {name}"));
        }
        let current = records::get("seen", "_ticks").map_err(|e| format!("{e:?}"))?;
        let (count, version) = match &current {
            Some(r) => (
                serde_json::from_str::<Value>(&r.data)
                    .ok()
                    .and_then(|v| v["ticks"].as_u64())
                    .unwrap_or(0),
                r.version,
            ),
            None => (0, 0),
        };
        let data = json!({ "name": "_ticks", "ticks": count + 1 });
        records::put("seen", "_ticks", &data.to_string(), Some(version))
            .map_err(|e| format!("{e:?}"))?;
        Ok(())
    }
}

kontor_sdk::export_module!(Hello);
