//! The installation's license in the database: one row (table
//! `license_installation`) made the first time it is needed, holding the
//! instance id, the trial start, the last time seen and the installed
//! license text.
//!
//! The license text is stored as it came and verified again on every
//! [`status`], so a build that stops trusting a key (rotation) says so
//! instead of trusting what an older build accepted.

use serde::Serialize;

use crate::db::Db;
use crate::error::Result;

use super::error::LicenseError;
use super::file::{verify, Instance, License};
use super::keys::KeySet;
use super::state::{evaluate, LicenseState, LimitKind, Timeline};

/// What is known about this installation's license at a time.
#[derive(Debug, Clone, Serialize)]
pub struct LicenseStatus {
    /// This installation's id (what an instance-bound license names).
    pub instance_id: String,
    /// When the trial started (Unix ms).
    pub trial_started_at: i64,
    /// The latest time seen (Unix ms).
    pub last_seen_at: i64,
    /// When the current license was installed (Unix ms), if one is.
    pub installed_at: Option<i64>,
    /// The installed license, if it still verifies.
    pub license: Option<License>,
    /// Why an installed license is not used (e.g. bound to another host
    /// after the public URL changed), so it is never silently ignored.
    pub problem: Option<LicenseError>,
    /// The state.
    pub state: LicenseState,
}

impl LicenseStatus {
    /// The state's explanation, with the problem of an unusable installed
    /// license first.
    pub fn explanation(&self) -> String {
        match &self.problem {
            Some(problem) => format!(
                "The installed license is not used: {problem}. {}",
                self.state.explanation()
            ),
            None => self.state.explanation(),
        }
    }

    /// Whether one more `kind` may be created while `current_count` exist:
    /// the installed license's limits apply whatever its state; without a
    /// license nothing is limited.
    pub fn check_limit(&self, kind: LimitKind, current_count: u64) -> Result<()> {
        match &self.license {
            Some(license) => license.payload().limits.check(kind, current_count),
            None => Ok(()),
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    instance_id: String,
    trial_started_at: i64,
    last_seen_at: i64,
    license_text: Option<String>,
    installed_at: Option<i64>,
}

const SELECT: &str =
    "SELECT instance_id, trial_started_at, last_seen_at, license_text, installed_at \
                      FROM license_installation WHERE id = 1";

/// Make the installation's row if there is none: a new instance id, and
/// the trial starting `now`. Idempotent; the serve command calls it at
/// start so the trial begins when the install does.
pub async fn ensure(db: &Db, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO license_installation (id, instance_id, trial_started_at, last_seen_at) \
         VALUES (1, $1, $2, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Verify `input` completely (signature, time, this instance) and make it
/// the installed license. A refused file changes nothing: the license that
/// was installed stays.
pub async fn install(
    db: &Db,
    keys: &KeySet,
    hostname: Option<&str>,
    input: &[u8],
    now: i64,
) -> Result<LicenseStatus> {
    // Verify before touching the database, so a damaged file costs nothing.
    let license = verify(input, keys)?;
    ensure(db, now).await?;
    let mut tx = db.begin().await?;
    let row: Row = sqlx::query_as(&format!("{SELECT}{}", db.for_update()))
        .fetch_one(&mut *tx)
        .await?;
    license.check_usable(
        now,
        &Instance {
            id: row.instance_id,
            hostname: hostname.map(str::to_string),
        },
    )?;
    // Store the text as the vendor made it (the signed bytes inside are
    // what counts); trimmed, so stray blank lines are not kept.
    let text = String::from_utf8_lossy(input).trim().to_string();
    sqlx::query(
        "UPDATE license_installation SET license_text = $1, license_id = $2, installed_at = $3, \
         last_seen_at = CASE WHEN last_seen_at < $3 THEN $3 ELSE last_seen_at END WHERE id = 1",
    )
    .bind(&text)
    .bind(&license.payload().license_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    status(db, keys, hostname, now).await
}

/// The installation's license and state at `now`.
pub async fn status(
    db: &Db,
    keys: &KeySet,
    hostname: Option<&str>,
    now: i64,
) -> Result<LicenseStatus> {
    // Read first: the row exists on every install but the newest, and a
    // status read should not take SQLite's write lock.
    let row: Row = match sqlx::query_as(SELECT).fetch_optional(db.pool()).await? {
        Some(row) => row,
        None => {
            ensure(db, now).await?;
            sqlx::query_as(SELECT).fetch_one(db.pool()).await?
        }
    };
    let instance = Instance {
        id: row.instance_id.clone(),
        hostname: hostname.map(str::to_string),
    };
    let (license, problem) = match row.license_text.as_deref().map(|text| {
        verify(text.as_bytes(), keys).and_then(|l| l.check_instance(&instance).map(|()| l))
    }) {
        Some(Ok(license)) => (Some(license), None),
        Some(Err(problem)) => (None, Some(problem)),
        None => (None, None),
    };
    let state = evaluate(
        license.as_ref(),
        Timeline {
            trial_started_at: row.trial_started_at,
            last_seen_at: row.last_seen_at,
            now,
        },
    );
    Ok(LicenseStatus {
        instance_id: row.instance_id,
        trial_started_at: row.trial_started_at,
        last_seen_at: row.last_seen_at,
        installed_at: row.installed_at,
        license,
        problem,
        state,
    })
}

/// Record that the clock said `now`. Never moves the last time seen
/// backwards, which is what lets [`status`] notice a clock set back.
pub async fn touch_last_seen(db: &Db, now: i64) -> Result<()> {
    ensure(db, now).await?;
    sqlx::query(
        "UPDATE license_installation SET last_seen_at = $1 WHERE id = 1 AND last_seen_at < $1",
    )
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::TestDb;
    use crate::db::Backend;
    use crate::error::Code;
    use crate::license::payload::InstanceBinding;
    use crate::license::state::ExpiryCause;
    use crate::license::testing::{keys, on_both, payload, signed, DAY, T0};

    /// Install the sample license at `now`.
    async fn install_sample(db: &Db, now: i64) -> LicenseStatus {
        install(db, &keys(), None, signed(&payload()).as_bytes(), now)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn fresh_install_is_on_trial_with_one_instance_id_that_stays() {
        on_both(|t| async move {
            let first = status(&t.db, &keys(), None, T0).await.unwrap();
            assert_eq!(
                first.state,
                LicenseState::Trial {
                    ends_at: T0 + 30 * DAY
                }
            );
            assert!(first.license.is_none() && first.installed_at.is_none());
            ensure(&t.db, T0 + DAY).await.unwrap();
            let later = status(&t.db, &keys(), None, T0 + 31 * DAY).await.unwrap();
            assert_eq!(later.instance_id, first.instance_id);
            assert_eq!(later.trial_started_at, T0, "the trial starts once");
            assert_eq!(
                later.state,
                LicenseState::Expired {
                    since: T0 + 30 * DAY,
                    cause: ExpiryCause::Trial
                }
            );
            t
        })
        .await;
    }

    #[tokio::test]
    async fn install_stores_a_valid_license_and_a_refused_one_changes_nothing() {
        on_both(|t| async move {
            let good = signed(&payload());
            let installed = install(&t.db, &keys(), None, good.as_bytes(), T0 + DAY)
                .await
                .unwrap();
            assert_eq!(
                installed.state,
                LicenseState::Active {
                    expires_at: Some(T0 + 365 * DAY)
                }
            );
            assert_eq!(installed.installed_at, Some(T0 + DAY));

            let mut tampered = good.clone().into_bytes();
            let i = tampered.len() / 2;
            tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
            let mut expired = payload();
            expired.expires_at = Some(T0 + 2 * DAY);
            let mut elsewhere = payload();
            elsewhere.instance = Some(InstanceBinding {
                instance_id: Some("another-install".into()),
                hostname: None,
            });
            for (input, code) in [
                (tampered, None),
                (b"garbage".to_vec(), Some(Code::LicenseBadArmor)),
                (signed(&expired).into_bytes(), Some(Code::LicenseExpired)),
                (
                    signed(&elsewhere).into_bytes(),
                    Some(Code::LicenseWrongInstance),
                ),
            ] {
                let err = install(&t.db, &keys(), None, &input, T0 + 3 * DAY)
                    .await
                    .unwrap_err();
                if let Some(code) = code {
                    assert_eq!(err.code(), code, "{err}");
                }
                let now = status(&t.db, &keys(), None, T0 + 3 * DAY).await.unwrap();
                assert_eq!(now.installed_at, Some(T0 + DAY), "{err}");
                assert_eq!(now.license.unwrap().payload(), &payload());
            }
            t
        })
        .await;
    }

    #[tokio::test]
    async fn license_bound_to_this_instance_installs() {
        on_both(|t| async move {
            let id = status(&t.db, &keys(), None, T0).await.unwrap().instance_id;
            let mut p = payload();
            p.instance = Some(InstanceBinding {
                instance_id: Some(id),
                hostname: Some("crm.example.com".into()),
            });
            let text = signed(&p);
            let err = install(&t.db, &keys(), None, text.as_bytes(), T0)
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::LicenseWrongInstance);
            let s = install(&t.db, &keys(), Some("crm.example.com"), text.as_bytes(), T0)
                .await
                .unwrap();
            assert!(matches!(s.state, LicenseState::Active { .. }));
            // The public URL moved: the license is reported, not silently dropped.
            let moved = status(&t.db, &keys(), Some("crm.other.com"), T0)
                .await
                .unwrap();
            assert!(moved.license.is_none());
            assert_eq!(moved.problem.unwrap().code(), Code::LicenseWrongInstance);
            t
        })
        .await;
    }

    #[tokio::test]
    async fn last_seen_never_moves_back_and_a_clock_set_back_is_detected() {
        on_both(|t| async move {
            install_sample(&t.db, T0).await;
            touch_last_seen(&t.db, T0 + 10 * DAY).await.unwrap();
            touch_last_seen(&t.db, T0 + 2 * DAY).await.unwrap();
            let s = status(&t.db, &keys(), None, T0 + 2 * DAY).await.unwrap();
            assert_eq!(s.last_seen_at, T0 + 10 * DAY);
            assert!(
                matches!(s.state, LicenseState::ClockMovedBack { .. }),
                "{:?}",
                s.state
            );
            assert!(s.explanation().contains("clock moved back"));
            // The clock is right again: so is the state.
            let s = status(&t.db, &keys(), None, T0 + 10 * DAY).await.unwrap();
            assert!(matches!(s.state, LicenseState::Active { .. }));
            t
        })
        .await;
    }

    #[tokio::test]
    async fn a_key_no_longer_trusted_is_reported_and_limits_follow_the_license() {
        on_both(|t| async move {
            install_sample(&t.db, T0).await;
            let s = status(&t.db, &keys(), None, T0).await.unwrap();
            s.check_limit(LimitKind::Users, 9).unwrap();
            let err = s.check_limit(LimitKind::Users, 10).unwrap_err();
            assert_eq!(err.code(), Code::LicenseLimitReached);

            // As a release build (no test key) sees the same database.
            let release = status(&t.db, &KeySet::vendor_only(), None, T0)
                .await
                .unwrap();
            assert_eq!(
                release.problem.as_ref().unwrap().code(),
                Code::LicenseUnknownKey
            );
            assert!(matches!(release.state, LicenseState::Trial { .. }));
            release.check_limit(LimitKind::Users, 1000).unwrap();
            t
        })
        .await;
    }

    #[tokio::test]
    async fn a_restored_backup_keeps_the_license_on_a_new_machine() {
        // SQLite: a backup is a copy of the database (`VACUUM INTO`, as
        // `sqlite3 .backup` makes); "a new machine" opens it at another
        // path, under another public URL.
        let t = TestDb::new(Backend::Sqlite).await.unwrap();
        let installed = install_sample(&t.db, T0).await;
        let dir = std::env::temp_dir().join(format!("kontor-restore-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("restored.db");
        sqlx::query(&format!("VACUUM INTO '{}'", copy.display()))
            .execute(t.db.pool())
            .await
            .unwrap();
        t.cleanup().await;
        let restored = Db::connect(&format!("sqlite://{}", copy.display()))
            .await
            .unwrap();
        let s = status(&restored, &keys(), Some("new-host.example"), T0 + DAY)
            .await
            .unwrap();
        assert_eq!(s.instance_id, installed.instance_id);
        assert!(
            matches!(s.state, LicenseState::Active { .. }),
            "{:?}",
            s.state
        );
        restored.close().await;
        std::fs::remove_dir_all(dir).ok();
    }
}
