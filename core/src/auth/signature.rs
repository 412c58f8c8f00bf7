//! The `Kontor-Signature` header of requests that come from a machine, not
//! a user — payment webhooks ([`crate::subscriptions::webhook`]) and the
//! signed hooks of modules ([`crate::web::modules`]) — the way Stripe signs
//! its events:
//!
//! ```text
//! Kontor-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//! ```
//!
//! `v1` is the hex HMAC-SHA256, keyed with the shared secret, of
//! `"<t>.<raw body>"`. Several `v1` entries may be present (a sender
//! rotating its secret signs with both); one match is enough. Other schemes
//! (`v0`) are ignored. The timestamp must be within five minutes of the
//! server's clock, so a captured request cannot be replayed later; within
//! those minutes the receiver stops replays (payment events by their id).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Code, Error};

/// The header's name (HTTP header names are case-insensitive).
pub const HEADER: &str = "kontor-signature";

/// How far the signed time may be from the server's clock, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// `v1` entries looked at, at most: each is a comparison, and no honest
/// sender needs more than a few.
const MAX_SIGNATURES: usize = 8;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The header is missing or not `t=<unix seconds>,v1=<hex>[,v1=...]`.
    Malformed,
    /// The signed time is more than [`TOLERANCE_SECS`] from now.
    Stale,
    /// No `v1` is the HMAC of this body and time with the configured secret.
    Mismatch,
}

impl Refusal {
    /// The `details.reason` of the error.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Stale => "stale",
            Refusal::Mismatch => "mismatch",
        }
    }
}

impl Refusal {
    /// The refusal as the API answers it; `secret` names the secret the
    /// sender must share with this server (`the payment webhook secret`).
    pub fn error(self, secret: &str) -> Error {
        let message = match self {
            Refusal::Malformed => {
                "the Kontor-Signature header is missing or malformed; expected `t=<unix seconds>,v1=<hex HMAC-SHA256>`".to_string()
            }
            Refusal::Stale => {
                "the Kontor-Signature timestamp is more than 5 minutes from the server's time; check both clocks".to_string()
            }
            Refusal::Mismatch => format!(
                "the Kontor-Signature does not match the body; check that the sender and this server use the same {secret}"
            ),
        };
        Error::new(Code::WebhookSignatureInvalid, message)
            .with_details(serde_json::json!({ "reason": self.reason() }))
    }
}

struct Parsed {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<Parsed, Refusal> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(Refusal::Malformed)?;
        match key {
            "t" => {
                let t = value.parse::<i64>().map_err(|_| Refusal::Malformed)?;
                if timestamp.replace(t).is_some() {
                    return Err(Refusal::Malformed);
                }
            }
            "v1" => {
                let sig = hex::decode(value).map_err(|_| Refusal::Malformed)?;
                if sig.len() != 32 {
                    return Err(Refusal::Malformed);
                }
                signatures.push(sig);
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Refusal::Malformed)?;
    if signatures.is_empty() || signatures.len() > MAX_SIGNATURES {
        return Err(Refusal::Malformed);
    }
    Ok(Parsed {
        timestamp,
        signatures,
    })
}

fn mac(key: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; the error case cannot happen.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Check `header` against `body` at `now_ms`, with `key` the shared
/// secret's bytes. The signature is checked before the time (as Stripe
/// does), and compared in constant time.
pub fn verify(key: &[u8], header: Option<&str>, body: &[u8], now_ms: i64) -> Result<(), Refusal> {
    let parsed = parse(header.ok_or(Refusal::Malformed)?)?;
    let expected = mac(key, parsed.timestamp, body);
    let matched = parsed.signatures.iter().fold(false, |any, sig| {
        crate::auth::tokens::ct_eq(&expected, sig) | any
    });
    if !matched {
        return Err(Refusal::Mismatch);
    }
    if (now_ms.div_euclid(1000) - parsed.timestamp).abs() > TOLERANCE_SECS {
        return Err(Refusal::Stale);
    }
    Ok(())
}

/// The header value a sender puts on `body` at `timestamp` (Unix seconds)
/// with `key` the shared secret's bytes: for tests (`kontor-test` signs
/// module hooks with it), and to show operators what a sender computes.
pub fn header_value(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(key, timestamp, body))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> &'static [u8] {
        b"whsec_test_0123456789abcdef"
    }

    const NOW: i64 = 1_767_225_600_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    /// A known answer of Stripe's scheme, computed independently:
    /// `printf '%s' '1767225600.{"id":"evt_1","type":"invoice.paid"}' | openssl dgst -sha256 -hmac whsec_test_0123456789abcdef`.
    #[test]
    fn the_mac_is_hmac_sha256_of_time_dot_body() {
        assert_eq!(
            header_value(secret(), NOW / 1000, BODY),
            "t=1767225600,v1=33dd4bf930693189a3f672ff3cbacd16347a817a521fb033ad3c66151427b612"
        );
    }

    #[test]
    fn each_way_a_signature_can_be_wrong_is_refused_with_its_reason() {
        let s = secret();
        let t = NOW / 1000;
        let good = header_value(s, t, BODY);
        let other: &[u8] = b"whsec_other_0123456789abcdef";
        let sig = good.split("v1=").nth(1).unwrap().to_string();
        let cases: Vec<(String, Result<(), Refusal>, &str)> = vec![
            (good.clone(), Ok(()), "valid"),
            (
                format!("v0=abc, t={t} , v1={sig}"),
                Ok(()),
                "order, spaces, other schemes",
            ),
            (
                format!("t={t},v1={},v1={sig}", "00".repeat(32)),
                Ok(()),
                "one of several v1 matches",
            ),
            (
                header_value(other, t, BODY),
                Err(Refusal::Mismatch),
                "other secret",
            ),
            (
                format!("t={},v1={sig}", t + 1),
                Err(Refusal::Mismatch),
                "time changed",
            ),
            (
                header_value(s, t - 301, BODY),
                Err(Refusal::Stale),
                "too old",
            ),
            (
                header_value(s, t + 301, BODY),
                Err(Refusal::Stale),
                "too far ahead",
            ),
            (
                header_value(s, t - 300, BODY),
                Ok(()),
                "just inside the tolerance",
            ),
            (format!("v1={sig}"), Err(Refusal::Malformed), "no time"),
            (format!("t={t}"), Err(Refusal::Malformed), "no signature"),
            (
                format!("t=soon,v1={sig}"),
                Err(Refusal::Malformed),
                "time not a number",
            ),
            (format!("t={t},v1=xyz"), Err(Refusal::Malformed), "not hex"),
            (
                format!("t={t},v1=abcd"),
                Err(Refusal::Malformed),
                "too short",
            ),
            (
                format!("t={t},t={t},v1={sig}"),
                Err(Refusal::Malformed),
                "two times",
            ),
            ("garbage".into(), Err(Refusal::Malformed), "no pairs"),
            (String::new(), Err(Refusal::Malformed), "empty"),
        ];
        for (header, expected, why) in cases {
            assert_eq!(
                verify(s, Some(&header), BODY, NOW),
                expected,
                "{why}: {header}"
            );
        }
        assert_eq!(verify(s, None, BODY, NOW), Err(Refusal::Malformed));
        assert_eq!(
            verify(s, Some(&good), b"{\"id\":\"evt_2\"}", NOW),
            Err(Refusal::Mismatch),
            "body changed"
        );
    }

    #[test]
    fn a_mismatch_names_the_secret_the_sender_must_share() {
        let e = Refusal::Mismatch.error("module secret `inbound_secret`");
        assert_eq!(e.code(), Code::WebhookSignatureInvalid);
        let text = e.to_string();
        assert!(text.contains("module secret `inbound_secret`"), "{text}");
        assert!(!text.contains("payment"), "{text}");
    }
}
