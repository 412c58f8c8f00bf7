//! Whose signatures a server accepts on a module package.
//!
//! A [`TrustStore`] maps a key id to a publisher and an ed25519 public key.
//! It starts from the keys compiled into this binary (the vendor's, and the
//! development key only when asked for) and grows by the keys an admin adds.
//! A key id is always derived from the key ([`key_id`]), so nobody can add a
//! key under an id that belongs to another key.
//!
//! Keys travel as one line of text, so they can be pasted into a form or a
//! config file and read by a person:
//!
//! * private: `kontor-signing-key:v1:<key_id>:<base64 32-byte seed>`
//! * public: `kontor-public-key:v1:<key_id>:<publisher>:<base64 32-byte key>`

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The vendor's module-signing key, trusted by every build.
///
/// Only the public half is here. The private half was generated offline and
/// is held offline by the vendor; it never enters this repository or a build
/// machine, so a leak of the source cannot sign modules. Rotation: add the
/// new key to [`VENDOR_KEYS`] one release before signing with it.
pub const VENDOR_PUBLIC_KEY: &str =
    "kontor-public-key:v1:e0609823a2206322:kontor:K3wu/uBQeA+7Up+fVTtHWfFD0uZVTi6DQuwRvLGZj9s=";

/// Every vendor key this build trusts (several during a key rotation).
pub const VENDOR_KEYS: &[&str] = &[VENDOR_PUBLIC_KEY];

/// The development key: its private half is checked in at
/// `sdk/kontor-module/keys/dev-signing.key`, so anybody can sign with it.
/// That is the point — module developers and tests sign packages without a
/// key of their own — and why it is trusted only by a store built with
/// `dev = true` (`kontor serve --dev`), never by a production server.
pub const DEV_PUBLIC_KEY: &str =
    "kontor-public-key:v1:1c4e16d10a06ac74:kontor-dev:Bvy6R3CgSHYNDKHCNAybYkv83exvwa6OoQRNZR4ljAc=";

const PRIVATE_PREFIX: &str = "kontor-signing-key:v1:";
const PUBLIC_PREFIX: &str = "kontor-public-key:v1:";
/// Hex characters of the SHA-256 of the public key that make its id.
const KEY_ID_HEX_LEN: usize = 16;
const MAX_PUBLISHER_LEN: usize = 64;

/// Why a key was refused or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The text is not a key in one of the formats above.
    #[error("not a Kontor {kind} key: {reason}")]
    Malformed {
        /// `public` or `signing`.
        kind: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The key id written with a key is not the id of that key.
    #[error("the key id {given} does not belong to this key (its id is {actual}); the key file was edited or mixed up")]
    KeyIdMismatch {
        /// The id the text or caller gave.
        given: String,
        /// The id derived from the key.
        actual: String,
    },
    /// The 32 bytes are not a usable ed25519 public key.
    #[error("the public key is not a valid ed25519 key ({0})")]
    InvalidKey(String),
    /// A publisher name that cannot be shown or stored safely.
    #[error("publisher name {0:?} must be 1 to 64 characters without ':' or control characters")]
    InvalidPublisher(String),
    /// A different key, or the same key for another publisher, already has this id.
    #[error("key {0} is already trusted for another publisher; remove it first")]
    Conflict(String),
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// Where a trusted key came from; decides what it may sign and whether an
/// admin may remove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyOrigin {
    /// Compiled in: the vendor's key. Cannot be removed.
    Vendor,
    /// Compiled in: the development key, trusted only in dev mode. It may sign
    /// a module of any publisher, because developers sign everything with it.
    Dev,
    /// Added by an admin; persisted by the registry.
    Admin,
}

/// A publisher's public key as it is shown, stored and exchanged: what an
/// admin adds to the trust store and what the registry persists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherKey {
    /// First 16 hex characters of the SHA-256 of the key: short enough to
    /// read out, and what `signature.json` names.
    pub key_id: String,
    /// The publisher the key signs for; must match a module's `publisher`.
    pub publisher: String,
    /// The 32-byte ed25519 public key, standard base64.
    pub public_key: String,
}

impl PublisherKey {
    /// The exchange form of `key` for `publisher`.
    pub fn new(publisher: &str, key: &VerifyingKey) -> Result<Self, TrustError> {
        check_publisher(publisher)?;
        Ok(PublisherKey {
            key_id: key_id(key),
            publisher: publisher.to_string(),
            public_key: BASE64.encode(key.as_bytes()),
        })
    }

    /// Check every field and return the key, so a stored or pasted key that
    /// was edited is refused rather than trusted under the wrong id.
    pub fn verifying_key(&self) -> Result<VerifyingKey, TrustError> {
        check_publisher(&self.publisher)?;
        let key = decode_public_key(&self.public_key)?;
        let actual = key_id(&key);
        if actual != self.key_id {
            return Err(TrustError::KeyIdMismatch {
                given: self.key_id.clone(),
                actual,
            });
        }
        Ok(key)
    }

    /// The one-line text form, `kontor-public-key:v1:<id>:<publisher>:<base64>`.
    pub fn to_text(&self) -> String {
        format!(
            "{PUBLIC_PREFIX}{}:{}:{}",
            self.key_id, self.publisher, self.public_key
        )
    }

    /// Read the one-line text form (surrounding whitespace is ignored) and
    /// check it.
    pub fn from_text(text: &str) -> Result<Self, TrustError> {
        let malformed = |reason: &str| TrustError::Malformed {
            kind: "public",
            reason: reason.to_string(),
        };
        let rest = text
            .trim()
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or_else(|| malformed("it must start with `kontor-public-key:v1:`"))?;
        let mut parts = rest.split(':');
        let (Some(key_id), Some(publisher), Some(public_key), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(
                "expected `kontor-public-key:v1:<key_id>:<publisher>:<base64>`",
            ));
        };
        let key = PublisherKey {
            key_id: key_id.to_string(),
            publisher: publisher.to_string(),
            public_key: public_key.to_string(),
        };
        key.verifying_key()?;
        Ok(key)
    }
}

impl fmt::Display for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// A key the store trusts.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    /// The publisher it signs for.
    pub publisher: String,
    /// The key itself.
    pub key: VerifyingKey,
    /// Where it came from.
    pub origin: KeyOrigin,
}

impl TrustedKey {
    /// Whether this key may sign a module that names `publisher`: a key
    /// signs only for its own publisher, except the development key.
    pub fn signs_for(&self, publisher: &str) -> bool {
        self.origin == KeyOrigin::Dev || self.publisher == publisher
    }
}

/// Publisher keys by key id: whose signatures this server accepts.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    keys: BTreeMap<String, TrustedKey>,
}

impl TrustStore {
    /// A store that trusts nobody; tests and tools start here.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The keys compiled into this build: the vendor keys, and the
    /// development key only when `dev` is true (`--dev`), because its private
    /// half is public.
    pub fn builtin(dev: bool) -> Self {
        let mut store = Self::empty();
        for text in VENDOR_KEYS {
            store.insert_builtin(text, KeyOrigin::Vendor);
        }
        if dev {
            store.insert_builtin(DEV_PUBLIC_KEY, KeyOrigin::Dev);
        }
        store
    }

    fn insert_builtin(&mut self, text: &str, origin: KeyOrigin) {
        // The constants are checked by tests; a broken one is skipped (and
        // logged) rather than taking the server down.
        match PublisherKey::from_text(text).and_then(|k| Ok((k.verifying_key()?, k))) {
            Ok((key, pk)) => {
                self.keys.insert(
                    pk.key_id,
                    TrustedKey {
                        publisher: pk.publisher,
                        key,
                        origin,
                    },
                );
            }
            Err(e) => tracing::error!(error = %e, "a built-in module signing key is unusable"),
        }
    }

    /// Trust `public_key_base64` (32 bytes, standard base64) as `publisher`'s
    /// key with id `key_id`: what an admin does in the UI or CLI. The id must
    /// be the key's own id; adding the same key again is a no-op.
    pub fn add(
        &mut self,
        key_id: &str,
        publisher: &str,
        public_key_base64: &str,
    ) -> Result<(), TrustError> {
        self.add_key(&PublisherKey {
            key_id: key_id.to_string(),
            publisher: publisher.to_string(),
            public_key: public_key_base64.to_string(),
        })
    }

    /// [`TrustStore::add`] for a key in its exchange form, e.g. loaded from
    /// the database or a `.pub` file.
    pub fn add_key(&mut self, key: &PublisherKey) -> Result<(), TrustError> {
        let verifying = key.verifying_key()?;
        if let Some(existing) = self.keys.get(&key.key_id) {
            if existing.key == verifying && existing.publisher == key.publisher {
                return Ok(());
            }
            return Err(TrustError::Conflict(key.key_id.clone()));
        }
        self.keys.insert(
            key.key_id.clone(),
            TrustedKey {
                publisher: key.publisher.clone(),
                key: verifying,
                origin: KeyOrigin::Admin,
            },
        );
        Ok(())
    }

    /// Stop trusting an admin-added key; built-in keys stay. Returns whether
    /// a key was removed.
    pub fn remove(&mut self, key_id: &str) -> bool {
        match self.keys.get(key_id) {
            Some(k) if k.origin == KeyOrigin::Admin => self.keys.remove(key_id).is_some(),
            _ => false,
        }
    }

    /// The key with this id, if trusted.
    pub fn get(&self, key_id: &str) -> Option<&TrustedKey> {
        self.keys.get(key_id)
    }

    /// Every trusted key with its origin, in key id order: for the admin's
    /// list and for persisting the admin-added ones.
    pub fn keys(&self) -> Vec<(PublisherKey, KeyOrigin)> {
        self.keys
            .iter()
            .map(|(id, k)| {
                (
                    PublisherKey {
                        key_id: id.clone(),
                        publisher: k.publisher.clone(),
                        public_key: BASE64.encode(k.key.as_bytes()),
                    },
                    k.origin,
                )
            })
            .collect()
    }
}

/// The id of a public key: the first 16 hex characters of its SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    let mut id = hex::encode(Sha256::digest(key.as_bytes()));
    id.truncate(KEY_ID_HEX_LEN);
    id
}

/// A fresh signing key from the operating system's random source.
pub fn generate_signing_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// The one-line text form of a private key,
/// `kontor-signing-key:v1:<key_id>:<base64 seed>`.
pub fn encode_signing_key(key: &SigningKey) -> String {
    format!(
        "{PRIVATE_PREFIX}{}:{}",
        key_id(&key.verifying_key()),
        BASE64.encode(key.to_bytes())
    )
}

/// Read a private key's text form; returns its id and the key. The id in the
/// text must be the key's own.
pub fn decode_signing_key(text: &str) -> Result<(String, SigningKey), TrustError> {
    let malformed = |reason: &str| TrustError::Malformed {
        kind: "signing",
        reason: reason.to_string(),
    };
    let rest = text
        .trim()
        .strip_prefix(PRIVATE_PREFIX)
        .ok_or_else(|| malformed("it must start with `kontor-signing-key:v1:`"))?;
    let (given, seed) = rest
        .split_once(':')
        .ok_or_else(|| malformed("expected `kontor-signing-key:v1:<key_id>:<base64>`"))?;
    let seed: [u8; 32] = BASE64
        .decode(seed)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed("the seed must be 32 bytes of standard base64"))?;
    let key = SigningKey::from_bytes(&seed);
    let actual = key_id(&key.verifying_key());
    if actual != given {
        return Err(TrustError::KeyIdMismatch {
            given: given.to_string(),
            actual,
        });
    }
    Ok((actual, key))
}

/// Write a private key file readable by its owner only (mode 0600 on Unix).
/// Refuses to overwrite an existing file, so a key is never lost by accident.
pub fn write_signing_key(path: &Path, key: &SigningKey) -> Result<(), TrustError> {
    let io = |source| TrustError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    writeln!(file, "{}", encode_signing_key(key)).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Read a private key file.
pub fn read_signing_key(path: &Path) -> Result<(String, SigningKey), TrustError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrustError::Io {
        path: path.display().to_string(),
        source,
    })?;
    decode_signing_key(&text)
}

/// Write a public key file (`<key_id>.pub`), meant to be shared.
pub fn write_public_key(path: &Path, key: &PublisherKey) -> Result<(), TrustError> {
    std::fs::write(path, format!("{}\n", key.to_text())).map_err(|source| TrustError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Read a public key file.
pub fn read_public_key(path: &Path) -> Result<PublisherKey, TrustError> {
    let text = std::fs::read_to_string(path).map_err(|source| TrustError::Io {
        path: path.display().to_string(),
        source,
    })?;
    PublisherKey::from_text(&text)
}

fn check_publisher(publisher: &str) -> Result<(), TrustError> {
    let ok = !publisher.trim().is_empty()
        && publisher.chars().count() <= MAX_PUBLISHER_LEN
        && !publisher.contains(':')
        && !publisher.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(TrustError::InvalidPublisher(publisher.to_string()))
    }
}

fn decode_public_key(text: &str) -> Result<VerifyingKey, TrustError> {
    let bytes: [u8; 32] = BASE64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| TrustError::Malformed {
            kind: "public",
            reason: "the key must be 32 bytes of standard base64".into(),
        })?;
    let key =
        VerifyingKey::from_bytes(&bytes).map_err(|e| TrustError::InvalidKey(e.to_string()))?;
    // A small-order key would accept forged signatures under lax checking;
    // verify_strict refuses them too, but refusing here tells the admin.
    if key.is_weak() {
        return Err(TrustError::InvalidKey("a weak (small-order) key".into()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("kontor-trust-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn builtin_keys_decode_and_their_ids_are_derived_from_the_keys() {
        for text in VENDOR_KEYS.iter().chain([&DEV_PUBLIC_KEY]) {
            let key = PublisherKey::from_text(text).unwrap();
            assert_eq!(key.key_id, key_id(&key.verifying_key().unwrap()));
        }
        let vendor = PublisherKey::from_text(VENDOR_PUBLIC_KEY).unwrap();
        assert_eq!(vendor.publisher, "kontor");
    }

    #[test]
    fn dev_key_is_trusted_only_when_dev_is_asked_for() {
        let dev = PublisherKey::from_text(DEV_PUBLIC_KEY).unwrap();
        let vendor = PublisherKey::from_text(VENDOR_PUBLIC_KEY).unwrap();
        let production = TrustStore::builtin(false);
        assert!(production.get(&dev.key_id).is_none());
        assert_eq!(
            production.get(&vendor.key_id).unwrap().origin,
            KeyOrigin::Vendor
        );
        let development = TrustStore::builtin(true);
        assert_eq!(development.get(&dev.key_id).unwrap().origin, KeyOrigin::Dev);
    }

    #[test]
    fn checked_in_dev_private_key_matches_the_dev_public_key() {
        let text = include_str!("../../../sdk/kontor-module/keys/dev-signing.key");
        let (id, key) = decode_signing_key(text).unwrap();
        let public = PublisherKey::from_text(DEV_PUBLIC_KEY).unwrap();
        assert_eq!(id, public.key_id);
        assert_eq!(key.verifying_key(), public.verifying_key().unwrap());
    }

    #[test]
    fn vendor_private_key_is_not_in_the_repository() {
        let vendor = PublisherKey::from_text(VENDOR_PUBLIC_KEY).unwrap();
        let keys =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/kontor-module/keys");
        for entry in std::fs::read_dir(keys).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            assert!(!text.contains(&format!("{PRIVATE_PREFIX}{}", vendor.key_id)));
        }
    }

    #[test]
    fn signing_key_text_round_trips_and_an_edited_id_is_refused() {
        let key = generate_signing_key();
        let text = encode_signing_key(&key);
        let (id, back) = decode_signing_key(&text).unwrap();
        assert_eq!(id, key_id(&key.verifying_key()));
        assert_eq!(back.to_bytes(), key.to_bytes());

        let edited = text.replacen(&id, "0123456789abcdef", 1);
        assert!(matches!(
            decode_signing_key(&edited),
            Err(TrustError::KeyIdMismatch { .. })
        ));
        assert!(matches!(
            decode_signing_key("kontor-signing-key:v1:abc:notbase64"),
            Err(TrustError::Malformed { .. })
        ));
    }

    #[test]
    fn public_key_text_round_trips_and_malformed_text_is_refused() {
        let key = generate_signing_key().verifying_key();
        let public = PublisherKey::new("acme", &key).unwrap();
        let text = public.to_text();
        assert!(text.starts_with("kontor-public-key:v1:"));
        assert_eq!(
            PublisherKey::from_text(&format!("{text}\n")).unwrap(),
            public
        );

        for bad in [
            "",
            "kontor-public-key:v2:x:y:z",
            "kontor-public-key:v1:only-two:parts",
            &text.replace(":acme:", ":ac:me:"),
            &text.replace(":acme:", "::"),
        ] {
            assert!(
                PublisherKey::from_text(bad).is_err(),
                "{bad:?} was accepted"
            );
        }
        assert!(PublisherKey::new("bad\npublisher", &key).is_err());
    }

    #[test]
    fn admin_key_is_added_only_under_its_own_id_and_cannot_shadow_a_vendor_key() {
        let key = generate_signing_key().verifying_key();
        let good = PublisherKey::new("acme", &key).unwrap();
        let mut store = TrustStore::builtin(false);

        let vendor = PublisherKey::from_text(VENDOR_PUBLIC_KEY).unwrap();
        let shadow = store.add(&vendor.key_id, "acme", &good.public_key);
        assert!(matches!(shadow, Err(TrustError::KeyIdMismatch { .. })));

        store
            .add(&good.key_id, &good.publisher, &good.public_key)
            .unwrap();
        // Adding the same key again is harmless; the same id for another
        // publisher is a conflict.
        store.add_key(&good).unwrap();
        let mut other = good.clone();
        other.publisher = "mallory".into();
        assert!(matches!(
            store.add_key(&other),
            Err(TrustError::Conflict(_))
        ));

        let trusted = store.get(&good.key_id).unwrap();
        assert_eq!(trusted.origin, KeyOrigin::Admin);
        assert!(trusted.signs_for("acme"));
        assert!(!trusted.signs_for("kontor"));

        assert!(
            !store.remove(&vendor.key_id),
            "a vendor key cannot be removed"
        );
        assert!(store.remove(&good.key_id));
        assert!(store.get(&good.key_id).is_none());
    }

    #[test]
    fn weak_public_key_is_refused() {
        // The identity point: small order, accepts forged signatures under
        // non-strict verification.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let id = {
            let mut id = hex::encode(Sha256::digest(identity));
            id.truncate(16);
            id
        };
        let err = TrustStore::empty()
            .add(&id, "acme", &BASE64.encode(identity))
            .unwrap_err();
        assert!(matches!(err, TrustError::InvalidKey(_)), "{err}");
    }

    #[test]
    fn publisher_key_serialises_for_the_database() {
        let key = PublisherKey::new("acme", &generate_signing_key().verifying_key()).unwrap();
        let json = serde_json::to_string(&key).unwrap();
        let back: PublisherKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, key);
        assert!(json.contains("\"key_id\""));
    }

    #[test]
    fn key_files_round_trip_private_file_is_owner_only_and_never_overwritten() {
        let dir = temp_dir();
        let key = generate_signing_key();
        let path = dir.join("k.key");
        write_signing_key(&path, &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            read_signing_key(&path).unwrap().1.to_bytes(),
            key.to_bytes()
        );
        assert!(matches!(
            write_signing_key(&path, &generate_signing_key()),
            Err(TrustError::Io { .. })
        ));
        assert_eq!(
            read_signing_key(&path).unwrap().1.to_bytes(),
            key.to_bytes()
        );

        let public = PublisherKey::new("acme", &key.verifying_key()).unwrap();
        let pub_path = dir.join("k.pub");
        write_public_key(&pub_path, &public).unwrap();
        assert_eq!(read_public_key(&pub_path).unwrap(), public);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
