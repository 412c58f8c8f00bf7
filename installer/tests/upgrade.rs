//! `kontor-install upgrade` end to end on a real installation: a valid
//! signed package upgrades; a tampered package, one signed by an unknown
//! key, a downgrade and an unsupported source version are refused with
//! nothing changed; an upgrade whose migration fails is rolled back and the
//! old version serves again with all its data.

mod support;

use std::path::Path;

use kontor_install::upgrade::package::{pack, UpdateManifest};
use support::*;

const PASSWORD: &str = "upgrade test password";

struct Installed {
    env: TestEnv,
    port: u16,
}

/// A SQLite install with two customers, the server stopped.
async fn installed() -> Installed {
    let env = TestEnv::new(Backend::Sqlite).await.unwrap();
    let port = free_port();
    let out = run_installer(
        &[
            "--non-interactive".into(),
            "--config".into(),
            env.config.display().to_string(),
            "--data-dir".into(),
            env.data_dir.display().to_string(),
            "--admin-email".into(),
            "owner@example.com".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        &[("KONTOR_ADMIN_PASSWORD", PASSWORD)],
    );
    assert!(out.ok, "{}", out.text);
    let server = Server::start(&env, port).await;
    let token = server.login("owner@example.com", PASSWORD).await;
    for name in ["Alpha AG", "Beta GmbH"] {
        server
            .post_json(
                "/api/v1/customers",
                &token,
                serde_json::json!({ "company": name }),
            )
            .await;
    }
    server.stop();
    Installed { env, port }
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

/// What must not change when an upgrade is refused or rolled back.
async fn state(i: &Installed) -> (Vec<u8>, String, Vec<Vec<String>>) {
    let mut head = vec![0u8; 64];
    std::io::Read::read_exact(
        &mut std::fs::File::open(&i.env.kontor_bin).unwrap(),
        &mut head,
    )
    .unwrap();
    let version = std::fs::read_to_string(i.env.data_dir.join("installed-version")).unwrap();
    let dump = i.env.snapshot().await;
    let data = ["customers", "users", "tenants", "settings", "modules"]
        .iter()
        .map(|t| dump[*t].clone())
        .collect();
    (head, version, data)
}

async fn serves_with_all_data(i: &Installed) {
    let server = Server::start(&i.env, i.port).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_signed_package_upgrades_migrates_and_serves() {
    let i = installed().await;
    let before = state(&i).await;
    let binary = std::fs::read(installer_bin()).unwrap();
    let pkg = package(
        &i.env.dir,
        "ok.kupd",
        "0.2.0",
        "0.1.0",
        &binary,
        &test_key(),
    );
    let out = upgrade(&i, &pkg);
    assert!(out.ok, "{}", out.text);
    assert!(
        out.text.contains("Kontor 0.2.0 is installed"),
        "{}",
        out.text
    );
    let after = state(&i).await;
    assert_eq!(after.1.trim(), "0.2.0");
    assert_eq!(after.2[0], before.2[0], "customers kept");
    assert!(
        std::fs::read_dir(i.env.data_dir.join("backups"))
            .unwrap()
            .count()
            >= 2,
        "backup and old binary kept"
    );
    serves_with_all_data(&i).await;
    i.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_unknown_key_downgrade_and_unsupported_source_are_refused_with_nothing_changed() {
    let i = installed().await;
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
    for (pkg, expected) in [
        (
            tampered.display().to_string(),
            "changed after it was signed",
        ),
        (unknown, "does not trust"),
        (downgrade, "downgrades"),
        (same, "downgrades and reinstalls are refused"),
        (too_old, "upgrade to 0.5.0"),
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
    }
    i.env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_is_rolled_back_and_the_old_version_serves_all_data() {
    let i = installed().await;
    let before = state(&i).await;
    // The "new version": its migration writes (an extra user) and then
    // fails, so the rollback must undo a half-done migration.
    let real_dir = i.env.dir.join("real");
    std::fs::create_dir_all(&real_dir).unwrap();
    let real = real_dir.join("kontor");
    if std::fs::hard_link(installer_bin(), &real).is_err() {
        std::fs::copy(installer_bin(), &real).unwrap();
    }
    let script = format!(
        "#!/bin/sh\nif [ \"$1\" = migrate ]; then\n  \"{real}\" \"$@\" || exit 1\n  KONTOR_ADMIN_PASSWORD='intruder password 1' \"{real}\" admin create --email intruder@example.com --config \"{config}\" || exit 1\n  echo 'migration 20990101000000 failed: simulated' >&2\n  exit 3\nfi\nexec \"{real}\" \"$@\"\n",
        real = real.display(),
        config = i.env.config.display()
    );
    let pkg = package(
        &i.env.dir,
        "broken.kupd",
        "0.2.0",
        "0.1.0",
        script.as_bytes(),
        &test_key(),
    );
    let out = upgrade(&i, &pkg);
    assert!(!out.ok, "{}", out.text);
    assert!(out.text.contains("failed while migrating"), "{}", out.text);
    assert!(
        out.text.contains("simulated"),
        "the cause is shown: {}",
        out.text
    );
    assert!(out.text.contains("Rolled back"), "{}", out.text);
    assert_eq!(
        state(&i).await,
        before,
        "binary, version and data are the old ones"
    );
    assert!(!i.env.snapshot().await["users"]
        .iter()
        .any(|u| u.contains("intruder")));
    serves_with_all_data(&i).await;
    i.env.cleanup().await;
}
