//! The real `kontor-module` binary on the real `hello` component.
//!
//! One test binary on purpose (every file under `tests/` links its own).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kontor::modules::package::{self, OpenOptions, Signer};
use kontor::modules::trust::{self, KeyOrigin, TrustStore};

const BIN: &str = env!("CARGO_BIN_EXE_kontor-module");

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kontor-module-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(BIN);
    for arg in args {
        cmd.arg(arg);
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[track_caller]
fn refused(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    format!("{}{}", stdout(&out), stderr(&out))
}

/// The hello module's sources as a developer has them: manifest, built
/// component, a templates folder.
struct Module {
    manifest: PathBuf,
    wasm: PathBuf,
    templates: PathBuf,
}

fn hello(dir: &Path) -> Module {
    let (manifest_text, wasm_bytes) = kontor_runtime::bundled::HELLO;
    let manifest = dir.join("module.toml");
    let wasm = dir.join("hello.wasm");
    let templates = dir.join("templates");
    std::fs::write(&manifest, manifest_text).unwrap();
    std::fs::write(&wasm, wasm_bytes).unwrap();
    std::fs::create_dir_all(templates.join("partials")).unwrap();
    std::fs::write(templates.join("page.html"), "<h1>Hello</h1>").unwrap();
    std::fs::write(templates.join("partials/footer.html"), "<footer/>").unwrap();
    Module {
        manifest,
        wasm,
        templates,
    }
}

fn pack(module: &Module, out: &Path) {
    ok(run(&[
        &"pack",
        &"--manifest",
        &module.manifest,
        &"--wasm",
        &module.wasm,
        &"--include",
        &module.templates,
        &"--out",
        &out,
    ]));
}

/// `keygen` into `dir`; returns (key id, private key file, public key file).
fn keygen(dir: &Path, publisher: &str) -> (String, PathBuf, PathBuf) {
    let out = ok(run(&[
        &"keygen",
        &"--publisher",
        &publisher,
        &"--out",
        &dir,
    ]));
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_string();
    (
        id.clone(),
        dir.join(format!("{id}.key")),
        dir.join(format!("{id}.pub")),
    )
}

fn dev_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/dev-signing.key")
}

#[test]
fn keygen_writes_an_owner_only_private_key_and_a_public_key_named_by_its_id() {
    let dir = scratch("keygen");
    let out = ok(run(&[
        &"keygen",
        &"--publisher",
        &"acme",
        &"--out",
        &dir.join("keys"),
    ]));
    let (id, key_file, pub_file) = keygen(&dir.join("more"), "acme");
    assert_eq!(id.len(), 16);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    let (read_id, key) = trust::read_signing_key(&key_file).unwrap();
    assert_eq!(read_id, id);
    let public = trust::read_public_key(&pub_file).unwrap();
    assert_eq!(public.key_id, id);
    assert_eq!(public.publisher, "acme");
    assert_eq!(public.verifying_key().unwrap(), key.verifying_key());
    // key_id = first 16 hex characters of SHA-256 of the public key.
    assert_eq!(trust::key_id(&key.verifying_key()), id);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the private key must be owner-only");
    }
    // The first run's private key never reached the terminal.
    let first = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .unwrap();
    let secret = std::fs::read_to_string(first).unwrap();
    let seed = secret.trim().rsplit(':').next().unwrap();
    assert!(!out.contains(seed));
    assert!(out.contains("kontor-public-key:v1:"));

    let bad = refused(run(&[
        &"keygen",
        &"--publisher",
        &"a:b",
        &"--out",
        &dir.join("bad"),
    ]));
    assert!(bad.contains("publisher name"), "{bad}");
    assert!(
        !dir.join("bad").exists(),
        "nothing is written for a bad publisher"
    );
}

#[test]
fn pack_sign_inspect_and_open_the_hello_module_with_a_trusted_key() {
    let dir = scratch("round-trip");
    let module = hello(&dir);
    let kmod = dir.join("hello.kmod");
    pack(&module, &kmod);
    let (id, key, public) = keygen(&dir.join("keys"), "kontor");
    let said = ok(run(&[&"sign", &"--key", &key, &kmod]));
    assert!(said.contains(&id));

    let shown = ok(run(&[&"inspect", &kmod, &"--trust", &public]));
    for expected in [
        "id:           hello",
        "version:      0.1.0",
        "publisher:    kontor",
        "api:          kontor:module ^0.1",
        "capabilities: (none)",
        "GET /api/v1/hello/greeting [hello.view]",
        "GET /api/v1/hello/seen [hello.view]",
        "templates/partials/footer.html",
        &format!("signature:    signed by key {id} of kontor (added by an admin)"),
        "verdict:      installable",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} missing from\n{shown}"
        );
    }

    // The server's code agrees, and gets the real component back.
    let mut store = TrustStore::builtin(false);
    store
        .add_key(&trust::read_public_key(&public).unwrap())
        .unwrap();
    let bytes = std::fs::read(&kmod).unwrap();
    let opened = package::open(&bytes, &store, OpenOptions::default()).unwrap();
    assert_eq!(opened.component, kontor_runtime::bundled::HELLO.1);
    assert_eq!(opened.manifest.id, "hello");
    assert!(matches!(
        opened.signer(),
        Signer::Publisher {
            origin: KeyOrigin::Admin,
            ..
        }
    ));
    let written = opened.extract_to(&dir.join("installed/hello")).unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(
        std::fs::read_to_string(dir.join("installed/hello/templates/page.html")).unwrap(),
        "<h1>Hello</h1>"
    );
}

#[test]
fn pack_is_deterministic() {
    let dir = scratch("deterministic");
    let module = hello(&dir);
    pack(&module, &dir.join("a.kmod"));
    pack(&module, &dir.join("b.kmod"));
    assert_eq!(
        std::fs::read(dir.join("a.kmod")).unwrap(),
        std::fs::read(dir.join("b.kmod")).unwrap()
    );
}

#[test]
fn pack_refuses_a_core_module_and_a_file_that_is_not_wasm() {
    let dir = scratch("not-a-component");
    let module = hello(&dir);
    for (bytes, says) in [
        (
            b"\0asm\x01\0\0\0".as_slice(),
            "core WebAssembly module, not a component",
        ),
        (b"#!/bin/sh\necho hi\n".as_slice(), "is not WebAssembly"),
    ] {
        std::fs::write(&module.wasm, bytes).unwrap();
        let out = dir.join("x.kmod");
        let err = refused(run(&[
            &"pack",
            &"--manifest",
            &module.manifest,
            &"--wasm",
            &module.wasm,
            &"--out",
            &out,
        ]));
        assert!(err.contains(says), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn pack_refuses_an_invalid_manifest_naming_the_file_and_key() {
    let dir = scratch("bad-manifest");
    let module = hello(&dir);
    let text = kontor_runtime::bundled::HELLO
        .0
        .replace("version = \"0.1.0\"", "version = \"one\"");
    std::fs::write(&module.manifest, text).unwrap();
    let err = refused(run(&[
        &"pack",
        &"--manifest",
        &module.manifest,
        &"--wasm",
        &module.wasm,
        &"--out",
        &dir.join("x.kmod"),
    ]));
    assert!(err.contains("module.toml: version"), "{err}");
}

#[test]
fn pack_refuses_an_include_folder_with_a_wrong_name_or_a_link() {
    let dir = scratch("include");
    let module = hello(&dir);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let err = refused(run(&[
        &"pack",
        &"--manifest",
        &module.manifest,
        &"--wasm",
        &module.wasm,
        &"--include",
        &src,
        &"--out",
        &dir.join("x.kmod"),
    ]));
    assert!(err.contains("templates, assets, locales"), "{err}");

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/etc/passwd", module.templates.join("passwd")).unwrap();
        let err = refused(run(&[
            &"pack",
            &"--manifest",
            &module.manifest,
            &"--wasm",
            &module.wasm,
            &"--include",
            &module.templates,
            &"--out",
            &dir.join("x.kmod"),
        ]));
        assert!(err.contains("is a link"), "{err}");
    }
}

#[test]
fn a_flipped_byte_in_a_signed_package_is_a_bad_signature() {
    let dir = scratch("tampered");
    let module = hello(&dir);
    let kmod = dir.join("hello.kmod");
    pack(&module, &kmod);
    ok(run(&[&"sign", &"--key", &dev_key(), &kmod]));
    let mut bytes = std::fs::read(&kmod).unwrap();
    // A byte in the middle of the component.
    let wasm = kontor_runtime::bundled::HELLO.1;
    let needle = &wasm[wasm.len() / 2..wasm.len() / 2 + 32];
    let at = bytes.windows(32).position(|w| w == needle).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&kmod, &bytes).unwrap();

    let shown = refused(run(&[&"inspect", &"--dev", &kmod]));
    assert!(shown.contains("signature:    BAD signature"), "{shown}");
    assert!(shown.contains("refused (bad_signature)"), "{shown}");
    let err = package::open(
        &bytes,
        &TrustStore::builtin(true),
        OpenOptions { dev: true },
    )
    .unwrap_err();
    assert_eq!(err.code(), "bad_signature");
}

#[test]
fn an_unsigned_package_is_refused_unless_dev() {
    let dir = scratch("unsigned");
    let module = hello(&dir);
    let kmod = dir.join("hello.kmod");
    pack(&module, &kmod);
    let shown = refused(run(&[&"inspect", &kmod]));
    assert!(shown.contains("signature:    unsigned"), "{shown}");
    assert!(shown.contains("refused (unsigned)"), "{shown}");
    let shown = ok(run(&[&"inspect", &"--dev", &kmod]));
    assert!(shown.contains("verdict:      installable"), "{shown}");
}

#[test]
fn a_package_signed_by_an_unknown_key_is_untrusted() {
    let dir = scratch("unknown-key");
    let module = hello(&dir);
    let kmod = dir.join("hello.kmod");
    pack(&module, &kmod);
    let (id, key, _) = keygen(&dir.join("keys"), "kontor");
    ok(run(&[&"sign", &"--key", &key, &kmod]));
    let shown = refused(run(&[&"inspect", &kmod]));
    assert!(
        shown.contains(&format!("signed by key {id}, which is not trusted")),
        "{shown}"
    );
    assert!(shown.contains("refused (untrusted_key)"), "{shown}");
}

#[test]
fn the_checked_in_dev_key_is_trusted_only_in_dev() {
    let dir = scratch("dev-key");
    let module = hello(&dir);
    let kmod = dir.join("hello.kmod");
    pack(&module, &kmod);
    ok(run(&[&"sign", &"--key", &dev_key(), &kmod]));

    let shown = refused(run(&[&"inspect", &kmod]));
    assert!(shown.contains("refused (untrusted_key)"), "{shown}");
    let shown = ok(run(&[&"inspect", &"--dev", &kmod]));
    assert!(shown.contains("development key"), "{shown}");

    let bytes = std::fs::read(&kmod).unwrap();
    let production = package::open(&bytes, &TrustStore::builtin(false), OpenOptions::default());
    assert_eq!(production.unwrap_err().code(), "untrusted_key");
    let development = package::open(
        &bytes,
        &TrustStore::builtin(true),
        OpenOptions { dev: true },
    )
    .unwrap();
    assert!(matches!(
        development.signer(),
        Signer::Publisher {
            origin: KeyOrigin::Dev,
            ..
        }
    ));
}

#[test]
fn sign_refuses_a_file_that_is_not_a_package_and_leaves_it_alone() {
    let dir = scratch("sign-garbage");
    let file = dir.join("notes.kmod");
    std::fs::write(&file, b"not a package at all").unwrap();
    let err = refused(run(&[&"sign", &"--key", &dev_key(), &file]));
    assert!(err.contains("not a Kontor module package"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a package at all");
}
