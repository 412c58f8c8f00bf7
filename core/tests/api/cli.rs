//! The real `kontor` binary: config errors, migrate, admin create, and the
//! README's first command (`kontor demo`) serving demo data.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_kontor");

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kontor-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn bad_config_value_stops_the_start_naming_the_key() {
    let out = Command::new(BIN)
        .args(["migrate"])
        .env("KONTOR_DATA_DIR", temp_dir())
        .env("KONTOR_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KONTOR_LISTEN"), "{err}");
}

#[test]
fn migrate_and_admin_create_make_a_self_hosted_install() {
    let dir = temp_dir();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("KONTOR_DATA_DIR", &dir)
            .env_remove("KONTOR_DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = run(&["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("kontor.db").exists());
    let out = run(&[
        "admin",
        "create",
        "--email",
        "me@example.com",
        "--password",
        "long enough password",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("me@example.com"));
    let out = run(&[
        "admin",
        "create",
        "--email",
        "me@example.com",
        "--password",
        "long enough password",
    ]);
    assert!(!out.status.success(), "the same e-mail twice is refused");
    let out = run(&[
        "tenant",
        "create",
        "--name",
        "X",
        "--admin-email",
        "x@example.com",
        "--admin-password",
        "long enough password",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KONTOR_MODE=saas"));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_ui_and_api_with_sample_data() {
    let dir = temp_dir();
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("demo")
        .env("KONTOR_DATA_DIR", &dir)
        .env("KONTOR_LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("KONTOR_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Keep reading to the end: a closed pipe would make the demo's next
    // line of output fail.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.trim().strip_prefix("Log in as ") {
                let parts: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
                let _ = tx.send((parts[0].clone(), parts[2].clone()));
            }
        }
    });
    let (email, password) = tokio::task::spawn_blocking(move || {
        rx.recv_timeout(Duration::from_secs(120))
            .expect("demo printed no login")
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut child = wait_healthy(child, port).await;
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"]
        .as_str()
        .expect("demo login works")
        .to_string();
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}/api/v1/customers?limit=200&cursor={c}"),
            None => format!("{base}/api/v1/customers?limit=200"),
        };
        let page: Value = http
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        count += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(count, 50);
    let page: Value = http
        .get(format!("{base}/api/v1/customers?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = page["items"][0]["id"].as_str().unwrap();
    let contacts: Value = http
        .get(format!("{base}/api/v1/customers/{id}/contacts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!contacts.as_array().unwrap().is_empty());
    let timeline: Value = http
        .get(format!("{base}/api/v1/customers/{id}/timeline"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(timeline.as_array().unwrap().len() >= 3);
    let login_page = http.get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(login_page.status(), 200);
    assert!(login_page.text().await.unwrap().contains("<form"));
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(dir).ok();
}

/// Wait until the child answers `/health`; kill it and fail if it never does.
async fn wait_healthy(mut child: std::process::Child, port: u16) -> std::process::Child {
    let http = reqwest::Client::new();
    // Generous: the machine may be busy with the rest of the suite.
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if http
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("kontor never answered /health on port {port}");
}

/// Start `kontor serve` on `dir` and wait for `/health`.
async fn serve(dir: &std::path::Path, port: u16, worker: bool) -> std::process::Child {
    let child = Command::new(BIN)
        .arg("serve")
        .env("KONTOR_DATA_DIR", dir)
        .env("KONTOR_LISTEN", format!("127.0.0.1:{port}"))
        .env("KONTOR_RUN_WORKER", if worker { "true" } else { "false" })
        .env_remove("KONTOR_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_healthy(child, port).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_before_a_crash_is_delivered_once_after_restart() {
    let dir = temp_dir();
    let out = Command::new(BIN)
        .args([
            "admin",
            "create",
            "--email",
            "crash@example.com",
            "--password",
            "long enough password",
        ])
        .env("KONTOR_DATA_DIR", &dir)
        .env_remove("KONTOR_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    // First life: no worker, so the committed event cannot be delivered yet.
    let mut first = serve(&dir, port, false).await;
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": "crash@example.com", "password": "long enough password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_string();
    let created: Value = http
        .post(format!("{base}/api/v1/customers"))
        .bearer_auth(&token)
        .json(&json!({"company": "Crash Survivor AG"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    first.kill().unwrap(); // SIGKILL: no shutdown, no flushing
    first.wait().unwrap();

    // Second life: the worker picks the event up from the outbox.
    let mut second = serve(&dir, port, true).await;
    let mut seen = Value::Null;
    for _ in 0..300 {
        seen = http
            .get(format!("{base}/api/v1/hello/seen"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if seen.to_string().contains(&id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hits = seen["items"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["customer_id"] == id.as_str()).count())
        .unwrap_or(0);
    assert_eq!(hits, 1, "delivered exactly once: {seen}");
    second.kill().unwrap();
    second.wait().unwrap();

    // Third life: nothing is delivered twice.
    let mut third = serve(&dir, port, true).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen: Value = http
        .get(format!("{base}/api/v1/hello/seen"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hits = seen["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["customer_id"] == id.as_str())
        .count();
    assert_eq!(hits, 1, "{seen}");
    third.kill().unwrap();
    third.wait().unwrap();
    std::fs::remove_dir_all(dir).ok();
}

/// An operator installs a signed package on the command line, accepting
/// some of the capabilities it requests, and accepts the rest later.
#[test]
fn module_install_accepts_capabilities_and_says_which_stay_refused() {
    use kontor::modules::{package, trust};
    let dir = temp_dir();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("KONTOR_DATA_DIR", &dir)
            .env_remove("KONTOR_DATABASE_URL")
            .env_remove("KONTOR_DEV")
            .output()
            .unwrap()
    };
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // A publisher key the install trusts, and the caps test guest (which
    // requests `secrets` and `crm`) signed with it.
    let key = trust::generate_signing_key();
    let public = trust::PublisherKey::new("kontor-tests", &key.verifying_key()).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("publisher.pub");
    std::fs::write(&key_file, public.to_text()).unwrap();
    let manifest = kontor_runtime::test_guest_manifest("caps").unwrap();
    let wasm = kontor_runtime::test_guest("caps").unwrap();
    let unsigned = package::pack::<&str, &[u8]>(&manifest, &wasm, &[]).unwrap();
    let kmod = dir.join("caps.kmod");
    std::fs::write(&kmod, package::sign(&unsigned, &key).unwrap()).unwrap();

    let out = run(&["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["module", "trust", key_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&[
        "module",
        "install",
        kmod.to_str().unwrap(),
        "--accept",
        "secrets",
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("installed caps 0.1.0"), "{said}");
    assert!(
        said.contains("requested but not accepted (refused to the module): crm"),
        "{said}"
    );

    let out = run(&["module", "accept", "caps", "secrets,crm"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("caps may use: secrets, crm"), "{said}");
    // Only what the package requests can be accepted.
    let out = run(&["module", "accept", "caps", "secrets,http"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("http"), "{}", text(&out));
    std::fs::remove_dir_all(dir).ok();
}
