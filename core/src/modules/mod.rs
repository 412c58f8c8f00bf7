//! Modules: the parts of Kontor that are WebAssembly components.
//!
//! * [`manifest`] — `module.toml`, parsed and validated;
//! * [`cron`] — the schedules of module jobs.

/// Host capabilities a module asks for, and whether it may use one now.
pub mod capabilities;
/// The capabilities a module gets in one call.
pub mod caps;
/// The `crm` capability: the core CRM as a module sees it.
pub mod crm_access;
pub mod cron;
/// Dependency resolution with semver.
pub mod deps;
/// The one entitlement check for every module call.
pub mod entitlements;
/// Events: the outbox and its fan-out to modules.
pub mod events;
/// Filter hooks, run inline in priority order.
pub mod filters;
/// The loaded modules of this process and calling them.
pub mod host;
/// Background work: event fan-out, cron scheduling, job handlers.
pub mod jobs;
pub mod manifest;
/// The `notify` capability: module e-mail from manifest templates.
pub mod notify;
/// The `http` capability: the manifest's allow-list, the administrator's
/// outbound settings, and the policy the runtime enforces per request.
pub mod outbound;
/// The signed `.kmod` package: pack, sign, and open it safely.
pub mod package;
/// The record store behind the `records` import: per tenant × module JSON
/// collections with indexed queries, an atomic batch, sequences and quotas.
pub mod records;
/// The registry of installed modules.
pub mod registry;
/// The key that seals module secrets at rest.
pub mod secret_key;
/// Module secrets: set by administrators, sealed, read by the module.
pub mod secrets;
/// Module settings: typed per the manifest, set by administrators.
pub mod settings;
/// Every process serving the modules the registry has enabled (NOTIFY + poll).
pub mod sync;
/// Publisher keys whose package signatures this server accepts.
pub mod trust;
