//! The `notify` capability with the real `caps` guest: a module's e-mail is
//! rendered from its manifest template, written to the tenant's e-mail log,
//! delivered by the job queue over a real SMTP conversation (the test
//! host's sink), retried when the relay refuses, and refused when the
//! capability is not declared or not accepted.

use std::collections::BTreeSet;
use std::time::Duration;

use kontor::modules::capabilities::Capability;
use kontor::modules::registry;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::capabilities::{caps_manifest, install_caps};
use super::drain;
use crate::both;
use crate::common::{assert_error, Session, TestApp};

/// The caps manifest with `notify` declared, its `/notify` route and a
/// `welcome` template.
fn notify_manifest() -> String {
    declared_route(&caps_manifest()).replacen(
        "capabilities = [\"secrets\", \"crm\"]",
        "capabilities = [\"secrets\", \"crm\", \"notify\"]",
        1,
    ) + r#"
[[templates]]
name = "welcome"
subject = "Welcome,\n  {{ name }}"
text = "Hello {{ name }}, your number is {{ number }}."
html = "<p>Hello {{ name }}</p>"
"#
}

/// `manifest` with the guest's `POST /notify` route declared.
fn declared_route(manifest: &str) -> String {
    format!("{manifest}\n[[routes]]\nmethod = \"POST\"\npath = \"/notify\"\n")
}

async fn send(app: &TestApp, who: &Session, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/caps/notify", Some(who), Some(body))
        .await
}

/// `POST /api/v1/mail/test` to `to` as `who`.
async fn test_mail(app: &TestApp, who: &Session, to: &str) -> (StatusCode, Value) {
    let body = json!({ "to": to });
    app.call(Method::POST, "/api/v1/mail/test", Some(who), Some(body))
        .await
}

async fn mail_log(app: &TestApp, who: &Session) -> Vec<Value> {
    let (status, body) = app
        .call(Method::GET, "/api/v1/mail/log", Some(who), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

both!(
    module_mail_is_rendered_logged_delivered_over_smtp_and_retried,
    |app| {
        install_caps(&app, &notify_manifest()).await;
        let owner = app.owner.clone();

        let (status, body) = send(
            &app,
            &owner,
            json!({
                "to": ["Ada Lovelace <ada@example.test>"],
                "template": "welcome",
                "data": { "name": "Ada <b>", "number": 7 },
            }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let message_id = body["message_id"].as_str().unwrap().to_string();
        assert!(message_id.ends_with("@example.test>"), "{message_id}");

        // Queued in the log before the worker ran; nothing sent yet.
        let log = mail_log(&app, &owner).await;
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0]["status"], "queued");
        assert_eq!(log[0]["source"], "module:caps");
        assert_eq!(log[0]["template"], "welcome");
        assert_eq!(log[0]["subject"], "Welcome, Ada <b>");
        assert_eq!(log[0]["to"], json!(["Ada Lovelace <ada@example.test>"]));
        assert!(app.mail.messages().is_empty());

        // The relay refuses once: the log says so, and the retry delivers.
        app.mail.fail_next(1);
        drain(&app).await;
        let log = mail_log(&app, &owner).await;
        assert_eq!(log[0]["status"], "retrying", "{log:?}");
        assert_eq!(log[0]["attempts"], 1);
        assert!(
            log[0]["last_error"].as_str().unwrap().contains("451"),
            "{log:?}"
        );
        assert!(app.mail.messages().is_empty());

        app.clock.advance(time::Duration::hours(1));
        drain(&app).await;
        let received = app.mail.wait_for(1, Duration::from_secs(10));
        assert_eq!(received.len(), 1);
        let m = &received[0];
        assert_eq!(m.to, vec!["ada@example.test".to_string()]);
        assert_eq!(m.from, "kontor@example.test");
        assert_eq!(m.text(), "Hello Ada <b>, your number is 7.");
        assert_eq!(m.html().as_deref(), Some("<p>Hello Ada &lt;b&gt;</p>"));
        assert_eq!(m.header("Message-ID").as_deref(), Some(message_id.as_str()));
        let log = mail_log(&app, &owner).await;
        assert_eq!(log[0]["status"], "sent", "{log:?}");
        assert_eq!(log[0]["attempts"], 2);
        assert!(log[0]["sent_at"].is_i64());

        // Sent once: running the queue again sends nothing more.
        drain(&app).await;
        assert_eq!(app.mail.messages().len(), 1);

        // A reply threads onto the first message.
        let (status, body) = send(
            &app,
            &owner,
            json!({
                "to": ["ada@example.test"],
                "template": "welcome",
                "data": { "name": "Ada", "number": 8 },
                "in_reply_to": message_id,
            }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        drain(&app).await;
        let received = app.mail.wait_for(2, Duration::from_secs(10));
        assert_eq!(
            received[1].header("In-Reply-To").as_deref(),
            Some(message_id.as_str())
        );

        // Another tenant's log shows none of it.
        let other = app.new_tenant("Tenant B").await;
        assert!(mail_log(&app, &other).await.is_empty());
        // Staff may not read the log.
        let staff = app.user(&owner, "staff", None).await;
        let (status, body) = app
            .call(Method::GET, "/api/v1/mail/log", Some(&staff), None)
            .await;
        assert_error(status, &body, 403, "forbidden");
    }
);

both!(
    bad_module_mail_is_refused_with_what_is_wrong_and_nothing_queued,
    |app| {
        install_caps(&app, &notify_manifest()).await;
        let owner = app.owner.clone();
        let cases = [
            (
                json!({ "to": ["ada@example.test"], "template": "goodbye", "data": {} }),
                "goodbye",
            ),
            (
                json!({ "to": ["ada@example.test"], "template": "welcome", "data": { "name": "Ada" } }),
                "number",
            ),
            (
                json!({ "to": ["not an address"], "template": "welcome", "data": { "name": "A", "number": 1 } }),
                "to[0]",
            ),
            (
                json!({ "to": [], "template": "welcome", "data": { "name": "A", "number": 1 } }),
                "recipient",
            ),
        ];
        for (body, needle) in cases {
            let (status, res) = send(&app, &owner, body.clone()).await;
            assert_error(status, &res, 422, "invalid");
            let message = res["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{body}: {message}");
        }
        assert!(mail_log(&app, &owner).await.is_empty());
    }
);

both!(notify_is_refused_unless_declared_and_accepted, |app| {
    let owner = app.owner.clone();
    let body = json!({
        "to": ["ada@example.test"],
        "template": "welcome",
        "data": { "name": "Ada", "number": 1 },
    });

    // Declared, but the administrator accepted everything else.
    install_caps(&app, &notify_manifest()).await;
    let others = BTreeSet::from([Capability::Secrets, Capability::Crm]);
    registry::accept_capabilities(app.state.db(), "caps", &others, app.state.now_ms())
        .await
        .unwrap();
    let (status, res) = send(&app, &owner, body.clone()).await;
    assert_error(status, &res, 403, "denied");
    let message = res["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`caps`")
            && message.contains("`notify`")
            && message.contains("not accepted"),
        "{message}"
    );

    // Accepted: it goes out.
    let all = BTreeSet::from([Capability::Secrets, Capability::Crm, Capability::Notify]);
    registry::accept_capabilities(app.state.db(), "caps", &all, app.state.now_ms())
        .await
        .unwrap();
    let (status, res) = send(&app, &owner, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(mail_log(&app, &owner).await.len(), 1);
});

both!(
    notify_is_refused_when_the_manifest_does_not_declare_it,
    |app| {
        // The same code, without `notify` (and so without templates).
        install_caps(&app, &declared_route(&caps_manifest())).await;
        let owner = app.owner.clone();
        let (status, res) = send(
            &app,
            &owner,
            json!({ "to": ["ada@example.test"], "template": "welcome", "data": {} }),
        )
        .await;
        assert_error(status, &res, 403, "denied");
        let message = res["error"]["message"].as_str().unwrap();
        assert!(message.contains("does not declare"), "{message}");
        assert!(mail_log(&app, &owner).await.is_empty());
        drain(&app).await;
        assert!(app.mail.messages().is_empty());
    }
);

both!(
    the_mail_page_shows_the_log_and_a_test_message_goes_through_the_relay,
    |app| {
        install_caps(&app, &notify_manifest()).await;
        let owner = app.owner.clone();
        let (status, body) = send(
            &app,
            &owner,
            json!({ "to": ["ada@example.test"], "template": "welcome", "data": { "name": "Ada", "number": 3 } }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        drain(&app).await;

        // The API's test message goes out at once, not through the queue.
        let (status, body) = test_mail(&app, &owner, "grace@example.test").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let received = app.mail.wait_for(2, Duration::from_secs(10));
        assert!(received.iter().any(|m| m.to == ["grace@example.test"]
            && m.subject().as_deref() == Some("Kontor test e-mail")));
        let (status, body) = test_mail(&app, &owner, "nobody").await;
        assert_error(status, &body, 422, "validation_failed");
        app.mail.fail_next(1);
        let (status, body) = test_mail(&app, &owner, "grace@example.test").await;
        assert_error(status, &body, 502, "mail_failed");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("451"),
            "{body}"
        );

        // The page lists what was sent; its form sends a test message.
        let browser = crate::ui::Browser::login(&app, &owner.email).await;
        let (status, html) = browser.get("/mail").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("Welcome, Ada"), "{html}");
        assert!(html.contains("ada@example.test"));
        assert!(html.contains("module:caps"));
        let csrf = browser.csrf("/mail").await;
        let res = browser
            .post(
                "/mail/test",
                &[("_csrf", &csrf), ("to", "linus@example.test")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        assert!(html.contains("linus@example.test"), "{html}");
        assert!(app
            .mail
            .messages()
            .iter()
            .any(|m| m.to == ["linus@example.test"]));
    }
);
