//! `/setup`: the first-run wizard needs the setup token, creates the
//! administrator and base settings, and closes once someone exists.

use std::sync::Arc;

use kontor::clock::{SharedClock, SystemClock};
use kontor::db::testing::TestDb;
use kontor::db::Backend;
use kontor::web::AppState;

async fn wizard(backend: Backend) {
    let Some(tdb) = TestDb::new(backend).await else {
        return;
    };
    let mut env = std::collections::HashMap::new();
    env.insert("KONTOR_DATABASE_URL".to_string(), tdb.url.clone());
    env.insert(
        "KONTOR_DATA_DIR".to_string(),
        std::env::temp_dir().display().to_string(),
    );
    let config = kontor::config::Config::from_sources(None, &env).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let state = AppState::new(tdb.db.clone(), config, clock).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(kontor::web::serve(listener, state, std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let status = |path: String| {
        let http = http.clone();
        async move { http.get(path).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(format!("{base}/setup")).await,
        403,
        "no token, no wizard"
    );
    assert_eq!(status(format!("{base}/setup?token=guess")).await, 403);
    let token = kontor::web::ui::setup::issue_token();
    let page = http
        .get(format!("{base}/setup?token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("name=\"password\""));

    let form = [
        ("token", token.as_str()),
        ("company", "Wizard AG"),
        ("email", "wizard@example.com"),
        ("name", "Wizard"),
        ("password", "wizard password 1"),
        ("language", "en"),
        ("timezone", "Europe/Zurich"),
        ("currency", "CHF"),
    ];
    let forged = http
        .post(format!("{base}/setup"))
        .form(&[
            ("token", "forged"),
            ("email", "evil@example.com"),
            ("password", "evil password 1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a forged token claims nothing");
    let done = http
        .post(format!("{base}/setup"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let login = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(
            &serde_json::json!({ "email": "wizard@example.com", "password": "wizard password 1" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200, "the new administrator logs in");
    let again = http
        .post(format!("{base}/setup"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        404,
        "the wizard is closed once someone exists"
    );
    tdb.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_wizard_needs_the_token_and_closes_after_use_sqlite() {
    wizard(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_wizard_needs_the_token_and_closes_after_use_postgres() {
    wizard(Backend::Postgres).await;
}
