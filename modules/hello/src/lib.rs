//! The smallest real Kontor module.
//!
//! * `GET /api/v1/hello/greeting?name=Ada` → `{"greeting": "Hello, Ada"}`;
//! * `GET /api/v1/hello/seen` → the customers it saw being created;
//! * a page at `/app/hello/`;
//! * on `customer.created` it stores the customer's name in its `seen` collection;
//! * the `customer.before_save` filter refuses a company called "Forbidden";
//! * the `tick` job counts its runs in a record.

use kontor_sdk::records;
use kontor_sdk::{error, json, query_param, Event, FilterResult, HttpRequest, HttpResponse, Page};
use serde_json::{json, Value};

struct Hello;

fn greeting_word() -> String {
    kontor_sdk::settings::get("greeting")
        .and_then(|v| serde_json::from_str::<String>(&v).ok())
        .unwrap_or_else(|| "Hello".to_string())
}

impl kontor_sdk::Guest for Hello {
    fn handle_http(request: HttpRequest) -> HttpResponse {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/greeting") => {
                let name =
                    query_param(&request.query, "name").unwrap_or_else(|| "world".to_string());
                json(
                    200,
                    &json!({ "greeting": format!("{}, {name}", greeting_word()) }),
                )
            }
            ("GET", "/seen") => {
                let query = records::QuerySpec {
                    collection: "seen".into(),
                    conditions: vec![],
                    order_by: Some("name".into()),
                    descending: false,
                    limit: 100,
                    cursor: None,
                };
                match records::query(&query) {
                    Ok(page) => {
                        let items: Vec<Value> = page
                            .records
                            .iter()
                            .filter_map(|r| serde_json::from_str(&r.data).ok())
                            .collect();
                        json(200, &json!({ "items": items }))
                    }
                    Err(e) => error(500, "records_failed", &format!("{e:?}")),
                }
            }
            _ => error(404, "not_found", "no such route in the hello module"),
        }
    }

    fn render_page(request: HttpRequest) -> Result<Page, String> {
        let name = request
            .principal
            .as_ref()
            .map(|p| p.user_id.clone())
            .unwrap_or_else(|| "guest".into());
        Ok(Page {
            title: "Hello".into(),
            html: format!(
                "<section class=\"hello\"><h2>{}, {}</h2><p>This page comes from the hello module.</p></section>",
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
        if hook == "customer.before_save" {
            let value: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
            if value["company"].as_str() == Some("Forbidden") {
                return FilterResult::Reject(
                    "The hello module does not allow this company name.".into(),
                );
            }
        }
        FilterResult::Pass
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
