//! What a route answers: [`Response`], and the types a handler may return
//! instead ([`IntoResponse`]).

use serde::Serialize;

use crate::error::Error;

/// A route's answer. Handlers usually return [`Json`], [`Html`], a string
/// or `Result<_, Error>` and let [`IntoResponse`] build this; build one
/// yourself for other content types or headers.
///
/// The host passes on only some headers (`content-type`, `cache-control`,
/// `location`, `etag`...) and caps the body size; cookies never pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status, 100 to 599.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `value` as JSON with `status`. A value that cannot be serialized
    /// (a map with non-string keys) is a 500 in the host's error shape.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(e) => Error::internal(format!("the answer is not JSON: {e}")).into_response(),
        }
    }

    /// An HTML document or fragment with `status`.
    pub fn html(status: u16, html: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("content-type", "text/html; charset=utf-8")
            .with_body(html.into().into_bytes())
    }

    /// Plain text with `status`.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into().into_bytes())
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The same answer with `body`.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The same answer with another status (`(201, Json(..))` does this too).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}

/// A value a route handler can return. Implemented for [`Response`],
/// [`Json`], [`Html`], strings (plain text), `()` (204 No Content),
/// `(status, value)` and `Result<T, E>` whose error converts into [`Error`].
pub trait IntoResponse {
    /// Turn the value into the answer.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Error::into_response(self)
    }
}

/// A JSON answer, 200 unless wrapped as `(status, Json(value))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        Response::json(200, &self.0)
    }
}

/// An HTML answer, 200 unless wrapped as `(status, Html(html))`. Escape what
/// came from users with [`crate::escape_html`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Html<T>(pub T);

impl<T: Into<String>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        Response::html(200, self.0)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(200, self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(200, self)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::new(204)
    }
}

impl<T: IntoResponse> IntoResponse for (u16, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<T: IntoResponse, E: Into<Error>> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(v) => v.into_response(),
            Err(e) => e.into().into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_return_json_html_text_status_pairs_and_results() {
        let r = Json(serde_json::json!({ "a": 1 })).into_response();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\":1}"[..]));
        let r = (201, Json(vec![1, 2])).into_response();
        assert_eq!(r.status, 201);
        let r = Html("<p>hi</p>").into_response();
        assert_eq!(r.headers[0].1, "text/html; charset=utf-8");
        assert_eq!(().into_response().status, 204);
        let r: Result<Json<u8>, Error> = Err(Error::conflict("taken"));
        assert_eq!(r.into_response().status, 409);
        let r: Result<&'static str, String> = Err("no key".into());
        assert_eq!(r.into_response().status, 500);
    }
}
