//! Integration tests of the core host: the real router served over HTTP on
//! a loopback port, against real SQLite and real PostgreSQL. One test
//! binary (every file under `tests/` would link its own).
//!
//! Every test that touches the database is written once with [`both!`] and
//! runs on both engines.

mod common;

mod auth;
mod backup;
mod cli;
mod crm;
mod errors;
mod isolation;
mod license;
mod licensing;
mod modules;
mod onboarding;
mod openapi;
mod ops;
mod records;
mod setup;
mod subscriptions;
mod ui;
