//! `/api/v1/settings`: settings of the tenant.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ErrorBody, Result};
use crate::settings;
use crate::web::extract::ApiJson;
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_settings))
        .routes(routes!(put_setting))
}

/// A new value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingValue {
    /// The value, typed as the setting declares.
    #[schema(value_type = Object)]
    pub value: Value,
}

/// Every setting, defaults filled in.
#[utoipa::path(get, path = "/settings", tag = "settings",
    responses((status = 200, body = Object), (status = 403, body = ErrorBody)))]
async fn get_settings(
    State(state): State<AppState>,
    who: Principal,
) -> Result<ApiJson<BTreeMap<String, Value>>> {
    who.require("settings.read")?;
    Ok(ApiJson(settings::all(state.db(), &who.tenant_id).await?))
}

/// Change one setting; the value is validated against its declared type.
#[utoipa::path(put, path = "/settings/{key}", tag = "settings", request_body = SettingValue,
    params(("key" = String, Path, description = "Setting key, e.g. `locale.timezone`")),
    responses((status = 200, body = Object), (status = 422, body = ErrorBody)))]
async fn put_setting(
    State(state): State<AppState>,
    who: Principal,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<SettingValue>,
) -> Result<ApiJson<BTreeMap<String, Value>>> {
    who.require("settings.manage")?;
    settings::set(
        state.db(),
        &who.tenant_id,
        &key,
        &body.value,
        state.now_ms(),
    )
    .await?;
    Ok(ApiJson(settings::all(state.db(), &who.tenant_id).await?))
}
