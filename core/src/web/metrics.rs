//! Prometheus metrics at `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use super::AppState;

/// The metrics of one host (a registry per host, so tests do not share counters).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    queue_depth: IntGauge,
}

impl Metrics {
    /// Register the metrics.
    pub fn new() -> crate::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "kontor_http_requests_total",
                "HTTP requests by method, route and status",
            ),
            &["method", "route", "status"],
        )
        .map_err(crate::Error::internal)?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "kontor_http_request_duration_seconds",
                "HTTP request latency by method and route",
            ),
            &["method", "route"],
        )
        .map_err(crate::Error::internal)?;
        let queue_depth = IntGauge::new("kontor_job_queue_depth", "Jobs queued or running")
            .map_err(crate::Error::internal)?;
        registry
            .register(Box::new(requests.clone()))
            .map_err(crate::Error::internal)?;
        registry
            .register(Box::new(latency.clone()))
            .map_err(crate::Error::internal)?;
        registry
            .register(Box::new(queue_depth.clone()))
            .map_err(crate::Error::internal)?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            queue_depth,
        })
    }

    /// Record one request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, route])
            .observe(seconds);
    }
}

async fn metrics(State(state): State<AppState>) -> crate::Result<impl IntoResponse> {
    let depth = crate::jobs::depth(state.db()).await?;
    state.metrics().queue_depth.set(depth);
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&state.metrics().registry.gather(), &mut out)
        .map_err(crate::Error::internal)?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}

/// `GET /metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}
