//! Filter hooks: the host hands the module a JSON payload inline, in
//! priority order with other modules, and the module lets it pass, changes
//! it, or refuses it with a message for the user.
//!
//! Declare the hook in `module.toml` (`[[filters]] hook = "..."`, with a
//! `priority`, lower first) and register a handler in
//! [`crate::Module::filters`]. Filters run inside a core request with a
//! short deadline (200 ms): no slow work here.
//!
//! ```no_run
//! use kontor_sdk::{Error, Filter, Filters, Verdict};
//!
//! fn check(filter: Filter) -> Result<Verdict, Error> {
//!     let customer: serde_json::Value = filter.json()?;
//!     if customer["company"] == "Forbidden" {
//!         return Ok(Verdict::reject("This company name is not allowed."));
//!     }
//!     Ok(Verdict::Pass)
//! }
//!
//! let filters = Filters::new().hook("customer.before_save", check);
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::bindings::kontor::module::types as raw;
use crate::error::Error;

/// One run of a filter hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The hook (`customer.before_save`).
    pub hook: String,
    /// The payload as JSON text, as the previous filter left it.
    pub payload: String,
}

impl Filter {
    /// The payload as `T` (a struct, or `serde_json::Value` to change it in place).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.payload).map_err(|e| {
            Error::new(
                422,
                "invalid_body",
                format!("the payload of hook {} does not fit: {e}", self.hook),
            )
        })
    }
}

/// A filter's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Leave the payload as it is.
    Pass,
    /// Replace the payload (JSON text) for the next filter and the host.
    Modify(String),
    /// Refuse; the message is shown to the user.
    Reject(String),
}

impl Verdict {
    /// Replace the payload with `value`.
    pub fn modify<T: Serialize + ?Sized>(value: &T) -> Result<Verdict, Error> {
        Ok(Verdict::Modify(serde_json::to_string(value)?))
    }

    /// Refuse with a message for the user.
    pub fn reject(message: impl Into<String>) -> Verdict {
        Verdict::Reject(message.into())
    }
}

impl From<Verdict> for raw::FilterResult {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Pass => raw::FilterResult::Pass,
            Verdict::Modify(p) => raw::FilterResult::Modify(p),
            Verdict::Reject(m) => raw::FilterResult::Reject(m),
        }
    }
}

type Handler = Box<dyn Fn(Filter) -> Result<Verdict, Error>>;

/// The module's filter handlers, by hook.
#[derive(Default)]
pub struct Filters {
    handlers: Vec<(String, Handler)>,
}

impl std::fmt::Debug for Filters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.hooks()).finish()
    }
}

impl Filters {
    /// No handlers yet.
    pub fn new() -> Self {
        Filters::default()
    }

    /// Handle `hook` (as declared in the manifest).
    ///
    /// A handler's error is a failed filter, as a panic would be: the host
    /// logs it and skips the module — except on the fail-closed hooks
    /// (`http.request`, `auth.login`), where it refuses the request. To
    /// refuse on purpose, return [`Verdict::Reject`].
    pub fn hook<F>(mut self, hook: &str, handler: F) -> Self
    where
        F: Fn(Filter) -> Result<Verdict, Error> + 'static,
    {
        self.handlers.push((hook.to_string(), Box::new(handler)));
        self
    }

    /// Run the handler for `filter.hook`; a hook without a handler passes.
    pub fn dispatch(&self, filter: Filter) -> Result<Verdict, Error> {
        match self.handlers.iter().find(|(h, _)| *h == filter.hook) {
            Some((_, handler)) => handler(filter),
            None => Ok(Verdict::Pass),
        }
    }

    /// The handled hooks.
    pub fn hooks(&self) -> Vec<String> {
        self.handlers.iter().map(|(h, _)| h.clone()).collect()
    }
}
