//! `/api/v1/jobs`: the tenant's background work that failed for good
//! (dead), and replaying it — failures are visible, never silent.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{Error, ErrorBody, Result};
use crate::jobs::{self, JobInfo};
use crate::web::extract::{ApiJson, ApiQuery};
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(replay_job))
}

/// Filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// queued, running, done or dead (default dead).
    pub status: Option<String>,
    /// At most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// Jobs of this tenant (event deliveries, module jobs), by status.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = Vec<JobInfo>), (status = 403, body = ErrorBody)))]
async fn list_jobs(
    State(state): State<AppState>,
    who: Principal,
    ApiQuery(q): ApiQuery<JobQuery>,
) -> Result<ApiJson<Vec<JobInfo>>> {
    who.require("jobs.manage")?;
    let status = q.status.unwrap_or_else(|| "dead".into());
    if !["queued", "running", "done", "dead"].contains(&status.as_str()) {
        return Err(Error::invalid(
            "status",
            "expected queued, running, done or dead",
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("limit", "must be between 1 and 500"));
    }
    Ok(ApiJson(
        jobs::list_for_tenant(state.db(), &who.tenant_id, &status, limit).await?,
    ))
}

/// Run a dead job again with fresh attempts.
#[utoipa::path(post, path = "/jobs/{id}/replay", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 202), (status = 404, body = ErrorBody)))]
async fn replay_job(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    who.require("jobs.manage")?;
    if jobs::replay(state.db(), &who.tenant_id, &id, state.now_ms()).await? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(Error::not_found("dead job"))
    }
}
