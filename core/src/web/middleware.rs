//! Middleware: request ids, security headers, metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Header carrying the request id (taken from the client or made up).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The tracing span of a request, carrying its request id.
pub fn make_span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", request_id = %id, method = %req.method(), uri = %req.uri().path())
}

/// Security headers on every response.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    if state.config().secure_cookies() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}

/// Count requests and time them, labelled by route pattern (not raw path,
/// so ids do not explode the label set).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    state.metrics().observe(
        &method,
        &route,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}

/// The `http.request` filter hook: modules (an IP allow-list, a WAF) see
/// every authenticated request before routing and may refuse it. The hook
/// is fail-closed: a module that fails refuses the request. Requests
/// without a principal are not filtered (no tenant to run the hook for).
pub async fn http_request_filter(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.modules().filters("http.request").is_empty() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let principal = match super::extract::principal_of(&parts, &state).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Some((who, _)) = principal {
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|ci| ci.0.ip().to_string());
        let payload = serde_json::json!({
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "ip": ip,
            "user_id": who.user_id.as_str(),
            "role": who.role.as_str(),
        });
        let verdict = crate::modules::filters::run(
            state.db(),
            state.modules(),
            &who.tenant_id,
            "http.request",
            payload,
            state.now_ms(),
        )
        .await;
        if let Err(e) = verdict {
            let e = match e.code() {
                // A refusal by the hook is a refusal of the request.
                crate::error::Code::ValidationFailed => {
                    crate::Error::new(crate::error::Code::Forbidden, e.to_string())
                }
                _ => e,
            };
            return e.into_response();
        }
    }
    next.run(Request::from_parts(parts, body)).await
}
