//! Test a Kontor module the way it will run: against the real host.
//!
//! Add it to the module's `[dev-dependencies]` (with `tokio` for
//! `#[tokio::test]`), write tests under `tests/`, and run them with
//! `kontor-module test`, which builds the module for `wasm32-wasip2` first
//! and then runs `cargo test`:
//!
//! ```no_run
//! use kontor_test::Harness;
//!
//! #[tokio::test]
//! async fn hello_answers_json_and_logs() {
//!     let h = Harness::start().await;
//!     let r = h.get(&format!("/api/v1/{}/hello?name=Ada", h.module_id())).await;
//!     assert_eq!(r.status(), 200, "{}", r.text());
//!     assert_eq!(r.json()["greeting"], "Hello, Ada");
//!     assert!(h.logged("Ada"), "{:?}", h.logs());
//! }
//! ```
//!
//! [`Harness::start`] starts the `kontor` host in the test process — a
//! real HTTP server on a free port of 127.0.0.1, with a fresh SQLite
//! database in a temporary folder — then installs the module from its
//! build output (`target/wasm32-wasip2/{debug,release}/<crate>.wasm` and
//! `module.toml`, unsigned, as the host's dev mode allows), accepts the
//! capabilities it requests, entitles a new tenant to it and signs in that
//! tenant's administrator. From there a test:
//!
//! * calls the module's routes and pages over HTTP ([`Harness::get`],
//!   [`Harness::post_json`], [`Harness::page`]; other users with
//!   [`Harness::user`]; signed hooks, as an outside sender, with
//!   [`Harness::post_signed`]);
//! * delivers events and runs jobs ([`Harness::emit`], [`Harness::run_job`],
//!   [`Harness::publish`], [`Harness::drain`], [`Harness::run_due_jobs`]);
//! * reads and seeds the module's records ([`Harness::records`],
//!   [`Harness::record`], [`Harness::put_record`]);
//! * reads what it logged ([`Harness::logs`], [`Harness::logged`]);
//! * sets its settings and secrets ([`Harness::set_settings`],
//!   [`Harness::set_secret`]);
//! * sets the time: the host runs on a clock the test owns
//!   ([`Harness::set_now`], [`Harness::advance`]) — the module's own
//!   `SystemTime::now()` included — so deadlines, SLAs and schedules are
//!   tested without waiting.
//!
//! Every harness has its own host, database and tenant, so tests run in
//! parallel as `cargo test` likes.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

/// Finding the module's manifest and built component.
pub mod build_output;
/// HTTP clients of the test host and their responses.
pub mod client;
/// The harness: host, module, tenant, clock.
pub mod harness;
/// The module's log lines.
pub mod logs;

pub use client::{Client, Response};
pub use harness::{Builder, Harness, StoredRecord, ADMIN_PASSWORD, START};
pub use logs::LogLine;
/// Dates and durations for [`Harness::set_now`] and [`Harness::advance`]
/// (`kontor_test::time::macros::datetime!(2026-03-06 17:00 UTC)`).
pub use time;
