//! Every field of a license in words, for `kontor license inspect`, `status`
//! and (later) the admin's license page.

use crate::clock::rfc3339;

use super::file::License;
use super::keys::KeyKind;
use super::payload::ALL_MODULES;

/// (label, value) lines describing every field of `license`.
pub fn describe(license: &License) -> Vec<(&'static str, String)> {
    let p = license.payload();
    let licensee = match &p.licensee.company {
        Some(company) => format!("{} <{}>, {company}", p.licensee.name, p.licensee.email),
        None => format!("{} <{}>", p.licensee.name, p.licensee.email),
    };
    let signed_by = match license.key_kind() {
        KeyKind::Vendor => format!("vendor key {}", license.key_id()),
        KeyKind::Test => format!(
            "the TEST key {} (accepted only by development builds; not a real license)",
            license.key_id()
        ),
    };
    let expires = match (p.expires_at, p.updates_until) {
        (Some(at), _) => format!(
            "{} (then {} grace days until {}, after which licensed modules are read-only)",
            rfc3339(at),
            p.grace_days,
            rfc3339(at.saturating_add(i64::from(p.grace_days) * super::state::DAY_MS))
        ),
        (None, Some(updates)) => {
            format!(
                "never (perpetual; includes updates until {})",
                rfc3339(updates)
            )
        }
        (None, None) => "never".to_string(),
    };
    let instance = match &p.instance {
        None => "any installation (not bound)".to_string(),
        Some(b) => [
            b.instance_id.as_ref().map(|id| format!("instance id {id}")),
            b.hostname.as_ref().map(|h| format!("host name {h}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and "),
    };
    let modules = if p.modules.is_empty() {
        "none (the core CRM needs no license)".to_string()
    } else {
        p.modules
            .iter()
            .map(|m| {
                let mut s = if m.id == ALL_MODULES {
                    "every module".to_string()
                } else {
                    m.id.clone()
                };
                if let Some(req) = &m.version {
                    s.push_str(&format!(" (versions {req})"));
                }
                if let Some(at) = m.expires_at {
                    s.push_str(&format!(" until {}", rfc3339(at)));
                }
                s
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let limit = |v: Option<u64>| v.map_or("unlimited".to_string(), |n| n.to_string());
    vec![
        ("license id", p.license_id.clone()),
        ("signed by", signed_by),
        ("format", format!("version {}", p.format_version)),
        ("licensee", licensee),
        ("edition", p.edition.to_string()),
        ("issued", rfc3339(p.issued_at)),
        ("valid from", rfc3339(p.valid_from)),
        ("expires", expires),
        ("installation", instance),
        ("modules", modules),
        (
            "limits",
            format!(
                "users: {}, customers: {}, tenants: {}",
                limit(p.limits.users),
                limit(p.limits.customers),
                limit(p.limits.tenants)
            ),
        ),
        ("grace days", p.grace_days.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::file::verify;
    use crate::license::testing::{keys, payload, signed};

    #[test]
    fn every_field_is_described() {
        let license = verify(signed(&payload()).as_bytes(), &keys()).unwrap();
        let text: String = describe(&license)
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        for needle in [
            "L-2026-0001",
            "TEST key",
            "Ada Lovelace <ada@example.com>, Analytical Engines Ltd",
            "professional",
            "2026-01-01T00:00:00Z",
            "2027-01-01T00:00:00Z (then 14 grace days until 2027-01-15",
            "any installation",
            "billing (versions ^1), helpdesk until 2026-04-11",
            "users: 10, customers: unlimited",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
