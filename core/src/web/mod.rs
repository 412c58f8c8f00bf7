//! The HTTP server.
//!
//! * [`api`] — the REST API under `/api/v1`, one router per area;
//! * [`openapi`] — the OpenAPI document, generated from the handlers;
//! * [`ui`] — the server-rendered UI (tera templates, embedded assets);
//! * [`extract`] — the principal, JSON and client-IP extractors;
//! * [`middleware`] — request ids, security headers, metrics;
//! * [`modules`] — module routes under `/api/v1/{module-id}`;
//! * [`health`] — liveness and readiness;
//! * [`metrics`] — Prometheus metrics.

pub mod api;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod modules;
pub mod openapi;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::rate_limit::LoginLimiter;
use crate::auth::roles::PermissionRegistry;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::db::Db;

/// Everything a request handler may need, shared by all requests.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    config: Config,
    clock: SharedClock,
    permissions: PermissionRegistry,
    login_limiter: LoginLimiter,
    metrics: metrics::Metrics,
    ui: ui::Ui,
    modules: crate::modules::host::ModuleHost,
    mailer: crate::mail::Mailer,
}

impl AppState {
    /// Build the state of a host.
    pub fn new(db: Db, config: Config, clock: SharedClock) -> crate::Result<Self> {
        let cache = Some(config.data_dir.join("cache").join("modules"));
        let permissions = PermissionRegistry::default();
        let mailer = crate::mail::Mailer::new(config.smtp.as_ref())
            .map_err(|e| crate::Error::Internal(format!("smtp settings: {e}")))?;
        let modules = crate::modules::host::ModuleHost::new(
            db.clone(),
            clock.clone(),
            permissions.clone(),
            cache,
        )?
        .with_secret_keys(crate::modules::secret_key::SecretKeys::from_config(&config))
        .with_licensing(crate::license::Licensing::from_config(&config))
        .with_mailer(mailer.clone());
        Ok(AppState {
            inner: Arc::new(Inner {
                modules,
                mailer,
                db,
                config,
                clock,
                permissions,
                login_limiter: LoginLimiter::default(),
                metrics: metrics::Metrics::new()?,
                ui: ui::Ui::load()?,
            }),
        })
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }
    /// Now, as stored (Unix ms).
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }
    /// All known permissions.
    pub fn permissions(&self) -> &PermissionRegistry {
        &self.inner.permissions
    }
    /// Login brute-force limits.
    pub fn login_limiter(&self) -> &LoginLimiter {
        &self.inner.login_limiter
    }
    /// Metrics registry.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }
    /// Templates and translations.
    pub fn ui(&self) -> &ui::Ui {
        &self.inner.ui
    }
    /// The loaded modules.
    pub fn modules(&self) -> &crate::modules::host::ModuleHost {
        &self.inner.modules
    }
    /// The SMTP relay e-mail goes through.
    pub fn mailer(&self) -> &crate::mail::Mailer {
        &self.inner.mailer
    }
    /// Every job handler of this host: the core's, the mail outbox's and
    /// the modules'. The worker loop of `kontor serve` runs these.
    pub fn job_handlers(&self) -> crate::jobs::worker::Handlers {
        let db = self.db().clone();
        let clock = self.clock().clone();
        let mut handlers = crate::jobs::worker::Handlers::core(db.clone(), clock.clone());
        crate::mail::outbox::register(
            &mut handlers,
            db.clone(),
            clock.clone(),
            self.mailer().clone(),
        );
        crate::modules::jobs::register(&mut handlers, self.modules().clone(), db, clock);
        handlers
    }
    /// The installation's licensing (the module host's).
    pub fn licensing(&self) -> &crate::license::Licensing {
        self.inner.modules.licensing()
    }
}

/// The whole application: API, UI, health, metrics, with middleware.
pub fn router(state: AppState) -> Router {
    let (api, _) = openapi::api_router().split_for_parts();
    Router::new()
        .merge(api)
        .merge(openapi::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(ui::router())
        .merge(modules::router())
        .fallback(api::fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::http_request_filter,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::security_headers,
        ))
        .layer(PropagateRequestIdLayer::new(middleware::REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(middleware::make_span))
        .layer(SetRequestIdLayer::new(
            middleware::REQUEST_ID,
            MakeRequestUuid,
        ))
        .with_state(state)
}

/// Serve `router(state)` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
