//! HTTP calls to the test host, as a signed-in user (or nobody).

use reqwest::Method;
use serde_json::Value;

/// A caller of the test host over real HTTP: the harness's administrator
/// ([`crate::Harness::client`]), another user ([`crate::Harness::user`]) or
/// nobody ([`crate::Harness::anonymous`]). Paths are absolute:
/// `/api/v1/<module>/...` for routes, `/app/<module>/...` for pages.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// A finished response: status, headers and the whole body, read so that
/// assertions need no more `.await`.
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Response {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body as text.
    pub fn text(&self) -> &str {
        &self.body
    }

    /// The body as JSON; `Value::Null` when it is empty, and a panic naming
    /// the body when it is not JSON (a test that expects JSON is failing).
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        match serde_json::from_str(&self.body) {
            Ok(v) => v,
            Err(e) => panic!(
                "expected a JSON body ({e}); status {}, body: {}",
                self.status, self.body
            ),
        }
    }

    /// A response header, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The core's error code (`{"error": {"code": ...}}`), if the body is one.
    pub fn error_code(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.body)
            .ok()?
            .pointer("/error/code")?
            .as_str()
            .map(str::to_string)
    }
}

impl Client {
    pub(crate) fn new(http: reqwest::Client, base: String, token: Option<String>) -> Client {
        Client { http, base, token }
    }

    /// `http://127.0.0.1:<port>` of the host.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The bearer token this client sends, if it is signed in (for your own
    /// `reqwest` calls or `curl`).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request builder for `path` with this client's credential, for what
    /// the helpers below do not cover (headers, forms, multipart).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Send a request built with [`Client::request`] and read the response.
    ///
    /// # Panics
    /// When the host cannot be reached: the harness's own server is down,
    /// which no module test can go on from.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Response {
        let res = match req.send().await {
            Ok(r) => r,
            Err(e) => panic!("the test host did not answer: {e}"),
        };
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.unwrap_or_default();
        Response {
            status,
            headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send(self.request(Method::GET, path)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// `PUT path` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.send(self.request(Method::PUT, path).json(body)).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch_json(&self, path: &str, body: &Value) -> Response {
        self.send(self.request(Method::PATCH, path).json(body))
            .await
    }
}
