//! E-mail templates modules ship in their manifest (`[[templates]]`),
//! rendered with Tera when a module sends through the `notify` capability.
//!
//! ```toml
//! [[templates]]
//! name = "ticket_opened"
//! subject = "[{{ number }}] {{ subject }}"
//! text = "Hello {{ customer_name }}, we received your ticket {{ number }}."
//! html = "<p>Hello {{ customer_name }}, we received your ticket <b>{{ number }}</b>.</p>"
//! ```
//!
//! The module passes the variables as a JSON object. The HTML part is
//! escaped (a customer's name cannot inject markup); the subject and the text
//! are not, as they are not HTML. Every template is compiled when the
//! manifest is read, so a syntax error stops the install, not a send.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most templates one module ships.
pub const MAX_TEMPLATES: usize = 64;

/// Longest template part, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 64 * 1024;

/// A template a module ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The name the module sends it by: lower-case letters, digits and `_`.
    pub name: String,
    /// The subject line (one line once rendered).
    pub subject: String,
    /// The plain text body.
    pub text: String,
    /// An HTML alternative, escaped as it is rendered.
    #[serde(default)]
    pub html: Option<String>,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain text body.
    pub text: String,
    /// HTML alternative.
    pub html: Option<String>,
}

impl Template {
    fn parts(&self) -> impl Iterator<Item = (&'static str, &str, bool)> {
        [
            ("subject", Some(self.subject.as_str()), false),
            ("text", Some(self.text.as_str()), false),
            ("html", self.html.as_deref(), true),
        ]
        .into_iter()
        .filter_map(|(field, body, escape)| body.map(|b| (field, b, escape)))
    }

    /// Check that every part compiles: `Err((field, message))`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (field, body, _) in self.parts() {
            if body.len() > MAX_TEMPLATE_LEN {
                return Err((field, format!("longer than {MAX_TEMPLATE_LEN} bytes")));
            }
            let mut tera = tera::Tera::default();
            tera.add_raw_template(field, body)
                .map_err(|e| (field, describe(&e)))?;
        }
        Ok(())
    }

    /// Render with `data` (a JSON object of variables). A missing variable
    /// is an error naming it, not an empty string in a customer's inbox.
    pub fn render(&self, data: &Value) -> Result<Rendered, String> {
        if !data.is_object() {
            return Err("the template data must be a JSON object".into());
        }
        let context = tera::Context::from_value(data.clone()).map_err(|e| e.to_string())?;
        let mut out = Rendered {
            subject: String::new(),
            text: String::new(),
            html: None,
        };
        for (field, body, escape) in self.parts() {
            let rendered = tera::Tera::one_off(body, &context, escape)
                .map_err(|e| format!("template `{}` ({field}): {}", self.name, describe(&e)))?;
            match field {
                "subject" => {
                    out.subject = rendered.split_whitespace().collect::<Vec<_>>().join(" ")
                }
                "text" => out.text = rendered,
                _ => out.html = Some(rendered),
            }
        }
        Ok(out)
    }
}

/// Tera's error with its causes, on one line.
fn describe(e: &tera::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> Template {
        Template {
            name: "ticket_opened".into(),
            subject: "[{{ number }}]\n{{ subject }}".into(),
            text: "Hello {{ name }}, ticket {{ number }}.".into(),
            html: Some("<p>Hello {{ name }}</p>".into()),
        }
    }

    #[test]
    fn renders_escaping_only_html_and_keeping_the_subject_on_one_line() {
        let r = template()
            .render(
                &json!({ "number": "T-2026-000001", "subject": "Server down", "name": "Ada <b>" }),
            )
            .unwrap();
        assert_eq!(r.subject, "[T-2026-000001] Server down");
        assert_eq!(r.text, "Hello Ada <b>, ticket T-2026-000001.");
        assert_eq!(r.html.as_deref(), Some("<p>Hello Ada &lt;b&gt;</p>"));
    }

    #[test]
    fn a_missing_variable_or_bad_syntax_is_an_error_naming_it() {
        let e = template().render(&json!({ "number": "1" })).unwrap_err();
        assert!(e.contains("subject") || e.contains("name"), "{e}");
        assert!(template().render(&json!([1])).is_err());
        let mut bad = template();
        bad.text = "{{ unclosed".into();
        let (field, message) = bad.check().unwrap_err();
        assert_eq!(field, "text");
        assert!(!message.is_empty());
        assert!(template().check().is_ok());
    }
}
