//! What every test of the desk needs: a host with the module installed, a
//! Berlin office calendar, a policy, customers, staff, and what the host
//! recorded (events in the outbox, the e-mail log).

use std::path::{Path, PathBuf};

use kontor_test::time::format_description::well_known::Rfc3339;
use kontor_test::time::OffsetDateTime;
use kontor_test::{Client, Harness};
use serde_json::{json, Value};

/// The module's folder (its `module.toml`).
fn module_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../modules/tickets")
}

/// A host with the tickets module built by the runtime's build script,
/// the clock at `now`.
pub async fn desk_at(now: OffsetDateTime) -> Harness {
    Harness::builder()
        .module_dir(module_dir())
        .wasm(Path::new(kontor_runtime::TEST_GUEST_DIR).join("tickets.wasm"))
        .start_at(now)
        .start()
        .await
}

/// An instant written as RFC 3339 (with the local offset, so a test reads
/// in the desk's wall-clock time).
pub fn at(rfc3339: &str) -> OffsetDateTime {
    OffsetDateTime::parse(rfc3339, &Rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
}

/// The same instant as Unix milliseconds, the form the module answers in.
pub fn ms(rfc3339: &str) -> i64 {
    i64::try_from(at(rfc3339).unix_timestamp_nanos() / 1_000_000).unwrap()
}

/// Unix milliseconds as RFC 3339 in UTC, for failure messages.
pub fn show(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

/// The desk works Monday to Friday, 08:00 to 18:00 in Berlin, closed on
/// `holidays`.
pub async fn berlin_office(h: &Harness, holidays: &[&str]) {
    let day = json!([["08:00", "18:00"]]);
    let week: serde_json::Map<String, Value> = ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .map(|d| (d.to_string(), day.clone()))
        .collect();
    let r = h
        .put_json(
            "/api/v1/tickets/calendar",
            &json!({ "timezone": "Europe/Berlin", "week": week, "holidays": holidays }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
}

/// The default policy with `targets` (`{"normal": {"first_response": 240}}`).
pub async fn default_policy(h: &Harness, targets: Value) {
    let r = h
        .put_json(
            "/api/v1/tickets/policies/default",
            &json!({ "name": "Standard", "targets": targets }),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
}

/// A new CRM customer; its id.
pub async fn customer(h: &Harness, company: &str, email: &str) -> String {
    let r = h
        .post_json(
            "/api/v1/customers",
            &json!({ "company": company, "email": email }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// The user id behind a signed-in client.
pub async fn user_id(c: &Client) -> String {
    let r = c.get("/api/v1/auth/me").await;
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()["user"]["id"].as_str().unwrap().to_string()
}

/// Open a ticket as `c` with `body` (subject and body filled in when
/// missing); the ticket as answered (201).
pub async fn open(c: &Client, mut ticket: Value) -> Value {
    let t = ticket.as_object_mut().unwrap();
    t.entry("subject").or_insert(json!("Server down"));
    t.entry("body")
        .or_insert(json!("Nothing answers since this morning."));
    let r = c.post_json("/api/v1/tickets/tickets", &ticket).await;
    assert_eq!(r.status(), 201, "{}", r.text());
    r.json()
}

/// Ticket `id` as the administrator sees it now.
pub async fn ticket(h: &Harness, id: &str) -> Value {
    let r = h.get(&format!("/api/v1/tickets/tickets/{id}")).await;
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()
}

/// PATCH ticket `id` as `c`; the ticket (200).
pub async fn patch(c: &Client, id: &str, change: Value) -> Value {
    let r = c
        .patch_json(&format!("/api/v1/tickets/tickets/{id}"), &change)
        .await;
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()
}

/// Write into ticket `id` as `c`; the ticket (201).
pub async fn reply(c: &Client, id: &str, body: &str) -> Value {
    let r = c
        .post_json(
            &format!("/api/v1/tickets/tickets/{id}/replies"),
            &json!({ "body": body }),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text());
    r.json()
}

/// A timer's `due_at` (Unix ms), asserting it is `running`.
pub fn running_due(ticket: &Value, timer: &str) -> i64 {
    let t = &ticket["sla"][timer];
    assert_eq!(t["state"], "running", "{timer}: {t}");
    t["due_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("{timer}: {t}"))
}

/// Assert that `timer` runs and is due at `expected` (RFC 3339).
#[track_caller]
pub fn assert_due(ticket: &Value, timer: &str, expected: &str) {
    let due = running_due(ticket, timer);
    assert_eq!(
        due,
        ms(expected),
        "{timer} due {} (expected {expected}): {}",
        show(due),
        ticket["sla"]
    );
}

/// The payloads of the events named `name` the module emitted in the
/// harness's tenant (the host's outbox), oldest first.
pub async fn events(h: &Harness, name: &str) -> Vec<Value> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT payload FROM event_outbox WHERE tenant_id = $1 AND name = $2 ORDER BY occurred_at, id",
    )
    .bind(h.tenant().as_str())
    .bind(name)
    .fetch_all(h.db().pool())
    .await
    .unwrap();
    rows.iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

/// The e-mail of `template` in the tenant's e-mail log, newest first.
pub async fn mails(h: &Harness, template: &str) -> Vec<Value> {
    let r = h.get("/api/v1/mail/log?limit=200").await;
    assert_eq!(r.status(), 200, "{}", r.text());
    r.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["template"] == template)
        .cloned()
        .collect()
}
