//! Write Kontor modules in Rust.
//!
//! This crate carries the bindings of the `kontor:module@0.1.0` contract
//! (generated from `sdk/wit/0.1.0`, the single source of truth) and small
//! helpers for the common cases: JSON and HTML responses, query parameters,
//! logging, and thin wrappers over the host's capabilities ([`secrets`],
//! [`crm`]). A module implements [`Guest`] and exports it:
//!
//! ```ignore
//! struct Hello;
//! impl kontor_sdk::Guest for Hello { /* ... */ }
//! kontor_sdk::export_module!(Hello);
//! ```

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
pub mod secrets;

pub use bindings::export_module;
pub use bindings::kontor::module::types::{
    Event, FilterResult, Header, HttpRequest, HttpResponse, Page, Principal,
};
pub use bindings::kontor::module::{events, log as host_log, records, settings};
pub use bindings::Guest;

/// The contract version this SDK builds against.
pub const API_VERSION: &str = "0.1.0";

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

/// The first value of query parameter `name` (percent-decoded, `+` as space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == name).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escape text for HTML.
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

/// Log at info level through the host (the line carries the module id).
pub fn log_info(message: &str) {
    host_log::log(host_log::Level::Info, message);
}

/// Log at warn level through the host.
pub fn log_warn(message: &str) {
    host_log::log(host_log::Level::Warn, message);
}
