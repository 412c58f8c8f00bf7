//! The REST API under `/api/v1`, one router per area.

pub mod audit;
pub mod auth;
pub mod customers;
pub mod jobs;
pub mod license;
pub mod mail;
pub mod module_outbound;
pub mod module_secrets;
pub mod module_settings;
pub mod modules;
pub mod roles;
pub mod settings;
pub mod subscriptions;
pub mod users;

use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use crate::error::{Code, Error};

/// Every API area, merged.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(roles::router())
        .merge(customers::router())
        .merge(jobs::router())
        .merge(license::router())
        .merge(mail::router())
        .merge(settings::router())
        .merge(modules::router())
        .merge(module_outbound::router())
        .merge(module_secrets::router())
        .merge(module_settings::router())
        .merge(audit::router())
        .merge(subscriptions::router())
}

/// Unknown paths get the JSON error body too.
pub async fn fallback(uri: axum::http::Uri) -> Error {
    Error::new(Code::NotFound, format!("no route for {}", uri.path()))
}
