//! The OpenAPI 3 document, generated from the handlers' annotations.
//!
//! The committed copy (`docs/openapi.json`) is compared with this in the
//! tests; `kontor openapi > docs/openapi.json` refreshes it.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::{api, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kontor API",
        description = "REST API of Kontor, the modular CRM for service and hosting businesses. \
            Authenticate with `Authorization: Bearer <token>` (a session token from login or a personal API token). \
            Every error has the body `{\"error\": {\"code\", \"message\", \"details\"}}`.",
        license(name = "AGPL-3.0-or-later")
    ),
    modifiers(&Security),
    // Module routes are the modules' own and not listed; the signed-hook
    // entry point is the host's (a plain axum route for its `{*path}`).
    paths(super::modules::call_hook),
    components(schemas(crate::error::ErrorBody)),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(
                super::extract::SESSION_COOKIE,
            ))),
        );
    }
}

/// The API routes with their documentation.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", api::router())
}

/// The generated document.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, doc) = api_router().split_for_parts();
    doc
}

/// The document as the committed file holds it (pretty JSON, trailing newline).
pub fn document_json() -> String {
    let mut s = document().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// `GET /api/openapi.json`.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}
