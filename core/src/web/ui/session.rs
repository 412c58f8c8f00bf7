//! Who is looking at a page: the signed-in [`UiUser`] (or a redirect to the
//! login), or a [`Guest`] on the login page — with the language and the
//! htmx headers of the request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::i18n::Lang;
use super::nav::NavItem;
use super::pages::license::LicenseNotice;
use super::render::Page;
use crate::auth::principal::AuthMethod;
use crate::auth::Principal;
use crate::error::{Code, Error, Result};
use crate::web::extract::{csrf_matches, principal_of};
use crate::web::AppState;

/// What a page needs to know about the request, besides the user.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The language of the answer.
    pub lang: Lang,
    /// The path asked for (for the active navigation entry).
    pub path: String,
    /// Sent by htmx (`HX-Request`): answer with a fragment where the page has one.
    pub htmx: bool,
    /// htmx restoring a page from history wants the whole page, not a fragment.
    pub history_restore: bool,
}

impl RequestInfo {
    fn from_parts(parts: &Parts, preference: Option<&str>) -> Self {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        RequestInfo {
            lang: Lang::negotiate(preference, header(header::ACCEPT_LANGUAGE.as_str())),
            path: parts.uri.path().to_string(),
            htmx: header("hx-request") == Some("true"),
            history_restore: header("hx-history-restore-request") == Some("true"),
        }
    }

    /// Whether to answer with the fragment htmx swaps in rather than the page.
    pub fn wants_fragment(&self) -> bool {
        self.htmx && !self.history_restore
    }
}

/// A signed-in user of the UI. Extracting it from a request without a valid
/// session redirects (303) to `/login`, so handlers never see anonymous users.
#[derive(Debug, Clone)]
pub struct UiUser {
    /// The user.
    pub principal: Principal,
    /// Language and htmx headers.
    pub req: RequestInfo,
    /// The navigation bar (empty for htmx fragments, which have none).
    pub(crate) nav: Vec<NavItem>,
    /// The license warning for admins, when it needs attention (none for
    /// htmx fragments).
    pub(crate) license_notice: Option<LicenseNotice>,
}

impl UiUser {
    /// The CSRF token the forms of this session carry (none for API tokens,
    /// whose forms are therefore refused).
    pub fn csrf_token(&self) -> Option<&str> {
        match &self.principal.method {
            AuthMethod::Session { csrf_token, .. } => Some(csrf_token),
            AuthMethod::Token { .. } | AuthMethod::System => None,
        }
    }

    /// Refuse a form whose `_csrf` field is not the session's token. Call it
    /// before anything else a form handler does.
    pub fn check_csrf(&self, presented: &str) -> Result<()> {
        if !presented.is_empty() && csrf_matches(&self.principal, Some(presented)) {
            Ok(())
        } else {
            Err(Error::new(
                Code::CsrfFailed,
                "the form lacks the CSRF token of this session; reload the page and try again",
            ))
        }
    }

    /// Refuse a portal user (role `customer`) on a page of the tenant's
    /// staff, whatever permissions their role holds: their pages are the
    /// portal pages of modules.
    pub fn require_staff(&self) -> Result<()> {
        if self.principal.is_portal_user() {
            Err(Error::new(
                Code::Forbidden,
                "this page is for the staff of the tenant; customers use their portal",
            ))
        } else {
            Ok(())
        }
    }

    /// The renderer of this request.
    pub(crate) fn page<'a>(&'a self, state: &'a AppState) -> Page<'a> {
        Page::new(state, &self.req, Some(&self.principal), &self.nav)
            .with_license_notice(self.license_notice.as_ref())
    }
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> std::result::Result<Self, Self::Rejection> {
        match principal_of(parts, state).await {
            Ok(Some((principal, _source))) => {
                let req = RequestInfo::from_parts(parts, principal.locale.as_deref());
                let (nav, license_notice) = if req.wants_fragment() {
                    (Vec::new(), None)
                } else {
                    let catalog = state.ui().catalog(req.lang);
                    (
                        super::nav::for_user(state, &principal, &req.path, catalog).await,
                        super::pages::license::notice(state, &principal, catalog).await,
                    )
                };
                Ok(UiUser {
                    principal,
                    req,
                    nav,
                    license_notice,
                })
            }
            Ok(None) => Err(to_login(parts)),
            Err(e) => {
                let req = RequestInfo::from_parts(parts, None);
                Err(Page::new(state, &req, None, &[]).error(e))
            }
        }
    }
}

/// Send an anonymous request to the login page, remembering where it wanted
/// to go. htmx gets `HX-Redirect`, since it would otherwise swap the login
/// page into the fragment it asked for.
fn to_login(parts: &Parts) -> Response {
    let wanted = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let target = if wanted == "/" || parts.method != axum::http::Method::GET {
        "/login".to_string()
    } else {
        format!(
            "/login?next={}",
            percent_encoding::utf8_percent_encode(wanted, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    if parts.headers.get("hx-request").is_some() {
        let mut res = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            res.headers_mut().insert("hx-redirect", v);
        }
        return res;
    }
    Redirect::to(&target).into_response()
}

/// A visitor who need not be signed in (the login page).
#[derive(Debug, Clone)]
pub struct Guest {
    /// Language and htmx headers.
    pub req: RequestInfo,
}

impl Guest {
    /// The renderer of this request.
    pub(crate) fn page<'a>(&'a self, state: &'a AppState) -> Page<'a> {
        Page::new(state, &self.req, None, &[])
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Guest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> std::result::Result<Self, Self::Rejection> {
        Ok(Guest {
            req: RequestInfo::from_parts(parts, None),
        })
    }
}

/// A local path to go to after login: `/something`, never `//host` or a
/// full URL, so the login form cannot be used to send people elsewhere.
pub(crate) fn safe_next(next: Option<&str>) -> Option<&str> {
    let next = next?;
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    (local && !next.starts_with("/login")).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/customers?q=a")), Some("/customers?q=a"));
        assert_eq!(safe_next(Some("//evil.example")), None);
        assert_eq!(safe_next(Some("/\\evil.example")), None);
        assert_eq!(safe_next(Some("https://evil.example")), None);
        assert_eq!(safe_next(Some("/login")), None);
        assert_eq!(safe_next(None), None);
    }
}
