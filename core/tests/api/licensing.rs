//! Licensing in the running server (self-hosted), with the injected clock:
//! trial, license, grace, expiry and a clock set back decide what the real
//! `hello` module may do (GET works, writes are refused, its job does not
//! run, its events are not delivered); limits on users and customers; the
//! license API and page; admins are never locked out. And the one
//! entitlement check's `read_only`/`revoked` rows on a SaaS host.

use kontor::license::payload::FORMAT_VERSION;
use kontor::license::{Edition, LicensePayload, Licensee, Limits};
use kontor::modules::entitlements::{self, Status};
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};
use time::Duration;

use crate::both;
use crate::common::{assert_error, Session, TestApp, PASSWORD};
use crate::modules::{drain, install_faults, install_hello};
use crate::ui::Browser;

const TEST_KEY: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/keys/license-test.key"
));

/// A license signed with the test key, issued now, for every module, for a
/// year with 14 grace days and no limits — changed by `edit`.
fn license(app: &TestApp, edit: impl FnOnce(&mut LicensePayload)) -> String {
    let now = app.state.now_ms();
    let mut p = LicensePayload {
        format_version: FORMAT_VERSION,
        license_id: format!("L-{now}"),
        licensee: Licensee {
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            company: Some("Analytical Engines Ltd".into()),
        },
        edition: Edition::Professional,
        issued_at: now,
        valid_from: now,
        expires_at: Some(now + 365 * 86_400_000),
        updates_until: None,
        instance: None,
        modules: vec!["*".parse().unwrap()],
        limits: Limits::default(),
        grace_days: 14,
    };
    edit(&mut p);
    let (_, key) = kontor::modules::trust::decode_signing_key(TEST_KEY).unwrap();
    kontor::license::issue(&key, &p).unwrap()
}

/// PUT the license text to the API as `who`.
async fn install(app: &TestApp, who: &Session, text: &str) -> (StatusCode, Value) {
    let res = app
        .raw(Method::PUT, "/api/v1/license", Some(who))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(text.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

/// What `serve` does at its first start (it records the trial), then the
/// hello module installed, and an admin (not the owner, who holds every
/// permission anyway). Returns the admin's e-mail.
async fn start(app: &TestApp) -> String {
    app.state
        .licensing()
        .record_time(app.state.db(), app.state.now_ms())
        .await
        .unwrap();
    install_hello(app).await;
    app.user(&app.owner, "admin", None).await.email
}

/// The API's status of the license.
async fn status(app: &TestApp, who: &Session) -> Value {
    let (code, body) = app
        .call(Method::GET, "/api/v1/license", Some(who), None)
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

/// What `GET /api/v1/modules` says the tenant may do with hello.
async fn hello_access(app: &TestApp, who: &Session) -> Value {
    let (code, list) = app
        .call(Method::GET, "/api/v1/modules", Some(who), None)
        .await;
    assert_eq!(code, StatusCode::OK, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "hello")
        .unwrap_or_else(|| panic!("no hello in {list}"))["access"]
        .clone()
}

async fn post_greeting(app: &TestApp, who: &Session) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/hello/greeting",
        Some(who),
        Some(json!({"name": "Ada"})),
    )
    .await
}

/// One step of the licensing timeline.
enum Step {
    /// Nothing: the state right after the first start.
    Start,
    /// Move the clock forward.
    Advance(Duration),
    /// Install a license issued now that expires after this long.
    Install(Duration),
    /// Record the time (as `serve` does hourly), then set the clock back.
    RecordThenBack(Duration),
}

both!(
    self_hosted,
    hello_follows_trial_license_grace_expiry_and_the_clock,
    |app| {
        let admin_email = start(&app).await;
        let day = Duration::days(1);
        let back = Step::RecordThenBack;
        // (what happens, the step, state, hello enabled, admins warned)
        #[rustfmt::skip]
        let steps = [
            ("fresh install",            Step::Start,               "trial",   true,  false),
            ("trial, day 22",            Step::Advance(day * 22),   "trial",   true,  false),
            ("trial's last week",        Step::Advance(day),        "trial",   true,  true),
            ("trial over",               Step::Advance(day * 7),    "expired", false, true),
            ("license installed",        Step::Install(day * 10),   "active",  true,  false),
            ("license expired: grace",   Step::Advance(day * 10),   "grace",   true,  true),
            ("last grace minute",        Step::Advance(day * 14 - Duration::minutes(1)), "grace", true, true),
            ("grace over",               Step::Advance(Duration::minutes(1)), "expired", false, true),
            ("renewed",                  Step::Install(day * 365),  "active",  true,  false),
            ("clock back by two days",   back(day * 2),             "clock_moved_back", false, true),
            ("clock right again",        Step::Advance(day * 2),    "active",  true,  false),
            ("clock back by half a day is tolerated", back(Duration::hours(12)), "active", true, false),
        ];
        for (name, step, state, enabled, warned) in steps {
            match step {
                Step::Start => {}
                Step::Advance(by) => app.clock.advance(by),
                Step::Install(valid_for) => {
                    // Issued the day before, as a vendor's file usually is.
                    let text = license(&app, |p| {
                        p.expires_at = Some(p.issued_at + valid_for.whole_milliseconds() as i64);
                        p.issued_at -= 86_400_000;
                        p.valid_from = p.issued_at;
                    });
                    // Sessions idle out while the clock jumps: sign in again.
                    let owner = app.login(&app.owner.email, PASSWORD).await;
                    let (code, body) = install(&app, &owner, &text).await;
                    assert_eq!(code, StatusCode::OK, "{name}: {body}");
                }
                Step::RecordThenBack(by) => {
                    app.state
                        .licensing()
                        .record_time(app.state.db(), app.state.now_ms())
                        .await
                        .unwrap();
                    app.clock.advance(-by);
                }
            }
            // The admin is never locked out: sign-in, the license API and page.
            let admin = app.login(&admin_email, PASSWORD).await;
            let s = status(&app, &admin).await;
            assert_eq!(s["state"], state, "{name}: {s}");
            assert_eq!(s["needs_attention"], warned, "{name}: {s}");
            assert!(!s["explanation"].as_str().unwrap().is_empty());
            let page = app
                .raw(Method::GET, "/license", Some(&admin))
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), StatusCode::OK, "{name}: the license page");

            // Data is never hidden: GET routes and pages work in every state.
            let (code, body) = app
                .call(
                    Method::GET,
                    "/api/v1/hello/greeting?name=Ada",
                    Some(&admin),
                    None,
                )
                .await;
            assert_eq!(code, StatusCode::OK, "{name}: {body}");
            assert_eq!(body["greeting"], "Hello, Ada");
            let page = app
                .raw(Method::GET, "/app/hello/", Some(&admin))
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), StatusCode::OK, "{name}: hello's page");

            let access = hello_access(&app, &admin).await;
            let (code, body) = post_greeting(&app, &admin).await;
            if enabled {
                assert_eq!(access, json!({"state": "enabled"}), "{name}");
                assert_eq!(code, StatusCode::OK, "{name}: {body}");
            } else {
                assert_eq!(access["state"], "read_only", "{name}: {access}");
                assert_error(code, &body, 403, "license_expired");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("`hello` is read-only"),
                    "{name}: {message}"
                );
                assert_eq!(access["reason"], message, "{name}: the listing says why");
            }
            // Core CRM keeps working whatever the license says.
            app.customer(&admin, json!({"company": format!("{name} AG")}))
                .await;
        }
    }
);

both!(
    self_hosted,
    a_read_only_module_runs_no_job_gets_no_event_and_skips_its_filters,
    |app| {
        start(&app).await;
        install_faults(&app).await;
        let db = app.state.db();
        let modules = app.state.modules();
        let schedule = || async {
            kontor::modules::jobs::schedule_due(db, modules, app.state.now_ms())
                .await
                .unwrap()
        };
        assert_eq!(
            schedule().await,
            0,
            "the tick job's schedule starts counting"
        );
        // The trial ends: hello is read-only.
        app.clock.advance(Duration::days(31));
        let owner = app.login(&app.owner.email, PASSWORD).await;
        assert_eq!(status(&app, &owner).await["state"], "expired");

        assert_eq!(
            schedule().await,
            0,
            "a read-only module's job is not scheduled"
        );
        // hello's `customer.before_save` filter refuses "Forbidden": skipped now.
        let id = app.customer(&owner, json!({"company": "Forbidden"})).await;
        drain(&app).await;
        let (_, seen) = app
            .call(Method::GET, "/api/v1/hello/seen", Some(&owner), None)
            .await;
        assert_eq!(
            seen["items"],
            json!([]),
            "no event delivered, no job run: {seen}"
        );
        // ... but the delivery is recorded, with why, not lost.
        let (_, dead) = app
            .call(Method::GET, "/api/v1/jobs?status=dead", Some(&owner), None)
            .await;
        let delivery = dead
            .as_array()
            .unwrap()
            .iter()
            .find(|j| {
                j["kind"] == "module.event.deliver" && j["payload"].as_str().unwrap().contains(&id)
            })
            .unwrap_or_else(|| panic!("no recorded delivery in {dead}"))
            .clone();
        let reason = delivery["last_error"].as_str().unwrap();
        assert!(
            reason.starts_with("skipped: ") && reason.contains("[license_expired]"),
            "{reason}"
        );
        assert_eq!(delivery["attempts"], 0, "nothing was attempted");

        // Its tab on the customer's page stays: it leads to data.
        let page = app
            .raw(Method::GET, &format!("/customers/{id}"), Some(&owner))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let page = page.text().await.unwrap();
        assert!(
            page.contains(&format!("/app/hello/?customer={id}")),
            "{page}"
        );

        // A fail-closed security hook of a read-only module keeps running:
        // a lapsed license does not open the door.
        let (code, body) = app
            .call(Method::GET, "/api/v1/blocked/thing", Some(&owner), None)
            .await;
        assert_error(code, &body, 403, "forbidden");

        // A license: the missed tick runs once, the skipped event is replayable.
        let (code, body) = install(&app, &owner, &license(&app, |_| {})).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(schedule().await, 1, "the missed slot runs once");
        let (code, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/jobs/{}/replay", delivery["id"].as_str().unwrap()),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(code, StatusCode::ACCEPTED);
        drain(&app).await;
        let (_, seen) = app
            .call(Method::GET, "/api/v1/hello/seen", Some(&owner), None)
            .await;
        let items = seen["items"].as_array().unwrap();
        assert!(
            items.iter().any(|r| r["customer_id"] == id.as_str()),
            "{seen}"
        );
        assert!(items.iter().any(|r| r["ticks"] == 1), "the job ran: {seen}");
        // And hello's filter is back.
        let (code, body) = app
            .call(
                Method::POST,
                "/api/v1/customers",
                Some(&owner),
                Some(json!({"company": "Forbidden"})),
            )
            .await;
        assert_error(code, &body, 422, "validation_failed");
    }
);

both!(
    self_hosted,
    license_limits_refuse_one_more_and_keep_what_exists,
    |app| {
        start(&app).await;
        let owner = &app.owner;
        // Owner + admin: two users who count. A portal user does not.
        let text = license(&app, |p| {
            p.limits = Limits {
                users: Some(3),
                customers: Some(2),
                tenants: None,
            }
        });
        let (code, body) = install(&app, owner, &text).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(
            body["license"]["limits"],
            json!({"users": 3, "customers": 2, "tenants": null})
        );

        let staff = app.user(owner, "staff", None).await;
        let app_ref = &app;
        let add_user = |role: &'static str| {
            let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
            let body =
                json!({"email": email, "name": "One more", "role": role, "password": PASSWORD});
            async move {
                app_ref
                    .call(Method::POST, "/api/v1/users", Some(owner), Some(body))
                    .await
            }
        };
        let set_staff_status = |status: &'static str| {
            let path = format!("/api/v1/users/{}", staff.user_id);
            async move {
                let body = json!({ "status": status });
                app_ref
                    .call(Method::PATCH, &path, Some(owner), Some(body))
                    .await
            }
        };
        let (code, body) = add_user("staff").await;
        assert_error(code, &body, 403, "license_limit_reached");
        assert_eq!(body["error"]["details"]["limit"], "users");
        assert_eq!(body["error"]["details"]["max"], 3);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("3 users"));

        // Customers: one by the API, then an import that crosses the cap.
        let first = app
            .customer(
                owner,
                json!({"company": "First AG", "email": "first@example.com"}),
            )
            .await;
        let portal = app.user(owner, "customer", Some(&first)).await;
        assert_eq!(
            app.call(Method::GET, "/api/v1/auth/me", Some(&portal), None)
                .await
                .0,
            StatusCode::OK,
            "a portal user takes no place"
        );
        // A row whose e-mail is taken is refused for that and takes no place.
        let csv =
            "company,email\nFirst Again AG,FIRST@example.com\nSecond AG,\nThird AG,\nFourth AG,\n";
        let (code, report) = crate::crm::import(&app, owner, csv).await;
        assert_eq!(code, StatusCode::OK, "{report}");
        assert_eq!(report["imported"], 1, "{report}");
        assert_eq!(report["rejected"], 3, "{report}");
        assert_eq!(report["rejections"][0]["line"], 2);
        assert_eq!(report["rejections"][0]["field"], "email");
        assert_eq!(report["rejections"][1]["line"], 4);
        assert!(
            report["rejections"][2]["reason"]
                .as_str()
                .unwrap()
                .contains("2 customers"),
            "{report}"
        );
        let (code, body) = app
            .call(
                Method::POST,
                "/api/v1/customers",
                Some(owner),
                Some(json!({"company": "Fifth AG"})),
            )
            .await;
        assert_error(code, &body, 403, "license_limit_reached");
        assert_eq!(body["error"]["details"]["limit"], "customers");

        // The UI form says it in words, next to the form.
        let browser = Browser::login(&app, &owner.email).await;
        let csrf = browser.csrf("/customers/new").await;
        let res = browser
            .post(
                "/customers",
                &[("_csrf", csrf.as_str()), ("company", "Sixth AG")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        // (German: the UI's language when the browser asks for none.)
        assert!(res.text().await.unwrap().contains("höchstens 2 Kunden"));

        // A disabled user holds no place; enabling one again takes one.
        let (code, body) = set_staff_status("disabled").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, body) = add_user("reseller").await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let (code, body) = set_staff_status("active").await;
        assert_error(code, &body, 403, "license_limit_reached");

        // A smaller license removes nothing: it only stops new ones.
        let smaller = license(&app, |p| {
            p.license_id = "L-smaller".into();
            p.limits = Limits {
                users: Some(1),
                customers: Some(1),
                tenants: None,
            }
        });
        assert_eq!(install(&app, owner, &smaller).await.0, StatusCode::OK);
        let (_, customers) = app
            .call(Method::GET, "/api/v1/customers", Some(owner), None)
            .await;
        assert_eq!(
            customers["items"].as_array().unwrap().len(),
            2,
            "{customers}"
        );
        let (_, users) = app
            .call(Method::GET, "/api/v1/users", Some(owner), None)
            .await;
        let active = users
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["status"] == "active" && u["role"] != "customer")
            .count();
        assert_eq!(active, 3, "{users}");
        app.login(&app.owner.email, PASSWORD).await;
    }
);

both!(
    self_hosted,
    license_api_installs_verified_files_and_explains_refusals,
    |app| {
        start(&app).await;
        let owner = &app.owner;
        let staff = app.user(owner, "staff", None).await;
        let (code, body) = app
            .call(Method::GET, "/api/v1/license", Some(&staff), None)
            .await;
        assert_error(code, &body, 403, "forbidden");
        let (code, body) = install(&app, &staff, &license(&app, |_| {})).await;
        assert_error(code, &body, 403, "forbidden");

        let before = status(&app, owner).await;
        assert_eq!(before["state"], "trial");
        assert!(before["license"].is_null());

        let good = license(&app, |p| p.license_id = "L-good".into());
        let mut tampered = good.clone().into_bytes();
        let i = tampered.len() / 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let refused = [
            ("garbage".to_string(), 422, "license_bad_armor"),
            (String::from_utf8(tampered).unwrap(), 422, ""),
            (
                license(&app, |p| {
                    p.issued_at -= 40 * 86_400_000;
                    p.valid_from = p.issued_at;
                    p.expires_at = Some(p.issued_at + 86_400_000)
                }),
                403,
                "license_expired",
            ),
            (
                license(&app, |p| {
                    p.instance = Some(kontor::license::payload::InstanceBinding {
                        instance_id: Some("elsewhere".into()),
                        hostname: None,
                    })
                }),
                422,
                "license_wrong_instance",
            ),
        ];
        for (text, http, code) in &refused {
            let (status_code, body) = install(&app, owner, text).await;
            assert_eq!(status_code.as_u16(), *http, "{body}");
            if !code.is_empty() {
                assert_error(status_code, &body, *http, code);
            }
            assert!(
                status(&app, owner).await["license"].is_null(),
                "a refused file changes nothing"
            );
        }

        let (code, body) = install(&app, owner, &good).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "active");
        let l = &body["license"];
        assert_eq!(l["license_id"], "L-good");
        assert_eq!(l["licensee_name"], "Ada Lovelace");
        assert_eq!(l["edition"], "professional");
        assert_eq!(
            l["modules"],
            json!([{"id": "*", "version": null, "expires_at": null}])
        );
        assert_eq!(l["signed_by"], "test");
        assert!(
            l["expires_at"].as_str().unwrap().starts_with("2027-03-02"),
            "{l}"
        );
        assert!(l["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["label"] == "licensee"));
        assert_eq!(body["development_build"], true);
        let text = body.to_string();
        assert!(
            !text.contains("BEGIN KONTOR LICENSE") && !text.contains("signature"),
            "{text}"
        );
        let armored: String = good.lines().nth(1).unwrap().to_string();
        assert!(
            !text.contains(&armored),
            "the license text is never sent back"
        );

        // A refusal after that keeps the installed license.
        assert_eq!(install(&app, owner, "garbage").await.0.as_u16(), 422);
        assert_eq!(status(&app, owner).await["license"]["license_id"], "L-good");

        let (_, audit) = app
            .call(Method::GET, "/api/v1/audit-events", Some(owner), None)
            .await;
        let actions = audit.to_string();
        assert!(
            actions.contains("license.installed") && actions.contains("license.refused"),
            "{actions}"
        );
    }
);

both!(
    self_hosted,
    license_page_installs_with_csrf_and_admins_see_the_banner,
    |app| {
        let admin_email = start(&app).await;
        let staff = app.user(&app.owner, "staff", None).await;
        let admin = Browser::login(&app, &admin_email).await;
        let (code, page) = admin.get("/license").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            page.contains("Testphase") && page.contains("name=\"license\""),
            "{page}"
        );
        assert!(
            !page.contains("license-banner"),
            "a fresh trial is no alarm"
        );

        let text = license(&app, |p| p.expires_at = Some(p.issued_at + 86_400_000));
        let res = admin.post("/license", &[("license", text.as_str())]).await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "no CSRF token, no install"
        );
        let csrf = admin.csrf("/license").await;
        let res = admin
            .post(
                "/license",
                &[("_csrf", csrf.as_str()), ("license", "garbage")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = res.text().await.unwrap();
        assert!(
            body.contains("license_bad_armor") && body.contains("nichts geändert"),
            "{body}"
        );
        let res = admin
            .post(
                "/license",
                &[("_csrf", csrf.as_str()), ("license", text.as_str())],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let (_, page) = admin.get("/license?installed=1").await;
        assert!(
            page.contains("Die Lizenz wurde installiert.") && page.contains("Ada Lovelace"),
            "{page}"
        );

        // The same, uploaded as a file: CSRF checked, refusals explained.
        let upload = license(&app, |p| p.expires_at = Some(p.issued_at + 86_400_000));
        let res = admin
            .post_file("/license/upload", &[], "file", upload.clone().into_bytes())
            .await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "no CSRF token, no install"
        );
        let res = admin
            .post_file(
                "/license/upload",
                &[("_csrf", csrf.as_str())],
                "file",
                b"\x00\x01 not a license".to_vec(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.unwrap().contains("license_bad_armor"));
        let res = admin
            .post_file(
                "/license/upload",
                &[("_csrf", csrf.as_str())],
                "file",
                upload.into_bytes(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let (_, page) = admin.get("/license?installed=1").await;
        assert!(page.contains("Die Lizenz wurde installiert."), "{page}");

        // Expired into the grace: admins see the banner everywhere, others not.
        app.clock.advance(Duration::days(2));
        let admin = Browser::login(&app, &admin_email).await;
        let (code, dashboard) = admin.get("/").await;
        assert_eq!(code, StatusCode::OK);
        assert!(
            dashboard.contains("license-banner") && dashboard.contains("href=\"/license\""),
            "{dashboard}"
        );
        let staff = Browser::login(&app, &staff.email).await;
        let (_, dashboard) = staff.get("/").await;
        assert!(!dashboard.contains("license-banner"));
        let (code, _) = staff.get("/license").await;
        assert_eq!(code, StatusCode::FORBIDDEN);
    }
);

both!(
    saas_has_no_installation_license_and_follows_entitlement_rows,
    |app| {
        install_hello(&app).await;
        let owner = &app.owner;
        for method in [Method::GET, Method::PUT] {
            let (code, body) = app.call(method, "/api/v1/license", Some(owner), None).await;
            assert_error(code, &body, 409, "wrong_mode");
        }
        // The subscriptions' side of the one check: read_only, revoked, active.
        let tenant = kontor::ids::TenantId::from_trusted(
            sqlx::query_scalar::<_, String>("SELECT tenant_id FROM users WHERE id = $1")
                .bind(&owner.user_id)
                .fetch_one(app.state.db().pool())
                .await
                .unwrap(),
        );
        let set = |status| {
            let (db, tenant, now) = (app.state.db(), &tenant, app.state.now_ms());
            async move {
                let had = entitlements::set_status(db, tenant, "hello", status, now).await;
                assert!(had.unwrap(), "the tenant has a hello entitlement");
            }
        };
        set(Status::ReadOnly).await;
        let get = app
            .call(Method::GET, "/api/v1/hello/greeting", Some(owner), None)
            .await;
        assert_eq!(get.0, StatusCode::OK, "{}", get.1);
        let (code, body) = post_greeting(&app, owner).await;
        assert_error(code, &body, 403, "license_expired");
        assert_eq!(hello_access(&app, owner).await["state"], "read_only");
        set(Status::Revoked).await;
        let (code, body) = app
            .call(Method::GET, "/api/v1/hello/greeting", Some(owner), None)
            .await;
        assert_error(code, &body, 403, "module_not_entitled");
        assert_eq!(hello_access(&app, owner).await["state"], "denied");
        set(Status::Active).await;
        assert_eq!(
            post_greeting(&app, owner).await.0,
            StatusCode::OK,
            "the cache was cleared"
        );
        // No license limits in SaaS mode.
        for n in 0..3 {
            app.customer(owner, json!({"company": format!("SaaS {n} AG")}))
                .await;
        }
    }
);

both!(
    self_hosted,
    admins_get_one_reminder_e_mail_a_day_while_the_license_needs_attention,
    |app| {
        let admin_email = start(&app).await;
        let owner = app.owner.clone();
        let remind = || async {
            kontor::license::reminders::send_if_due(
                app.state.db(),
                app.state.licensing(),
                app.state.mailer(),
                None,
                app.state.now_ms(),
            )
            .await
            .unwrap()
        };
        // A fresh trial needs no attention yet.
        assert_eq!(remind().await, None);

        // A license that ran out yesterday: grace, and a reminder.
        let (code, body) = install(
            &app,
            &owner,
            &license(&app, |p| {
                p.expires_at = Some(p.issued_at + 86_400_000);
            }),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        app.clock.advance(Duration::days(2));
        assert_eq!(status(&app, &owner).await["state"], "grace");
        assert!(remind().await.is_some());
        // Once a day, however often the check runs.
        app.clock.advance(Duration::hours(3));
        assert_eq!(remind().await, None);
        drain(&app).await;
        let received = app.mail.wait_for(1, std::time::Duration::from_secs(10));
        assert_eq!(received.len(), 1);
        let m = &received[0];
        let mut to = m.to.clone();
        to.sort();
        let mut expected = vec![owner.email.clone(), admin_email.clone()];
        expected.sort();
        assert_eq!(to, expected, "owners and admins, nobody else");
        let subject = m.subject().unwrap();
        assert!(subject.contains("read-only on"), "{subject}");
        assert!(
            m.text().contains("Install a renewed license"),
            "{}",
            m.text()
        );

        // The next day: the next one.
        app.clock.advance(Duration::days(1));
        assert!(remind().await.is_some());

        // A renewed license ends them.
        let (code, body) = install(&app, &owner, &license(&app, |_| {})).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        app.clock.advance(Duration::days(1));
        assert_eq!(remind().await, None);
        drain(&app).await;
        assert_eq!(
            app.mail
                .wait_for(2, std::time::Duration::from_secs(10))
                .len(),
            2
        );
    }
);
