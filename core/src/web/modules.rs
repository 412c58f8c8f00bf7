//! Module routes: `/api/v1/{module-id}/...` calls the module's
//! `handle-http` after the host authenticated the caller, checked the
//! route's permission and the tenant's entitlement. A module that is
//! read-only for the tenant (its license expired) still answers GET and
//! HEAD, so its data can be seen and exported; other methods are refused
//! with `license_expired`.

use crate::modules::caps::CallContext;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use kontor_runtime::call::{HttpRequest, Principal as ModulePrincipal};

use super::AppState;
use crate::auth::Principal;
use crate::error::{Code, Error, Result};
use crate::modules::entitlements::Access;
use crate::modules::host::Loaded;
use crate::modules::manifest::RouteDecl;

/// Largest request body a module route takes.
pub const MAX_BODY: usize = 1024 * 1024;

/// Headers a module never sees: credentials stay with the host.
const HIDDEN_HEADERS: &[&str] = &[
    "cookie",
    "authorization",
    "x-csrf-token",
    "proxy-authorization",
];
/// Headers a module may set on its response.
const ALLOWED_RESPONSE_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "etag",
    "last-modified",
    "location",
    "content-disposition",
];

/// Module API routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/{module}/{*rest}", any(call_route))
}

/// The module `id` if it is loaded and the caller's tenant is entitled to
/// it, with what the tenant may do (read-only: GET only).
pub(crate) async fn visible_module(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<(Arc<Loaded>, Access)> {
    let module = state
        .modules()
        .get(id)
        .ok_or_else(|| Error::new(Code::NotFound, format!("no module or route `{id}`")))?;
    let access = crate::modules::entitlements::check(
        state.db(),
        state.licensing(),
        &who.tenant_id,
        &module.manifest,
        state.now_ms(),
    )
    .await?;
    Ok((module, access))
}

/// The request a module receives: no tenant, no credentials.
pub(crate) fn module_request(
    who: &Principal,
    method: &str,
    path: &str,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> HttpRequest {
    let mut permissions: Vec<String> = who.permissions.iter().cloned().collect();
    permissions.sort();
    HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers,
        body,
        principal: Some(ModulePrincipal {
            user_id: who.user_id.to_string(),
            role: who.role.as_str().to_string(),
            permissions,
            locale: who.locale.clone().unwrap_or_else(|| "de".into()),
        }),
    }
}

/// Match `method path` against the module's declared routes; `{name}`
/// segments match any one segment.
pub fn match_route<'m>(routes: &'m [RouteDecl], method: &str, path: &str) -> Option<&'m RouteDecl> {
    let parts: Vec<&str> = path.split('/').collect();
    routes.iter().find(|r| {
        if r.method != method {
            return false;
        }
        let pattern: Vec<&str> = r.path.split('/').collect();
        pattern.len() == parts.len()
            && pattern
                .iter()
                .zip(&parts)
                .all(|(p, s)| (p.starts_with('{') && p.ends_with('}') && !s.is_empty()) || p == s)
    })
}

async fn call_route(
    State(state): State<AppState>,
    who: Principal,
    method: Method,
    Path((module_id, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let (module, access) = visible_module(&state, &who, &module_id).await?;
    let path = format!("/{rest}");
    let route = match_route(&module.manifest.routes, method.as_str(), &path).ok_or_else(|| {
        Error::new(
            Code::NotFound,
            format!("module {module_id} has no route {method} {path}"),
        )
    })?;
    if let Some(p) = &route.permission {
        who.require(p)?;
    }
    if !matches!(method, Method::GET | Method::HEAD) {
        access.check_write()?;
    }
    let body: Bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Error::new(
            Code::PayloadTooLarge,
            format!("module routes take at most {MAX_BODY} bytes"),
        )
    })?;
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| !HIDDEN_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    let req = module_request(
        &who,
        method.as_str(),
        &path,
        query.unwrap_or_default(),
        headers,
        body.to_vec(),
    );
    let context = CallContext::from(&who).under(&access);
    let res = state.modules().handle_http(&module, context, req).await?;
    let mut response = (
        StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        res.body,
    )
        .into_response();
    for (name, value) in res.headers {
        let lower = name.to_ascii_lowercase();
        if !ALLOWED_RESPONSE_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(lower.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(n, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> RouteDecl {
        RouteDecl {
            method: method.into(),
            path: path.into(),
            permission: None,
        }
    }

    #[test]
    fn routes_match_by_method_and_segments() {
        let routes = vec![
            route("GET", "/tickets"),
            route("GET", "/tickets/{id}"),
            route("POST", "/tickets"),
        ];
        assert_eq!(
            match_route(&routes, "GET", "/tickets").map(|r| r.path.as_str()),
            Some("/tickets")
        );
        assert_eq!(
            match_route(&routes, "GET", "/tickets/42").map(|r| r.path.as_str()),
            Some("/tickets/{id}")
        );
        assert_eq!(
            match_route(&routes, "POST", "/tickets").map(|r| r.method.as_str()),
            Some("POST")
        );
        assert!(match_route(&routes, "DELETE", "/tickets/42").is_none());
        assert!(match_route(&routes, "GET", "/tickets/42/x").is_none());
        assert!(match_route(&routes, "GET", "/tickets/").is_none());
    }
}
