//! Brute-force protection for login: failed attempts are counted per account
//! and all attempts per client IP, each in a sliding window.
//!
//! The counters live in the process. Behind several `kontor serve` processes
//! an attacker gets at most the limit once per process, which still turns a
//! brute force into a crawl; the limit is not a security boundary by itself
//! (argon2id is).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Limits of one kind of key.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Attempts allowed inside the window.
    pub max: usize,
    /// Window length in milliseconds.
    pub window_ms: i64,
}

/// A sliding-window counter per key.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: Limit,
    hits: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl SlidingWindow {
    /// A counter with `limit`.
    pub fn new(limit: Limit) -> Self {
        Self {
            limit,
            hits: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, or `None` if it may now.
    pub fn retry_after(&self, key: &str, now: i64) -> Option<u64> {
        let mut map = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        let hits = map.get_mut(key)?;
        prune(hits, now, self.limit.window_ms);
        if hits.len() >= self.limit.max {
            let oldest = *hits.front()?;
            let wait_ms = (oldest + self.limit.window_ms - now).max(1000);
            Some(((wait_ms + 999) / 1000) as u64)
        } else {
            None
        }
    }

    /// Count one attempt of `key`.
    pub fn record(&self, key: &str, now: i64) {
        let mut map = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            // Bound memory under a spray of distinct keys.
            let window = self.limit.window_ms;
            map.retain(|_, hits| {
                prune(hits, now, window);
                !hits.is_empty()
            });
        }
        let hits = map.entry(key.to_string()).or_default();
        prune(hits, now, self.limit.window_ms);
        hits.push_back(now);
    }

    /// Forget `key` (after a successful login).
    pub fn clear(&self, key: &str) {
        let mut map = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

fn prune(hits: &mut VecDeque<i64>, now: i64, window_ms: i64) {
    while hits.front().is_some_and(|t| *t <= now - window_ms) {
        hits.pop_front();
    }
}

/// The login limits, and the limit on self-service registration (SaaS),
/// which would otherwise let one client make tenants without end.
#[derive(Debug)]
pub struct LoginLimiter {
    /// Failed logins per account (normalised e-mail).
    pub per_account: SlidingWindow,
    /// Login attempts per client IP.
    pub per_ip: SlidingWindow,
    /// Registration attempts per client IP.
    pub registrations_per_ip: SlidingWindow,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self {
            per_account: SlidingWindow::new(Limit {
                max: 5,
                window_ms: 15 * 60_000,
            }),
            per_ip: SlidingWindow::new(Limit {
                max: 30,
                window_ms: 5 * 60_000,
            }),
            registrations_per_ip: SlidingWindow::new(Limit {
                max: 10,
                window_ms: 60 * 60_000,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_and_recovers_after_window() {
        let w = SlidingWindow::new(Limit {
            max: 3,
            window_ms: 10_000,
        });
        for t in 0..3 {
            assert_eq!(w.retry_after("a", t), None);
            w.record("a", t);
        }
        assert_eq!(w.retry_after("a", 3), Some(10));
        assert_eq!(w.retry_after("b", 3), None);
        assert_eq!(w.retry_after("a", 10_001), None);
    }
}
