//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;

/// `GET /health`: the process answers.
async fn live() -> impl IntoResponse {
    Json(json!({ "status": "ok", "version": crate::release::version() }))
}

/// `GET /health/ready`: the database answers, migrations are applied, and
/// how deep the job queue is.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let db_ok = sqlx::query_scalar::<_, i64>("SELECT 1")
        .fetch_one(state.db().pool())
        .await
        .is_ok();
    let migrations = db_ok && state.db().migrations_applied().await.unwrap_or(false);
    let depth = if db_ok {
        crate::jobs::depth(state.db()).await.ok()
    } else {
        None
    };
    let ready = db_ok && migrations;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "version": crate::release::version(),
            "checks": {
                "database": db_ok,
                "migrations": migrations,
                "job_queue_depth": depth,
            }
        })),
    )
}

/// Health routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(live))
        .route("/health/ready", get(ready))
}
