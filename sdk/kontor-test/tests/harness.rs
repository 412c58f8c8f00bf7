//! The harness on the real `hello` module (built from `modules/` by the
//! runtime's build script): every helper a module author relies on does
//! what its documentation says.
//!
//! One test binary on purpose (every file under `tests/` links its own).

use std::path::PathBuf;

use kontor_test::time::macros::datetime;
use kontor_test::time::Duration;
use kontor_test::{Harness, START};
use serde_json::json;

/// The hello module as a developer's folder holds it after a build.
fn hello_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kontor-test-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (manifest, wasm) = kontor_runtime::bundled::HELLO;
    std::fs::write(dir.join("module.toml"), manifest).unwrap();
    std::fs::write(dir.join("hello.wasm"), wasm).unwrap();
    dir
}

async fn hello(name: &str) -> Harness {
    let dir = hello_dir(name);
    Harness::builder()
        .module_dir(&dir)
        .wasm(dir.join("hello.wasm"))
        .start()
        .await
}

#[tokio::test]
async fn routes_pages_settings_and_permissions_answer_over_http() {
    let h = hello("http").await;
    assert_eq!(h.module_id(), "hello");
    let r = h.get("/api/v1/hello/greeting?name=Ada").await;
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json(), json!({ "greeting": "Hello, Ada" }));
    let r = h
        .post_json("/api/v1/hello/greeting", &json!({ "name": "Bo" }))
        .await;
    assert_eq!(r.json()["greeting"], "Hello, Bo", "{}", r.text());

    h.set_setting("greeting", json!("Grüezi")).await;
    let r = h.get("/api/v1/hello/greeting?name=Ada").await;
    assert_eq!(r.json()["greeting"], "Grüezi, Ada");

    let page = h.page("/").await;
    assert_eq!(page.status(), 200, "{}", page.text());
    assert!(
        page.text()
            .contains("This page comes from the hello module"),
        "{}",
        page.text()
    );

    let r = h.anonymous().get("/api/v1/hello/greeting").await;
    assert_eq!(r.status(), 401, "{}", r.text());
    let staff = h.user("staff").await;
    assert_eq!(staff.get("/api/v1/hello/greeting").await.status(), 200);
    let reseller = h.user("reseller").await;
    let r = reseller.get("/api/v1/hello/greeting").await;
    assert_eq!(r.status(), 403, "{}", r.text());
    assert_eq!(r.error_code().as_deref(), Some("forbidden"));
}

#[tokio::test]
async fn a_customer_user_is_a_signed_in_portal_user_of_that_customer_only() {
    let h = hello("portal").await;
    let mut ids = Vec::new();
    for company in ["Portal AG", "Other GmbH"] {
        let r = h
            .post_json("/api/v1/customers", &json!({ "company": company }))
            .await;
        assert_eq!(r.status(), 201, "{}", r.text());
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let portal = h.customer_user(&ids[0]).await;
    let me = portal.get("/api/v1/auth/me").await;
    assert_eq!(me.status(), 200, "{}", me.text());
    assert_eq!(me.json()["user"]["role"], "customer", "{}", me.text());
    assert_eq!(
        me.json()["user"]["customer_id"],
        ids[0].as_str(),
        "{}",
        me.text()
    );
    // Their own record, nobody else's.
    let list = portal.get("/api/v1/customers").await;
    assert_eq!(list.status(), 200, "{}", list.text());
    assert_eq!(list.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.json()["items"][0]["id"], ids[0].as_str());
    let other = portal.get(&format!("/api/v1/customers/{}", ids[1])).await;
    assert_eq!(other.status(), 404, "{}", other.text());
    // hello.view is for staff: the module refuses the portal user.
    let r = portal.get("/api/v1/hello/greeting").await;
    assert_eq!(r.error_code().as_deref(), Some("forbidden"), "{}", r.text());
}

#[tokio::test]
async fn events_jobs_records_logs_and_the_clock_are_the_tests_to_drive() {
    let h = hello("work").await;
    assert_eq!(h.now(), START);

    // An event, delivered now; the module's records and log show it.
    let answer = h
        .emit(
            "customer.created",
            &json!({ "id": "c-1", "display_name": "Acme AG" }),
        )
        .await;
    assert_eq!(answer, Ok(()));
    let seen = h.record("seen", "c-1").await.unwrap();
    assert_eq!(seen.data["name"], "Acme AG");
    assert_eq!(seen.created_at, START.unix_timestamp() * 1000);
    assert!(h.logged("c-1"), "{:?}", h.logs());
    // The module's refusal comes back as its answer.
    let refused = h.emit("customer.created", &json!({})).await;
    assert!(refused.is_err(), "{refused:?}");

    // A customer made through the core's API reaches it through the queue.
    let r = h
        .post_json("/api/v1/customers", &json!({ "company": "Queue AG" }))
        .await;
    assert_eq!(r.status(), 201, "{}", r.text());
    assert!(h.drain().await >= 1);
    assert!(
        h.records("seen")
            .await
            .iter()
            .any(|r| r.data["name"] == "Queue AG"),
        "{:?}",
        h.records("seen").await
    );

    // A job now, then by its schedule as the clock moves.
    assert_eq!(h.run_job("tick").await, Ok(()));
    let ticks = || async { h.record("seen", "_ticks").await.unwrap().data["ticks"].clone() };
    assert_eq!(ticks().await, 1);
    assert_eq!(h.run_due_jobs().await, 0, "first sight starts the schedule");
    h.advance(Duration::minutes(5));
    assert_eq!(h.run_due_jobs().await, 1);
    assert_eq!(ticks().await, 2);
    h.set_now(datetime!(2027-01-01 00:00 UTC));
    assert_eq!(h.now(), datetime!(2027-01-01 00:00 UTC));
    assert_eq!(h.run_due_jobs().await, 1, "a year missed runs once");
    assert_eq!(ticks().await, 3);
    // The harness's sign-in does not lapse however far the clock moves.
    assert_eq!(h.get("/api/v1/hello/seen").await.status(), 200);

    // Starting data, written as the module would.
    h.put_record(
        "seen",
        "c-9",
        &json!({ "customer_id": "c-9", "name": "Seeded" }),
    )
    .await;
    let r = h.get("/api/v1/hello/seen").await;
    assert!(r.text().contains("Seeded"), "{}", r.text());
}

/// The host's `caps` test guest, with a signed hook `POST /inbound`.
async fn caps_with_a_hook() -> Harness {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kontor-test-caps-hook");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = kontor_runtime::test_guest_manifest("caps").unwrap()
        + "\n[[secrets]]\nname = \"inbound_secret\"\n\n[[routes]]\nmethod = \"POST\"\npath = \"/inbound\"\nsigned_by = \"inbound_secret\"\n";
    std::fs::write(dir.join("module.toml"), manifest).unwrap();
    std::fs::write(
        dir.join("caps.wasm"),
        kontor_runtime::test_guest("caps").unwrap(),
    )
    .unwrap();
    Harness::builder()
        .module_dir(&dir)
        .wasm(dir.join("caps.wasm"))
        .start()
        .await
}

#[tokio::test]
async fn the_module_s_clock_is_the_harness_s_and_post_signed_reaches_a_signed_hook() {
    let h = caps_with_a_hook().await;
    h.advance(Duration::hours(4));
    let r = h.get("/api/v1/caps/now").await;
    assert_eq!(r.json()["now_ms"], h.now_ms(), "{}", r.text());

    h.set_secret("inbound_secret", "the-gateway-secret-0123")
        .await;
    let body = json!({ "subject": "Printer on fire" });
    let r = h
        .post_signed("/inbound", &body, "the-gateway-secret-0123")
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["principal"], false);
    assert_eq!(r.json()["body"], body.to_string());
    let r = h
        .post_signed("/inbound", &body, "not-the-secret-4567")
        .await;
    assert_eq!(r.status(), 400, "{}", r.text());
    assert_eq!(r.error_code().as_deref(), Some("webhook_signature_invalid"));
}

#[tokio::test]
async fn each_harness_sees_only_the_log_lines_of_its_own_tenant() {
    let a = hello("logs-a").await;
    let b = hello("logs-b").await;
    a.emit("customer.created", &json!({ "id": "only-a" }))
        .await
        .unwrap();
    b.emit("customer.created", &json!({ "id": "only-b" }))
        .await
        .unwrap();
    assert!(a.logged("only-a") && !a.logged("only-b"), "{:?}", a.logs());
    assert!(b.logged("only-b") && !b.logged("only-a"), "{:?}", b.logs());
    let line = a.logs().into_iter().find(|l| l.message.contains("only-a"));
    let line = line.unwrap();
    assert_eq!(line.module, "hello");
    assert_eq!(line.level, "info");
}

#[tokio::test]
async fn without_a_build_the_start_fails_saying_how_to_build() {
    let dir = hello_dir("unbuilt");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"never-built\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let e = Harness::builder()
        .module_dir(&dir)
        .try_start()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("never_built.wasm"), "{e}");
    assert!(e.contains("kontor-module test"), "{e}");
}
