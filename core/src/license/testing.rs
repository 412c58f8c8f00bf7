//! Shared by the license tests: the test key, a sample payload and times.

use ed25519_dalek::SigningKey;

use super::file::issue;
use super::keys::KeySet;
use super::payload::{Edition, LicensePayload, Licensee, Limits, ModuleGrant, FORMAT_VERSION};

/// One day in ms.
pub const DAY: i64 = super::state::DAY_MS;
/// 2026-01-01T00:00:00Z: when the sample license is issued and valid from.
pub const T0: i64 = 1_767_225_600_000;

/// The checked-in test key.
pub fn test_key() -> SigningKey {
    crate::modules::trust::decode_signing_key(include_str!("../../keys/license-test.key"))
        .unwrap()
        .1
}

/// What a `dev-keys` build trusts.
pub fn keys() -> KeySet {
    KeySet::with_test_key()
}

/// A professional license for a year from [`T0`], 14 grace days, modules
/// `billing` (^1) and `helpdesk` (until T0 + 100 days), at most 10 users.
pub fn payload() -> LicensePayload {
    LicensePayload {
        format_version: FORMAT_VERSION,
        license_id: "L-2026-0001".into(),
        licensee: Licensee {
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            company: Some("Analytical Engines Ltd".into()),
        },
        edition: Edition::Professional,
        issued_at: T0,
        valid_from: T0,
        expires_at: Some(T0 + 365 * DAY),
        updates_until: None,
        instance: None,
        modules: vec![
            ModuleGrant {
                id: "billing".into(),
                version: Some("^1".parse().unwrap()),
                expires_at: None,
            },
            ModuleGrant {
                id: "helpdesk".into(),
                version: None,
                expires_at: Some(T0 + 100 * DAY),
            },
        ],
        limits: Limits {
            users: Some(10),
            customers: None,
            tenants: None,
        },
        grace_days: 14,
    }
}

/// `payload` issued with the test key.
pub fn signed(payload: &LicensePayload) -> String {
    issue(&test_key(), payload).unwrap()
}

/// Run `body` on a fresh SQLite and a fresh PostgreSQL database (the
/// latter skipped where there is none, outside CI).
pub async fn on_both<F, Fut>(body: F)
where
    F: Fn(crate::db::testing::TestDb) -> Fut,
    Fut: std::future::Future<Output = crate::db::testing::TestDb>,
{
    for backend in [crate::db::Backend::Sqlite, crate::db::Backend::Postgres] {
        if let Some(db) = crate::db::testing::TestDb::new(backend).await {
            body(db).await.cleanup().await;
        }
    }
}
