//! The key that encrypts module secrets at rest, and sealing with it.
//!
//! 32 random bytes from the configuration (`secret_key`, or
//! `KONTOR_SECRET_KEY`; base64 or hex), else from the key file
//! [`KEY_FILE`] in the data dir, which the server makes (mode 0600) the
//! first time a secret is stored or read. The key is never in the database:
//! a stolen database (or backup of it) holds only ciphertext. Losing the key
//! loses the secrets — they have to be set again — so back the key file up
//! apart from the database.
//!
//! Values are sealed with XChaCha20-Poly1305: a random 24-byte nonce per
//! value (large enough to draw at random without counting), and associated
//! data naming tenant, module and secret, so a ciphertext moved to another
//! row does not open.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::Digest;

use crate::error::{Code, Error, Result};

/// The key file's name inside the data dir.
pub const KEY_FILE: &str = "secrets.key";

/// A 32-byte key. Neither `Debug` nor errors ever show its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id {})", self.id())
    }
}

impl MasterKey {
    /// Read a key written as base64 (standard or URL-safe, padded or not) or
    /// as 64 hex digits. The error never repeats the text.
    pub fn parse(text: &str) -> std::result::Result<MasterKey, &'static str> {
        const EXPECTED: &str =
            "expected 32 random bytes as base64 or 64 hex digits (e.g. `openssl rand -base64 32`)";
        let text = text.trim();
        let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| EXPECTED)?
        } else {
            use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
            let no_pad = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::general_purpose::NO_PAD,
            );
            [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD, &no_pad]
                .iter()
                .find_map(|e| e.decode(text).ok())
                .ok_or(EXPECTED)?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| EXPECTED)?;
        Ok(MasterKey(key))
    }

    /// A new random key.
    pub fn generate() -> MasterKey {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        MasterKey(key)
    }

    /// A short public name of the key, stored beside every value it seals,
    /// so a value sealed with another key is reported as such instead of as
    /// damaged. A hash: it says nothing about the key.
    pub fn id(&self) -> String {
        let mut h = sha2::Sha256::new();
        h.update(b"kontor-secret-key-id:");
        h.update(self.0);
        hex::encode(&h.finalize()[..8])
    }

    fn encode(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

/// A sealed value as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// [`MasterKey::id`] of the key that sealed it.
    pub key_id: String,
    /// 24 random bytes.
    pub nonce: Vec<u8>,
    /// Ciphertext with its tag.
    pub ciphertext: Vec<u8>,
}

enum Source {
    Configured(MasterKey),
    File(PathBuf),
    Unavailable,
}

/// The server's secret key, loaded (or made) on first use.
pub struct SecretKeys {
    source: Source,
    loaded: Mutex<Option<MasterKey>>,
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Configured(_) => "configured".to_string(),
            Source::File(p) => p.display().to_string(),
            Source::Unavailable => "unavailable".to_string(),
        };
        f.debug_struct("SecretKeys")
            .field("source", &source)
            .finish()
    }
}

impl SecretKeys {
    /// The configured key, else the key file in the data dir.
    pub fn from_config(config: &crate::config::Config) -> SecretKeys {
        match &config.secret_key {
            Some(key) => SecretKeys::with_key(key.clone()),
            None => SecretKeys::in_file(config.data_dir.join(KEY_FILE)),
        }
    }

    /// A fixed key.
    pub fn with_key(key: MasterKey) -> SecretKeys {
        SecretKeys {
            source: Source::Configured(key),
            loaded: Mutex::new(None),
        }
    }

    /// The key in `path`, made there on first use if it does not exist.
    pub fn in_file(path: PathBuf) -> SecretKeys {
        SecretKeys {
            source: Source::File(path),
            loaded: Mutex::new(None),
        }
    }

    /// No key: every seal and open is refused (hosts that never touch
    /// secrets, like the `kontor module` commands).
    pub fn unavailable() -> SecretKeys {
        SecretKeys {
            source: Source::Unavailable,
            loaded: Mutex::new(None),
        }
    }

    /// The key, loading or making it the first time.
    fn key(&self) -> Result<MasterKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = loaded.as_ref() {
            return Ok(k.clone());
        }
        let key =
            match &self.source {
                Source::Configured(k) => k.clone(),
                Source::File(path) => load_or_create(path)?,
                Source::Unavailable => return Err(Error::new(
                    Code::SecretKeyUnavailable,
                    "this process has no secret key; module secrets are handled by `kontor serve`",
                )),
            };
        *loaded = Some(key.clone());
        Ok(key)
    }

    /// Encrypt `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed> {
        let key = self.key()?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&key.0));
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| Error::internal("sealing a secret failed"))?;
        Ok(Sealed {
            key_id: key.id(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypt a sealed value bound to `aad`. A value sealed with another
    /// key, or damaged, or moved to another row, is refused with a message
    /// that says which — never with any of its content.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>> {
        let key = self.key()?;
        if sealed.key_id != key.id() {
            return Err(Error::new(
                Code::SecretKeyUnavailable,
                format!(
                    "the secret was sealed with key {}, but this server's key is {}: restore that key, or set the secret again",
                    sealed.key_id,
                    key.id()
                ),
            ));
        }
        if sealed.nonce.len() != 24 {
            return Err(Error::internal("stored secret has a malformed nonce"));
        }
        XChaCha20Poly1305::new(Key::from_slice(&key.0))
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map_err(|_| {
                Error::new(
                    Code::SecretKeyUnavailable,
                    "a stored secret does not open with this server's key (damaged or copied from elsewhere): set it again",
                )
            })
    }
}

/// Read the key file, or make it: written to a private temporary file first
/// and then linked into place, so two processes starting at once agree on
/// one key and nobody reads a half-written file.
fn load_or_create(path: &Path) -> Result<MasterKey> {
    let unusable = |what: String| {
        Error::new(
            Code::SecretKeyUnavailable,
            format!(
                "the secret key file {} {what}; fix it, or set `secret_key` (KONTOR_SECRET_KEY) in the configuration",
                path.display()
            ),
        )
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            return MasterKey::parse(&text).map_err(|m| unusable(format!("is not a key: {m}")));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(unusable(format!("cannot be read: {e}"))),
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| unusable(format!("cannot be made: {e}")))?;
    let key = MasterKey::generate();
    let tmp = dir.join(format!(".{KEY_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let written = (|| -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(format!("{}\n", key.encode()).as_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(unusable(format!("cannot be made: {e}")));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), key_id = %key.id(), "made a new secret key for module secrets; back it up apart from the database");
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| unusable(format!("cannot be read: {e}")))?;
            MasterKey::parse(&text).map_err(|m| unusable(format!("is not a key: {m}")))
        }
        Err(e) => Err(unusable(format!("cannot be made: {e}"))),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the secret key file is readable by other users; make it mode 0600");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kontor-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn keys_parse_from_base64_and_hex_and_never_show_in_errors_or_debug() {
        let key = MasterKey::generate();
        let b64 = key.encode();
        assert_eq!(MasterKey::parse(&b64).unwrap(), key);
        assert_eq!(MasterKey::parse(&hex::encode(key.0)).unwrap(), key);
        assert_eq!(
            MasterKey::parse(b64.trim_end_matches('=')).unwrap(),
            key,
            "unpadded"
        );
        let short = "c2hvcnQta2V5LXRoYXQtbGVha3M=";
        let e = MasterKey::parse(short).unwrap_err();
        assert!(!e.contains(short) && e.contains("32"), "{e}");
        assert!(!format!("{key:?}").contains(&b64));
        assert!(format!("{key:?}").contains(&key.id()));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_their_binding() {
        let keys = SecretKeys::with_key(MasterKey::generate());
        let a = keys.seal(b"hunter2", b"tenant-a/mod/token").unwrap();
        let b = keys.seal(b"hunter2", b"tenant-a/mod/token").unwrap();
        assert_ne!(a.nonce, b.nonce, "a fresh nonce per value");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(!a.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(keys.open(&a, b"tenant-a/mod/token").unwrap(), b"hunter2");
        let moved = keys.open(&a, b"tenant-b/mod/token").unwrap_err();
        assert_eq!(moved.code(), Code::SecretKeyUnavailable);
        let mut damaged = a.clone();
        damaged.ciphertext[0] ^= 1;
        assert!(keys.open(&damaged, b"tenant-a/mod/token").is_err());
        let other = SecretKeys::with_key(MasterKey::generate());
        let e = other.open(&a, b"tenant-a/mod/token").unwrap_err();
        assert!(e.to_string().contains(&a.key_id), "{e}");
        assert!(SecretKeys::unavailable().seal(b"x", b"").is_err());
    }

    #[test]
    fn the_key_file_is_made_once_private_and_shared_by_concurrent_first_users() {
        let dir = temp_dir();
        let path = dir.join("data").join(KEY_FILE);
        let ids: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let path = path.clone();
                    s.spawn(move || SecretKeys::in_file(path).key().unwrap().id())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [KEY_FILE], "no temporary files left");
        // A later process reads the same key back.
        let again = SecretKeys::in_file(path.clone());
        let sealed = again.seal(b"v", b"").unwrap();
        assert_eq!(sealed.key_id, ids[0]);
        std::fs::write(&path, "garbage").unwrap();
        let e = SecretKeys::in_file(path).key().unwrap_err();
        assert!(e.to_string().contains("secrets.key"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }
}
