//! A request to one of the module's routes or pages.

use serde::de::DeserializeOwned;

use crate::bindings::kontor::module::types as raw;
use crate::error::Error;

/// Who is calling: a signed-in user of the tenant. The tenant itself is
/// never named — the host binds it to every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: String,
    /// `owner`, `admin`, `staff`, `reseller` or `customer`.
    pub role: String,
    /// The permissions the user holds, the core's and every module's.
    pub permissions: Vec<String>,
    /// The UI language of the caller (`de`, `en`).
    pub locale: String,
}

impl From<raw::Principal> for Principal {
    fn from(p: raw::Principal) -> Self {
        Principal {
            user_id: p.user_id,
            role: p.role,
            permissions: p.permissions,
            locale: p.locale,
        }
    }
}

/// A request to a route (`/api/v1/{module-id}/...`) or a page
/// (`/app/{module-id}/...`), with the path parameters the route matched.
///
/// The host has already checked the permission the manifest names for the
/// route; cookies and credentials are removed before the module sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    principal: Option<Principal>,
    params: Vec<(String, String)>,
}

impl Request {
    pub(crate) fn from_raw(r: raw::HttpRequest) -> Self {
        Request {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            body: r.body,
            principal: r.principal.map(Principal::from),
            params: Vec::new(),
        }
    }

    /// A request built by hand, for a module's own unit tests of its
    /// handlers (`Request::new("GET", "/greeting?name=Ada")`).
    pub fn new(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            principal: None,
            params: Vec::new(),
        }
    }

    /// The same request with a body (for [`Request::new`]).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The same request made by `principal` (for [`Request::new`]).
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    pub(crate) fn with_params(mut self, params: Vec<(String, String)>) -> Self {
        self.params = params;
        self
    }

    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path below the module's prefix, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// A path parameter of the matched route: `param("id")` is `7` for
    /// route `/tickets/{id}` and path `/tickets/7`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A path parameter the route always has, or a 400 naming it — for
    /// handlers that go on with `?`.
    pub fn require_param(&self, name: &str) -> Result<&str, Error> {
        self.param(name)
            .ok_or_else(|| Error::bad_request(format!("the path has no parameter `{name}`")))
    }

    /// The first value of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        crate::query_param(&self.query, name)
    }

    /// The raw query string, without `?`.
    pub fn query_string(&self) -> &str {
        &self.query
    }

    /// The query string as a typed value (`?limit=20&after=x` into a struct
    /// with `limit: u32` and `after: Option<String>`); a 400 naming the
    /// problem if it does not fit.
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_urlencoded::from_str(&self.query)
            .map_err(|e| Error::bad_request(format!("query string: {e}")))
    }

    /// A request header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The raw body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as JSON of type `T`. Errors are the core's: 400
    /// `invalid_json` for a body that is not JSON, 422 `invalid_body` for
    /// JSON that does not fit `T` (the message names the field).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => Error::new(422, "invalid_body", e.to_string()),
            _ => Error::new(
                400,
                "invalid_json",
                format!("the body is not valid JSON: {e}"),
            ),
        })
    }

    /// The signed-in caller; none only when the host calls without a user.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The caller's user id, if any.
    pub fn user_id(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.user_id.as_str())
    }

    /// Whether the caller holds `permission` — for what the route's own
    /// permission (checked by the host) does not cover.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|p| p.permissions.iter().any(|x| x == permission))
    }

    /// The caller's UI language (`en` without a caller).
    pub fn locale(&self) -> &str {
        self.principal
            .as_ref()
            .map(|p| p.locale.as_str())
            .unwrap_or("en")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Paging {
        limit: u32,
        after: Option<String>,
    }

    #[test]
    fn query_parameters_decode_and_deserialize_into_types() {
        let r = Request::new("GET", "/x?name=Ada+Lovelace&limit=20&after=a%2Fb");
        assert_eq!(r.query("name").as_deref(), Some("Ada Lovelace"));
        assert_eq!(r.query("missing"), None);
        let p: Paging = r.query_as().unwrap();
        assert_eq!(
            p,
            Paging {
                limit: 20,
                after: Some("a/b".into())
            }
        );
        let e = Request::new("GET", "/x?limit=many")
            .query_as::<Paging>()
            .unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Greet {
        name: String,
    }

    #[test]
    fn a_body_that_is_not_json_is_400_and_one_that_does_not_fit_is_422() {
        let r = Request::new("POST", "/g").with_body("{nope");
        assert_eq!(r.json::<Greet>().unwrap_err().code(), "invalid_json");
        let r = Request::new("POST", "/g").with_body("{\"name\": 7}");
        let e = r.json::<Greet>().unwrap_err();
        assert_eq!((e.status(), e.code()), (422, "invalid_body"));
        let r = Request::new("POST", "/g").with_body("{\"name\": \"Ada\"}");
        assert_eq!(r.json::<Greet>().unwrap().name, "Ada");
    }
}
