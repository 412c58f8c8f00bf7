//! A module that misbehaves on request, for the runtime's tests: endless
//! loops, memory bombs, panics, oversized answers — and raw access to the
//! record store, to prove what it cannot reach.

use kontor_sdk::query_param;
use kontor_sdk::raw::records;
use kontor_sdk::raw::{
    error, json, Event, FilterResult, Handlers, HttpRequest, HttpResponse, Page, Route,
};
use serde_json::json;

struct Faults;

#[allow(clippy::empty_loop)]
fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Out of line, so a trap's backtrace names it even in a release build.
#[inline(never)]
fn panic_on_purpose() -> ! {
    panic!("the faults module panics on purpose")
}

fn bomb() -> usize {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1024 * 1024]);
        std::hint::black_box(&hoard);
    }
}

impl kontor_sdk::raw::Guest for Faults {
    fn handle_http(request: HttpRequest) -> HttpResponse {
        let q = |name: &str| query_param(&request.query, name).unwrap_or_default();
        match request.path.as_str() {
            "/ok" => json(
                200,
                &json!({ "ok": true, "principal": request.principal.map(|p| p.user_id) }),
            ),
            "/loop" => spin(),
            "/membomb" => json(200, &json!({ "size": bomb() })),
            "/trap" => panic_on_purpose(),
            "/huge" => HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![b'x'; 20 * 1024 * 1024],
            },
            "/bad-status" => HttpResponse {
                status: 42,
                headers: vec![],
                body: vec![],
            },
            "/records/get" => match records::get(&q("collection"), &q("id")) {
                Ok(r) => json(200, &json!({ "record": r.map(|r| r.data) })),
                Err(e) => error(400, "records", &format!("{e:?}")),
            },
            "/records/put" => {
                let data = String::from_utf8_lossy(&request.body).into_owned();
                match records::put(&q("collection"), &q("id"), &data, None) {
                    Ok(r) => json(200, &json!({ "version": r.version })),
                    Err(e) => error(400, "records", &format!("{e:?}")),
                }
            }
            "/emit" => match kontor_sdk::raw::events::emit(&q("name"), "{}") {
                Ok(()) => json(200, &json!({ "emitted": true })),
                Err(e) => error(400, "events", &e),
            },
            _ => error(404, "not_found", "no such route"),
        }
    }

    fn render_page(_request: HttpRequest) -> Result<Page, String> {
        Err("the faults module has no pages".into())
    }

    fn on_event(event: Event) -> Result<(), String> {
        if event.name.ends_with(".fail") {
            return Err("failing on purpose".into());
        }
        Ok(())
    }

    fn filter(hook: String, payload: String) -> FilterResult {
        match hook.as_str() {
            "test.slow" => spin(),
            "test.trap" => panic!("filter panics on purpose"),
            "test.reject" => FilterResult::Reject("rejected by the faults module".into()),
            "test.modify" => FilterResult::Modify(format!("[{payload}]")),
            // A security module: refuses one path, breaks on another.
            "http.request" if payload.contains("/blocked") => {
                FilterResult::Reject("blocked by the faults module".into())
            }
            "http.request" if payload.contains("/explode") => {
                panic!("security filter panics on purpose")
            }
            // UI hooks: one link added, one that leaves the site (the host
            // drops it); a broken dashboard card.
            "nav.items" => {
                let mut value: serde_json::Value =
                    serde_json::from_str(&payload).unwrap_or_default();
                if let Some(items) = value["items"].as_array_mut() {
                    items.push(serde_json::json!({ "label": "Faults", "href": "/app/faults/" }));
                    items.push(
                        serde_json::json!({ "label": "Away", "href": "https://evil.example/" }),
                    );
                }
                FilterResult::Modify(value.to_string())
            }
            "dashboard.widgets" => panic!("dashboard filter panics on purpose"),
            _ => FilterResult::Pass,
        }
    }

    fn run_job(name: String) -> Result<(), String> {
        match name.as_str() {
            "loop" => spin(),
            _ => Err(format!("unknown job {name}")),
        }
    }

    /// The manifest's routes, events and filters: what this guest handles.
    fn describe() -> Handlers {
        let route = |method: &str, path: &str| Route {
            method: method.into(),
            path: path.into(),
        };
        Handlers {
            routes: vec![
                route("GET", "/ok"),
                route("GET", "/loop"),
                route("GET", "/membomb"),
                route("GET", "/trap"),
                route("GET", "/huge"),
                route("GET", "/records/get"),
                route("POST", "/records/put"),
                route("GET", "/emit"),
            ],
            pages: vec![],
            events: vec!["faults.boom.fail".into()],
            filters: vec![
                "http.request".into(),
                "nav.items".into(),
                "dashboard.widgets".into(),
            ],
            jobs: vec![],
        }
    }
}

kontor_sdk::raw::export_module!(Faults);
