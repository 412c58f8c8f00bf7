//! The handlers of the UI pages, one file per area.
//!
//! A handler extracts a [`super::UiUser`] (anonymous requests are sent to
//! `/login`), builds its page in an inner function returning
//! `Result<Response>`, and lets [`super::render::Page::finish`] turn an
//! error into the error page of its status.

pub(crate) mod customers;
pub(crate) mod dashboard;
pub(crate) mod guest_csrf;
pub(crate) mod license;
pub(crate) mod login;
pub(crate) mod mail;
pub(crate) mod module_admin;
pub(crate) mod module_settings;
pub(crate) mod modules;
pub(crate) mod onboarding;
pub(crate) mod users;

use serde_json::Value;

use super::render::Page;

/// An optional text field of a form or query: blank means absent.
fn present(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// A timeline entry in the request's language. The core's own kinds are
/// translated; a module's entries show the summary it wrote.
fn activity_text(page: &Page<'_>, kind: &str, summary: &str, data: &Value) -> String {
    match kind {
        "customer.created" => page.text("timeline.customer_created", &[]),
        "customer.updated" => {
            let fields: Vec<String> = data["fields"]
                .as_array()
                .map(|fs| {
                    fs.iter()
                        .filter_map(Value::as_str)
                        .map(|f| {
                            page.catalog()
                                .get(&format!("field.{f}"))
                                .unwrap_or(f)
                                .to_string()
                        })
                        .collect()
                })
                .unwrap_or_default();
            page.text(
                "timeline.customer_updated",
                &[("fields", &fields.join(", "))],
            )
        }
        // The preview of the note and the contact's name are kept only in
        // the summary the core wrote, after its fixed English prefix.
        "note.added" => page.text(
            "timeline.note_added",
            &[("preview", summary.strip_prefix("Note: ").unwrap_or(summary))],
        ),
        "contact.added" => page.text(
            "timeline.contact_added",
            &[(
                "name",
                summary.strip_prefix("Contact added: ").unwrap_or(summary),
            )],
        ),
        _ => summary.to_string(),
    }
}
