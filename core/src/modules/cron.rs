//! Five-field cron schedules (`minute hour day-of-month month day-of-week`,
//! UTC), as module manifests declare them.

use time::{Duration, OffsetDateTime};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    any_day: bool,
    any_weekday: bool,
}

fn field(spec: &str, min: u32, max: u32, name: &str) -> Result<(Vec<bool>, bool), String> {
    let mut set = vec![false; (max + 1) as usize];
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in {name} `{part}`"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = a
                .parse::<u32>()
                .map_err(|_| format!("bad {name} `{part}`"))?;
            let b = b
                .parse::<u32>()
                .map_err(|_| format!("bad {name} `{part}`"))?;
            (a, b)
        } else {
            let v = range
                .parse::<u32>()
                .map_err(|_| format!("bad {name} `{part}`"))?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("{name} `{part}` is outside {min}-{max}"));
        }
        let mut v = lo;
        while v <= hi {
            set[v as usize] = true;
            v += step;
        }
    }
    Ok((set, spec == "*"))
}

impl Schedule {
    /// Parse `m h dom mon dow`; the error says which field is wrong.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let parts: Vec<&str> = spec.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected 5 fields (minute hour day month weekday), got {}",
                parts.len()
            ));
        }
        let (minutes, _) = field(parts[0], 0, 59, "minute")?;
        let (hours, _) = field(parts[1], 0, 23, "hour")?;
        let (days, any_day) = field(parts[2], 1, 31, "day of month")?;
        let (months, _) = field(parts[3], 1, 12, "month")?;
        let (mut weekdays, any_weekday) = field(&parts[4].replace('7', "0"), 0, 6, "day of week")?;
        weekdays.truncate(7);
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day,
            any_weekday,
        })
    }

    fn matches(&self, t: OffsetDateTime) -> bool {
        let day_ok = self.days[t.day() as usize];
        let wd_ok = self.weekdays[t.weekday().number_days_from_sunday() as usize];
        // Classic cron: when both day fields are restricted, either may match.
        let date_ok = match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => day_ok,
            (true, false) => wd_ok,
            (false, false) => day_ok || wd_ok,
        };
        self.minutes[t.minute() as usize]
            && self.hours[t.hour() as usize]
            && self.months[u8::from(t.month()) as usize]
            && date_ok
    }

    /// The first matching minute strictly after `after` (searching up to
    /// five years ahead; `None` for a schedule that never fires, like Feb 30).
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let start =
            after.replace_second(0).ok()?.replace_nanosecond(0).ok()? + Duration::minutes(1);
        let mut t = start;
        let end = start + Duration::days(366 * 5);
        while t < end {
            if !self.months[u8::from(t.month()) as usize] {
                // Jump to the first day of the next month.
                let (y, m) = if u8::from(t.month()) == 12 {
                    (t.year() + 1, 1u8)
                } else {
                    (t.year(), u8::from(t.month()) + 1)
                };
                t = time::Date::from_calendar_date(y, time::Month::try_from(m).ok()?, 1)
                    .ok()?
                    .midnight()
                    .assume_utc();
                continue;
            }
            if self.matches(t) {
                return Some(t);
            }
            t += Duration::minutes(1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_five_minutes() {
        let s = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(
            s.next_after(datetime!(2026-03-02 09:03:10 UTC)),
            Some(datetime!(2026-03-02 09:05 UTC))
        );
        assert_eq!(
            s.next_after(datetime!(2026-03-02 09:05:00 UTC)),
            Some(datetime!(2026-03-02 09:10 UTC))
        );
    }

    #[test]
    fn weekdays_at_eight() {
        let s = Schedule::parse("0 8 * * 1-5").unwrap();
        // 2026-03-07 is a Saturday.
        assert_eq!(
            s.next_after(datetime!(2026-03-06 08:00 UTC)),
            Some(datetime!(2026-03-09 08:00 UTC))
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert!(Schedule::parse("* * *").unwrap_err().contains("5 fields"));
        assert!(Schedule::parse("61 * * * *")
            .unwrap_err()
            .contains("minute"));
        assert!(Schedule::parse("* * * 13 *").unwrap_err().contains("month"));
        assert!(Schedule::parse("0 0 30 2 *")
            .unwrap()
            .next_after(datetime!(2026-01-01 0:00 UTC))
            .is_none());
    }
}
