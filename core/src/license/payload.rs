//! What a license says: the payload that the vendor signs.
//!
//! The JSON carries RFC 3339 timestamps, so a person reading a decoded
//! license sees dates; in memory every time is Unix milliseconds, like the
//! rest of Kontor (see [`crate::clock`]). Unknown fields are refused: a
//! field this build does not understand could be a restriction it would
//! silently ignore.

use std::fmt;
use std::str::FromStr;

use semver::VersionReq;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use crate::clock::{rfc3339, to_ms};

/// The payload format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Days a license keeps working after it expires, unless it says otherwise.
pub const DEFAULT_GRACE_DAYS: u32 = 14;
/// The longest grace a license may give; a longer one is a typo.
pub const MAX_GRACE_DAYS: u32 = 365;
/// The module id that stands for every module (an "all modules" license
/// also covers modules released after it was issued).
pub const ALL_MODULES: &str = "*";
const MAX_TEXT_LEN: usize = 200;

/// The signed content of a license file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensePayload {
    /// Always [`FORMAT_VERSION`] for files this build writes.
    pub format_version: u32,
    /// The vendor's id of this license (shown to the admin, quoted to support).
    pub license_id: String,
    /// Who the license is for.
    pub licensee: Licensee,
    /// The edition sold.
    pub edition: Edition,
    /// When the vendor issued it (Unix ms).
    #[serde(with = "rfc3339_ms")]
    pub issued_at: i64,
    /// From when it may be used (Unix ms).
    #[serde(with = "rfc3339_ms")]
    pub valid_from: i64,
    /// When it ends (Unix ms); `None` is a perpetual license, which then
    /// names `updates_until`.
    #[serde(
        default,
        with = "rfc3339_ms::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<i64>,
    /// Until when a perpetual license includes updates (Unix ms).
    #[serde(
        default,
        with = "rfc3339_ms::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub updates_until: Option<i64>,
    /// The installation it is bound to; `None` (the default) works on any,
    /// so restoring a backup onto a new machine keeps it working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<InstanceBinding>,
    /// The modules it unlocks.
    #[serde(default)]
    pub modules: Vec<ModuleGrant>,
    /// Caps on users, customers and tenants.
    #[serde(default)]
    pub limits: Limits,
    /// Days licensed modules keep working after expiry.
    #[serde(default = "default_grace_days")]
    pub grace_days: u32,
}

fn default_grace_days() -> u32 {
    DEFAULT_GRACE_DAYS
}

/// Who a license is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licensee {
    /// The person or organisation's name.
    pub name: String,
    /// Contact e-mail.
    pub email: String,
    /// Company, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
}

/// The edition sold. It is shown to the admin; what a license unlocks is
/// its module list, so a custom deal needs no new edition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    /// Small teams.
    Starter,
    /// The usual edition.
    Professional,
    /// Large installations.
    Enterprise,
}

impl Edition {
    /// The name used in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Starter => "starter",
            Edition::Professional => "professional",
            Edition::Enterprise => "enterprise",
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Edition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "starter" => Ok(Edition::Starter),
            "professional" => Ok(Edition::Professional),
            "enterprise" => Ok(Edition::Enterprise),
            other => Err(format!(
                "unknown edition {other:?}: use starter, professional or enterprise"
            )),
        }
    }
}

/// The installation a license is bound to: its instance id (made once per
/// install, kept in the database, so it survives a backup restore) and/or
/// the host name of its public URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceBinding {
    /// `kontor license status` shows an installation's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Host of `public_url` (`KONTOR_PUBLIC_URL`), compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// One module a license unlocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleGrant {
    /// Module id, or [`ALL_MODULES`].
    pub id: String,
    /// Versions covered; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<VersionReq>,
    /// An end of its own, earlier than the license's (Unix ms).
    #[serde(
        default,
        with = "rfc3339_ms::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<i64>,
}

impl FromStr for ModuleGrant {
    type Err = String;

    /// The command-line form `id[@version requirement][/expiry date]`,
    /// e.g. `billing@^1.2/2027-06-30`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, expires_at) = match s.split_once('/') {
            Some((rest, date)) => (rest, Some(parse_time_arg(date)?)),
            None => (s, None),
        };
        let (id, version) = match rest.split_once('@') {
            Some((id, req)) => (
                id,
                Some(
                    VersionReq::parse(req)
                        .map_err(|e| format!("module {id}: version requirement {req:?}: {e}"))?,
                ),
            ),
            None => (rest, None),
        };
        let grant = ModuleGrant {
            id: id.trim().to_string(),
            version,
            expires_at,
        };
        check_module_id(&grant.id)?;
        Ok(grant)
    }
}

/// Caps a license sets; `None` is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Users (all tenants together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u64>,
    /// Customers (all tenants together).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    /// Tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<u64>,
}

impl LicensePayload {
    /// Check what types alone do not: a payload that passes can be issued
    /// and is evaluated without surprises. The error is a sentence naming
    /// the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.format_version != FORMAT_VERSION {
            return Err(format!(
                "format_version must be {FORMAT_VERSION}, not {}",
                self.format_version
            ));
        }
        check_text("license_id", &self.license_id)?;
        check_text("licensee.name", &self.licensee.name)?;
        check_text("licensee.email", &self.licensee.email)?;
        if !self.licensee.email.contains('@') {
            return Err("licensee.email is not an e-mail address".into());
        }
        if let Some(company) = &self.licensee.company {
            check_text("licensee.company", company)?;
        }
        match (self.expires_at, self.updates_until) {
            (Some(expires), _) if expires <= self.valid_from => {
                return Err("expires_at must be after valid_from".into())
            }
            (None, None) => {
                return Err(
                    "a license without expires_at (perpetual) must name updates_until".into(),
                )
            }
            _ => {}
        }
        if self.grace_days > MAX_GRACE_DAYS {
            return Err(format!(
                "grace_days must be at most {MAX_GRACE_DAYS}, not {}",
                self.grace_days
            ));
        }
        if let Some(binding) = &self.instance {
            if binding.instance_id.is_none() && binding.hostname.is_none() {
                return Err("instance must name an instance_id, a hostname or both".into());
            }
            if let Some(id) = &binding.instance_id {
                check_text("instance.instance_id", id)?;
            }
            if let Some(host) = &binding.hostname {
                check_text("instance.hostname", host)?;
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for grant in &self.modules {
            check_module_id(&grant.id)?;
            if !seen.insert(grant.id.as_str()) {
                return Err(format!("module {} is listed twice", grant.id));
            }
        }
        Ok(())
    }

    /// The grant that covers module `id`: its own entry, else [`ALL_MODULES`].
    pub fn module(&self, id: &str) -> Option<&ModuleGrant> {
        self.modules
            .iter()
            .find(|m| m.id == id)
            .or_else(|| self.modules.iter().find(|m| m.id == ALL_MODULES))
    }
}

fn check_text(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    if value.chars().count() > MAX_TEXT_LEN || value.chars().any(char::is_control) {
        return Err(format!(
            "{field} must be at most {MAX_TEXT_LEN} characters without control characters"
        ));
    }
    Ok(())
}

fn check_module_id(id: &str) -> Result<(), String> {
    let ok = id == ALL_MODULES
        || (!id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "module id {:?} must be `*` or lowercase letters, digits, `-` and `_`",
            id.escape_debug().to_string()
        ))
    }
}

/// Parse an RFC 3339 timestamp to Unix ms.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(text, &Rfc3339)
        .map(to_ms)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"))
}

/// A time given on the command line: RFC 3339, or a bare `YYYY-MM-DD`,
/// which means 00:00 UTC of that day.
pub fn parse_time_arg(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.len() == 10 {
        return parse_rfc3339(&format!("{text}T00:00:00Z"))
            .map_err(|_| format!("{text:?} is not a date (YYYY-MM-DD)"));
    }
    parse_rfc3339(text)
}

/// Serde for Unix ms stored as RFC 3339 text.
mod rfc3339_ms {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text).map_err(D::Error::custom)
    }

    /// The same for optional times (absent or null is `None`).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => super::serialize(ms, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] i64);
            Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(ms)| ms))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::testing::{payload, T0};

    #[test]
    fn payload_json_uses_rfc3339_and_round_trips_to_the_same_ms() {
        let p = payload();
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["issued_at"], "2026-01-01T00:00:00Z");
        assert_eq!(json["edition"], "professional");
        let back: LicensePayload = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.issued_at, T0);
    }

    #[test]
    fn defaults_fill_grace_days_modules_and_limits() {
        let json = serde_json::json!({
            "format_version": 1, "license_id": "L-1", "edition": "starter",
            "licensee": {"name": "Ada", "email": "ada@example.com"},
            "issued_at": "2026-01-01T00:00:00Z", "valid_from": "2026-01-01T00:00:00+01:00",
            "expires_at": null, "updates_until": "2027-01-01T00:00:00Z"
        });
        let p: LicensePayload = serde_json::from_value(json).unwrap();
        assert_eq!(p.grace_days, DEFAULT_GRACE_DAYS);
        assert_eq!(p.limits, Limits::default());
        assert!(p.modules.is_empty() && p.instance.is_none() && p.expires_at.is_none());
        assert_eq!(p.valid_from, T0 - 3_600_000, "offsets are honoured");
        p.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        let mut json = serde_json::to_value(payload()).unwrap();
        json["limits"]["seats"] = 3.into();
        assert!(serde_json::from_value::<LicensePayload>(json).is_err());
        let mut json = serde_json::to_value(payload()).unwrap();
        json["colour"] = "red".into();
        assert!(serde_json::from_value::<LicensePayload>(json).is_err());
    }

    #[test]
    fn validate_names_the_field_that_is_wrong() {
        type Edit = fn(&mut LicensePayload);
        let cases: [(&str, Edit); 10] = [
            ("format_version", |p| p.format_version = 2),
            ("license_id", |p| p.license_id = " ".into()),
            ("licensee.email", |p| p.licensee.email = "x".into()),
            ("licensee.name", |p| p.licensee.name = "a\nb".into()),
            ("expires_at", |p| p.expires_at = Some(p.valid_from)),
            ("updates_until", |p| {
                p.expires_at = None;
                p.updates_until = None;
            }),
            ("grace_days", |p| p.grace_days = 400),
            ("instance", |p| {
                p.instance = Some(InstanceBinding {
                    instance_id: None,
                    hostname: None,
                })
            }),
            ("module id", |p| p.modules[0].id = "Billing!".into()),
            ("listed twice", |p| p.modules.push(p.modules[0].clone())),
        ];
        for (needle, edit) in cases {
            let mut p = payload();
            edit(&mut p);
            let err = p.validate().unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn module_grants_parse_from_the_command_line_form() {
        let g: ModuleGrant = "billing@^1.2/2027-06-30".parse().unwrap();
        assert_eq!(g.id, "billing");
        assert_eq!(g.version, Some(VersionReq::parse("^1.2").unwrap()));
        assert_eq!(
            g.expires_at,
            Some(parse_rfc3339("2027-06-30T00:00:00Z").unwrap())
        );
        let g: ModuleGrant = "*".parse().unwrap();
        assert_eq!((g.id.as_str(), g.version, g.expires_at), ("*", None, None));
        assert!("billing@not-a-req".parse::<ModuleGrant>().is_err());
        assert!("billing/2027-13-01".parse::<ModuleGrant>().is_err());
        assert!("Bad Id".parse::<ModuleGrant>().is_err());
    }

    #[test]
    fn a_specific_grant_wins_over_the_wildcard() {
        let mut p = payload();
        p.modules.push("*@^9".parse().unwrap());
        assert_eq!(p.module("billing").unwrap().id, "billing");
        assert_eq!(p.module("other").unwrap().id, "*");
        p.modules.pop();
        assert!(p.module("other").is_none());
    }

    #[test]
    fn editions_parse_and_print_the_same_names() {
        for e in [Edition::Starter, Edition::Professional, Edition::Enterprise] {
            assert_eq!(e.to_string().parse::<Edition>().unwrap(), e);
        }
        assert!("gold".parse::<Edition>().unwrap_err().contains("starter"));
    }
}
