//! `/api/v1/modules/{module_id}/secrets`: secrets an administrator sets for
//! a module in this tenant. Values go in and never come out: the list shows
//! names and dates, and no answer, error or log line repeats a value.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::modules::tenant_module;
use crate::auth::Principal;
use crate::error::{Code, Error, ErrorBody, Result};
use crate::modules::secrets::{self, SecretInfo, SecretValue};
use crate::web::extract::ApiJson;
use crate::web::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets))
        .routes(routes!(set_secret, remove_secret))
}

/// A secret's new value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    /// The value (at most 8 KiB); stored encrypted, never shown again.
    pub value: String,
}

/// The body as a secret value. Parsed here rather than by the JSON
/// extractor, whose refusals quote what they could not read: a malformed
/// body gets one fixed message that repeats nothing of it.
fn secret_body(body: &[u8]) -> Result<SecretValue> {
    serde_json::from_slice::<SecretInput>(body)
        .map(|b| SecretValue::new(b.value))
        .map_err(|_| {
            Error::new(
                Code::InvalidBody,
                "send the secret as JSON: {\"value\": \"...\"}",
            )
        })
}

/// The module's declared secrets: names, descriptions and whether (and
/// when) each is set — never a value.
#[utoipa::path(get, path = "/modules/{module_id}/secrets", tag = "modules",
    params(("module_id" = String, Path, description = "Module id")),
    responses((status = 200, body = Vec<SecretInfo>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_secrets(
    State(state): State<AppState>,
    who: Principal,
    Path(module_id): Path<String>,
) -> Result<ApiJson<Vec<SecretInfo>>> {
    who.require("modules.manage")?;
    let manifest = tenant_module(&state, &who, &module_id).await?;
    Ok(ApiJson(
        secrets::list(state.db(), &who.tenant_id, &manifest).await?,
    ))
}

/// Set (or replace) a secret the module declares. Audited without its value.
#[utoipa::path(put, path = "/modules/{module_id}/secrets/{name}", tag = "modules",
    request_body = SecretInput,
    params(("module_id" = String, Path, description = "Module id"),
        ("name" = String, Path, description = "Secret name, as the manifest declares it")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn set_secret(
    State(state): State<AppState>,
    who: Principal,
    Path((module_id, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    who.require("modules.manage")?;
    let manifest = tenant_module(&state, &who, &module_id).await?;
    let value = secret_body(&body)?;
    secrets::set(
        state.db(),
        state.modules().secret_keys(),
        &who,
        &manifest,
        &name,
        &value,
        state.now_ms(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a secret; the module reads none until it is set again.
#[utoipa::path(delete, path = "/modules/{module_id}/secrets/{name}", tag = "modules",
    params(("module_id" = String, Path, description = "Module id"),
        ("name" = String, Path, description = "Secret name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_secret(
    State(state): State<AppState>,
    who: Principal,
    Path((module_id, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    who.require("modules.manage")?;
    let manifest = tenant_module(&state, &who, &module_id).await?;
    secrets::remove(state.db(), &who, &manifest, &name, state.now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_secret_body_is_refused_without_repeating_it() {
        assert_eq!(
            secret_body(br#"{"value": "s3cr3t"}"#).unwrap().expose(),
            "s3cr3t"
        );
        for body in [
            &br#"{"valeu": "s3cr3t"}"#[..],
            br#"{"value": ["s3cr3t"]}"#,
            br#"{"value": "s3cr3t""#,
            b"s3cr3t",
        ] {
            let e = secret_body(body).unwrap_err();
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
            assert_eq!(e.code(), Code::InvalidBody);
        }
    }
}
