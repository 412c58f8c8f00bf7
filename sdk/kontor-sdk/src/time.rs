//! The time, as the host keeps it.
//!
//! A module's clock is the host's: `std::time::SystemTime::now()` in a
//! module (WASI's wall clock) answers what the host stamps records with and
//! runs schedules and licenses by. `kontor-test` moves that clock
//! (`Harness::set_now`, `Harness::advance`), so a module that reads the time
//! here or through `SystemTime` sees the time its test set — an SLA that
//! breaches after four hours is tested by moving the clock four hours.

/// Now, as Unix milliseconds (the form the host stores times in): the
/// host's clock, which `kontor-test` moves.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
