//! CSRF protection of the forms used before there is a session (sign-in,
//! registration): a double-submit token. A random value goes into a
//! cookie (HttpOnly, SameSite=Strict, sent only to the form's path) and the
//! same value into the form. A cross-site page can make a browser post the
//! form but can neither read nor set the cookie.

use axum::http::request::Parts;
use axum::http::HeaderValue;

use crate::web::extract::cookie;
use crate::web::AppState;

/// How long such a form stays usable.
pub(crate) const MAX_AGE_SECS: i64 = 2 * 3600;

/// The double-submit token of one form.
pub(crate) struct GuestCsrf {
    /// Cookie name.
    pub cookie: &'static str,
    /// The path the cookie is sent to (the form's).
    pub path: &'static str,
}

impl GuestCsrf {
    /// The token a form shows: the browser's, if it holds one this server
    /// could have made (so several tabs keep working), else a new one.
    pub(crate) fn token_for_form(&self, parts: &Parts) -> String {
        cookie(parts, self.cookie)
            .filter(|t| looks_like_token(t))
            .unwrap_or_else(crate::auth::random_secret)
    }

    /// Whether the form's token is the cookie's.
    pub(crate) fn verify(&self, parts: &Parts, presented: &str) -> bool {
        let expected = cookie(parts, self.cookie).unwrap_or_default();
        !expected.is_empty()
            && crate::auth::tokens::ct_eq(expected.as_bytes(), presented.as_bytes())
    }

    /// The `Set-Cookie` value that stores `token` (empty, max age 0: clear it).
    pub(crate) fn set_cookie(
        &self,
        state: &AppState,
        token: &str,
        max_age_secs: i64,
    ) -> HeaderValue {
        let secure = if state.config().secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        HeaderValue::from_str(&format!(
            "{}={token}; Path={}; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}",
            self.cookie, self.path
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// A token this server could have made (32 random bytes, base64url).
fn looks_like_token(t: &str) -> bool {
    t.len() == 43
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
