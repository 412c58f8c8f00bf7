//! What the module keeps in its record collections (declared in
//! `module.toml`), and the desk's configuration read from them: the
//! business-hours calendar, the SLA policies, the departments.
//!
//! A ticket's record id is its number (`T-2026-000123`), so the id order is
//! the order tickets were opened in and a queue pages newest first on the
//! id alone. Its messages are `{number}.{n:05}`, written in one batch with
//! the ticket's new version, so a thread never has a hole or a duplicate.

use std::collections::BTreeMap;

use jiff::civil::{Date, Time};
use kontor_sdk::records::{Collection, Record};
use kontor_sdk::Error;
use serde::{Deserialize, Serialize};

use crate::calendar::{BusinessHours, WEEKDAYS};
use crate::sla::{Policy, Priority, Targets};
use crate::ticket::Ticket;

/// Tickets, by number.
pub const TICKETS: Collection<Ticket> = Collection::new("tickets");
/// Thread messages, `{number}.{n:05}`.
pub const MESSAGES: Collection<Message> = Collection::new("messages");
/// Departments, by slug.
pub const DEPARTMENTS: Collection<Department> = Collection::new("departments");
/// Canned responses.
pub const CANNED: Collection<Canned> = Collection::new("canned");
/// SLA policies; `default` applies where no tier's policy does.
pub const POLICIES: Collection<PolicyRecord> = Collection::new("policies");
/// The business-hours calendar, one record `calendar`.
pub const CALENDAR: Collection<CalendarRecord> = Collection::new("calendar");

/// One message of a ticket's thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The ticket's id (its number).
    pub ticket_id: String,
    /// `customer` (from the customer, in the portal or by e-mail), `reply`
    /// (a public staff answer) or `note` (internal, never shown to the customer).
    pub kind: String,
    /// The user who wrote it; none for e-mail from outside.
    #[serde(default)]
    pub author_id: Option<String>,
    /// How the thread shows the author.
    pub author_name: String,
    /// Plain text.
    pub body: String,
    /// Unix ms.
    pub at: i64,
    /// Indexed: the Message-ID of the e-mail this message came in as or went
    /// out as, so a reply to it finds the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_message_id: Option<String>,
}

impl Message {
    /// Whether the customer may see it.
    pub fn is_public(&self) -> bool {
        self.kind != "note"
    }
}

/// The id of message `n` (1-based) of ticket `ticket_id`.
pub fn message_id(ticket_id: &str, n: u32) -> String {
    format!("{ticket_id}.{n:05}")
}

/// A department: who works its tickets and the address it answers from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    /// Shown to staff and customers.
    pub name: String,
    /// Indexed: the address customers write to and replies come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Staff user ids, in round-robin order.
    #[serde(default)]
    pub members: Vec<String>,
    /// `round_robin` (the next member in turn), `default` (always
    /// `default_assignee`) or `manual` (nobody until staff assign).
    #[serde(default = "manual")]
    pub assignment: String,
    /// The assignee of `default` assignment.
    #[serde(default)]
    pub default_assignee: Option<String>,
    /// Who got the last round-robin ticket.
    #[serde(default)]
    pub last_assigned: Option<String>,
    /// E-mail from an address no customer has: `lead` creates a customer
    /// (tagged `lead`), `reject` refuses the message.
    #[serde(default = "lead")]
    pub unknown_senders: String,
}

fn manual() -> String {
    "manual".into()
}

fn lead() -> String {
    "lead".into()
}

/// Assignment modes of a department.
pub const ASSIGNMENTS: [&str; 3] = ["round_robin", "default", "manual"];
/// What a department does with e-mail from unknown senders.
pub const UNKNOWN_SENDERS: [&str; 2] = ["lead", "reject"];

/// The department every tenant starts with.
pub const DEFAULT_DEPARTMENT: &str = "support";

impl Department {
    /// Check what an administrator sent; `Err` names the field.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "a department needs a name"));
        }
        if !ASSIGNMENTS.contains(&self.assignment.as_str()) {
            return Err(Error::invalid(
                "assignment",
                format!("one of {}", ASSIGNMENTS.join(", ")),
            ));
        }
        if !UNKNOWN_SENDERS.contains(&self.unknown_senders.as_str()) {
            return Err(Error::invalid(
                "unknown_senders",
                format!("one of {}", UNKNOWN_SENDERS.join(", ")),
            ));
        }
        if self.assignment == "default" && self.default_assignee.is_none() {
            return Err(Error::invalid(
                "default_assignee",
                "`default` assignment needs a default assignee",
            ));
        }
        if let Some(email) = &self.email {
            if !email.contains('@') || email.contains(char::is_whitespace) {
                return Err(Error::invalid("email", "not an e-mail address"));
            }
        }
        Ok(())
    }
}

/// The department `id`, creating the default one the first time a tenant
/// needs it.
pub fn department(id: &str) -> Result<Record<Department>, Error> {
    if let Some(d) = DEPARTMENTS.get(id)? {
        return Ok(d);
    }
    if id != DEFAULT_DEPARTMENT {
        return Err(Error::invalid(
            "department_id",
            format!("no department `{id}`"),
        ));
    }
    let support = Department {
        name: "Support".into(),
        email: None,
        members: Vec::new(),
        assignment: manual(),
        default_assignee: None,
        last_assigned: None,
        unknown_senders: lead(),
    };
    match DEPARTMENTS.insert(id, &support) {
        Ok(r) => Ok(r),
        // Made by a concurrent call meanwhile.
        Err(kontor_sdk::records::Error::Conflict(_)) => DEPARTMENTS
            .get(id)?
            .ok_or_else(|| Error::internal("the default department vanished")),
        Err(e) => Err(e.into()),
    }
}

/// Who gets a new ticket of department `id`: advances the round robin
/// (a version-checked write, so two tickets opened at once get different
/// members).
pub fn assign(id: &str) -> Result<Option<String>, Error> {
    let mut chosen = None;
    let dept = department(id)?;
    match dept.data.assignment.as_str() {
        "default" => return Ok(dept.data.default_assignee),
        "round_robin" if !dept.data.members.is_empty() => {}
        _ => return Ok(None),
    }
    DEPARTMENTS.modify(id, |current| {
        let mut d = current.unwrap_or_else(|| dept.data.clone());
        chosen =
            crate::desk::next_assignee(&d.members, d.last_assigned.as_deref()).map(str::to_string);
        d.last_assigned = chosen.clone();
        d
    })?;
    Ok(chosen)
}

/// A canned response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canned {
    /// How the picker lists it.
    pub title: String,
    /// The text, with placeholders (`{customer.name}`).
    pub body: String,
}

impl Canned {
    /// Check a canned response before it is saved: unknown placeholders are
    /// refused by name.
    pub fn validate(&self) -> Result<(), Error> {
        if self.title.trim().is_empty() {
            return Err(Error::invalid("title", "a canned response needs a title"));
        }
        let unknown = crate::canned::unknown_placeholders(&self.body);
        if !unknown.is_empty() {
            return Err(Error::invalid(
                "body",
                format!(
                    "unknown placeholders {}; known: {}",
                    unknown
                        .iter()
                        .map(|u| format!("{{{u}}}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    crate::canned::PLACEHOLDERS.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// The targets of one priority as stored, in working minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TargetMinutes {
    /// First public reply.
    #[serde(default)]
    pub first_response: Option<u32>,
    /// Next public reply after a customer message.
    #[serde(default)]
    pub update: Option<u32>,
    /// Resolution.
    #[serde(default)]
    pub resolution: Option<u32>,
}

/// An SLA policy as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Shown to staff.
    pub name: String,
    /// Customers with this CRM tag get this policy (a tier: `premium`);
    /// none for the default policy.
    #[serde(default)]
    pub customer_tag: Option<String>,
    /// Targets by priority (`low`, `normal`, `high`, `urgent`).
    pub targets: BTreeMap<String, TargetMinutes>,
}

/// The policy of a tenant that set none: urgent 1 h / 2 h / 8 h, high
/// 4 h / 8 h / 24 h, normal 8 h / 16 h / 40 h, low 16 h / 32 h / 80 h (first
/// response / update / resolution, working hours).
pub fn default_policy() -> PolicyRecord {
    let t = |f: u32, u: u32, r: u32| TargetMinutes {
        first_response: Some(f * 60),
        update: Some(u * 60),
        resolution: Some(r * 60),
    };
    PolicyRecord {
        name: "Standard".into(),
        customer_tag: None,
        targets: BTreeMap::from([
            ("low".into(), t(16, 32, 80)),
            ("normal".into(), t(8, 16, 40)),
            ("high".into(), t(4, 8, 24)),
            ("urgent".into(), t(1, 2, 8)),
        ]),
    }
}

impl PolicyRecord {
    /// Check a policy before it is saved.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.trim().is_empty() {
            return Err(Error::invalid("name", "a policy needs a name"));
        }
        for key in self.targets.keys() {
            if Priority::parse(key).is_none() {
                return Err(Error::invalid(
                    &format!("targets.{key}"),
                    "not a priority (low, normal, high, urgent)",
                ));
            }
        }
        for (key, t) in &self.targets {
            for (name, v) in [
                ("first_response", t.first_response),
                ("update", t.update),
                ("resolution", t.resolution),
            ] {
                if v == Some(0) {
                    return Err(Error::invalid(
                        &format!("targets.{key}.{name}"),
                        "a target is at least 1 minute (leave it out for none)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// As the SLA engine takes it.
    pub fn policy(&self) -> Policy {
        Policy {
            targets: Priority::ALL.map(|p| {
                let t = self.targets.get(p.as_str()).copied().unwrap_or_default();
                Targets {
                    first_response: t.first_response,
                    update: t.update,
                    resolution: t.resolution,
                }
            }),
        }
    }
}

/// The policy `id` (the default one when it is gone or was never set).
pub fn policy(id: &str) -> Result<Policy, Error> {
    Ok(POLICIES
        .get(id)?
        .map(|r| r.data)
        .unwrap_or_else(default_policy)
        .policy())
}

/// The policy for a customer with `tags`: the first tier policy (by id)
/// whose tag the customer has, else `default`.
pub fn policy_for(tags: &[String]) -> Result<String, Error> {
    if !tags.is_empty() {
        for p in POLICIES.query().limit(100).fetch()?.records {
            if p.data
                .customer_tag
                .as_ref()
                .is_some_and(|t| tags.contains(t))
            {
                return Ok(p.id);
            }
        }
    }
    Ok("default".into())
}

/// The business-hours calendar as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarRecord {
    /// IANA time zone (`Europe/Berlin`).
    pub timezone: String,
    /// Per weekday (`mon`..`sun`), opening intervals `["09:00", "17:00"]`;
    /// a day left out is closed.
    pub week: BTreeMap<String, Vec<[String; 2]>>,
    /// Whole days off, `YYYY-MM-DD`.
    #[serde(default)]
    pub holidays: Vec<String>,
}

/// The calendar of a tenant that set none: Monday to Friday, 09:00 to
/// 17:00 UTC.
pub fn default_calendar() -> CalendarRecord {
    let day = vec![["09:00".to_string(), "17:00".to_string()]];
    CalendarRecord {
        timezone: "UTC".into(),
        week: WEEKDAYS[..5]
            .iter()
            .map(|d| (d.to_string(), day.clone()))
            .collect(),
        holidays: Vec::new(),
    }
}

impl CalendarRecord {
    /// As the SLA engine takes it; `Err` names the field that is wrong.
    pub fn hours(&self) -> Result<BusinessHours, Error> {
        let mut week: [Vec<(Time, Time)>; 7] = Default::default();
        for (day, intervals) in &self.week {
            let i = WEEKDAYS.iter().position(|d| d == day).ok_or_else(|| {
                Error::invalid(
                    &format!("week.{day}"),
                    format!("not a weekday ({})", WEEKDAYS.join(", ")),
                )
            })?;
            for [open, close] in intervals {
                let parse = |t: &str| -> Result<Time, Error> {
                    // 24:00 closes the day.
                    if t == "24:00" {
                        return Ok(Time::MAX);
                    }
                    t.parse::<Time>().map_err(|_| {
                        Error::invalid(&format!("week.{day}"), format!("`{t}` is not HH:MM"))
                    })
                };
                week[i].push((parse(open)?, parse(close)?));
            }
        }
        let holidays = self
            .holidays
            .iter()
            .map(|d| {
                d.parse::<Date>()
                    .map_err(|_| Error::invalid("holidays", format!("`{d}` is not YYYY-MM-DD")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        BusinessHours::new(&self.timezone, week, holidays).map_err(|m| Error::invalid("week", m))
    }
}

/// The desk's time zone (UTC until the calendar names one).
pub fn time_zone() -> jiff::tz::TimeZone {
    CALENDAR
        .get("calendar")
        .ok()
        .flatten()
        .and_then(|c| jiff::tz::TimeZone::get(&c.data.timezone).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The tenant's business hours.
pub fn hours() -> Result<BusinessHours, Error> {
    CALENDAR
        .get("calendar")?
        .map(|r| r.data)
        .unwrap_or_else(default_calendar)
        .hours()
}

/// The desk's rules for one ticket: its policy and the tenant's hours.
pub struct Rules {
    /// The ticket's SLA policy.
    pub policy: Policy,
    /// The tenant's business hours.
    pub hours: BusinessHours,
}

impl Rules {
    /// The rules for a ticket measured by policy `policy_id`.
    pub fn load(policy_id: &str) -> Result<Rules, Error> {
        Ok(Rules {
            policy: policy(policy_id)?,
            hours: hours()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_calendar_and_policy_are_valid() {
        let hours = default_calendar().hours().unwrap();
        let monday = jiff::Timestamp::from_second(1_772_442_000).unwrap(); // 2026-03-02 09:00 UTC
                                                                           // Nine working hours from Monday 09:00: Tuesday 10:00.
        let due = hours
            .add(monday, jiff::SignedDuration::from_hours(9))
            .unwrap();
        assert_eq!(due.as_second() - monday.as_second(), 25 * 3600);
        default_policy().validate().unwrap();
        let p = default_policy().policy();
        assert_eq!(p.for_priority(Priority::Urgent).first_response, Some(60));
    }

    #[test]
    fn bad_calendars_and_policies_name_the_field() {
        let mut c = default_calendar();
        c.week
            .insert("mon".into(), vec![["9".into(), "17:00".into()]]);
        assert!(c.hours().unwrap_err().message().contains("week.mon"));
        let mut c = default_calendar();
        c.timezone = "Mars/Olympus".into();
        assert!(c.hours().unwrap_err().message().contains("time zone"));
        let mut c = default_calendar();
        c.holidays = vec!["25.12.2026".into()];
        assert!(c.hours().unwrap_err().message().contains("holidays"));
        let mut p = default_policy();
        p.targets
            .insert("critical".into(), TargetMinutes::default());
        assert!(p.validate().unwrap_err().message().contains("critical"));
    }
}
