//! SaaS subscriptions: plans, the subscription states and the module
//! entitlements they give, the signed and replay-protected payment webhook,
//! and who may activate and cancel.

use kontor::subscriptions::{plans, Interval, Plan, Policy};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::common::{assert_error, Session, TestApp, OPERATOR_TOKEN, PASSWORD, WEBHOOK_SECRET};

const DAY: time::Duration = time::Duration::days(1);

/// An offered plan with `modules`: CHF 49.00 a month, 14 days of trial.
pub async fn plan(app: &TestApp, modules: &[&str]) -> Plan {
    plan_priced(app, modules, 4900, 14).await
}

async fn plan_priced(app: &TestApp, modules: &[&str], price_minor: i64, trial_days: i64) -> Plan {
    let new = plans::NewPlan {
        name: format!("Plan with {}", modules.join(" and ")),
        modules: modules.iter().map(|m| m.to_string()).collect(),
        price_minor,
        currency: "CHF".into(),
        interval: Interval::Month,
        trial_days,
    };
    plans::create(app.state.db(), &new, app.state.now_ms())
        .await
        .unwrap()
}

/// `POST /subscriptions` to `plan_id` as `who`.
async fn start(app: &TestApp, who: &Session, plan_id: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/subscriptions",
        Some(who),
        Some(json!({"plan_id": plan_id})),
    )
    .await
}

/// Subscribe the tenant of `who` to a new plan with `modules`; returns the
/// subscription id.
pub async fn subscribe(app: &TestApp, who: &Session, modules: &[&str]) -> String {
    let p = plan(app, modules).await;
    let (status, sub) = start(app, who, &p.id).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    sub["id"].as_str().unwrap().to_string()
}

/// The tenant's entitlement row for `module`: (source, status), if any.
async fn entitlement(app: &TestApp, who: &Session, module: &str) -> Option<(String, String)> {
    sqlx::query_as(
        "SELECT source, status FROM module_entitlements WHERE tenant_id = $1 AND module_id = $2",
    )
    .bind(crate::records::tenant_of(app, who).await.as_str())
    .bind(module)
    .fetch_optional(app.state.db().pool())
    .await
    .unwrap()
}

/// Assert the tenant's row for `module` comes from its subscription with `status`.
async fn assert_entitlement(app: &TestApp, who: &Session, module: &str, status: &str) {
    assert_eq!(
        entitlement(app, who, module).await,
        Some(("subscription".to_string(), status.to_string())),
        "{module}"
    );
}

/// The caller's only subscription, as the API shows it.
async fn current(app: &TestApp, who: &Session) -> Value {
    let (status, subs) = app
        .call(Method::GET, "/api/v1/subscriptions", Some(who), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{subs}");
    subs[0].clone()
}

/// Move the clock by `days` and sign the owner in again (sessions lapse
/// after a week without use).
async fn days_later(app: &TestApp, days: i64) -> Session {
    app.clock.advance(time::Duration::days(days));
    app.login(&app.owner.email, PASSWORD).await
}

/// Apply what time changed, as the worker does every minute.
async fn sweep(app: &TestApp) {
    kontor::subscriptions::sync::sweep(
        app.state.db(),
        Policy::from_config(app.state.config()),
        app.state.now_ms(),
    )
    .await
    .unwrap();
}

/// An event body as a payment provider sends it.
fn event(id: &str, kind: &str, subscription: &str) -> Vec<u8> {
    let object = if kind.starts_with("customer.subscription.") {
        json!({"id": subscription, "object": "subscription"})
    } else {
        json!({"id": format!("in_{id}"), "object": "invoice", "subscription": subscription})
    };
    json!({"id": id, "type": kind, "data": {"object": object}})
        .to_string()
        .into_bytes()
}

/// A valid `Kontor-Signature` for `body`, signed now.
fn signed(app: &TestApp, body: &[u8]) -> String {
    kontor::auth::signature::header_value(
        WEBHOOK_SECRET.as_bytes(),
        app.state.now_ms() / 1000,
        body,
    )
}

/// Deliver `body` with `header` (none: no signature header).
async fn deliver(app: &TestApp, body: &[u8], header: Option<&str>) -> (StatusCode, Value) {
    let mut req = app
        .raw(Method::POST, "/api/v1/webhooks/payments", None)
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(h) = header {
        req = req.header("Kontor-Signature", h);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Deliver a correctly signed event; panics unless it is accepted.
async fn pay_event(app: &TestApp, id: &str, kind: &str, subscription: &str) -> Value {
    let body = event(id, kind, subscription);
    let (status, receipt) = deliver(app, &body, Some(&signed(app, &body))).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    receipt
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.state.db().pool())
        .await
        .unwrap()
}

both!(a_subscription_unlocks_exactly_its_plan_s_modules, |app| {
    let owner = &app.owner;
    let p = plan(&app, &["hello", "tickets"]).await;
    let (status, offered) = app
        .call(Method::GET, "/api/v1/plans", Some(owner), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(offered[0]["price_minor"], 4900);
    assert_eq!(offered[0]["currency"], "CHF");
    assert_eq!(offered[0]["interval"], "month");
    assert_eq!(offered[0]["modules"], json!(["hello", "tickets"]));

    let (status, sub) = start(&app, owner, &p.id).await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["status"], "trialing");
    assert_eq!(sub["access"], "active");
    assert_eq!(
        sub["current_period_end"], "2026-03-16T09:00:00Z",
        "14 days of trial"
    );
    for module in ["hello", "tickets"] {
        assert_entitlement(&app, owner, module, "active").await;
    }
    assert_eq!(entitlement(&app, owner, "billing").await, None);

    // One open subscription per tenant; only offered plans.
    let (status, body) = start(&app, owner, &p.id).await;
    assert_error(status, &body, 409, "conflict");
    plans::archive(app.state.db(), &p.id, app.state.now_ms())
        .await
        .unwrap();
    let b = app.new_tenant("Tenant B").await;
    let (status, body) = start(&app, &b, &p.id).await;
    assert_error(status, &body, 422, "validation_failed");
    let (_, offered) = app.call(Method::GET, "/api/v1/plans", Some(&b), None).await;
    assert_eq!(offered, json!([]), "archived plans are not offered");
    // Staff neither see nor choose.
    let staff = app.user(owner, "staff", None).await;
    let (status, body) = app
        .call(Method::GET, "/api/v1/subscriptions", Some(&staff), None)
        .await;
    assert_error(status, &body, 403, "forbidden");
});

both!(webhook_with_a_valid_signature_is_applied_once, |app| {
    let owner = &app.owner;
    let id = subscribe(&app, owner, &["hello"]).await;
    app.clock.advance(3 * DAY);
    let body = event("evt_paid_1", "invoice.paid", &id);
    let header = signed(&app, &body);
    let (status, receipt) = deliver(&app, &body, Some(&header)).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["outcome"], "applied");
    let sub = current(&app, owner).await;
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["current_period_start"], "2026-03-05T09:00:00Z");
    assert_eq!(
        sub["current_period_end"], "2026-04-05T09:00:00Z",
        "one month paid"
    );

    // The same delivery again, and the provider's retry signed a minute
    // later: acknowledged, not applied again (the period is not extended).
    let (status, receipt) = deliver(&app, &body, Some(&header)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(receipt["outcome"], "duplicate");
    app.clock.advance(time::Duration::minutes(1));
    let receipt = pay_event(&app, "evt_paid_1", "invoice.paid", &id).await;
    assert_eq!(receipt["outcome"], "duplicate");
    assert_eq!(
        current(&app, owner).await["current_period_end"],
        "2026-04-05T09:00:00Z"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM payment_webhook_events").await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'subscription.paid'"
        )
        .await,
        1
    );
    // The next invoice pays the next period.
    let receipt = pay_event(&app, "evt_paid_2", "invoice.paid", &id).await;
    assert_eq!(receipt["outcome"], "applied");
    assert_eq!(
        current(&app, owner).await["current_period_end"],
        "2026-05-05T09:00:00Z"
    );
});

both!(
    webhook_refuses_bad_signature_stale_timestamp_and_malformed_header_changing_nothing,
    |app| {
        let owner = &app.owner;
        let id = subscribe(&app, owner, &["hello"]).await;
        let before = current(&app, owner).await;
        let body = event("evt_1", "invoice.paid", &id);
        let now = app.state.now_ms() / 1000;
        let wrong: &[u8] = b"whsec_someone_else_0123456789";
        let good = signed(&app, &body);
        let good_sig = good.split("v1=").nth(1).unwrap().to_string();
        let sign_at =
            |t: i64| kontor::auth::signature::header_value(WEBHOOK_SECRET.as_bytes(), t, &body);
        let other_body = event("evt_1", "invoice.paid", "another");
        let cases: Vec<(&str, Option<String>, &str)> = vec![
            (
                "wrong secret",
                Some(kontor::auth::signature::header_value(wrong, now, &body)),
                "mismatch",
            ),
            (
                "signature of another body",
                Some(signed(&app, &other_body)),
                "mismatch",
            ),
            (
                "signature edited",
                Some(format!("t={now},v1={}", "ab".repeat(32))),
                "mismatch",
            ),
            ("six minutes old", Some(sign_at(now - 360)), "stale"),
            ("six minutes ahead", Some(sign_at(now + 360)), "stale"),
            ("no header", None, "malformed"),
            ("no timestamp", Some(format!("v1={good_sig}")), "malformed"),
            ("no v1", Some(format!("t={now}")), "malformed"),
            (
                "timestamp not a number",
                Some(format!("t=yesterday,v1={good_sig}")),
                "malformed",
            ),
            (
                "signature not hex",
                Some(format!("t={now},v1=not-hex")),
                "malformed",
            ),
            ("garbage", Some("sha256=whatever".to_string()), "malformed"),
        ];
        for (why, header, reason) in cases {
            let (status, res) = deliver(&app, &body, header.as_deref()).await;
            assert_error(status, &res, 400, "webhook_signature_invalid");
            assert_eq!(res["error"]["details"]["reason"], reason, "{why}: {res}");
        }
        // Nothing changed and nothing was recorded: the event, properly
        // signed, still applies.
        assert_eq!(current(&app, owner).await, before);
        assert_eq!(
            count(&app, "SELECT COUNT(*) FROM payment_webhook_events").await,
            0
        );
        let (status, receipt) = deliver(&app, &body, Some(&good)).await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        assert_eq!(receipt["outcome"], "applied");
        assert_eq!(current(&app, owner).await["status"], "active");
        // A signed body that is not an event is refused too.
        let junk = b"[1,2,3]";
        let (status, res) = deliver(&app, junk, Some(&signed(&app, junk))).await;
        assert_error(status, &res, 422, "invalid_body");
    }
);

both!(
    a_failed_payment_keeps_modules_for_the_grace_then_makes_them_read_only,
    |app| {
        let owner = &app.owner;
        let id = subscribe(&app, owner, &["hello"]).await;
        pay_event(&app, "evt_paid", "invoice.paid", &id).await;
        let owner = &days_later(&app, 31).await;
        let receipt = pay_event(&app, "evt_failed", "invoice.payment_failed", &id).await;
        assert_eq!(receipt["outcome"], "applied");
        let sub = current(&app, owner).await;
        assert_eq!(sub["status"], "past_due");
        assert_eq!(sub["access"], "active");
        assert_eq!(
            sub["read_only_from"], "2026-04-09T09:00:00Z",
            "7 days of grace"
        );
        assert_entitlement(&app, owner, "hello", "active").await;

        // A retry that fails again does not extend the grace.
        let owner = &days_later(&app, 6).await;
        pay_event(&app, "evt_failed_2", "invoice.payment_failed", &id).await;
        sweep(&app).await;
        assert_entitlement(&app, owner, "hello", "active").await;
        let owner = &days_later(&app, 1).await;
        sweep(&app).await;
        // Read-only, not removed, after the grace.
        assert_entitlement(&app, owner, "hello", "read_only").await;
        assert_eq!(current(&app, owner).await["access"], "read_only");

        // Paying unlocks it again.
        pay_event(&app, "evt_paid_late", "invoice.paid", &id).await;
        assert_eq!(current(&app, owner).await["status"], "active");
        assert_entitlement(&app, owner, "hello", "active").await;
    }
);

both!(
    an_unpaid_trial_becomes_past_due_then_read_only_by_the_sweep,
    |app| {
        let owner = &app.owner;
        subscribe(&app, owner, &["hello"]).await;
        let owner = &days_later(&app, 15).await;
        sweep(&app).await;
        let sub = current(&app, owner).await;
        assert_eq!(sub["status"], "past_due", "{sub}");
        assert_eq!(sub["past_due_since"], "2026-03-16T09:00:00Z");
        assert_entitlement(&app, owner, "hello", "active").await;
        let owner = &days_later(&app, 6).await;
        sweep(&app).await;
        assert_entitlement(&app, owner, "hello", "read_only").await;
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) FROM audit_events WHERE action = 'subscription.lapsed'"
            )
            .await,
            1
        );
    }
);

both!(
    cancel_is_the_owner_s_and_keeps_modules_to_the_period_end,
    |app| {
        let owner = &app.owner;
        let id = subscribe(&app, owner, &["hello"]).await;
        pay_event(&app, "evt_paid", "invoice.paid", &id).await;
        let path = format!("/api/v1/subscriptions/{id}/cancel");
        let admin = app.user(owner, "admin", None).await;
        let (status, body) = app.call(Method::POST, &path, Some(&admin), None).await;
        assert_error(status, &body, 403, "forbidden");
        let (status, sub) = app.call(Method::POST, &path, Some(owner), None).await;
        assert_eq!(status, StatusCode::OK, "{sub}");
        assert_eq!(sub["status"], "canceled");
        assert_eq!(sub["access"], "active");
        assert_eq!(
            sub["read_only_from"], "2026-04-02T09:00:00Z",
            "the paid period's end"
        );
        // Canceling twice changes nothing; a payment does not revive it.
        let (status, again) = app.call(Method::POST, &path, Some(owner), None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again["canceled_at"], sub["canceled_at"]);
        let receipt = pay_event(&app, "evt_after_cancel", "invoice.paid", &id).await;
        assert_eq!(receipt["outcome"], "ignored");

        let owner = &days_later(&app, 30).await;
        sweep(&app).await;
        assert_entitlement(&app, owner, "hello", "active").await;
        let owner = &days_later(&app, 1).await;
        sweep(&app).await;
        assert_entitlement(&app, owner, "hello", "read_only").await;
        // A new subscription may start once the old one is canceled.
        let id2 = subscribe(&app, owner, &["hello"]).await;
        assert_ne!(id2, id);
        assert_entitlement(&app, owner, "hello", "active").await;
    }
);

both!(
    the_provider_ending_a_subscription_makes_modules_read_only_at_once,
    |app| {
        let owner = &app.owner;
        let id = subscribe(&app, owner, &["hello", "tickets"]).await;
        pay_event(&app, "evt_paid", "invoice.paid", &id).await;
        let receipt = pay_event(&app, "evt_deleted", "customer.subscription.deleted", &id).await;
        assert_eq!(receipt["outcome"], "applied");
        let sub = current(&app, owner).await;
        assert_eq!(sub["status"], "canceled");
        assert_eq!(sub["access"], "read_only");
        for module in ["hello", "tickets"] {
            assert_entitlement(&app, owner, module, "read_only").await;
        }
        // Events Kontor cannot use are acknowledged, so the provider stops.
        for (event_id, kind, sub_id, why) in [
            (
                "evt_x1",
                "invoice.paid",
                "no-such-subscription",
                "no subscription",
            ),
            ("evt_x2", "charge.refunded", id.as_str(), "is not used"),
        ] {
            let receipt = pay_event(&app, event_id, kind, sub_id).await;
            assert_eq!(receipt["outcome"], "ignored");
            assert!(
                receipt["reason"].as_str().unwrap().contains(why),
                "{receipt}"
            );
        }
    }
);

both!(
    activation_is_for_the_operator_and_the_payment_not_the_tenant,
    |app| {
        let owner = &app.owner;
        let id = subscribe(&app, owner, &["hello"]).await;
        let path = format!("/api/v1/subscriptions/{id}/activate");
        let (status, body) = app.call(Method::POST, &path, Some(owner), None).await;
        assert_error(status, &body, 402, "payment_required");
        assert_eq!(current(&app, owner).await["status"], "trialing");

        let operator = Session {
            token: OPERATOR_TOKEN.into(),
            user_id: String::new(),
            email: String::new(),
        };
        let (status, sub) = app.call(Method::POST, &path, Some(&operator), None).await;
        assert_eq!(status, StatusCode::OK, "{sub}");
        assert_eq!(sub["status"], "active");
        assert_eq!(sub["current_period_end"], "2026-04-02T09:00:00Z");
        // Again: harmless, the period is not extended.
        let (_, again) = app.call(Method::POST, &path, Some(&operator), None).await;
        assert_eq!(again["current_period_end"], "2026-04-02T09:00:00Z");
        let (status, body) = app
            .call(
                Method::POST,
                "/api/v1/subscriptions/nope/activate",
                Some(&operator),
                None,
            )
            .await;
        assert_error(status, &body, 404, "not_found");
        // The operator token is no tenant credential.
        let (status, body) = app
            .call(Method::GET, "/api/v1/subscriptions", Some(&operator), None)
            .await;
        assert_error(status, &body, 401, "unauthenticated");

        // Nothing is owed for a free plan: its owner may activate it.
        let b = app.new_tenant("Tenant B").await;
        let free = plan_priced(&app, &["hello"], 0, 0).await;
        let (status, sub) = start(&app, &b, &free.id).await;
        assert_eq!(status, StatusCode::CREATED, "{sub}");
        assert_eq!(sub["status"], "active", "free plans need no payment");
        assert_eq!(sub["read_only_from"], Value::Null);
        let path = format!(
            "/api/v1/subscriptions/{}/activate",
            sub["id"].as_str().unwrap()
        );
        let (status, _) = app.call(Method::POST, &path, Some(&b), None).await;
        assert_eq!(status, StatusCode::OK);
    }
);

both!(
    a_paid_plan_without_trial_is_due_at_once_with_the_grace,
    |app| {
        let owner = &app.owner;
        let p = plan_priced(&app, &["hello"], 1000, 0).await;
        let (status, sub) = start(&app, owner, &p.id).await;
        assert_eq!(status, StatusCode::CREATED, "{sub}");
        assert_eq!(sub["status"], "past_due");
        assert_eq!(sub["access"], "active");
        let id = sub["id"].as_str().unwrap().to_string();
        pay_event(&app, "evt_first", "invoice.paid", &id).await;
        let sub = current(&app, owner).await;
        assert_eq!(sub["status"], "active");
        assert_eq!(
            sub["current_period_start"], "2026-03-02T09:00:00Z",
            "paid from the start"
        );
        assert_eq!(sub["current_period_end"], "2026-04-02T09:00:00Z");
    }
);

#[test]
fn the_operator_makes_and_lists_plans_on_the_command_line() {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("kontor-plan-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str], mode: &str| {
        Command::new(env!("CARGO_BIN_EXE_kontor"))
            .args(args)
            .env("KONTOR_DATA_DIR", &dir)
            .env("KONTOR_MODE", mode)
            .env_remove("KONTOR_DATABASE_URL")
            .output()
            .unwrap()
    };
    let create = [
        "plan",
        "create",
        "--name",
        "Hosting Pro",
        "--modules",
        "hosting,billing",
        "--price-minor",
        "4900",
        "--currency",
        "chf",
        "--interval",
        "year",
    ];
    let out = run(&create, "saas");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CHF 49.00 per year"), "{stdout}");
    let out = run(&["plan", "list"], "saas");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Hosting Pro") && stdout.contains("billing,hosting"),
        "{stdout}"
    );
    let out = run(&create, "self-hosted");
    assert!(!out.status.success(), "plans are for SaaS installs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SaaS"));
    let _ = std::fs::remove_dir_all(&dir);
}
