//! The one error type of the core.
//!
//! Every refusal a user can meet has a stable, machine-readable code from
//! the table in [`error_codes!`]; the HTTP status lives beside it, so the
//! API never invents a status at a call site. Database and internal errors
//! become a 500 whose body carries only a logged id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => ($code:literal, $status:ident) ),* $(,)?) => {
        /// Stable error codes: the `code` field of every error body.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// The code as it appears in the error body.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            /// The HTTP status that goes with the code.
            pub fn status(self) -> StatusCode {
                match self { $( Code::$variant => StatusCode::$status, )* }
            }

            /// Every code, for the documentation and the OpenAPI document.
            pub const ALL: &'static [Code] = &[$( Code::$variant, )*];
        }
    };
}

error_codes! {
    /// The request is malformed in a way no field names.
    BadRequest => ("bad_request", BAD_REQUEST),
    /// The body is not valid JSON.
    InvalidJson => ("invalid_json", BAD_REQUEST),
    /// The body is JSON but does not fit the schema (unknown field, wrong type).
    InvalidBody => ("invalid_body", UNPROCESSABLE_ENTITY),
    /// A field has a value that is not allowed; `details` names the field.
    ValidationFailed => ("validation_failed", UNPROCESSABLE_ENTITY),
    /// No or an unknown credential.
    Unauthenticated => ("unauthenticated", UNAUTHORIZED),
    /// E-mail and password do not match an active user.
    InvalidCredentials => ("invalid_credentials", UNAUTHORIZED),
    /// The caller lacks the permission the action needs.
    Forbidden => ("forbidden", FORBIDDEN),
    /// A form or cookie-authenticated request without a valid CSRF token.
    CsrfFailed => ("csrf_failed", FORBIDDEN),
    /// Nothing with that id exists for the caller.
    NotFound => ("not_found", NOT_FOUND),
    /// The change conflicts with existing data.
    Conflict => ("conflict", CONFLICT),
    /// Another record already uses that e-mail address.
    EmailTaken => ("email_taken", CONFLICT),
    /// The body is larger than the endpoint accepts.
    PayloadTooLarge => ("payload_too_large", PAYLOAD_TOO_LARGE),
    /// The body has a content type the endpoint does not take.
    UnsupportedMediaType => ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE),
    /// Too many attempts; `Retry-After` says when to try again.
    RateLimited => ("rate_limited", TOO_MANY_REQUESTS),
    /// The e-mail exists in several tenants: the login must name one.
    TenantRequired => ("tenant_required", UNPROCESSABLE_ENTITY),
    /// The action is not available in this mode (self-hosted vs SaaS).
    WrongMode => ("wrong_mode", CONFLICT),
    /// No module with that id is installed (or it is disabled).
    ModuleNotFound => ("module_not_found", NOT_FOUND),
    /// The tenant is not entitled to the module (license or subscription).
    ModuleNotEntitled => ("module_not_entitled", FORBIDDEN),
    /// The module trapped, panicked or answered something the host refuses.
    ModuleFailed => ("module_failed", INTERNAL_SERVER_ERROR),
    /// The module did not answer within its deadline.
    ModuleTimeout => ("module_timeout", GATEWAY_TIMEOUT),
    /// The module needs a contract version this host does not serve.
    ModuleApiMismatch => ("module_api_mismatch", UNPROCESSABLE_ENTITY),
    /// A module it needs is not installed or not enabled.
    ModuleDependencyMissing => ("module_dependency_missing", UNPROCESSABLE_ENTITY),
    /// A module it needs is installed in a version that does not fit.
    ModuleDependencyIncompatible => ("module_dependency_incompatible", UNPROCESSABLE_ENTITY),
    /// The modules would depend on each other in a cycle.
    ModuleDependencyCycle => ("module_dependency_cycle", UNPROCESSABLE_ENTITY),
    /// Enabled modules need this one.
    ModuleHasDependents => ("module_has_dependents", CONFLICT),
    /// The package is unsigned, tampered, untrusted or unsafe.
    ModulePackageRefused => ("module_package_refused", UNPROCESSABLE_ENTITY),
    /// A module with this id and version is already installed.
    ModuleAlreadyInstalled => ("module_already_installed", CONFLICT),
    /// No SMTP relay is configured (`smtp_host`, `mail_from`).
    MailNotConfigured => ("mail_not_configured", SERVICE_UNAVAILABLE),
    /// The SMTP relay could not be reached or refused the message; the message says what it answered.
    MailFailed => ("mail_failed", BAD_GATEWAY),
    /// Something failed inside the server; the id is in the log.
    Internal => ("internal", INTERNAL_SERVER_ERROR),
    /// A dependency (the database) is not available right now.
    Unavailable => ("unavailable", SERVICE_UNAVAILABLE),
    /// The text is not an armored Kontor license (missing BEGIN/END lines, not text, too large).
    LicenseBadArmor => ("license_bad_armor", UNPROCESSABLE_ENTITY),
    /// The license text or a part of it is not valid base64: it was damaged.
    LicenseBadBase64 => ("license_bad_base64", UNPROCESSABLE_ENTITY),
    /// The license's JSON is malformed, or its fields do not fit together.
    LicenseBadJson => ("license_bad_json", UNPROCESSABLE_ENTITY),
    /// The license is signed with a key this build does not trust.
    LicenseUnknownKey => ("license_unknown_key", UNPROCESSABLE_ENTITY),
    /// The license's signature does not match its contents: it was edited.
    LicenseBadSignature => ("license_bad_signature", UNPROCESSABLE_ENTITY),
    /// The license has a format version this build does not read.
    LicenseUnsupportedVersion => ("license_unsupported_version", UNPROCESSABLE_ENTITY),
    /// The license's valid-from date has not come yet.
    LicenseNotYetValid => ("license_not_yet_valid", UNPROCESSABLE_ENTITY),
    /// The license was issued later than the server's clock allows: the clock is wrong.
    LicenseIssuedInFuture => ("license_issued_in_future", UNPROCESSABLE_ENTITY),
    /// The license (or the trial) has ended, or the clock moved back: licensed modules are read-only.
    LicenseExpired => ("license_expired", FORBIDDEN),
    /// The license is bound to another installation.
    LicenseWrongInstance => ("license_wrong_instance", UNPROCESSABLE_ENTITY),
    /// Creating one more would exceed a limit of the license; `details` names it.
    LicenseLimitReached => ("license_limit_reached", FORBIDDEN),
    /// Module secrets cannot be stored or read: no usable secret key (config `secret_key` or the key file in the data dir), or a secret sealed with another key.
    SecretKeyUnavailable => ("secret_key_unavailable", INTERNAL_SERVER_ERROR),
    /// A payment webhook's or a module hook's `Kontor-Signature` is missing, malformed, too old or does not match; `details.reason` says which.
    WebhookSignatureInvalid => ("webhook_signature_invalid", BAD_REQUEST),
    /// A module's signed hook cannot be checked: an administrator has not set the module secret that signs it (`details.secret` names it).
    HookNotConfigured => ("hook_not_configured", SERVICE_UNAVAILABLE),
    /// The subscription is activated by its payment (the payment webhook) or by the operator, not by the tenant.
    PaymentRequired => ("payment_required", PAYMENT_REQUIRED),
    /// Payments are not set up on this server (no `payment_webhook_secret`).
    PaymentsNotConfigured => ("payments_not_configured", SERVICE_UNAVAILABLE),
}

/// An error the core returns to a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A refusal with a stable code, a sentence for people and optional details.
    #[error("{message}")]
    Api {
        /// Machine-readable kind.
        code: Code,
        /// A sentence that says what is wrong and what to do.
        message: String,
        /// Structured details (the offending field, limits...).
        details: Option<Value>,
        /// Seconds to wait, for [`Code::RateLimited`].
        retry_after: Option<u64>,
    },
    /// A database error; logged, never shown.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration error; logged, never shown.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other internal failure; logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A refusal with `code` and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error::Api {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Attach structured details.
    pub fn with_details(mut self, value: Value) -> Self {
        if let Error::Api { details, .. } = &mut self {
            *details = Some(value);
        }
        self
    }

    /// Nothing with that id exists for the caller.
    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} not found"))
    }

    /// The caller may not do this.
    pub fn forbidden(permission: &str) -> Self {
        Self::new(
            Code::Forbidden,
            format!("this needs the permission `{permission}`; ask an administrator"),
        )
        .with_details(serde_json::json!({ "permission": permission }))
    }

    /// A field failed validation.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(Code::ValidationFailed, format!("{field}: {message}"))
            .with_details(serde_json::json!({ "field": field, "reason": message }))
    }

    /// Too many attempts.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Error::Api {
            code: Code::RateLimited,
            message: format!("too many attempts; try again in {retry_after_secs} seconds"),
            details: Some(serde_json::json!({ "retry_after": retry_after_secs })),
            retry_after: Some(retry_after_secs),
        }
    }

    /// An internal failure with a description for the log.
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Error::Internal(msg.to_string())
    }

    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::Api { code, .. } => *code,
            Error::Database(sqlx::Error::PoolTimedOut) => Code::Unavailable,
            _ => Code::Internal,
        }
    }

    /// Map a unique-constraint violation to a conflict with `code`,
    /// leaving every other error as it is. Constraint names are the
    /// contract: both migrations name them the same, and
    /// [`UNIQUE_CONSTRAINTS`] says how SQLite (which reports columns, not
    /// names) spells each.
    pub fn on_unique(self, constraint: &str, code: Code, message: &str) -> Self {
        if let Error::Database(sqlx::Error::Database(db)) = &self {
            let sqlite_columns = UNIQUE_CONSTRAINTS
                .iter()
                .find(|(name, _)| *name == constraint)
                .map(|(_, columns)| *columns);
            let hit = db.is_unique_violation()
                && (db.constraint() == Some(constraint)
                    || sqlite_columns.is_some_and(|c| db.message().ends_with(c)));
            if hit {
                return Error::new(code, message);
            }
        }
        self
    }
}

/// Named unique constraints and the column list SQLite reports for each.
pub const UNIQUE_CONSTRAINTS: &[(&str, &str)] = &[
    (
        "users_tenant_email_key",
        "users.tenant_id, users.email_norm",
    ),
    (
        "customers_tenant_email_key",
        "customers.tenant_id, customers.email_norm",
    ),
    ("tenants_slug_key", "tenants.slug"),
    (
        "subscriptions_one_open_per_tenant",
        "subscriptions.tenant_id",
    ),
];

/// The JSON error body: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// What is wrong and what to do, for people.
    pub message: String,
    /// Structured details, or null.
    #[schema(value_type = Object, nullable = true)]
    pub details: Option<Value>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (code, message, details, retry_after) = match self {
            Error::Api {
                code,
                message,
                details,
                retry_after,
            } => (code, message, details, retry_after),
            other => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let code = other.code();
                tracing::error!(error_id = %id, error = %other, "request failed");
                let message = format!("internal error; reference {id} in the server log");
                (
                    code,
                    message,
                    Some(serde_json::json!({ "error_id": id })),
                    None,
                )
            }
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.as_str().to_string(),
                message,
                details,
            },
        };
        let mut response = (code.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if code.status() == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kontor\""),
            );
        }
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
