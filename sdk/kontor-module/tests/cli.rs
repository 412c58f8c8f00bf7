//! The real `kontor-module` binary on the real `hello` component, and on
//! modules it scaffolds itself.
//!
//! One test binary on purpose (every file under `tests/` links its own).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kontor::modules::manifest::Manifest;
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

/// `new <name> --dir <dir>` plus `extra` arguments.
fn new_module(name: &str, dir: &Path, extra: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"new", &name, &"--dir", &dir];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn new_scaffolds_a_module_the_host_manifest_parser_accepts() {
    let dir = scratch("new").join("demo");
    let out = ok(new_module("demo", &dir, &[]));
    assert!(out.contains("kontor-module build"), "{out}");

    let manifest = Manifest::parse(
        "module.toml",
        &std::fs::read_to_string(dir.join("module.toml")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.id, "demo");
    assert_eq!(manifest.version.to_string(), "0.1.0");
    assert_eq!(manifest.api.to_string(), "^0.1");
    assert!(manifest.api.matches(&semver::Version::new(0, 1, 0)));
    let routes: Vec<_> = manifest
        .routes
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(routes, [("GET", "/hello")]);
    assert_eq!(manifest.pages.len(), 1);
    assert_eq!(manifest.permissions[0].name, "demo.view");

    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
    assert!(lib.contains(".get(\"/hello\", hello)"), "{lib}");
    assert!(lib.contains("kontor_sdk::module!(Demo);"), "{lib}");
    assert!(!lib.contains("impl kontor_sdk::Guest"), "{lib}");
    assert!(
        !lib.contains("bindings"),
        "the scaffold uses only the public SDK API"
    );
    assert!(!lib.contains("{{"), "every placeholder is filled: {lib}");
    // Without --sdk-path: a registry dependency, and the README says how to
    // point it at a checkout instead.
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("kontor-sdk = \"0.1\""), "{cargo}");
    assert!(cargo.contains("crate-type = [\"cdylib\"]"), "{cargo}");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("--sdk-path"), "{readme}");
    assert!(
        readme.contains("rustup target add wasm32-wasip2"),
        "{readme}"
    );
    let config = std::fs::read_to_string(dir.join(".cargo/config.toml")).unwrap();
    assert!(config.contains("-zstack-size=65536"), "{config}");
    assert!(dir.join(".gitignore").is_file());
}

#[test]
fn new_refuses_a_non_empty_folder_and_invalid_names_and_writes_nothing() {
    let root = scratch("new-refused");
    let taken = root.join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let e = refused(new_module("demo", &taken, &[]));
    assert!(e.contains("already exists and is not empty"), "{e}");
    assert_eq!(std::fs::read_dir(&taken).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_to_string(taken.join("notes.txt")).unwrap(),
        "mine"
    );

    // An empty folder is fine.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    ok(new_module("demo", &empty, &[]));

    for (name, why) in [
        ("Demo", "does not start with a lower-case letter"),
        ("d", "1 characters long"),
        ("my_module", "contains `_`"),
        ("demo-", "ends with `-`"),
        ("customers", "the core serves `/api/v1/customers` itself"),
    ] {
        let dir = root.join(format!("bad-{name}"));
        let e = refused(new_module(name, &dir, &[]));
        assert!(e.contains("is not a valid module id"), "{name}: {e}");
        assert!(e.contains(why), "{name}: {e}");
        assert!(!dir.exists(), "{name}: nothing is written");
    }
}

/// `build` in `dir` the way a developer's shell runs it: without the
/// environment `cargo test` gives this process, with the guests' shared
/// target dir.
fn build_module(dir: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["build", "--release", "--dir"]).arg(dir);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let keep = key == "CARGO"
            || key == "CARGO_HOME"
            || key == "CARGO_NET_OFFLINE"
            || key == "CARGO_REGISTRIES_CRATES_IO_PROTOCOL";
        if (key.starts_with("CARGO_") && !keep) || key.starts_with("RUSTC") || key == "RUSTFLAGS" {
            cmd.env_remove(&key);
        }
    }
    // The target dir core/runtime's build script builds modules/ in: the
    // scaffold's dependencies are already compiled there, with the same
    // profile and stack flag.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("kontor-modules");
    cmd.env("CARGO_TARGET_DIR", target);
    cmd.output().unwrap()
}

#[test]
fn new_then_build_makes_a_component_that_passes_the_contract_check_and_packs() {
    let root = scratch("new-build");
    let dir = root.join("demo");
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kontor-sdk");
    ok(new_module("demo", &dir, &[&"--sdk-path", &sdk]));
    // The first-party guests' lock file: the same dependency versions as
    // modules/, so nothing is resolved against a registry and the compiled
    // dependencies are reused.
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules");
    std::fs::copy(modules.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();

    let out = ok(build_module(&dir));
    assert!(out.contains("built module demo 0.1.0"), "{out}");
    assert!(out.contains("a component for kontor:module 0.1.0"), "{out}");
    assert!(out.contains("next: kontor-module pack"), "{out}");
    let wasm = out
        .split_whitespace()
        .find(|w| w.ends_with("demo.wasm"))
        .map(PathBuf::from)
        .unwrap();
    assert!(package::is_component(&std::fs::read(&wasm).unwrap()));

    // What `build` printed next works.
    let kmod = root.join("demo.kmod");
    ok(run(&[
        &"pack",
        &"--manifest",
        &dir.join("module.toml"),
        &"--wasm",
        &wasm,
        &"--out",
        &kmod,
    ]));
    let shown = ok(run(&[&"inspect", &"--dev", &kmod]));
    assert!(
        shown.contains("GET /api/v1/demo/hello [demo.view]"),
        "{shown}"
    );
    assert!(shown.contains("verdict:      installable"), "{shown}");

    // A declared route without a handler: `build` names the module, the
    // route and the fix, and warns about a handler the host never calls.
    let lib = dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        code.replace(".get(\"/hello\", hello)", ".get(\"/hullo\", hello)"),
    )
    .unwrap();
    let e = refused(build_module(&dir));
    assert!(
        e.contains("error: module demo: routes[0] `GET /hello` has no handler; add `.get(\"/hello\", handler)` to `Module::routes`"),
        "{e}"
    );
    assert!(
        e.contains("warning: module demo: the code handles `GET /hullo`, but module.toml does not declare it"),
        "{e}"
    );

    // Forgetting the export compiles and links, and `build` names it.
    std::fs::write(&lib, code.replace("kontor_sdk::module!(Demo);", "")).unwrap();
    let e = refused(build_module(&dir));
    assert!(
        e.contains("module demo: the component does not export `handle-http`"),
        "{e}"
    );
    assert!(e.contains("kontor_sdk::module!"), "{e}");
}

#[test]
fn build_refuses_a_manifest_whose_api_the_contract_does_not_meet_before_compiling() {
    let root = scratch("build-api");
    let dir = root.join("demo");
    ok(new_module("demo", &dir, &[]));
    let manifest = dir.join("module.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("api = \"^0.1\"", "api = \"^0.2\"")).unwrap();

    let e = refused(build_module(&dir));
    assert!(e.contains("module demo:"), "{e}");
    assert!(
        e.contains("`api = \"^0.2\"` does not accept kontor:module 0.1.0"),
        "{e}"
    );
    assert!(e.contains("set `api = \"^0.1\"`"), "{e}");
    // Refused before cargo ran: nothing was compiled.
    assert!(!e.contains("Compiling"), "{e}");

    // Not a module folder: say how to get one.
    let e = refused(build_module(&root));
    assert!(e.contains("kontor-module new"), "{e}");
}
