//! The module's log lines, as the host logs them.
//!
//! The host writes every guest `log` call to `tracing` under the target
//! [`kontor::modules::caps::LOG_TARGET`], with the module id and the tenant
//! of the call. A process-wide layer keeps those lines; each harness reads
//! the lines of its own tenant, so tests running in parallel (each with its
//! own host and tenant) never see each other's lines.

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use kontor::modules::caps::LOG_TARGET;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// One line a module logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The module that logged it.
    pub module: String,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// What it said.
    pub message: String,
    tenant: String,
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}] {}", self.level, self.module, self.message)
    }
}

/// Every module line of this process (all harnesses), oldest first.
static LINES: Mutex<Vec<LogLine>> = Mutex::new(Vec::new());
/// Whether this crate's subscriber became the global one.
static CAPTURING: OnceLock<bool> = OnceLock::new();

/// Install the capturing subscriber, once per process. Besides keeping
/// module lines, it prints the host's warnings and errors (or what
/// `KONTOR_LOG` asks for) through the test writer, so they show with a
/// failing test's output. Returns false when the test binary had already
/// set its own global subscriber: then no lines can be captured.
pub(crate) fn install() -> bool {
    *CAPTURING.get_or_init(|| {
        let print = EnvFilter::try_from_env("KONTOR_LOG")
            .unwrap_or_else(|_| EnvFilter::new("warn,kontor::module=info"));
        tracing_subscriber::registry()
            .with(
                Capture.with_filter(tracing_subscriber::filter::filter_fn(|m| {
                    m.target() == LOG_TARGET
                })),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(print),
            )
            .try_init()
            .is_ok()
    })
}

/// The lines logged in calls for `tenant`, oldest first.
pub(crate) fn of_tenant(tenant: &str) -> Vec<LogLine> {
    LINES
        .lock()
        .map(|lines| {
            lines
                .iter()
                .filter(|l| l.tenant == tenant)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Forget the lines of `tenant` (its harness is gone).
pub(crate) fn forget(tenant: &str) {
    if let Ok(mut lines) = LINES.lock() {
        lines.retain(|l| l.tenant != tenant);
    }
}

struct Capture;

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            Level::TRACE => "trace",
            Level::DEBUG => "debug",
            Level::INFO => "info",
            Level::WARN => "warn",
            Level::ERROR => "error",
        };
        if let Ok(mut lines) = LINES.lock() {
            lines.push(LogLine {
                module: fields.module,
                level: level.to_string(),
                message: fields.message,
                tenant: fields.tenant,
            });
        }
    }
}

#[derive(Default)]
struct Fields {
    module: String,
    tenant: String,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "module" => self.module = value.to_string(),
            "tenant" => self.tenant = value.to_string(),
            "message" => self.message = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        match field.name() {
            "module" => self.module = text,
            "tenant" => self.tenant = text,
            "message" => self.message = text,
            _ => {}
        }
    }
}
