//! SaaS subscriptions: plans, a tenant's subscription to one, the payment
//! webhook that moves it between states, and the module entitlements that
//! follow from it.
//!
//! * [`plans`] — what a tenant can subscribe to (operator-managed, `kontor plan ...`);
//! * [`lifecycle`] — a tenant's subscription and its transitions
//!   (start, activate, payment failed, cancel, ended);
//! * [`access`] — what a subscription's state means for its modules at a
//!   given time (active, or read-only after a grace) — pure, no database;
//! * [`sync`] — writing that into `module_entitlements` (source
//!   `subscription`) in the transaction of the change, and the periodic
//!   sweep that applies what time alone changes (a trial or a grace that ran out);
//! * [`webhook`] — payment events applied once each, by event id, signed
//!   with the `Kontor-Signature` header ([`crate::auth::signature`]);
//! * [`cli`] — `kontor plan ...` and `kontor subscription ...` for the operator.
//!
//! Who may do what: plans are the operator's (CLI). A tenant's owner starts
//! a subscription (onboarding wizard or `POST /api/v1/subscriptions`) and
//! cancels it. Activation is the payment's: the payment webhook, the
//! operator's `kontor subscription activate`, or the operator's billing
//! system calling `POST /api/v1/subscriptions/{id}/activate` with the
//! operator token. Expiry of any kind never deletes or hides data: modules
//! go read-only.

pub mod access;
pub mod cli;
pub mod lifecycle;
pub mod plans;
pub mod sync;
pub mod webhook;

use std::fmt;

pub use access::Policy;
pub use lifecycle::{Status, Subscription};
pub use plans::{Interval, Plan};

/// A secret from the configuration (the payment webhook secret, the
/// operator token). Its `Debug` never shows the value, so the configuration
/// can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Shortest secret accepted: anything shorter can be guessed.
    pub const MIN_LEN: usize = 16;

    /// `value` as a secret, or why it is not acceptable (never repeating it).
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.len() < Self::MIN_LEN {
            return Err(format!(
                "expected a random value of at least {} characters",
                Self::MIN_LEN
            ));
        }
        Ok(Secret(value.to_string()))
    }

    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        crate::auth::tokens::ct_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn secrets_are_never_shown_and_short_ones_are_refused() {
        let s = Secret::parse("whsec_0123456789abcdef").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(hidden)");
        assert!(s.matches("whsec_0123456789abcdef"));
        assert!(!s.matches("whsec_0123456789abcdeX"));
        let err = Secret::parse("short").unwrap_err();
        assert!(!err.contains("short"), "{err}");
    }

    #[test]
    fn payment_settings_come_from_the_configuration_with_secrets_hidden() {
        use crate::config::Config;
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        let defaults = Config::from_sources(None, &env(&[])).unwrap();
        assert_eq!(
            defaults.payment_grace_days,
            super::access::DEFAULT_GRACE_DAYS
        );
        assert!(defaults.payment_webhook_secret.is_none() && defaults.operator_token.is_none());

        let secret = "whsec_configured_0123456789";
        let c = Config::from_sources(
            None,
            &env(&[
                ("KONTOR_PAYMENT_WEBHOOK_SECRET", secret),
                ("KONTOR_PAYMENT_GRACE_DAYS", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(c.payment_grace_days, 3);
        assert!(c.payment_webhook_secret.as_ref().unwrap().matches(secret));
        assert!(!format!("{c:?}").contains(secret), "Debug hides the secret");

        for (key, value) in [
            ("KONTOR_PAYMENT_GRACE_DAYS", "91"),
            ("KONTOR_PAYMENT_GRACE_DAYS", "a week"),
            ("KONTOR_OPERATOR_TOKEN", "tooshort"),
        ] {
            let err = Config::from_sources(None, &env(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err =
            Config::from_sources(None, &env(&[("KONTOR_OPERATOR_TOKEN", "tooshort")])).unwrap_err();
        assert!(!err.to_string().contains("tooshort"), "{err}");
    }
}
