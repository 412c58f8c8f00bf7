//! One error body everywhere, with the status HTTP intends.

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::common::assert_error;

async fn raw_json(app: &crate::common::TestApp, body: &str) -> (StatusCode, Value) {
    let res = app
        .raw(Method::POST, "/api/v1/customers", Some(&app.owner))
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

both!(bad_input_gets_precise_codes_and_writes_nothing, |app| {
    let (s, b) = raw_json(&app, "{\"company\": ").await;
    assert_error(s, &b, 400, "invalid_json");
    let (s, b) = raw_json(&app, r#"{"company": "X", "colour": "red"}"#).await;
    assert_error(s, &b, 422, "invalid_body");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("colour"),
        "{b}"
    );
    let (s, b) = raw_json(&app, r#"{"company": 42}"#).await;
    assert_error(s, &b, 422, "invalid_body");
    let (s, b) = raw_json(&app, r#"{"company": "X", "tags": "not-a-list"}"#).await;
    assert_error(s, &b, 422, "invalid_body");
    let long = "x".repeat(201);
    let (s, b) = raw_json(&app, &json!({"company": long}).to_string()).await;
    assert_error(s, &b, 422, "validation_failed");
    assert_eq!(
        b["error"]["details"],
        json!({"field": "company", "reason": "too_long", "max": 200})
    );
    let (s, b) = raw_json(&app, r#"{"company": "X", "email": "no-at-sign"}"#).await;
    assert_error(s, &b, 422, "validation_failed");
    assert_eq!(b["error"]["details"]["field"], "email");
    let res = app
        .raw(Method::POST, "/api/v1/customers", Some(&app.owner))
        .header(header::CONTENT_TYPE, "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (_, page) = app
        .call(Method::GET, "/api/v1/customers", Some(&app.owner), None)
        .await;
    assert_eq!(
        page["items"],
        json!([]),
        "no refused request wrote anything"
    );
});

both!(
    auth_errors_are_401_with_www_authenticate_and_403_names_the_permission,
    |app| {
        let res = app
            .raw(Method::GET, "/api/v1/customers", None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        let bogus = crate::common::Session {
            token: "kses_not-a-real-token".into(),
            ..app.owner.clone()
        };
        let (s, b) = app
            .call(Method::GET, "/api/v1/customers", Some(&bogus), None)
            .await;
        assert_error(s, &b, 401, "unauthenticated");
        let staff = app.user(&app.owner, "staff", None).await;
        let (s, b) = app
            .call(Method::GET, "/api/v1/audit-events", Some(&staff), None)
            .await;
        assert_error(s, &b, 403, "forbidden");
        assert_eq!(b["error"]["details"]["permission"], "audit.read");
    }
);

both!(unknown_routes_and_query_errors_use_the_error_body, |app| {
    let (s, b) = app
        .call(Method::GET, "/api/v1/no-such-thing", Some(&app.owner), None)
        .await;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = app
        .call(
            Method::GET,
            "/api/v1/customers?limit=abc",
            Some(&app.owner),
            None,
        )
        .await;
    assert_error(s, &b, 422, "validation_failed");
    let (s, b) = app
        .call(
            Method::GET,
            "/api/v1/customers?bogus=1",
            Some(&app.owner),
            None,
        )
        .await;
    assert_error(s, &b, 422, "validation_failed");
});

both!(
    internal_errors_are_logged_with_an_id_and_never_leaked,
    |app| {
        // Break the database under a read: the customers table disappears.
        sqlx::query("DROP TABLE contacts")
            .execute(app.state.db().pool())
            .await
            .unwrap();
        let id = app.customer(&app.owner, json!({"company": "X"})).await;
        let (s, b) = app
            .call(
                Method::GET,
                &format!("/api/v1/customers/{id}/contacts"),
                Some(&app.owner),
                None,
            )
            .await;
        assert_error(s, &b, 500, "internal");
        let text = b.to_string();
        assert!(
            !text.contains("contacts") && !text.to_lowercase().contains("sql"),
            "{text}"
        );
        assert!(b["error"]["details"]["error_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32));
    }
);
