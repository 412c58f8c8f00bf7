//! A module that fetches the URL it is given (`?url=...`) with the SDK's
//! outbound HTTP client and reports what happened as JSON — the status,
//! body and `x-test` header, or the error kind and message — so the host's
//! tests can read what the module was told. `POST /fetch` sends the
//! request's body along as a POST.

use kontor_sdk::http::{self, HttpError, Method, Request};
use kontor_sdk::query_param;
use kontor_sdk::raw::{
    json, Event, FilterResult, Handlers, HttpRequest, HttpResponse, Page, Route,
};
use serde_json::json;

struct Fetch;

/// The error as `{kind, message}`; `kind` is what the tests match on.
fn report_error(e: &HttpError) -> serde_json::Value {
    let kind = match e {
        HttpError::Denied(_) => "denied",
        HttpError::InvalidUrl(_) => "invalid_url",
        HttpError::TooLarge(_) => "too_large",
        HttpError::Timeout => "timeout",
        HttpError::Failed(_) => "failed",
    };
    json!({ "error": { "kind": kind, "message": e.to_string() } })
}

impl kontor_sdk::raw::Guest for Fetch {
    fn handle_http(request: HttpRequest) -> HttpResponse {
        let url = query_param(&request.query, "url").unwrap_or_default();
        let outgoing = match request.method.as_str() {
            "POST" => Request::new(Method::Post, &url)
                .with_header("x-test", "from-module")
                .with_body(request.body.clone()),
            _ => Request::new(Method::Get, &url),
        };
        match http::send(outgoing) {
            Ok(r) => json(
                200,
                &json!({
                    "status": r.status,
                    "body": r.text(),
                    "x_test": r.header("x-test"),
                }),
            ),
            Err(e) => json(200, &report_error(&e)),
        }
    }

    fn render_page(_request: HttpRequest) -> Result<Page, String> {
        Err("the fetch module has no pages".into())
    }

    fn on_event(_event: Event) -> Result<(), String> {
        Ok(())
    }

    fn filter(_hook: String, _payload: String) -> FilterResult {
        FilterResult::Pass
    }

    fn run_job(name: String) -> Result<(), String> {
        Err(format!("unknown job {name}"))
    }

    fn describe() -> Handlers {
        let route = |method: &str| Route {
            method: method.into(),
            path: "/fetch".into(),
        };
        Handlers {
            routes: vec![route("GET"), route("POST")],
            pages: vec![],
            events: vec![],
            filters: vec![],
            jobs: vec![],
        }
    }
}

kontor_sdk::raw::export_module!(Fetch);
