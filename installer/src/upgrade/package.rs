//! The update package (`.kupd`): a tar archive with `update.toml` (the
//! version it brings and the oldest version it upgrades from), the
//! `kontor` binary (with its bundled modules inside), and `signature.json`.
//!
//! Signed like a module package — an ed25519 signature over the SHA-256 of
//! the `sha256sum`-style listing of the other files
//! ([`kontor::modules::package::digest`]) — but under its own domain
//! ([`SIGNATURE_DOMAIN`]), so no other Kontor signature is ever valid here,
//! and trusted like a license: only the vendor keys compiled into this
//! build ([`kontor::license::KeySet`]) sign updates; nobody can add one.

use std::collections::BTreeMap;
use std::io::Read;

use ed25519_dalek::{Signature, Signer as _, SigningKey};
use kontor::license::{KeyKind, KeySet};
use serde::{Deserialize, Serialize};

/// The manifest's path.
pub const MANIFEST_PATH: &str = "update.toml";
/// The binary's path.
pub const BINARY_PATH: &str = "kontor";
/// The signature's path.
pub const SIGNATURE_PATH: &str = "signature.json";
/// What an update signature signs before the digest.
pub const SIGNATURE_DOMAIN: &[u8] = b"kontor-update-package:v1:";
/// Largest binary accepted.
const MAX_BINARY: u64 = 1024 * 1024 * 1024;
/// Largest manifest or signature accepted.
const MAX_SMALL: u64 = 64 * 1024;

/// `update.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateManifest {
    /// Always `kontor`.
    pub product: String,
    /// The version this package installs.
    pub version: semver::Version,
    /// The oldest installed version it can upgrade (its migrations and
    /// data conversions start there).
    pub min_from_version: semver::Version,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    key_id: String,
    algorithm: String,
    signature: String,
}

/// A verified package.
#[derive(Debug)]
pub struct UpdatePackage {
    /// What it brings.
    pub manifest: UpdateManifest,
    /// The new binary.
    pub binary: Vec<u8>,
    /// Which key signed it.
    pub key_id: String,
    /// Vendor or (development builds only) test key.
    pub key_kind: KeyKind,
}

/// Why a package was refused. Nothing has been changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// Not a readable package.
    #[error("this is not a Kontor update package: {0}")]
    NotAPackage(String),
    /// No signature.
    #[error(
        "the update package is not signed; only packages signed by the Kontor vendor are installed"
    )]
    Unsigned,
    /// A key this build does not trust.
    #[error("the update package is signed with key {0}, which this build does not trust; only Kontor's vendor keys sign updates. Get the package from the vendor")]
    UnknownKey(String),
    /// The signature does not match.
    #[error("the update package's signature does not match its content: it was changed after it was signed (tampered or damaged). Do not install it; download it again from the vendor")]
    BadSignature,
}

/// Build and sign a package (vendor side: the release script).
pub fn pack(manifest: &UpdateManifest, binary: &[u8], key: &SigningKey) -> anyhow::Result<Vec<u8>> {
    let manifest_text = toml::to_string(manifest)?;
    let digest = kontor::modules::package::digest([
        (MANIFEST_PATH, manifest_text.as_bytes()),
        (BINARY_PATH, binary),
    ]);
    let signature = key.sign(&[SIGNATURE_DOMAIN, digest.as_slice()].concat());
    let file = SignatureFile {
        key_id: kontor::modules::trust::key_id(&key.verifying_key()),
        algorithm: "ed25519".into(),
        signature: hex::encode(signature.to_bytes()),
    };
    let signature_json = serde_json::to_vec_pretty(&file)?;
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data, mode) in [
        (MANIFEST_PATH, manifest_text.as_bytes(), 0o644),
        (BINARY_PATH, binary, 0o755),
        (SIGNATURE_PATH, signature_json.as_slice(), 0o644),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, path, data)?;
    }
    Ok(tar.into_inner()?)
}

/// Read and verify a package: only the three known plain files, sizes
/// checked from the headers before reading, then the signature against
/// `keys`, then the manifest.
pub fn open(bytes: &[u8], keys: &KeySet) -> Result<UpdatePackage, UpdateError> {
    let bad = |e: std::io::Error| UpdateError::NotAPackage(e.to_string());
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            return Err(UpdateError::NotAPackage(
                "it holds something other than plain files".into(),
            ));
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().to_string();
        let limit = match path.as_str() {
            BINARY_PATH => MAX_BINARY,
            MANIFEST_PATH | SIGNATURE_PATH => MAX_SMALL,
            other => {
                return Err(UpdateError::NotAPackage(format!(
                    "unexpected file {other:?}"
                )))
            }
        };
        let size = entry.header().size().map_err(bad)?;
        if size > limit {
            return Err(UpdateError::NotAPackage(format!("{path} is too large")));
        }
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry.read_to_end(&mut data).map_err(bad)?;
        if files.insert(path.clone(), data).is_some() {
            return Err(UpdateError::NotAPackage(format!("{path} appears twice")));
        }
    }
    let signature = files.remove(SIGNATURE_PATH).ok_or(UpdateError::Unsigned)?;
    let signature: SignatureFile = serde_json::from_slice(&signature)
        .map_err(|e| UpdateError::NotAPackage(format!("{SIGNATURE_PATH}: {e}")))?;
    let (key, key_kind) = keys
        .get(&signature.key_id)
        .ok_or_else(|| UpdateError::UnknownKey(signature.key_id.clone()))?;
    let digest =
        kontor::modules::package::digest(files.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
    let sig_bytes: [u8; 64] = hex::decode(&signature.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(UpdateError::BadSignature)?;
    if signature.algorithm != "ed25519"
        || key
            .verify_strict(
                &[SIGNATURE_DOMAIN, digest.as_slice()].concat(),
                &Signature::from_bytes(&sig_bytes),
            )
            .is_err()
    {
        return Err(UpdateError::BadSignature);
    }
    let manifest_text = files
        .remove(MANIFEST_PATH)
        .ok_or_else(|| UpdateError::NotAPackage(format!("no {MANIFEST_PATH}")))?;
    let manifest: UpdateManifest = toml::from_str(&String::from_utf8_lossy(&manifest_text))
        .map_err(|e| UpdateError::NotAPackage(format!("{MANIFEST_PATH}: {e}")))?;
    if manifest.product != "kontor" {
        return Err(UpdateError::NotAPackage(format!(
            "it updates {:?}, not kontor",
            manifest.product
        )));
    }
    let binary = files
        .remove(BINARY_PATH)
        .ok_or_else(|| UpdateError::NotAPackage(format!("no {BINARY_PATH}")))?;
    Ok(UpdatePackage {
        manifest,
        binary,
        key_id: signature.key_id,
        key_kind,
    })
}
