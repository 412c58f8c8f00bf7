//! The module's settings: typed values an administrator sets per tenant in
//! the admin UI, which renders the form from the manifest.
//!
//! ```toml
//! [[settings]]
//! key = "greeting"
//! type = "string"          # string, number or boolean
//! default = "Hello"
//! description = "The word the greeting starts with"
//! ```
//!
//! ```no_run
//! let word: String = kontor_sdk::settings::get_or("greeting", "Hello".to_string());
//! let retries: u32 = kontor_sdk::settings::get("retries").unwrap_or(3);
//! ```
//!
//! Settings are not secret: API keys and passwords are [`crate::secrets`].

use serde::de::DeserializeOwned;

use crate::bindings::kontor::module::settings as raw;

/// The setting `key` as `T` (the value an administrator set, else the
/// manifest's default). `None` for a key the manifest does not declare, a
/// setting with neither value nor default, or a value that does not fit `T`.
pub fn get<T: DeserializeOwned>(key: &str) -> Option<T> {
    raw::get(key).and_then(|json| serde_json::from_str(&json).ok())
}

/// The setting `key` as `T`, or `default` when [`get`] has none.
pub fn get_or<T: DeserializeOwned>(key: &str, default: T) -> T {
    get(key).unwrap_or(default)
}

/// The setting `key` as the host stores it: JSON text.
pub fn get_json(key: &str) -> Option<String> {
    raw::get(key)
}
