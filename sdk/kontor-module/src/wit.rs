//! The `kontor:module` contract this CLI was built against: the WIT in
//! `sdk/wit/`, compiled in, so `new` writes a matching `api` requirement and
//! `build` checks a component against it.

use anyhow::Context;
use wit_parser::{Resolve, WorldId};

/// The newest contract version folder under `sdk/wit/`.
const MODULE_WIT: &str = include_str!("../../wit/0.1.0/module.wit");

/// The parsed `kontor:module` world.
pub struct Contract {
    /// Everything the WIT defines.
    pub resolve: Resolve,
    /// The `module` world: what a component imports and exports.
    pub world: WorldId,
    /// The package version, e.g. `0.1.0`.
    pub version: semver::Version,
}

impl Contract {
    /// Parse the compiled-in WIT.
    pub fn load() -> anyhow::Result<Contract> {
        let mut resolve = Resolve::default();
        let package = resolve
            .push_str("sdk/wit/0.1.0/module.wit", MODULE_WIT)
            .context("parsing the compiled-in kontor:module WIT")?;
        let world = resolve
            .select_world(&[package], Some("module"))
            .context("the compiled-in kontor:module WIT has no `module` world")?;
        let version = resolve.packages[package]
            .name
            .version
            .clone()
            .context("the compiled-in kontor:module WIT has no version")?;
        Ok(Contract {
            resolve,
            world,
            version,
        })
    }

    /// The `api` requirement a new module declares: `^MAJOR.MINOR`.
    pub fn api_requirement(&self) -> String {
        format!("^{}.{}", self.version.major, self.version.minor)
    }
}
