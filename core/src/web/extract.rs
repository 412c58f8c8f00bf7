//! Extractors that turn a request into typed input — and every way that can
//! fail into the one error body.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::AppState;
use crate::auth::principal::{authenticate, AuthMethod};
use crate::auth::Principal;
use crate::error::{Code, Error};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "kontor_session";
/// Header carrying the CSRF token on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Where the credential of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer ...` — not sent by browsers on their own, so no CSRF check.
    Bearer,
    /// The session cookie — browsers attach it to cross-site requests too.
    Cookie,
}

/// The credential of a request, if any.
pub fn credential(parts: &Parts) -> Option<(String, CredentialSource)> {
    if let Some(auth) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))?;
        return Some((token.trim().to_string(), CredentialSource::Bearer));
    }
    cookie(parts, SESSION_COOKIE).map(|t| (t, CredentialSource::Cookie))
}

/// The value of cookie `name`.
pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Authenticate the request; `None` when it carries no valid credential.
pub async fn principal_of(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<(Principal, CredentialSource)>, Error> {
    let Some((token, source)) = credential(parts) else {
        return Ok(None);
    };
    let principal = authenticate(
        state.db(),
        state.permissions(),
        &token,
        state.now_ms(),
        state.config().session_idle_hours,
    )
    .await?;
    Ok(principal.map(|p| (p, source)))
}

/// Compare a presented CSRF token with the session's.
pub fn csrf_matches(principal: &Principal, presented: Option<&str>) -> bool {
    match (&principal.method, presented) {
        (AuthMethod::Session { csrf_token, .. }, Some(p)) => {
            crate::auth::tokens::ct_eq(csrf_token.as_bytes(), p.as_bytes())
        }
        _ => false,
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some((principal, source)) = principal_of(parts, state).await? else {
            return Err(Error::new(
                Code::Unauthenticated,
                "sign in first: send `Authorization: Bearer <token>` or the session cookie",
            ));
        };
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if source == CredentialSource::Cookie && !safe {
            let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !csrf_matches(&principal, presented) {
                return Err(Error::new(
                    Code::CsrfFailed,
                    "cookie-authenticated writes need the `X-CSRF-Token` header of the session",
                ));
            }
        }
        Ok(principal)
    }
}

/// JSON body in, JSON body out, with the core's error body for every
/// rejection: bad syntax is 400 `invalid_json`, a wrong shape (unknown
/// field, wrong type, missing field) 422 `invalid_body`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> Error {
    match r {
        JsonRejection::JsonDataError(e) => {
            let detail = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_else(|| e.body_text());
            Error::new(
                Code::InvalidBody,
                format!("the body does not fit: {detail}"),
            )
            .with_details(serde_json::json!({ "reason": detail }))
        }
        JsonRejection::JsonSyntaxError(e) => {
            let detail = std::error::Error::source(&e)
                .map(ToString::to_string)
                .unwrap_or_else(|| e.body_text());
            Error::new(
                Code::InvalidJson,
                format!("the body is not valid JSON: {detail}"),
            )
        }
        JsonRejection::MissingJsonContentType(_) => Error::new(
            Code::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(e)
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
        {
            Error::new(Code::PayloadTooLarge, "the body is too large")
        }
        other => Error::new(Code::BadRequest, other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query parameters, refused with the core's error body.
#[derive(Debug, Clone, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(Error::new(
                Code::ValidationFailed,
                format!("bad query parameters: {}", e.body_text()),
            )),
            Err(other) => Err(Error::new(Code::BadRequest, other.body_text())),
        }
    }
}

/// The client's IP address: the TCP peer, or — with `trust_proxy` — the
/// address the reverse proxy appended to `X-Forwarded-For`.
#[derive(Debug, Clone)]
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.config().trust_proxy {
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|s| !s.is_empty())
                .map(str::to_string);
            if forwarded.is_some() {
                return Ok(ClientIp(forwarded));
            }
        }
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ci| ci.0.ip().to_string()),
        ))
    }
}
