//! The runtime against real components built from `modules/`: calls,
//! faults, limits, the compile cache and contract versions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kontor_runtime::call::{FilterResult, HttpRequest};
use kontor_runtime::error::LoadError;
use kontor_runtime::host::NoCapabilities;
use kontor_runtime::{Call, CallError, CompiledModule, Runtime, RuntimeConfig};
use semver::VersionReq;

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::default()).unwrap()
}

fn faults(rt: &Runtime) -> CompiledModule {
    let bytes = kontor_runtime::test_guest("faults").unwrap();
    CompiledModule::load(rt, &bytes, &VersionReq::parse("^0.1").unwrap()).unwrap()
}

fn get(path: &str) -> HttpRequest {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    HttpRequest {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        ..Default::default()
    }
}

async fn call(
    m: &CompiledModule,
    path: &str,
    deadline: Duration,
) -> Result<kontor_runtime::call::HttpResponse, CallError> {
    Call::new(m, Arc::new(NoCapabilities), deadline)
        .handle_http(get(path))
        .await
}

#[tokio::test]
async fn hello_greets_through_the_real_component() {
    let rt = runtime();
    let (_, bytes) = kontor_runtime::bundled::HELLO;
    let hello = CompiledModule::load(&rt, bytes, &VersionReq::parse("^0.1").unwrap()).unwrap();
    let res = call(&hello, "/greeting?name=Ada", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(
        String::from_utf8(res.body).unwrap(),
        r#"{"greeting":"Hello, Ada"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_ends_at_the_deadline_while_the_host_keeps_working() {
    let rt = runtime();
    let m = faults(&rt);
    let ticker = tokio::spawn(async {
        let mut n = 0u32;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(250) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            n += 1;
        }
        n
    });
    let err = call(&m, "/loop", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout(300)), "{err:?}");
    assert!(
        ticker.await.unwrap() > 10,
        "other tasks ran while the guest looped"
    );
    // The module still serves the next call.
    assert_eq!(
        call(&m, "/ok", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_the_limit() {
    let rt = Runtime::new(RuntimeConfig {
        memory_limit: 16 * 1024 * 1024,
        ..Default::default()
    })
    .unwrap();
    let m = faults(&rt);
    let err = call(&m, "/membomb", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, CallError::OutOfMemory(l) if l == 16 * 1024 * 1024),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_panic_is_a_trap_for_that_call_only() {
    let rt = runtime();
    let m = faults(&rt);
    let err = call(&m, "/trap", Duration::from_secs(2)).await.unwrap_err();
    assert!(matches!(err, CallError::Trap(_)), "{err:?}");
    assert_eq!(
        call(&m, "/ok", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn oversized_and_malformed_answers_are_refused() {
    let rt = Runtime::new(RuntimeConfig {
        max_response_bytes: 1024 * 1024,
        ..Default::default()
    })
    .unwrap();
    let m = faults(&rt);
    let err = call(&m, "/huge", Duration::from_secs(5)).await.unwrap_err();
    assert!(matches!(err, CallError::BadResponse(_)), "{err:?}");
    let err = call(&m, "/bad-status", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::BadResponse(_)), "{err:?}");
}

#[tokio::test]
async fn filters_pass_modify_reject_and_slow_ones_time_out() {
    let rt = runtime();
    let m = faults(&rt);
    let f = |hook: &'static str| {
        Call::new(&m, Arc::new(NoCapabilities), Duration::from_millis(200)).filter(hook, "{}")
    };
    assert_eq!(f("other").await.unwrap(), FilterResult::Pass);
    assert_eq!(
        f("test.modify").await.unwrap(),
        FilterResult::Modify("[{}]".into())
    );
    assert!(matches!(
        f("test.reject").await.unwrap(),
        FilterResult::Reject(_)
    ));
    assert!(matches!(
        f("test.slow").await.unwrap_err(),
        CallError::Timeout(200)
    ));
    assert!(matches!(
        f("test.trap").await.unwrap_err(),
        CallError::Trap(_)
    ));
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_faulting_calls_leave_memory_flat_and_others_serving() {
    let rt = runtime();
    let m = faults(&rt);
    for _ in 0..50 {
        let _ = call(&m, "/trap", Duration::from_secs(2)).await;
    }
    let before = rss_kib();
    for i in 0..1000 {
        let path = if i % 2 == 0 { "/trap" } else { "/bad-status" };
        assert!(call(&m, path, Duration::from_secs(2)).await.is_err());
    }
    let after = rss_kib();
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let (_, bytes) = kontor_runtime::bundled::HELLO;
    let hello = CompiledModule::load(&rt, bytes, &VersionReq::parse("^0.1").unwrap()).unwrap();
    assert_eq!(
        call(&hello, "/greeting", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn a_restart_loads_compiled_code_from_the_cache() {
    let dir = std::env::temp_dir().join(format!("kontor-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = RuntimeConfig {
        cache_dir: Some(dir.clone()),
        ..Default::default()
    };
    let (_, bytes) = kontor_runtime::bundled::HELLO;
    let req = VersionReq::parse("^0.1").unwrap();
    let first = CompiledModule::load(&Runtime::new(config.clone()).unwrap(), bytes, &req).unwrap();
    assert!(!first.from_cache);
    let rt = Runtime::new(config).unwrap();
    let second = CompiledModule::load(&rt, bytes, &req).unwrap();
    assert!(second.from_cache);
    assert_eq!(
        call(&second, "/greeting?name=Bo", Duration::from_secs(2))
            .await
            .unwrap()
            .status,
        200
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_contract_version_the_host_does_not_serve_is_refused_naming_both() {
    let rt = runtime();
    let (_, bytes) = kontor_runtime::bundled::HELLO;
    let err = CompiledModule::load(&rt, bytes, &VersionReq::parse("^0.3").unwrap()).unwrap_err();
    match err {
        LoadError::ApiMismatch { needed, offered } => {
            assert_eq!(needed, "^0.3");
            assert_eq!(offered, "0.1.0");
        }
        other => panic!("{other:?}"),
    }
    let err =
        CompiledModule::load(&rt, b"not wasm", &VersionReq::parse("^0.1").unwrap()).unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)));
}

/// Guest-side crates with native unit tests — the SDK (its router, errors,
/// doc examples) and the tickets module's SLA engine — run here, so the
/// workspace's `cargo test` covers them. A cargo of their own, with its own
/// target dir: the outer cargo holds the lock of the main one.
#[test]
fn guest_crates_native_unit_tests_pass() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-native");
    // (manifest, package): the SDK is tested as part of the guest workspace.
    let crates = [
        ("modules/Cargo.toml", Some("kontor-sdk")),
        ("modules/tickets/Cargo.toml", None),
    ];
    for (manifest, package) in crates {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.arg("test")
            .arg("--quiet")
            .arg("--manifest-path")
            .arg(root.join(manifest))
            .arg("--target-dir")
            .arg(&target);
        if let Some(package) = package {
            cmd.arg("-p").arg(package);
        }
        // The outer build's settings must not leak into the guest's.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy().into_owned();
            let keep = key == "CARGO_HOME" || key == "CARGO_NET_OFFLINE";
            if (key.starts_with("CARGO_") && !keep)
                || key.starts_with("RUSTC")
                || key == "RUSTFLAGS"
            {
                cmd.env_remove(&key);
            }
        }
        let out = cmd.output().expect("run cargo test for a guest crate");
        assert!(
            out.status.success(),
            "unit tests of {manifest} {package:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
