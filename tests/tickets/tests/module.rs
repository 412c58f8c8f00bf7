//! The `tickets` module on the `kontor-test` harness: the real host with
//! the component built from `modules/tickets`, the clock moved by the test
//! (the module reads the host's clock through WASI), everything through
//! the module's HTTP API as staff and portal users.
//!
//! One test binary on purpose (every file under `tests/` links its own).

#[path = "module/common.rs"]
mod common;
#[path = "module/desk.rs"]
mod desk;
#[path = "module/escalation.rs"]
mod escalation;
#[path = "module/sla.rs"]
mod sla;
