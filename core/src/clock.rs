//! Time is injected: the one place that reads the system clock is
//! [`SystemClock`]; everything else asks a [`Clock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use time::OffsetDateTime;

/// A source of the current time in UTC.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;

    /// Now as Unix milliseconds: the storage form of every timestamp.
    fn now_ms(&self) -> i64 {
        to_ms(self.now())
    }
}

/// Shared handle to the clock of the running host.
pub type SharedClock = Arc<dyn Clock>;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that tests move by hand.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self(AtomicI64::new(to_ms(start)))
    }

    /// Stand the clock at `now` (tests that need a given date, not a
    /// distance from the start: "the ticket opened on Friday 17:00").
    pub fn set(&self, now: OffsetDateTime) {
        self.0.store(to_ms(now), Ordering::SeqCst);
    }

    /// Move the clock forward (or backward, with a negative duration).
    pub fn advance(&self, by: time::Duration) {
        self.0
            .fetch_add(by.whole_milliseconds() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        from_ms(self.0.load(Ordering::SeqCst))
    }
}

/// Unix milliseconds of a time.
pub fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The time at Unix milliseconds `ms` (clamped to the representable range).
pub fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 text of a stored timestamp, as the API shows it.
pub fn rfc3339(ms: i64) -> String {
    from_ms(ms)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
