//! The Kontor module runtime: loads `kontor:module` WebAssembly components
//! with wasmtime and calls them in isolation.
//!
//! * [`engine`] — one wasmtime engine: pooling allocator, epoch ticker,
//!   memory limits, on-disk cache of compiled components;
//! * [`compiled`] — a module version compiled and pre-linked once
//!   (`InstancePre`), with its contract version checked before instantiation;
//! * [`api`] — the contract versions this host serves, one binding module each;
//! * [`host`] — the capabilities a module imports (records, events, log,
//!   settings, secrets, crm, outbound HTTP under a policy), as a trait the
//!   embedding host implements per call;
//! * [`call`] — calling an export on a fresh store with a deadline;
//! * [`error`] — how a call can fail.
//!
//! The runtime knows nothing of tenants or databases: the embedding host
//! binds both into the [`host::Capabilities`] it hands to each call, so a
//! module can never name a tenant.

pub mod api;
pub mod call;
pub mod compiled;
pub mod engine;
pub mod error;
pub mod host;

pub use call::{Call, Deadlines};
pub use compiled::CompiledModule;
pub use engine::{Runtime, RuntimeConfig};
pub use error::CallError;
pub use host::Capabilities;

/// The first-party modules built into this binary, trusted as part of it:
/// (manifest text, component bytes).
pub mod bundled {
    /// The `hello` module.
    pub const HELLO: (&str, &[u8]) = (
        include_str!("../../../modules/hello/module.toml"),
        include_bytes!(concat!(env!("OUT_DIR"), "/hello.wasm")),
    );

    /// The `tickets` module: the support desk.
    pub const TICKETS: (&str, &[u8]) = (
        include_str!("../../../modules/tickets/module.toml"),
        include_bytes!(concat!(env!("OUT_DIR"), "/tickets.wasm")),
    );

    /// Every bundled module.
    pub const ALL: &[(&str, &[u8])] = &[HELLO, TICKETS];
}

/// Guests made for tests (never bundled): the folder holding their
/// components, e.g. `faults.wasm` via [`test_guest`].
pub const TEST_GUEST_DIR: &str = env!("OUT_DIR");

/// The manifest text of a test guest by id (`faults`).
pub fn test_guest_manifest(id: &str) -> std::io::Result<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../modules/testing")
        .join(id);
    std::fs::read_to_string(dir.join("module.toml"))
}

/// The bytes of a test guest component by id (`faults`).
pub fn test_guest(id: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(std::path::Path::new(TEST_GUEST_DIR).join(format!("{id}.wasm")))
}
