//! Module routes: `/api/v1/{module-id}/...` calls the module's
//! `handle-http` after the host authenticated the caller, checked the
//! route's permission and the tenant's entitlement. A module that is
//! read-only for the tenant (its license expired) still answers GET and
//! HEAD, so its data can be seen and exported; other methods are refused
//! with `license_expired`.
//!
//! Signed hooks — routes whose manifest entry has `signed_by` — are for
//! senders with no user (a mail gateway, a provider's webhook): they are
//! served only at `POST /api/v1/hooks/{tenant-slug}/{module-id}/...`, with
//! no session or token; the `Kontor-Signature` header
//! ([`crate::auth::signature`]), keyed with the tenant's value of the named
//! module secret, proves the sender. A hook never answers on the signed-in
//! path, and a normal route never answers on the hooks path. The module is
//! called for the tenant with no principal, and a read-only module's hooks
//! are refused (every hook is a POST).

use crate::modules::caps::CallContext;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use kontor_runtime::call::{HttpRequest, HttpResponse, Principal as ModulePrincipal};

use super::AppState;
use crate::auth::{signature, Principal};
use crate::error::{Code, Error, Result};
use crate::ids::TenantId;
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

/// Module API routes and signed hooks.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/{module}/{*rest}", any(call_route))
        .route("/api/v1/hooks/{tenant}/{module}/{*path}", post(call_hook))
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
    let access = tenant_access(state, &who.tenant_id, &module).await?;
    Ok((module, access))
}

/// What `tenant` may do with `module`: `module_not_entitled` when nothing.
async fn tenant_access(state: &AppState, tenant: &TenantId, module: &Loaded) -> Result<Access> {
    crate::modules::entitlements::check(
        state.db(),
        state.licensing(),
        tenant,
        &module.manifest,
        state.now_ms(),
    )
    .await
}

/// The request a module receives from a signed-in user: no tenant, no
/// credentials.
pub(crate) fn module_request(
    who: &Principal,
    method: &str,
    path: &str,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> HttpRequest {
    HttpRequest {
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers,
        body,
        principal: Some(module_principal(who)),
    }
}

/// The caller as a module sees it.
fn module_principal(who: &Principal) -> ModulePrincipal {
    let mut permissions: Vec<String> = who.permissions.iter().cloned().collect();
    permissions.sort();
    ModulePrincipal {
        user_id: who.user_id.to_string(),
        role: who.role.as_str().to_string(),
        permissions,
        locale: who.locale.clone().unwrap_or_else(|| "de".into()),
    }
}

/// An incoming request as a module receives it, before anyone is named:
/// the body (at most [`MAX_BODY`] bytes) and the headers that carry no
/// credentials.
async fn incoming(
    method: &Method,
    path: String,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<HttpRequest> {
    let body: Bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Error::new(
            Code::PayloadTooLarge,
            format!("module routes take at most {MAX_BODY} bytes"),
        )
    })?;
    let headers = headers
        .iter()
        .filter(|(name, _)| !HIDDEN_HEADERS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
        })
        .collect();
    Ok(HttpRequest {
        method: method.as_str().to_string(),
        path,
        query: query.unwrap_or_default(),
        headers,
        body: body.to_vec(),
        principal: None,
    })
}

/// Match `method path` against the module's declared routes; `{name}`
/// segments match any one segment. `signed` picks the signed hooks
/// (`signed_by`) or the signed-in user's routes: each is served on its own
/// path only.
pub fn match_route<'m>(
    routes: &'m [RouteDecl],
    signed: bool,
    method: &str,
    path: &str,
) -> Option<&'m RouteDecl> {
    let parts: Vec<&str> = path.split('/').collect();
    routes.iter().find(|r| {
        if r.method != method || r.signed_by.is_some() != signed {
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
    let route =
        match_route(&module.manifest.routes, false, method.as_str(), &path).ok_or_else(|| {
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
    let req = HttpRequest {
        principal: Some(module_principal(&who)),
        ..incoming(&method, path, query, &headers, body).await?
    };
    let context = CallContext::from(&who).under(&access);
    call_module(&state, &module, context, req).await
}

/// A module's signed hook: `POST /api/v1/hooks/{tenant}/{module}/{path}`
/// with no session or token.
///
/// For senders with no user (a mail gateway, a provider's webhook). The
/// route must be declared with `signed_by = "<secret>"` in the module's
/// manifest; the request carries `Kontor-Signature: t=<unix seconds>,v1=<hex
/// HMAC-SHA256(secret, "<t>.<raw body>")>` (several `v1` allowed), keyed
/// with the tenant's value of that module secret, within 5 minutes of the
/// server's clock. The module answers (status, body, its allowed headers)
/// as it would on `/api/v1/{module}/...`, called for the tenant with no
/// user. An unknown tenant, module or hook all answer the same 404.
#[utoipa::path(post, path = "/api/v1/hooks/{tenant}/{module}/{path}", tag = "modules", security(()),
    params(
        ("tenant" = String, Path, description = "The tenant's slug"),
        ("module" = String, Path, description = "The module id"),
        ("path" = String, Path, description = "The hook's path as the manifest declares it, without the leading `/` (may hold several segments)"),
        ("Kontor-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256>"),
    ),
    request_body(content = String, description = "Whatever the module's hook takes (at most 1 MiB), signed as sent"),
    responses(
        (status = 200, description = "The module's answer (any status the module chose)"),
        (status = 400, description = "signature missing, malformed, stale or wrong (`webhook_signature_invalid`); the module was not called", body = crate::error::ErrorBody),
        (status = 403, description = "the tenant is not entitled to the module, or it is read-only (`license_expired`)", body = crate::error::ErrorBody),
        (status = 404, description = "no such tenant, module or signed hook", body = crate::error::ErrorBody),
        (status = 503, description = "an administrator has not set the secret that signs the hook (`hook_not_configured`)", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn call_hook(
    State(state): State<AppState>,
    Path((tenant_slug, module_id, rest)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let path = format!("/{rest}");
    // The same answer whatever is missing: a stranger learns nothing of
    // which tenants or modules exist.
    let unknown = || {
        Error::new(
            Code::NotFound,
            format!(
                "no signed hook POST {path} of module `{module_id}` for tenant `{tenant_slug}`"
            ),
        )
    };
    let module = state.modules().get(&module_id).ok_or_else(unknown)?;
    let tenant = crate::tenants::id_by_slug(state.db(), &tenant_slug)
        .await?
        .ok_or_else(unknown)?;
    let route = match_route(&module.manifest.routes, true, "POST", &path).ok_or_else(unknown)?;
    let secret_name = route.signed_by.as_deref().unwrap_or_default();
    let req = incoming(&Method::POST, path.clone(), query, &headers, body).await?;
    let secret = crate::modules::secrets::read(
        state.db(),
        state.modules().secret_keys(),
        &tenant,
        &module.manifest,
        secret_name,
    )
    .await?
    .ok_or_else(|| {
        Error::new(
            Code::HookNotConfigured,
            format!(
                "module `{module_id}` cannot check this hook: the tenant's administrator has not set its secret `{secret_name}` (the module's secrets in the admin UI, or PUT /api/v1/modules/{module_id}/secrets/{secret_name})"
            ),
        )
        .with_details(serde_json::json!({ "secret": secret_name }))
    })?;
    let header = headers.get(signature::HEADER).and_then(|v| v.to_str().ok());
    signature::verify(
        secret.expose().as_bytes(),
        header,
        &req.body,
        state.now_ms(),
    )
    .map_err(|r| {
        r.error(&format!(
            "module secret `{secret_name}` of module `{module_id}`"
        ))
    })?;
    // Only a sender who holds the secret learns about the entitlement.
    let access = tenant_access(&state, &tenant, &module).await?;
    access.check_write()?;
    let context = CallContext::from(&tenant).under(&access);
    call_module(&state, &module, context, req).await
}

/// Call the module's `handle-http` and answer with its status, body and
/// the headers a module may set.
async fn call_module(
    state: &AppState,
    module: &Arc<Loaded>,
    context: CallContext,
    req: HttpRequest,
) -> Result<Response> {
    let res = state.modules().handle_http(module, context, req).await?;
    Ok(module_response(res))
}

fn module_response(res: HttpResponse) -> Response {
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
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> RouteDecl {
        RouteDecl {
            method: method.into(),
            path: path.into(),
            permission: None,
            signed_by: None,
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
            match_route(&routes, false, "GET", "/tickets").map(|r| r.path.as_str()),
            Some("/tickets")
        );
        assert_eq!(
            match_route(&routes, false, "GET", "/tickets/42").map(|r| r.path.as_str()),
            Some("/tickets/{id}")
        );
        assert_eq!(
            match_route(&routes, false, "POST", "/tickets").map(|r| r.method.as_str()),
            Some("POST")
        );
        assert!(match_route(&routes, false, "DELETE", "/tickets/42").is_none());
        assert!(match_route(&routes, false, "GET", "/tickets/42/x").is_none());
        assert!(match_route(&routes, false, "GET", "/tickets/").is_none());
    }

    #[test]
    fn signed_hooks_and_user_routes_match_only_on_their_own_path() {
        let mut hook = route("POST", "/inbound");
        hook.signed_by = Some("gateway".into());
        let routes = vec![hook, route("POST", "/tickets")];
        assert!(match_route(&routes, false, "POST", "/inbound").is_none());
        assert!(match_route(&routes, true, "POST", "/tickets").is_none());
        assert_eq!(
            match_route(&routes, true, "POST", "/inbound").and_then(|r| r.signed_by.as_deref()),
            Some("gateway")
        );
    }
}
