//! The contract versions this host serves.
//!
//! One WIT folder per released version lives in `sdk/wit/`; each gets a
//! binding module here (like Zed's extension host) that converts its
//! generated types to the version-independent ones in [`crate::host`] and
//! [`crate::call`]. A module declares the version it was built against; the
//! host picks the binding before instantiating it, and refuses — naming
//! both sides — a version it does not serve.

pub mod v0_1;

use semver::{Version, VersionReq};

/// Every contract version this host serves, oldest first.
pub fn supported() -> Vec<Version> {
    vec![v0_1::VERSION]
}

/// The contract versions as one readable list, e.g. `0.1.0`.
pub fn offered() -> String {
    supported()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The newest served version that satisfies `req`.
pub fn pick(req: &VersionReq) -> Option<Version> {
    supported().into_iter().rev().find(|v| req.matches(v))
}
