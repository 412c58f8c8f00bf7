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
//! # Where licensing acts
//!
//! [`Licensing`] is this process's view of the installation's license (the
//! mode, the public host name, the trusted keys, the cached status); the
//! module host and the web state share one. It is used by:
//! * `kontor serve`: [`Licensing::record_time`] at start — which records the
//!   trial start on the first one — and then hourly, so a clock set back is
//!   noticed ([`store::touch_last_seen`]);
//! * the one entitlement check, `crate::modules::entitlements::access`:
//!   [`Licensing::module_access`] ([`state::module_access`] on the cached
//!   status) combined with the tenant's entitlement row; a read-only module
//!   serves GET routes and pages, its writes are refused with
//!   `license_expired`, its jobs and events are not run;
//! * creating users and customers (API, UI, CSV import):
//!   [`Licensing::quota`], checked in the creating transaction with
//!   [`Quota::check_tx`];
//! * `GET`/`PUT /api/v1/license` and the admin page `/license`:
//!   [`Licensing::status`], [`describe::describe`],
//!   [`store::LicenseStatus::explanation`], [`Licensing::install`]; the
//!   layout's banner for admins: [`state::LicenseState::needs_attention`].
//!
//! The installation's hostname for binding is the host of `public_url`.

pub mod describe;
mod error;
pub mod file;
pub mod keys;
pub mod licensing;
pub mod payload;
/// The daily reminder e-mail while the license needs attention.
pub mod reminders;
pub mod state;
pub mod store;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
pub(crate) mod testing;

pub use error::LicenseError;
pub use file::{issue, verify, Instance, License};
pub use keys::{KeyKind, KeySet};
pub use licensing::{Licensing, Quota};
pub use payload::{Edition, LicensePayload, Licensee, Limits, ModuleGrant};
pub use state::{evaluate, LicenseState, LimitKind, ModuleAccess, Timeline};
pub use store::LicenseStatus;
