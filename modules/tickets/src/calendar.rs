//! Business hours: when the support desk works.
//!
//! SLA targets are measured in working time, as Zammad does: a ticket
//! opened on Friday at 17:30 with a four-hour first-response target in a
//! desk that works 08:00–18:00 on weekdays is due on Monday at 11:30, and
//! a day the desk is closed for a holiday does not count. Hours are civil
//! times in the desk's time zone, so a daylight-saving change moves them
//! with the clocks on the wall.

use std::collections::BTreeSet;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Days of the week, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How far ahead a due time is searched: a calendar with hours only on a
/// holiday-covered day must end, not loop.
const HORIZON_DAYS: i32 = 3 * 366;

/// When the desk works.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    tz: TimeZone,
    /// Opening intervals per weekday, Monday first; sorted, not overlapping.
    week: [Vec<(Time, Time)>; 7],
    holidays: BTreeSet<Date>,
}

impl BusinessHours {
    /// Hours in the IANA time zone `tz` (`Europe/Zurich`): per weekday,
    /// Monday first, a list of `(open, close)` civil times; `holidays` are
    /// whole days off. Each interval must open before it closes, and a
    /// day's intervals must not overlap; the week needs some open time.
    pub fn new(
        tz: &str,
        week: [Vec<(Time, Time)>; 7],
        holidays: impl IntoIterator<Item = Date>,
    ) -> Result<BusinessHours, String> {
        let zone = TimeZone::get(tz).map_err(|_| format!("unknown time zone `{tz}`"))?;
        let mut week = week;
        for (day, intervals) in week.iter_mut().enumerate() {
            intervals.sort();
            for (open, close) in intervals.iter() {
                if open >= close {
                    return Err(format!(
                        "{}: {open} to {close} does not open before it closes",
                        WEEKDAYS[day]
                    ));
                }
            }
            if let Some(w) = intervals.windows(2).find(|w| w[0].1 > w[1].0) {
                return Err(format!(
                    "{}: {}–{} overlaps {}–{}",
                    WEEKDAYS[day], w[0].0, w[0].1, w[1].0, w[1].1
                ));
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err("the desk needs opening hours on at least one day".into());
        }
        Ok(BusinessHours {
            tz: zone,
            week,
            holidays: holidays.into_iter().collect(),
        })
    }

    /// Monday to Friday from `open` to `close` in `tz`, no holidays.
    pub fn weekdays(tz: &str, open: Time, close: Time) -> Result<BusinessHours, String> {
        let day = vec![(open, close)];
        let closed = Vec::new();
        BusinessHours::new(
            tz,
            [
                day.clone(),
                day.clone(),
                day.clone(),
                day.clone(),
                day,
                closed.clone(),
                closed,
            ],
            [],
        )
    }

    /// Around the clock, every day, in UTC: SLAs measured in plain time.
    pub fn always() -> BusinessHours {
        let day = vec![(Time::MIN, Time::MAX)];
        BusinessHours {
            tz: TimeZone::UTC,
            week: std::array::from_fn(|_| day.clone()),
            holidays: BTreeSet::new(),
        }
    }

    /// The same hours with `holidays` added.
    pub fn with_holidays(mut self, holidays: impl IntoIterator<Item = Date>) -> Self {
        self.holidays.extend(holidays);
        self
    }

    /// The open intervals of the civil day `date`, as instants.
    fn open_on(&self, date: Date) -> Vec<(Timestamp, Timestamp)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let weekday = date.weekday().to_monday_zero_offset() as usize;
        self.week[weekday]
            .iter()
            .filter_map(|(open, close)| {
                let at = |t: Time| -> Option<Timestamp> {
                    // `Time::MAX` closes the day: the next midnight.
                    if t == Time::MAX {
                        let next = date.tomorrow().ok()?;
                        return next.to_zoned(self.tz.clone()).ok().map(|z| z.timestamp());
                    }
                    date.to_datetime(t)
                        .to_zoned(self.tz.clone())
                        .ok()
                        .map(|z| z.timestamp())
                };
                Some((at(*open)?, at(*close)?))
            })
            .filter(|(open, close)| open < close)
            .collect()
    }

    fn date_of(&self, at: Timestamp) -> Date {
        at.to_zoned(self.tz.clone()).date()
    }

    /// The instant when `business` working time has passed after `from`;
    /// `None` if the calendar has no working time within three years.
    pub fn add(&self, from: Timestamp, business: SignedDuration) -> Option<Timestamp> {
        let mut left = business.max(SignedDuration::ZERO);
        let mut date = self.date_of(from);
        // The day before too: an interval that opened yesterday in the
        // zone's terms can still be open (`Time::MAX` closes at midnight).
        date = date.yesterday().unwrap_or(date);
        for _ in 0..HORIZON_DAYS {
            for (open, close) in self.open_on(date) {
                if close <= from {
                    continue;
                }
                let start = open.max(from);
                let available = start.duration_until(close);
                if left <= available {
                    return start.checked_add(left).ok();
                }
                left -= available;
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// Working time between `from` and `to` (zero when `to` is not later).
    pub fn between(&self, from: Timestamp, to: Timestamp) -> SignedDuration {
        if to <= from {
            return SignedDuration::ZERO;
        }
        let mut total = SignedDuration::ZERO;
        let mut date = self.date_of(from).yesterday().unwrap_or(self.date_of(from));
        let last = self.date_of(to);
        while date <= last {
            for (open, close) in self.open_on(date) {
                let start = open.max(from);
                let end = close.min(to);
                if start < end {
                    total += start.duration_until(end);
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        total
    }
}

/// Helpers of the tests here and in [`crate::sla`].
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use jiff::civil::time;

    /// The instant of a civil time in Zurich (`2026-03-06T17:30`).
    pub(crate) fn zurich(text: &str) -> Timestamp {
        let dt: jiff::civil::DateTime = text.parse().unwrap();
        dt.to_zoned(TimeZone::get("Europe/Zurich").unwrap())
            .unwrap()
            .timestamp()
    }

    /// Weekdays 08:00 to 18:00 in Zurich.
    pub(crate) fn office() -> BusinessHours {
        BusinessHours::weekdays("Europe/Zurich", time(8, 0, 0, 0), time(18, 0, 0, 0)).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{office, zurich};
    use super::*;
    use jiff::civil::{date, time};

    fn hours(h: i64) -> SignedDuration {
        SignedDuration::from_hours(h)
    }

    #[test]
    fn time_inside_one_working_day_adds_plainly() {
        // Tuesday 2026-03-03, 09:00 + 4 h = 13:00.
        assert_eq!(
            office().add(zurich("2026-03-03T09:00"), hours(4)),
            Some(zurich("2026-03-03T13:00"))
        );
    }

    #[test]
    fn the_weekend_does_not_count() {
        // Friday 17:30 + 4 h: half an hour on Friday, 3.5 h on Monday.
        assert_eq!(
            office().add(zurich("2026-03-06T17:30"), hours(4)),
            Some(zurich("2026-03-09T11:30"))
        );
        // Opened on Saturday: the clock starts on Monday morning.
        assert_eq!(
            office().add(zurich("2026-03-07T10:00"), hours(1)),
            Some(zurich("2026-03-09T09:00"))
        );
        assert_eq!(
            office().between(zurich("2026-03-06T17:30"), zurich("2026-03-09T11:30")),
            hours(4)
        );
    }

    #[test]
    fn a_holiday_does_not_count() {
        // Easter Monday 2026-04-06 is off: Friday 2026-04-03 (Good Friday
        // too) and Monday are skipped.
        let hours_off = office().with_holidays([date(2026, 4, 3), date(2026, 4, 6)]);
        assert_eq!(
            hours_off.add(zurich("2026-04-02T16:00"), hours(4)),
            Some(zurich("2026-04-07T10:00"))
        );
        assert_eq!(
            hours_off.between(zurich("2026-04-02T16:00"), zurich("2026-04-07T10:00")),
            hours(4)
        );
    }

    #[test]
    fn daylight_saving_moves_the_hours_with_the_wall_clock() {
        // Clocks go forward on Sunday 2026-03-29 in Zurich: Friday 17:00 +
        // 2 h is Monday 09:00 local, which is 07:00 UTC, not 08:00.
        let due = office().add(zurich("2026-03-27T17:00"), hours(2)).unwrap();
        assert_eq!(due, zurich("2026-03-30T09:00"));
        assert_eq!(due.to_string(), "2026-03-30T07:00:00Z");
    }

    #[test]
    fn split_days_and_around_the_clock() {
        let lunch = vec![
            (time(8, 0, 0, 0), time(12, 0, 0, 0)),
            (time(13, 0, 0, 0), time(17, 0, 0, 0)),
        ];
        let split = BusinessHours::new(
            "Europe/Zurich",
            [
                lunch.clone(),
                lunch.clone(),
                lunch.clone(),
                lunch.clone(),
                lunch,
                vec![],
                vec![],
            ],
            [],
        )
        .unwrap();
        assert_eq!(
            split.add(zurich("2026-03-03T11:00"), hours(2)),
            Some(zurich("2026-03-03T14:00"))
        );
        let always = BusinessHours::always();
        let t: Timestamp = "2026-03-07T23:00:00Z".parse().unwrap();
        assert_eq!(
            always.add(t, hours(2)),
            Some("2026-03-08T01:00:00Z".parse().unwrap())
        );
        assert_eq!(
            always.between(t, "2026-03-08T01:00:00Z".parse().unwrap()),
            hours(2)
        );
    }

    #[test]
    fn bad_calendars_are_refused_with_the_reason() {
        let open = vec![(time(18, 0, 0, 0), time(8, 0, 0, 0))];
        let e = BusinessHours::new("Europe/Zurich", std::array::from_fn(|_| open.clone()), [])
            .unwrap_err();
        assert!(e.contains("mon"), "{e}");
        let overlap = vec![
            (time(8, 0, 0, 0), time(12, 0, 0, 0)),
            (time(11, 0, 0, 0), time(13, 0, 0, 0)),
        ];
        let e =
            BusinessHours::new("UTC", std::array::from_fn(|_| overlap.clone()), []).unwrap_err();
        assert!(e.contains("overlaps"), "{e}");
        assert!(BusinessHours::new("UTC", std::array::from_fn(|_| vec![]), []).is_err());
        assert!(BusinessHours::new("Mars/Olympus", std::array::from_fn(|_| vec![]), []).is_err());
        // Hours only on a day that is always a holiday: no due time, no hang.
        let mut week: [Vec<(Time, Time)>; 7] = std::array::from_fn(|_| vec![]);
        week[0] = vec![(time(8, 0, 0, 0), time(9, 0, 0, 0))];
        let mondays = (0..200).map(|w| date(2026, 3, 2) + jiff::Span::new().weeks(w));
        let never = BusinessHours::new("UTC", week, mondays).unwrap();
        let far = never.add("2026-03-01T00:00:00Z".parse().unwrap(), hours(5 * 24 * 365));
        assert_eq!(far, None);
    }
}
