//! Turning a template and its data into a response: the common context of
//! the layout (language, user, navigation, CSRF token), error pages, and
//! refusals of form input shown next to the form.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::Value;
use tera::Context;

use super::i18n::Catalog;
use super::nav;
use super::pages::license::LicenseNotice;
use super::session::RequestInfo;
use crate::auth::principal::AuthMethod;
use crate::auth::Principal;
use crate::error::{Code, Error, Result};
use crate::web::AppState;

/// Renders the pages of one request.
pub(crate) struct Page<'a> {
    state: &'a AppState,
    req: &'a RequestInfo,
    principal: Option<&'a Principal>,
    nav: &'a [nav::NavItem],
    license_notice: Option<&'a LicenseNotice>,
}

impl<'a> Page<'a> {
    pub(crate) fn new(
        state: &'a AppState,
        req: &'a RequestInfo,
        principal: Option<&'a Principal>,
        nav: &'a [nav::NavItem],
    ) -> Self {
        Page {
            state,
            req,
            principal,
            nav,
            license_notice: None,
        }
    }

    /// The same page with the license warning of the layout.
    pub(crate) fn with_license_notice(mut self, notice: Option<&'a LicenseNotice>) -> Self {
        self.license_notice = notice;
        self
    }

    /// The texts of the request's language.
    pub(crate) fn catalog(&self) -> &Catalog {
        self.state.ui().catalog(self.req.lang)
    }

    /// A text of the request's language.
    pub(crate) fn text(&self, key: &str, args: &[(&str, &str)]) -> String {
        self.catalog().text(key, args)
    }

    /// `template` with `ctx` on top of the layout's context, as 200.
    pub(crate) fn render(&self, template: &str, ctx: Context) -> Result<Response> {
        self.render_status(StatusCode::OK, template, ctx)
    }

    /// `template` with `ctx` on top of the layout's context.
    pub(crate) fn render_status(
        &self,
        status: StatusCode,
        template: &str,
        ctx: Context,
    ) -> Result<Response> {
        let mut full = self.base_context();
        full.extend(ctx);
        let html = self.state.ui().render(self.req.lang, template, &full)?;
        let mut res = (status, Html(html)).into_response();
        let h = res.headers_mut();
        // Pages carry personal data and the session's CSRF token: keep them
        // out of shared and back/forward caches that outlive a logout.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // The same URL answers with a fragment to htmx and a page otherwise.
        h.insert(header::VARY, HeaderValue::from_static("HX-Request"));
        Ok(res)
    }

    fn base_context(&self) -> Context {
        let mut ctx = Context::new();
        ctx.insert("lang", self.req.lang.code());
        ctx.insert(
            "datetime_format",
            self.text("format.datetime", &[]).as_str(),
        );
        ctx.insert("tz", "UTC");
        ctx.insert("widgets", &Vec::<Value>::new());
        if let Some(p) = self.principal {
            ctx.insert(
                "user",
                &serde_json::json!({
                    "name": p.name,
                    "email": p.email,
                    "role": p.role.as_str(),
                }),
            );
            ctx.insert("nav", self.nav);
            ctx.insert("license_notice", &self.license_notice);
            if let AuthMethod::Session { csrf_token, .. } = &p.method {
                ctx.insert("csrf_token", csrf_token);
                // Every htmx request of the page sends it (`<body hx-headers>`),
                // so a module page's `hx-post` to its own API routes passes
                // the API's CSRF check. Made here as JSON, escaped for the
                // attribute by the template.
                ctx.insert(
                    "htmx_headers",
                    &serde_json::json!({ "X-CSRF-Token": csrf_token }).to_string(),
                );
            }
        }
        ctx
    }

    /// The page, or the error page when building it failed.
    pub(crate) fn finish(&self, result: Result<Response>) -> Response {
        result.unwrap_or_else(|e| self.error(e))
    }

    /// The error page of `err`, with the status of its code. Internal errors
    /// are logged with an id the page shows; their text never is.
    pub(crate) fn error(&self, err: Error) -> Response {
        let code = err.code();
        let mut ctx = Context::new();
        let (title, text) = match code {
            Code::Forbidden => {
                let permission = match &err {
                    Error::Api {
                        details: Some(d), ..
                    } => d["permission"].as_str().unwrap_or_default().to_string(),
                    _ => String::new(),
                };
                let text = if permission.is_empty() {
                    self.text("error.forbidden.text_generic", &[])
                } else {
                    self.text("error.forbidden.text", &[("permission", &permission)])
                };
                (self.text("error.forbidden.title", &[]), text)
            }
            Code::CsrfFailed => (
                self.text("error.csrf.title", &[]),
                self.text("error.csrf.text", &[]),
            ),
            Code::NotFound => (
                self.text("error.not_found.title", &[]),
                self.text("error.not_found.text", &[]),
            ),
            Code::RateLimited => (
                self.text("error.rate_limited.title", &[]),
                self.text("error.rate_limited.text", &[]),
            ),
            Code::Unavailable => (
                self.text("error.unavailable.title", &[]),
                self.text("error.unavailable.text", &[]),
            ),
            Code::Internal => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                tracing::error!(error_id = %id, error = %err, "UI request failed");
                ctx.insert("reference", &id);
                (
                    self.text("error.internal.title", &[]),
                    self.text("error.internal.text", &[]),
                )
            }
            _ => (
                self.text("error.bad_request.title", &[]),
                self.text("error.bad_request.text", &[]),
            ),
        };
        ctx.insert("title", &title);
        ctx.insert("message", &text);
        match self.render_status(code.status(), "error.html", ctx) {
            Ok(res) => res,
            Err(e) => {
                tracing::error!(error = %e, "rendering the error page failed");
                (code.status(), title).into_response()
            }
        }
    }

    /// The time zone the tenant shows times in (`UTC` when its setting is
    /// not a zone the renderer knows).
    pub(crate) async fn time_zone(&self) -> String {
        let Some(p) = self.principal else {
            return "UTC".into();
        };
        let zone = crate::settings::get(self.state.db(), &p.tenant_id, "locale.timezone")
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string));
        match zone {
            Some(z) if known_zone(&z) => z,
            _ => "UTC".into(),
        }
    }
}

/// Whether the `date` filter knows the zone. The setting only checks the
/// shape of a zone name, and an unknown zone would fail every page with a
/// time on it.
fn known_zone(zone: &str) -> bool {
    let mut ctx = Context::new();
    ctx.insert("tz", zone);
    tera::Tera::one_off("{{ 0 | date(timezone=tz) }}", &ctx, false).is_ok()
}

/// A refusal of form input, shown above the form and at its field.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct FormError {
    /// The field at fault, if one is.
    pub field: Option<String>,
    /// What to do, in the request's language.
    pub message: String,
}

impl FormError {
    /// A form error for `err` if it is one the user can fix in the form
    /// (validation, taken e-mail, conflict); any other error is handed back.
    pub(crate) fn from_error(page: &Page<'_>, err: Error) -> std::result::Result<Self, Error> {
        let field = match &err {
            Error::Api {
                details: Some(d), ..
            } => d["field"].as_str().map(str::to_string),
            _ => None,
        };
        match err.code() {
            Code::ValidationFailed | Code::InvalidBody => {
                let message = match &field {
                    Some(f) => {
                        let specific = format!("error.invalid.{f}");
                        match page.catalog().get(&specific) {
                            Some(_) => page.text(&specific, &[]),
                            None => {
                                let label = page
                                    .catalog()
                                    .get(&format!("field.{f}"))
                                    .unwrap_or(f)
                                    .to_string();
                                page.text("error.invalid_field", &[("field", &label)])
                            }
                        }
                    }
                    None => page.text("error.invalid_form", &[]),
                };
                Ok(FormError { field, message })
            }
            Code::EmailTaken => Ok(FormError {
                field: Some("email".into()),
                message: page.text("error.email_taken", &[]),
            }),
            Code::Conflict => Ok(FormError {
                field: None,
                message: page.text("error.conflict", &[]),
            }),
            Code::LicenseLimitReached => {
                let (limit, max) = match &err {
                    Error::Api {
                        details: Some(d), ..
                    } => (
                        d["limit"].as_str().unwrap_or_default().to_string(),
                        d["max"].to_string(),
                    ),
                    _ => (String::new(), String::new()),
                };
                let what = page
                    .catalog()
                    .get(&format!("license.limit.{limit}"))
                    .unwrap_or(&limit)
                    .to_string();
                Ok(FormError {
                    field: None,
                    message: page.text(
                        "error.license_limit",
                        &[("max", max.as_str()), ("limit", what.as_str())],
                    ),
                })
            }
            _ => Err(err),
        }
    }

    /// The status a form re-rendered with this error answers with.
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::UNPROCESSABLE_ENTITY
    }

    /// Put a form's error (if any) into the template context as `error` and
    /// `error_field`; returns the status the page answers with.
    pub(crate) fn insert_into(error: &Option<FormError>, ctx: &mut tera::Context) -> StatusCode {
        ctx.insert(
            "error_field",
            error
                .as_ref()
                .and_then(|e| e.field.as_deref())
                .unwrap_or_default(),
        );
        ctx.insert("error", error);
        error.as_ref().map_or(StatusCode::OK, FormError::status)
    }
}
