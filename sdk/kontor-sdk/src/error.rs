//! The one error type of a module's handlers.

use std::fmt;

use serde_json::Value;

use crate::response::Response;

/// An error a handler returns: an HTTP status, a stable machine-readable
/// code, a sentence for people and optional details.
///
/// A route answers it in the host's own error shape,
/// `{"error": {"code", "message", "details"}}`, so clients handle a module's
/// refusals like the core's. A page, event or job hands the message to the
/// host (an event or job error is retried). The capability errors
/// ([`crate::records::Error`], [`crate::crm::Error`], a secret's or an
/// event's `String`) and JSON errors convert with `?`.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    status: u16,
    code: String,
    message: String,
    details: Option<Value>,
}

impl Error {
    /// An error with any status and code. Prefer the constructors below,
    /// whose codes match the core's (`not_found`, `validation_failed`...).
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            status,
            code: code.into(),
            message: message.into(),
            details: None,
        }
    }

    /// 400 `bad_request`: the request is malformed in a way no field names.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "bad_request", message)
    }

    /// 403 `forbidden`: the caller may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    /// 404 `not_found`: nothing with that id exists for the caller.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    /// 409 `conflict`: the change conflicts with the stored data.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "conflict", message)
    }

    /// 422 `validation_failed` naming the field, as the core reports it:
    /// the message is `field: reason`, the details `{"field", "reason"}`.
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self::new(422, "validation_failed", format!("{field}: {reason}"))
            .with_details(serde_json::json!({ "field": field, "reason": reason }))
    }

    /// 500 `internal`: something failed that the caller cannot fix.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "internal", message)
    }

    /// The same error with structured details (the offending field, limits...).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The HTTP status a route answers with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The sentence for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The structured details, if any.
    pub fn details(&self) -> Option<&Value> {
        self.details.as_ref()
    }

    /// The error as a route's answer, in the host's error shape.
    pub fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        Response::json(self.status, &body)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// A capability's error message (secrets, events): a 500, since the caller
/// cannot fix it; the message says what an administrator can.
impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::internal(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::internal(message)
    }
}

/// A JSON value the module built or read that does not fit its type: the
/// module's bug, a 500.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format!("JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_error_has_the_hosts_error_shape() {
        let r = Error::invalid("name", "must not be empty").into_response();
        assert_eq!(r.status, 422);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "error": {
                "code": "validation_failed",
                "message": "name: must not be empty",
                "details": { "field": "name", "reason": "must not be empty" },
            }})
        );
        let r = Error::not_found("no ticket 7").into_response();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"]["details"], Value::Null);
        assert_eq!(
            r.headers,
            [("content-type".to_string(), "application/json".to_string())]
        );
    }
}
