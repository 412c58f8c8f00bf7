//! Kontor core host.
//!
//! A guided tour, one line per part:

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

/// Audit trail of security-relevant actions.
pub mod audit;
/// Tenants, users and the role → permission map; login, sessions and API tokens.
pub mod auth;
/// `kontor backup` / `kontor restore`: a consistent snapshot of the database, license, secrets and config, and putting it back.
pub mod backup;
/// Read caches with a time to live: per tenant (entitlements, settings) and per installation (license status).
pub mod cache;
/// Command-line interface of the `kontor` binary (serve, demo, migrate, admin, tenant).
pub mod cli;
/// The injected source of time, so licensing, SLA and session tests control it.
pub mod clock;
/// Configuration from `kontor.toml` and `KONTOR_*` environment variables.
pub mod config;
/// Customers, contacts, notes, the activity timeline, search, CSV and GDPR.
pub mod crm;
/// Database pool for SQLite and PostgreSQL, migrations and dialect helpers.
pub mod db;
/// Sample data for `kontor demo`.
pub mod demo;
/// The one error type of the core, with stable machine-readable codes.
pub mod error;
/// Typed identifiers; `TenantId` is what scopes every tenant query.
pub mod ids;
/// The durable job queue and its worker loop.
pub mod jobs;
/// Signed offline licenses: the file format, verification, trial and expiry states, limits, and the licensing a running server applies.
pub mod license;
/// E-mail: the SMTP relay, the outbox with its log, and message templates.
pub mod mail;
/// Modules: manifests, packages, the registry, and their place in the host.
pub mod modules;
/// Which release this binary is: its version and its migrations.
pub mod release;
/// Per-tenant and global settings.
pub mod settings;
/// SaaS plans and subscriptions, the payment webhook, and the entitlements they give.
pub mod subscriptions;
/// Tenants: creation and lookup.
pub mod tenants;
/// The HTTP server: REST API, OpenAPI document, UI, health and metrics.
pub mod web;

pub use error::{Error, Result};

/// Stop error values from capturing backtraces unless `RUST_LIB_BACKTRACE`
/// asks for them. wasmtime creates an error value on every store drop (once
/// per module call); with `RUST_BACKTRACE` set, each one walks the stack
/// (~5 µs). Panics still follow `RUST_BACKTRACE`. Call it first thing in
/// `main`, before any thread starts (it sets an environment variable).
pub fn quiet_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

/// The version Cargo built; what the binary reports is [`release::version`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
