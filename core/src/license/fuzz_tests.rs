//! Property tests of the parser and verifier: random input and mutated
//! valid licenses never panic and are never accepted unless what they say
//! is exactly what was signed.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use proptest::prelude::*;

use super::file::{armor, dearmor, seal, verify, License};
use super::testing::{keys, payload, signed, test_key};

/// One edit of a byte string; positions wrap around its length.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Set(usize, u8),
    Delete(usize),
    Insert(usize, u8),
}

impl Mutation {
    fn apply(&self, bytes: &mut Vec<u8>) {
        let len = bytes.len();
        match *self {
            Mutation::FlipBit(i, bit) if len > 0 => bytes[i % len] ^= 1 << bit,
            Mutation::Set(i, v) if len > 0 => bytes[i % len] = v,
            Mutation::Delete(i) if len > 0 => {
                bytes.remove(i % len);
            }
            Mutation::Insert(i, v) => bytes.insert(i % (len + 1), v),
            _ => {}
        }
    }
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Insert(i, v)),
    ];
    prop::collection::vec(one, 1..4)
}

/// The layers of a valid license, each as bytes.
struct Layers {
    text: Vec<u8>,
    envelope: serde_json::Value,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn layers() -> Layers {
    let text = signed(&payload());
    let envelope: serde_json::Value =
        serde_json::from_slice(&dearmor(text.as_bytes()).unwrap()).unwrap();
    let field = |name: &str| BASE64.decode(envelope[name].as_str().unwrap()).unwrap();
    Layers {
        payload: field("payload"),
        signature: field("signature"),
        text: text.into_bytes(),
        envelope,
    }
}

/// The armored license with one envelope field replaced by base64 of `bytes`.
fn with_field(envelope: &serde_json::Value, name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut envelope = envelope.clone();
    envelope[name] = BASE64.encode(bytes).into();
    armor(&serde_json::to_vec(&envelope).unwrap()).into_bytes()
}

/// The property: whatever was accepted says exactly what was signed.
fn accepted_only_if_unchanged(result: Result<License, super::LicenseError>, l: &Layers) {
    if let Ok(license) = result {
        assert_eq!(license.signed_payload(), l.payload.as_slice());
        assert_eq!(license.payload(), &payload());
        assert_eq!(license.key_id(), l.envelope["key_id"].as_str().unwrap());
    }
}

proptest! {
    // A few hundred cases each keep the whole file well under a few seconds
    // in the dev profile (ed25519 is optimised even there).
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_are_refused(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(verify(&input, &keys()).is_err());
    }

    #[test]
    fn random_bytes_in_valid_armor_are_refused(
        input in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        prop_assert!(verify(armor(&input).as_bytes(), &keys()).is_err());
    }

    #[test]
    fn random_envelopes_are_refused(
        payload_bytes in prop::collection::vec(any::<u8>(), 0..512),
        signature in prop::collection::vec(any::<u8>(), 0..80),
        trusted_key in any::<bool>(),
    ) {
        let envelope = serde_json::json!({
            "payload": BASE64.encode(&payload_bytes),
            "key_id": if trusted_key { super::keys::TEST_KEY.0 } else { "0011223344556677" },
            "signature": BASE64.encode(&signature),
        });
        let text = armor(&serde_json::to_vec(&envelope).unwrap());
        prop_assert!(verify(text.as_bytes(), &keys()).is_err());
    }

    #[test]
    fn mutated_armored_text_is_never_accepted_with_other_content(edits in mutations()) {
        let l = layers();
        let mut text = l.text.clone();
        edits.iter().for_each(|m| m.apply(&mut text));
        accepted_only_if_unchanged(verify(&text, &keys()), &l);
    }

    #[test]
    fn mutated_envelope_is_never_accepted_with_other_content(edits in mutations()) {
        let l = layers();
        let mut envelope = serde_json::to_vec(&l.envelope).unwrap();
        edits.iter().for_each(|m| m.apply(&mut envelope));
        accepted_only_if_unchanged(verify(armor(&envelope).as_bytes(), &keys()), &l);
    }

    #[test]
    fn mutated_payload_or_signature_is_refused(edits in mutations(), in_signature in any::<bool>()) {
        let l = layers();
        let (name, original) = if in_signature {
            ("signature", &l.signature)
        } else {
            ("payload", &l.payload)
        };
        let mut bytes = original.clone();
        edits.iter().for_each(|m| m.apply(&mut bytes));
        let result = verify(&with_field(&l.envelope, name, &bytes), &keys());
        if bytes == *original {
            prop_assert!(result.is_ok());
        } else {
            // verify_strict: no second signature for the same message, no
            // other message for the same signature.
            let code = result.unwrap_err().code();
            prop_assert_eq!(code, crate::error::Code::LicenseBadSignature);
        }
    }

    #[test]
    fn mutated_payloads_signed_again_never_panic_and_accepted_ones_are_consistent(
        edits in mutations(),
    ) {
        // Past the signature (as if the vendor signed garbage): the payload
        // parser and field checks see arbitrary near-valid JSON.
        let l = layers();
        let mut bytes = l.payload.clone();
        edits.iter().for_each(|m| m.apply(&mut bytes));
        if let Ok(license) = verify(seal(&test_key(), &bytes).as_bytes(), &keys()) {
            prop_assert!(license.payload().validate().is_ok());
            prop_assert_eq!(license.signed_payload(), bytes.as_slice());
        }
    }
}
