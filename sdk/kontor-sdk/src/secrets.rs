//! Secrets an administrator set for the module: API keys, passwords.
//!
//! Needs `capabilities = ["secrets"]` and each name declared in
//! `module.toml`:
//!
//! ```toml
//! capabilities = ["secrets"]
//!
//! [[secrets]]
//! name = "api_token"
//! description = "Token of the provider's API"
//! ```
//!
//! The host stores secrets encrypted, per tenant, and never shows them again
//! after they are set; keep them out of your own logs and answers too.

use crate::bindings::kontor::module::secrets as raw;

/// The secret `name`, or `None` while the administrator has not set it.
///
/// An error says why the host refused (capability not granted, name not
/// declared in the manifest, the server's key unavailable); it never
/// contains a secret value.
pub fn get(name: &str) -> Result<Option<String>, String> {
    raw::get(name)
}

/// The secret `name`, or an error that tells the administrator to set it —
/// for code that cannot go on without it.
pub fn require(name: &str) -> Result<String, String> {
    get(name)?.ok_or_else(|| {
        format!("the secret `{name}` is not set; an administrator sets it in the module's secrets")
    })
}
