//! The contract's generated bindings, as `wit-bindgen` makes them from
//! `sdk/wit/0.1.0`, and helpers over their types.
//!
//! The host's own test guests use these to misbehave in ways the typed API
//! does not allow (answer status 42, skip `describe`). A module does not
//! need them: [`crate::Module`] and [`crate::module!`] implement [`Guest`]
//! from what the module registers. Names here follow the WIT and change
//! with it; the typed API above is what stays compatible.

pub use crate::bindings::export_module;
pub use crate::bindings::kontor::module::types::{
    Event, FilterResult, Handlers, Header, HttpRequest, HttpResponse, Page, Principal, Route,
};
pub use crate::bindings::kontor::module::{crm, events, log, records, secrets, settings};
pub use crate::bindings::Guest;

/// A JSON response with `status`.
pub fn json<T: serde::Serialize>(status: u16, value: &T) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: serde_json::to_vec(value).unwrap_or_default(),
    }
}

/// A JSON error in the host's error shape: `{"error": {"code", "message", "details": null}}`.
pub fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    json(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message, "details": null } }),
    )
}
