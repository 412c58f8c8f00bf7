//! Plans: the modules a tenant gets for a price per month or year.
//!
//! Plans are install-wide and belong to the operator (`kontor plan create`,
//! `list`, `archive`); tenants only read the offered ones. A plan is never
//! deleted or changed in price: subscriptions point at it. Archiving stops
//! offering it, and its subscribers keep it.

use serde::{Deserialize, Serialize};
use time::{Month, OffsetDateTime};

use crate::clock::{from_ms, rfc3339, to_ms};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::ids::new_id;

/// How often a plan is paid.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Every calendar month.
    Month,
    /// Every calendar year.
    Year,
}

impl Interval {
    /// The interval as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    fn parse(stored: &str) -> Result<Self> {
        match stored {
            "month" => Ok(Interval::Month),
            "year" => Ok(Interval::Year),
            other => Err(Error::internal(format!("unknown plan interval `{other}`"))),
        }
    }

    /// The end of one period that starts at `start_ms`: the same day of the
    /// next month or year, or that month's last day (31 January → 28/29
    /// February), as payment providers count.
    pub fn add_to(self, start_ms: i64) -> i64 {
        let start = from_ms(start_ms);
        let months = match self {
            Interval::Month => 1,
            Interval::Year => 12,
        };
        to_ms(add_months(start, months))
    }
}

fn add_months(t: OffsetDateTime, months: i32) -> OffsetDateTime {
    let index = t.year() * 12 + (t.month() as i32 - 1) + months;
    let year = index.div_euclid(12);
    let month = Month::try_from((index.rem_euclid(12) + 1) as u8).unwrap_or(Month::January);
    let day = t.day().min(month.length(year));
    time::Date::from_calendar_date(year, month, day)
        .map(|date| t.replace_date(date))
        .unwrap_or(t)
}

/// A plan as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Plan {
    /// Id.
    pub id: String,
    /// Name shown to tenants.
    pub name: String,
    /// Entitlement keys of the modules included (by default the module ids).
    pub modules: Vec<String>,
    /// Price per interval in minor units of `currency` (4900 = 49.00).
    pub price_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// `month` or `year`.
    pub interval: Interval,
    /// Days of free trial a new subscription starts with (0: none).
    pub trial_days: i64,
    /// `active` (offered) or `archived` (kept for its subscribers only).
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
}

impl Plan {
    /// Whether nothing is ever owed for it.
    pub fn is_free(&self) -> bool {
        self.price_minor == 0
    }

    /// The price for people, e.g. `CHF 49.00`.
    pub fn price_text(&self) -> String {
        format_price(self.price_minor, &self.currency)
    }
}

/// A stored plan.
#[derive(sqlx::FromRow)]
pub(crate) struct PlanRow {
    id: String,
    name: String,
    modules: String,
    price_minor: i64,
    currency: String,
    billing_interval: String,
    trial_days: i64,
    status: String,
    created_at: i64,
}

impl TryFrom<PlanRow> for Plan {
    type Error = Error;
    fn try_from(r: PlanRow) -> Result<Plan> {
        Ok(Plan {
            modules: serde_json::from_str(&r.modules)
                .map_err(|e| Error::internal(format!("plan {} has bad modules: {e}", r.id)))?,
            interval: Interval::parse(&r.billing_interval)?,
            id: r.id,
            name: r.name,
            price_minor: r.price_minor,
            currency: r.currency,
            trial_days: r.trial_days,
            status: r.status,
            created_at: rfc3339(r.created_at),
        })
    }
}

pub(crate) const PLAN_COLUMNS: &str =
    "id, name, modules, price_minor, currency, billing_interval, trial_days, status, created_at";

/// What it takes to make a plan.
#[derive(Debug, Clone)]
pub struct NewPlan {
    /// Name shown to tenants.
    pub name: String,
    /// Entitlement keys of the modules included.
    pub modules: Vec<String>,
    /// Price per interval in minor units.
    pub price_minor: i64,
    /// ISO 4217 code, e.g. `CHF`.
    pub currency: String,
    /// Month or year.
    pub interval: Interval,
    /// Free trial days of a new subscription.
    pub trial_days: i64,
}

impl NewPlan {
    fn validate(&self) -> Result<()> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("name", "must be 1 to 100 characters"));
        }
        if self.modules.is_empty() {
            return Err(Error::invalid(
                "modules",
                "a plan includes at least one module",
            ));
        }
        if let Some(bad) = self.modules.iter().find(|m| !is_module_key(m)) {
            return Err(Error::invalid(
                "modules",
                format!("`{bad}` is not a module id (lower-case letters, digits and dashes)"),
            ));
        }
        if self.price_minor < 0 {
            return Err(Error::invalid(
                "price_minor",
                "must be zero (a free plan) or more, in minor units (4900 = 49.00)",
            ));
        }
        if !(self.currency.len() == 3 && self.currency.chars().all(|c| c.is_ascii_uppercase())) {
            return Err(Error::invalid(
                "currency",
                "expected an ISO 4217 code such as CHF, EUR or USD",
            ));
        }
        if !(0..=365).contains(&self.trial_days) {
            return Err(Error::invalid("trial_days", "must be between 0 and 365"));
        }
        Ok(())
    }
}

fn is_module_key(m: &str) -> bool {
    (2..=64).contains(&m.len())
        && m.starts_with(|c: char| c.is_ascii_lowercase())
        && m.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Make a plan (offered at once).
pub async fn create(db: &Db, new: &NewPlan, now: i64) -> Result<Plan> {
    new.validate()?;
    let mut modules = new.modules.clone();
    modules.sort();
    modules.dedup();
    let id = new_id();
    sqlx::query(
        "INSERT INTO plans (id, name, modules, price_minor, currency, billing_interval, trial_days, \
         status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8)",
    )
    .bind(&id)
    .bind(new.name.trim())
    .bind(serde_json::Value::from(modules).to_string())
    .bind(new.price_minor)
    .bind(&new.currency)
    .bind(new.interval.as_str())
    .bind(new.trial_days)
    .bind(now)
    .execute(db.pool())
    .await?;
    get(db, &id).await?.ok_or_else(|| Error::not_found("plan"))
}

/// Plans, cheapest first; archived ones only if asked for.
pub async fn list(db: &Db, include_archived: bool) -> Result<Vec<Plan>> {
    let rows = sqlx::query_as::<_, PlanRow>(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE status = 'active' OR $1 \
         ORDER BY price_minor, name, id"
    ))
    .bind(include_archived)
    .fetch_all(db.pool())
    .await?;
    rows.into_iter().map(Plan::try_from).collect()
}

/// One plan, archived or not.
pub async fn get(db: &Db, id: &str) -> Result<Option<Plan>> {
    let row =
        sqlx::query_as::<_, PlanRow>(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1"))
            .bind(id)
            .fetch_optional(db.pool())
            .await?;
    row.map(Plan::try_from).transpose()
}

/// Stop offering a plan; its subscribers keep it.
pub async fn archive(db: &Db, id: &str, now: i64) -> Result<()> {
    let done = sqlx::query("UPDATE plans SET status = 'archived', updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(db.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::not_found("plan"));
    }
    Ok(())
}

/// Digits after the decimal point of a currency (ISO 4217 minor unit).
fn minor_digits(currency: &str) -> u32 {
    const NONE: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV",
        "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    if NONE.contains(&currency) {
        0
    } else if THREE.contains(&currency) {
        3
    } else {
        2
    }
}

/// `minor` units of `currency` for people: `CHF 49.00`, `JPY 500`. Integer
/// arithmetic only: money never passes through a float.
pub fn format_price(minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    if digits == 0 {
        return format!("{currency} {minor}");
    }
    let unit = 10i64.pow(digits);
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let unit = unit.unsigned_abs();
    format!(
        "{currency} {sign}{}.{:0width$}",
        abs / unit,
        abs % unit,
        width = digits as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: OffsetDateTime) -> i64 {
        to_ms(t)
    }

    #[test]
    fn periods_follow_the_calendar_and_clamp_to_the_month_end() {
        use time::macros::datetime;
        let jan31 = ms(datetime!(2026-01-31 10:00 UTC));
        assert_eq!(
            Interval::Month.add_to(jan31),
            ms(datetime!(2026-02-28 10:00 UTC))
        );
        let dec15 = ms(datetime!(2026-12-15 00:00 UTC));
        assert_eq!(
            Interval::Month.add_to(dec15),
            ms(datetime!(2027-01-15 00:00 UTC))
        );
        let leap = ms(datetime!(2028-02-29 00:00 UTC));
        assert_eq!(
            Interval::Year.add_to(leap),
            ms(datetime!(2029-02-28 00:00 UTC))
        );
    }

    #[test]
    fn prices_are_shown_in_the_currency_s_minor_unit() {
        assert_eq!(format_price(4900, "CHF"), "CHF 49.00");
        assert_eq!(format_price(5, "EUR"), "EUR 0.05");
        assert_eq!(format_price(500, "JPY"), "JPY 500");
        assert_eq!(format_price(1234, "KWD"), "KWD 1.234");
        assert_eq!(format_price(0, "CHF"), "CHF 0.00");
    }

    #[test]
    fn a_plan_is_checked_before_it_is_stored() {
        let good = NewPlan {
            name: "Starter".into(),
            modules: vec!["billing".into()],
            price_minor: 4900,
            currency: "CHF".into(),
            interval: Interval::Month,
            trial_days: 14,
        };
        assert!(good.validate().is_ok());
        let cases: [(&str, NewPlan); 5] = [
            (
                "name",
                NewPlan {
                    name: " ".into(),
                    ..good.clone()
                },
            ),
            (
                "modules",
                NewPlan {
                    modules: vec![],
                    ..good.clone()
                },
            ),
            (
                "modules",
                NewPlan {
                    modules: vec!["Bad Id".into()],
                    ..good.clone()
                },
            ),
            (
                "price_minor",
                NewPlan {
                    price_minor: -1,
                    ..good.clone()
                },
            ),
            (
                "currency",
                NewPlan {
                    currency: "chf".into(),
                    ..good.clone()
                },
            ),
        ];
        for (field, plan) in cases {
            let err = plan.validate().unwrap_err();
            assert!(err.to_string().starts_with(field), "{field}: {err}");
        }
    }
}
