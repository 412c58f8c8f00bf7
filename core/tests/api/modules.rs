//! Modules in the running host, with the real `hello` component built from
//! `modules/`: install → entitle → route → event → record → job → page,
//! filters, permissions and entitlement refusals.

use kontor::jobs::worker;
use kontor::modules::manifest::Manifest;
use kontor::modules::registry::{self, Source};
use kontor::modules::{entitlements, events};
use reqwest::{header, Method, StatusCode};
use serde_json::json;

use crate::both;
use crate::common::{assert_error, TestApp};

/// Host capabilities (secrets, crm) and module settings, with the `caps` guest.
pub mod capabilities;
/// Signed hooks (`signed_by` routes at `/api/v1/hooks/...`), with the `caps` guest.
pub mod hooks;
/// The `notify` capability and the e-mail log, with the `caps` guest.
pub mod notify;
/// Outbound HTTP (`http` capability) with the `fetch` guest and a local server.
pub mod outbound;
/// The bundled `tickets` support desk end to end: staff, portal, tenants,
/// e-mail in and out, SLA escalation, pages.
pub mod tickets;

/// Entitle the tenant of `who` to `module_id`.
pub async fn entitle(app: &TestApp, who: &crate::common::Session, module_id: &str) {
    let tenant = crate::records::tenant_of(app, who).await;
    entitlements::grant(
        app.state.db(),
        &tenant,
        module_id,
        "manual",
        None,
        app.state.now_ms(),
    )
    .await
    .unwrap();
}

/// Install a module built from `modules/` (as if bundled) and entitle the
/// owner's tenant to it.
pub async fn install_built(app: &TestApp, manifest_text: &str, wasm: &[u8]) {
    let manifest = Manifest::parse("module.toml", manifest_text).unwrap();
    let now = app.state.now_ms();
    let candidate = registry::Candidate {
        manifest: &manifest,
        component: wasm,
        source: Source::Bundled,
        package: None,
    };
    registry::install(
        app.state.db(),
        app.state.modules(),
        app.mode,
        candidate,
        now,
    )
    .await
    .unwrap();
    entitle(app, &app.owner, &manifest.id).await;
}

/// The bundled hello module, installed and entitled.
pub async fn install_hello(app: &TestApp) {
    let (text, wasm) = kontor_runtime::bundled::HELLO;
    install_built(app, text, wasm).await;
}

/// The faults test guest, installed and entitled (only this process loads
/// it: it is not in the binary).
pub async fn install_faults(app: &TestApp) {
    let text = kontor_runtime::test_guest_manifest("faults").unwrap();
    install_built(app, &text, &kontor_runtime::test_guest("faults").unwrap()).await;
}

/// Fan out the outbox and run every runnable job, as the background loops do.
pub async fn drain(app: &TestApp) {
    let db = app.state.db();
    let clock: kontor::clock::SharedClock = app.clock.clone();
    let handlers = app.state.job_handlers();
    loop {
        let dispatched = events::dispatch(db, app.state.modules(), app.state.now_ms(), 100)
            .await
            .unwrap();
        let mut ran = false;
        while worker::run_once(db, &clock, &handlers, "test")
            .await
            .unwrap()
        {
            ran = true;
        }
        if dispatched == 0 && !ran {
            break;
        }
    }
}

both!(
    hello_route_event_record_job_and_page_work_end_to_end,
    |app| {
        install_hello(&app).await;
        let (status, body) = app
            .call(
                Method::GET,
                "/api/v1/hello/greeting?name=Ada",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"greeting": "Hello, Ada"}));

        let id = app
            .customer(&app.owner, json!({"company": "Event Test AG"}))
            .await;
        drain(&app).await;
        let (status, seen) = app
            .call(Method::GET, "/api/v1/hello/seen", Some(&app.owner), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{seen}");
        let items = seen["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{seen}");
        assert_eq!(items[0]["customer_id"], id.as_str());
        assert_eq!(items[0]["name"], "Event Test AG");

        // The tick job: first sight starts the clock, the next slot runs it once.
        let now = app.state.now_ms();
        assert_eq!(
            kontor::modules::jobs::schedule_due(app.state.db(), app.state.modules(), now)
                .await
                .unwrap(),
            0
        );
        app.clock.advance(time::Duration::hours(3));
        let now = app.state.now_ms();
        assert_eq!(
            kontor::modules::jobs::schedule_due(app.state.db(), app.state.modules(), now)
                .await
                .unwrap(),
            1,
            "a missed schedule runs once, not once per missed slot"
        );
        assert_eq!(
            kontor::modules::jobs::schedule_due(app.state.db(), app.state.modules(), now)
                .await
                .unwrap(),
            0
        );
        drain(&app).await;
        let (_, seen) = app
            .call(Method::GET, "/api/v1/hello/seen", Some(&app.owner), None)
            .await;
        assert!(
            seen["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["ticks"] == 1),
            "{seen}"
        );

        let page = app
            .raw(Method::GET, "/app/hello/", None)
            .header(
                header::COOKIE,
                format!("kontor_session={}", app.owner.token),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("This page comes from the hello module"),
            "{html}"
        );
        assert!(
            html.contains("<nav") || html.contains("layout"),
            "rendered inside the core layout"
        );

        let (status, list) = app
            .call(Method::GET, "/api/v1/modules", Some(&app.owner), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list[0]["id"], "hello");
        assert!(list[0]["health"]["calls"].as_u64().unwrap() >= 4, "{list}");
    }
);

both!(module_routes_check_permission_and_entitlement, |app| {
    install_hello(&app).await;
    let reseller = app.user(&app.owner, "reseller", None).await;
    let (status, body) = app
        .call(Method::GET, "/api/v1/hello/greeting", Some(&reseller), None)
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(body["error"]["details"]["permission"], "hello.view");
    let staff = app.user(&app.owner, "staff", None).await;
    let (status, _) = app
        .call(Method::GET, "/api/v1/hello/greeting", Some(&staff), None)
        .await;
    assert_eq!(status, StatusCode::OK, "staff get hello.view by default");

    let other = app.new_tenant("Not entitled").await;
    let (status, body) = app
        .call(Method::GET, "/api/v1/hello/greeting", Some(&other), None)
        .await;
    assert_error(status, &body, 403, "module_not_entitled");
    let (status, body) = app
        .call(Method::GET, "/api/v1/hello/nope", Some(&app.owner), None)
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/nosuchmodule/x",
            Some(&app.owner),
            None,
        )
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = app
        .call(Method::GET, "/api/v1/hello/greeting", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Events of a tenant that is not entitled never reach the module.
    app.customer(&other, json!({"company": "Unseen AG"})).await;
    drain(&app).await;
    let (_, seen) = app
        .call(Method::GET, "/api/v1/hello/seen", Some(&app.owner), None)
        .await;
    assert!(!seen.to_string().contains("Unseen"), "{seen}");
});

both!(a_filter_can_refuse_a_customer_save, |app| {
    install_hello(&app).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&app.owner),
            Some(json!({"company": "Forbidden"})),
        )
        .await;
    assert_error(status, &body, 422, "validation_failed");
    assert_eq!(
        body["error"]["message"],
        "The hello module does not allow this company name."
    );
    assert_eq!(body["error"]["details"]["module"], "hello");
    let (_, page) = app
        .call(Method::GET, "/api/v1/customers", Some(&app.owner), None)
        .await;
    assert_eq!(page["items"], json!([]));
    app.customer(&app.owner, json!({"company": "Allowed AG"}))
        .await;
});

both!(disabling_stops_routes_and_keeps_data, |app| {
    install_hello(&app).await;
    app.customer(&app.owner, json!({"company": "Kept AG"}))
        .await;
    drain(&app).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/modules/hello/disable",
            Some(&app.owner),
            None,
        )
        .await;
    assert_error(status, &body, 409, "wrong_mode");
    let now = app.state.now_ms();
    registry::disable(app.state.db(), app.state.modules(), "hello", now)
        .await
        .unwrap();
    let (status, _) = app
        .call(Method::GET, "/api/v1/hello/seen", Some(&app.owner), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    registry::enable(app.state.db(), app.state.modules(), "hello", now)
        .await
        .unwrap();
    let (_, seen) = app
        .call(Method::GET, "/api/v1/hello/seen", Some(&app.owner), None)
        .await;
    assert!(seen.to_string().contains("Kept AG"), "{seen}");
});

both!(
    module_faults_end_one_call_with_an_error_id_and_the_host_keeps_serving,
    |app| {
        install_faults(&app).await;
        install_hello(&app).await;
        let owner = app.owner.clone();
        let base = app.base.clone();
        let looping = {
            let http = app.http.clone();
            let token = owner.token.clone();
            tokio::spawn(async move {
                let res = http
                    .get(format!("{base}/api/v1/faults/loop"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                (res.status(), res.json::<serde_json::Value>().await.unwrap())
            })
        };
        // While the module loops, the host answers.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (status, _) = app.call(Method::GET, "/health", None, None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .call(Method::GET, "/api/v1/hello/greeting", Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK, "other modules keep serving");
        let (status, body) = looping.await.unwrap();
        assert_error(status, &body, 504, "module_timeout");
        assert!(body["error"]["details"]["error_id"].is_string());

        for (path, code) in [
            ("/api/v1/faults/trap", 500),
            ("/api/v1/faults/membomb", 500),
            ("/api/v1/faults/huge", 500),
        ] {
            let (status, body) = app.call(Method::GET, path, Some(&owner), None).await;
            assert_error(status, &body, code, "module_failed");
            assert_eq!(body["error"]["details"]["module"], "faults");
        }
        let (status, body) = app
            .call(Method::GET, "/api/v1/faults/ok", Some(&owner), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, list) = app
            .call(Method::GET, "/api/v1/modules", Some(&owner), None)
            .await;
        let faults = list
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "faults")
            .unwrap()
            .clone();
        assert_eq!(faults["failures"], 4, "{faults}");
        assert!(
            faults["last_error"].as_str().unwrap().contains("limit"),
            "{faults}"
        );
    }
);

both!(
    modules_cannot_read_other_modules_or_tenants_records_through_the_imports,
    |app| {
        install_hello(&app).await;
        install_faults(&app).await;
        let id = app
            .customer(&app.owner, json!({"company": "Private To Hello AG"}))
            .await;
        drain(&app).await;
        // hello wrote seen/{id}; faults asks for the same collection and id.
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/faults/records/get?collection=seen&id={id}"),
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["record"],
            serde_json::Value::Null,
            "module B sees nothing of module A"
        );
        // faults writes its own record in tenant A; tenant B (entitled too) cannot see it.
        let res = app
            .raw(
                Method::POST,
                "/api/v1/faults/records/put?collection=seen&id=shared",
                Some(&app.owner),
            )
            .body(r#"{"name":"tenant A secret"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let b = app.new_tenant("B").await;
        let tenant_b = crate::records::tenant_of(&app, &b).await;
        entitlements::grant(
            app.state.db(),
            &tenant_b,
            "faults",
            "manual",
            None,
            app.state.now_ms(),
        )
        .await
        .unwrap();
        let (status, body) = app
            .call(
                Method::GET,
                "/api/v1/faults/records/get?collection=seen&id=shared",
                Some(&b),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["record"],
            serde_json::Value::Null,
            "tenant B sees nothing of tenant A"
        );
        let (_, body) = app
            .call(
                Method::GET,
                "/api/v1/faults/records/get?collection=seen&id=shared",
                Some(&app.owner),
                None,
            )
            .await;
        assert!(body["record"].as_str().unwrap().contains("tenant A secret"));
        // An undeclared collection is refused.
        let (status, body) = app
            .call(
                Method::GET,
                "/api/v1/faults/records/get?collection=notes&id=x",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.to_string().contains("UnknownCollection"), "{body}");
    }
);

mod packages {
    use super::*;
    use kontor::modules::{package, trust};

    struct Publisher {
        key: ed25519_dalek::SigningKey,
    }

    impl Publisher {
        async fn trusted(app: &TestApp) -> Publisher {
            let key = trust::generate_signing_key();
            let public = trust::PublisherKey::new("acme", &key.verifying_key()).unwrap();
            registry::add_trusted_key(app.state.db(), &public, app.state.now_ms())
                .await
                .unwrap();
            Publisher { key }
        }

        fn package(&self, manifest: &str, wasm: &[u8]) -> Vec<u8> {
            let unsigned = package::pack::<&str, &[u8]>(manifest, wasm, &[]).unwrap();
            package::sign(&unsigned, &self.key).unwrap()
        }
    }

    fn manifest(id: &str, version: &str, api: &str, deps: &[(&str, &str, bool)]) -> String {
        let (hello, _) = kontor_runtime::bundled::HELLO;
        let mut text = hello
            .replacen("id = \"hello\"", &format!("id = \"{id}\""), 1)
            .replacen(
                "version = \"0.1.0\"",
                &format!("version = \"{version}\""),
                1,
            )
            .replacen("publisher = \"kontor\"", "publisher = \"acme\"", 1)
            .replacen("api = \"^0.1\"", &format!("api = \"{api}\""), 1)
            .replace("hello.view", &format!("{id}.view"));
        for (dep, req, optional) in deps {
            text.push_str(&format!(
                "\n[[dependencies]]\nid = \"{dep}\"\nversion = \"{req}\"\noptional = {optional}\n"
            ));
        }
        text
    }

    async fn install(app: &TestApp, bytes: &[u8]) -> Result<registry::ModuleInfo, kontor::Error> {
        registry::install_package(
            app.state.db(),
            app.state.modules(),
            app.state.config(),
            bytes,
            app.state.now_ms(),
        )
        .await
    }

    fn code(r: Result<registry::ModuleInfo, kontor::Error>) -> (String, String) {
        let e = r.unwrap_err();
        (e.code().as_str().to_string(), e.to_string())
    }

    both!(
        signed_packages_upgrade_and_a_failing_upgrade_keeps_the_old_version,
        |app| {
            let acme = Publisher::trusted(&app).await;
            let (_, wasm) = kontor_runtime::bundled::HELLO;
            let tenant = crate::records::tenant_of(&app, &app.owner).await;
            install(
                &app,
                &acme.package(&manifest("greeter", "1.0.0", "^0.1", &[]), wasm),
            )
            .await
            .unwrap();
            entitlements::grant(
                app.state.db(),
                &tenant,
                "greeter",
                "manual",
                None,
                app.state.now_ms(),
            )
            .await
            .unwrap();
            let (status, body) = app
                .call(
                    Method::GET,
                    "/api/v1/greeter/greeting?name=Bo",
                    Some(&app.owner),
                    None,
                )
                .await;
            assert_eq!(
                (status, body),
                (StatusCode::OK, json!({"greeting": "Hello, Bo"}))
            );

            let up = install(
                &app,
                &acme.package(&manifest("greeter", "1.1.0", "^0.1", &[]), wasm),
            )
            .await
            .unwrap();
            assert_eq!(up.version, "1.1.0");

            // 1.2.0's component imports something this host does not provide:
            // it cannot be loaded, and 1.1.0 stays installed and serving.
            let broken =
                wat::parse_str(r#"(component (import "acme:missing/api@1.0.0" (instance)))"#)
                    .unwrap();
            let (c, message) = code(
                install(
                    &app,
                    &acme.package(&manifest("greeter", "1.2.0", "^0.1", &[]), &broken),
                )
                .await,
            );
            assert_eq!(c, "module_package_refused", "{message}");
            let list = registry::list(app.state.db(), app.state.modules())
                .await
                .unwrap();
            let greeter = list.iter().find(|m| m.id == "greeter").unwrap();
            assert_eq!(
                (greeter.version.as_str(), greeter.state.as_str()),
                ("1.1.0", "enabled")
            );
            let (status, _) = app
                .call(
                    Method::GET,
                    "/api/v1/greeter/greeting",
                    Some(&app.owner),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK);

            // The same version again is a conflict, not a reinstall.
            let (c, _) = code(
                install(
                    &app,
                    &acme.package(&manifest("greeter", "1.1.0", "^0.1", &[]), wasm),
                )
                .await,
            );
            assert_eq!(c, "module_already_installed");
        }
    );

    both!(
        tampered_unsigned_and_untrusted_packages_are_refused,
        |app| {
            let acme = Publisher::trusted(&app).await;
            let (_, wasm) = kontor_runtime::bundled::HELLO;
            let good = acme.package(&manifest("signed", "1.0.0", "^0.1", &[]), wasm);
            // Flip one byte inside the component's tar entry.
            let mut tampered = good.clone();
            let at = tampered.windows(4).position(|w| w == b"\0asm").unwrap() + 100;
            tampered[at] ^= 0x01;
            let (c, message) = code(install(&app, &tampered).await);
            assert_eq!(c, "module_package_refused");
            assert!(message.contains("signature"), "{message}");

            let unsigned = package::pack::<&str, &[u8]>(
                &manifest("unsigned", "1.0.0", "^0.1", &[]),
                wasm,
                &[],
            )
            .unwrap();
            let e = install(&app, &unsigned).await.unwrap_err();
            assert_eq!(e.code().as_str(), "module_package_refused");
            assert!(
                e.to_string().contains("unsigned") || e.to_string().contains("not signed"),
                "{e}"
            );
            let mut dev = app.state.config().clone();
            dev.dev = true;
            registry::install_package(
                app.state.db(),
                app.state.modules(),
                &dev,
                &unsigned,
                app.state.now_ms(),
            )
            .await
            .expect("--dev accepts unsigned packages");

            let stranger = Publisher {
                key: trust::generate_signing_key(),
            };
            let (c, _) = code(
                install(
                    &app,
                    &stranger.package(&manifest("stranger", "1.0.0", "^0.1", &[]), wasm),
                )
                .await,
            );
            assert_eq!(c, "module_package_refused");
            assert!(registry::list(app.state.db(), app.state.modules())
                .await
                .unwrap()
                .iter()
                .all(|m| m.id != "stranger" && m.id != "signed"));
        }
    );

    both!(
        dependency_problems_are_refused_each_with_its_code_naming_modules_and_versions,
        |app| {
            let acme = Publisher::trusted(&app).await;
            let (_, wasm) = kontor_runtime::bundled::HELLO;
            let p = |id: &str, version: &str, api: &str, deps: &[(&str, &str, bool)]| {
                acme.package(&manifest(id, version, api, deps), wasm)
            };
            install(&app, &p("base", "1.4.0", "^0.1", &[]))
                .await
                .unwrap();

            let (c, m) = code(
                install(
                    &app,
                    &p("needy", "1.0.0", "^0.1", &[("billing", "^1", false)]),
                )
                .await,
            );
            assert_eq!(c, "module_dependency_missing");
            assert!(m.contains("needy") && m.contains("billing ^1"), "{m}");

            let (c, m) =
                code(install(&app, &p("picky", "1.0.0", "^0.1", &[("base", "^2", false)])).await);
            assert_eq!(c, "module_dependency_incompatible");
            assert!(m.contains("base ^2") && m.contains("1.4.0"), "{m}");

            let (c, m) = code(install(&app, &p("future", "1.0.0", "^0.5", &[])).await);
            assert_eq!(c, "module_api_mismatch");
            assert!(m.contains("^0.5") && m.contains("0.1.0"), "{m}");

            install(&app, &p("cyc-a", "1.0.0", "^0.1", &[("cyc-b", "^1", true)]))
                .await
                .unwrap();
            let (c, m) = code(
                install(
                    &app,
                    &p("cyc-b", "1.0.0", "^0.1", &[("cyc-a", "^1", false)]),
                )
                .await,
            );
            assert_eq!(c, "module_dependency_cycle");
            assert!(m.contains("cyc-b → cyc-a → cyc-b"), "{m}");

            install(
                &app,
                &p("addon", "1.0.0", "^0.1", &[("base", "^1.4", false)]),
            )
            .await
            .unwrap();
            let now = app.state.now_ms();
            let e = registry::disable(app.state.db(), app.state.modules(), "base", now)
                .await
                .unwrap_err();
            assert_eq!(e.code().as_str(), "module_has_dependents");
            assert!(e.to_string().contains("addon 1.0.0"), "{e}");
            let e = registry::uninstall(app.state.db(), app.state.modules(), "base", false, now)
                .await
                .unwrap_err();
            assert_eq!(e.code().as_str(), "module_has_dependents");
            let (c, m) = code(install(&app, &p("base", "1.3.0", "^0.1", &[])).await);
            assert_eq!(
                c, "module_dependency_incompatible",
                "a downgrade that breaks addon: {m}"
            );
            assert!(m.contains("addon") && m.contains("1.3.0"), "{m}");
            // Once addon is gone, base may go too.
            registry::uninstall(app.state.db(), app.state.modules(), "addon", false, now)
                .await
                .unwrap();
            registry::disable(app.state.db(), app.state.modules(), "base", now)
                .await
                .unwrap();
        }
    );
}

both!(
    a_delivery_that_keeps_failing_goes_dead_visible_and_replayable,
    |app| {
        install_faults(&app).await;
        let (status, _) = app
            .call(
                Method::GET,
                "/api/v1/faults/emit?name=boom.fail",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        for _ in 0..6 {
            drain(&app).await;
            app.clock.advance(time::Duration::hours(2));
        }
        let (status, dead) = app
            .call(
                Method::GET,
                "/api/v1/jobs?status=dead",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{dead}");
        let dead = dead.as_array().unwrap();
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0]["kind"], "module.event.deliver");
        assert_eq!(dead[0]["attempts"], 5);
        assert!(
            dead[0]["last_error"]
                .as_str()
                .unwrap()
                .contains("failing on purpose"),
            "{dead:?}"
        );
        let id = dead[0]["id"].as_str().unwrap();

        let staff = app.user(&app.owner, "staff", None).await;
        let (status, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/jobs/{id}/replay"),
                Some(&staff),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app
            .call(
                Method::POST,
                &format!("/api/v1/jobs/{id}/replay"),
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let (_, queued) = app
            .call(
                Method::GET,
                "/api/v1/jobs?status=queued",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(queued[0]["id"], id);
        assert_eq!(queued[0]["attempts"], 0);
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/v1/jobs/{id}/replay"),
                Some(&app.owner),
                None,
            )
            .await;
        assert_error(status, &body, 404, "not_found");
    }
);

both!(the_http_request_hook_refuses_and_fails_closed, |app| {
    install_faults(&app).await;
    let (status, _) = app
        .call(Method::GET, "/api/v1/customers", Some(&app.owner), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the hook lets ordinary requests pass"
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/customers?x=/blocked",
            Some(&app.owner),
            None,
        )
        .await;
    // The query is not part of the path the hook sees: still allowed.
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .call(Method::GET, "/api/v1/blocked/thing", Some(&app.owner), None)
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("blocked by the faults module"));
    let (status, body) = app
        .call(Method::GET, "/api/v1/explode", Some(&app.owner), None)
        .await;
    assert_error(status, &body, 403, "forbidden");
    assert_eq!(
        body["error"]["details"]["module"], "faults",
        "a broken security module refuses, never opens the door"
    );
    let (status, _) = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "unauthenticated requests are not filtered"
    );
});

// Scale-out: a second process on the same database follows what the first
// one installs and disables — on PostgreSQL at once through LISTEN/NOTIFY,
// and on both engines through `sync::reconcile` (what the poll runs).
both!(a_second_process_follows_module_registry_changes, |app| {
    use kontor::modules::sync;
    let other = kontor::web::AppState::new(
        app.state.db().clone(),
        app.state.config().clone(),
        app.clock.clone(),
    )
    .unwrap();
    let db = app.state.db();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = tokio::spawn(sync::run(
        db.clone(),
        other.modules().clone(),
        app.state.config().database_url.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    // Wait until `cond` holds for the other process (the notification
    // path), for at most 5 s; SQLite has no notifications: reconcile,
    // as its poll would.
    let until = |cond: fn(&kontor::web::AppState) -> bool| {
        let other = other.clone();
        async move {
            if db.backend() == kontor::db::Backend::Sqlite {
                sync::reconcile(db, other.modules()).await.unwrap();
            }
            for _ in 0..500 {
                if cond(&other) {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            false
        }
    };
    // The listener needs a moment to subscribe before the first change.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    install_hello(&app).await;
    assert!(
        until(|s| s.modules().get("hello").is_some()).await,
        "the other process loads what this one installed"
    );
    registry::disable(db, app.state.modules(), "hello", app.state.now_ms())
        .await
        .unwrap();
    assert!(
        until(|s| s.modules().get("hello").is_none()).await,
        "and unloads what this one disabled"
    );
    assert_eq!(
        sync::reconcile(db, other.modules()).await.unwrap(),
        0,
        "nothing left to change"
    );
    let _ = stop_tx.send(());
    follower.await.unwrap();
});

both!(
    a_package_declaring_a_route_its_code_does_not_handle_is_refused_at_install,
    |app| {
        let (text, wasm) = kontor_runtime::bundled::HELLO;
        let promised =
            format!("{text}\n[[routes]]\nmethod = \"DELETE\"\npath = \"/greeting/{{id}}\"\n");
        let manifest = Manifest::parse("module.toml", &promised).unwrap();
        let candidate = registry::Candidate {
            manifest: &manifest,
            component: wasm,
            source: Source::Bundled,
            package: None,
        };
        let err = registry::install(
            app.state.db(),
            app.state.modules(),
            app.mode,
            candidate,
            app.state.now_ms(),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("module hello")
                && text.contains("DELETE /greeting/{id}")
                && text.contains("no handler"),
            "{text}"
        );
        assert!(matches!(
            err,
            kontor::Error::Api {
                code: kontor::error::Code::ModulePackageRefused,
                ..
            }
        ));
        // Nothing was installed.
        let installed = registry::list(app.state.db(), app.state.modules())
            .await
            .unwrap();
        assert!(installed.iter().all(|m| m.id != "hello"));
    }
);
