//! `kontor-install upgrade` end to end on real installations.
//!
//! The "next versions" are the real server binary with a release trailer
//! (`kontor::release::trailer`): each reports its version and carries the
//! migrations a later Kontor would add, run by the real migrator on the
//! installation's real data. So an upgrade here migrates data for real, a
//! migration fails for real (on data it does not fit), and the version
//! that serves after a rollback is the old binary itself.
//!
//! * a valid package upgrades and migrates; versions can be skipped, and
//!   skipping one gives the same database as going through it;
//! * a tampered package, one signed by an unknown key, a downgrade, an
//!   unsupported source version and a binary that is not the version its
//!   manifest names are refused with nothing changed;
//! * an upgrade whose migration fails is rolled back, and the old version
//!   serves again with all its data.

mod support;

use std::path::Path;

use kontor::release::trailer::{TestMigration, TestRelease};
use kontor_install::upgrade::package::{pack, UpdateManifest};
use support::*;

const PASSWORD: &str = "upgrade test password";

/// What 0.2.0 adds: customers get a loyalty tier, filled in from their data.
fn loyalty_tiers() -> TestMigration {
    TestMigration {
        version: 20_990_101_000_001,
        description: "customer loyalty tiers".into(),
        sql: "ALTER TABLE customers ADD COLUMN loyalty_tier TEXT NOT NULL DEFAULT 'standard';\n\
              UPDATE customers SET loyalty_tier = 'gold' WHERE company LIKE 'Alpha%';"
            .into(),
    }
}

/// What 0.3.0 adds: a table of the tiers, counted from 0.2.0's column (so it
/// only works after it).
fn tier_table() -> TestMigration {
    TestMigration {
        version: 20_990_201_000_001,
        description: "loyalty tier table".into(),
        sql: "CREATE TABLE loyalty_tiers (name TEXT PRIMARY KEY, customers BIGINT NOT NULL);\n\
              INSERT INTO loyalty_tiers (name, customers) \
              SELECT loyalty_tier, COUNT(*) FROM customers GROUP BY loyalty_tier;"
            .into(),
    }
}

/// A migration that does not fit the data: phone numbers unique per
/// tenant, while the two customers of [`installed`] share one.
fn unique_phones() -> TestMigration {
    TestMigration {
        version: 20_990_201_000_002,
        description: "unique phone numbers".into(),
        sql: "CREATE UNIQUE INDEX customers_phone_unique ON customers (tenant_id, phone);".into(),
    }
}

/// The server binary standing for `version` with `migrations` after the
/// embedded ones.
fn release(version: &str, migrations: &[TestMigration]) -> Vec<u8> {
    let binary = std::fs::read(installer_bin()).unwrap();
    kontor::release::trailer::append(
        &binary,
        &TestRelease {
            version: version.into(),
            migrations: migrations.to_vec(),
        },
    )
    .unwrap()
}

struct Installed {
    env: TestEnv,
    port: u16,
}

/// An install (of this build, 0.1.0) with two customers, the server stopped.
async fn installed(backend: Backend) -> Option<Installed> {
    let env = TestEnv::new(backend).await?;
    let port = free_port();
    let mut args = env.install_args();
    args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
    args.extend(env.database_args());
    let out = run_installer(&args, &[("KONTOR_ADMIN_PASSWORD", PASSWORD)]);
    assert!(out.ok, "{}", out.text);
    let server = Server::start(&env, port).await;
    let token = server.login("owner@example.com", PASSWORD).await;
    for name in ["Alpha AG", "Beta GmbH"] {
        server
            .post_json(
                "/api/v1/customers",
                &token,
                serde_json::json!({ "company": name, "phone": "+41 44 555 01 00" }),
            )
            .await;
    }
    server.stop();
    Some(Installed { env, port })
}

fn test_key() -> ed25519_dalek::SigningKey {
    kontor::modules::trust::decode_signing_key(include_str!("../../core/keys/license-test.key"))
        .unwrap()
        .1
}

fn package(
    dir: &Path,
    name: &str,
    version: &str,
    min_from: &str,
    binary: &[u8],
    key: &ed25519_dalek::SigningKey,
) -> String {
    let bytes = pack(
        &UpdateManifest {
            product: "kontor".into(),
            version: version.parse().unwrap(),
            min_from_version: min_from.parse().unwrap(),
        },
        binary,
        key,
    )
    .unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

fn upgrade(i: &Installed, package: &str) -> Output {
    run_installer(
        &[
            "upgrade".into(),
            package.into(),
            "--config".into(),
            i.env.config.display().to_string(),
            "--binary".into(),
            i.env.kontor_bin.display().to_string(),
        ],
        &[],
    )
}

/// Upgrade and expect it to succeed.
fn upgraded(i: &Installed, package: &str, version: &str) {
    let out = upgrade(i, package);
    assert!(out.ok, "{}", out.text);
    assert!(
        out.text
            .contains(&format!("Kontor {version} is installed and answers")),
        "{}",
        out.text
    );
}

/// The installed binary (its size and both ends: trailers differ at the
/// end), the recorded version, and every row of the tables a start of the
/// server does not write to, with the migrations table and so the schema's
/// history.
type State = ((u64, Vec<u8>, Vec<u8>), String, Vec<Vec<String>>);

async fn state(i: &Installed) -> State {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(&i.env.kontor_bin).unwrap();
    let len = f.metadata().unwrap().len();
    let mut head = vec![0u8; 64];
    f.read_exact(&mut head).unwrap();
    let mut tail = vec![0u8; 256];
    f.seek(SeekFrom::End(-256)).unwrap();
    f.read_exact(&mut tail).unwrap();
    let version = std::fs::read_to_string(i.env.data_dir.join("installed-version")).unwrap();
    let dump = i.env.snapshot().await;
    let data = [
        "_sqlx_migrations",
        "customers",
        "users",
        "tenants",
        "settings",
        "modules",
    ]
    .iter()
    .map(|t| dump[*t].clone())
    .collect();
    ((len, head, tail), version, data)
}

/// Rows of `sql` on the installation's database, each as `a|b|...`.
async fn rows(i: &Installed, sql: &str) -> Vec<String> {
    use sqlx::Row;
    let db = kontor::db::Db::connect(&i.env.database_url())
        .await
        .unwrap();
    let rows = sqlx::query(sql).fetch_all(db.pool()).await;
    db.close().await;
    rows.unwrap()
        .iter()
        .map(|r| {
            (0..sqlx::Row::len(r))
                .map(|c| {
                    r.try_get::<String, _>(c)
                        .or_else(|_| r.try_get::<i64, _>(c).map(|v| v.to_string()))
                        .unwrap()
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

async fn has_table(i: &Installed, table: &str) -> bool {
    i.env.snapshot().await.contains_key(table)
}

/// The migrations this install has applied beyond the embedded ones.
async fn later_migrations(i: &Installed) -> Vec<String> {
    rows(
        i,
        "SELECT CAST(version AS TEXT) FROM _sqlx_migrations WHERE version >= 20990000000000 ORDER BY version",
    )
    .await
}

/// Start the installed binary; it serves every customer, and reports `version`.
async fn serves_with_all_data(i: &Installed, version: &str) {
    let server = Server::start(&i.env, i.port).await;
    let health: serde_json::Value = reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["version"], version, "{health}");
    let token = server.login("owner@example.com", PASSWORD).await;
    let customers = server
        .get_json("/api/v1/customers", &token)
        .await
        .to_string();
    assert!(
        customers.contains("Alpha AG") && customers.contains("Beta GmbH"),
        "{customers}"
    );
    server.stop();
}

async fn upgrades_migrate_in_order_and_versions_can_be_skipped(backend: Backend) {
    let Some(stepwise) = installed(backend).await else {
        return;
    };
    let skipping = installed(backend).await.unwrap();
    let dir = &stepwise.env.dir;
    let v2 = package(
        dir,
        "kontor-0.2.0.kupd",
        "0.2.0",
        "0.1.0",
        &release("0.2.0", &[loyalty_tiers()]),
        &test_key(),
    );
    let v3 = package(
        dir,
        "kontor-0.3.0.kupd",
        "0.3.0",
        "0.1.0",
        &release("0.3.0", &[loyalty_tiers(), tier_table()]),
        &test_key(),
    );

    // 0.1.0 -> 0.2.0: the new migration ran over the existing customers.
    let before = state(&stepwise).await;
    upgraded(&stepwise, &v2, "0.2.0");
    let after = state(&stepwise).await;
    assert_eq!(after.1.trim(), "0.2.0");
    assert_ne!(after.0, before.0, "the binary was swapped");
    assert_eq!(
        rows(
            &stepwise,
            "SELECT company, loyalty_tier FROM customers ORDER BY company"
        )
        .await,
        ["Alpha AG|gold", "Beta GmbH|standard"]
    );
    assert_eq!(later_migrations(&stepwise).await, ["20990101000001"]);
    assert!(
        std::fs::read_dir(stepwise.env.data_dir.join("backups"))
            .unwrap()
            .count()
            >= 2,
        "backup and old binary kept"
    );
    serves_with_all_data(&stepwise, "0.2.0").await;

    // 0.2.0 -> 0.3.0.
    upgraded(&stepwise, &v3, "0.3.0");
    // 0.1.0 -> 0.3.0, skipping 0.2.0: both migrations, in order.
    upgraded(&skipping, &v3, "0.3.0");
    for i in [&stepwise, &skipping] {
        assert_eq!(
            rows(i, "SELECT name, customers FROM loyalty_tiers ORDER BY name").await,
            ["gold|1", "standard|1"]
        );
        assert_eq!(
            later_migrations(i).await,
            ["20990101000001", "20990201000001"]
        );
        serves_with_all_data(i, "0.3.0").await;
    }
    let (a, b) = (state(&stepwise).await, state(&skipping).await);
    assert_eq!(a.0, b.0, "the same binary");
    let migrations = |s: &State| {
        s.2[0]
            .iter()
            .map(|row| row.split("|checksum=").next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(migrations(&a), migrations(&b), "the same schema history");
    stepwise.env.cleanup().await;
    skipping.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_migrate_in_order_and_versions_can_be_skipped_on_sqlite() {
    upgrades_migrate_in_order_and_versions_can_be_skipped(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_migrate_in_order_and_versions_can_be_skipped_on_postgres() {
    upgrades_migrate_in_order_and_versions_can_be_skipped(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_unknown_key_downgrade_unsupported_source_and_mislabelled_binary_are_refused_with_nothing_changed(
) {
    let i = installed(Backend::Sqlite).await.unwrap();
    let before = state(&i).await;
    // Refused before the binary is ever used: a small stand-in keeps the
    // test fast (signing hashes every byte).
    let binary = b"#!/bin/sh\nexit 1\n".repeat(1000);

    // Tampered: one byte of the binary changed after signing.
    let good = package(
        &i.env.dir,
        "good.kupd",
        "0.2.0",
        "0.1.0",
        &binary,
        &test_key(),
    );
    let mut bytes = std::fs::read(&good).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let tampered = i.env.dir.join("tampered.kupd");
    std::fs::write(&tampered, bytes).unwrap();
    let unknown = package(
        &i.env.dir,
        "unknown.kupd",
        "0.2.0",
        "0.1.0",
        &binary,
        &kontor::modules::trust::generate_signing_key(),
    );
    let downgrade = package(
        &i.env.dir,
        "old.kupd",
        "0.0.9",
        "0.0.1",
        &binary,
        &test_key(),
    );
    let same = package(
        &i.env.dir,
        "same.kupd",
        kontor::VERSION,
        "0.0.1",
        &binary,
        &test_key(),
    );
    let too_old = package(
        &i.env.dir,
        "skip.kupd",
        "0.9.0",
        "0.5.0",
        &binary,
        &test_key(),
    );
    // Validly signed, but the binary is another version than the manifest
    // names (a release mix-up), or no Kontor at all.
    let mislabelled = package(
        &i.env.dir,
        "mislabelled.kupd",
        "0.3.0",
        "0.1.0",
        &release("0.2.0", &[loyalty_tiers()]),
        &test_key(),
    );
    let not_kontor = good;
    for (pkg, expected) in [
        (
            tampered.display().to_string(),
            "changed after it was signed",
        ),
        (unknown, "does not trust"),
        (downgrade, "downgrades"),
        (same, "downgrades and reinstalls are refused"),
        (too_old, "upgrade to 0.5.0"),
        (
            mislabelled,
            "names Kontor 0.3.0, but its binary says it is Kontor 0.2.0",
        ),
        (not_kontor, "does not run here or does not say its version"),
    ] {
        let out = upgrade(&i, &pkg);
        assert!(!out.ok, "{pkg} was accepted");
        let text = out.text.to_lowercase();
        assert!(
            text.contains(&expected.to_lowercase()),
            "{pkg}: {}",
            out.text
        );
        assert!(text.contains("nothing was changed"), "{pkg}: {}", out.text);
        assert_eq!(state(&i).await, before, "{pkg} changed something");
        assert!(
            !i.env.data_dir.join("backups").exists(),
            "{pkg}: no backup made"
        );
        assert!(
            std::fs::read_dir(i.env.kontor_bin.parent().unwrap())
                .unwrap()
                .count()
                == 1,
            "{pkg}: nothing left beside the binary"
        );
    }
    i.env.cleanup().await;
}

async fn a_failing_migration_is_rolled_back_and_the_old_version_serves_all_data(backend: Backend) {
    let Some(i) = installed(backend).await else {
        return;
    };
    let v2 = package(
        &i.env.dir,
        "kontor-0.2.0.kupd",
        "0.2.0",
        "0.1.0",
        &release("0.2.0", &[loyalty_tiers()]),
        &test_key(),
    );
    upgraded(&i, &v2, "0.2.0");
    let before = state(&i).await;

    // 0.3.0's first migration goes through (a new table, filled), its
    // second fails on the data: the database is left half-migrated, which
    // only the backup can undo. The installer (0.1.0) does not know 0.2.0's
    // migration; the old binary restores its own backup.
    let broken = package(
        &i.env.dir,
        "kontor-0.3.0.kupd",
        "0.3.0",
        "0.2.0",
        &release("0.3.0", &[loyalty_tiers(), tier_table(), unique_phones()]),
        &test_key(),
    );
    let out = upgrade(&i, &broken);
    assert!(!out.ok, "{}", out.text);
    assert!(out.text.contains("failed while migrating"), "{}", out.text);
    let verdict = out
        .text
        .lines()
        .find(|l| l.starts_with("kontor-install:"))
        .unwrap_or_default();
    assert_eq!(
        verdict.matches("migration 20990201000002").count(),
        1,
        "the cause is shown, once: {}",
        out.text
    );
    assert!(out.text.to_lowercase().contains("unique"), "{}", out.text);
    assert!(out.text.contains("Rolled back"), "{}", out.text);
    assert!(
        out.text
            .contains("Kontor 0.2.0 answers /health/ready again"),
        "{}",
        out.text
    );
    assert_eq!(
        state(&i).await,
        before,
        "binary, version, data and schema history are the old ones"
    );
    assert!(
        !has_table(&i, "loyalty_tiers").await,
        "0.3.0's table is gone"
    );
    assert_eq!(later_migrations(&i).await, ["20990101000001"]);
    assert_eq!(
        rows(
            &i,
            "SELECT company, loyalty_tier FROM customers ORDER BY company"
        )
        .await,
        ["Alpha AG|gold", "Beta GmbH|standard"]
    );
    serves_with_all_data(&i, "0.2.0").await;
    i.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_is_rolled_back_and_the_old_version_serves_all_data_on_sqlite() {
    a_failing_migration_is_rolled_back_and_the_old_version_serves_all_data(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_is_rolled_back_and_the_old_version_serves_all_data_on_postgres() {
    a_failing_migration_is_rolled_back_and_the_old_version_serves_all_data(Backend::Postgres).await;
}

/// `packaging/release.sh` with the binaries given: a `.deb` that installs
/// the binaries, the unit and the example config, and an update package
/// the installer trusts.
#[test]
fn the_release_script_builds_a_deb_and_a_signed_update_package() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("kontor-release-test-{}", uuid::Uuid::new_v4()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let kontor = bin.join("kontor");
    if std::fs::hard_link(installer_bin(), &kontor).is_err() {
        std::fs::copy(installer_bin(), &kontor).unwrap();
    }
    let out = dir.join("dist");
    let status = std::process::Command::new("sh")
        .arg(root.join("packaging/release.sh"))
        .args(["--binary", &kontor.display().to_string()])
        .args(["--installer", installer_bin()])
        .args([
            "--key",
            &root
                .join("core/keys/license-test.key")
                .display()
                .to_string(),
        ])
        .args(["--min-from", "0.0.1"])
        .args(["--compression", "none"])
        .args(["--out", &out.display().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "release.sh failed");

    let arch = String::from_utf8(
        std::process::Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let deb = out.join(format!("kontor_{}_{}.deb", kontor::VERSION, arch.trim()));
    let listing = std::process::Command::new("dpkg")
        .arg("-c")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(listing.status.success(), "dpkg -c {}", deb.display());
    let listing = String::from_utf8(listing.stdout).unwrap();
    for (path, mode) in [
        ("./usr/bin/kontor", "-rwxr-xr-x"),
        ("./usr/bin/kontor-install", "-rwxr-xr-x"),
        ("./lib/systemd/system/kontor.service", "-rw-r--r--"),
        ("./etc/kontor/kontor.toml.example", "-rw-r-----"),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(path) && l.contains("root/root")),
            "{path} ({mode}, root) in:\n{listing}"
        );
    }
    // What it installs runs, and the package creates the service user.
    let unpacked = dir.join("unpacked");
    assert!(std::process::Command::new("dpkg-deb")
        .arg("-R")
        .arg(&deb)
        .arg(&unpacked)
        .status()
        .unwrap()
        .success());
    let version = run(&unpacked.join("usr/bin/kontor"), &["--version".into()], &[]);
    assert_eq!(version.text.trim(), format!("kontor {}", kontor::VERSION));
    let postinst = std::fs::read_to_string(unpacked.join("DEBIAN/postinst")).unwrap();
    assert!(postinst.contains("adduser --system"), "{postinst}");
    let conffiles = std::fs::read_to_string(unpacked.join("DEBIAN/conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/kontor/kontor.toml.example");

    let update = std::fs::read(out.join(format!("kontor-{}.kupd", kontor::VERSION))).unwrap();
    let pkg = kontor_install::upgrade::package::open(&update, &kontor::license::KeySet::builtin())
        .unwrap();
    assert_eq!(pkg.manifest.version.to_string(), kontor::VERSION);
    assert_eq!(pkg.manifest.min_from_version.to_string(), "0.0.1");
    assert!(
        pkg.binary == std::fs::read(&kontor).unwrap(),
        "the binary given"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
