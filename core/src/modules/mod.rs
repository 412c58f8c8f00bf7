//! Modules: the parts of Kontor that are WebAssembly components.
//!
//! * [`manifest`] — `module.toml`, parsed and validated;
//! * [`cron`] — the schedules of module jobs.

pub mod cron;
pub mod manifest;
