//! The server-rendered UI: login form, pages, htmx fragments, CSRF on
//! every form, languages, static assets.

use reqwest::{header, Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::common::{TestApp, PASSWORD};

/// A browser: keeps cookies, follows no redirects.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    pub(crate) fn new(app: &TestApp) -> Browser {
        Browser::with_language(app, None)
    }

    fn with_language(app: &TestApp, accept_language: Option<&str>) -> Browser {
        let mut headers = header::HeaderMap::new();
        if let Some(lang) = accept_language {
            headers.insert(header::ACCEPT_LANGUAGE, lang.parse().unwrap());
        }
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .build()
            .unwrap();
        Browser {
            http,
            base: app.base.clone(),
        }
    }

    /// Sign in through the login form; panics unless it works.
    pub(crate) async fn login(app: &TestApp, email: &str) -> Browser {
        let browser = Browser::new(app);
        let res = browser.submit_login(email, PASSWORD).await;
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{}",
            res.text().await.unwrap()
        );
        browser
    }

    async fn submit_login(&self, email: &str, password: &str) -> reqwest::Response {
        let (status, page) = self.get("/login").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let token = csrf_of(&page);
        self.post(
            "/login",
            &[("_csrf", &token), ("email", email), ("password", password)],
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    async fn get_htmx(&self, path: &str) -> (StatusCode, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header("HX-Request", "true")
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Submit a multipart form (`fields`, then `file` as the file field
    /// `name`), as a browser uploads a file.
    pub(crate) async fn post_file(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        name: &str,
        file: Vec<u8>,
    ) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let part = reqwest::multipart::Part::bytes(file).file_name("license.lic");
        form = form.part(name.to_string(), part);
        self.http
            .post(format!("{}{path}", self.base))
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    /// The CSRF token the forms of `path` carry.
    pub(crate) async fn csrf(&self, path: &str) -> String {
        let (status, page) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        csrf_of(&page)
    }
}

/// The value of the first `_csrf` field of a page.
pub(crate) fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no _csrf field in {html}"))
        + marker.len();
    let token = &html[start..start + html[start..].find('"').unwrap()];
    assert!(!token.is_empty(), "empty _csrf field");
    token.to_string()
}

/// The target of the "next page" link, unescaped.
fn next_link(html: &str) -> String {
    let anchor = html
        .find("rel=\"next\"")
        .unwrap_or_else(|| panic!("no next link in {html}"));
    let start = html[..anchor].rfind("href=\"").unwrap() + "href=\"".len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&")
}

/// Whether a page has an inline event handler attribute (`onclick="..."`).
fn has_inline_handler(html: &str) -> bool {
    html.match_indices(" on").any(|(i, _)| {
        let rest = &html[i + 3..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphabetic())
            .collect();
        !name.is_empty() && rest[name.len()..].starts_with("=")
    })
}

pub(crate) fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn note_count(app: &TestApp, customer: &str) -> usize {
    let (status, notes) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{customer}/notes"),
            Some(&app.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{notes}");
    notes.as_array().unwrap().len()
}

both!(
    login_page_is_german_by_default_and_english_on_request,
    |app| {
        let (status, de) = Browser::new(&app).get("/login").await;
        assert_eq!(status, StatusCode::OK);
        assert!(de.contains("<html lang=\"de\">"), "{de}");
        assert!(de.contains("Anmelden") && de.contains("Passwort"), "{de}");

        let (_, en) = Browser::with_language(&app, Some("en-GB,en;q=0.9,de;q=0.5"))
            .get("/login")
            .await;
        assert!(en.contains("<html lang=\"en\">"), "{en}");
        assert!(en.contains("Sign in") && en.contains("Password"), "{en}");
        assert!(!en.contains("Passwort"));

        // Neither language offered: German.
        let (_, fr) = Browser::with_language(&app, Some("fr-CH, it;q=0.8"))
            .get("/login")
            .await;
        assert!(fr.contains("<html lang=\"de\">"));
    }
);

both!(
    login_page_sets_a_strict_http_only_form_token_cookie,
    |app| {
        let res = app
            .http
            .get(format!("{}/login", app.base))
            .send()
            .await
            .unwrap();
        let cookie = res
            .headers()
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(cookie.starts_with("kontor_login_csrf="), "{cookie}");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let token = cookie
            .trim_start_matches("kontor_login_csrf=")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let page = res.text().await.unwrap();
        assert_eq!(csrf_of(&page), token, "the form carries the cookie's value");
    }
);

both!(wrong_password_rerenders_login_form_with_error, |app| {
    let browser = Browser::new(&app);
    let res = browser
        .submit_login(&app.owner.email, "not the password")
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let cookies: Vec<String> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(
        !cookies.iter().any(|c| c.starts_with("kontor_session=")),
        "{cookies:?}"
    );
    let page = res.text().await.unwrap();
    assert!(
        page.contains("E-Mail-Adresse oder Passwort ist falsch."),
        "{page}"
    );
    assert!(
        page.contains(&app.owner.email),
        "the e-mail stays filled in"
    );
    assert!(
        !page.contains("not the password"),
        "the password is never echoed"
    );
    // Still signed out.
    let (status, _) = browser.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
});

both!(too_many_form_logins_show_the_rate_limit, |app| {
    let browser = Browser::new(&app);
    let mut last = None;
    for _ in 0..6 {
        last = Some(
            browser
                .submit_login(&app.owner.email, "guess guess guess")
                .await,
        );
    }
    let res = last.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    let page = res.text().await.unwrap();
    assert!(page.contains("Zu viele Anmeldeversuche"), "{page}");
});

both!(
    form_login_sets_http_only_cookie_and_opens_dashboard,
    |app| {
        let browser = Browser::new(&app);
        let res = browser.submit_login(&app.owner.email, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/");
        let cookies: Vec<String> = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let session = cookies
            .iter()
            .find(|c| c.starts_with("kontor_session=kses_"))
            .unwrap_or_else(|| panic!("{cookies:?}"));
        assert!(session.contains("HttpOnly"), "{session}");
        assert!(
            cookies.iter().any(|c| c.starts_with("kontor_login_csrf=;")),
            "the form token is cleared: {cookies:?}"
        );

        let (status, page) = browser.get("/").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Guten Tag, Owner of Tenant A"), "{page}");
        assert!(page.contains("aktive Kunden"), "{page}");
        assert!(page.contains("href=\"/customers\""), "navigation: {page}");
        // Signed in, the login page sends people on.
        let (status, _) = browser.get("/login").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }
);

both!(login_returns_to_the_page_asked_for, |app| {
    let browser = Browser::new(&app);
    let res = browser
        .http
        .get(format!("{}/customers?q=x", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let login = location(&res);
    assert_eq!(login, "/login?next=%2Fcustomers%3Fq%3Dx");
    let (_, page) = browser.get(&login).await;
    let token = csrf_of(&page);
    let res = browser
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", &app.owner.email),
                ("password", PASSWORD),
                ("next", "/customers?q=x"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/customers?q=x");

    // Never off-site.
    let browser = Browser::new(&app);
    let (_, page) = browser.get("/login").await;
    let token = csrf_of(&page);
    let res = browser
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", &app.owner.email),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(location(&res), "/");
});

both!(
    dashboard_counts_customers_and_lists_recent_activity,
    |app| {
        app.customer(&app.owner, json!({"company": "Alpha AG"}))
            .await;
        app.customer(
            &app.owner,
            json!({"company": "Beta GmbH", "status": "archived"}),
        )
        .await;
        let browser = Browser::login(&app, &app.owner.email).await;
        let (_, page) = browser.get("/").await;
        assert_eq!(
            page.matches("<span class=\"stat-value\">1</span>").count(),
            2,
            "one active, one archived: {page}"
        );
        assert!(
            page.contains("aktive Kunden") && page.contains("archivierte Kunden"),
            "{page}"
        );
        assert!(
            page.contains("Alpha AG") && page.contains("Kunde angelegt"),
            "{page}"
        );
    }
);

both!(
    customers_page_lists_api_customers_and_search_filters,
    |app| {
        let acme = app
            .customer(
                &app.owner,
                json!({"company": "ACME Widgets", "city": "Bern"}),
            )
            .await;
        app.customer(&app.owner, json!({"company": "Globex", "city": "Basel"}))
            .await;
        let browser = Browser::login(&app, &app.owner.email).await;

        let (status, page) = browser.get("/customers").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("ACME Widgets") && page.contains("Globex"),
            "{page}"
        );
        assert!(
            page.contains(&format!("href=\"/customers/{acme}\"")),
            "{page}"
        );
        assert!(
            page.contains("hx-get=\"/customers\""),
            "search updates the table through htmx"
        );

        // Without JavaScript: a plain GET form, the whole page back.
        let (status, page) = browser.get("/customers?q=acme&status=").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("<html") && page.contains("ACME Widgets"),
            "{page}"
        );
        assert!(!page.contains("Globex"), "{page}");

        // With htmx: only the table.
        let (status, fragment) = browser.get_htmx("/customers?q=glob").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            fragment
                .trim_start()
                .starts_with("<div id=\"customer-table\""),
            "{fragment}"
        );
        assert!(!fragment.contains("<html"));
        assert!(
            fragment.contains("Globex") && !fragment.contains("ACME"),
            "{fragment}"
        );

        let (_, none) = browser.get_htmx("/customers?q=nobody-by-that-name").await;
        assert!(none.contains("Keine Kunden gefunden."), "{none}");
    }
);

both!(customer_list_pages_with_a_next_link, |app| {
    for i in 0..27 {
        app.customer(&app.owner, json!({"company": format!("Firma {i:02}")}))
            .await;
    }
    let browser = Browser::login(&app, &app.owner.email).await;
    let (_, first) = browser.get("/customers").await;
    assert!(
        first.contains("Firma 00") && first.contains("Firma 24") && !first.contains("Firma 25"),
        "{first}"
    );
    let marker = "rel=\"next\"";
    let href = next_link(&first);
    let (status, second) = browser.get(&href).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert!(
        second.contains("Firma 25") && second.contains("Firma 26") && !second.contains("Firma 24"),
        "{second}"
    );
    assert!(!second.contains(marker), "last page");
});

both!(
    forms_without_or_with_a_wrong_csrf_token_are_refused,
    |app| {
        let customer = app.customer(&app.owner, json!({"company": "ACME"})).await;
        let browser = Browser::login(&app, &app.owner.email).await;
        let notes = format!("/customers/{customer}/notes");

        let res = browser.post(&notes, &[("body", "sneaky")]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(res.text().await.unwrap().contains("Formular abgelaufen"));
        let res = browser
            .post(&notes, &[("_csrf", "wrong-token"), ("body", "sneaky")])
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(note_count(&app, &customer).await, 0);

        let res = browser
            .post(
                "/customers",
                &[("_csrf", "wrong-token"), ("company", "Sneaky AG")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let (_, list) = app
            .call(
                Method::GET,
                "/api/v1/customers?q=sneaky",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");

        let res = browser
            .post(
                "/users",
                &[
                    ("email", "sneaky@example.com"),
                    ("name", "Sneaky"),
                    ("role", "admin"),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let (_, users) = app
            .call(Method::GET, "/api/v1/users", Some(&app.owner), None)
            .await;
        assert!(!users.to_string().contains("sneaky@example.com"));

        // Logout without the token does not end the session.
        let res = browser.post("/logout", &[]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let (status, _) = browser.get("/").await;
        assert_eq!(status, StatusCode::OK);

        // The right token works.
        let token = browser.csrf(&format!("/customers/{customer}")).await;
        let res = browser
            .post(&notes, &[("_csrf", &token), ("body", "legit")])
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(note_count(&app, &customer).await, 1);
    }
);

both!(login_form_without_its_cookie_token_is_refused, |app| {
    // A cross-site form post: the page's token but not the cookie, or no token.
    let (_, page) = Browser::new(&app).get("/login").await;
    let token = csrf_of(&page);
    let stranger = Browser::new(&app);
    let res = stranger
        .post(
            "/login",
            &[
                ("_csrf", &token),
                ("email", &app.owner.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("kontor_session=")));

    let browser = Browser::new(&app);
    browser.get("/login").await;
    let res = browser
        .post(
            "/login",
            &[("email", &app.owner.email), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = browser
        .post(
            "/login",
            &[
                ("_csrf", "x"),
                ("email", &app.owner.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (status, _) = browser.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "still signed out");
});

both!(anonymous_ui_pages_redirect_to_login, |app| {
    for path in ["/", "/customers", "/customers/new", "/users"] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(
            location(&res).starts_with("/login"),
            "{path}: {}",
            location(&res)
        );
    }
    let res = app
        .http
        .post(format!("{}/customers", app.base))
        .form(&[("company", "X")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    // htmx gets told to navigate instead of swapping the login page in.
    let res = app
        .http
        .get(format!("{}/customers?q=a", app.base))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap();
    assert!(res
        .headers()
        .get("hx-redirect")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("/login"));
});

both!(
    assets_are_served_with_content_type_and_cache_headers,
    |app| {
        let res = app
            .http
            .get(format!("{}/assets/kontor.css", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
        assert!(res.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age"));
        let etag = res.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(res.text().await.unwrap().contains(".topbar"));

        let res = app
            .http
            .get(format!("{}/assets/kontor.css", app.base))
            .header(header::IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

        // The versioned URL the pages link is cached for good.
        let (_, login) = Browser::new(&app).get("/login").await;
        let start = login.find("/assets/htmx.min.js?v=").unwrap();
        let url = &login[start..start + login[start..].find('"').unwrap()];
        let res = app
            .http
            .get(format!("{}{url}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(res.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        assert!(res.text().await.unwrap().contains("htmx"));

        let res = app
            .http
            .get(format!("{}/assets/favicon.svg", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()[header::CONTENT_TYPE], "image/svg+xml");
        for missing in [
            "/assets/nope.css",
            "/assets/VENDORED.md",
            "/assets/../Cargo.toml",
        ] {
            let res = app
                .http
                .get(format!("{}{missing}", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{missing}");
        }
    }
);

both!(pages_carry_the_csp_and_no_inline_script_or_style, |app| {
    let customer = app.customer(&app.owner, json!({"company": "ACME"})).await;
    let browser = Browser::login(&app, &app.owner.email).await;
    let anonymous = Browser::new(&app);
    for (who, path) in [
        (&anonymous, "/login".to_string()),
        (&browser, "/".into()),
        (&browser, "/customers".into()),
        (&browser, format!("/customers/{customer}")),
        (&browser, "/customers/new".into()),
        (&browser, "/users".into()),
    ] {
        let res = who
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store", "{path}");
        let page = res.text().await.unwrap();
        assert!(
            !page.contains("<style") && !page.contains("style=\""),
            "{path}: inline style"
        );
        assert!(
            !page.contains("<script>") && !has_inline_handler(&page),
            "{path}: inline script"
        );
        assert!(page.contains("includeIndicatorStyles\":false"), "{path}");
    }
});

both!(note_form_adds_a_note_shown_on_the_customer_page, |app| {
    let customer = app
        .customer(
            &app.owner,
            json!({"company": "ACME", "email": "info@acme.example", "tags": ["vip"]}),
        )
        .await;
    let browser = Browser::login(&app, &app.owner.email).await;
    let path = format!("/customers/{customer}");
    let (status, page) = browser.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("info@acme.example") && page.contains("vip"),
        "{page}"
    );
    assert!(page.contains("Noch keine Notizen."), "{page}");

    let token = csrf_of(&page);
    let res = browser
        .post(
            &format!("{path}/notes"),
            &[("_csrf", &token), ("body", "Called about renewal")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), format!("{path}#notes"));
    let (_, page) = browser.get(&path).await;
    assert!(page.contains("Called about renewal"), "{page}");
    assert!(
        page.contains("Notiz: Called about renewal"),
        "timeline: {page}"
    );
    assert!(page.contains("Owner of Tenant A"), "author: {page}");

    // An empty note comes back with the error, nothing saved.
    let res = browser
        .post(
            &format!("{path}/notes"),
            &[("_csrf", &token), ("body", "   ")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Die Notiz darf nicht leer sein"));
    assert_eq!(note_count(&app, &customer).await, 1);
});

both!(
    new_customer_form_shows_validation_errors_then_creates,
    |app| {
        let browser = Browser::login(&app, &app.owner.email).await;
        let token = browser.csrf("/customers/new").await;

        let res = browser
            .post(
                "/customers",
                &[
                    ("_csrf", &token),
                    ("company", "Initech"),
                    ("email", "not-an-email"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = res.text().await.unwrap();
        assert!(
            page.contains("Bitte geben Sie eine gültige E-Mail-Adresse an."),
            "{page}"
        );
        assert!(
            page.contains("value=\"Initech\""),
            "the input stays: {page}"
        );
        assert!(page.contains("aria-invalid=\"true\""), "{page}");

        let res = browser
            .post(
                "/customers",
                &[("_csrf", &token), ("email", "a@initech.example")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("Firma oder eine Kontaktperson"));

        let (_, list) = app
            .call(
                Method::GET,
                "/api/v1/customers?q=initech",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0);

        let res = browser
            .post(
                "/customers",
                &[
                    ("_csrf", &token),
                    ("company", "Initech"),
                    ("email", "info@initech.example"),
                    ("country", "ch"),
                    ("tags", "software, b2b"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let target = location(&res);
        let (status, page) = browser.get(&target).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Initech") && page.contains("CH") && page.contains("b2b"),
            "{page}"
        );
        let (_, list) = app
            .call(
                Method::GET,
                "/api/v1/customers?q=initech",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(list["items"][0]["tags"], json!(["software", "b2b"]));
    }
);

both!(unknown_or_foreign_customer_shows_the_404_page, |app| {
    let other = app.new_tenant("Tenant B").await;
    let foreign = app
        .customer(&other, json!({"company": "Foreign Ltd"}))
        .await;
    let browser = Browser::login(&app, &app.owner.email).await;
    for path in [
        "/customers/does-not-exist".to_string(),
        format!("/customers/{foreign}"),
    ] {
        let (status, page) = browser.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            page.contains("Nicht gefunden") && !page.contains("Foreign Ltd"),
            "{page}"
        );
    }
    let token = browser.csrf("/").await;
    let res = browser
        .post(
            &format!("/customers/{foreign}/notes"),
            &[("_csrf", &token), ("body", "x")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let (_, notes) = app
        .call(
            Method::GET,
            &format!("/api/v1/customers/{foreign}/notes"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(notes, json!([]));
});

both!(user_text_is_escaped_in_pages, |app| {
    let customer = app
        .customer(
            &app.owner,
            json!({"company": "<script>alert(1)</script>", "city": "\"Bern\""}),
        )
        .await;
    let browser = Browser::login(&app, &app.owner.email).await;
    for path in [
        "/customers".to_string(),
        format!("/customers/{customer}"),
        "/".into(),
    ] {
        let (_, page) = browser.get(&path).await;
        assert!(!page.contains("<script>alert(1)"), "{path}: {page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;"),
            "{path}: {page}"
        );
    }
    let (_, page) = browser.get("/customers?q=%22%3E%3Cb%3E").await;
    assert!(
        !page.contains("\"><b>"),
        "the search box escapes its value: {page}"
    );
});

both!(users_page_needs_its_permissions_and_creates_users, |app| {
    let staff = app.user(&app.owner, "staff", None).await;
    let reseller = app.user(&app.owner, "reseller", None).await;

    let browser = Browser::login(&app, &staff.email).await;
    let (status, page) = browser.get("/users").await;
    assert_eq!(status, StatusCode::OK, "staff may read users");
    assert!(
        page.contains(&app.owner.email) && !page.contains("action=\"/users\""),
        "{page}"
    );
    let token = csrf_of(&page);
    let res = browser
        .post(
            "/users",
            &[
                ("_csrf", &token),
                ("email", "new@example.com"),
                ("name", "New"),
                ("role", "staff"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.text().await.unwrap().contains("users.manage"));

    let browser = Browser::login(&app, &reseller.email).await;
    let (status, page) = browser.get("/users").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Keine Berechtigung"), "{page}");
    let (_, home) = browser.get("/").await;
    assert!(
        home.contains("href=\"/customers\"") && !home.contains("href=\"/users\""),
        "the navigation hides what the user may not open: {home}"
    );

    let browser = Browser::login(&app, &app.owner.email).await;
    let token = browser.csrf("/users").await;
    let res = browser
        .post(
            "/users",
            &[
                ("_csrf", &token),
                ("email", "new@example.com"),
                ("name", "Neu"),
                ("role", "staff"),
                ("password", "short"),
                ("locale", ""),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("zwischen 10 und 256 Zeichen"));
    let res = browser
        .post(
            "/users",
            &[
                ("_csrf", &token),
                ("email", "new@example.com"),
                ("name", "Neu"),
                ("role", "staff"),
                ("password", PASSWORD),
                ("locale", "en"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, page) = browser.get(&location(&res)).await;
    assert!(
        page.contains("Der Benutzer wurde angelegt.") && page.contains("new@example.com"),
        "{page}"
    );
    let res = browser
        .post(
            "/users",
            &[
                ("_csrf", &token),
                ("email", "NEW@example.com"),
                ("name", "Again"),
                ("role", "staff"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("bereits verwendet"));

    // The new user signs in and gets their language, whatever the browser says.
    let browser = Browser::with_language(&app, Some("de-CH"));
    let res = browser.submit_login("new@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, page) = browser.get("/").await;
    assert!(
        page.contains("<html lang=\"en\">") && page.contains("Hello, Neu"),
        "{page}"
    );
});

both!(logout_ends_the_session, |app| {
    let browser = Browser::login(&app, &app.owner.email).await;
    let token = browser.csrf("/").await;
    let res = browser.post("/logout", &[("_csrf", &token)]).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login");
    let cleared = res.headers().get_all(header::SET_COOKIE).iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("kontor_session=;") && c.contains("Max-Age=0")
    });
    assert!(cleared);
    let (status, _) = browser.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, sessions) = app
        .call(Method::GET, "/api/v1/auth/sessions", Some(&app.owner), None)
        .await;
    assert_eq!(
        sessions.as_array().unwrap().len(),
        1,
        "only the test's API session is left: {sessions}"
    );
});

both!(
    module_hooks_extend_navigation_dashboard_and_customer_page_of_entitled_tenants,
    |app| {
        crate::modules::install_hello(&app).await;
        crate::modules::install_faults(&app).await;
        let id = app
            .customer(&app.owner, json!({"company": "Tab Test AG"}))
            .await;
        crate::modules::drain(&app).await;
        let browser = Browser::login(&app, &app.owner.email).await;

        let (status, dash) = browser.get("/").await;
        assert_eq!(status, StatusCode::OK, "{dash}");
        // Navigation: hello's page (its manifest) and the link faults adds
        // through `nav.items`; the off-site link it adds too is dropped.
        assert!(
            dash.contains(r#"<a href="/app/hello/">Hello</a>"#),
            "{dash}"
        );
        assert!(
            dash.contains(r#"<a href="/app/faults/">Faults</a>"#),
            "{dash}"
        );
        assert!(!dash.contains("evil.example"), "{dash}");
        // Dashboard: hello's card, although faults' widget filter panics.
        assert!(dash.contains("1 new customers greeted"), "{dash}");

        let (status, page) = browser.get(&format!("/customers/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let tab = format!(r#"<a href="/app/hello/?customer={id}">Hello</a>"#);
        assert!(page.contains(&tab), "{page}");
        let (status, about) = browser.get(&format!("/app/hello/?customer={id}")).await;
        assert_eq!(status, StatusCode::OK, "{about}");
        assert!(about.contains("greeted this customer"), "{about}");

        // A tenant without the modules sees none of it.
        let b = app.new_tenant("Tenant B").await;
        let id_b = app.customer(&b, json!({"company": "B AG"})).await;
        let browser_b = Browser::login(&app, &b.email).await;
        let (status, dash_b) = browser_b.get("/").await;
        assert_eq!(status, StatusCode::OK, "{dash_b}");
        assert!(!dash_b.contains("/app/hello/"), "{dash_b}");
        assert!(!dash_b.contains("/app/faults/"), "{dash_b}");
        assert!(!dash_b.contains("greeted"), "{dash_b}");
        let (_, page_b) = browser_b.get(&format!("/customers/{id_b}")).await;
        assert!(!page_b.contains("/app/hello/"), "{page_b}");
    }
);

both!(
    module_settings_form_is_built_from_the_manifest_and_checked_on_save,
    |app| {
        use crate::modules::capabilities::{caps_manifest, install_caps};
        install_caps(&app, &caps_manifest()).await;
        // The values the module reads now, in manifest order.
        let values = || async {
            let (_, list) = app
                .call(
                    Method::GET,
                    "/api/v1/modules/caps/settings",
                    Some(&app.owner),
                    None,
                )
                .await;
            let list = list.as_array().unwrap().clone();
            list.iter().map(|s| s["value"].clone()).collect::<Vec<_>>()
        };
        let owner = Browser::login(&app, &app.owner.email).await;
        let (status, page) = owner.get("/modules/caps/settings").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        // One input per declared setting, typed as declared.
        assert!(page.contains(r#"name="greeting" type="text""#), "{page}");
        assert!(page.contains(r#"placeholder="Hi""#), "{page}");
        assert!(page.contains(r#"name="retries" type="number""#), "{page}");
        assert!(page.contains(r#"name="verbose" type="checkbox""#), "{page}");
        assert!(page.contains("How often to retry"), "{page}");
        assert!(!has_inline_handler(&page));
        let token = csrf_of(&page);

        let res = owner
            .post("/modules/caps/settings", &[("retries", "9")])
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "no CSRF token");
        let res = owner
            .post(
                "/modules/caps/settings",
                &[("_csrf", &token), ("greeting", "Moin"), ("retries", "many")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let page = res.text().await.unwrap();
        assert!(
            page.contains(r#"aria-invalid="true" aria-describedby="e-retries""#),
            "the refused field is marked: {page}"
        );
        assert!(
            page.contains(r#"value="many""#),
            "what was entered stays: {page}"
        );
        assert!(!page.contains(r#"aria-describedby="e-greeting""#), "{page}");

        let res = owner
            .post(
                "/modules/caps/settings",
                &[
                    ("_csrf", &token),
                    ("greeting", "Moin"),
                    ("retries", "7"),
                    ("verbose", "true"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/modules/caps/settings?saved=1");
        assert_eq!(values().await, [json!("Moin"), json!(7), json!(true)]);
        // An unticked box is false; an emptied field goes back to the default.
        let res = owner
            .post(
                "/modules/caps/settings",
                &[("_csrf", &token), ("greeting", ""), ("retries", "7")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let (_, page) = owner.get("/modules/caps/settings?saved=1").await;
        assert!(page.contains(r#"role="status""#), "{page}");
        assert!(!page.contains(" checked"), "{page}");
        assert_eq!(values().await, [json!("Hi"), json!(7), json!(false)]);

        // Staff see the settings but cannot change them.
        let staff = app.user(&app.owner, "staff", None).await;
        let staff = Browser::login(&app, &staff.email).await;
        let (status, page) = staff.get("/modules/caps/settings").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains(" disabled") && !page.contains("form-actions"),
            "inputs disabled, no save button: {page}"
        );
        let token = csrf_of(&page);
        let res = staff
            .post(
                "/modules/caps/settings",
                &[("_csrf", &token), ("retries", "1")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
);

both!(
    the_modules_page_shows_each_module_s_access_and_links_its_settings,
    |app| {
        crate::modules::install_hello(&app).await;
        let admin = Browser::login(&app, &app.owner.email).await;
        let (status, page) = admin.get("/modules").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains(r#"<a href="/modules" class="active""#),
            "in the navigation: {page}"
        );
        let row = page
            .split(r#"<tr id="module-hello">"#)
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row for hello: {page}"));
        assert!(row.contains("Hello") && row.contains("0.1.0"), "{row}");
        assert!(row.contains(r#"href="/modules/hello/settings""#), "{row}");
        assert!(row.contains("Nutzbar"), "{row}");

        // Another tenant without the module sees why it cannot use it.
        let b = app.new_tenant("Tenant B").await;
        let other = Browser::login(&app, &b.email).await;
        let (status, page_b) = other.get("/modules").await;
        assert_eq!(status, StatusCode::OK, "{page_b}");
        let row_b = page_b
            .split(r#"<tr id="module-hello">"#)
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap();
        assert!(row_b.contains("Nicht berechtigt"), "{row_b}");

        // Staff may not manage modules: no link, no page.
        let staff = app.user(&app.owner, "staff", None).await;
        let staff = Browser::login(&app, &staff.email).await;
        let (status, dash) = staff.get("/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(!dash.contains(r#"<a href="/modules">"#), "{dash}");
        let (status, _) = staff.get("/modules").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
);

both!(
    htmx_requests_of_a_signed_in_page_carry_the_csrf_token_to_module_routes,
    |app| {
        crate::modules::install_hello(&app).await;
        let browser = Browser::login(&app, &app.owner.email).await;
        let (status, page) = browser.get("/app/hello/").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        // The session's token as JSON in an attribute, escaped for it.
        let token = csrf_of(&page);
        let body =
            format!(r#"<body hx-headers="{{&quot;X-CSRF-Token&quot;:&quot;{token}&quot;}}">"#);
        assert!(page.contains(&body), "{page}");
        let (_, login) = Browser::new(&app).get("/login").await;
        assert!(
            !login.contains("hx-headers"),
            "no session, no token: {login}"
        );

        // What htmx sends for `hx-post` on a module page: the session
        // cookie and the header. Without the header it is refused.
        let post = |csrf: Option<&str>| {
            let mut req = browser
                .http
                .post(format!("{}/api/v1/hello/greeting", browser.base))
                .header("HX-Request", "true")
                .json(&json!({ "name": "Ada" }));
            if let Some(t) = csrf {
                req = req.header("X-CSRF-Token", t);
            }
            req.send()
        };
        let res = post(Some(&token)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        // The module's content type passes through (a fragment's
        // `text/html` as well as this JSON).
        assert_eq!(
            res.headers()[header::CONTENT_TYPE].to_str().unwrap(),
            "application/json"
        );
        assert_eq!(
            res.json::<serde_json::Value>().await.unwrap()["greeting"],
            "Hello, Ada"
        );
        let res = post(None).await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "csrf_failed", "{body}");
    }
);

both!(
    a_portal_user_signs_in_and_sees_only_the_pages_they_may_use,
    |app| {
        // hello's page permission, held by customers too (as a portal's is).
        let (text, wasm) = kontor_runtime::bundled::HELLO;
        let text = text.replace(
            r#"default_roles = ["admin", "staff"]"#,
            r#"default_roles = ["admin", "staff", "customer"]"#,
        );
        assert!(text.contains(r#""customer"]"#), "the manifest changed");
        crate::modules::install_built(&app, &text, wasm).await;
        let id = app
            .customer(&app.owner, json!({"company": "Portal AG"}))
            .await;
        crate::modules::drain(&app).await;
        let portal = app.user(&app.owner, "customer", Some(&id)).await;
        let browser = Browser::login(&app, &portal.email).await;

        let (status, dash) = browser.get("/").await;
        assert_eq!(status, StatusCode::OK, "{dash}");
        assert!(
            dash.contains(r#"<a href="/app/hello/">Hello</a>"#),
            "the module page they may open: {dash}"
        );
        for staff_link in [
            r#"href="/customers"#,
            r#"href="/users""#,
            r#"href="/modules""#,
        ] {
            assert!(!dash.contains(staff_link), "{staff_link}: {dash}");
        }
        assert!(
            !dash.contains("greeted"),
            "no module cards made for the tenant: {dash}"
        );
        let (status, page) = browser.get("/app/hello/").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains("This page comes from the hello module"),
            "{page}"
        );
        assert!(page.contains(r#"hx-headers="#), "{page}");
        for staff_page in [
            "/customers".to_string(),
            format!("/customers/{id}"),
            "/customers/new".to_string(),
            "/users".to_string(),
            "/modules".to_string(),
        ] {
            let (status, body) = browser.get(&staff_page).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{staff_page}: {body}");
        }

        // Staff see the staff pages; a role without the page's permission
        // (resellers lack hello.view) sees no link to it and cannot open it.
        let staff = app.user(&app.owner, "staff", None).await;
        let (_, dash) = Browser::login(&app, &staff.email).await.get("/").await;
        assert!(dash.contains(r#"<a href="/customers">"#), "{dash}");
        assert!(dash.contains(r#"<a href="/app/hello/">"#), "{dash}");
        let reseller = app.user(&app.owner, "reseller", None).await;
        let reseller = Browser::login(&app, &reseller.email).await;
        let (_, dash) = reseller.get("/").await;
        assert!(dash.contains(r#"<a href="/customers">"#), "{dash}");
        // (hello's dashboard card still links it: cards are the tenant's.)
        assert!(!dash.contains(r#"<li><a href="/app/hello/">"#), "{dash}");
        let (status, _) = reseller.get("/app/hello/").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
);
