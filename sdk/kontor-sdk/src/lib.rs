//! Write Kontor modules in Rust.
//!
//! A module is a WebAssembly component the Kontor host calls for its routes,
//! pages, events, filters and jobs. With this crate a module is a type that
//! implements [`Module`] — one method per section of `module.toml` — and one
//! line that exports it:
//!
//! ```no_run
//! use kontor_sdk::{Error, Json, Module, Request, Router};
//! use serde::Deserialize;
//!
//! struct Hello;
//!
//! #[derive(Deserialize)]
//! struct Greet {
//!     name: String,
//! }
//!
//! impl Module for Hello {
//!     fn routes() -> Router {
//!         Router::new()
//!             // GET /api/v1/hello/greeting?name=Ada
//!             .get("/greeting", |req: Request| {
//!                 let name = req.query("name").unwrap_or_else(|| "world".into());
//!                 Json(serde_json::json!({ "greeting": format!("Hello, {name}") }))
//!             })
//!             // POST /api/v1/hello/greeting {"name": "Ada"}
//!             .post("/greeting", |req: Request| -> Result<_, Error> {
//!                 let body: Greet = req.json()?;
//!                 kontor_sdk::info!("greeting {}", body.name);
//!                 Ok(Json(serde_json::json!({ "greeting": format!("Hello, {}", body.name) })))
//!             })
//!     }
//! }
//!
//! kontor_sdk::module!(Hello);
//! ```
//!
//! The parts, in the order a module meets them:
//!
//! * [`Module`] and [`module!`] — what the module handles, exported in one line;
//! * [`Router`], [`Request`], [`Response`], [`Json`], [`Html`], [`Error`] —
//!   API routes under `/api/v1/{module-id}`, JSON in and out, errors in the
//!   host's error shape;
//! * [`pages`] — HTML pages under `/app/{module-id}`;
//! * [`events`], [`filters`], [`jobs`] — subscribed events, filter hooks and
//!   scheduled jobs, by name; [`events::emit`] sends the module's own events;
//! * [`records`] — typed collections of records ([`records::Collection`]),
//!   queries with cursor paging, atomic batches, sequences;
//! * [`settings`], [`secrets`], [`crm`], [`http`], [`notify`] — the
//!   capabilities a manifest declares;
//! * [`time`] — now, on the host's clock (`SystemTime::now()` is the same
//!   clock), which `kontor-test` moves;
//! * [`info!`], [`warn!`], [`error!`]... — log lines in the host's log,
//!   tagged with the module id.
//!
//! Every export is called on a fresh instance: nothing survives a call, so
//! state lives in records, never in statics. A panic ends only the call it
//! happened in; its message goes to the host's log.
//!
//! The generated bindings of the contract stay available under [`raw`] for
//! the host's own test guests; a module never needs them.
#![warn(missing_docs)]

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/0.1.0",
        world: "module",
        pub_export_macro: true,
        export_macro_name: "export_module",
        default_bindings_module: "kontor_sdk::bindings",
    });
}

pub mod crm;
mod error;
pub mod events;
pub mod filters;
pub mod http;
pub mod jobs;
pub mod log;
mod module;
pub mod notify;
pub mod pages;
pub mod raw;
pub mod records;
mod request;
mod response;
mod router;
pub mod secrets;
pub mod settings;
pub mod time;

pub use error::Error;
pub use events::{Event, Events};
pub use filters::{Filter, Filters, Verdict};
pub use jobs::Jobs;
pub use module::Module;
pub use pages::{Page, Pages};
pub use records::Collection;
pub use request::{Principal, Request};
pub use response::{Html, IntoResponse, Json, Response};
pub use router::Router;

/// The contract version this SDK builds against: the `api` requirement in
/// `module.toml` must accept it.
pub const API_VERSION: &str = "0.1.0";

/// Escape text for HTML: a page's `html` is placed in the host's layout as
/// it is, so everything that came from a user goes through this first.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The first value of query parameter `name` in a raw query string
/// (percent-decoded, `+` as space). [`Request::query`] does this for a route.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find_map(|(k, v)| (k == name).then(|| v.into_owned()))
}

/// Export a type that implements [`Module`] as the module's component:
/// the host's calls (`handle-http`, `render-page`, `on-event`, `filter`,
/// `run-job`, `describe`) go to the routes, pages and handlers it
/// registers. Write it once, at the top level of `src/lib.rs`.
///
/// ```no_run
/// struct Tickets;
/// impl kontor_sdk::Module for Tickets {}
/// kontor_sdk::module!(Tickets);
/// ```
#[macro_export]
macro_rules! module {
    ($module:ty) => {
        #[doc(hidden)]
        type __KontorModuleExport = $crate::__private::Export<$module>;
        $crate::__private::export_module!(__KontorModuleExport with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::export_module;
    pub use crate::module::Export;
}
