//! Outbound HTTP: call another service's API from a module.
//!
//! Needs the `http` capability and every host the module talks to in
//! `module.toml` (Spin's syntax: `scheme://host[:port]`, `*.` for
//! subdomains, `*` for any port):
//!
//! ```toml
//! capabilities = ["http"]
//! allowed_outbound_hosts = ["https://api.example.com", "https://*.example.net:8006"]
//! ```
//!
//! The host refuses — as [`HttpError::Denied`], with the reason — a
//! request to a host not on the list, to a private, loopback or link-local
//! address unless an administrator allowed it for that host, and any
//! request while an administrator has not accepted the capability. TLS
//! certificates are verified unless an administrator turned that off for a
//! host (self-signed appliances). Responses are capped in size and time;
//! redirects are not followed (a 3xx is returned as it is).
//!
//! ```ignore
//! let response = kontor_sdk::http::get("https://api.example.com/v1/status")?;
//! if response.status == 200 { let text = response.text(); }
//! ```

use std::fmt;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method as RawMethod, OutgoingBody, OutgoingRequest,
    Scheme as RawScheme,
};
use wasi::io::streams::StreamError;

/// The start of the message the host refuses a request with; the rest is
/// the reason (kept in step with the host's `DENIED_PREFIX`).
const DENIED_PREFIX: &str = "outbound request denied: ";

/// An HTTP method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// Any other method, e.g. `PROPFIND`.
    Other(String),
}

/// An outbound request: build it with [`Request::new`] and the `with_`
/// methods, send it with [`send`].
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL: `https://host[:port]/path?query`.
    pub url: String,
    /// Headers (`host` is set from the URL and cannot be given).
    pub headers: Vec<(String, String)>,
    /// The body (empty: none).
    pub body: Vec<u8>,
}

impl Request {
    /// A request without headers or body.
    pub fn new(method: Method, url: &str) -> Request {
        Request {
            method,
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The same request with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The same request with `body`.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// The same request with a JSON body and its content type.
    pub fn with_json<T: serde::Serialize>(self, value: &T) -> Request {
        self.with_header("content-type", "application/json")
            .with_body(serde_json::to_vec(value).unwrap_or_default())
    }
}

/// A response, read completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused it: capability not declared or not accepted, host
    /// not in `allowed_outbound_hosts`, or a private address without the
    /// administrator's opt-in. The reason says which and what to do.
    Denied(String),
    /// The URL is not an absolute `http(s)://` URL.
    InvalidUrl(String),
    /// The response body is larger than the host allows.
    TooLarge(Option<u64>),
    /// Connecting, TLS, or the exchange took too long.
    Timeout,
    /// Anything else the network or the server did (DNS, refused
    /// connection, TLS certificate, protocol error).
    Failed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(reason) => write!(f, "{DENIED_PREFIX}{reason}"),
            HttpError::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            HttpError::TooLarge(Some(n)) => {
                write!(f, "the response body ({n} bytes) is over the host's limit")
            }
            HttpError::TooLarge(None) => write!(f, "the response body is over the host's limit"),
            HttpError::Timeout => write!(f, "the request timed out"),
            HttpError::Failed(m) => write!(f, "the request failed: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A route answers an outbound failure in the host's error shape: a
/// refusal is 403 `denied` (the fix is the manifest or an administrator's
/// setting), a failure of the other service 502 `upstream_failed` (504
/// `upstream_timeout` when it was too slow), a bad URL 500 (a bug).
impl From<HttpError> for crate::Error {
    fn from(e: HttpError) -> Self {
        let message = e.to_string();
        match e {
            HttpError::Denied(_) => crate::Error::new(403, "denied", message),
            HttpError::Timeout => crate::Error::new(504, "upstream_timeout", message),
            HttpError::TooLarge(_) | HttpError::Failed(_) => {
                crate::Error::new(502, "upstream_failed", message)
            }
            HttpError::InvalidUrl(_) => crate::Error::internal(message),
        }
    }
}

impl From<ErrorCode> for HttpError {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::InternalError(Some(m)) => match m.strip_prefix(DENIED_PREFIX) {
                Some(reason) => HttpError::Denied(reason.to_string()),
                None => HttpError::Failed(m),
            },
            ErrorCode::HttpRequestDenied => {
                HttpError::Denied("the host refused the request".into())
            }
            ErrorCode::HttpResponseBodySize(n) => HttpError::TooLarge(n),
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout
            | ErrorCode::DnsTimeout => HttpError::Timeout,
            other => HttpError::Failed(format!("{other:?}")),
        }
    }
}

/// GET `url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    send(Request::new(Method::Get, url))
}

/// POST `value` as JSON to `url`.
pub fn post_json<T: serde::Serialize>(url: &str, value: &T) -> Result<Response, HttpError> {
    send(Request::new(Method::Post, url).with_json(value))
}

/// Send `request` and read the whole response. Blocks the module's call
/// (never the host) until the answer is in, a limit is hit, or the call's
/// deadline ends it.
pub fn send(request: Request) -> Result<Response, HttpError> {
    let (scheme, rest) = request
        .url
        .split_once("://")
        .ok_or_else(|| HttpError::InvalidUrl(format!("`{}` has no scheme", request.url)))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => RawScheme::Http,
        "https" => RawScheme::Https,
        other => {
            return Err(HttpError::InvalidUrl(format!(
                "the scheme `{other}` is not supported (http or https)"
            )))
        }
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(HttpError::InvalidUrl(format!(
            "`{}` has no host",
            request.url
        )));
    }
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();

    let fields: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&fields)
        .map_err(|e| HttpError::Failed(format!("invalid header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match request.method {
        Method::Get => RawMethod::Get,
        Method::Head => RawMethod::Head,
        Method::Post => RawMethod::Post,
        Method::Put => RawMethod::Put,
        Method::Patch => RawMethod::Patch,
        Method::Delete => RawMethod::Delete,
        Method::Options => RawMethod::Options,
        Method::Other(m) => RawMethod::Other(m),
    };
    let invalid = |what: &str| HttpError::InvalidUrl(format!("{what} of `{}`", request.url));
    outgoing
        .set_method(&method)
        .map_err(|_| invalid("the method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|_| invalid("the scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|_| invalid("the host"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|_| invalid("the path"))?;

    let body = if request.body.is_empty() {
        None
    } else {
        Some(
            outgoing
                .body()
                .map_err(|_| HttpError::Failed("the request body is not available".into()))?,
        )
    };
    let pending = outgoing_handler::handle(outgoing, None)?;
    if let Some(body) = body {
        {
            let stream = body
                .write()
                .map_err(|_| HttpError::Failed("the request body is not writable".into()))?;
            for chunk in request.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(stream_error)?;
            }
        }
        OutgoingBody::finish(body, None)?;
    }

    pending.subscribe().block();
    let incoming = match pending.get() {
        Some(Ok(result)) => result?,
        Some(Err(())) => return Err(HttpError::Failed("the response was taken twice".into())),
        None => return Err(HttpError::Failed("the response is not ready".into())),
    };
    let status = incoming.status();
    let headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body = incoming
        .consume()
        .map_err(|_| HttpError::Failed("the response body is not available".into()))?;
    let mut bytes = Vec::new();
    {
        let stream = body
            .stream()
            .map_err(|_| HttpError::Failed("the response body is not readable".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(stream_error(e)),
            }
        }
    }
    drop(IncomingBody::finish(body));
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

/// A stream failure as the HTTP error behind it, when there is one.
fn stream_error(e: StreamError) -> HttpError {
    match e {
        StreamError::Closed => HttpError::Failed("the connection closed early".into()),
        StreamError::LastOperationFailed(io) => {
            if let Some(code) = wasi::http::types::http_error_code(&io) {
                return code.into();
            }
            // Failures of a response body arrive as the host's text.
            let text = io.to_debug_string();
            if text.contains("body size exceeds limit") {
                HttpError::TooLarge(None)
            } else if text.contains("timeout") {
                HttpError::Timeout
            } else {
                HttpError::Failed(text)
            }
        }
    }
}
