//! The server-rendered UI (placeholder until the UI shell lands).

use axum::Router;

use super::AppState;

/// Templates and translations.
#[derive(Debug)]
pub struct Ui;

impl Ui {
    /// Load the embedded templates.
    pub fn load() -> crate::Result<Self> {
        Ok(Ui)
    }
}

/// UI routes.
pub fn router() -> Router<AppState> {
    Router::new()
}
