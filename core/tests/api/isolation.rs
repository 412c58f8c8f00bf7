//! Tenant isolation: every tenant-scoped API route, called with a token of
//! tenant B and the ids of tenant A, answers 404 — not 403, not data — and
//! changes nothing. The routes come from the OpenAPI document, so a new
//! route with an id in its path fails this test until it is covered here.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::common::assert_error;

/// Path parameters that are names, not ids of tenant data: roles and
/// settings keys act on the caller's own tenant (checked separately below);
/// module ids name install-wide modules — installing and enabling them is
/// guarded by `modules.manage` and refused to SaaS tenants, and a module's
/// secrets and settings (`{module_id}/secrets/{name}`, `{module_id}/settings`)
/// act on the caller's own tenant (checked separately below).
/// `{tenant}` is the signed hooks' tenant slug: a hook takes no session, and
/// its isolation (one tenant's secret never signs for another) is tested in
/// `modules::hooks`.
const NAMED_NOT_ID: &[&str] = &["{role}", "{key}", "{module_id}", "{tenant}"];

both!(every_tenant_scoped_route_hides_other_tenants_data, |app| {
    // Tenant A with one of everything.
    let a = &app.owner;
    let customer = app
        .customer(
            a,
            json!({"company": "Tenant A Secret AG", "email": "secret@a.example", "city": "Aarau"}),
        )
        .await;
    let (_, contact) = app
        .call(
            Method::POST,
            &format!("/api/v1/customers/{customer}/contacts"),
            Some(a),
            Some(json!({"name": "A Contact"})),
        )
        .await;
    let (_, note) = app
        .call(
            Method::POST,
            &format!("/api/v1/customers/{customer}/notes"),
            Some(a),
            Some(json!({"body": "A's note"})),
        )
        .await;
    let (_, token) = app
        .call(
            Method::POST,
            "/api/v1/auth/tokens",
            Some(a),
            Some(json!({"name": "a-token"})),
        )
        .await;
    let (_, sessions) = app
        .call(Method::GET, "/api/v1/auth/sessions", Some(a), None)
        .await;
    let tenant_a: String = sqlx::query_scalar("SELECT tenant_id FROM users WHERE id = $1")
        .bind(&a.user_id)
        .fetch_one(app.state.db().pool())
        .await
        .unwrap();
    let now = app.state.now_ms();
    let mut job = kontor::jobs::NewJob::new("test.failed", json!({}), now);
    job.tenant_id = Some(kontor::ids::TenantId::from_trusted(tenant_a));
    let job_id = kontor::jobs::enqueue(app.state.db(), &job, now)
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET status = 'dead' WHERE id = $1")
        .bind(&job_id)
        .execute(app.state.db().pool())
        .await
        .unwrap();
    let subscription = crate::subscriptions::subscribe(&app, a, &["hello"]).await;
    let ids = [
        ("subscriptions/{id}", subscription.clone()),
        ("customers/{id}", customer.clone()),
        ("{contact_id}", contact["id"].as_str().unwrap().to_string()),
        ("{note_id}", note["id"].as_str().unwrap().to_string()),
        ("users/{id}", a.user_id.clone()),
        ("tokens/{id}", token["id"].as_str().unwrap().to_string()),
        (
            "sessions/{id}",
            sessions[0]["id"].as_str().unwrap().to_string(),
        ),
        ("jobs/{id}", job_id.clone()),
    ];

    // A module with a secret and a setting in tenant A.
    crate::modules::capabilities::install_caps(
        &app,
        &crate::modules::capabilities::caps_manifest(),
    )
    .await;
    app.call(
        Method::PUT,
        "/api/v1/modules/caps/secrets/api_token",
        Some(a),
        Some(json!({"value": "tenant A's token"})),
    )
    .await;
    app.call(
        Method::PUT,
        "/api/v1/modules/caps/settings",
        Some(a),
        Some(json!({"greeting": "Servus"})),
    )
    .await;

    let b = app.new_tenant("Tenant B").await;
    crate::modules::entitle(&app, &b, "caps").await;
    let doc: Value = app
        .call(Method::GET, "/api/openapi.json", None, None)
        .await
        .1;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains('{') || NAMED_NOT_ID.iter().any(|n| path.contains(n)) {
            continue;
        }
        let mut concrete = path.clone();
        for (pattern, id) in &ids {
            if let Some(param) = pattern.rsplit('/').next() {
                if path.contains(pattern) {
                    concrete = concrete.replacen(param, id, 1);
                }
            }
        }
        assert!(
            !concrete.contains('{'),
            "no tenant-A id for a parameter of {path}: add it to this test"
        );
        for (method, _) in item.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = match (method.as_str(), path.as_str()) {
                ("patch", p) if p.starts_with("/api/v1/customers") => {
                    Some(json!({"city": "Hijacked"}))
                }
                ("patch", _) => Some(json!({"name": "Hijacked"})),
                ("put", _) | ("post", _)
                    if path.ends_with("/contacts") || path.ends_with("{contact_id}") =>
                {
                    Some(json!({"name": "Hijacked"}))
                }
                ("post", p) if p.ends_with("/notes") => Some(json!({"body": "Hijacked"})),
                _ => None,
            };
            let (status, res) = app.call(m.clone(), &concrete, Some(&b), body).await;
            assert_error(status, &res, 404, "not_found");
            assert!(
                !res.to_string().contains("Secret"),
                "{method} {path} leaked: {res}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} routes were checked");

    // Lists of B do not contain A's data.
    for path in [
        "/api/v1/customers",
        "/api/v1/customers?q=secret",
        "/api/v1/users",
        "/api/v1/audit-events",
        "/api/v1/auth/tokens",
        "/api/v1/auth/sessions",
        "/api/v1/jobs",
        "/api/v1/subscriptions",
    ] {
        let (status, res) = app.call(Method::GET, path, Some(&b), None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let text = res.to_string();
        assert!(
            !text.contains("Secret")
                && !text.contains(&customer)
                && !text.contains(&a.user_id)
                && !text.contains(&job_id)
                && !text.contains(&subscription),
            "{path}: {text}"
        );
    }
    let res = app
        .raw(Method::GET, "/api/v1/customers/export", Some(&b))
        .send()
        .await
        .unwrap();
    assert!(!res.text().await.unwrap().contains("Secret"));

    // Named routes act on B's own map and settings, never on A's.
    let (_, a_roles) = app.call(Method::GET, "/api/v1/roles", Some(a), None).await;
    app.call(
        Method::PUT,
        "/api/v1/roles/staff",
        Some(&b),
        Some(json!({"permissions": []})),
    )
    .await;
    app.call(
        Method::PUT,
        "/api/v1/settings/billing.currency",
        Some(&b),
        Some(json!({"value": "USD"})),
    )
    .await;
    assert_eq!(
        app.call(Method::GET, "/api/v1/roles", Some(a), None)
            .await
            .1,
        a_roles
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/settings", Some(a), None)
            .await
            .1["billing.currency"],
        "CHF"
    );
    // A module's secrets and settings: B sees and changes only its own.
    let (_, secrets) = app
        .call(Method::GET, "/api/v1/modules/caps/secrets", Some(&b), None)
        .await;
    assert_eq!(secrets[0]["set"], false, "{secrets}");
    let (status, res) = app
        .call(
            Method::DELETE,
            "/api/v1/modules/caps/secrets/api_token",
            Some(&b),
            None,
        )
        .await;
    assert_error(status, &res, 404, "not_found");
    let (_, settings) = app
        .call(Method::GET, "/api/v1/modules/caps/settings", Some(&b), None)
        .await;
    assert_eq!(settings[0]["value"], "Hi", "{settings}");
    app.call(
        Method::PUT,
        "/api/v1/modules/caps/settings",
        Some(&b),
        Some(json!({"greeting": "Hijacked"})),
    )
    .await;
    assert_eq!(
        app.call(Method::GET, "/api/v1/modules/caps/secrets", Some(a), None)
            .await
            .1[0]["set"],
        true
    );
    assert_eq!(
        app.call(Method::GET, "/api/v1/modules/caps/settings", Some(a), None)
            .await
            .1[0]["value"],
        "Servus"
    );

    // And A's data is untouched.
    let (_, subs) = app
        .call(Method::GET, "/api/v1/subscriptions", Some(a), None)
        .await;
    assert_eq!(
        subs[0]["status"], "trialing",
        "B could not cancel or activate A's: {subs}"
    );
    let (_, c) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{customer}"),
            Some(a),
            None,
        )
        .await;
    assert_eq!(c["city"], "Aarau");
    let (_, contacts) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{customer}/contacts"),
            Some(a),
            None,
        )
        .await;
    assert_eq!(contacts[0]["name"], "A Contact");
    let (_, notes) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{customer}/notes"),
            Some(a),
            None,
        )
        .await;
    assert_eq!(notes.as_array().unwrap().len(), 1);
    let (status, me) = app
        .call(Method::GET, "/api/v1/auth/me", Some(a), None)
        .await;
    assert_eq!(status, StatusCode::OK, "A's session survived");
    assert_ne!(me["user"]["name"], "Hijacked");
    let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
        .bind(&job_id)
        .fetch_one(app.state.db().pool())
        .await
        .unwrap();
    assert_eq!(status, "dead", "B could not replay A's job");
    let pat = crate::common::Session {
        token: token["token"].as_str().unwrap().to_string(),
        ..a.clone()
    };
    assert_eq!(
        app.call(Method::GET, "/api/v1/auth/me", Some(&pat), None)
            .await
            .0,
        StatusCode::OK
    );
});
