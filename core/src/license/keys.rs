//! Whose signatures make a license valid: the vendor keys compiled into this
//! binary, and — only in builds with the `dev-keys` feature — the test key.
//!
//! Unlike module publisher keys ([`crate::modules::trust`]) an admin cannot
//! add a license key: whoever could would license themselves.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::modules::trust::key_id;

/// The vendor's license-signing keys: (key id, ed25519 public key).
///
/// STAND-IN: this key pair was generated for development and its private
/// half was discarded at once, so nothing can sign with it. Replace it with
/// the real vendor key (generated and held offline; only the public half
/// goes here) before the first release. Rotation: add the new key here one
/// release before the vendor signs with it, and keep the old one as long as
/// licenses signed with it are in use; a key id is always the first 16 hex
/// characters of the SHA-256 of the key ([`key_id`]).
pub const VENDOR_KEYS: &[(&str, [u8; 32])] = &[(
    "6ecd6d843b39b017",
    [
        100, 76, 243, 37, 21, 44, 111, 50, 105, 13, 95, 58, 133, 175, 116, 181, 246, 25, 51, 248,
        32, 86, 223, 195, 213, 143, 236, 66, 12, 121, 50, 248,
    ],
)];

/// The license *test* key. Its private half is checked in at
/// `core/keys/license-test.key` so tests can issue licenses, which is why
/// only builds with the `dev-keys` feature trust it. Other builds know its
/// id only to say why they refuse a license signed with it.
pub const TEST_KEY: (&str, [u8; 32]) = (
    "40bcc023438e1061",
    [
        70, 58, 231, 68, 167, 197, 53, 129, 233, 94, 205, 253, 147, 115, 172, 31, 159, 226, 190,
        224, 216, 250, 30, 169, 26, 225, 254, 59, 142, 28, 237, 54,
    ],
);

/// Which kind of key signed a license.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// A vendor key: a real license.
    Vendor,
    /// The test key: a license for tests and development only.
    Test,
}

/// The license keys a verifier trusts, by key id. A parameter of
/// verification rather than a global, so a test can check what a release
/// build (without `dev-keys`) would do.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: BTreeMap<String, (VerifyingKey, KeyKind)>,
}

impl KeySet {
    /// What this build trusts: the vendor keys, plus the test key when
    /// built with `dev-keys`.
    pub fn builtin() -> Self {
        #[cfg(feature = "dev-keys")]
        return Self::with_test_key();
        #[cfg(not(feature = "dev-keys"))]
        Self::vendor_only()
    }

    /// The vendor keys alone: what a release build trusts.
    pub fn vendor_only() -> Self {
        let mut set = KeySet {
            keys: BTreeMap::new(),
        };
        for (id, bytes) in VENDOR_KEYS {
            set.insert(id, bytes, KeyKind::Vendor);
        }
        set
    }

    /// The vendor keys and the test key. Not compiled into a release build,
    /// so no code path there can trust the test key by mistake.
    #[cfg(any(test, feature = "dev-keys"))]
    pub fn with_test_key() -> Self {
        let mut set = Self::vendor_only();
        set.insert(TEST_KEY.0, &TEST_KEY.1, KeyKind::Test);
        set
    }

    fn insert(&mut self, id: &str, bytes: &[u8; 32], kind: KeyKind) {
        // The constants are checked by tests; a broken one is skipped (and
        // logged) rather than taking the server down.
        match VerifyingKey::from_bytes(bytes) {
            Ok(key) if key_id(&key) == id && !key.is_weak() => {
                self.keys.insert(id.to_string(), (key, kind));
            }
            _ => tracing::error!(key_id = id, "a built-in license key is unusable"),
        }
    }

    /// The key with this id, if trusted.
    pub fn get(&self, id: &str) -> Option<(&VerifyingKey, KeyKind)> {
        self.keys.get(id).map(|(key, kind)| (key, *kind))
    }

    /// Whether this set trusts the test key (shown by `kontor license
    /// status`, so a development build is never mistaken for a release).
    pub fn trusts_test_key(&self) -> bool {
        self.keys.contains_key(TEST_KEY.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::trust::decode_signing_key;

    #[test]
    fn builtin_key_ids_are_derived_from_the_keys() {
        for (id, bytes) in VENDOR_KEYS.iter().chain([&TEST_KEY]) {
            let key = VerifyingKey::from_bytes(bytes).unwrap();
            assert_eq!(*id, key_id(&key));
            assert!(!key.is_weak());
        }
        assert_eq!(
            KeySet::vendor_only().keys.len(),
            VENDOR_KEYS.len(),
            "every vendor key loads"
        );
    }

    #[test]
    fn test_key_is_trusted_only_by_dev_keys_builds() {
        assert!(!KeySet::vendor_only().trusts_test_key());
        assert!(KeySet::vendor_only().get(TEST_KEY.0).is_none());
        assert_eq!(
            KeySet::with_test_key().get(TEST_KEY.0).map(|(_, k)| k),
            Some(KeyKind::Test)
        );
        // Tests are built with `dev-keys` (the dev-dependency on this crate).
        assert_eq!(
            KeySet::builtin().trusts_test_key(),
            cfg!(feature = "dev-keys")
        );
    }

    #[test]
    fn checked_in_test_private_key_matches_the_test_public_key() {
        let (id, key) = decode_signing_key(include_str!("../../keys/license-test.key")).unwrap();
        assert_eq!(id, TEST_KEY.0);
        assert_eq!(key.verifying_key().as_bytes(), &TEST_KEY.1);
        let public = crate::modules::trust::PublisherKey::from_text(include_str!(
            "../../keys/license-test.pub"
        ))
        .unwrap();
        assert_eq!(public.verifying_key().unwrap().as_bytes(), &TEST_KEY.1);
    }

    #[test]
    fn no_vendor_private_key_is_in_the_keys_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("keys");
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for (id, _) in VENDOR_KEYS {
                assert!(!text.contains(&format!("kontor-signing-key:v1:{id}")));
            }
        }
    }
}
