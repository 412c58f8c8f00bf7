//! The SaaS onboarding wizard over HTTP, as a browser walks it: register
//! (a form with a double-submit CSRF token) → signed in → choose a plan →
//! dashboard whose navigation shows exactly the plan's modules.

use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

use crate::both;
use crate::common::PASSWORD;
use crate::ui::{csrf_of, location, Browser};

/// The `href`s of the main navigation of a page.
fn nav_links(html: &str) -> Vec<String> {
    let start = html
        .find("class=\"mainnav\"")
        .unwrap_or_else(|| panic!("no navigation in {html}"));
    let nav = &html[start..start + html[start..].find("</nav>").unwrap()];
    nav.split("href=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

async fn register(
    browser: &Browser,
    token: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    browser
        .post(
            "/register",
            &[
                ("_csrf", token),
                ("organization", "Muster Hosting GmbH"),
                ("name", "Maria Muster"),
                ("email", email),
                ("password", password),
            ],
        )
        .await
}

both!(
    the_wizard_registers_subscribes_and_shows_exactly_the_plan_s_modules,
    |app| {
        crate::modules::install_hello(&app).await;
        crate::modules::install_faults(&app).await;
        let only_hello = crate::subscriptions::plan(&app, &["hello"]).await;
        let both_modules = crate::subscriptions::plan(&app, &["hello", "faults"]).await;
        let browser = Browser::new(&app);
        let (_, login) = browser.get("/login").await;
        assert!(
            login.contains("href=\"/register\""),
            "the sign-in page leads here: {login}"
        );

        // Register: the form's token is the cookie's; without it nothing happens.
        let (status, form) = browser.get("/register").await;
        assert_eq!(status, StatusCode::OK, "{form}");
        assert!(!csrf_of(&form).is_empty());
        let res = register(&browser, "forged", "maria@example.com", PASSWORD).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        // Each answer carries a new token (and cookie).
        let token = csrf_of(&res.text().await.unwrap());
        let res = register(&browser, &token, "maria@example.com", "short").await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = res.text().await.unwrap();
        assert!(
            page.contains("value=\"Muster Hosting GmbH\""),
            "entries are kept: {page}"
        );
        assert!(page.contains("aria-invalid=\"true\""), "{page}");
        let tenants_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(app.state.db().pool())
            .await
            .unwrap();
        assert_eq!(tenants_before, 1, "refused forms made no tenant");

        let token = csrf_of(&page);
        let res = register(&browser, &token, "maria@example.com", PASSWORD).await;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{}",
            res.text().await.unwrap()
        );
        assert_eq!(location(&res), "/onboarding/plan");

        // Signed in as the new tenant's owner: choose a plan.
        let (status, plans) = browser.get("/onboarding/plan").await;
        assert_eq!(status, StatusCode::OK, "{plans}");
        assert!(
            plans.contains(&only_hello.id) && plans.contains(&both_modules.id),
            "{plans}"
        );
        assert!(plans.contains("CHF 49.00"), "{plans}");
        let token = csrf_of(&plans);
        let res = browser
            .post("/onboarding/plan", &[("plan_id", only_hello.id.as_str())])
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token");
        let res = browser
            .post(
                "/onboarding/plan",
                &[("_csrf", &token), ("plan_id", only_hello.id.as_str())],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/");

        // The dashboard: the core's links and exactly the subscribed module.
        let (status, dashboard) = browser.get("/").await;
        assert_eq!(status, StatusCode::OK, "{dashboard}");
        assert!(dashboard.contains("Maria Muster"), "{dashboard}");
        let modules: Vec<String> = nav_links(&dashboard)
            .into_iter()
            .filter(|href| href.starts_with("/app/"))
            .collect();
        assert_eq!(modules, ["/app/hello/"], "{dashboard}");
        // Choosing again is over: the wizard goes to the dashboard.
        let (status, _) = browser.get("/onboarding/plan").await;
        assert_eq!(status, StatusCode::SEE_OTHER);

        // The subscription is trialing; the payment webhook activates it.
        let (_, me) = browser.get("/api/v1/subscriptions").await;
        let subs: Value = serde_json::from_str(&me).unwrap();
        assert_eq!(subs.as_array().unwrap().len(), 1, "{subs}");
        assert_eq!(subs[0]["status"], "trialing");
        assert_eq!(subs[0]["plan"]["id"], only_hello.id.as_str());
        let id = subs[0]["id"].as_str().unwrap();
        let body = json!({"id": "evt_wizard", "type": "invoice.paid",
            "data": {"object": {"subscription": id}}})
        .to_string();
        let signature = kontor::auth::signature::header_value(
            crate::common::WEBHOOK_SECRET.as_bytes(),
            app.state.now_ms() / 1000,
            body.as_bytes(),
        );
        let res = app
            .raw(Method::POST, "/api/v1/webhooks/payments", None)
            .header("Kontor-Signature", signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let (_, me) = browser.get("/api/v1/subscriptions").await;
        assert!(me.contains("\"status\":\"active\""), "{me}");
        let (_, dashboard) = browser.get("/").await;
        let modules: Vec<String> = nav_links(&dashboard)
            .into_iter()
            .filter(|href| href.starts_with("/app/"))
            .collect();
        assert_eq!(modules, ["/app/hello/"]);

        // The first tenant (entitled to both by hand) still sees both.
        let first = Browser::login(&app, &app.owner.email).await;
        let (_, dashboard) = first.get("/").await;
        let links = nav_links(&dashboard);
        assert!(links.contains(&"/app/hello/".to_string()), "{links:?}");
        assert!(links.contains(&"/app/faults/".to_string()), "{links:?}");
    }
);

both!(registration_is_limited_per_client_address, |app| {
    let browser = Browser::new(&app);
    let (_, form) = browser.get("/register").await;
    let mut token = csrf_of(&form);
    for _ in 0..10 {
        // Refused entries count too: the limit is on attempts.
        let res = register(&browser, &token, "not-an-email", PASSWORD).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        token = csrf_of(&res.text().await.unwrap());
    }
    let res = register(&browser, &token, "late@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    let page = res.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    let made: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email = 'late@example.com'")
            .fetch_one(app.state.db().pool())
            .await
            .unwrap();
    assert_eq!(made, 0);
});

both!(self_hosted registration_does_not_exist_on_a_self_hosted_install, |app| {
    let browser = Browser::new(&app);
    let (status, _) = browser.get("/register").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, login) = browser.get("/login").await;
    assert!(!login.contains("/register"), "{login}");
});
