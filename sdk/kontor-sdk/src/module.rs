//! [`Module`]: what a module handles, and the glue that turns it into the
//! component's exports.

use std::marker::PhantomData;

use crate::bindings::kontor::module::types as raw;
use crate::events::{Event, Events};
use crate::filters::{Filter, Filters};
use crate::jobs::Jobs;
use crate::pages::Pages;
use crate::request::Request;
use crate::router::Router;

/// A Kontor module: one method per section of `module.toml`, each listing
/// the handlers for what that section declares. Every method has an empty
/// default, so a module implements only what it has; export it with
/// [`crate::module!`].
///
/// The host calls each export on a fresh instance, so these run on every
/// call: keep them to building the lists (no I/O).
///
/// `kontor-module build` compares what these register with the manifest
/// and names every declared route, page, event, filter or job that lacks a
/// handler.
///
/// ```no_run
/// use kontor_sdk::{Error, Event, Events, Jobs, Module, Router};
///
/// struct Reminders;
///
/// impl Module for Reminders {
///     fn routes() -> Router {
///         Router::new().get("/due", |_req| "nothing due")
///     }
///     fn events() -> Events {
///         Events::new().on("customer.created", |_e: Event| -> Result<(), Error> { Ok(()) })
///     }
///     fn jobs() -> Jobs {
///         Jobs::new().job("remind", || Ok(()))
///     }
/// }
///
/// kontor_sdk::module!(Reminders);
/// ```
pub trait Module {
    /// API routes under `/api/v1/{module-id}` (`[[routes]]`).
    fn routes() -> Router {
        Router::new()
    }

    /// Pages under `/app/{module-id}` (`[[pages]]`).
    fn pages() -> Pages {
        Pages::new()
    }

    /// Handlers of subscribed events (`[[events]]`).
    fn events() -> Events {
        Events::new()
    }

    /// Handlers of filter hooks (`[[filters]]`).
    fn filters() -> Filters {
        Filters::new()
    }

    /// Handlers of scheduled jobs (`[[jobs]]`).
    fn jobs() -> Jobs {
        Jobs::new()
    }
}

/// What [`crate::module!`] exports: the contract's `Guest` for a [`Module`].
#[doc(hidden)]
pub struct Export<M>(PhantomData<M>);

/// Send a panic's message and place to the host's log before the trap
/// ends the call: the host gives a module no stderr, so without this the
/// operator would see only "unreachable".
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        crate::log::write(crate::log::Level::Error, &format!("panic: {info}"));
    }));
}

impl<M: Module> crate::bindings::Guest for Export<M> {
    fn handle_http(request: raw::HttpRequest) -> raw::HttpResponse {
        report_panics();
        let response = M::routes().handle(Request::from_raw(request));
        raw::HttpResponse {
            status: response.status,
            headers: response
                .headers
                .into_iter()
                .map(|(name, value)| raw::Header { name, value })
                .collect(),
            body: response.body,
        }
    }

    fn render_page(request: raw::HttpRequest) -> Result<raw::Page, String> {
        report_panics();
        M::pages()
            .render(Request::from_raw(request))
            .map(raw::Page::from)
            .map_err(|e| e.message().to_string())
    }

    fn on_event(event: raw::Event) -> Result<(), String> {
        report_panics();
        M::events()
            .dispatch(Event::from(event))
            .map_err(|e| e.to_string())
    }

    fn filter(hook: String, payload: String) -> raw::FilterResult {
        report_panics();
        match M::filters().dispatch(Filter { hook, payload }) {
            Ok(verdict) => verdict.into(),
            // The contract has no error for a filter: failing it is a trap,
            // which the host treats as a failed filter.
            Err(e) => panic!("filter failed: {e}"),
        }
    }

    fn run_job(name: String) -> Result<(), String> {
        report_panics();
        M::jobs().run(&name).map_err(|e| e.to_string())
    }

    fn describe() -> raw::Handlers {
        raw::Handlers {
            routes: M::routes()
                .routes()
                .into_iter()
                .map(|(method, path)| raw::Route { method, path })
                .collect(),
            pages: M::pages().paths(),
            events: M::events().names(),
            filters: M::filters().hooks(),
            jobs: M::jobs().names(),
        }
    }
}
