//! Signed hooks with the real `caps` guest: a route declared with
//! `signed_by` answers only at `POST /api/v1/hooks/{tenant}/{module}/...`,
//! with no user, when the `Kontor-Signature` is the HMAC of the body with
//! the tenant's value of the named module secret; every other request is
//! refused before the module is called.

use kontor::auth::signature;
use kontor::modules::entitlements::{self, Status};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::capabilities::{caps_manifest, install_caps};
use super::entitle;
use crate::both;
use crate::common::{assert_error, Session, TestApp};

/// The caps manifest with its `POST /inbound` hook, signed by
/// `inbound_secret`.
fn hook_manifest() -> String {
    caps_manifest()
        + r#"
[[secrets]]
name = "inbound_secret"
description = "Signs the mail gateway's requests"

[[routes]]
method = "POST"
path = "/inbound"
signed_by = "inbound_secret"
"#
}

const SECRET_A: &str = "inbound-secret-of-tenant-a-0123";
const SECRET_B: &str = "inbound-secret-of-tenant-b-4567";

/// The slug of `who`'s tenant: the hooks URL names it.
pub async fn slug_of(app: &TestApp, who: &Session) -> String {
    let tenant = crate::records::tenant_of(app, who).await;
    kontor::tenants::find(app.state.db(), tenant.as_str())
        .await
        .unwrap()
        .unwrap()
        .slug
}

async fn set_secret(app: &TestApp, who: &Session, value: &str) {
    set_inbound_secret(app, who, "caps", value).await;
}

/// Set module `module`'s `inbound_secret` for `who`'s tenant.
pub async fn set_inbound_secret(app: &TestApp, who: &Session, module: &str, value: &str) {
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/modules/{module}/secrets/inbound_secret"),
            Some(who),
            Some(json!({ "value": value })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// `Kontor-Signature` of `body` with `secret`, `age_secs` ago on the host's clock.
fn sign(app: &TestApp, secret: &str, body: &str, age_secs: i64) -> String {
    let t = app.state.now_ms() / 1000 - age_secs;
    signature::header_value(secret.as_bytes(), t, body.as_bytes())
}

/// POST `body` to `/api/v1/hooks/{rest}` with no credential, with
/// `header` as the signature (none: no header).
async fn post_hook(
    app: &TestApp,
    rest: &str,
    body: &str,
    header: Option<String>,
) -> (StatusCode, Value) {
    let mut req = app
        .raw(Method::POST, &format!("/api/v1/hooks/{rest}"), None)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(h) = header {
        req = req.header("Kontor-Signature", h);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Calls of the caps module since this process loaded it.
fn calls(app: &TestApp) -> u64 {
    app.state.modules().get("caps").unwrap().health().calls
}

/// Who wrote the `inbound` sequence: (tenant, last value).
async fn sequences(app: &TestApp) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT tenant_id, value FROM module_sequences WHERE module_id = 'caps' AND name = 'inbound' ORDER BY tenant_id",
    )
    .fetch_all(app.state.db().pool())
    .await
    .unwrap()
}

both!(
    a_signed_hook_reaches_its_module_for_the_tenant_with_no_user,
    |app| {
        install_caps(&app, &hook_manifest()).await;
        let owner = app.owner.clone();
        let b = app.new_tenant("Tenant B").await;
        entitle(&app, &b, "caps").await;
        set_secret(&app, &owner, SECRET_A).await;
        set_secret(&app, &b, SECRET_B).await;
        let slug_b = slug_of(&app, &b).await;

        let body = r#"{"from":"ada@example.com","subject":"Printer on fire"}"#;
        let (status, answer) = post_hook(
            &app,
            &format!("{slug_b}/caps/inbound"),
            body,
            Some(sign(&app, SECRET_B, body, 0)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(
            answer,
            json!({ "principal": false, "body": body, "count": 1 }),
            "the module got the body as sent, and no user"
        );
        // It wrote in tenant B, and only there.
        let b_id = crate::records::tenant_of(&app, &b).await;
        assert_eq!(
            sequences(&app).await,
            [(b_id.as_str().to_string(), 1)],
            "the hook's writes land in the tenant it names"
        );

        // Tenant A's hook is signed with A's secret, not B's.
        let slug_a = slug_of(&app, &owner).await;
        let (status, res) = post_hook(
            &app,
            &format!("{slug_a}/caps/inbound"),
            body,
            Some(sign(&app, SECRET_B, body, 0)),
        )
        .await;
        assert_error(status, &res, 400, "webhook_signature_invalid");
        let (status, res) = post_hook(
            &app,
            &format!("{slug_a}/caps/inbound"),
            body,
            Some(sign(&app, SECRET_A, body, 0)),
        )
        .await;
        assert_eq!(
            (status, &res["count"]),
            (StatusCode::OK, &json!(1)),
            "{res}"
        );
    }
);

both!(
    a_signed_hook_is_refused_before_the_module_runs_unless_signed_fresh_and_writable,
    |app| {
        install_caps(&app, &hook_manifest()).await;
        let owner = app.owner.clone();
        let slug = slug_of(&app, &owner).await;
        let hook = format!("{slug}/caps/inbound");
        let body = r#"{"subject":"Hello"}"#;
        let before = calls(&app);

        // No secret set yet: the hook cannot be checked, and says which secret.
        let (status, res) = post_hook(&app, &hook, body, Some(sign(&app, SECRET_A, body, 0))).await;
        assert_error(status, &res, 503, "hook_not_configured");
        assert_eq!(res["error"]["details"]["secret"], "inbound_secret");
        assert!(
            res["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`inbound_secret`"),
            "{res}"
        );
        set_secret(&app, &owner, SECRET_A).await;

        let refusals = [
            ("no header", None, "malformed"),
            (
                "another secret",
                Some(sign(&app, SECRET_B, body, 0)),
                "mismatch",
            ),
            (
                "another body",
                Some(sign(&app, SECRET_A, r#"{"subject":"Bye"}"#, 0)),
                "mismatch",
            ),
            (
                "signed 301 s ago",
                Some(sign(&app, SECRET_A, body, 301)),
                "stale",
            ),
        ];
        for (why, header, reason) in refusals {
            let (status, res) = post_hook(&app, &hook, body, header).await;
            assert_error(status, &res, 400, "webhook_signature_invalid");
            assert_eq!(res["error"]["details"]["reason"], reason, "{why}: {res}");
            let message = res["error"]["message"].as_str().unwrap();
            assert!(!message.contains("payment"), "{why}: {message}");
        }
        let (_, res) = post_hook(&app, &hook, body, Some(sign(&app, SECRET_B, body, 0))).await;
        assert!(
            res["error"]["message"]
                .as_str()
                .unwrap()
                .contains("module secret `inbound_secret` of module `caps`"),
            "{res}"
        );

        // Unknown tenant, unknown module, a route that is not a hook: one answer.
        let unsigned_body = "note";
        for rest in [
            "no-such-tenant/caps/inbound".to_string(),
            format!("{slug}/nosuch/inbound"),
            format!("{slug}/caps/note"),
            format!("{slug}/caps/nothing"),
        ] {
            let (status, res) = post_hook(
                &app,
                &rest,
                unsigned_body,
                Some(sign(&app, SECRET_A, unsigned_body, 0)),
            )
            .await;
            assert_error(status, &res, 404, "not_found");
            assert!(
                res["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("no signed hook POST "),
                "{rest}: {res}"
            );
        }
        // A hook is not a signed-in user's route either.
        let (status, res) = app
            .call(
                Method::POST,
                "/api/v1/caps/inbound",
                Some(&owner),
                Some(json!({})),
            )
            .await;
        assert_error(status, &res, 404, "not_found");
        // Only POST.
        let res = app
            .raw(Method::GET, &format!("/api/v1/hooks/{hook}"), None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);

        // Read-only (the license or subscription ended): refused, even signed.
        let tenant = crate::records::tenant_of(&app, &owner).await;
        let now = app.state.now_ms();
        entitlements::set_status(app.state.db(), &tenant, "caps", Status::ReadOnly, now)
            .await
            .unwrap();
        let (status, res) = post_hook(&app, &hook, body, Some(sign(&app, SECRET_A, body, 0))).await;
        assert_error(status, &res, 403, "license_expired");
        assert_eq!(calls(&app), before, "no refused request reached the module");
        assert!(sequences(&app).await.is_empty());

        // Active again, the same request goes through, once.
        entitlements::set_status(app.state.db(), &tenant, "caps", Status::Active, now)
            .await
            .unwrap();
        let (status, res) = post_hook(&app, &hook, body, Some(sign(&app, SECRET_A, body, 0))).await;
        assert_eq!(
            (status, &res["count"]),
            (StatusCode::OK, &json!(1)),
            "{res}"
        );
        assert_eq!(calls(&app), before + 1);
    }
);
