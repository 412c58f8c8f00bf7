//! Host capabilities: what a module may reach beyond its own records,
//! events, settings and log — deny by default.
//!
//! A module uses a capability only when both are true:
//! * its manifest declares it (`capabilities = ["secrets", "crm"]`), and
//! * an administrator accepted it for this install (recorded in
//!   `modules.accepted_capabilities`; bundled modules get what they declare,
//!   as part of the binary).
//!
//! [`check`] is the one place that answers "may module M use capability C
//! now?"; every capability's host code asks it before doing anything.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use tokio::sync::OnceCell;

use super::manifest::Manifest;
use crate::db::Db;
use crate::error::{Error, Result};

/// A capability a module can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Read secrets an administrator set for the module.
    Secrets,
    /// Read customers, contacts and users; write timeline entries and notes.
    Crm,
    /// Outbound HTTP to the hosts the manifest allows.
    Http,
    /// Send e-mail through the core's SMTP settings.
    Notify,
}

impl Capability {
    /// Every capability, in the order the documentation lists them.
    pub const ALL: [Capability; 4] = [
        Capability::Secrets,
        Capability::Crm,
        Capability::Http,
        Capability::Notify,
    ];

    /// The name a manifest uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Secrets => "secrets",
            Capability::Crm => "crm",
            Capability::Http => "http",
            Capability::Notify => "notify",
        }
    }

    /// The capability named `name`, if there is one.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Every name, for error messages.
    pub fn names() -> String {
        Capability::ALL.map(Capability::as_str).join(", ")
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parse capability names given by an administrator (`?accept=secrets,crm`);
/// an unknown name is refused, naming the known ones.
pub fn parse_list<S: AsRef<str>>(field: &str, names: &[S]) -> Result<BTreeSet<Capability>> {
    names
        .iter()
        .map(|n| n.as_ref().trim())
        .filter(|n| !n.is_empty())
        .map(|n| {
            Capability::parse(n).ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("unknown capability `{n}`; known: {}", Capability::names()),
                )
            })
        })
        .collect()
}

/// What the manifest asks for (validated names; unknown ones were refused
/// when the manifest was parsed).
pub fn requested(manifest: &Manifest) -> BTreeSet<Capability> {
    manifest
        .capabilities
        .iter()
        .filter_map(|c| Capability::parse(c))
        .collect()
}

/// The accepted set as stored: a JSON array of names.
pub(crate) fn to_stored(set: &BTreeSet<Capability>) -> String {
    serde_json::to_string(&set.iter().map(|c| c.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

/// The stored text back as a set; names this build does not know are
/// dropped (they grant nothing).
pub(crate) fn from_stored(text: &str) -> BTreeSet<Capability> {
    serde_json::from_str::<Vec<String>>(text)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| Capability::parse(n))
        .collect()
}

/// The capabilities accepted for module `id` (none when it is not installed).
pub async fn accepted(db: &Db, id: &str) -> Result<BTreeSet<Capability>> {
    let text: Option<String> =
        sqlx::query_scalar("SELECT accepted_capabilities FROM modules WHERE id = $1")
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    Ok(text.map(|t| from_stored(&t)).unwrap_or_default())
}

/// Why a module may not use a capability, in words that name the module,
/// the capability and the fix. Never contains data the module asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `Ok` if `manifest`'s module may use `capability` now; else the refusal,
/// also logged for the module's developer. What the administrator accepted
/// is read from the database once per module call (`accepted_in_call`
/// remembers it): a change applies to the next call, in every process.
pub async fn check(
    db: &Db,
    manifest: &Manifest,
    capability: Capability,
    accepted_in_call: &OnceCell<BTreeSet<Capability>>,
) -> std::result::Result<(), Refusal> {
    let id = &manifest.id;
    let refusal = if !requested(manifest).contains(&capability) {
        Refusal(format!(
            "module `{id}` may not use the capability `{capability}`: its manifest does not declare it \
             (add `capabilities = [\"{capability}\"]` to module.toml)"
        ))
    } else {
        match accepted_in_call
            .get_or_try_init(|| accepted(db, id))
            .await
        {
            Ok(set) if set.contains(&capability) => return Ok(()),
            Ok(_) => Refusal(format!(
                "module `{id}` may not use the capability `{capability}`: an administrator has not accepted it \
                 (PUT /api/v1/modules/{id}/capabilities, or install with ?accept={capability})"
            )),
            Err(e) => {
                tracing::error!(module = %id, %capability, error = %e, "could not read accepted capabilities");
                Refusal(format!(
                    "module `{id}`: the host could not check the capability `{capability}`; try again"
                ))
            }
        }
    };
    tracing::warn!(target: "kontor::module", module = %id, %capability, "capability refused: {refusal}");
    Err(refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused_by_name() {
        for c in Capability::ALL {
            assert_eq!(Capability::parse(c.as_str()), Some(c));
        }
        let set = parse_list("accept", &["crm", " secrets ", ""]).unwrap();
        assert_eq!(set, BTreeSet::from([Capability::Secrets, Capability::Crm]));
        let e = parse_list("accept", &["crm", "root"]).unwrap_err();
        assert!(e.to_string().contains("`root`"), "{e}");
        assert!(e.to_string().contains("secrets, crm, http, notify"), "{e}");
        assert_eq!(from_stored(&to_stored(&set)), set);
        assert_eq!(
            from_stored("[\"crm\", \"from-the-future\"]"),
            BTreeSet::from([Capability::Crm])
        );
        assert!(from_stored("not json").is_empty());
    }
}
