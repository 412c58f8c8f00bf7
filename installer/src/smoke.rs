//! The smoke test: serve the installation for a moment — in this process,
//! with the same library, config file and database the real server uses —
//! and check `/health/ready` and the login page over HTTP.

use std::sync::Arc;

use kontor::clock::{SharedClock, SystemClock};
use kontor::config::Config;
use kontor::db::Db;
use kontor::web::AppState;

/// Check a server already answering at `base` (`http://host:port`).
pub async fn check_running(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()?;
    let ready = client.get(format!("{base}/health/ready")).send().await?;
    let status = ready.status();
    let body = ready.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("/health/ready answered {status}: {body}");
    }
    let login = client.get(format!("{base}/login")).send().await?;
    let status = login.status();
    let page = login.text().await.unwrap_or_default();
    if !status.is_success() || !page.contains("password") {
        anyhow::bail!("the login page answered {status} without a login form");
    }
    Ok(())
}

/// Start the server in this process on `config.listen`, check it, stop it.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let db = Db::connect(&config.database_url).await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let listen = config.listen;
    let state = AppState::new(db.clone(), config, clock)?;
    kontor::modules::registry::load_enabled(&db, state.modules()).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kontor::web::serve(listener, state, async {
        let _ = stopped.await;
    }));
    let result = check_running(&format!("http://{addr}")).await;
    let _ = stop.send(());
    let _ = server.await;
    db.close().await;
    result
}
