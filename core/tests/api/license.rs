//! `kontor license` with the real binary: issue → inspect → install →
//! status, and refused files with their reason and a failing exit code.
//! The test binary is built with `dev-keys`, so it trusts the checked-in
//! test key.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_kontor");
const TEST_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/keys/license-test.key");

struct Install {
    dir: PathBuf,
}

impl Install {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("kontor-license-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Install { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("KONTOR_DATA_DIR", &self.dir)
            .env_remove("KONTOR_DATABASE_URL")
            .env_remove("KONTOR_PUBLIC_URL")
            .output()
            .unwrap()
    }

    /// Run and expect success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run and expect failure; returns stdout and stderr.
    fn fails(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn issue(&self, name: &str, extra: &[&str]) -> String {
        let out = self.dir.join(name);
        let out_str = out.to_str().unwrap();
        let mut args = vec![
            "license",
            "issue",
            "--key",
            TEST_KEY,
            "--licensee-name",
            "Ada Lovelace",
            "--email",
            "ada@example.com",
            "--company",
            "Analytical Engines",
            "--edition",
            "professional",
            "--out",
            out_str,
        ];
        args.extend_from_slice(extra);
        self.ok(&args);
        out_str.to_string()
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &str) -> &Path {
    Path::new(p)
}

#[test]
fn issued_license_inspects_installs_and_shows_in_status() {
    let install = Install::new();
    let status = install.ok(&["license", "status"]);
    assert!(status.contains("state:        trial"), "{status}");
    assert!(status.contains("development build"), "{status}");

    let file = install.issue(
        "ada.license",
        &[
            "--expires",
            "2999-01-01",
            "--modules",
            "billing@^1,helpdesk/2998-06-30",
            "--max-users",
            "25",
            "--license-id",
            "L-CLI-1",
        ],
    );
    let text = std::fs::read_to_string(path(&file)).unwrap();
    assert!(
        text.starts_with("-----BEGIN KONTOR LICENSE-----\n"),
        "{text}"
    );

    let inspect = install.ok(&["license", "inspect", &file]);
    for needle in [
        "L-CLI-1",
        "Ada Lovelace <ada@example.com>, Analytical Engines",
        "professional",
        "2999-01-01T00:00:00Z (then 14 grace days",
        "billing (versions ^1), helpdesk until 2998-06-30T00:00:00Z",
        "users: 25, customers: unlimited",
        "TEST key",
        "valid now:    yes",
    ] {
        assert!(inspect.contains(needle), "{needle} missing from\n{inspect}");
    }

    let installed = install.ok(&["license", "install", &file]);
    assert!(
        installed.contains("installed license L-CLI-1"),
        "{installed}"
    );
    assert!(installed.contains("state:        active"), "{installed}");

    let status = install.ok(&["license", "status"]);
    assert!(status.contains("state:        active"), "{status}");
    assert!(status.contains("L-CLI-1"), "{status}");
    assert!(status.contains("Licensed until 2999-01-01"), "{status}");
}

#[test]
fn refused_license_files_say_why_exit_non_zero_and_change_nothing() {
    let install = Install::new();
    let good = install.issue("good.license", &["--expires", "2999-01-01"]);

    // One character changed in the middle of the signed text.
    let mut text = std::fs::read_to_string(path(&good)).unwrap().into_bytes();
    let i = text.len() / 2;
    text[i] = if text[i] == b'A' { b'B' } else { b'A' };
    let tampered = install.dir.join("tampered.license");
    std::fs::write(&tampered, text).unwrap();
    let tampered = tampered.to_str().unwrap();

    let garbage = install.dir.join("notes.txt");
    std::fs::write(&garbage, "my license key is 1234").unwrap();
    let garbage = garbage.to_str().unwrap();

    let expired = install.issue(
        "expired.license",
        &[
            "--valid-from",
            "2020-01-01",
            "--expires",
            "2021-01-01T00:00:00Z",
        ],
    );
    let elsewhere = install.issue(
        "elsewhere.license",
        &[
            "--expires",
            "2999-01-01",
            "--instance-id",
            "another-install",
        ],
    );

    for (file, code, sentence) in [
        (tampered, "license_bad", "damaged"),
        (garbage, "license_bad_armor", "not a Kontor license file"),
        (expired.as_str(), "license_expired", "renewed license"),
    ] {
        let (_, err) = install.fails(&["license", "inspect", file]);
        assert!(
            err.contains(code) && err.contains(sentence),
            "{file}: {err}"
        );
    }
    // An expired license is still explained field by field.
    let (out, _) = install.fails(&["license", "inspect", &expired]);
    assert!(out.contains("expires:      2021-01-01T00:00:00Z"), "{out}");

    for (file, code) in [
        (tampered, "license_bad"),
        (garbage, "license_bad_armor"),
        (expired.as_str(), "license_expired"),
        (elsewhere.as_str(), "license_wrong_instance"),
    ] {
        let (_, err) = install.fails(&["license", "install", file]);
        assert!(err.contains(code), "{file}: {err}");
    }
    let status = install.ok(&["license", "status"]);
    assert!(status.contains("state:        trial"), "{status}");
    assert!(status.contains("license:      none installed"), "{status}");

    let (_, err) = install.fails(&["license", "inspect", "/nonexistent/file"]);
    assert!(err.contains("cannot read /nonexistent/file"), "{err}");
}

#[test]
fn issue_refuses_bad_arguments_before_signing() {
    let install = Install::new();
    for (edition, expires, needle) in [
        ("professional", "never", "updates_until"),
        ("gold", "2999-01-01", "starter"),
        ("starter", "next year", "not an RFC 3339 time"),
    ] {
        let out = install.run(&[
            "license",
            "issue",
            "--key",
            TEST_KEY,
            "--licensee-name",
            "X",
            "--email",
            "x@example.com",
            "--edition",
            edition,
            "--expires",
            expires,
        ]);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "nothing is signed");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{edition} {expires}: {err}");
    }
}
