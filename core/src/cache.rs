//! Small read caches with a time to live: one value per tenant
//! ([`TenantCache`]) or one for the whole installation ([`TtlCell`]).
//!
//! Module calls ask the database the same questions many times a second
//! (is the tenant entitled, what are the module's settings). The answers
//! change rarely and only through a few write functions, which clear the
//! cache of the tenant they changed. Another process of a scale-out install
//! does not see that clearing; it sees the change when its own entry is
//! older than the time to live.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::ids::TenantId;

/// Entries beyond which the cache starts over, so that a SaaS host with very
/// many tenants does not grow without bound.
const MAX_TENANTS: usize = 100_000;

/// A value per tenant, each remembered with the time it was read.
pub struct TenantCache<V> {
    ttl_ms: i64,
    entries: RwLock<HashMap<TenantId, (i64, Arc<V>)>>,
}

impl<V> TenantCache<V> {
    /// A cache whose entries count for `ttl_ms` milliseconds.
    pub fn new(ttl_ms: i64) -> Self {
        TenantCache {
            ttl_ms,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The value read for `tenant`, if it was read in the last TTL before
    /// `now`. A read "in the future" does not count: the injected clock of
    /// tests may move backwards.
    pub fn get(&self, tenant: &TenantId, now: i64) -> Option<Arc<V>> {
        let entries = self.entries.read().ok()?;
        let (read_at, value) = entries.get(tenant)?;
        fresh(*read_at, self.ttl_ms, now).then(|| value.clone())
    }

    /// Remember `value` as read for `tenant` at `now`, and hand it back.
    pub fn put(&self, tenant: &TenantId, now: i64, value: V) -> Arc<V> {
        let value = Arc::new(value);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_TENANTS {
                entries.clear();
            }
            entries.insert(tenant.clone(), (now, value.clone()));
        }
        value
    }

    /// Drop what is remembered of one tenant (or of all, with `None`) after
    /// a change.
    pub fn forget(&self, tenant: Option<&TenantId>) {
        if let Ok(mut entries) = self.entries.write() {
            match tenant {
                Some(t) => {
                    entries.remove(t);
                }
                None => entries.clear(),
            }
        }
    }
}

/// Whether a value read at `read_at` still counts at `now`. A read "in the
/// future" does not: the injected clock of tests may move backwards.
fn fresh(read_at: i64, ttl_ms: i64, now: i64) -> bool {
    (read_at..read_at.saturating_add(ttl_ms)).contains(&now)
}

/// One value for the whole installation (the license status), remembered
/// with the time it was read; the same rules as [`TenantCache`].
pub struct TtlCell<V> {
    ttl_ms: i64,
    entry: RwLock<Option<(i64, Arc<V>)>>,
}

impl<V> TtlCell<V> {
    /// An empty cell whose value counts for `ttl_ms` milliseconds.
    pub fn new(ttl_ms: i64) -> Self {
        TtlCell {
            ttl_ms,
            entry: RwLock::new(None),
        }
    }

    /// The value, if it was read in the last TTL before `now`.
    pub fn get(&self, now: i64) -> Option<Arc<V>> {
        let entry = self.entry.read().ok()?;
        let (read_at, value) = entry.as_ref()?;
        fresh(*read_at, self.ttl_ms, now).then(|| value.clone())
    }

    /// Remember `value` as read at `now`, and hand it back.
    pub fn put(&self, now: i64, value: V) -> Arc<V> {
        let value = Arc::new(value);
        if let Ok(mut entry) = self.entry.write() {
            *entry = Some((now, value.clone()));
        }
        value
    }

    /// Drop the value after a change.
    pub fn forget(&self) {
        if let Ok(mut entry) = self.entry.write() {
            *entry = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_count_for_the_ttl_and_until_forgotten() {
        let cache = TenantCache::new(1_000);
        let a = TenantId::from_trusted("a");
        let b = TenantId::from_trusted("b");
        cache.put(&a, 10_000, 1);
        cache.put(&b, 10_000, 2);
        assert_eq!(cache.get(&a, 10_999).as_deref(), Some(&1));
        assert_eq!(cache.get(&a, 11_000), None, "expired at read + ttl");
        assert_eq!(cache.get(&a, 9_999), None, "clock moved back");
        cache.forget(Some(&a));
        assert_eq!(cache.get(&a, 10_500), None);
        assert_eq!(cache.get(&b, 10_500).as_deref(), Some(&2));
        cache.forget(None);
        assert_eq!(cache.get(&b, 10_500), None);
    }

    #[test]
    fn a_cell_counts_for_the_ttl_and_until_forgotten() {
        let cell = TtlCell::new(1_000);
        assert_eq!(cell.get(10_000), None);
        cell.put(10_000, "status");
        assert_eq!(cell.get(10_999).as_deref(), Some(&"status"));
        assert_eq!(cell.get(11_000), None, "expired at read + ttl");
        assert_eq!(cell.get(9_999), None, "clock moved back");
        cell.forget();
        assert_eq!(cell.get(10_500), None);
    }
}
