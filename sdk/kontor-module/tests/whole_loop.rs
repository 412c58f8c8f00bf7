//! The whole loop of a new module author, with the real binaries and only
//! the steps the READMEs give: `kontor-module new` → `build` → `test` →
//! `pack` → `keygen` + `sign` → `kontor module trust` + `install` into a
//! running `kontor serve` → call the module's route → its log line shows in
//! the server's output.
//!
//! Slow the first time (it compiles the host natively, for the module's
//! tests and for the `kontor` binary); every cargo run here uses the target
//! folder `module-e2e` beside this build's, so later runs are incremental
//! and never wait for the lock of the build running this test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_kontor-module");

/// The workspace this test belongs to (the Kontor checkout).
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The target folder of every inner cargo run: `<target>/module-e2e`.
fn inner_target() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("module-e2e")
}

/// A command as a developer's shell runs it: without the environment
/// `cargo test` gives this process (its target, flags and package
/// variables), with the inner target folder.
fn shell(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let keep = key == "CARGO"
            || key == "CARGO_HOME"
            || key == "CARGO_NET_OFFLINE"
            || key == "CARGO_INCREMENTAL"
            || key == "CARGO_REGISTRIES_CRATES_IO_PROTOCOL";
        if (key.starts_with("CARGO_") && !keep)
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
            || key.starts_with("KONTOR_")
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env("CARGO_TARGET_DIR", inner_target());
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn ok(what: &str, out: Output) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kontor-module <args>` in `dir`.
fn kontor_module(dir: &Path, args: &[&str]) -> Output {
    shell(BIN).args(args).current_dir(dir).output().unwrap()
}

/// Build the `kontor` binary of this checkout (the server an operator
/// runs) in the inner target folder; returns its path.
fn kontor_binary() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = shell(cargo)
        .args([
            "build",
            "-p",
            "kontor",
            "--bin",
            "kontor",
            "--manifest-path",
        ])
        .arg(checkout().join("Cargo.toml"))
        .output()
        .unwrap();
    ok("cargo build -p kontor", out);
    let bin = inner_target()
        .join("debug")
        .join(format!("kontor{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.is_file(), "no {}", bin.display());
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child's output (stdout and stderr), collected line by line.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(&self, from: impl std::io::Read + Send + 'static) {
        let sink = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    /// Wait (boundedly) for a line that `matches`; returns it.
    async fn wait_for(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        for _ in 0..600 {
            if let Some(line) = self.0.lock().unwrap().iter().find(|l| matches(l)) {
                return line.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("never saw {what}:\n{}", self.text());
    }
}

/// `kontor-module dev` on the scaffolded module (already built by `test`).
async fn dev_host_serves_logs_and_reloads(demo: &Path) {
    let port = free_port();
    let mut child = shell(BIN)
        .args(["dev", "--no-build", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(demo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Lines::default();
    out.collect(child.stdout.take().unwrap());
    out.collect(child.stderr.take().unwrap());
    let dev = Server {
        child,
        log: out.0.clone(),
    };
    let url = out
        .wait_for("the dev host's address", |l| l.contains("Kontor dev host:"))
        .await;
    assert!(url.contains(&format!("http://127.0.0.1:{port}/")), "{url}");
    assert!(
        out.text().contains("Log in as admin@example.com"),
        "{}",
        out.text()
    );
    let token = out
        .wait_for("an API token", |l| l.contains("API token:"))
        .await
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let http = reqwest::Client::new();
    let res = http
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/demo/hello?name=Dev"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", out.text());
    out.wait_for("the module's log line", |l| {
        l.contains("said hello to Dev") || (l.contains("demo") && l.contains("Dev"))
    })
    .await;

    // A rebuild (here: the same component written again) is reloaded.
    let wasm = inner_target().join("wasm32-wasip2/debug/demo.wasm");
    let bytes = std::fs::read(&wasm).unwrap();
    std::fs::write(&wasm, bytes).unwrap();
    out.wait_for("the reload", |l| l.contains("reloaded demo 0.1.0"))
        .await;
    let res = http
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/demo/hello?name=Again"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", out.text());
    assert!(demo.join(".kontor-dev/kontor.db").is_file());
    drop(dev);
}

/// `kontor serve` whose stderr (its log) is collected line by line.
struct Server {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_module_goes_from_scaffold_to_a_running_server_as_the_readme_says() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kontor-module-whole-loop");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let sdk = checkout().join("sdk/kontor-sdk");

    // 1. Scaffold, against this checkout's SDK.
    let said = ok(
        "new",
        kontor_module(&root, &["new", "demo", "--sdk-path", sdk.to_str().unwrap()]),
    );
    assert!(said.contains("created module demo"), "{said}");
    let demo = root.join("demo");
    // Test plumbing, not an author's step: this checkout's lock file, so
    // the host the module's tests run is built from the versions this
    // checkout is tested with, and shares compiled crates with the
    // `kontor` binary below.
    std::fs::copy(checkout().join("Cargo.lock"), demo.join("Cargo.lock")).unwrap();

    // 2. Build (the README's first step), in the module folder.
    let said = ok("build", kontor_module(&demo, &["build", "--release"]));
    assert!(said.contains("built module demo 0.1.0"), "{said}");
    let wasm = said
        .lines()
        .find_map(|l| l.strip_prefix("built module demo 0.1.0: "))
        .and_then(|l| l.split(" (").next())
        .map(PathBuf::from)
        .unwrap();
    assert!(wasm.is_file(), "{said}");

    // 3. Its own tests, against a real host in process.
    let out = kontor_module(&demo, &["test"]);
    let said = text(&out);
    assert!(out.status.success(), "test failed:\n{said}");
    assert!(said.contains("test result: ok"), "{said}");
    assert!(
        said.contains("hello_greets_by_name_and_logs_whom ... ok"),
        "the scaffold's own test ran: {said}"
    );

    // A failing test fails the command with cargo's status, its output shown.
    let failing = demo.join("tests/fails_on_purpose.rs");
    std::fs::write(
        &failing,
        "#[test]\nfn fails_on_purpose() {\n    panic!(\"on purpose\");\n}\n",
    )
    .unwrap();
    let out = kontor_module(&demo, &["test", "--", "--test", "fails_on_purpose"]);
    assert_eq!(out.status.code(), Some(101), "{}", text(&out));
    assert!(text(&out).contains("on purpose"), "{}", text(&out));
    std::fs::remove_file(&failing).unwrap();

    // 3b. The dev host serves the build, prints what the module logs and
    // reloads it when the build changes.
    dev_host_serves_logs_and_reloads(&demo).await;

    // 4. Pack, make a publisher key, sign.
    let kmod = demo.join("demo.kmod");
    ok(
        "pack",
        kontor_module(
            &demo,
            &[
                "pack",
                "--manifest",
                "module.toml",
                "--wasm",
                wasm.to_str().unwrap(),
                "--out",
                "demo.kmod",
            ],
        ),
    );
    let said = ok(
        "keygen",
        kontor_module(&demo, &["keygen", "--publisher", "dev", "--out", "keys"]),
    );
    let key_id = said
        .lines()
        .find_map(|l| l.strip_prefix("key id:"))
        .unwrap()
        .trim()
        .to_string();
    let key = format!("keys/{key_id}.key");
    let public = demo.join(format!("keys/{key_id}.pub"));
    ok(
        "sign",
        kontor_module(&demo, &["sign", "--key", &key, "demo.kmod"]),
    );

    // 5. A self-hosted server with an administrator, trusting the key.
    let kontor = kontor_binary();
    let data = root.join("server");
    let port = free_port();
    let run = |args: &[&str]| {
        shell(&kontor)
            .args(args)
            .env("KONTOR_DATA_DIR", &data)
            .output()
            .unwrap()
    };
    let (email, password) = ("admin@example.com", "a long enough password");
    ok(
        "kontor admin create",
        run(&["admin", "create", "--email", email, "--password", password]),
    );
    ok(
        "kontor module trust",
        run(&["module", "trust", public.to_str().unwrap()]),
    );
    let mut child = shell(&kontor)
        .arg("serve")
        .env("KONTOR_DATA_DIR", &data)
        .env("KONTOR_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = BufReader::new(child.stderr.take().unwrap());
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let server = Server { child, log };
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut healthy = false;
    for _ in 0..600 {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "kontor never became healthy:\n{}", server.log());

    // 6. Install into the running server, accepting what it requests.
    let manifest = kontor::modules::manifest::Manifest::parse(
        "module.toml",
        &std::fs::read_to_string(demo.join("module.toml")).unwrap(),
    )
    .unwrap();
    let mut install = vec!["module", "install", kmod.to_str().unwrap()];
    let accept = manifest.capabilities.join(",");
    if !accept.is_empty() {
        install.extend(["--accept", &accept]);
    }
    let said = ok("kontor module install", run(&install));
    assert!(said.contains("installed demo 0.1.0"), "{said}");

    // 7. Call its route as the administrator: the server picks the install
    // up from the registry (at once, or at its next check).
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_string();
    let mut answer = None;
    for _ in 0..600 {
        let res = http
            .get(format!("{base}/api/v1/demo/hello?name=Loop"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if res.status().is_success() {
            answer = Some(res.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = answer.unwrap_or_else(|| panic!("the route never answered:\n{}", server.log()));
    assert_eq!(answer["greeting"], "Hello, Loop", "{answer}");

    // 8. The module's log line, in the server's log, with the module id.
    let mut seen = false;
    for _ in 0..100 {
        seen = server
            .log()
            .lines()
            .any(|l| l.contains("kontor::module") && l.contains("demo") && l.contains("Loop"));
        if seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "no log line of the module:\n{}", server.log());
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
