//! Signed offline licenses for self-hosted installations.
//!
//! A self-hoster unlocks modules with a license file the vendor signs; it is
//! checked offline, strictly, and every refusal says why (see
//! `docs/licensing.md` for the format and every field, error and state):
//!
//! * [`payload`] — what a license says (licensee, edition, dates, modules,
//!   limits, instance binding, grace days);
//! * [`file`] — the armored file: [`issue`] (vendor side) and [`verify`];
//! * [`keys`] — the vendor keys compiled in, and the test key;
//! * [`state`] — trial, active, grace, expired, clock moved back; per-module
//!   coverage; limits; all pure functions of the license and the times;
//! * [`store`] — the installed license in the database;
//! * [`describe`] — every field in words.
//!
//! # Keys and builds
//!
//! Release builds trust only [`keys::VENDOR_KEYS`]. The cargo feature
//! `dev-keys` also trusts the test key whose private half is checked in at
//! `core/keys/license-test.key`. Tests get it through `kontor`'s
//! dev-dependency on itself, so `cargo test --workspace` (and `cargo bench`,
//! `cargo clippy --all-targets`) build with it while building the binary
//! alone never does. Release packaging builds with exactly:
//!
//! ```text
//! cargo build --release --locked -p kontor --bin kontor
//! ```
//!
//! (no `--features dev-keys`, no `--all-targets`/`--tests`); `kontor license
//! status` prints a warning when the running build trusts the test key.
//!
//! # What the entitlement and web integration should call
//!
//! Not wired yet (the later step owns `modules/` and `web/`):
//! * on `serve` start, and then hourly: [`store::touch_last_seen`] with the
//!   clock's now (it also makes the installation row, starting the trial);
//! * the one entitlement check, for a module of a self-hosted tenant:
//!   [`store::status`] (cache it; it changes on install and with time) and
//!   [`state::module_access`]`(&status.state, status.license.as_ref(), id,
//!   version, now)`; a write, job or event of a `ReadOnly` module is refused
//!   with [`state::ModuleAccess::check_write`] (`license_expired`), GETs
//!   still run;
//! * creating a user/customer/tenant: [`store::LicenseStatus::check_limit`]
//!   with the current count, in the creating transaction;
//! * `POST /api/v1/license` and the upload form: [`store::install`] (the
//!   error is already a `crate::Error` with the right code and status);
//!   `GET /api/v1/license`: [`store::status`] (it is `Serialize`) plus
//!   [`describe::describe`] and [`store::LicenseStatus::explanation`];
//! * banners and the daily e-mail: [`state::LicenseState::needs_attention`].
//! The installation's hostname for binding is the host of `public_url`.

pub mod describe;
mod error;
pub mod file;
pub mod keys;
pub mod payload;
pub mod state;
pub mod store;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
pub(crate) mod testing;

pub use error::LicenseError;
pub use file::{issue, verify, Instance, License};
pub use keys::{KeyKind, KeySet};
pub use payload::{Edition, LicensePayload, Licensee, Limits, ModuleGrant};
pub use state::{evaluate, LicenseState, LimitKind, ModuleAccess, Timeline};
pub use store::LicenseStatus;
