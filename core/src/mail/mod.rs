//! E-mail.
//!
//! Kontor sends every message the same way, whoever asks (the core, the
//! license reminders, a module through the `notify` capability):
//!
//! 1. [`outbox::queue`] writes the message to the e-mail log and queues a
//!    `core.mail.send` job, in one transaction;
//! 2. the job ([`outbox::deliver`]) hands it to the SMTP relay from the
//!    configuration ([`Mailer`]); a refusal or a relay that is down is
//!    retried with the job queue's backoff, and a message whose attempts are
//!    used up shows as `failed` in the log, never silently lost.
//!
//! The relay is install-wide (`smtp_host`, `smtp_port`, `smtp_tls`,
//! `smtp_username`, `smtp_password`, `mail_from` in `kontor.toml` or as
//! `KONTOR_*` variables), as in GitLab or Mattermost: one operator, one relay.

pub mod outbox;
pub mod templates;

use std::fmt;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host or a test sink.
    None,
    /// Connect in plain text, then require `STARTTLS` (port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl SmtpTls {
    /// The mode named in the configuration: `none`, `starttls` or `tls`.
    pub fn parse(name: &str) -> Option<SmtpTls> {
        match name.trim().to_ascii_lowercase().as_str() {
            "none" => Some(SmtpTls::None),
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            _ => None,
        }
    }

    /// The name the configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SmtpTls::None => "none",
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
        }
    }

    /// The usual port of the mode (25, 587, 465).
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

/// The relay's password. Its `Debug` never shows it, so the configuration
/// can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpPassword(String);

impl SmtpPassword {
    /// Wrap a password.
    pub fn new(password: String) -> Self {
        SmtpPassword(password)
    }

    /// The password, for the one place that sends it to the relay.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SmtpPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SmtpPassword(hidden)")
    }
}

/// The SMTP relay Kontor sends through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// Host name of the relay.
    pub host: String,
    /// Port of the relay.
    pub port: u16,
    /// Connection protection.
    pub tls: SmtpTls,
    /// User name, when the relay wants a login.
    pub username: Option<String>,
    /// Password, with the user name.
    pub password: Option<SmtpPassword>,
    /// The sender, `Name <address>` or a bare address.
    pub from: String,
}

/// `text` as a mailbox (`Name <address>` or `address`), normalized; or why
/// it is not one.
pub fn parse_mailbox(text: &str) -> Result<String, String> {
    text.trim()
        .parse::<Mailbox>()
        .map(|m| m.to_string())
        .map_err(|e| format!("not an e-mail address ({e})"))
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// No relay is configured.
    #[error("no SMTP relay is configured: set smtp_host and mail_from in kontor.toml (or KONTOR_SMTP_HOST and KONTOR_MAIL_FROM)")]
    NotConfigured,
    /// The message itself is not valid (an address, a header).
    #[error("the message is not valid: {0}")]
    Invalid(String),
    /// The relay could not be reached or refused the message.
    #[error("the SMTP relay {relay} did not take the message: {message}")]
    Relay {
        /// `host:port`.
        relay: String,
        /// What happened, without credentials.
        message: String,
    },
}

/// One message, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Recipient addresses.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain text body.
    pub text: String,
    /// HTML alternative, if any.
    pub html: Option<String>,
    /// Where replies go, if not to the sender.
    pub reply_to: Option<String>,
    /// The `Message-ID` of the message this one answers (threading).
    pub in_reply_to: Option<String>,
    /// This message's `Message-ID` (`<...@...>`).
    pub message_id: String,
}

/// Sends messages through the configured relay.
#[derive(Clone)]
pub struct Mailer {
    relay: Option<Relay>,
}

#[derive(Clone)]
struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    name: String,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relay {
            Some(r) => write!(f, "Mailer({})", r.name),
            None => f.write_str("Mailer(not configured)"),
        }
    }
}

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

impl Mailer {
    /// A mailer for `settings`; without settings every send fails with
    /// [`MailError::NotConfigured`].
    pub fn new(settings: Option<&SmtpSettings>) -> Result<Mailer, MailError> {
        let Some(settings) = settings else {
            return Ok(Mailer { relay: None });
        };
        let name = format!("{}:{}", settings.host, settings.port);
        let relay_error = |e: lettre::transport::smtp::Error| MailError::Relay {
            relay: name.clone(),
            message: e.to_string(),
        };
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => {
                Tls::Required(TlsParameters::new(settings.host.clone()).map_err(relay_error)?)
            }
            SmtpTls::Tls => {
                Tls::Wrapper(TlsParameters::new(settings.host.clone()).map_err(relay_error)?)
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Invalid(format!("mail_from: {e}")))?;
        Ok(Mailer {
            relay: Some(Relay {
                transport: builder.build(),
                from,
                name,
            }),
        })
    }

    /// Whether a relay is configured.
    pub fn is_configured(&self) -> bool {
        self.relay.is_some()
    }

    /// The domain of the sender address, for `Message-ID`s.
    pub fn domain(&self) -> String {
        self.relay
            .as_ref()
            .map(|r| r.from.email.domain().to_string())
            .unwrap_or_else(|| "kontor.invalid".into())
    }

    /// A new `Message-ID` for a message from this install.
    pub fn new_message_id(&self) -> String {
        format!("<{}@{}>", uuid::Uuid::new_v4(), self.domain())
    }

    /// Send `message` now, in one SMTP conversation.
    pub async fn send(&self, message: &Outgoing) -> Result<(), MailError> {
        let relay = self.relay.as_ref().ok_or(MailError::NotConfigured)?;
        let email = build(&relay.from, message)?;
        relay
            .transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Relay {
                relay: relay.name.clone(),
                message: e.to_string(),
            })
    }
}

/// The MIME message for `message` from `from`.
fn build(from: &Mailbox, message: &Outgoing) -> Result<Message, MailError> {
    let invalid = |field: &str, e: &dyn fmt::Display| MailError::Invalid(format!("{field}: {e}"));
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(message.subject.clone())
        .message_id(Some(message.message_id.clone()));
    if message.to.is_empty() {
        return Err(MailError::Invalid("no recipient".into()));
    }
    for to in &message.to {
        builder = builder.to(to.parse::<Mailbox>().map_err(|e| invalid("to", &e))?);
    }
    if let Some(reply_to) = &message.reply_to {
        builder = builder.reply_to(
            reply_to
                .parse::<Mailbox>()
                .map_err(|e| invalid("reply_to", &e))?,
        );
    }
    if let Some(parent) = &message.in_reply_to {
        builder = builder
            .in_reply_to(parent.clone())
            .references(parent.clone());
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(message.text.clone());
    let email = match &message.html {
        Some(html) => builder.multipart(
            MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
        ),
        None => builder.singlepart(text),
    };
    email.map_err(|e| invalid("message", &e))
}

/// Send a test message to `to` through `settings` right away, outside the
/// queue: the installer and the admin's "send a test e-mail" use it to
/// prove the relay works.
pub async fn send_test(settings: &SmtpSettings, to: &str) -> Result<(), MailError> {
    let mailer = Mailer::new(Some(settings))?;
    let to = parse_mailbox(to).map_err(MailError::Invalid)?;
    let message = Outgoing {
        to: vec![to],
        subject: "Kontor test e-mail".into(),
        text: format!(
            "This is a test e-mail from Kontor.\n\nIt was sent through {}:{} ({}); \
             if you can read it, Kontor can send e-mail.\n",
            settings.host,
            settings.port,
            settings.tls.as_str()
        ),
        html: None,
        reply_to: None,
        in_reply_to: None,
        message_id: mailer.new_message_id(),
    };
    mailer.send(&message).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink_settings(port: u16) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: Some("relay-user".into()),
            password: Some(SmtpPassword::new("relay-password".into())),
            from: "Kontor Test <kontor@example.test>".into(),
        }
    }

    #[tokio::test]
    async fn a_test_message_goes_through_a_real_smtp_conversation() {
        let sink = kontor_smtp_sink::SmtpSink::start().unwrap();
        send_test(&sink_settings(sink.port()), "ada@example.test")
            .await
            .unwrap();
        let received = sink.messages();
        assert_eq!(received.len(), 1);
        let m = &received[0];
        assert_eq!(m.from, "kontor@example.test");
        assert_eq!(m.to, vec!["ada@example.test".to_string()]);
        assert_eq!(m.auth_user.as_deref(), Some("relay-user"));
        assert_eq!(m.auth_password.as_deref(), Some("relay-password"));
        assert_eq!(m.subject().as_deref(), Some("Kontor test e-mail"));
        assert!(m.text().contains("Kontor can send e-mail"), "{}", m.text());
        assert!(m.header("Message-ID").unwrap().ends_with("@example.test>"));
    }

    #[tokio::test]
    async fn a_relay_that_refuses_or_is_down_is_an_error_naming_it_without_the_password() {
        let sink = kontor_smtp_sink::SmtpSink::start().unwrap();
        sink.fail_next(1);
        let e = send_test(&sink_settings(sink.port()), "ada@example.test")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{}", sink.port())),
            "{text}"
        );
        assert!(!text.contains("relay-password"), "{text}");

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = send_test(&sink_settings(port), "ada@example.test")
            .await
            .unwrap_err();
        assert!(matches!(e, MailError::Relay { .. }), "{e}");
        assert!(format!("{:?}", sink_settings(port)).contains("hidden"));
        assert!(!format!("{:?}", sink_settings(port)).contains("relay-password"));
    }

    #[tokio::test]
    async fn html_alternatives_and_threading_headers_are_sent() {
        let sink = kontor_smtp_sink::SmtpSink::start().unwrap();
        let mailer = Mailer::new(Some(&sink_settings(sink.port()))).unwrap();
        let message = Outgoing {
            to: vec![
                "ada@example.test".into(),
                "Grace <grace@example.test>".into(),
            ],
            subject: "Grüezi".into(),
            text: "Grüezi Ada".into(),
            html: Some("<p>Grüezi Ada</p>".into()),
            reply_to: Some("support@example.test".into()),
            in_reply_to: Some("<parent@example.test>".into()),
            message_id: mailer.new_message_id(),
        };
        mailer.send(&message).await.unwrap();
        let m = &sink.messages()[0];
        assert_eq!(m.to.len(), 2);
        assert_eq!(m.text(), "Grüezi Ada");
        assert_eq!(m.html().as_deref(), Some("<p>Grüezi Ada</p>"));
        assert_eq!(
            m.header("In-Reply-To").as_deref(),
            Some("<parent@example.test>")
        );
        assert_eq!(
            m.header("Message-ID").as_deref(),
            Some(message.message_id.as_str())
        );

        let unconfigured = Mailer::new(None).unwrap();
        assert!(matches!(
            unconfigured.send(&message).await,
            Err(MailError::NotConfigured)
        ));
        let mut bad = message.clone();
        bad.to = vec!["not an address".into()];
        assert!(matches!(
            mailer.send(&bad).await,
            Err(MailError::Invalid(_))
        ));
    }
}
