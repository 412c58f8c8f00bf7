//! Outbound HTTP (`http` capability) with the real `fetch` test guest
//! (`modules/testing/fetch`) against a small HTTP server started in the
//! test on 127.0.0.1: a request works when the capability is declared and
//! accepted, the host is on the manifest's allow-list and — for a private
//! address — an administrator opted in; everything else is refused with a
//! reason, before a connection is made (the server counts what reaches it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use kontor::modules::registry;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::install_built;
use crate::both;
use crate::common::{assert_error, TestApp};

/// The host's response body cap (`OutboundLimits::default()`).
const CAP: usize = 4 * 1024 * 1024;

/// A test HTTP server on 127.0.0.1 that counts the requests reaching it.
struct Server {
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Server {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = |hits: &Arc<AtomicUsize>| {
            let hits = hits.clone();
            axum::middleware::from_fn(move |req, next: axum::middleware::Next| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    next.run(req).await
                }
            })
        };
        let app = Router::new()
            .route(
                "/hello",
                get(|| async { ([("x-test", "from-server")], "hi from the test server") }),
            )
            .route(
                "/echo",
                post(|headers: axum::http::HeaderMap, body: String| async move {
                    let got = headers
                        .get("x-test")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    format!("{got}: {body}")
                }),
            )
            .route(
                "/redirect",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/hello")], "") }),
            )
            // Declared too large up front (content-length).
            .route("/big", get(|| async { vec![b'x'; CAP + 1] }))
            // Too large only as it streams (no content-length).
            .route(
                "/big-stream",
                get(|| async {
                    let chunk = bytes_chunk();
                    let chunks = (0..(CAP / chunk.len() + 2))
                        .map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
                    Body::from_stream(futures::stream::iter(chunks)).into_response()
                }),
            )
            .layer(counted(&hits));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Server { address, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn bytes_chunk() -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b'y'; 64 * 1024])
}

/// The fetch guest's manifest, as written.
fn fetch_manifest() -> String {
    kontor_runtime::test_guest_manifest("fetch").unwrap()
}

/// Install the fetch guest under `manifest` (as if bundled: what it
/// declares is accepted) and entitle the owner's tenant.
async fn install_fetch(app: &TestApp, manifest: &str) {
    install_built(app, manifest, &kontor_runtime::test_guest("fetch").unwrap()).await;
}

/// Ask the guest to GET `url`; its report (`{status, body}` or `{error}`).
async fn fetch(app: &TestApp, url: &str) -> Value {
    let encoded: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/fetch/fetch?url={encoded}"),
            Some(&app.owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The refusal the guest was told, asserting it was one.
fn denied(report: &Value) -> String {
    assert_eq!(report["error"]["kind"], "denied", "{report}");
    report["error"]["message"].as_str().unwrap().to_string()
}

/// Set the administrator's outbound settings of fetch over the API.
async fn set_outbound(app: &TestApp, settings: Value) -> (StatusCode, Value) {
    app.call(
        Method::PUT,
        "/api/v1/modules/fetch/outbound",
        Some(&app.owner),
        Some(settings),
    )
    .await
}

both!(
    self_hosted,
    a_request_reaches_an_allowed_local_server_once_an_admin_opts_in_to_loopback,
    |app| {
        let server = Server::start().await;
        install_fetch(&app, &fetch_manifest()).await;

        // Declared, accepted, on the allow-list — but 127.0.0.1 is loopback.
        let e = denied(&fetch(&app, &server.url("/hello")).await);
        assert!(e.contains("127.0.0.1, a loopback address"), "{e}");
        assert!(e.contains("private_hosts"), "{e}");
        assert_eq!(server.hits(), 0, "a refused request never connects");

        let (status, view) = app
            .call(
                Method::GET,
                "/api/v1/modules/fetch/outbound",
                Some(&app.owner),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["allowed_outbound_hosts"][0], "http://127.0.0.1:*");
        assert_eq!(view["private_hosts"], json!([]));
        assert_eq!(view["insecure_tls_hosts"], json!([]));

        let (status, view) =
            set_outbound(&app, json!({ "private_hosts": ["http://127.0.0.1:*"] })).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["private_hosts"], json!(["http://127.0.0.1:*"]));
        let audit: Vec<String> = sqlx::query_scalar(
            "SELECT data FROM audit_events WHERE action = 'module.outbound.updated' AND target_id = 'fetch'",
        )
        .fetch_all(app.state.db().pool())
        .await
        .unwrap();
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert!(audit[0].contains("http://127.0.0.1:*"), "{audit:?}");

        // The module's admin page shows the hosts and the opt-in.
        let admin = crate::ui::Browser::login(&app, &app.owner.email).await;
        let (status, page) = admin.get("/modules").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let row = page
            .split(r#"<tr id="module-fetch">"#)
            .nth(1)
            .and_then(|r| r.split("</tr>").next())
            .unwrap_or_else(|| panic!("no row for fetch: {page}"));
        assert!(row.contains("https://*.example.com"), "{row}");
        assert!(
            row.contains("Privates Netz erlaubt für: http://127.0.0.1:*"),
            "{row}"
        );

        let report = fetch(&app, &server.url("/hello")).await;
        assert_eq!(report["status"], 200, "{report}");
        assert_eq!(report["body"], "hi from the test server", "{report}");
        assert_eq!(report["x_test"], "from-server", "{report}");
        assert_eq!(server.hits(), 1);

        // A body and a header go out; a redirect comes back as it is.
        let encoded: String =
            url::form_urlencoded::byte_serialize(server.url("/echo").as_bytes()).collect();
        let res = app
            .raw(
                Method::POST,
                &format!("/api/v1/fetch/fetch?url={encoded}"),
                Some(&app.owner),
            )
            .body("ping")
            .send()
            .await
            .unwrap();
        let report: Value = res.json().await.unwrap();
        assert_eq!(report["body"], "from-module: ping", "{report}");
        let report = fetch(&app, &server.url("/redirect")).await;
        assert_eq!(report["status"], 302, "{report}");
        assert_eq!(server.hits(), 3);

        // The opt-in names 127.0.0.1, not every name that resolves to it.
        let e = denied(
            &fetch(
                &app,
                &format!("http://localhost:{}/hello", server.address.port()),
            )
            .await,
        );
        assert!(e.contains("a loopback address"), "{e}");
        assert_eq!(server.hits(), 3);

        // Withdrawn: refused again from the next call.
        let (status, _) = set_outbound(&app, json!({})).await;
        assert_eq!(status, StatusCode::OK);
        denied(&fetch(&app, &server.url("/hello")).await);
        assert_eq!(server.hits(), 3);
    }
);

both!(
    self_hosted,
    private_link_local_and_local_ipv6_addresses_are_refused_without_an_admins_opt_in,
    |app| {
        let server = Server::start().await;
        install_fetch(&app, &fetch_manifest()).await;
        let port = server.address.port();
        for (url, class) in [
            (
                "http://10.1.2.3/".to_string(),
                "10.1.2.3, a private address",
            ),
            (
                "http://169.254.169.254/latest/meta-data/".to_string(),
                "169.254.169.254, a link-local address",
            ),
            (
                format!("http://[::1]:{port}/hello"),
                "::1, a loopback address",
            ),
            (
                format!("http://[::ffff:127.0.0.1]:{port}/hello"),
                "a loopback address",
            ),
            ("http://[fd00::1]/".to_string(), "fd00::1, a unique local"),
            (
                "http://[fe80::1]/".to_string(),
                "fe80::1, a link-local address",
            ),
            // A name is checked by the addresses it resolves to.
            (
                format!("http://localhost:{port}/hello"),
                "a loopback address",
            ),
        ] {
            let e = denied(&fetch(&app, &url).await);
            assert!(e.contains(class), "{url}: {e}");
        }
        assert_eq!(server.hits(), 0);
    }
);

both!(
    self_hosted,
    hosts_outside_the_manifests_allow_list_are_refused_whatever_an_admin_opens,
    |app| {
        let server = Server::start().await;
        install_fetch(&app, &fetch_manifest()).await;
        // An administrator's list only opens private addresses of hosts the
        // manifest allows; it never widens the allow-list.
        let (status, body) = set_outbound(
            &app,
            json!({ "private_hosts": ["*://*:*"], "insecure_tls_hosts": ["https://*:*"] }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let port = server.address.port();
        for url in [
            format!("http://127.0.0.2:{port}/hello"),
            "https://example.org/".to_string(),
            "https://example.com/".to_string(),
            "http://api.example.com/".to_string(),
            "http://10.1.2.3:8080/".to_string(),
        ] {
            let e = denied(&fetch(&app, &url).await);
            assert!(
                e.contains("is not in the module's allowed_outbound_hosts"),
                "{url}: {e}"
            );
            assert!(e.contains("http://127.0.0.1:*"), "the list is named: {e}");
        }
        assert_eq!(server.hits(), 0);
    }
);

both!(
    self_hosted,
    outbound_http_is_refused_when_not_declared_or_not_accepted,
    |app| {
        let server = Server::start().await;
        install_fetch(&app, &fetch_manifest()).await;
        set_outbound(&app, json!({ "private_hosts": ["http://127.0.0.1:*"] })).await;

        // Declared, but the administrator withdrew it.
        registry::accept_capabilities(
            app.state.db(),
            "fetch",
            &Default::default(),
            app.state.now_ms(),
        )
        .await
        .unwrap();
        let e = denied(&fetch(&app, &server.url("/hello")).await);
        assert!(
            e.contains("module `fetch` may not use the capability `http`"),
            "{e}"
        );
        assert!(e.contains("has not accepted it"), "{e}");

        // Not declared at all (a new version without the capability).
        let text = fetch_manifest().replacen("version = \"0.1.0\"", "version = \"0.2.0\"", 1);
        let start = text.find("capabilities = [\"http\"]").unwrap();
        let end = start + text[start..].find("]\n\n").unwrap() + 2;
        let undeclared = format!("{}{}", &text[..start], &text[end..]);
        assert!(
            !undeclared.contains("allowed_outbound_hosts"),
            "{undeclared}"
        );
        install_fetch(&app, &undeclared).await;
        let e = denied(&fetch(&app, &server.url("/hello")).await);
        assert!(e.contains("its manifest does not declare it"), "{e}");
        assert_eq!(server.hits(), 0);
    }
);

both!(
    self_hosted,
    responses_over_the_size_cap_are_refused,
    |app| {
        let server = Server::start().await;
        install_fetch(&app, &fetch_manifest()).await;
        set_outbound(&app, json!({ "private_hosts": ["http://127.0.0.1:*"] })).await;
        for path in ["/big", "/big-stream"] {
            let report = fetch(&app, &server.url(path)).await;
            assert_eq!(report["error"]["kind"], "too_large", "{path}: {report}");
        }
        assert_eq!(server.hits(), 2);
    }
);

both!(
    self_hosted,
    outbound_settings_are_validated_and_only_for_installed_modules,
    |app| {
        install_fetch(&app, &fetch_manifest()).await;
        let (status, body) = set_outbound(
            &app,
            json!({ "private_hosts": ["http://10.0.0.5", "10.0.0.6"] }),
        )
        .await;
        assert_error(status, &body, 422, "validation_failed");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("private_hosts[1]: `10.0.0.6` has no scheme"),
            "{body}"
        );
        let (status, body) = app
            .call(
                Method::PUT,
                "/api/v1/modules/nope/outbound",
                Some(&app.owner),
                Some(json!({})),
            )
            .await;
        assert_error(status, &body, 404, "module_not_found");
        let (status, body) = set_outbound(&app, json!({ "private": [] })).await;
        assert_eq!(status.as_u16(), 422, "{body}");
    }
);
