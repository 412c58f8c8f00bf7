//! This process's view of the installation's license: what the one
//! entitlement check, the limits, the license API and page ask.
//!
//! In SaaS mode there is no installation license (tenants are entitled by
//! their subscriptions), so nothing here applies and every answer says so.
//! In self-hosted mode the status is read from the database and verified
//! at most once per [`STATUS_TTL_MS`] — every module call asks — and
//! forgotten at once when this process installs a license or records the
//! time. Another process (`kontor license install` on the same database)
//! is seen within the TTL.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use semver::Version;
use sqlx::AnyConnection;

use crate::cache::TtlCell;
use crate::clock::SharedClock;
use crate::config::{Config, Mode};
use crate::db::Db;
use crate::error::{Code, Error, Result};

use super::keys::KeySet;
use super::payload::Limits;
use super::state::{self, LimitKind, ModuleAccess};
use super::store::{self, LicenseStatus};

/// How long a read license status counts (as long as entitlements).
pub const STATUS_TTL_MS: i64 = crate::modules::entitlements::CACHE_TTL_MS;
/// How often `serve` records the time it sees, so that a clock set back by
/// more than a day is noticed (and a restart is not needed to notice it).
pub const RECORD_TIME_EVERY: Duration = Duration::from_secs(3600);

/// The installation's licensing, shared by the web handlers and the module
/// host of one process (cheap to clone).
#[derive(Clone)]
pub struct Licensing {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    hostname: Option<String>,
    keys: KeySet,
    status: TtlCell<LicenseStatus>,
}

impl std::fmt::Debug for Licensing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Licensing")
            .field("mode", &self.inner.mode)
            .field("hostname", &self.inner.hostname)
            .finish_non_exhaustive()
    }
}

impl Licensing {
    /// Licensing in `mode`, checking instance bindings against `hostname`
    /// (the host of the public URL) and trusting `keys`.
    pub fn new(mode: Mode, hostname: Option<String>, keys: KeySet) -> Self {
        Licensing {
            inner: Arc::new(Inner {
                mode,
                hostname,
                keys,
                status: TtlCell::new(STATUS_TTL_MS),
            }),
        }
    }

    /// What `serve` uses: the configured mode and public URL, and the keys
    /// this build trusts.
    pub fn from_config(config: &Config) -> Self {
        let hostname = config
            .public_url
            .as_ref()
            .and_then(|u| u.host_str())
            .map(str::to_string);
        Self::new(config.mode, hostname, KeySet::builtin())
    }

    /// No installation license: what a SaaS host (and a module host made
    /// for a command that runs no module) uses.
    pub fn saas() -> Self {
        Self::new(Mode::Saas, None, KeySet::vendor_only())
    }

    /// Whether an installation license applies (self-hosted mode).
    pub fn applies(&self) -> bool {
        self.inner.mode == Mode::SelfHosted
    }

    /// Whether this build trusts the license test key (a development build,
    /// which the license page and API say).
    pub fn trusts_test_key(&self) -> bool {
        self.inner.keys.trusts_test_key()
    }

    /// `Ok` in self-hosted mode; else `wrong_mode`, for the license API and page.
    pub fn require_self_hosted(&self) -> Result<()> {
        if self.applies() {
            Ok(())
        } else {
            Err(Error::new(
                Code::WrongMode,
                "a SaaS install has no installation license: modules are unlocked by each tenant's subscription",
            ))
        }
    }

    /// The license status at `now`, from the cache when it is fresh.
    pub async fn status(&self, db: &Db, now: i64) -> Result<Arc<LicenseStatus>> {
        if let Some(status) = self.inner.status.get(now) {
            return Ok(status);
        }
        let status = store::status(db, &self.inner.keys, self.hostname(), now).await?;
        Ok(self.inner.status.put(now, status))
    }

    /// Verify `input` and make it the installed license (a refused file
    /// changes nothing); every check of this process sees it at once.
    pub async fn install(&self, db: &Db, input: &[u8], now: i64) -> Result<Arc<LicenseStatus>> {
        self.require_self_hosted()?;
        let result = store::install(db, &self.inner.keys, self.hostname(), input, now).await;
        self.inner.status.forget();
        Ok(Arc::new(result?))
    }

    /// Record that the clock said `now` (and, on the first start, that the
    /// trial starts now).
    pub async fn record_time(&self, db: &Db, now: i64) -> Result<()> {
        store::touch_last_seen(db, now).await?;
        self.inner.status.forget();
        Ok(())
    }

    /// Record the time every [`RECORD_TIME_EVERY`] until `shutdown`
    /// resolves (`serve` records it once at start itself).
    pub async fn keep_recording_time(
        self,
        db: Db,
        clock: SharedClock,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(RECORD_TIME_EVERY) => {}
            }
            if let Err(e) = self.record_time(&db, clock.now_ms()).await {
                tracing::warn!(error = %e, "could not record the time for licensing");
            }
        }
    }

    /// What the license allows module `key` at `version`; `None` when no
    /// installation license applies (SaaS).
    pub async fn module_access(
        &self,
        db: &Db,
        key: &str,
        version: &Version,
        now: i64,
    ) -> Result<Option<ModuleAccess>> {
        if !self.applies() {
            return Ok(None);
        }
        let status = self.status(db, now).await?;
        Ok(Some(state::module_access(
            &status.state,
            status.license.as_ref(),
            key,
            version,
            now,
        )))
    }

    /// How many `kind` the license allows; unlimited in SaaS mode and
    /// without a license. Read it before the creating transaction (it may
    /// read the database), then check it inside with [`Quota::check_tx`].
    pub async fn quota(&self, db: &Db, kind: LimitKind, now: i64) -> Result<Quota> {
        let limits = if self.applies() {
            let status = self.status(db, now).await?;
            status.license.as_ref().map(|l| l.payload().limits)
        } else {
            None
        };
        Ok(Quota {
            kind,
            limits: limits.filter(|l| l.max(kind).is_some()),
        })
    }

    fn hostname(&self) -> Option<&str> {
        self.inner.hostname.as_deref()
    }
}

/// The license's cap on one kind of record, checked in the transaction that
/// creates them. Existing records are never touched: a lower cap only
/// stops new ones.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    kind: LimitKind,
    limits: Option<Limits>,
}

impl Quota {
    /// No cap (commands an operator runs, SaaS, no license).
    pub fn unlimited(kind: LimitKind) -> Self {
        Quota { kind, limits: None }
    }

    /// The cap, if there is one.
    pub fn max(&self) -> Option<u64> {
        self.limits.and_then(|l| l.max(self.kind))
    }

    /// Take the cap's lock in `tx` (nothing without a cap): a no-op write
    /// on the installation row — its row lock on PostgreSQL, the database's
    /// write lock on SQLite — held until `tx` ends, so two transactions
    /// cannot both take the last place. Take it before `tx` reads anything
    /// else: SQLite cannot turn a reading transaction into a writing one
    /// while another writes.
    pub async fn lock_tx(&self, tx: &mut AnyConnection) -> Result<()> {
        if self.max().is_some() {
            sqlx::query("UPDATE license_installation SET id = id WHERE id = 1")
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// How many more may be created inside the transaction `tx` (`None`:
    /// no cap).
    pub async fn remaining_tx(&self, tx: &mut AnyConnection) -> Result<Option<u64>> {
        let Some(max) = self.max() else {
            return Ok(None);
        };
        self.lock_tx(tx).await?;
        Ok(Some(max.saturating_sub(self.count_tx(tx).await?)))
    }

    /// `Ok` if one more may be created inside `tx`, else
    /// `license_limit_reached` naming the limit (see [`Self::lock_tx`]).
    pub async fn check_tx(&self, tx: &mut AnyConnection) -> Result<()> {
        let Some(limits) = self.limits else {
            return Ok(());
        };
        self.lock_tx(tx).await?;
        limits.check(self.kind, self.count_tx(tx).await?)
    }

    /// The refusal of one more while the cap is reached (an import's rows
    /// beyond it). `None` without a cap.
    pub fn refusal(&self) -> Option<Error> {
        let limits = self.limits?;
        let max = limits.max(self.kind)?;
        limits.check(self.kind, max).err()
    }

    /// What counts against the cap: every customer; every tenant; active
    /// users that work in the CRM — a customer's portal login and a
    /// disabled user hold no place (users are disabled, never deleted).
    async fn count_tx(&self, tx: &mut AnyConnection) -> Result<u64> {
        let sql = match self.kind {
            LimitKind::Users => {
                "SELECT COUNT(*) FROM users WHERE status = 'active' AND role <> 'customer'"
            }
            LimitKind::Customers => "SELECT COUNT(*) FROM customers",
            LimitKind::Tenants => "SELECT COUNT(*) FROM tenants",
        };
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::license::state::LicenseState;
    use crate::license::testing::{keys, on_both, payload, signed, DAY, T0};

    fn self_hosted() -> Licensing {
        Licensing::new(Mode::SelfHosted, None, keys())
    }

    #[tokio::test]
    async fn an_install_here_counts_at_once_and_one_elsewhere_within_the_ttl() {
        on_both(|t| async move {
            let licensing = self_hosted();
            licensing.record_time(&t.db, T0).await.unwrap();
            let trial = licensing.status(&t.db, T0).await.unwrap();
            assert!(matches!(trial.state, LicenseState::Trial { .. }));
            // `kontor license install`, another process on the same database.
            store::install(&t.db, &keys(), None, signed(&payload()).as_bytes(), T0)
                .await
                .unwrap();
            let cached = licensing
                .status(&t.db, T0 + STATUS_TTL_MS - 1)
                .await
                .unwrap();
            assert!(cached.license.is_none(), "still the status read at T0");
            let seen = licensing.status(&t.db, T0 + STATUS_TTL_MS).await.unwrap();
            assert_eq!(
                seen.license.as_ref().unwrap().payload().license_id,
                "L-2026-0001"
            );
            // Installed through this process: seen at once.
            let mut renewed = payload();
            renewed.license_id = "L-2026-0002".into();
            licensing
                .install(&t.db, signed(&renewed).as_bytes(), T0 + STATUS_TTL_MS + 1)
                .await
                .unwrap();
            let now = licensing
                .status(&t.db, T0 + STATUS_TTL_MS + 2)
                .await
                .unwrap();
            assert_eq!(
                now.license.as_ref().unwrap().payload().license_id,
                "L-2026-0002"
            );
            t
        })
        .await;
    }

    #[tokio::test]
    async fn recording_a_later_time_reveals_a_clock_set_back_at_once() {
        on_both(|t| async move {
            let licensing = self_hosted();
            licensing.record_time(&t.db, T0).await.unwrap();
            licensing.status(&t.db, T0 + 3 * DAY).await.unwrap();
            licensing.record_time(&t.db, T0 + 3 * DAY).await.unwrap();
            let moved = licensing.status(&t.db, T0 + DAY).await.unwrap();
            assert!(
                matches!(moved.state, LicenseState::ClockMovedBack { .. }),
                "{:?}",
                moved.state
            );
            let access = licensing
                .module_access(&t.db, "hello", &Version::new(0, 1, 0), T0 + DAY)
                .await
                .unwrap();
            assert!(
                matches!(access, Some(ModuleAccess::ReadOnly { .. })),
                "{access:?}"
            );
            t
        })
        .await;
    }

    #[tokio::test]
    async fn saas_has_no_installation_license() {
        on_both(|t| async move {
            let saas = Licensing::new(Mode::Saas, None, keys());
            let access = saas
                .module_access(&t.db, "hello", &Version::new(0, 1, 0), T0)
                .await
                .unwrap();
            assert_eq!(access, None);
            let err = saas
                .install(&t.db, signed(&payload()).as_bytes(), T0)
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::WrongMode);
            assert_eq!(
                saas.quota(&t.db, LimitKind::Users, T0).await.unwrap().max(),
                None
            );
            t
        })
        .await;
    }

    #[tokio::test]
    async fn quotas_follow_the_installed_license_and_count_in_the_transaction() {
        on_both(|t| async move {
            let licensing = self_hosted();
            let none = licensing.quota(&t.db, LimitKind::Users, T0).await.unwrap();
            assert_eq!(none.max(), None, "no license, no limit");
            // The sample license: at most 10 users, customers unlimited.
            licensing
                .install(&t.db, signed(&payload()).as_bytes(), T0)
                .await
                .unwrap();
            let users = licensing.quota(&t.db, LimitKind::Users, T0).await.unwrap();
            assert_eq!(users.max(), Some(10));
            let mut tx = t.db.begin().await.unwrap();
            assert_eq!(users.remaining_tx(&mut tx).await.unwrap(), Some(10));
            users.check_tx(&mut tx).await.unwrap();
            tx.rollback().await.unwrap();
            let customers = licensing
                .quota(&t.db, LimitKind::Customers, T0)
                .await
                .unwrap();
            assert_eq!(customers.max(), None);
            let refusal = users.refusal().unwrap();
            assert_eq!(refusal.code(), Code::LicenseLimitReached);
            assert!(refusal.to_string().contains("10 users"), "{refusal}");
            t
        })
        .await;
    }
}
