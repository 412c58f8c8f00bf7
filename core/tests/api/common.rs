//! The test host: a real `kontor` server on 127.0.0.1 with a fresh database.

use std::sync::Arc;

use kontor::clock::{ManualClock, SharedClock};
use kontor::config::{Config, Mode};
use kontor::db::testing::TestDb;
use kontor::db::Backend;
use kontor::web::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Run a test body on SQLite and on PostgreSQL, on a SaaS host — or, with
/// `self_hosted,` before the name, on a self-hosted one (one tenant; the
/// installation's license applies). rustfmt formats calls with the comma;
/// `self_hosted name` (without) is accepted too.
#[macro_export]
macro_rules! both {
    ($name:ident, |$app:ident| $body:block) => {
        $crate::both!(@in kontor::config::Mode::Saas, $name, |$app| $body);
    };
    (self_hosted, $name:ident, |$app:ident| $body:block) => {
        $crate::both!(@in kontor::config::Mode::SelfHosted, $name, |$app| $body);
    };
    (self_hosted $name:ident, |$app:ident| $body:block) => {
        $crate::both!(@in kontor::config::Mode::SelfHosted, $name, |$app| $body);
    };
    (@in $mode:expr, $name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($app: $crate::common::TestApp) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::common::run_in(kontor::db::Backend::Sqlite, $mode, |app| body(app)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::common::run_in(kontor::db::Backend::Postgres, $mode, |app| body(app)).await;
            }
        }
    };
}

/// A running host.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The state behind the server (database, clock...).
    pub state: AppState,
    /// The clock tests move.
    pub clock: Arc<ManualClock>,
    /// A client without cookies.
    pub http: reqwest::Client,
    /// The owner of the first tenant: (tenant slug, bearer token).
    pub owner: Session,
    /// Mode of this host.
    pub mode: Mode,
    /// The SMTP relay of this host: a sink that records every message.
    pub mail: Arc<kontor_smtp_sink::SmtpSink>,
}

/// A logged-in caller.
#[derive(Clone, Debug)]
pub struct Session {
    /// Bearer token.
    pub token: String,
    /// User id.
    pub user_id: String,
    /// Password (for logging in again).
    pub email: String,
}

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

/// The payment webhook secret of every test host.
pub const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";

/// The operator token of every test host.
pub const OPERATOR_TOKEN: &str = "operator-token-for-tests-0123456789";

/// Start a host on `backend` in `mode` ([`both!`] runs most tests in SaaS
/// mode, so they can make several tenants), run `test`, clean up. Skips
/// PostgreSQL when it is not there (outside CI).
pub async fn run_in<F, Fut>(backend: Backend, mode: Mode, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let Some(tdb) = TestDb::new(backend).await else {
        return;
    };
    let app = TestApp::start(&tdb, mode).await;
    test(app).await;
    tdb.cleanup().await;
}

impl TestApp {
    /// Serve `tdb` and create a first tenant with an owner.
    pub async fn start(tdb: &TestDb, mode: Mode) -> TestApp {
        let mut env = std::collections::HashMap::new();
        env.insert("KONTOR_DATABASE_URL".to_string(), tdb.url.clone());
        env.insert(
            "KONTOR_MODE".to_string(),
            if mode == Mode::Saas {
                "saas"
            } else {
                "self-hosted"
            }
            .to_string(),
        );
        env.insert(
            "KONTOR_DATA_DIR".to_string(),
            std::env::temp_dir().display().to_string(),
        );
        env.insert(
            "KONTOR_PAYMENT_WEBHOOK_SECRET".to_string(),
            WEBHOOK_SECRET.to_string(),
        );
        env.insert(
            "KONTOR_OPERATOR_TOKEN".to_string(),
            OPERATOR_TOKEN.to_string(),
        );
        let mail = Arc::new(kontor_smtp_sink::SmtpSink::start().expect("smtp sink"));
        env.insert("KONTOR_SMTP_HOST".to_string(), "127.0.0.1".to_string());
        env.insert("KONTOR_SMTP_PORT".to_string(), mail.port().to_string());
        env.insert("KONTOR_SMTP_TLS".to_string(), "none".to_string());
        env.insert(
            "KONTOR_MAIL_FROM".to_string(),
            "Kontor Test <kontor@example.test>".to_string(),
        );
        let config = Config::from_sources(None, &env).expect("config");
        let clock = Arc::new(ManualClock::new(
            time::macros::datetime!(2026-03-02 09:00 UTC),
        ));
        let shared: SharedClock = clock.clone();
        let state = AppState::new(tdb.db.clone(), config, shared).expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let serve_state = state.clone();
        tokio::spawn(async move {
            kontor::web::serve(listener, serve_state, std::future::pending())
                .await
                .expect("serve");
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut app = TestApp {
            base,
            state,
            clock,
            http,
            owner: Session {
                token: String::new(),
                user_id: String::new(),
                email: String::new(),
            },
            mode,
            mail,
        };
        app.owner = app.new_tenant("Tenant A").await;
        app
    }

    /// A new tenant with its owner, logged in.
    pub async fn new_tenant(&self, name: &str) -> Session {
        let email = format!("owner-{}@example.com", uuid::Uuid::new_v4().simple());
        let owner = kontor::auth::users::NewUser {
            email: email.clone(),
            name: format!("Owner of {name}"),
            role: kontor::auth::Role::Owner,
            password: PASSWORD.into(),
            locale: None,
            customer_id: None,
        };
        kontor::tenants::create(
            self.state.db(),
            self.state.permissions(),
            self.mode,
            name,
            owner,
            self.state.now_ms(),
        )
        .await
        .expect("create tenant");
        self.login(&email, PASSWORD).await
    }

    /// Log in; panics unless it works.
    pub async fn login(&self, email: &str, password: &str) -> Session {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login of {email}: {body}");
        Session {
            token: body["token"].as_str().unwrap().to_string(),
            user_id: body["user"]["id"].as_str().unwrap().to_string(),
            email: email.to_string(),
        }
    }

    /// Create a user in the caller's tenant and log them in.
    pub async fn user(&self, admin: &Session, role: &str, customer_id: Option<&str>) -> Session {
        let email = format!("{role}-{}@example.com", uuid::Uuid::new_v4().simple());
        let mut body = json!({"email": email, "name": format!("A {role}"), "role": role, "password": PASSWORD});
        if let Some(c) = customer_id {
            body["customer_id"] = json!(c);
        }
        let (status, created) = self
            .call(Method::POST, "/api/v1/users", Some(admin), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        self.login(&email, PASSWORD).await
    }

    /// Create a customer; returns its id.
    pub async fn customer(&self, who: &Session, body: Value) -> String {
        let (status, c) = self
            .call(Method::POST, "/api/v1/customers", Some(who), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
        c["id"].as_str().unwrap().to_string()
    }

    /// A JSON call; returns status and body (Null when empty, a string when not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<&Session>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(s) = who {
            req = req.bearer_auth(&s.token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A raw request builder with the caller's token.
    pub fn raw(
        &self,
        method: Method,
        path: &str,
        who: Option<&Session>,
    ) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match who {
            Some(s) => req.bearer_auth(&s.token),
            None => req,
        }
    }
}

/// Assert an error body with `code` and the status that goes with it.
pub fn assert_error(status: StatusCode, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status.as_u16(), expected_status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "body: {body}"
    );
}
