//! Events: the ones the module subscribes to, and its own it emits.
//!
//! Subscribe in `module.toml` (`[[events]] name = "customer.created"`) and
//! register a handler in [`crate::Module::events`]. Deliveries go through
//! the host's durable queue: at least once, retried with backoff while the
//! handler returns an error, so a handler deduplicates by [`Event::id`] (or
//! writes idempotently, e.g. a record keyed by what the event is about).
//!
//! ```no_run
//! use kontor_sdk::{Error, Event, Events};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Customer {
//!     id: String,
//!     display_name: String,
//! }
//!
//! fn created(event: Event) -> Result<(), Error> {
//!     let customer: Customer = event.json()?;
//!     kontor_sdk::info!("new customer {} ({})", customer.display_name, customer.id);
//!     kontor_sdk::events::emit("customer.greeted", &serde_json::json!({ "id": customer.id }))?;
//!     Ok(())
//! }
//!
//! let events = Events::new().on("customer.created", created);
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::kontor::module::events as raw_events;
use crate::bindings::kontor::module::types as raw;
use crate::error::Error;

/// An event delivered to the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique per event and the same on every retry: deduplicate by it.
    pub id: String,
    /// `customer.created`, `billing.invoice.paid`...
    pub name: String,
    /// The payload as JSON text.
    pub payload: String,
    /// When it happened, Unix milliseconds.
    pub occurred_at: i64,
}

impl Event {
    /// The payload as `T`; an error (retried, then dead-lettered) if it does
    /// not fit.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.payload).map_err(|e| {
            Error::new(
                422,
                "invalid_body",
                format!("the payload of event {} does not fit: {e}", self.name),
            )
        })
    }
}

impl From<raw::Event> for Event {
    fn from(e: raw::Event) -> Self {
        Event {
            id: e.id,
            name: e.name,
            payload: e.payload,
            occurred_at: e.occurred_at,
        }
    }
}

type Handler = Box<dyn Fn(Event) -> Result<(), Error>>;

/// The module's event handlers, by event name.
#[derive(Default)]
pub struct Events {
    handlers: Vec<(String, Handler)>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Events {
    /// No handlers yet.
    pub fn new() -> Self {
        Events::default()
    }

    /// Handle event `name` (as subscribed in the manifest). An error asks
    /// the host to deliver the event again later.
    pub fn on<F>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(Event) -> Result<(), Error> + 'static,
    {
        self.handlers.push((name.to_string(), Box::new(handler)));
        self
    }

    /// Run the handler for `event`. An event without a handler is an
    /// error: the manifest subscribes to it, so the code should handle it
    /// (`kontor-module build` says so before it ships).
    pub fn dispatch(&self, event: Event) -> Result<(), Error> {
        match self.handlers.iter().find(|(n, _)| *n == event.name) {
            Some((_, handler)) => handler(event),
            None => Err(Error::internal(format!(
                "no handler for event {}; register one in Module::events",
                event.name
            ))),
        }
    }

    /// The names of the handled events.
    pub fn names(&self) -> Vec<String> {
        self.handlers.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Emit the module's own event `{module-id}.{name}` with a JSON payload,
/// delivered through the durable queue to every subscribed module.
pub fn emit<T: Serialize + ?Sized>(name: &str, payload: &T) -> Result<(), Error> {
    let payload = serde_json::to_string(payload)?;
    raw_events::emit(name, &payload).map_err(Error::internal)
}
