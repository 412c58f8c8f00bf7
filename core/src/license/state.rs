//! What a license (or its absence) means at a given time: a pure function
//! of the verified license, the trial start, now and the last time seen, so
//! every state is tested with plain numbers.
//!
//! Nothing here ever hides data: the harshest answer is read-only.

use semver::Version;
use serde::Serialize;

use crate::clock::rfc3339;
use crate::error::{Code, Error, Result};

use super::file::License;
use super::payload::Limits;

/// One day in Unix ms.
pub const DAY_MS: i64 = 86_400_000;
/// Days of the trial a fresh self-hosted install gets for every module;
/// the same length as a module's own trial.
pub const TRIAL_DAYS: i64 = crate::modules::entitlements::TRIAL_DAYS;
/// How many days before the trial ends admins start seeing a warning.
pub const TRIAL_WARNING_DAYS: i64 = 7;
/// How far the clock may go back behind the last time seen before it
/// counts as moved back (time zones, NTP corrections, a restored VM).
pub const CLOCK_ROLLBACK_TOLERANCE_MS: i64 = DAY_MS;

/// The times a state depends on (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// When this installation first started (recorded once).
    pub trial_started_at: i64,
    /// The latest time this installation has seen (persisted; never moves back).
    pub last_seen_at: i64,
    /// Now.
    pub now: i64,
}

/// The licensing state of an installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LicenseState {
    /// No (usable) license yet: every module until `ends_at`.
    Trial {
        /// Unix ms.
        ends_at: i64,
    },
    /// Licensed; `expires_at` is `None` for a perpetual license.
    Active {
        /// Unix ms.
        expires_at: Option<i64>,
    },
    /// Expired, still working until `read_only_from`; admins see a warning.
    Grace {
        /// Unix ms.
        expired_at: i64,
        /// Unix ms.
        read_only_from: i64,
    },
    /// Licensed modules are read-only: their data can be seen and exported,
    /// not changed. The core CRM keeps working.
    Expired {
        /// Since when (Unix ms).
        since: i64,
        /// What ended.
        cause: ExpiryCause,
    },
    /// The clock is earlier than a time this installation has already seen:
    /// treated as expired until the clock is right again.
    ClockMovedBack {
        /// Unix ms.
        now: i64,
        /// Unix ms.
        last_seen_at: i64,
    },
}

/// What ended in [`LicenseState::Expired`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryCause {
    /// The trial, with no license installed.
    Trial,
    /// The license, after its grace days.
    License,
}

/// The state at `t.now`. A license that is active or in grace wins; an
/// expired license does not cut a still running trial short.
pub fn evaluate(license: Option<&License>, t: Timeline) -> LicenseState {
    if t.now < t.last_seen_at.saturating_sub(CLOCK_ROLLBACK_TOLERANCE_MS) {
        return LicenseState::ClockMovedBack {
            now: t.now,
            last_seen_at: t.last_seen_at,
        };
    }
    let trial_ends_at = t.trial_started_at.saturating_add(TRIAL_DAYS * DAY_MS);
    let licensed = license.filter(|l| l.has_started(t.now)).map(|l| {
        let p = l.payload();
        match p.expires_at {
            None => LicenseState::Active { expires_at: None },
            Some(expired_at) if t.now < expired_at => LicenseState::Active {
                expires_at: Some(expired_at),
            },
            Some(expired_at) => {
                let read_only_from = with_grace(expired_at, p.grace_days);
                if t.now < read_only_from {
                    LicenseState::Grace {
                        expired_at,
                        read_only_from,
                    }
                } else {
                    LicenseState::Expired {
                        since: read_only_from,
                        cause: ExpiryCause::License,
                    }
                }
            }
        }
    });
    match licensed {
        Some(state @ (LicenseState::Active { .. } | LicenseState::Grace { .. })) => state,
        _ if t.now < trial_ends_at => LicenseState::Trial {
            ends_at: trial_ends_at,
        },
        Some(expired) => expired,
        None => LicenseState::Expired {
            since: trial_ends_at,
            cause: ExpiryCause::Trial,
        },
    }
}

fn with_grace(expired_at: i64, grace_days: u32) -> i64 {
    expired_at.saturating_add(i64::from(grace_days) * DAY_MS)
}

impl LicenseState {
    /// Short name: trial, active, grace, expired, clock_moved_back.
    pub fn name(&self) -> &'static str {
        match self {
            LicenseState::Trial { .. } => "trial",
            LicenseState::Active { .. } => "active",
            LicenseState::Grace { .. } => "grace",
            LicenseState::Expired { .. } => "expired",
            LicenseState::ClockMovedBack { .. } => "clock_moved_back",
        }
    }

    /// Whether admins should see a warning banner (and get the daily
    /// e-mail, [`super::reminders`]) at `now`: in grace, expired, with the clock moved back, and
    /// in the last [`TRIAL_WARNING_DAYS`] of the trial — not all through
    /// it, or the banner becomes noise nobody reads.
    pub fn needs_attention(&self, now: i64) -> bool {
        match *self {
            LicenseState::Active { .. } => false,
            LicenseState::Trial { ends_at } => ends_at - now <= TRIAL_WARNING_DAYS * DAY_MS,
            LicenseState::Grace { .. }
            | LicenseState::Expired { .. }
            | LicenseState::ClockMovedBack { .. } => true,
        }
    }

    /// What the state means and what to do, for the admin.
    pub fn explanation(&self) -> String {
        match *self {
            LicenseState::Trial { ends_at } => format!(
                "Trial: every module is available until {}. Install a license (`kontor license install <file>`) to keep using licensed modules after that; nothing is deleted when the trial ends.",
                rfc3339(ends_at)
            ),
            LicenseState::Active { expires_at: None } => {
                "Licensed: the license does not expire.".to_string()
            }
            LicenseState::Active {
                expires_at: Some(at),
            } => format!("Licensed until {}.", rfc3339(at)),
            LicenseState::Grace {
                expired_at,
                read_only_from,
            } => format!(
                "The license expired at {}. Licensed modules keep working until {}, then become read-only (their data stays visible and exportable). Install a renewed license to avoid that.",
                rfc3339(expired_at),
                rfc3339(read_only_from)
            ),
            LicenseState::Expired {
                since,
                cause: ExpiryCause::License,
            } => format!(
                "The license has expired; since {} licensed modules are read-only: their data stays visible and exportable, and the core CRM keeps working. Install a renewed license to unlock them.",
                rfc3339(since)
            ),
            LicenseState::Expired {
                since,
                cause: ExpiryCause::Trial,
            } => format!(
                "The trial ended at {}; licensed modules are read-only: their data stays visible and exportable, and the core CRM keeps working. Install a license to unlock them.",
                rfc3339(since)
            ),
            LicenseState::ClockMovedBack { now, last_seen_at } => format!(
                "The server's clock says {}, but this installation already saw {}: the clock moved back by more than a day. Licensed modules are read-only until the clock is correct again (set the time or enable NTP); no data is lost.",
                rfc3339(now),
                rfc3339(last_seen_at)
            ),
        }
    }
}

/// Whether, and how far, a license covers one module (version) at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "coverage", rename_all = "snake_case")]
pub enum Coverage {
    /// Covered; `until` is the module's own or the license's end, if any.
    Covered {
        /// Unix ms.
        until: Option<i64>,
    },
    /// The module's own end has passed; it works until `read_only_from`.
    Grace {
        /// Unix ms.
        expired_at: i64,
        /// Unix ms.
        read_only_from: i64,
    },
    /// The module's own end and its grace have passed.
    Expired {
        /// Unix ms.
        expired_at: i64,
    },
    /// The license covers other versions of the module.
    VersionNotCovered {
        /// The requirement in the license.
        requirement: String,
    },
    /// The license does not list the module.
    NotIncluded,
}

impl License {
    /// How this license covers module `id` at `version` at `now`, taking
    /// only the module's own entry into account (the license's own expiry
    /// is the [`LicenseState`]).
    pub fn coverage(&self, id: &str, version: &Version, now: i64) -> Coverage {
        let p = self.payload();
        let Some(grant) = p.module(id) else {
            return Coverage::NotIncluded;
        };
        if let Some(req) = &grant.version {
            if !req.matches(version) {
                return Coverage::VersionNotCovered {
                    requirement: req.to_string(),
                };
            }
        }
        match grant.expires_at {
            Some(expired_at) if now >= expired_at => {
                let read_only_from = with_grace(expired_at, p.grace_days);
                if now < read_only_from {
                    Coverage::Grace {
                        expired_at,
                        read_only_from,
                    }
                } else {
                    Coverage::Expired { expired_at }
                }
            }
            own => Coverage::Covered {
                until: match (own, p.expires_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            },
        }
    }
}

/// What the license side allows a module to do. There is no "hidden":
/// data a module holds stays readable whatever the license says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "access", rename_all = "snake_case")]
pub enum ModuleAccess {
    /// Reads and writes, jobs and events.
    Enabled,
    /// GET routes and pages only; writes, jobs and events are refused.
    ReadOnly {
        /// Why, for the refusal and the admin's modules page.
        reason: String,
    },
}

impl ModuleAccess {
    /// `Ok` when enabled; else `license_expired` with the reason, for a
    /// write, job or event of the module.
    pub fn check_write(&self) -> Result<()> {
        match self {
            ModuleAccess::Enabled => Ok(()),
            ModuleAccess::ReadOnly { reason } => Err(Error::new(Code::LicenseExpired, reason)),
        }
    }
}

/// What the licensing state allows module `id` at `version`.
pub fn module_access(
    state: &LicenseState,
    license: Option<&License>,
    id: &str,
    version: &Version,
    now: i64,
) -> ModuleAccess {
    let read_only = |why: String| ModuleAccess::ReadOnly {
        reason: format!("the module `{id}` is read-only: {why}"),
    };
    match (state, license) {
        (LicenseState::Trial { .. }, _) => ModuleAccess::Enabled,
        (LicenseState::Active { .. } | LicenseState::Grace { .. }, Some(license)) => {
            match license.coverage(id, version, now) {
                Coverage::Covered { .. } | Coverage::Grace { .. } => ModuleAccess::Enabled,
                Coverage::Expired { expired_at } => read_only(format!(
                    "its license ended at {}; install a license that renews it",
                    rfc3339(expired_at)
                )),
                Coverage::VersionNotCovered { requirement } => read_only(format!(
                    "the license covers versions {requirement}, and version {version} is installed; install a covered version or a license for this one"
                )),
                Coverage::NotIncluded => read_only(format!(
                    "the license {} does not include it; ask your vendor to add it",
                    license.payload().license_id
                )),
            }
        }
        (LicenseState::Active { .. } | LicenseState::Grace { .. }, None) => {
            // evaluate() gives these states only with a license; answer
            // safely (read-only, never hidden) if a caller mixes them up.
            read_only("no license is installed".into())
        }
        (state @ (LicenseState::Expired { .. } | LicenseState::ClockMovedBack { .. }), _) => {
            read_only(state.explanation())
        }
    }
}

/// What a license limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Users.
    Users,
    /// Customers.
    Customers,
    /// Tenants.
    Tenants,
}

impl LimitKind {
    /// Plural noun, as in the message and `details.limit`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Users => "users",
            LimitKind::Customers => "customers",
            LimitKind::Tenants => "tenants",
        }
    }
}

impl Limits {
    /// The cap on `kind`, if any.
    pub fn max(&self, kind: LimitKind) -> Option<u64> {
        match kind {
            LimitKind::Users => self.users,
            LimitKind::Customers => self.customers,
            LimitKind::Tenants => self.tenants,
        }
    }

    /// Whether one more `kind` may be created while `current_count` exist;
    /// else `license_limit_reached` naming the limit. Existing records are
    /// never touched: a lower limit only stops new ones.
    pub fn check(&self, kind: LimitKind, current_count: u64) -> Result<()> {
        match self.max(kind) {
            Some(max) if current_count >= max => Err(Error::new(
                Code::LicenseLimitReached,
                format!(
                    "the license allows {max} {kind} and there are {current_count}; existing ones are kept, but no more can be added. Ask your vendor for a license with more {kind}",
                    kind = kind.as_str()
                ),
            )
            .with_details(serde_json::json!({
                "limit": kind.as_str(),
                "max": max,
                "current": current_count,
            }))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::file::verify;
    use crate::license::testing::{keys, payload, signed, DAY, T0};

    fn license(edit: impl FnOnce(&mut crate::license::LicensePayload)) -> License {
        let mut p = payload();
        edit(&mut p);
        verify(signed(&p).as_bytes(), &keys()).unwrap()
    }

    fn at(now: i64) -> Timeline {
        Timeline {
            trial_started_at: T0,
            last_seen_at: now,
            now,
        }
    }

    /// Every state, with the trial started at T0 and the sample license
    /// valid from T0 for 365 days with 14 grace days.
    #[test]
    fn states_follow_trial_license_grace_expiry_and_the_clock() {
        let yearly = license(|_| {});
        let expires = T0 + 365 * DAY;
        let read_only_from = expires + 14 * DAY;
        let perpetual = license(|p| {
            p.expires_at = None;
            p.updates_until = Some(T0 + 365 * DAY);
        });
        let short = license(|p| p.expires_at = Some(T0 + 5 * DAY));
        let later = license(|p| p.valid_from = T0 + 40 * DAY);
        let trial_end = T0 + 30 * DAY;
        let cases: Vec<(&str, Option<&License>, Timeline, LicenseState)> = vec![
            (
                "fresh install",
                None,
                at(T0),
                LicenseState::Trial { ends_at: trial_end },
            ),
            (
                "last trial moment",
                None,
                at(trial_end - 1),
                LicenseState::Trial { ends_at: trial_end },
            ),
            (
                "trial over",
                None,
                at(trial_end),
                LicenseState::Expired {
                    since: trial_end,
                    cause: ExpiryCause::Trial,
                },
            ),
            (
                "licensed",
                Some(&yearly),
                at(T0 + DAY),
                LicenseState::Active {
                    expires_at: Some(expires),
                },
            ),
            (
                "licensed after the trial",
                Some(&yearly),
                at(T0 + 100 * DAY),
                LicenseState::Active {
                    expires_at: Some(expires),
                },
            ),
            (
                "perpetual, years later",
                Some(&perpetual),
                at(T0 + 3000 * DAY),
                LicenseState::Active { expires_at: None },
            ),
            (
                "expiry day starts the grace",
                Some(&yearly),
                at(expires),
                LicenseState::Grace {
                    expired_at: expires,
                    read_only_from,
                },
            ),
            (
                "last grace moment",
                Some(&yearly),
                at(read_only_from - 1),
                LicenseState::Grace {
                    expired_at: expires,
                    read_only_from,
                },
            ),
            (
                "after the grace",
                Some(&yearly),
                at(read_only_from),
                LicenseState::Expired {
                    since: read_only_from,
                    cause: ExpiryCause::License,
                },
            ),
            (
                "an expired license does not cut the trial short",
                Some(&short),
                at(T0 + 25 * DAY),
                LicenseState::Trial { ends_at: trial_end },
            ),
            (
                "... but counts once the trial is over",
                Some(&short),
                at(T0 + 40 * DAY),
                LicenseState::Expired {
                    since: T0 + 19 * DAY,
                    cause: ExpiryCause::License,
                },
            ),
            (
                "a license not valid yet leaves the trial running",
                Some(&later),
                at(T0 + 10 * DAY),
                LicenseState::Trial { ends_at: trial_end },
            ),
            (
                "clock back by less than a day is tolerated",
                Some(&yearly),
                Timeline {
                    trial_started_at: T0,
                    last_seen_at: T0 + 10 * DAY,
                    now: T0 + 9 * DAY,
                },
                LicenseState::Active {
                    expires_at: Some(expires),
                },
            ),
            (
                "clock back by more than a day",
                Some(&yearly),
                Timeline {
                    trial_started_at: T0,
                    last_seen_at: T0 + 10 * DAY,
                    now: T0 + 9 * DAY - 1,
                },
                LicenseState::ClockMovedBack {
                    now: T0 + 9 * DAY - 1,
                    last_seen_at: T0 + 10 * DAY,
                },
            ),
            (
                "clock back during the trial",
                None,
                Timeline {
                    trial_started_at: T0,
                    last_seen_at: T0 + 20 * DAY,
                    now: T0 + 2 * DAY,
                },
                LicenseState::ClockMovedBack {
                    now: T0 + 2 * DAY,
                    last_seen_at: T0 + 20 * DAY,
                },
            ),
        ];
        for (name, license, timeline, expected) in cases {
            let state = evaluate(license, timeline);
            assert_eq!(state, expected, "{name}");
            assert!(!state.explanation().is_empty());
        }
    }

    #[test]
    fn explanations_say_what_happens_and_what_to_do() {
        let moved = LicenseState::ClockMovedBack {
            now: T0,
            last_seen_at: T0 + 3 * DAY,
        };
        assert!(moved.explanation().contains("clock moved back"));
        let grace = LicenseState::Grace {
            expired_at: T0,
            read_only_from: T0 + 14 * DAY,
        };
        assert!(grace.explanation().contains("2026-01-15"));
        assert!(grace.explanation().contains("read-only"));
        assert!(grace.needs_attention(T0));
        assert!(!LicenseState::Active { expires_at: None }.needs_attention(T0));
        let trial = LicenseState::Trial {
            ends_at: T0 + 30 * DAY,
        };
        assert!(!trial.needs_attention(T0), "a fresh trial is no alarm");
        assert!(!trial.needs_attention(T0 + 23 * DAY - 1));
        assert!(trial.needs_attention(T0 + 23 * DAY), "its last week is");
        assert!(moved.needs_attention(T0));
    }

    #[test]
    fn module_coverage_checks_version_and_own_expiry() {
        // The sample license: billing ^1, helpdesk until T0 + 100 days.
        let l = license(|_| {});
        let v = |s: &str| Version::parse(s).unwrap();
        let helpdesk_end = T0 + 100 * DAY;
        let cases = [
            (
                "billing",
                "1.4.0",
                T0,
                Coverage::Covered {
                    until: Some(T0 + 365 * DAY),
                },
            ),
            (
                "billing",
                "2.0.0",
                T0,
                Coverage::VersionNotCovered {
                    requirement: "^1".into(),
                },
            ),
            (
                "helpdesk",
                "9.0.0",
                T0,
                Coverage::Covered {
                    until: Some(helpdesk_end),
                },
            ),
            (
                "helpdesk",
                "9.0.0",
                helpdesk_end,
                Coverage::Grace {
                    expired_at: helpdesk_end,
                    read_only_from: helpdesk_end + 14 * DAY,
                },
            ),
            (
                "helpdesk",
                "9.0.0",
                helpdesk_end + 14 * DAY,
                Coverage::Expired {
                    expired_at: helpdesk_end,
                },
            ),
            ("inventory", "1.0.0", T0, Coverage::NotIncluded),
        ];
        for (id, version, now, expected) in cases {
            assert_eq!(l.coverage(id, &v(version), now), expected, "{id} {version}");
        }
        let all = license(|p| p.modules = vec!["*".parse().unwrap()]);
        assert!(matches!(
            all.coverage("inventory", &v("3.0.0"), T0),
            Coverage::Covered { .. }
        ));
    }

    #[test]
    fn module_access_is_enabled_or_read_only_never_hidden() {
        let l = license(|_| {});
        let v1 = Version::new(1, 0, 0);
        let active = evaluate(Some(&l), at(T0 + 40 * DAY));
        let expired = evaluate(Some(&l), at(T0 + 400 * DAY));
        let trial = evaluate(None, at(T0));
        let moved = evaluate(
            Some(&l),
            Timeline {
                trial_started_at: T0,
                last_seen_at: T0 + 50 * DAY,
                now: T0 + 40 * DAY,
            },
        );
        let access =
            |state: &LicenseState, id: &str, now: i64| module_access(state, Some(&l), id, &v1, now);
        assert_eq!(access(&trial, "inventory", T0), ModuleAccess::Enabled);
        assert_eq!(
            access(&active, "billing", T0 + 40 * DAY),
            ModuleAccess::Enabled
        );
        for (name, got, needle) in [
            (
                "not included",
                access(&active, "inventory", T0 + 40 * DAY),
                "does not include",
            ),
            (
                "license expired",
                access(&expired, "billing", T0 + 400 * DAY),
                "has expired",
            ),
            (
                "module's own end",
                access(&active, "helpdesk", T0 + 200 * DAY),
                "ended at",
            ),
            (
                "clock moved back",
                access(&moved, "billing", T0 + 40 * DAY),
                "clock moved back",
            ),
        ] {
            let ModuleAccess::ReadOnly { reason } = &got else {
                panic!("{name}: {got:?}");
            };
            assert!(reason.contains(needle), "{name}: {reason}");
            let err = got.check_write().unwrap_err();
            assert_eq!(err.code(), Code::LicenseExpired, "{name}");
        }
        assert!(ModuleAccess::Enabled.check_write().is_ok());
    }

    #[test]
    fn limits_refuse_one_more_than_allowed_and_name_the_limit() {
        let limits = Limits {
            users: Some(3),
            customers: None,
            tenants: Some(1),
        };
        limits.check(LimitKind::Users, 2).unwrap();
        limits.check(LimitKind::Customers, 1_000_000).unwrap();
        for (kind, count) in [
            (LimitKind::Users, 3),
            (LimitKind::Users, 7),
            (LimitKind::Tenants, 1),
        ] {
            let err = limits.check(kind, count).unwrap_err();
            assert_eq!(err.code(), Code::LicenseLimitReached);
            assert!(err.to_string().contains(kind.as_str()), "{err}");
            let crate::Error::Api { details, .. } = err else {
                panic!("not an API error")
            };
            assert_eq!(details.unwrap()["limit"], kind.as_str());
        }
    }
}
