//! Host capabilities with the real `caps` test guest (`modules/testing/caps`):
//! each one works when declared and accepted and is refused otherwise, with
//! an error that names the module and the capability. Secrets never show
//! up in an answer, an error, the database in clear, or the log.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use kontor::config::Mode;
use kontor::db::testing::TestDb;
use kontor::db::Backend;
use kontor::modules::capabilities::Capability;
use kontor::modules::{package, registry, trust};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{drain, entitle, install_built};
use crate::both;
use crate::common::{assert_error, Session, TestApp};

/// The caps guest's manifest, as written.
pub fn caps_manifest() -> String {
    kontor_runtime::test_guest_manifest("caps").unwrap()
}

/// The caps guest installed under `manifest` (as if bundled: whatever it
/// declares is accepted) and entitled for the owner's tenant.
pub async fn install_caps(app: &TestApp, manifest: &str) {
    install_built(app, manifest, &kontor_runtime::test_guest("caps").unwrap()).await;
}

/// The caps manifest as version `version` (installing the same version
/// twice is refused).
fn caps_version(text: &str, version: &str) -> String {
    text.replacen(
        "version = \"0.1.0\"",
        &format!("version = \"{version}\""),
        1,
    )
}

/// The caps manifest without one capability (and what needs it).
fn caps_without(capability: &str) -> String {
    let text = caps_manifest();
    let text = text.replace(
        "capabilities = [\"secrets\", \"crm\"]",
        &format!(
            "capabilities = [{}]",
            ["secrets", "crm"]
                .iter()
                .filter(|c| **c != capability)
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    if capability == "secrets" {
        let start = text.find("[[secrets]]").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        return format!("{}{}", &text[..start], &text[end + 2..]);
    }
    text
}

/// GET `path` as `who`.
async fn get(app: &TestApp, who: &Session, path: &str) -> (StatusCode, Value) {
    app.call(Method::GET, path, Some(who), None).await
}

/// The message of an error body (empty when there is none).
fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// Set which capabilities of caps an administrator accepts.
async fn accept(app: &TestApp, accepted: &[Capability]) -> Result<(), kontor::Error> {
    let accepted: BTreeSet<Capability> = accepted.iter().copied().collect();
    registry::accept_capabilities(app.state.db(), "caps", &accepted, app.state.now_ms()).await
}

/// Everything the process logs (our crates down to trace), kept in memory
/// so a test can search it. Installed once for the whole test binary.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,kontor=trace,tower_http=trace,sqlx=trace",
            ))
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .try_init()
            .expect("the log capture is the only subscriber of this test binary");
        buffer
    })
    .clone()
}

fn logs_contain(logs: &Arc<Mutex<Vec<u8>>>, needle: &str) -> bool {
    let bytes = logs.lock().unwrap();
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Records every answer a test saw, to search them all at the end.
#[derive(Default)]
struct Answers(Vec<String>);

impl Answers {
    async fn call(
        &mut self,
        app: &TestApp,
        method: Method,
        path: &str,
        who: &Session,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, value) = app.call(method, path, Some(who), body).await;
        self.0.push(value.to_string());
        (status, value)
    }

    async fn get(&mut self, app: &TestApp, path: &str, who: &Session) -> (StatusCode, Value) {
        self.call(app, Method::GET, path, who, None).await
    }

    /// A module route with a raw text body.
    async fn post_text(
        &mut self,
        app: &TestApp,
        path: &str,
        who: &Session,
        body: &str,
    ) -> (StatusCode, Value) {
        let res = app
            .raw(Method::POST, path, Some(who))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        self.0.push(text.clone());
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

both!(
    secrets_are_sealed_read_by_their_module_and_never_shown_again,
    |app| {
        let logs = captured_logs();
        let secret = format!("kontor-secret-{}", uuid::Uuid::new_v4().simple());
        install_caps(&app, &caps_manifest()).await;
        let owner = app.owner.clone();
        let mut seen = Answers::default();

        let (status, list) = seen.get(&app, "/api/v1/modules/caps/secrets", &owner).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(
            list,
            json!([{"name": "api_token", "description": "Token of the provider's API", "set": false, "updated_at": null}])
        );
        let (status, body) = seen
            .call(
                &app,
                Method::PUT,
                "/api/v1/modules/caps/secrets/api_token",
                &owner,
                Some(json!({ "value": secret })),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (_, list) = seen.get(&app, "/api/v1/modules/caps/secrets", &owner).await;
        assert_eq!(list[0]["set"], true);
        assert!(list[0]["updated_at"].is_string(), "{list}");

        // The module reads exactly the value that was set.
        let (status, body) = seen
            .post_text(
                &app,
                "/api/v1/caps/secret/matches?name=api_token",
                &owner,
                &secret,
            )
            .await;
        assert_eq!((status, body), (StatusCode::OK, json!({ "matches": true })));
        let (_, body) = seen
            .post_text(
                &app,
                "/api/v1/caps/secret/matches?name=api_token",
                &owner,
                "guess",
            )
            .await;
        assert_eq!(body, json!({ "matches": false }));

        // At rest: ciphertext only, nothing in clear in any column.
        let rows: Vec<(String, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT key_id, nonce, ciphertext FROM module_secrets")
                .fetch_all(app.state.db().pool())
                .await
                .unwrap();
        assert_eq!(rows.len(), 1);
        let (key_id, nonce, ciphertext) = &rows[0];
        assert_eq!(nonce.len(), 24);
        assert!(!ciphertext
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()));
        let audit: Vec<(String, String)> = sqlx::query_as(
            "SELECT action, data FROM audit_events WHERE action LIKE 'module.secret.%' ORDER BY created_at, id",
        )
        .fetch_all(app.state.db().pool())
        .await
        .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].0, "module.secret.set");
        assert!(audit[0].1.contains("api_token") && !audit[0].1.contains(&secret));

        // Refusals around the secret name what is wrong and repeat nothing.
        for (path, body) in [
            (
                "/api/v1/modules/caps/secrets/undeclared",
                json!({ "value": secret }),
            ),
            (
                "/api/v1/modules/caps/secrets/api_token",
                json!({ "valeu": secret }),
            ),
            (
                "/api/v1/modules/caps/secrets/api_token",
                json!({ "value": [secret] }),
            ),
            (
                "/api/v1/modules/caps/secrets/api_token",
                json!({ "value": secret.repeat(400) }),
            ),
        ] {
            let (status, res) = seen.call(&app, Method::PUT, path, &owner, Some(body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {res}");
        }
        let (status, res) = seen
            .get(&app, "/api/v1/caps/secret?name=undeclared", &owner)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            message(&res).contains("declares no secret `undeclared`"),
            "{res}"
        );
        // A value sealed with another key is reported as such, not opened.
        sqlx::query("UPDATE module_secrets SET key_id = 'feedfacefeedface'")
            .execute(app.state.db().pool())
            .await
            .unwrap();
        let (status, res) = seen
            .get(&app, "/api/v1/caps/secret?name=api_token", &owner)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(res.to_string().contains("feedfacefeedface"), "{res}");
        sqlx::query("UPDATE module_secrets SET key_id = $1")
            .bind(key_id)
            .execute(app.state.db().pool())
            .await
            .unwrap();

        // Only administrators set them; each tenant has its own.
        let staff = app.user(&owner, "staff", None).await;
        let (status, res) = seen
            .call(
                &app,
                Method::PUT,
                "/api/v1/modules/caps/secrets/api_token",
                &staff,
                Some(json!({ "value": "staff-was-here" })),
            )
            .await;
        assert_error(status, &res, 403, "forbidden");
        let b = app.new_tenant("Tenant B").await;
        entitle(&app, &b, "caps").await;
        let (_, list) = seen.get(&app, "/api/v1/modules/caps/secrets", &b).await;
        assert_eq!(list[0]["set"], false, "tenant B sees nothing of A's secret");
        let (_, res) = seen
            .get(&app, "/api/v1/caps/secret?name=api_token", &b)
            .await;
        assert_eq!(res, json!({ "set": false }));

        // Removed once; the second time there is nothing to remove.
        for expected in [StatusCode::NO_CONTENT, StatusCode::NOT_FOUND] {
            let (status, res) = seen
                .call(
                    &app,
                    Method::DELETE,
                    "/api/v1/modules/caps/secrets/api_token",
                    &owner,
                    None,
                )
                .await;
            assert_eq!(status, expected, "{res}");
        }
        let (_, res) = seen
            .get(&app, "/api/v1/caps/secret?name=api_token", &owner)
            .await;
        assert_eq!(res, json!({ "set": false }));

        // Not one answer, and not one log line, carried the value.
        for answer in &seen.0 {
            assert!(!answer.contains(&secret), "an answer leaked it: {answer}");
        }
        let probe = format!("log-capture-probe-{}", uuid::Uuid::new_v4().simple());
        tracing::error!(target: "kontor::test", "{probe}");
        assert!(logs_contain(&logs, &probe), "the log capture works");
        assert!(
            logs_contain(&logs, "/api/v1/modules/caps/secrets/api_token"),
            "requests were logged, so their absence below means something"
        );
        assert!(!logs_contain(&logs, &secret), "the log has the secret");
    }
);

both!(
    secrets_are_refused_when_not_declared_or_not_accepted,
    |app| {
        install_caps(&app, &caps_without("secrets")).await;
        let (status, res) = get(&app, &app.owner, "/api/v1/caps/secret?name=api_token").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{res}");
        let text = message(&res);
        assert!(
            text.contains("module `caps` may not use the capability `secrets`")
                && text.contains("does not declare"),
            "{text}"
        );
        // And the API has nothing to set for it.
        let (status, res) = app
            .call(
                Method::PUT,
                "/api/v1/modules/caps/secrets/api_token",
                Some(&app.owner),
                Some(json!({ "value": "x" })),
            )
            .await;
        assert_error(status, &res, 422, "validation_failed");

        // Declared, but the administrator withdraws it.
        install_caps(&app, &caps_version(&caps_manifest(), "0.1.1")).await;
        accept(&app, &[Capability::Crm]).await.unwrap();
        let (_, res) = get(&app, &app.owner, "/api/v1/caps/secret?name=api_token").await;
        assert!(
            message(&res).contains("an administrator has not accepted it"),
            "{res}"
        );
        accept(&app, &[Capability::Crm, Capability::Secrets])
            .await
            .unwrap();
        let (status, res) = get(&app, &app.owner, "/api/v1/caps/secret?name=api_token").await;
        assert_eq!(
            (status, res),
            (StatusCode::OK, json!({ "set": false })),
            "accepting applies at once"
        );
    }
);

async fn timeline(app: &TestApp, customer: &str) -> Vec<Value> {
    let path = format!("/api/v1/customers/{customer}/timeline");
    let (status, body) = get(app, &app.owner, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

both!(crm_access_is_what_the_caller_may_see, |app| {
    install_caps(&app, &caps_manifest()).await;
    let owner = app.owner.clone();
    let reseller = app.user(&owner, "reseller", None).await;
    let alpha = app
        .customer(
            &owner,
            json!({"company": "Alpha AG", "tags": ["vip"], "custom_fields": {"plan": "gold"}}),
        )
        .await;
    let beta = app
        .customer(
            &owner,
            json!({"company": "Beta GmbH", "reseller_id": reseller.user_id}),
        )
        .await;
    app.call(
        Method::POST,
        &format!("/api/v1/customers/{alpha}/contacts"),
        Some(&owner),
        Some(json!({"name": "Ann Alpha", "is_primary": true})),
    )
    .await;
    let b = app.new_tenant("Tenant B").await;
    let gamma = app.customer(&b, json!({"company": "Gamma SA"})).await;

    // The owner sees the tenant's customers, by name, paged.
    let (status, page) = get(&app, &owner, "/api/v1/caps/customers").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["names"], json!(["Alpha AG", "Beta GmbH"]));
    let (_, first) = get(&app, &owner, "/api/v1/caps/customers?limit=1").await;
    assert_eq!(first["ids"], json!([alpha]));
    let cursor = first["next"].as_str().unwrap().to_string();
    let (_, second) = get(
        &app,
        &owner,
        &format!("/api/v1/caps/customers?limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(second["ids"], json!([beta]));
    let (_, found) = get(&app, &owner, "/api/v1/caps/customers?q=beta").await;
    assert_eq!(found["ids"], json!([beta]));
    let (_, one) = get(&app, &owner, &format!("/api/v1/caps/customer?id={alpha}")).await;
    assert_eq!(one["customer"]["display_name"], "Alpha AG");
    assert_eq!(one["customer"]["tags"], json!(["vip"]));
    assert_eq!(one["customer"]["custom_fields"], json!({"plan": "gold"}));
    assert!(
        one["customer"]["created_at"].as_i64().unwrap() > 1_700_000_000_000,
        "{one}"
    );
    let (_, contacts) = get(
        &app,
        &owner,
        &format!("/api/v1/caps/contacts?customer={alpha}"),
    )
    .await;
    assert_eq!(contacts["contacts"], json!(["Ann Alpha"]));
    let (_, users) = get(&app, &owner, "/api/v1/caps/users").await;
    let users = users["users"].as_array().unwrap();
    assert!(users
        .iter()
        .any(|u| u["id"] == owner.user_id.as_str() && u["role"] == "owner" && u["active"] == true));
    assert!(users.iter().any(|u| u["role"] == "reseller"));
    // Never another tenant's.
    let (_, other) = get(&app, &owner, &format!("/api/v1/caps/customer?id={gamma}")).await;
    assert_eq!(other["customer"], Value::Null);
    let (status, res) = get(
        &app,
        &owner,
        &format!("/api/v1/caps/contacts?customer={gamma}"),
    )
    .await;
    assert_error(status, &res, 404, "not_found");

    // A reseller sees their customers only, and no users.
    let (_, page) = get(&app, &reseller, "/api/v1/caps/customers").await;
    assert_eq!(page["ids"], json!([beta]));
    let (_, hidden) = get(
        &app,
        &reseller,
        &format!("/api/v1/caps/customer?id={alpha}"),
    )
    .await;
    assert_eq!(hidden["customer"], Value::Null);
    let (status, res) = get(&app, &reseller, "/api/v1/caps/users").await;
    assert_error(status, &res, 403, "forbidden");
    assert!(message(&res).contains("users.read"), "{res}");
    // A portal user sees their own record.
    let portal = app.user(&owner, "customer", Some(&alpha)).await;
    let (_, page) = get(&app, &portal, "/api/v1/caps/customers").await;
    assert_eq!(page["ids"], json!([alpha]));

    // Writes: as the user, on customers the user may see.
    let post = |who: &Session, path: String, body: &'static str| {
        app.raw(Method::POST, &path, Some(who)).body(body).send()
    };
    let res = post(
        &owner,
        format!("/api/v1/caps/timeline?customer={alpha}&kind=report.sent"),
        "Report sent",
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let entry_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = post(
        &owner,
        format!("/api/v1/caps/timeline?customer={alpha}&kind=Bad Kind"),
        "x",
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("kind"));
    let res = post(
        &reseller,
        format!("/api/v1/caps/timeline?customer={alpha}&kind=peek"),
        "x",
    )
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "outside the reseller's scope"
    );
    let res = post(
        &reseller,
        format!("/api/v1/caps/note?customer={beta}"),
        "Called the client",
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = post(
        &portal,
        format!("/api/v1/caps/note?customer={alpha}"),
        "Portal note",
    )
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "portal users do not write notes"
    );

    let entries = timeline(&app, &alpha).await;
    let sent = entries
        .iter()
        .find(|e| e["id"] == entry_id.as_str())
        .unwrap();
    assert_eq!(sent["source"], "caps");
    assert_eq!(sent["kind"], "caps.report.sent", "namespaced by the module");
    assert_eq!(sent["summary"], "Report sent");
    assert_eq!(sent["actor_id"], owner.user_id.as_str());
    let (_, notes) = get(&app, &owner, &format!("/api/v1/customers/{beta}/notes")).await;
    assert_eq!(notes[0]["body"], "Called the client");
    assert_eq!(notes[0]["author_id"], reseller.user_id.as_str());
    let noted = timeline(&app, &beta).await;
    assert!(noted
        .iter()
        .any(|e| e["kind"] == "note.added" && e["source"] == "caps"));

    // With no user (the customer.created event), the module acts for the
    // tenant: it sees every customer and writes entries without an actor.
    drain(&app).await;
    for id in [&alpha, &beta] {
        let welcomed: Vec<Value> = timeline(&app, id)
            .await
            .into_iter()
            .filter(|e| e["kind"] == "caps.welcomed")
            .collect();
        assert_eq!(welcomed.len(), 1, "{welcomed:?}");
        assert_eq!(welcomed[0]["actor_id"], Value::Null);
        assert_eq!(welcomed[0]["source"], "caps");
    }
    let (_, b_timeline) = get(&app, &b, &format!("/api/v1/customers/{gamma}/timeline")).await;
    assert!(
        !b_timeline.to_string().contains("caps.welcomed"),
        "tenant B is not entitled: {b_timeline}"
    );
});

both!(modules_create_customers_as_the_api_does, |app| {
    install_caps(&app, &caps_manifest()).await;
    // hello's `customer.before_save` filter refuses the company "Forbidden".
    crate::modules::install_hello(&app).await;
    let owner = app.owner.clone();
    let create = |who: &Session, query: &str| {
        let path = format!("/api/v1/caps/customers/new?{query}");
        let who = who.clone();
        let app = &app;
        async move { app.call(Method::POST, &path, Some(&who), None).await }
    };

    // As the calling user: stored, visible through the API, published.
    let (status, made) = create(
        &owner,
        "company=Modul%20AG&email=info%40modul.example&tags=vip,portal,VIP",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["display_name"], "Modul AG");
    assert_eq!(
        made["tags"],
        json!(["vip", "portal"]),
        "normalised as the API does"
    );
    let id = made["id"].as_str().unwrap().to_string();
    let (status, stored) = get(&app, &owner, &format!("/api/v1/customers/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["company"], "Modul AG");
    assert_eq!(stored["email"], "info@modul.example");
    assert_eq!(stored["tags"], json!(["vip", "portal"]));
    let created: Vec<Value> = timeline(&app, &id)
        .await
        .into_iter()
        .filter(|e| e["kind"] == "customer.created")
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["source"], "caps", "the module is the source");
    assert_eq!(created[0]["actor_id"], owner.user_id.as_str());
    assert_eq!(created[0]["data"]["via"], "module");
    // `customer.created` went out: caps's own event handler welcomes it.
    drain(&app).await;
    assert!(
        timeline(&app, &id)
            .await
            .iter()
            .any(|e| e["kind"] == "caps.welcomed"),
        "the event was published"
    );

    // Refusals name what is wrong; nothing is stored.
    let count = || async {
        let (_, page) = get(&app, &owner, "/api/v1/customers?limit=200").await;
        page["items"].as_array().unwrap().len()
    };
    let before = count().await;
    for (query, field) in [
        ("tags=x", "company"),
        ("company=Bad%20Mail&email=not-an-address", "email"),
        ("company=Twin&email=INFO%40modul.example", "email"),
        ("company=A&phone=call%20me", "phone"),
    ] {
        let (status, res) = create(&owner, query).await;
        assert_error(status, &res, 422, "invalid");
        assert!(message(&res).starts_with(field), "{query}: {res}");
    }
    let (status, res) = create(&owner, "company=Forbidden").await;
    assert_error(status, &res, 422, "invalid");
    assert!(
        message(&res).contains("hello module does not allow"),
        "the filters ran: {res}"
    );
    // A portal user lacks customers.write.
    let portal = app.user(&owner, "customer", Some(&id)).await;
    let (status, res) = create(&portal, "company=Sneaky%20AG").await;
    assert_error(status, &res, 403, "forbidden");
    assert!(message(&res).contains("customers.write"), "{res}");
    assert_eq!(count().await, before);

    // With no user (an event, a job, a signed inbound route) the tenant's
    // system principal creates it: no actor, the module as source.
    let tenant = crate::records::tenant_of(&app, &owner).await;
    let system = kontor::modules::crm_access::system_principal(&tenant, "caps");
    let new = kontor_runtime::host::NewCustomer {
        contact_name: Some("Ada Inbound".into()),
        tags: vec!["inbound".into()],
        ..Default::default()
    };
    let made = kontor::modules::crm_access::create_customer(
        app.state.db(),
        app.state.modules(),
        &system,
        "caps",
        new,
        app.state.now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(made.display_name, "Ada Inbound");
    let entry = timeline(&app, &made.id)
        .await
        .into_iter()
        .find(|e| e["kind"] == "customer.created")
        .unwrap();
    assert_eq!(entry["source"], "caps");
    assert_eq!(entry["actor_id"], Value::Null);
    let (_, stored) = get(&app, &owner, &format!("/api/v1/customers/{}", made.id)).await;
    assert_eq!(stored["tags"], json!(["inbound"]));
});

both!(
    an_erased_customer_is_announced_to_subscribed_modules,
    |app| {
        install_caps(&app, &caps_manifest()).await;
        let owner = app.owner.clone();
        let id = app
            .customer(
                &owner,
                json!({"company": "Erase Me AG", "email": "x@erase.example"}),
            )
            .await;
        let (status, body) = app
            .call(
                Method::POST,
                &format!("/api/v1/customers/{id}/erase"),
                Some(&owner),
                None,
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
        let payloads: Vec<String> =
            sqlx::query_scalar("SELECT payload FROM event_outbox WHERE name = 'customer.erased'")
                .fetch_all(app.state.db().pool())
                .await
                .unwrap();
        assert_eq!(payloads.len(), 1, "{payloads:?}");
        let payload: Value = serde_json::from_str(&payloads[0]).unwrap();
        assert_eq!(payload, json!({ "id": id }), "the id, no personal data");
        // caps subscribes to it: the delivery reaches its handler.
        drain(&app).await;
        assert!(
            timeline(&app, &id)
                .await
                .iter()
                .any(|e| e["kind"] == "caps.anonymised" && e["actor_id"].is_null()),
            "the module received customer.erased"
        );
    }
);

both!(
    crm_access_is_refused_when_not_declared_or_not_accepted,
    |app| {
        install_caps(&app, &caps_without("crm")).await;
        let owner = app.owner.clone();
        let id = app.customer(&owner, json!({"company": "Refused AG"})).await;
        for path in [
            "/api/v1/caps/customers".to_string(),
            format!("/api/v1/caps/customer?id={id}"),
            format!("/api/v1/caps/contacts?customer={id}"),
            "/api/v1/caps/users".to_string(),
            "/api/v1/caps/customers/new?company=Refused%20Too".to_string(),
        ] {
            let (status, res) = get(&app, &owner, &path).await;
            assert_error(status, &res, 403, "denied");
            let text = message(&res);
            assert!(
                text.contains("module `caps` may not use the capability `crm`")
                    && text.contains("capabilities = [\"crm\"]"),
                "{path}: {text}"
            );
        }
        let res = app
            .raw(
                Method::POST,
                &format!("/api/v1/caps/note?customer={id}"),
                Some(&owner),
            )
            .body("no")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        // The event handler (no user) is refused too; the delivery fails with
        // the reason and nothing reaches the timeline.
        drain(&app).await;
        let errors: Vec<Option<String>> =
            sqlx::query_scalar("SELECT last_error FROM jobs WHERE kind = 'module.event.deliver'")
                .fetch_all(app.state.db().pool())
                .await
                .unwrap();
        assert!(
            errors
                .iter()
                .flatten()
                .any(|e| e.contains("may not use the capability `crm`")),
            "{errors:?}"
        );
        assert!(timeline(&app, &id)
            .await
            .iter()
            .all(|e| e["source"] != "caps"));

        // Declared but not accepted.
        install_caps(&app, &caps_version(&caps_manifest(), "0.1.1")).await;
        accept(&app, &[]).await.unwrap();
        for path in [
            "/api/v1/caps/customers",
            "/api/v1/caps/customers/new?company=Nope",
        ] {
            let (status, res) = get(&app, &owner, path).await;
            assert_error(status, &res, 403, "denied");
            assert!(
                message(&res).contains("an administrator has not accepted it"),
                "{res}"
            );
        }
        let (_, page) = get(&app, &owner, "/api/v1/customers").await;
        assert_eq!(
            page["items"].as_array().unwrap().len(),
            1,
            "no module-made customer: {page}"
        );
        let e = accept(&app, &[Capability::Notify]).await.unwrap_err();
        assert!(
            e.to_string()
                .contains("does not request the capability `notify`"),
            "{e}"
        );
    }
);

both!(
    module_settings_are_typed_validated_and_read_by_the_module,
    |app| {
        install_caps(&app, &caps_manifest()).await;
        crate::modules::install_hello(&app).await;
        let owner = app.owner.clone();
        let read = |key: &'static str| {
            let (app, owner) = (&app, owner.clone());
            async move {
                let (status, body) =
                    get(app, &owner, &format!("/api/v1/caps/setting?key={key}")).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body["value"].clone()
            }
        };
        let (status, list) = get(&app, &owner, "/api/v1/modules/caps/settings").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(
            list,
            json!([
                {"key": "greeting", "type": "string", "description": "How the module greets", "default": "Hi", "value": "Hi", "is_set": false},
                {"key": "retries", "type": "number", "description": "How often to retry", "default": 3, "value": 3, "is_set": false},
                {"key": "verbose", "type": "boolean", "description": "Log more", "default": false, "value": false, "is_set": false},
            ])
        );
        assert_eq!(read("greeting").await, "Hi");

        let (status, list) = app
            .call(
                Method::PUT,
                "/api/v1/modules/caps/settings",
                Some(&owner),
                Some(json!({"greeting": "Servus", "retries": 5, "verbose": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(list[0]["value"], "Servus");
        assert_eq!(list[0]["is_set"], true);
        assert_eq!(
            read("greeting").await,
            "Servus",
            "read at once, not after the cache expires"
        );
        assert_eq!(read("retries").await, 5);
        assert_eq!(read("verbose").await, true);
        assert_eq!(read("undeclared").await, Value::Null);

        // Every bad field is named; nothing is stored.
        let (status, res) = app
            .call(
                Method::PUT,
                "/api/v1/modules/caps/settings",
                Some(&owner),
                Some(json!({"greeting": 42, "retries": "many", "colour": "red", "verbose": false})),
            )
            .await;
        assert_error(status, &res, 422, "validation_failed");
        let fields = &res["error"]["details"]["fields"];
        assert_eq!(fields["greeting"], "expected text");
        assert_eq!(fields["retries"], "expected a number");
        assert!(
            fields["colour"]
                .as_str()
                .unwrap()
                .contains("has no setting `colour`"),
            "{res}"
        );
        assert!(fields.get("verbose").is_none());
        assert_eq!(
            read("verbose").await,
            true,
            "the valid field was not stored either"
        );

        // null restores the default.
        app.call(
            Method::PUT,
            "/api/v1/modules/caps/settings",
            Some(&owner),
            Some(json!({"greeting": null})),
        )
        .await;
        assert_eq!(read("greeting").await, "Hi");

        // Staff read, administrators write; each tenant has its own.
        let staff = app.user(&owner, "staff", None).await;
        let (status, _) = get(&app, &staff, "/api/v1/modules/caps/settings").await;
        assert_eq!(status, StatusCode::OK);
        let (status, res) = app
            .call(
                Method::PUT,
                "/api/v1/modules/caps/settings",
                Some(&staff),
                Some(json!({"retries": 1})),
            )
            .await;
        assert_error(status, &res, 403, "forbidden");
        let b = app.new_tenant("Tenant B").await;
        let (status, res) = get(&app, &b, "/api/v1/modules/caps/settings").await;
        assert_error(status, &res, 403, "module_not_entitled");
        let (status, res) = get(&app, &owner, "/api/v1/modules/nosuch/settings").await;
        assert_error(status, &res, 404, "module_not_found");

        // The real hello module greets with what the administrator set.
        app.call(
            Method::PUT,
            "/api/v1/modules/hello/settings",
            Some(&owner),
            Some(json!({"greeting": "Grüezi"})),
        )
        .await;
        let (_, body) = get(&app, &owner, "/api/v1/hello/greeting?name=Ada").await;
        assert_eq!(body, json!({"greeting": "Grüezi, Ada"}));
        let audit: Vec<String> = sqlx::query_scalar(
            "SELECT data FROM audit_events WHERE action = 'module.settings.changed'",
        )
        .fetch_all(app.state.db().pool())
        .await
        .unwrap();
        assert_eq!(audit.len(), 3, "{audit:?}");
    }
);

/// Run `test` on a self-hosted host (module installs are offered there).
async fn self_hosted<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(tdb) = TestDb::new(backend).await else {
        return;
    };
    let app = TestApp::start(&tdb, Mode::SelfHosted).await;
    test(app).await;
    tdb.cleanup().await;
}

/// The caps guest as a signed package of version `version`.
async fn caps_package(app: &TestApp, version: &str) -> Vec<u8> {
    let key = trust::generate_signing_key();
    let public = trust::PublisherKey::new("kontor-tests", &key.verifying_key()).unwrap();
    registry::add_trusted_key(app.state.db(), &public, app.state.now_ms())
        .await
        .unwrap();
    let manifest = caps_version(&caps_manifest(), version);
    let wasm = kontor_runtime::test_guest("caps").unwrap();
    let unsigned = package::pack::<&str, &[u8]>(&manifest, &wasm, &[]).unwrap();
    package::sign(&unsigned, &key).unwrap()
}

async fn install_package(app: &TestApp, query: &str, package: Vec<u8>) -> (StatusCode, Value) {
    let res = app
        .raw(
            Method::POST,
            &format!("/api/v1/modules{query}"),
            Some(&app.owner),
        )
        .header("content-type", "application/octet-stream")
        .body(package)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

/// `PUT /modules/caps/capabilities` as `who`.
async fn put_accepted(app: &TestApp, who: &Session, accepted: &[&str]) -> (StatusCode, Value) {
    let body = json!({ "accepted": accepted });
    let path = "/api/v1/modules/caps/capabilities";
    app.call(Method::PUT, path, Some(who), Some(body)).await
}

async fn package_capabilities_are_shown_and_granted_only_when_accepted(app: TestApp) {
    let owner = app.owner.clone();
    let (status, res) = install_package(
        &app,
        "?accept=secrets,root",
        caps_package(&app, "0.1.0").await,
    )
    .await;
    assert_error(status, &res, 422, "validation_failed");
    assert!(message(&res).contains("`root`"), "{res}");

    let (status, info) = install_package(&app, "", caps_package(&app, "0.1.0").await).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    assert_eq!(
        info["capabilities"],
        json!(["secrets", "crm"]),
        "what it requests"
    );
    assert_eq!(info["accepted_capabilities"], json!([]));
    let (status, res) = get(&app, &owner, "/api/v1/caps/customers").await;
    assert_error(status, &res, 403, "denied");

    let (status, info) = put_accepted(&app, &owner, &["crm"]).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["accepted_capabilities"], json!(["crm"]));
    let (status, _) = get(&app, &owner, "/api/v1/caps/customers").await;
    assert_eq!(status, StatusCode::OK);
    let (status, res) = put_accepted(&app, &owner, &["notify"]).await;
    assert_error(status, &res, 422, "validation_failed");
    let staff = app.user(&owner, "staff", None).await;
    let (status, res) = put_accepted(&app, &staff, &["crm", "secrets"]).await;
    assert_error(status, &res, 403, "forbidden");

    // An upgrade keeps what was accepted and adds what is accepted with it.
    let (status, info) =
        install_package(&app, "?accept=secrets", caps_package(&app, "0.2.0").await).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    assert_eq!(info["accepted_capabilities"], json!(["secrets", "crm"]));
    let (status, res) = get(&app, &owner, "/api/v1/caps/secret?name=api_token").await;
    assert_eq!((status, res), (StatusCode::OK, json!({"set": false})));
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE action LIKE 'module.%' ORDER BY created_at, id",
    )
    .fetch_all(app.state.db().pool())
    .await
    .unwrap();
    assert!(
        actions.contains(&"module.capabilities.accepted".to_string()),
        "{actions:?}"
    );
}

mod self_hosted_packages {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn package_capabilities_are_granted_only_when_accepted_sqlite() {
        self_hosted(
            Backend::Sqlite,
            package_capabilities_are_shown_and_granted_only_when_accepted,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn package_capabilities_are_granted_only_when_accepted_postgres() {
        self_hosted(
            Backend::Postgres,
            package_capabilities_are_shown_and_granted_only_when_accepted,
        )
        .await;
    }
}

both!(
    a_read_only_module_shows_its_data_but_its_get_handlers_cannot_write,
    |app| {
        install_caps(&app, &caps_manifest()).await;
        let owner = app.owner.clone();
        let (status, res) = get(&app, &owner, "/api/v1/caps/visit").await;
        assert_eq!((status, res), (StatusCode::OK, json!({ "visit": 1 })));

        let tenant = crate::records::tenant_of(&app, &owner).await;
        let status_set = kontor::modules::entitlements::set_status(
            app.state.db(),
            &tenant,
            "caps",
            kontor::modules::entitlements::Status::ReadOnly,
            app.state.now_ms(),
        )
        .await
        .unwrap();
        assert!(status_set);
        // Reading still works...
        let (status, _) = get(&app, &owner, "/api/v1/caps/customers").await;
        assert_eq!(status, StatusCode::OK);
        // ...a GET that writes is refused by the host, naming why.
        let (status, res) = get(&app, &owner, "/api/v1/caps/visit").await;
        assert_error(status, &res, 403, "license_expired");
        assert!(message(&res).contains("read-only"), "{res}");
        let (status, res) = get(&app, &owner, "/api/v1/caps/customers/new?company=Late%20AG").await;
        assert_error(status, &res, 403, "forbidden");
        assert!(message(&res).contains("read-only"), "{res}");
        let (_, page) = get(&app, &owner, "/api/v1/customers").await;
        assert_eq!(page["items"], json!([]), "no customer was created");
        // And the sequence did not move: active again, it continues at 2.
        kontor::modules::entitlements::set_status(
            app.state.db(),
            &tenant,
            "caps",
            kontor::modules::entitlements::Status::Active,
            app.state.now_ms(),
        )
        .await
        .unwrap();
        let (status, res) = get(&app, &owner, "/api/v1/caps/visit").await;
        assert_eq!((status, res), (StatusCode::OK, json!({ "visit": 2 })));
    }
);

both!(
    a_module_s_clock_is_the_host_s_clock_and_moves_with_it,
    |app| {
        install_caps(&app, &caps_manifest()).await;
        let owner = app.owner.clone();
        for step in [
            time::Duration::ZERO,
            time::Duration::hours(5),
            time::Duration::minutes(-90),
        ] {
            app.clock.advance(step);
            let (status, body) = get(&app, &owner, "/api/v1/caps/now").await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let now = app.state.now_ms();
            assert_eq!(
            (&body["now_ms"], &body["sdk_now_ms"]),
            (&json!(now), &json!(now)),
            "SystemTime::now() and kontor_sdk::time::now_ms() in the module are the host's clock"
        );
        }
    }
);
