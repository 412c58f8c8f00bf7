//! Login, sessions, API tokens, rate limits, roles and CSRF.

use reqwest::{header, Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::common::{assert_error, PASSWORD};

both!(login_returns_token_user_and_http_only_cookie, |app| {
    let res = app
        .raw(Method::POST, "/api/v1/auth/login", None)
        .json(&json!({"email": app.owner.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("kontor_session=kses_"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["token"].as_str().unwrap().starts_with("kses_"));
    assert_eq!(body["user"]["email"], app.owner.email);
    assert_eq!(body["user"]["role"], "owner");
    assert!(body["user"].get("password_hash").is_none());

    let (status, me) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&app.owner), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(me["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("users.manage")));
});

both!(
    wrong_password_and_unknown_email_get_the_same_answer,
    |app| {
        let (s1, b1) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": app.owner.email, "password": "wrong password!"})),
            )
            .await;
        let (s2, b2) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": "nobody@example.com", "password": "wrong password!"})),
            )
            .await;
        assert_error(s1, &b1, 401, "invalid_credentials");
        assert_eq!((s1, &b1), (s2, &b2));
    }
);

both!(login_brute_force_gets_429_with_retry_after, |app| {
    let mut last = None;
    for _ in 0..6 {
        let res = app
            .raw(Method::POST, "/api/v1/auth/login", None)
            .json(&json!({"email": app.owner.email, "password": "guess guess guess"}))
            .send()
            .await
            .unwrap();
        last = Some(res);
    }
    let res = last.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Even the right password waits until the window has passed.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": app.owner.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(time::Duration::minutes(16));
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": app.owner.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
});

both!(login_is_limited_per_ip_across_accounts, |app| {
    let mut status = StatusCode::OK;
    for i in 0..31 {
        let (s, _) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": format!("spray{i}@example.com"), "password": "whatever12"})),
            )
            .await;
        status = s;
    }
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
});

both!(revoked_session_stops_working_immediately, |app| {
    let second = app.login(&app.owner.email, PASSWORD).await;
    let (status, sessions) = app
        .call(Method::GET, "/api/v1/auth/sessions", Some(&app.owner), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let other = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .expect("the second session is listed")
        .clone();
    let (status, _) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&second), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{}", other["id"].as_str().unwrap()),
            Some(&app.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&second), None)
        .await;
    assert_error(status, &body, 401, "unauthenticated");
    // Logout ends the caller's own session too.
    let (status, _) = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&app.owner), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&app.owner), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
});

both!(sessions_lapse_after_idle_time, |app| {
    app.clock.advance(time::Duration::days(8));
    let (status, _) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&app.owner), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
});

both!(
    api_tokens_are_shown_once_hashed_identifiable_and_revocable,
    |app| {
        let (status, created) = app
            .call(
                Method::POST,
                "/api/v1/auth/tokens",
                Some(&app.owner),
                Some(json!({"name": "ci"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let token = created["token"].as_str().unwrap().to_string();
        let prefix = created["prefix"].as_str().unwrap();
        assert!(
            token.starts_with(&format!("{prefix}_")),
            "{token} / {prefix}"
        );
        let stored: String =
            sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE prefix = $1")
                .bind(prefix)
                .fetch_one(app.state.db().pool())
                .await
                .unwrap();
        assert!(!stored.contains(&token) && stored.len() == 64);

        let pat = crate::common::Session {
            token: token.clone(),
            ..app.owner.clone()
        };
        let (status, _) = app
            .call(Method::GET, "/api/v1/customers", Some(&pat), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (_, list) = app
            .call(Method::GET, "/api/v1/auth/tokens", Some(&app.owner), None)
            .await;
        let listed = &list.as_array().unwrap()[0];
        assert!(
            listed.get("token").is_none(),
            "the secret is never listed again"
        );
        assert!(listed["last_used_at"].is_string());

        let (status, _) = app
            .call(
                Method::DELETE,
                &format!("/api/v1/auth/tokens/{}", created["id"].as_str().unwrap()),
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app
            .call(Method::GET, "/api/v1/customers", Some(&pat), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
);

both!(disabling_a_user_ends_their_access, |app| {
    let staff = app.user(&app.owner, "staff", None).await;
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", staff.user_id),
            Some(&app.owner),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::GET, "/api/v1/customers", Some(&staff), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": staff.email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
});

both!(passwords_are_stored_as_argon2id, |app| {
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(&app.owner.user_id)
        .fetch_one(app.state.db().pool())
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
});

both!(staff_cannot_manage_users_until_an_admin_grants_it, |app| {
    let staff = app.user(&app.owner, "staff", None).await;
    let new = json!({"email": "x@example.com", "name": "X", "role": "staff", "password": PASSWORD});
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&staff),
            Some(new.clone()),
        )
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(body["error"]["details"]["permission"], "users.manage");

    let (status, map) = app
        .call(Method::GET, "/api/v1/roles", Some(&app.owner), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut perms: Vec<String> = serde_json::from_value(map["roles"]["staff"].clone()).unwrap();
    perms.push("users.manage".into());
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/roles/staff",
            Some(&app.owner),
            Some(json!({"permissions": perms})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(Method::POST, "/api/v1/users", Some(&staff), Some(new))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/roles/staff",
            Some(&app.owner),
            Some(json!({"permissions": ["no.such"]})),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/roles/owner",
            Some(&app.owner),
            Some(json!({"permissions": []})),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
});

both!(only_an_owner_makes_owners_and_the_last_owner_stays, |app| {
    let admin = app.user(&app.owner, "admin", None).await;
    let (status, _) = app
        .call(Method::POST, "/api/v1/users", Some(&admin), Some(json!({"email": "o2@example.com", "name": "O", "role": "owner", "password": PASSWORD})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", app.owner.user_id),
            Some(&app.owner),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_error(status, &body, 409, "conflict");
});

both!(cookie_authenticated_writes_need_the_csrf_header, |app| {
    let res = app
        .raw(Method::POST, "/api/v1/auth/login", None)
        .json(&json!({"email": app.owner.email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    let cookie = format!("kontor_session={}", body["token"].as_str().unwrap());
    let csrf = body["csrf_token"].as_str().unwrap();
    let customer = json!({"company": "Cookie AG"});
    let res = app
        .raw(Method::POST, "/api/v1/customers", None)
        .header(header::COOKIE, &cookie)
        .json(&customer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let b: serde_json::Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "csrf_failed");
    let res = app
        .raw(Method::POST, "/api/v1/customers", None)
        .header(header::COOKIE, &cookie)
        .header("x-csrf-token", csrf)
        .json(&customer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    // Reads with the cookie need no token.
    let res = app
        .raw(Method::GET, "/api/v1/customers", None)
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
});

both!(self_hosted_mode_has_exactly_one_tenant, |app| {
    let owner = kontor::auth::users::NewUser {
        email: "second@example.com".into(),
        name: "Second".into(),
        role: kontor::auth::Role::Owner,
        password: PASSWORD.into(),
        locale: None,
        customer_id: None,
    };
    let err = kontor::tenants::create(
        app.state.db(),
        app.state.permissions(),
        kontor::config::Mode::SelfHosted,
        "Second",
        owner,
        app.state.now_ms(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), kontor::error::Code::WrongMode);
});
