//! A module that uses the host's capabilities on request, for the host's
//! capability tests: secrets, the CRM (as the calling user, and as the
//! tenant in an event) and settings. Every refusal of the host comes back
//! as an error body, so the tests can read what the module was told.

use kontor_sdk::crm::{self, CustomerQuery};
use kontor_sdk::query_param;
use kontor_sdk::raw::{
    error, json, Event, FilterResult, Handlers, HttpRequest, HttpResponse, Page, Route,
};
use serde_json::json;

struct Caps;

/// A CRM refusal as an error body with a status and code the tests match on.
fn crm_error(e: crm::Error) -> HttpResponse {
    match e {
        crm::Error::Denied(m) => error(403, "denied", &m),
        crm::Error::Forbidden(m) => error(403, "forbidden", &m),
        crm::Error::NotFound(m) => error(404, "not_found", &m),
        crm::Error::Invalid(m) => error(422, "invalid", &m),
        crm::Error::Internal(m) => error(500, "internal", &m),
    }
}

fn body_text(request: &HttpRequest) -> String {
    String::from_utf8_lossy(&request.body).into_owned()
}

impl kontor_sdk::raw::Guest for Caps {
    fn handle_http(request: HttpRequest) -> HttpResponse {
        let q = |name: &str| query_param(&request.query, name).unwrap_or_default();
        match (request.method.as_str(), request.path.as_str()) {
            // Says whether the secret is set, never what it is.
            ("GET", "/secret") => match kontor_sdk::secrets::get(&q("name")) {
                Ok(v) => json(200, &json!({ "set": v.is_some() })),
                Err(e) => error(400, "secrets", &e),
            },
            // Compares with the body, so the value never travels in a URL or an answer.
            ("POST", "/secret/matches") => match kontor_sdk::secrets::require(&q("name")) {
                Ok(v) => json(200, &json!({ "matches": v == body_text(&request) })),
                Err(e) => error(400, "secrets", &e),
            },
            ("GET", "/customers") => {
                let mut query = CustomerQuery::search(&q("q"));
                if let Ok(limit) = q("limit").parse() {
                    query = query.limit(limit);
                }
                if !q("cursor").is_empty() {
                    query = query.after(&q("cursor"));
                }
                match crm::customers(&query) {
                    Ok(page) => json(
                        200,
                        &json!({
                            "ids": page.customers.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
                            "names": page.customers.iter().map(|c| c.display_name.clone()).collect::<Vec<_>>(),
                            "next": page.next_cursor,
                        }),
                    ),
                    Err(e) => crm_error(e),
                }
            }
            ("GET", "/customer") => match crm::customer(&q("id")) {
                Ok(c) => json(
                    200,
                    &json!({ "customer": c.map(|c| json!({
                        "id": c.id,
                        "display_name": c.display_name,
                        "email": c.email,
                        "tags": c.tags,
                        "custom_fields": serde_json::from_str::<serde_json::Value>(&c.custom_fields).ok(),
                        "created_at": c.created_at,
                    })) }),
                ),
                Err(e) => crm_error(e),
            },
            ("GET", "/contacts") => match crm::contacts(&q("customer")) {
                Ok(list) => json(
                    200,
                    &json!({ "contacts": list.iter().map(|c| c.name.clone()).collect::<Vec<_>>() }),
                ),
                Err(e) => crm_error(e),
            },
            ("GET", "/users") => match crm::users() {
                Ok(list) => json(
                    200,
                    &json!({ "users": list.iter().map(|u| json!({
                        "id": u.id, "email": u.email, "role": u.role, "active": u.active,
                    })).collect::<Vec<_>>() }),
                ),
                Err(e) => crm_error(e),
            },
            ("POST", "/timeline") => {
                let data = json!({ "via": "route" });
                match crm::add_timeline_entry(
                    &q("customer"),
                    &q("kind"),
                    &body_text(&request),
                    &data,
                ) {
                    Ok(id) => json(200, &json!({ "id": id })),
                    Err(e) => crm_error(e),
                }
            }
            ("POST", "/note") => match crm::add_note(&q("customer"), &body_text(&request)) {
                Ok(id) => json(200, &json!({ "id": id })),
                Err(e) => crm_error(e),
            },
            ("GET", "/visit") => match kontor_sdk::records::next_sequence("visits") {
                Ok(n) => json(200, &json!({ "visit": n })),
                Err(kontor_sdk::records::Error::ReadOnly(m)) => error(403, "license_expired", &m),
                Err(e) => error(500, "records", &e.to_string()),
            },
            ("POST" | "GET", "/customers/new") => {
                let field = |name: &str| Some(q(name)).filter(|v| !v.is_empty());
                let new = crm::NewCustomer {
                    company: field("company"),
                    contact_name: field("contact_name"),
                    email: field("email"),
                    phone: field("phone"),
                    tags: q("tags").split(',').map(str::to_string).collect(),
                };
                match crm::create_customer(&new) {
                    Ok(c) => json(
                        201,
                        &json!({ "id": c.id, "display_name": c.display_name, "tags": c.tags }),
                    ),
                    Err(e) => crm_error(e),
                }
            }
            // The guest's clock (WASI's wall clock), which is the host's.
            ("GET", "/now") => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(-1);
                json(
                    200,
                    &json!({ "now_ms": now, "sdk_now_ms": kontor_sdk::time::now_ms() }),
                )
            }
            // A signed hook (the hook tests declare it with `signed_by`):
            // echoes the body, says whether a user came with it, and counts
            // in a sequence, so a test sees in which tenant it wrote.
            ("POST", "/inbound") => match kontor_sdk::records::next_sequence("inbound") {
                Ok(n) => json(
                    200,
                    &json!({
                        "principal": request.principal.is_some(),
                        "body": body_text(&request),
                        "count": n,
                    }),
                ),
                Err(kontor_sdk::records::Error::ReadOnly(m)) => error(403, "license_expired", &m),
                Err(e) => error(500, "records", &e.to_string()),
            },
            ("GET", "/setting") => {
                let value = kontor_sdk::raw::settings::get(&q("key"))
                    .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok());
                json(200, &json!({ "value": value }))
            }
            // E-mail from a template; the notify tests declare the route,
            // the capability and the template in the manifest they install.
            ("POST", "/notify") => {
                let body: serde_json::Value =
                    serde_json::from_slice(&request.body).unwrap_or_default();
                let mut email = kontor_sdk::notify::Email::template(
                    body["template"].as_str().unwrap_or_default(),
                )
                .data(&body["data"]);
                for to in body["to"].as_array().into_iter().flatten() {
                    email = email.to(to.as_str().unwrap_or_default());
                }
                if let Some(parent) = body["in_reply_to"].as_str() {
                    email = email.in_reply_to(parent);
                }
                match email.send() {
                    Ok(message_id) => json(200, &json!({ "message_id": message_id })),
                    Err(kontor_sdk::notify::Error::Denied(m)) => error(403, "denied", &m),
                    Err(kontor_sdk::notify::Error::Invalid(m)) => error(422, "invalid", &m),
                    Err(kontor_sdk::notify::Error::Internal(m)) => error(500, "internal", &m),
                }
            }
            _ => error(404, "not_found", "no such route in the caps module"),
        }
    }

    fn render_page(_request: HttpRequest) -> Result<Page, String> {
        Err("the caps module has no pages".into())
    }

    /// Welcomes a new customer on its timeline, and notes an erased one
    /// anonymised: CRM access with no user.
    fn on_event(event: Event) -> Result<(), String> {
        let payload: serde_json::Value =
            serde_json::from_str(&event.payload).map_err(|e| e.to_string())?;
        let id = payload["id"].as_str().ok_or("event without customer id")?;
        if event.name == "customer.erased" {
            // What a module holding personal data does: anonymise it, here
            // only noted on the (kept) customer's timeline.
            crm::add_timeline_entry(id, "anonymised", "Anonymised", &json!({}))
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        if event.name != "customer.created" {
            return Ok(());
        }
        let customer = crm::customer(id)
            .map_err(|e| e.to_string())?
            .ok_or("the new customer is not visible")?;
        crm::add_timeline_entry(
            id,
            "welcomed",
            &format!("Welcomed {}", customer.display_name),
            &json!({ "event_id": event.id }),
        )
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    fn filter(_hook: String, _payload: String) -> FilterResult {
        FilterResult::Pass
    }

    fn run_job(name: String) -> Result<(), String> {
        Err(format!("unknown job {name}"))
    }

    /// The manifest's routes, events and filters: what this guest handles.
    fn describe() -> Handlers {
        let route = |method: &str, path: &str| Route {
            method: method.into(),
            path: path.into(),
        };
        Handlers {
            routes: vec![
                route("GET", "/secret"),
                route("POST", "/secret/matches"),
                route("GET", "/customers"),
                route("GET", "/customer"),
                route("GET", "/contacts"),
                route("GET", "/users"),
                route("POST", "/timeline"),
                route("POST", "/note"),
                route("GET", "/setting"),
                route("GET", "/visit"),
                route("POST", "/notify"),
                route("POST", "/customers/new"),
                route("GET", "/customers/new"),
                route("GET", "/now"),
                route("POST", "/inbound"),
            ],
            pages: vec![],
            events: vec!["customer.created".into(), "customer.erased".into()],
            filters: vec![],
            jobs: vec![],
        }
    }
}

kontor_sdk::raw::export_module!(Caps);
