//! E-mail through the host's SMTP relay, from templates the module ships.
//!
//! Needs `capabilities = ["notify"]` and the templates in `module.toml`
//! (rendered by the host with Tera; the HTML part is escaped):
//!
//! ```toml
//! capabilities = ["notify"]
//!
//! [[templates]]
//! name = "welcome"
//! subject = "Welcome, {{ name }}"
//! text = "Hello {{ name }}, your account is ready."
//! html = "<p>Hello {{ name }}, your account is ready.</p>"
//! ```
//!
//! ```ignore
//! let message_id = kontor_sdk::notify::Email::template("welcome")
//!     .to("ada@example.com")
//!     .data(&serde_json::json!({ "name": "Ada" }))
//!     .send()?;
//! ```
//!
//! Sending queues the message: the host's job queue delivers it with
//! retries, and the administrator sees it in the e-mail log. The returned
//! Message-ID threads later replies (`in_reply_to`).

use crate::bindings::kontor::module::notify as raw;

pub use raw::Error;

/// An e-mail to send from one of the module's templates.
#[derive(Debug, Clone)]
pub struct Email {
    to: Vec<String>,
    template: String,
    data: String,
    reply_to: Option<String>,
    in_reply_to: Option<String>,
}

impl Email {
    /// An e-mail from the template `name` (declared under `[[templates]]`).
    pub fn template(name: &str) -> Self {
        Email {
            to: Vec::new(),
            template: name.to_string(),
            data: "{}".into(),
            reply_to: None,
            in_reply_to: None,
        }
    }

    /// Add a recipient (`ada@example.com` or `Ada <ada@example.com>`).
    pub fn to(mut self, address: &str) -> Self {
        self.to.push(address.to_string());
        self
    }

    /// The template's variables, as any value that serializes to a JSON object.
    pub fn data<T: serde::Serialize>(mut self, data: &T) -> Self {
        self.data = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
        self
    }

    /// Where replies go, if not to the install's sender address.
    pub fn reply_to(mut self, address: &str) -> Self {
        self.reply_to = Some(address.to_string());
        self
    }

    /// The Message-ID of the message this one answers, for threading.
    pub fn in_reply_to(mut self, message_id: &str) -> Self {
        self.in_reply_to = Some(message_id.to_string());
        self
    }

    /// Queue the e-mail; its Message-ID. An error says why the host refused
    /// (capability, unknown template, bad address, missing variable).
    pub fn send(self) -> Result<String, Error> {
        raw::send(&raw::Email {
            to: self.to,
            template: self.template,
            data: self.data,
            reply_to: self.reply_to,
            in_reply_to: self.in_reply_to,
        })
    }
}
