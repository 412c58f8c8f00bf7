//! The module's API routes: method + path → handler.

use crate::error::Error;
use crate::request::Request;
use crate::response::{IntoResponse, Response};

type Handler = Box<dyn Fn(Request) -> Response>;

/// A path pattern split into segments; `{name}` (or `:name`) segments
/// capture a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl Pattern {
    pub(crate) fn parse(path: &str) -> Pattern {
        let segments = path
            .split('/')
            .skip(1)
            .map(|s| {
                if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Segment::Param(name.to_string())
                } else if let Some(name) = s.strip_prefix(':') {
                    Segment::Param(name.to_string())
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        Pattern { segments }
    }

    /// The path as the manifest spells it: parameters as `{name}`.
    pub(crate) fn manifest_path(&self) -> String {
        if self.segments.is_empty() {
            return "/".into();
        }
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => format!("/{l}"),
                Segment::Param(p) => format!("/{{{p}}}"),
            })
            .collect()
    }

    /// The parameters if `path` matches, as the host matches it: segment by
    /// segment, a parameter matching one non-empty segment. The host hands
    /// the path over decoded, so parameters are not decoded again.
    pub(crate) fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(l) if l == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.push((name.clone(), part.to_string()));
                }
                _ => return None,
            }
        }
        Some(params)
    }
}

struct Route {
    method: String,
    pattern: Pattern,
    handler: Handler,
}

/// The module's API routes, served under `/api/v1/{module-id}`.
///
/// Every route must also be declared in `module.toml` (`[[routes]]` with
/// its permission): the host serves only declared routes, and
/// `kontor-module build` names a declared route that has no handler here.
/// Path parameters are written as in the manifest, `/tickets/{id}`
/// (`/tickets/:id` is accepted too), and read with [`Request::param`].
///
/// A handler is any function or closure from [`Request`] to a value that
/// is [`IntoResponse`] — [`crate::Json`], [`crate::Html`], a string,
/// `(status, value)` or `Result<_, Error>`:
///
/// ```no_run
/// use kontor_sdk::{Error, Json, Request, Router};
///
/// fn ticket(req: Request) -> Result<Json<serde_json::Value>, Error> {
///     let id = req.require_param("id")?;
///     Ok(Json(serde_json::json!({ "id": id })))
/// }
///
/// let router = Router::new()
///     .get("/tickets/{id}", ticket)
///     .delete("/tickets/{id}", |_req: Request| ());
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.routes
                    .iter()
                    .map(|r| (&r.method, r.pattern.manifest_path())),
            )
            .finish()
    }
}

impl Router {
    /// No routes yet.
    pub fn new() -> Self {
        Router::default()
    }

    /// A route for `method` (`GET`, `POST`, `PUT`, `PATCH`, `DELETE`) and
    /// `path`; the first route that matches a request answers it.
    pub fn route<R, F>(mut self, method: &str, path: &str, handler: F) -> Self
    where
        F: Fn(Request) -> R + 'static,
        R: IntoResponse,
    {
        self.routes.push(Route {
            method: method.to_ascii_uppercase(),
            pattern: Pattern::parse(path),
            handler: Box::new(move |req| handler(req).into_response()),
        });
        self
    }

    /// A `GET` route: reads. Still served while the module is read-only
    /// (an expired license).
    pub fn get<R: IntoResponse, F: Fn(Request) -> R + 'static>(
        self,
        path: &str,
        handler: F,
    ) -> Self {
        self.route("GET", path, handler)
    }

    /// A `POST` route.
    pub fn post<R: IntoResponse, F: Fn(Request) -> R + 'static>(
        self,
        path: &str,
        handler: F,
    ) -> Self {
        self.route("POST", path, handler)
    }

    /// A `PUT` route.
    pub fn put<R: IntoResponse, F: Fn(Request) -> R + 'static>(
        self,
        path: &str,
        handler: F,
    ) -> Self {
        self.route("PUT", path, handler)
    }

    /// A `PATCH` route.
    pub fn patch<R: IntoResponse, F: Fn(Request) -> R + 'static>(
        self,
        path: &str,
        handler: F,
    ) -> Self {
        self.route("PATCH", path, handler)
    }

    /// A `DELETE` route.
    pub fn delete<R: IntoResponse, F: Fn(Request) -> R + 'static>(
        self,
        path: &str,
        handler: F,
    ) -> Self {
        self.route("DELETE", path, handler)
    }

    /// Answer `request` with the first matching route: 404 `not_found`
    /// when no path matches, 405 `method_not_allowed` when only another
    /// method does. Public so a module's own tests can call its routes.
    pub fn handle(&self, request: Request) -> Response {
        let mut other_method = false;
        for route in &self.routes {
            let Some(params) = route.pattern.matches(request.path()) else {
                continue;
            };
            if route.method != request.method() {
                other_method = true;
                continue;
            }
            return (route.handler)(request.with_params(params));
        }
        let (method, path) = (request.method(), request.path());
        if other_method {
            Error::new(
                405,
                "method_not_allowed",
                format!("{path} does not take {method} in this module"),
            )
            .into_response()
        } else {
            Error::not_found(format!("this module has no route {method} {path}")).into_response()
        }
    }

    /// `(method, path)` of every route, paths as the manifest spells them.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|r| (r.method.clone(), r.pattern.manifest_path()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Json;

    fn router() -> Router {
        Router::new()
            .get("/greeting", |_r: Request| "hi")
            .get("/tickets/{id}", |r: Request| {
                Json(serde_json::json!({ "id": r.param("id") }))
            })
            .post("/tickets/:id/notes", |r: Request| {
                (201, Json(serde_json::json!({ "on": r.param("id") })))
            })
    }

    #[test]
    fn routes_match_method_and_segments_and_capture_parameters() {
        let r = router().handle(Request::new("GET", "/tickets/a b"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, br#"{"id":"a b"}"#);
        let r = router().handle(Request::new("POST", "/tickets/7/notes"));
        assert_eq!((r.status, r.body.as_slice()), (201, &br#"{"on":"7"}"#[..]));
        assert_eq!(
            router().handle(Request::new("GET", "/greeting?x=1")).body,
            b"hi"
        );
    }

    #[test]
    fn an_unknown_path_is_404_and_a_wrong_method_405_in_the_hosts_error_shape() {
        let r = router().handle(Request::new("GET", "/nope"));
        assert_eq!(r.status, 404);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"]["code"], "not_found");
        assert_eq!(
            router().handle(Request::new("DELETE", "/greeting")).status,
            405
        );
        assert_eq!(
            router().handle(Request::new("GET", "/tickets/")).status,
            404
        );
    }

    #[test]
    fn routes_are_listed_as_the_manifest_spells_them() {
        assert_eq!(
            router().routes(),
            [
                ("GET".to_string(), "/greeting".to_string()),
                ("GET".into(), "/tickets/{id}".into()),
                ("POST".into(), "/tickets/{id}/notes".into()),
            ]
        );
        assert_eq!(Pattern::parse("/").manifest_path(), "/");
        assert!(Pattern::parse("/").matches("/").is_some());
    }
}
