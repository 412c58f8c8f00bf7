//! The license file: armored text around base64 of a JSON envelope that
//! holds the payload bytes, the key id and an ed25519 signature.
//!
//! ```text
//! -----BEGIN KONTOR LICENSE-----
//! base64 of {"payload":"<base64 of the payload JSON>",
//!            "key_id":"<16 hex>","signature":"<base64, 64 bytes>"}
//! -----END KONTOR LICENSE-----
//! ```
//!
//! The signature covers `"kontor-license:" || payload bytes`: the exact
//! bytes that were signed travel in the file, so nothing is re-serialised
//! before checking, and the prefix keeps a license signature from being
//! valid for anything else the key might sign. The payload is parsed only
//! after its signature verified, so untrusted JSON never reaches the
//! payload parser.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};

use crate::modules::trust::key_id;

use super::error::LicenseError;
use super::keys::{KeyKind, KeySet, TEST_KEY};
use super::payload::{LicensePayload, FORMAT_VERSION};

/// First line of a license file.
pub const BEGIN: &str = "-----BEGIN KONTOR LICENSE-----";
/// Last line of a license file.
pub const END: &str = "-----END KONTOR LICENSE-----";
/// What the signature covers before the payload bytes.
pub const SIGNATURE_DOMAIN: &[u8] = b"kontor-license:";
/// Larger input is refused before decoding; real licenses are ~1 KiB.
pub const MAX_LICENSE_BYTES: usize = 64 * 1024;
/// How far `issued_at` and `valid_from` may lie ahead of the server's clock:
/// the vendor's and the server's clocks differ a little, and a license
/// issued "now" must install at once.
pub const CLOCK_DRIFT_MS: i64 = 5 * 60 * 1000;
const LINE_WIDTH: usize = 64;

/// The JSON inside the armor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    payload: String,
    key_id: String,
    signature: String,
}

/// A license whose signature verified with a trusted key. Only
/// [`verify`] makes one, so holding a `License` means that check passed;
/// the checks that depend on time and place are [`License::check_usable`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct License {
    payload: LicensePayload,
    key_id: String,
    key_kind: KeyKind,
    #[serde(skip)]
    signed_payload: Vec<u8>,
}

/// The installation a license is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Made once per install and kept in the database.
    pub id: String,
    /// Host of the configured public URL, if any.
    pub hostname: Option<String>,
}

impl License {
    /// What the license says.
    pub fn payload(&self) -> &LicensePayload {
        &self.payload
    }

    /// The id of the key that signed it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether a vendor key or the test key signed it.
    pub fn key_kind(&self) -> KeyKind {
        self.key_kind
    }

    /// The exact payload bytes the signature covers.
    pub fn signed_payload(&self) -> &[u8] {
        &self.signed_payload
    }

    /// Refuse a license that cannot be used at `now`: issued in the future
    /// (beyond [`CLOCK_DRIFT_MS`]), not yet valid, or expired. The
    /// first is checked first, because it means the clock is wrong and the
    /// other two answers would be too.
    pub fn check_time(&self, now: i64) -> Result<(), LicenseError> {
        let p = &self.payload;
        if p.issued_at > now.saturating_add(CLOCK_DRIFT_MS) {
            return Err(LicenseError::IssuedInFuture {
                issued_at: p.issued_at,
                now,
            });
        }
        if !self.has_started(now) {
            return Err(LicenseError::NotYetValid {
                valid_from: p.valid_from,
                now,
            });
        }
        match p.expires_at {
            Some(expired_at) if now >= expired_at => Err(LicenseError::Expired { expired_at, now }),
            _ => Ok(()),
        }
    }

    /// Whether `valid_from` has come at `now` (within [`CLOCK_DRIFT_MS`]).
    pub fn has_started(&self, now: i64) -> bool {
        now.saturating_add(CLOCK_DRIFT_MS) >= self.payload.valid_from
    }

    /// Refuse a license bound to another installation. An unbound license
    /// (the default) fits every installation.
    pub fn check_instance(&self, instance: &Instance) -> Result<(), LicenseError> {
        let Some(binding) = &self.payload.instance else {
            return Ok(());
        };
        if let Some(id) = &binding.instance_id {
            if *id != instance.id {
                return Err(LicenseError::WrongInstance {
                    reason: format!(
                        "it is bound to instance id {id}, and this installation's id is {}",
                        instance.id
                    ),
                });
            }
        }
        if let Some(host) = &binding.hostname {
            let ours = instance.hostname.as_deref().map(normalise_host);
            if ours.as_deref() != Some(normalise_host(host).as_str()) {
                return Err(LicenseError::WrongInstance {
                    reason: match instance.hostname.as_deref() {
                        Some(ours) => format!(
                            "it is bound to the host name {host}, and this installation's public URL is on {ours}"
                        ),
                        None => format!(
                            "it is bound to the host name {host}, and this installation has no public URL (set public_url / KONTOR_PUBLIC_URL)"
                        ),
                    },
                });
            }
        }
        Ok(())
    }

    /// Both checks: what install requires.
    pub fn check_usable(&self, now: i64, instance: &Instance) -> Result<(), LicenseError> {
        self.check_time(now)?;
        self.check_instance(instance)
    }
}

fn normalise_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Sign `payload` with `key` and return the armored license text: the
/// vendor side of licensing (`kontor license issue`).
pub fn issue(key: &SigningKey, payload: &LicensePayload) -> Result<String, LicenseError> {
    payload.validate().map_err(|reason| LicenseError::BadJson {
        part: "payload",
        reason,
    })?;
    let bytes = serde_json::to_vec(payload).map_err(|e| LicenseError::BadJson {
        part: "payload",
        reason: e.to_string(),
    })?;
    Ok(seal(key, &bytes))
}

/// Sign arbitrary payload bytes and armor them. [`issue`] checks the
/// payload first; tests use this directly to sign what `issue` refuses.
pub(crate) fn seal(key: &SigningKey, payload: &[u8]) -> String {
    let signature = key.sign(&signed_message(payload));
    let envelope = Envelope {
        payload: BASE64.encode(payload),
        key_id: key_id(&key.verifying_key()),
        signature: BASE64.encode(signature.to_bytes()),
    };
    // Serialising three strings cannot fail.
    let json = serde_json::to_vec(&envelope).unwrap_or_default();
    armor(&json)
}

/// Armor envelope bytes: base64 in lines of 64 characters between the
/// BEGIN and END lines.
pub(crate) fn armor(envelope: &[u8]) -> String {
    let body = BASE64.encode(envelope);
    let mut out = String::with_capacity(body.len() + body.len() / LINE_WIDTH + 64);
    out.push_str(BEGIN);
    out.push('\n');
    // Base64 is ASCII, so every chunk is valid UTF-8.
    for line in body.as_bytes().chunks(LINE_WIDTH) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    [SIGNATURE_DOMAIN, payload].concat()
}

/// Read and verify a license file against `keys`. Everything but time and
/// place: armor, base64, envelope, key, signature, format version and the
/// payload's fields. Whitespace around and inside the armor is ignored, so
/// a license pasted from an e-mail still reads.
pub fn verify(input: &[u8], keys: &KeySet) -> Result<License, LicenseError> {
    let envelope = dearmor(input)?;
    let envelope: Envelope =
        serde_json::from_slice(&envelope).map_err(|e| LicenseError::BadJson {
            part: "envelope",
            reason: e.to_string(),
        })?;
    let shown_id = shorten(&envelope.key_id);
    let Some((key, key_kind)) = keys.get(&envelope.key_id) else {
        return Err(LicenseError::UnknownKey {
            test_key: envelope.key_id == TEST_KEY.0,
            key_id: shown_id,
        });
    };
    let payload = BASE64
        .decode(&envelope.payload)
        .map_err(|_| LicenseError::BadBase64 {
            part: "the payload",
        })?;
    let signature = BASE64
        .decode(&envelope.signature)
        .map_err(|_| LicenseError::BadBase64 {
            part: "the signature",
        })?;
    let bad_signature = || LicenseError::BadSignature {
        key_id: shown_id.clone(),
    };
    let signature: [u8; 64] = signature.try_into().map_err(|_| bad_signature())?;
    key.verify_strict(
        &signed_message(&payload),
        &Signature::from_bytes(&signature),
    )
    .map_err(|_| bad_signature())?;
    let parsed = parse_payload(&payload)?;
    Ok(License {
        payload: parsed,
        key_id: envelope.key_id,
        key_kind,
        signed_payload: payload,
    })
}

/// The payload, after its signature verified: the version first, so a
/// newer format is named as such rather than as "unknown field".
fn parse_payload(bytes: &[u8]) -> Result<LicensePayload, LicenseError> {
    let bad = |reason: String| LicenseError::BadJson {
        part: "payload",
        reason,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    let found = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| bad("format_version is missing or not a number".into()))?;
    if found != u64::from(FORMAT_VERSION) {
        return Err(LicenseError::UnsupportedVersion { found });
    }
    let payload: LicensePayload = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    payload.validate().map_err(bad)?;
    Ok(payload)
}

/// The envelope bytes inside the armor.
pub(crate) fn dearmor(input: &[u8]) -> Result<Vec<u8>, LicenseError> {
    let bad = |reason: &str| LicenseError::BadArmor {
        reason: reason.to_string(),
    };
    if input.len() > MAX_LICENSE_BYTES {
        return Err(bad("it is larger than 64 KiB"));
    }
    let text = std::str::from_utf8(input).map_err(|_| bad("it is not text"))?;
    let text = text.trim();
    let body = text
        .strip_prefix(BEGIN)
        .ok_or_else(|| bad("the first line is not the BEGIN line"))?
        .strip_suffix(END)
        .ok_or_else(|| bad("the last line is not the END line"))?;
    let body: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if body.is_empty() {
        return Err(bad("there is nothing between the BEGIN and END lines"));
    }
    BASE64.decode(body).map_err(|_| LicenseError::BadBase64 {
        part: "the text between the BEGIN and END lines",
    })
}

/// An untrusted key id as it may appear in a message.
fn shorten(id: &str) -> String {
    let text: String = id.escape_debug().collect();
    if text.chars().count() > 64 {
        text.chars().take(64).chain(['…']).collect()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;
    use crate::license::payload::InstanceBinding;
    use crate::license::testing::{keys, payload, signed, test_key, DAY, T0};

    #[test]
    fn issued_license_verifies_and_keeps_the_signed_bytes() {
        let text = signed(&payload());
        assert!(text.starts_with(BEGIN) && text.trim_end().ends_with(END));
        assert!(text.lines().all(|l| l.len() <= LINE_WIDTH.max(BEGIN.len())));
        let license = verify(text.as_bytes(), &keys()).unwrap();
        assert_eq!(license.payload(), &payload());
        assert_eq!(license.key_id(), TEST_KEY.0);
        assert_eq!(license.key_kind(), KeyKind::Test);
        assert_eq!(
            license.signed_payload(),
            serde_json::to_vec(&payload()).unwrap()
        );
    }

    #[test]
    fn whitespace_from_mail_programs_does_not_matter() {
        let text = signed(&payload());
        let mangled = format!("\r\n  {}\r\n\r\n", text.replace('\n', "\r\n   "));
        assert!(verify(mangled.as_bytes(), &keys()).is_ok());
    }

    #[test]
    fn release_key_set_refuses_a_license_signed_with_the_test_key() {
        // What a build without `dev-keys` does: it trusts only
        // `KeySet::vendor_only()` (see `KeySet::builtin`).
        let err = verify(signed(&payload()).as_bytes(), &KeySet::vendor_only()).unwrap_err();
        assert_eq!(err.code(), Code::LicenseUnknownKey);
        assert!(err.to_string().contains("test key"), "{err}");
    }

    /// Every refusal `verify` and `check_usable` can give, each with its own
    /// code and a sentence that names the problem.
    #[test]
    fn every_verification_failure_has_its_own_code_and_sentence() {
        let key = test_key();
        let good = signed(&payload());
        let envelope_of = |text: &str| dearmor(text.as_bytes()).unwrap();
        let with_envelope = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut env: serde_json::Value = serde_json::from_slice(&envelope_of(&good)).unwrap();
            edit(&mut env);
            armor(&serde_json::to_vec(&env).unwrap())
        };
        let sign_json = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut json = serde_json::to_value(payload()).unwrap();
            edit(&mut json);
            seal(&key, &serde_json::to_vec(&json).unwrap())
        };
        let other_payload = {
            let mut p = payload();
            p.license_id = "L-OTHER".into();
            serde_json::to_vec(&p).unwrap()
        };

        let cases: Vec<(&str, Vec<u8>, Code, &str)> = vec![
            ("empty", vec![], Code::LicenseBadArmor, "BEGIN"),
            (
                "prose",
                b"hello".to_vec(),
                Code::LicenseBadArmor,
                "not a Kontor license",
            ),
            (
                "no END",
                good.replace(END, "").into_bytes(),
                Code::LicenseBadArmor,
                "END",
            ),
            (
                "binary",
                vec![0xff, 0xfe, 0],
                Code::LicenseBadArmor,
                "not text",
            ),
            (
                "huge",
                vec![b' '; MAX_LICENSE_BYTES + 1],
                Code::LicenseBadArmor,
                "64 KiB",
            ),
            (
                "empty body",
                format!("{BEGIN}\n{END}").into_bytes(),
                Code::LicenseBadArmor,
                "nothing",
            ),
            (
                "body not base64",
                format!("{BEGIN}\n!!!!\n{END}").into_bytes(),
                Code::LicenseBadBase64,
                "base64",
            ),
            (
                "envelope not JSON",
                armor(b"not json").into_bytes(),
                Code::LicenseBadJson,
                "envelope",
            ),
            (
                "envelope field missing",
                with_envelope(&|e| {
                    e.as_object_mut().unwrap().remove("signature");
                })
                .into_bytes(),
                Code::LicenseBadJson,
                "signature",
            ),
            (
                "envelope field unknown",
                with_envelope(&|e| e["alg"] = "rsa".into()).into_bytes(),
                Code::LicenseBadJson,
                "alg",
            ),
            (
                "payload not base64",
                with_envelope(&|e| e["payload"] = "%%%".into()).into_bytes(),
                Code::LicenseBadBase64,
                "payload",
            ),
            (
                "signature not base64",
                with_envelope(&|e| e["signature"] = "%%%".into()).into_bytes(),
                Code::LicenseBadBase64,
                "signature",
            ),
            (
                "unknown key",
                seal(&SigningKey::from_bytes(&[7; 32]), &other_payload).into_bytes(),
                Code::LicenseUnknownKey,
                "does not know",
            ),
            (
                "payload swapped",
                with_envelope(&|e| e["payload"] = BASE64.encode(&other_payload).into())
                    .into_bytes(),
                Code::LicenseBadSignature,
                "edited",
            ),
            (
                "signature too short",
                with_envelope(&|e| e["signature"] = BASE64.encode([1u8; 32]).into()).into_bytes(),
                Code::LicenseBadSignature,
                "does not match",
            ),
            (
                "payload not JSON",
                seal(&key, b"{not json").into_bytes(),
                Code::LicenseBadJson,
                "payload",
            ),
            (
                "payload field missing",
                sign_json(&|j| {
                    j.as_object_mut().unwrap().remove("edition");
                })
                .into_bytes(),
                Code::LicenseBadJson,
                "edition",
            ),
            (
                "payload fields contradict",
                sign_json(&|j| {
                    j.as_object_mut().unwrap().remove("expires_at");
                    j.as_object_mut().unwrap().remove("updates_until");
                })
                .into_bytes(),
                Code::LicenseBadJson,
                "perpetual",
            ),
            (
                "newer format",
                sign_json(&|j| j["format_version"] = 2.into()).into_bytes(),
                Code::LicenseUnsupportedVersion,
                "version 2",
            ),
            (
                "no format version",
                sign_json(&|j| {
                    j.as_object_mut().unwrap().remove("format_version");
                })
                .into_bytes(),
                Code::LicenseBadJson,
                "format_version",
            ),
        ];
        for (name, input, code, needle) in cases {
            let err = verify(&input, &keys()).unwrap_err();
            assert_eq!(err.code(), code, "{name}: {err}");
            assert!(err.to_string().contains(needle), "{name}: {err}");
        }

        // Time and place, on a license that verified.
        let here = Instance {
            id: "instance-a".into(),
            hostname: Some("crm.example.com".into()),
        };
        let license = verify(good.as_bytes(), &keys()).unwrap();
        let p = license.payload().clone();
        let bound = |binding: InstanceBinding| {
            let mut p = payload();
            p.instance = Some(binding);
            verify(signed(&p).as_bytes(), &keys()).unwrap()
        };
        let cases: Vec<(&str, License, i64, Code, &str)> = vec![
            (
                "issued beyond drift",
                license.clone(),
                p.issued_at - CLOCK_DRIFT_MS - 1,
                Code::LicenseIssuedInFuture,
                "clock is probably wrong",
            ),
            (
                "not yet valid",
                {
                    let mut p = payload();
                    p.valid_from = T0 + 10 * DAY;
                    verify(signed(&p).as_bytes(), &keys()).unwrap()
                },
                T0 + DAY,
                Code::LicenseNotYetValid,
                "valid from 2026-01-11",
            ),
            (
                "expired",
                license.clone(),
                p.expires_at.unwrap(),
                Code::LicenseExpired,
                "renewed license",
            ),
            (
                "other instance id",
                bound(InstanceBinding {
                    instance_id: Some("instance-b".into()),
                    hostname: None,
                }),
                T0,
                Code::LicenseWrongInstance,
                "instance-b",
            ),
            (
                "other host name",
                bound(InstanceBinding {
                    instance_id: None,
                    hostname: Some("crm.other.com".into()),
                }),
                T0,
                Code::LicenseWrongInstance,
                "crm.other.com",
            ),
        ];
        for (name, license, now, code, needle) in cases {
            let err = license.check_usable(now, &here).unwrap_err();
            assert_eq!(err.code(), code, "{name}: {err}");
            assert!(err.to_string().contains(needle), "{name}: {err}");
            let api: crate::Error = err.into();
            assert_eq!(api.code(), code);
        }
    }

    #[test]
    fn drift_within_five_minutes_and_the_last_valid_moment_are_accepted() {
        let here = Instance {
            id: "a".into(),
            hostname: None,
        };
        // Issued and valid from T0, checked by a clock 5 minutes behind.
        let p = payload();
        let license = verify(signed(&p).as_bytes(), &keys()).unwrap();
        license.check_usable(T0 - CLOCK_DRIFT_MS, &here).unwrap();
        let err = license
            .check_usable(T0 - CLOCK_DRIFT_MS - 1, &here)
            .unwrap_err();
        assert_eq!(err.code(), Code::LicenseIssuedInFuture);
        license
            .check_usable(p.expires_at.unwrap() - 1, &here)
            .unwrap();
    }

    #[test]
    fn binding_matches_this_instance_and_host_case_insensitively() {
        let mut p = payload();
        p.instance = Some(InstanceBinding {
            instance_id: Some("instance-a".into()),
            hostname: Some("CRM.example.com.".into()),
        });
        let license = verify(signed(&p).as_bytes(), &keys()).unwrap();
        let mut here = Instance {
            id: "instance-a".into(),
            hostname: Some("crm.example.com".into()),
        };
        license.check_usable(T0, &here).unwrap();
        here.hostname = None;
        let err = license.check_usable(T0, &here).unwrap_err();
        assert!(err.to_string().contains("KONTOR_PUBLIC_URL"), "{err}");
    }

    #[test]
    fn issue_refuses_an_inconsistent_payload() {
        let mut p = payload();
        p.grace_days = 1000;
        let err = issue(&test_key(), &p).unwrap_err();
        assert_eq!(err.code(), Code::LicenseBadJson);
        assert!(err.to_string().contains("grace_days"));
    }

    #[test]
    fn untrusted_key_ids_are_escaped_and_shortened_in_messages() {
        let long = format!("{}\n", "x".repeat(100));
        let shown = shorten(&long);
        assert!(!shown.contains('\n') && shown.chars().count() == 65);
    }
}
