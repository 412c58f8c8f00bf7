//! The `.kmod` package: how a module travels from its publisher to a server.
//!
//! A package is a tar archive holding `module.toml`, `module.wasm` (a
//! WebAssembly component), optional files under `templates/`, `assets/` and
//! `locales/`, and a detached ed25519 signature in `signature.json`.
//!
//! **What is signed.** The [`digest`] is the SHA-256 of a listing of every
//! file but the signature, sorted by path, one line per file in the format
//! of `sha256sum` (`<hex sha256>  <path>\n`), so a person can recompute it
//! with standard tools. The signature is over
//! `b"kontor-module-package:v1:" ++ digest`: the prefix keeps a package
//! signature from ever being valid as any other Kontor signature (a license
//! file, say). Tar metadata (times, owners, modes) is not signed and is
//! never used.
//!
//! **Opening is hostile-input parsing.** [`open`] unpacks in memory, under
//! [`Limits`], before anything is trusted: only regular files and folders,
//! only relative paths of plain names under the allowed top-level names, no
//! duplicates (not even by case), and entry sizes are checked from the
//! header before a byte is read. Then the signature is checked against the
//! [`TrustStore`], then the manifest is parsed. Nothing touches the disk
//! until [`Package::extract_to`], which checks every path again.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::manifest::{Manifest, ManifestError};
use super::trust::{self, KeyOrigin, TrustStore};

/// The manifest's path inside a package.
pub const MANIFEST_PATH: &str = "module.toml";
/// The component's path inside a package.
pub const COMPONENT_PATH: &str = "module.wasm";
/// The detached signature's path inside a package.
pub const SIGNATURE_PATH: &str = "signature.json";
/// Folders a package may carry files in, besides the three files above.
pub const EXTRA_DIRS: &[&str] = &["templates", "assets", "locales"];
/// What a package signature signs, before the digest: a version and a
/// purpose, so the signature means nothing anywhere else.
pub const SIGNATURE_DOMAIN: &[u8] = b"kontor-module-package:v1:";
/// The only signature algorithm, named in `signature.json` so a successor can
/// be introduced without guessing.
pub const SIGNATURE_ALGORITHM: &str = "ed25519";
/// The first 8 bytes of a WebAssembly *component* (magic, then version 0x0d
/// and layer 1); a core module has version 1 and layer 0 instead.
pub const COMPONENT_PREAMBLE: [u8; 8] = *b"\0asm\x0d\x00\x01\x00";

const MIB: u64 = 1024 * 1024;
/// Longest accepted path, in bytes.
const MAX_PATH_LEN: usize = 255;
/// Deepest accepted path, in components.
const MAX_PATH_DEPTH: usize = 16;
/// Tar bytes an entry may take besides its content: its header, a GNU long
/// name (header + data) and padding. Bounds the archive size up front.
const FRAMING_PER_ENTRY: u64 = 4 * 512;

/// How much a package may hold. The defaults are far above any real module
/// and far below what would hurt a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries (files and folders).
    pub max_entries: usize,
    /// Largest `module.wasm`.
    pub max_component_bytes: u64,
    /// Largest other file.
    pub max_entry_bytes: u64,
    /// Largest sum of all file sizes.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1000,
            max_component_bytes: 32 * MIB,
            max_entry_bytes: 4 * MIB,
            max_total_bytes: 64 * MIB,
        }
    }
}

/// How strictly [`open`] treats signatures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Development mode (`--dev`): unsigned packages, and packages signed
    /// with a key the store does not hold, are accepted (an unknown key
    /// vouches for nothing more than no key). A signature by a trusted key
    /// is still checked, and a bad one is still refused.
    pub dev: bool,
}

/// Why a package was refused. [`PackageError::code`] is stable; the message
/// tells an admin what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Not a tar archive, or a damaged one.
    #[error("This file is not a Kontor module package (.kmod): {reason}.")]
    NotAPackage {
        /// What the reader tripped on.
        reason: String,
    },
    /// No `signature.json`, outside dev mode.
    #[error("The package is not signed. Only a server started with --dev installs unsigned packages; ask the publisher for a signed package.")]
    Unsigned,
    /// The signature does not verify: changed after signing, or damaged.
    #[error("The package's signature does not match its content ({reason}): it was changed after it was signed, or it is damaged. Do not install it; get a fresh copy from the publisher.")]
    BadSignature {
        /// Which check failed.
        reason: String,
    },
    /// Signed with a key this server does not trust.
    #[error("The package is signed with key {key_id}, which this server does not trust. If you trust its publisher, add their public key to the trusted publisher keys and install again.")]
    UntrustedKey {
        /// The key id named in `signature.json`.
        key_id: String,
    },
    /// Signed with a trusted key of another publisher than the module names.
    #[error("The package says it is published by \"{publisher}\" but is signed with key {key_id} of publisher \"{key_publisher}\"; a publisher's key signs only that publisher's modules.")]
    PublisherMismatch {
        /// The manifest's publisher.
        publisher: String,
        /// The signing key.
        key_id: String,
        /// The publisher the key belongs to.
        key_publisher: String,
    },
    /// An absolute path, a `..`, or a name that is not a plain file name.
    #[error("The package entry \"{path}\" was refused because {reason}; every path in a package must be a relative path that stays inside it.")]
    UnsafePath {
        /// The path as found (escaped).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A symbolic or hard link, a device, a FIFO or another special entry.
    #[error("The package entry \"{path}\" is {kind}; a package may hold only regular files and folders.")]
    LinkEntry {
        /// The path as found (escaped).
        path: String,
        /// What the entry is.
        kind: String,
    },
    /// The same path twice, also as file and folder or differing by case.
    #[error("The package holds \"{path}\" more than once (names that differ only in case, or a file and a folder of the same name, count as the same); it was refused as ambiguous.")]
    DuplicateEntry {
        /// The path.
        path: String,
    },
    /// One file over its size limit.
    #[error("The package entry \"{path}\" is {size}, over the limit of {limit} for this file.")]
    EntryTooLarge {
        /// The path.
        path: String,
        /// Its size (human-readable).
        size: Size,
        /// The limit.
        limit: Size,
    },
    /// All files together over the limit (a tar bomb).
    #[error("The package holds at least {size} of files, over the limit of {limit} for a whole package.")]
    PackageTooLarge {
        /// What was counted when it went over.
        size: Size,
        /// The limit.
        limit: Size,
    },
    /// More entries than allowed.
    #[error("The package has more than {limit} entries; that is far more than a module needs.")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// A path outside the names a package may use.
    #[error("The package entry \"{path}\" is not allowed: a package holds module.toml, module.wasm, signature.json and files under templates/, assets/ and locales/ only.")]
    UnexpectedEntry {
        /// The path.
        path: String,
    },
    /// No `module.toml`.
    #[error("The package has no module.toml, so it does not say what module it is; rebuild it with `kontor-module pack`.")]
    MissingManifest,
    /// No `module.wasm`.
    #[error("The package has no module.wasm, so it has no code to run; rebuild it with `kontor-module pack`.")]
    MissingComponent,
    /// `module.wasm` is not a component (a core module, or not wasm at all).
    #[error("module.wasm is not a WebAssembly component; build the module for wasm32-wasip2 and pack it again.")]
    NotAComponent,
    /// The manifest is invalid; the message names the key.
    #[error("The package's manifest is invalid: {0}")]
    InvalidManifest(#[from] ManifestError),
    /// Writing an extracted file failed.
    #[error("Could not write the module file \"{path}\": {reason}.")]
    ExtractFailed {
        /// The file.
        path: String,
        /// The failure.
        reason: String,
    },
}

impl PackageError {
    /// The stable machine-readable code, e.g. `bad_signature`.
    pub fn code(&self) -> &'static str {
        match self {
            PackageError::NotAPackage { .. } => "not_a_package",
            PackageError::Unsigned => "unsigned",
            PackageError::BadSignature { .. } => "bad_signature",
            PackageError::UntrustedKey { .. } => "untrusted_key",
            PackageError::PublisherMismatch { .. } => "publisher_mismatch",
            PackageError::UnsafePath { .. } => "unsafe_path",
            PackageError::LinkEntry { .. } => "link_entry",
            PackageError::DuplicateEntry { .. } => "duplicate_entry",
            PackageError::EntryTooLarge { .. } => "entry_too_large",
            PackageError::PackageTooLarge { .. } => "package_too_large",
            PackageError::TooManyEntries { .. } => "too_many_entries",
            PackageError::UnexpectedEntry { .. } => "unexpected_entry",
            PackageError::MissingManifest => "missing_manifest",
            PackageError::MissingComponent => "missing_component",
            PackageError::NotAComponent => "not_a_component",
            PackageError::InvalidManifest(_) => "invalid_manifest",
            PackageError::ExtractFailed { .. } => "extract_failed",
        }
    }

    /// The core's API error for this refusal: `module_package_refused` with
    /// this error's code as `details.reason`; a failed write is internal.
    pub fn into_api_error(self) -> crate::Error {
        if let PackageError::ExtractFailed { .. } = self {
            return crate::Error::internal(self);
        }
        let reason = self.code();
        crate::Error::new(crate::error::Code::ModulePackageRefused, self.to_string())
            .with_details(serde_json::json!({ "reason": reason }))
    }
}

/// A byte count that prints for people (`4.0 MiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 1024 {
            write!(f, "{} bytes", self.0)
        } else if self.0 < MIB {
            write!(f, "{:.1} KiB", self.0 as f64 / 1024.0)
        } else {
            write!(f, "{:.1} MiB", self.0 as f64 / MIB as f64)
        }
    }
}

/// What `signature.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    key_id: String,
    algorithm: String,
    signature: String,
}

/// The outcome of checking a package's signature, for showing
/// ([`inspect`]); [`open`] turns everything but a trusted signature (and,
/// in dev mode, none) into a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Verified with a trusted key that may sign for the module's publisher.
    Trusted {
        /// The key.
        key_id: String,
        /// Its publisher.
        publisher: String,
        /// Where the key came from (a dev-key signature is worth noting).
        origin: KeyOrigin,
    },
    /// Verified with a trusted key of another publisher.
    PublisherMismatch {
        /// The key.
        key_id: String,
        /// Its publisher.
        key_publisher: String,
    },
    /// Signed with a key the store does not hold: not checkable.
    UntrustedKey {
        /// The key named.
        key_id: String,
    },
    /// The signature is malformed or does not verify.
    Bad {
        /// What failed.
        reason: String,
    },
    /// There is no `signature.json`.
    Unsigned,
}

impl fmt::Display for SignatureCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureCheck::Trusted {
                key_id,
                publisher,
                origin,
            } => {
                let origin = match origin {
                    KeyOrigin::Vendor => "vendor key",
                    KeyOrigin::Dev => "development key, trusted only with --dev",
                    KeyOrigin::Admin => "added by an admin",
                };
                write!(f, "signed by key {key_id} of {publisher} ({origin})")
            }
            SignatureCheck::PublisherMismatch {
                key_id,
                key_publisher,
            } => write!(
                f,
                "signed by key {key_id} of {key_publisher}, which may not sign this publisher's modules"
            ),
            SignatureCheck::UntrustedKey { key_id } => {
                write!(f, "signed by key {key_id}, which is not trusted")
            }
            SignatureCheck::Bad { reason } => write!(f, "BAD signature: {reason}"),
            SignatureCheck::Unsigned => write!(f, "unsigned"),
        }
    }
}

/// Who vouches for an opened package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// A trusted publisher key.
    Publisher {
        /// The key.
        key_id: String,
        /// Its publisher.
        publisher: String,
        /// Where the key came from.
        origin: KeyOrigin,
    },
    /// Nobody: accepted because the server runs with `--dev`.
    Unsigned,
    /// A key the store does not hold: accepted because the server runs with
    /// `--dev`, and worth no more than [`Signer::Unsigned`].
    UntrustedKey {
        /// The key named in `signature.json`.
        key_id: String,
    },
}

/// An opened, verified package, held in memory.
///
/// The contents are public fields so a caller can move them out; the
/// private digest and signer keep [`open`] the only way to make one.
#[derive(Debug, Clone)]
pub struct Package {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The manifest as written, for storing beside the component.
    pub manifest_text: String,
    /// The component's bytes.
    pub component: Vec<u8>,
    /// The templates, assets and locales, by path (`templates/page.html`).
    pub files: BTreeMap<String, Vec<u8>>,
    digest: [u8; 32],
    signer: Signer,
}

impl Package {
    /// The package digest in hex: what was signed, and a content id for the
    /// registry (two packages with one digest hold the same files).
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// Who signed it.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Write the templates, assets and locales under `dir` (created if
    /// missing) and return the files written. Every path is checked again,
    /// and no existing link or non-folder inside `dir` is followed, so
    /// nothing is ever written outside `dir`.
    pub fn extract_to(&self, dir: &Path) -> Result<Vec<PathBuf>, PackageError> {
        let failed = |path: &Path, e: std::io::Error| PackageError::ExtractFailed {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        let root = dir.canonicalize().map_err(|e| failed(dir, e))?;
        let mut written = Vec::new();
        for (path, data) in &self.files {
            let checked = check_path(path.as_bytes(), false)?;
            if classify(&checked, false) != Some(Kind::Extra) {
                return Err(PackageError::UnexpectedEntry { path: checked });
            }
            let parts: Vec<&str> = checked.split('/').collect();
            let (name, parents) = match parts.split_last() {
                Some(split) => split,
                None => continue,
            };
            let mut target = root.clone();
            for part in parents {
                target.push(part);
                match std::fs::symlink_metadata(&target) {
                    Ok(meta) if meta.file_type().is_dir() => {}
                    Ok(_) => {
                        return Err(PackageError::UnsafePath {
                            path: checked.clone(),
                            reason: format!(
                                "{} already exists and is not a folder (a link is never followed)",
                                target.display()
                            ),
                        })
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::fs::create_dir(&target).map_err(|e| failed(&target, e))?;
                    }
                    Err(e) => return Err(failed(&target, e)),
                }
            }
            // Belt and braces: the folder we are about to write in resolves
            // inside the root.
            let parent = target.canonicalize().map_err(|e| failed(&target, e))?;
            if !parent.starts_with(&root) {
                return Err(PackageError::UnsafePath {
                    path: checked.clone(),
                    reason: "it resolves outside the module folder".into(),
                });
            }
            target.push(name);
            match std::fs::symlink_metadata(&target) {
                Ok(meta) if meta.file_type().is_dir() => {
                    return Err(PackageError::UnsafePath {
                        path: checked.clone(),
                        reason: format!("{} is an existing folder", target.display()),
                    })
                }
                // An old file or link is replaced, never written through.
                Ok(_) => std::fs::remove_file(&target).map_err(|e| failed(&target, e))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(failed(&target, e)),
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .map_err(|e| failed(&target, e))?;
            std::io::Write::write_all(&mut file, data).map_err(|e| failed(&target, e))?;
            written.push(target);
        }
        Ok(written)
    }
}

/// What [`inspect`] shows about a package without deciding to trust it.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The digest, hex.
    pub digest: String,
    /// The signature's state.
    pub signature: SignatureCheck,
    /// Every file but the signature, with its size, sorted by path.
    pub files: Vec<(String, u64)>,
}

/// Whether `bytes` start like a WebAssembly component (not a core module).
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.starts_with(&COMPONENT_PREAMBLE)
}

/// Build an unsigned package from a manifest, a component and extra files
/// (`templates/...`, `assets/...`, `locales/...`). Refuses everything
/// [`open`] would refuse, so a packed package always opens (in dev mode, or
/// once signed). The archive is deterministic: entries sorted by path, owner
/// 0, mode 0644, time 0 — packing the same inputs twice gives the same bytes.
pub fn pack<P, B>(
    manifest_text: &str,
    wasm: &[u8],
    extra_files: &[(P, B)],
) -> Result<Vec<u8>, PackageError>
where
    P: AsRef<str>,
    B: AsRef<[u8]>,
{
    let limits = Limits::default();
    let mut collector = Collector::new(&limits);
    collector.add_file(MANIFEST_PATH.as_bytes(), manifest_text.as_bytes().to_vec())?;
    collector.add_file(COMPONENT_PATH.as_bytes(), wasm.to_vec())?;
    for (path, data) in extra_files {
        let path = check_path(path.as_ref().as_bytes(), false)?;
        if classify(&path, false) != Some(Kind::Extra) {
            return Err(PackageError::UnexpectedEntry { path });
        }
        collector.add_file(path.as_bytes(), data.as_ref().to_vec())?;
    }
    read_contents(&collector.files)?;
    write_tar(&collector.files)
}

/// The package digest: SHA-256 of the `sha256sum`-style listing of every
/// file except `signature.json`, sorted by path.
pub fn digest<'a, I>(entries: I) -> [u8; 32]
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    let mut files: Vec<(&str, &[u8])> = entries
        .into_iter()
        .filter(|(path, _)| *path != SIGNATURE_PATH)
        .collect();
    files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut listing = Sha256::new();
    for (path, data) in files {
        listing.update(hex::encode(Sha256::digest(data)));
        listing.update(b"  ");
        listing.update(path.as_bytes());
        listing.update(b"\n");
    }
    listing.finalize().into()
}

/// Sign a package: add (or replace) its `signature.json`. The key id is
/// derived from the key, so it always names the key that signed. The package
/// must be complete and valid; nobody should sign what cannot be installed.
pub fn sign(package: &[u8], key: &SigningKey) -> Result<Vec<u8>, PackageError> {
    let mut files = unpack(package, &Limits::default())?;
    files.remove(SIGNATURE_PATH);
    read_contents(&files)?;
    let digest = digest(files.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
    let signature = key.sign(&signed_message(&digest));
    let file = SignatureFile {
        key_id: trust::key_id(&key.verifying_key()),
        algorithm: SIGNATURE_ALGORITHM.into(),
        signature: BASE64.encode(signature.to_bytes()),
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(|e| PackageError::NotAPackage {
        reason: e.to_string(),
    })?;
    json.push(b'\n');
    files.insert(SIGNATURE_PATH.into(), json);
    write_tar(&files)
}

/// Open a package for installing: unpack it in memory under the default
/// [`Limits`], check its signature against `trust`, parse its manifest.
pub fn open(
    bytes: &[u8],
    trust: &TrustStore,
    options: OpenOptions,
) -> Result<Package, PackageError> {
    open_with_limits(bytes, trust, options, &Limits::default())
}

/// [`open`] with other limits.
pub fn open_with_limits(
    bytes: &[u8],
    trust: &TrustStore,
    options: OpenOptions,
    limits: &Limits,
) -> Result<Package, PackageError> {
    let mut files = unpack(bytes, limits)?;
    let (digest, check) = check_signature(&files, trust);
    // Refuse on the signature before parsing anything it should vouch for.
    match &check {
        SignatureCheck::Bad { reason } => {
            return Err(PackageError::BadSignature {
                reason: reason.clone(),
            })
        }
        SignatureCheck::UntrustedKey { key_id } if !options.dev => {
            return Err(PackageError::UntrustedKey {
                key_id: key_id.clone(),
            })
        }
        SignatureCheck::Unsigned if !options.dev => return Err(PackageError::Unsigned),
        _ => {}
    }
    let manifest = read_contents(&files)?;
    let signer = match bind_publisher(check, &manifest) {
        SignatureCheck::Trusted {
            key_id,
            publisher,
            origin,
        } => Signer::Publisher {
            key_id,
            publisher,
            origin,
        },
        SignatureCheck::Unsigned if options.dev => Signer::Unsigned,
        SignatureCheck::Unsigned => return Err(PackageError::Unsigned),
        SignatureCheck::Bad { reason } => return Err(PackageError::BadSignature { reason }),
        SignatureCheck::UntrustedKey { key_id } if options.dev => Signer::UntrustedKey { key_id },
        SignatureCheck::UntrustedKey { key_id } => {
            return Err(PackageError::UntrustedKey { key_id })
        }
        SignatureCheck::PublisherMismatch {
            key_id,
            key_publisher,
        } => {
            return Err(PackageError::PublisherMismatch {
                publisher: manifest.publisher.clone(),
                key_id,
                key_publisher,
            })
        }
    };
    files.remove(SIGNATURE_PATH);
    let (Some(manifest_text), Some(component)) = (
        files
            .remove(MANIFEST_PATH)
            .and_then(|b| String::from_utf8(b).ok()),
        files.remove(COMPONENT_PATH),
    ) else {
        // read_contents found both; unreachable, but not worth a panic.
        return Err(PackageError::MissingManifest);
    };
    Ok(Package {
        manifest,
        manifest_text,
        component,
        files,
        digest,
        signer,
    })
}

/// Read a package and report on its signature without refusing it for
/// one: for `kontor-module inspect` and an admin's "what is this?" view.
/// Structural problems and an invalid manifest are still errors.
pub fn inspect(bytes: &[u8], trust: &TrustStore) -> Result<Inspection, PackageError> {
    let files = unpack(bytes, &Limits::default())?;
    let (digest, check) = check_signature(&files, trust);
    let listing = files
        .iter()
        .filter(|(path, _)| *path != SIGNATURE_PATH)
        .map(|(path, data)| (path.clone(), data.len() as u64))
        .collect();
    let manifest = read_contents(&files)?;
    Ok(Inspection {
        signature: bind_publisher(check, &manifest),
        manifest,
        digest: hex::encode(digest),
        files: listing,
    })
}

fn signed_message(digest: &[u8; 32]) -> Vec<u8> {
    [SIGNATURE_DOMAIN, digest.as_slice()].concat()
}

/// Verify `signature.json` over the other files.
fn check_signature(
    files: &BTreeMap<String, Vec<u8>>,
    trust: &TrustStore,
) -> ([u8; 32], SignatureCheck) {
    let digest = digest(files.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
    let Some(raw) = files.get(SIGNATURE_PATH) else {
        return (digest, SignatureCheck::Unsigned);
    };
    let bad = |reason: &str| SignatureCheck::Bad {
        reason: reason.to_string(),
    };
    let file: SignatureFile = match serde_json::from_slice(raw) {
        Ok(file) => file,
        Err(e) => return (digest, bad(&format!("signature.json is malformed: {e}"))),
    };
    if file.algorithm != SIGNATURE_ALGORITHM {
        return (
            digest,
            bad(&format!("unsupported algorithm {:?}", file.algorithm)),
        );
    }
    let Some(key) = trust.get(&file.key_id) else {
        return (
            digest,
            SignatureCheck::UntrustedKey {
                key_id: escape(file.key_id.as_bytes()),
            },
        );
    };
    let signature: Option<[u8; 64]> = BASE64
        .decode(&file.signature)
        .ok()
        .and_then(|b| b.try_into().ok());
    let Some(signature) = signature else {
        return (digest, bad("the signature is not 64 bytes of base64"));
    };
    let signature = Signature::from_bytes(&signature);
    match key.key.verify_strict(&signed_message(&digest), &signature) {
        Ok(()) => (
            digest,
            SignatureCheck::Trusted {
                key_id: file.key_id,
                publisher: key.publisher.clone(),
                origin: key.origin,
            },
        ),
        Err(_) => (
            digest,
            bad(&format!("it does not verify with key {}", file.key_id)),
        ),
    }
}

/// A trusted key signs only for its own publisher (the dev key for any).
fn bind_publisher(check: SignatureCheck, manifest: &Manifest) -> SignatureCheck {
    match check {
        SignatureCheck::Trusted {
            key_id,
            publisher,
            origin,
        } if origin != KeyOrigin::Dev && publisher != manifest.publisher => {
            SignatureCheck::PublisherMismatch {
                key_id,
                key_publisher: publisher,
            }
        }
        other => other,
    }
}

/// Check that the manifest and the component are there and valid, and
/// return the parsed manifest. [`pack`] and [`sign`] run this too: nobody
/// should build or sign what cannot be installed.
fn read_contents(files: &BTreeMap<String, Vec<u8>>) -> Result<Manifest, PackageError> {
    let manifest = files
        .get(MANIFEST_PATH)
        .ok_or(PackageError::MissingManifest)?;
    let component = files
        .get(COMPONENT_PATH)
        .ok_or(PackageError::MissingComponent)?;
    let text = std::str::from_utf8(manifest).map_err(|_| {
        PackageError::InvalidManifest(ManifestError {
            file: MANIFEST_PATH.into(),
            key: String::new(),
            message: "is not UTF-8 text".into(),
        })
    })?;
    let manifest = Manifest::parse(MANIFEST_PATH, text)?;
    if !is_component(component) {
        return Err(PackageError::NotAComponent);
    }
    Ok(manifest)
}

/// The part of a package a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Manifest,
    Component,
    Signature,
    Extra,
}

/// Which part `path` (already checked) is, or `None` if a package may not
/// hold it.
fn classify(path: &str, is_dir: bool) -> Option<Kind> {
    let top = path.split('/').next().unwrap_or_default();
    let depth = path.split('/').count();
    if is_dir {
        return EXTRA_DIRS.contains(&top).then_some(Kind::Extra);
    }
    match path {
        MANIFEST_PATH => Some(Kind::Manifest),
        COMPONENT_PATH => Some(Kind::Component),
        SIGNATURE_PATH => Some(Kind::Signature),
        _ if depth >= 2 && EXTRA_DIRS.contains(&top) => Some(Kind::Extra),
        _ => None,
    }
}

/// Check a raw entry path and return it as a `/`-separated relative path of
/// plain names. A folder may end with one `/`.
fn check_path(raw: &[u8], is_dir: bool) -> Result<String, PackageError> {
    let unsafe_path = |reason: &str| PackageError::UnsafePath {
        path: escape(raw),
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(raw).map_err(|_| unsafe_path("it is not UTF-8"))?;
    let text = if is_dir {
        text.strip_suffix('/').unwrap_or(text)
    } else {
        text
    };
    if text.is_empty() {
        return Err(unsafe_path("it is empty"));
    }
    if text.starts_with('/') {
        return Err(unsafe_path("it is absolute"));
    }
    if text.len() > MAX_PATH_LEN {
        return Err(unsafe_path("it is longer than 255 bytes"));
    }
    if text.contains('\\') {
        return Err(unsafe_path("it contains a backslash"));
    }
    if text.chars().any(char::is_control) {
        return Err(unsafe_path("it contains a control character"));
    }
    let mut depth = 0;
    for part in text.split('/') {
        depth += 1;
        match part {
            "" => return Err(unsafe_path("it has an empty path component")),
            "." => return Err(unsafe_path("it has a `.` component")),
            ".." => return Err(unsafe_path("it has a `..` component")),
            _ => {}
        }
    }
    if depth > MAX_PATH_DEPTH {
        return Err(unsafe_path("it is nested more than 16 folders deep"));
    }
    Ok(text.to_string())
}

/// Collects entries while enforcing the rules, for both reading and writing.
struct Collector<'a> {
    limits: &'a Limits,
    files: BTreeMap<String, Vec<u8>>,
    /// Case-folded file paths.
    file_keys: BTreeSet<String>,
    /// Case-folded folder paths, declared or implied by a file.
    dir_keys: BTreeSet<String>,
    /// Case-folded folder entries seen, to refuse a folder entry twice.
    dir_entries: BTreeSet<String>,
    entries: usize,
    total: u64,
}

impl<'a> Collector<'a> {
    fn new(limits: &'a Limits) -> Self {
        Collector {
            limits,
            files: BTreeMap::new(),
            file_keys: BTreeSet::new(),
            dir_keys: BTreeSet::new(),
            dir_entries: BTreeSet::new(),
            entries: 0,
            total: 0,
        }
    }

    fn count_entry(&mut self) -> Result<(), PackageError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(PackageError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    fn add_dir(&mut self, raw: &[u8]) -> Result<(), PackageError> {
        self.count_entry()?;
        let path = check_path(raw, true)?;
        if classify(&path, true).is_none() {
            return Err(PackageError::UnexpectedEntry { path });
        }
        let key = path.to_lowercase();
        if !self.dir_entries.insert(key.clone()) || self.file_keys.contains(&key) {
            return Err(PackageError::DuplicateEntry { path });
        }
        self.imply_dirs(&path, &key, true)
    }

    /// Check a file's path and declared size before its content is read.
    fn admit_file(&mut self, raw: &[u8], size: u64) -> Result<String, PackageError> {
        self.count_entry()?;
        let path = check_path(raw, false)?;
        let kind = classify(&path, false)
            .ok_or_else(|| PackageError::UnexpectedEntry { path: path.clone() })?;
        let key = path.to_lowercase();
        if self.file_keys.contains(&key) || self.dir_keys.contains(&key) {
            return Err(PackageError::DuplicateEntry { path });
        }
        let limit = if kind == Kind::Component {
            self.limits.max_component_bytes
        } else {
            self.limits.max_entry_bytes
        };
        if size > limit {
            return Err(PackageError::EntryTooLarge {
                path,
                size: Size(size),
                limit: Size(limit),
            });
        }
        self.total = self.total.saturating_add(size);
        if self.total > self.limits.max_total_bytes {
            return Err(PackageError::PackageTooLarge {
                size: Size(self.total),
                limit: Size(self.limits.max_total_bytes),
            });
        }
        self.imply_dirs(&path, &key, false)?;
        self.file_keys.insert(key);
        Ok(path)
    }

    fn add_file(&mut self, raw: &[u8], data: Vec<u8>) -> Result<(), PackageError> {
        let path = self.admit_file(raw, data.len() as u64)?;
        self.files.insert(path, data);
        Ok(())
    }

    /// Record the folders above `path` (and `path` itself for a folder);
    /// none of them may be a file.
    fn imply_dirs(&mut self, path: &str, key: &str, is_dir: bool) -> Result<(), PackageError> {
        let mut prefix = String::new();
        let parts: Vec<&str> = key.split('/').collect();
        let upto = if is_dir { parts.len() } else { parts.len() - 1 };
        for part in &parts[..upto] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.file_keys.contains(&prefix) {
                return Err(PackageError::DuplicateEntry {
                    path: path.to_string(),
                });
            }
            self.dir_keys.insert(prefix.clone());
        }
        Ok(())
    }
}

/// Read the archive in memory, enforcing every structural rule.
fn unpack(bytes: &[u8], limits: &Limits) -> Result<BTreeMap<String, Vec<u8>>, PackageError> {
    let framing = (limits.max_entries as u64)
        .saturating_add(2)
        .saturating_mul(FRAMING_PER_ENTRY);
    let most = limits.max_total_bytes.saturating_add(framing);
    if bytes.len() as u64 > most {
        return Err(PackageError::PackageTooLarge {
            size: Size(bytes.len() as u64),
            limit: Size(limits.max_total_bytes),
        });
    }
    let not_a_package = |e: std::io::Error| PackageError::NotAPackage {
        reason: e.to_string(),
    };
    let mut archive = tar::Archive::new(bytes);
    let mut collector = Collector::new(limits);
    for entry in archive.entries().map_err(not_a_package)? {
        let mut entry = entry.map_err(not_a_package)?;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => collector.add_dir(&raw)?,
            tar::EntryType::Regular => {
                let size = entry.size();
                let path = collector.admit_file(&raw, size)?;
                // The size was checked against the limits above, so this
                // allocation is bounded.
                let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                entry.read_to_end(&mut data).map_err(not_a_package)?;
                if data.len() as u64 != size {
                    return Err(PackageError::NotAPackage {
                        reason: format!("{path} is cut short"),
                    });
                }
                collector.files.insert(path, data);
            }
            other => {
                collector.count_entry()?;
                check_path(&raw, other.is_dir())?;
                return Err(PackageError::LinkEntry {
                    path: escape(&raw),
                    kind: describe(other).into(),
                });
            }
        }
    }
    if collector.entries == 0 {
        return Err(PackageError::NotAPackage {
            reason: "it holds no files".into(),
        });
    }
    Ok(collector.files)
}

fn describe(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "a symbolic link",
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Char | tar::EntryType::Block => "a device",
        tar::EntryType::Fifo => "a FIFO",
        tar::EntryType::GNUSparse => "a sparse file",
        _ => "a special entry",
    }
}

/// A path as found, safe to show: control characters escaped, cut short.
fn escape(raw: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(raw).escape_debug().collect();
    if text.chars().count() > 200 {
        let mut cut: String = text.chars().take(200).collect();
        cut.push('…');
        cut
    } else {
        text
    }
}

/// The deterministic archive of `files`.
fn write_tar(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, PackageError> {
    let failed = |path: &str, e: std::io::Error| PackageError::UnsafePath {
        path: path.to_string(),
        reason: format!("the archive cannot hold it ({e})"),
    };
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, path, data.as_slice())
            .map_err(|e| failed(path, e))?;
    }
    builder.into_inner().map_err(|e| failed("(end)", e))
}

/// What a module's code handles (its `describe` export), held against
/// what its manifest declares: what is missing and what is never called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerCheck {
    /// Declared in the manifest, without a handler: the host would call it
    /// and get a 404, an error or nothing. One message per item, naming the
    /// module, the item and the fix.
    pub missing: Vec<String>,
    /// Handled in the code, not declared: the host never calls it. Worth a
    /// warning, not a refusal.
    pub undeclared: Vec<String>,
}

impl HandlerCheck {
    /// Whether every declared item has a handler.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// A route path with its parameters unnamed (`/tickets/{}`): the host
/// matches parameters by position, so `{id}` and `{ticket}` are one route.
fn route_shape(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let param = (seg.starts_with('{') && seg.ends_with('}')) || seg.starts_with(':');
            if param {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Compare `manifest` with what the component registered (`handlers`, from
/// its `describe` export). Messages name the module, the item (with its
/// manifest key) and the fix in the SDK's terms.
pub fn check_handlers(
    manifest: &Manifest,
    handlers: &kontor_runtime::call::Handlers,
) -> HandlerCheck {
    let id = &manifest.id;
    let mut check = HandlerCheck::default();
    let handled_routes: BTreeSet<(String, String)> = handlers
        .routes
        .iter()
        .map(|(m, p)| (m.to_ascii_uppercase(), route_shape(p)))
        .collect();
    for (i, r) in manifest.routes.iter().enumerate() {
        if !handled_routes.contains(&(r.method.clone(), route_shape(&r.path))) {
            check.missing.push(format!(
                "module {id}: routes[{i}] `{} {}` has no handler; add `.{}(\"{}\", handler)` to `Module::routes`, or remove the route from module.toml",
                r.method,
                r.path,
                r.method.to_ascii_lowercase(),
                r.path
            ));
        }
    }
    let declared_routes: BTreeSet<(String, String)> = manifest
        .routes
        .iter()
        .map(|r| (r.method.clone(), route_shape(&r.path)))
        .collect();
    for (method, path) in &handlers.routes {
        if !declared_routes.contains(&(method.to_ascii_uppercase(), route_shape(path))) {
            check.undeclared.push(format!(
                "module {id}: the code handles `{method} {path}`, but module.toml does not declare it, so the host never calls it; add `[[routes]] method = \"{method}\" path = \"{path}\"` (with its permission) to module.toml, or remove the handler"
            ));
        }
    }
    let mut items = |kind: &str,
                     key: &str,
                     declared: Vec<&str>,
                     handled: &[String],
                     register: &str,
                     section: &str| {
        for (i, name) in declared.iter().enumerate() {
            if !handled.iter().any(|h| h == name) {
                check.missing.push(format!(
                    "module {id}: {key}[{i}] {kind} `{name}` has no handler; add `{register}(\"{name}\", handler)` to `Module::{key}`, or remove it from module.toml"
                ));
            }
        }
        for name in handled {
            if !declared.contains(&name.as_str()) {
                check.undeclared.push(format!(
                    "module {id}: the code handles {kind} `{name}`, but module.toml does not declare it, so the host never calls it; add it under `{section}` in module.toml, or remove the handler"
                ));
            }
        }
    };
    items(
        "page",
        "pages",
        manifest.pages.iter().map(|p| p.path.as_str()).collect(),
        &handlers.pages,
        ".page",
        "[[pages]]",
    );
    items(
        "event",
        "events",
        manifest.events.iter().map(|e| e.name.as_str()).collect(),
        &handlers.events,
        ".on",
        "[[events]]",
    );
    items(
        "filter hook",
        "filters",
        manifest.filters.iter().map(|f| f.hook.as_str()).collect(),
        &handlers.filters,
        ".hook",
        "[[filters]]",
    );
    items(
        "job",
        "jobs",
        manifest.jobs.iter().map(|j| j.name.as_str()).collect(),
        &handlers.jobs,
        ".job",
        "[[jobs]]",
    );
    check
}

#[cfg(test)]
mod handler_tests {
    use super::*;

    fn handlers() -> kontor_runtime::call::Handlers {
        kontor_runtime::call::Handlers {
            routes: vec![
                ("GET".into(), "/greeting".into()),
                ("POST".into(), "/greeting".into()),
                ("GET".into(), "/seen".into()),
            ],
            pages: vec!["/".into()],
            events: vec!["customer.created".into()],
            filters: vec![
                "customer.before_save".into(),
                "dashboard.widgets".into(),
                "customer.tabs".into(),
            ],
            jobs: vec!["tick".into()],
        }
    }

    #[test]
    fn the_hello_manifest_and_its_handlers_agree() {
        let (text, _) = kontor_runtime::bundled::HELLO;
        let manifest = Manifest::parse("hello/module.toml", text).unwrap();
        assert_eq!(
            check_handlers(&manifest, &handlers()),
            HandlerCheck::default()
        );
    }

    #[test]
    fn a_declared_item_without_handler_names_module_item_and_fix() {
        let (text, _) = kontor_runtime::bundled::HELLO;
        let text = format!(
            "{text}\n[[routes]]\nmethod = \"DELETE\"\npath = \"/seen/{{id}}\"\npermission = \"hello.view\"\n\n[[jobs]]\nname = \"purge\"\nschedule = \"0 3 * * *\"\n"
        );
        let manifest = Manifest::parse("hello/module.toml", &text).unwrap();
        let mut h = handlers();
        h.events.clear();
        h.routes.push(("GET".into(), "/extra".into()));
        let check = check_handlers(&manifest, &h);
        assert_eq!(
            check.missing,
            [
                "module hello: routes[3] `DELETE /seen/{id}` has no handler; add `.delete(\"/seen/{id}\", handler)` to `Module::routes`, or remove the route from module.toml",
                "module hello: events[0] event `customer.created` has no handler; add `.on(\"customer.created\", handler)` to `Module::events`, or remove it from module.toml",
                "module hello: jobs[1] job `purge` has no handler; add `.job(\"purge\", handler)` to `Module::jobs`, or remove it from module.toml",
            ]
        );
        assert_eq!(check.undeclared.len(), 1);
        assert!(check.undeclared[0].contains("`GET /extra`"), "{check:?}");
        assert!(!check.is_complete());
    }

    #[test]
    fn route_parameters_match_by_position_not_by_name() {
        assert_eq!(
            route_shape("/tickets/{id}/notes"),
            route_shape("/tickets/:ticket/notes")
        );
        assert_ne!(route_shape("/tickets/{id}"), route_shape("/tickets"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::trust::{self, PublisherKey};

    const MANIFEST: &str = "id = \"demo\"\nname = \"Demo\"\nversion = \"1.2.3\"\npublisher = \"acme\"\napi = \"^0.1\"\n";

    fn wasm() -> Vec<u8> {
        let mut bytes = COMPONENT_PREAMBLE.to_vec();
        bytes.extend((0..2000u32).map(|i| (i * 7 % 251) as u8));
        bytes
    }

    fn extras() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("templates/page.html", b"<h1>{{ title }}</h1>".as_slice()),
            ("locales/en/messages.ftl", b"hello = Hello".as_slice()),
            ("assets/app.css", b"body { margin: 0 }".as_slice()),
        ]
    }

    /// A key for publisher `acme`, trusted by the returned store.
    fn acme() -> (SigningKey, TrustStore) {
        let key = trust::generate_signing_key();
        let mut store = TrustStore::builtin(false);
        store
            .add_key(&PublisherKey::new("acme", &key.verifying_key()).unwrap())
            .unwrap();
        (key, store)
    }

    fn signed() -> (Vec<u8>, TrustStore) {
        let (key, store) = acme();
        let bytes = sign(&pack(MANIFEST, &wasm(), &extras()).unwrap(), &key).unwrap();
        (bytes, store)
    }

    fn code(result: Result<Package, PackageError>) -> &'static str {
        match result {
            Ok(_) => "accepted",
            Err(e) => e.code(),
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kontor-package-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// One raw entry for hand-made (hostile) archives: the path goes into
    /// the header as is, so `..`, `/abs` and links can be written.
    enum Raw<'a> {
        File(&'a [u8], &'a [u8]),
        /// Declares `size` bytes but carries only the given ones.
        Lying(&'a [u8], u64, &'a [u8]),
        Dir(&'a [u8]),
        Symlink(&'a [u8], &'a [u8]),
        Hardlink(&'a [u8], &'a [u8]),
        Fifo(&'a [u8]),
    }

    fn raw_tar(entries: &[Raw<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in entries {
            let mut header = tar::Header::new_ustar();
            header.set_mode(0o644);
            header.set_mtime(0);
            let (path, kind, size, data): (&[u8], _, u64, &[u8]) = match entry {
                Raw::File(p, d) => (p, tar::EntryType::Regular, d.len() as u64, d),
                Raw::Lying(p, size, d) => (p, tar::EntryType::Regular, *size, d),
                Raw::Dir(p) => (p, tar::EntryType::Directory, 0, b""),
                Raw::Symlink(p, target) | Raw::Hardlink(p, target) => {
                    header.as_old_mut().linkname[..target.len()].copy_from_slice(target);
                    let kind = if matches!(entry, Raw::Symlink(..)) {
                        tar::EntryType::Symlink
                    } else {
                        tar::EntryType::Link
                    };
                    (p, kind, 0, b"")
                }
                Raw::Fifo(p) => (p, tar::EntryType::Fifo, 0, b""),
            };
            header.as_old_mut().name[..path.len()].copy_from_slice(path);
            header.set_entry_type(kind);
            header.set_size(size);
            header.set_cksum();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    /// A valid package (manifest + component) plus `extra` raw entries.
    fn hostile(extra: &[Raw<'_>]) -> Vec<u8> {
        let wasm = wasm();
        let mut entries = vec![
            Raw::File(b"module.toml", MANIFEST.as_bytes()),
            Raw::File(b"module.wasm", &wasm),
        ];
        for e in extra {
            entries.push(match e {
                Raw::File(p, d) => Raw::File(p, d),
                Raw::Lying(p, s, d) => Raw::Lying(p, *s, d),
                Raw::Dir(p) => Raw::Dir(p),
                Raw::Symlink(p, t) => Raw::Symlink(p, t),
                Raw::Hardlink(p, t) => Raw::Hardlink(p, t),
                Raw::Fifo(p) => Raw::Fifo(p),
            });
        }
        raw_tar(&entries)
    }

    fn dev() -> OpenOptions {
        OpenOptions { dev: true }
    }

    #[test]
    fn pack_sign_open_round_trip_with_a_trusted_key() {
        let (key, store) = acme();
        let bytes = sign(&pack(MANIFEST, &wasm(), &extras()).unwrap(), &key).unwrap();
        let package = open(&bytes, &store, OpenOptions::default()).unwrap();
        assert_eq!(package.manifest.id, "demo");
        assert_eq!(package.manifest.version.to_string(), "1.2.3");
        assert_eq!(package.manifest_text, MANIFEST);
        assert_eq!(package.component, wasm().as_slice());
        assert_eq!(package.files.len(), 3);
        assert_eq!(
            package.files["templates/page.html"],
            b"<h1>{{ title }}</h1>"
        );
        assert_eq!(
            package.signer(),
            &Signer::Publisher {
                key_id: trust::key_id(&key.verifying_key()),
                publisher: "acme".into(),
                origin: KeyOrigin::Admin,
            }
        );
        assert!(!package.files.contains_key(SIGNATURE_PATH));
    }

    #[test]
    fn pack_is_deterministic_and_signing_twice_replaces_the_signature() {
        let a = pack(MANIFEST, &wasm(), &extras()).unwrap();
        let mut reversed = extras();
        reversed.reverse();
        let b = pack(MANIFEST, &wasm(), &reversed).unwrap();
        assert_eq!(a, b, "the order of the inputs must not matter");

        let (key, store) = acme();
        let once = sign(&a, &key).unwrap();
        let twice = sign(&once, &key).unwrap();
        assert_eq!(once, twice, "ed25519 is deterministic; one signature.json");
        let (other, _) = acme();
        let resigned = sign(&once, &other).unwrap();
        assert_eq!(
            code(open(&resigned, &store, OpenOptions::default())),
            "untrusted_key"
        );
    }

    #[test]
    fn digest_is_the_sha256_of_a_sha256sum_listing_and_ignores_the_signature() {
        let files: Vec<(&str, &[u8])> = vec![("b", b"2"), ("a", b"1"), (SIGNATURE_PATH, b"x")];
        let listing = format!(
            "{}  a\n{}  b\n",
            hex::encode(Sha256::digest(b"1")),
            hex::encode(Sha256::digest(b"2"))
        );
        let expected: [u8; 32] = Sha256::digest(listing.as_bytes()).into();
        assert_eq!(digest(files), expected);
    }

    #[test]
    fn any_flipped_byte_is_refused_or_changes_nothing_that_is_loaded() {
        let (bytes, store) = signed();
        let original = unpack(&bytes, &Limits::default()).unwrap();
        let digest_of = |files: &BTreeMap<String, Vec<u8>>| {
            digest(files.iter().map(|(p, d)| (p.as_str(), d.as_slice())))
        };
        let original_digest = digest_of(&original);
        let mut opened = 0;
        for at in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[at] ^= 0x01;
            // Cheap first: most flips break the archive itself, and a flip
            // that changes a signed file changes the digest.
            let Ok(files) = unpack(&tampered, &Limits::default()) else {
                continue;
            };
            if files == original {
                // Unsigned tar metadata or padding: nothing loaded differs.
                continue;
            }
            let changed_digest = digest_of(&files) != original_digest;
            // Every flip that reaches the signature file, and a sample of
            // those that change the digest, go through the whole of `open`
            // (ed25519 verification takes ~10 ms in a debug build).
            if !changed_digest || at % 64 == 0 {
                opened += 1;
                let result = open(&tampered, &store, OpenOptions::default());
                assert!(result.is_err(), "flipping byte {at} was not refused");
            }
        }
        assert!(opened > 100, "only {opened} flips were opened");
    }

    #[test]
    fn a_flipped_byte_in_each_signed_file_is_a_bad_signature() {
        let (bytes, store) = signed();
        for needle in [
            b"Demo".as_slice(),
            &wasm()[100..120],
            b"{{ title }}",
            b"hello = Hello",
            b"margin",
        ] {
            let at = bytes
                .windows(needle.len())
                .position(|w| w == needle)
                .unwrap();
            let mut tampered = bytes.clone();
            tampered[at + 1] ^= 0x20;
            let err = open(&tampered, &store, OpenOptions::default()).unwrap_err();
            assert_eq!(err.code(), "bad_signature", "{err}");
            assert!(err.to_string().contains("changed after it was signed"));
        }
    }

    #[test]
    fn unsigned_package_is_refused_unless_dev() {
        let bytes = pack(MANIFEST, &wasm(), &extras()).unwrap();
        let store = TrustStore::builtin(false);
        let err = open(&bytes, &store, OpenOptions::default()).unwrap_err();
        assert_eq!(err.code(), "unsigned");
        assert!(err.to_string().contains("--dev"));
        let package = open(&bytes, &store, dev()).unwrap();
        assert_eq!(package.signer(), &Signer::Unsigned);
    }

    #[test]
    fn dev_accepts_an_unknown_key_but_never_a_bad_signature() {
        let (bytes, store) = signed();
        let at = bytes.windows(4).position(|w| w == b"Demo").unwrap();
        let mut tampered = bytes.clone();
        tampered[at] ^= 1;
        assert_eq!(code(open(&tampered, &store, dev())), "bad_signature");
        let package = open(&bytes, &TrustStore::builtin(true), dev()).unwrap();
        assert!(matches!(package.signer(), Signer::UntrustedKey { .. }));
    }

    #[test]
    fn package_signed_by_an_unknown_key_is_untrusted() {
        let (bytes, _) = signed();
        let err = open(&bytes, &TrustStore::builtin(false), OpenOptions::default()).unwrap_err();
        assert_eq!(err.code(), "untrusted_key");
        assert!(err.to_string().contains("add their public key"));
    }

    #[test]
    fn dev_key_signature_is_refused_unless_the_store_trusts_the_dev_key() {
        let text = include_str!("../../../sdk/kontor-module/keys/dev-signing.key");
        let (_, key) = trust::decode_signing_key(text).unwrap();
        let bytes = sign(&pack(MANIFEST, &wasm(), &extras()).unwrap(), &key).unwrap();
        assert_eq!(
            code(open(
                &bytes,
                &TrustStore::builtin(false),
                OpenOptions::default()
            )),
            "untrusted_key"
        );
        let package = open(&bytes, &TrustStore::builtin(true), dev()).unwrap();
        assert!(matches!(
            package.signer(),
            Signer::Publisher {
                origin: KeyOrigin::Dev,
                ..
            }
        ));
    }

    #[test]
    fn trusted_key_cannot_sign_for_another_publisher() {
        let (key, store) = acme();
        let manifest = MANIFEST.replace("acme", "kontor");
        let bytes = sign(&pack(&manifest, &wasm(), &extras()).unwrap(), &key).unwrap();
        let err = open(&bytes, &store, OpenOptions::default()).unwrap_err();
        assert_eq!(err.code(), "publisher_mismatch");
        let shown = inspect(&bytes, &store).unwrap();
        assert!(matches!(
            shown.signature,
            SignatureCheck::PublisherMismatch { .. }
        ));
    }

    #[test]
    fn malformed_signature_file_is_a_bad_signature() {
        let (_, store) = signed();
        for json in [
            b"not json".as_slice(),
            br#"{"key_id":"x","algorithm":"rsa","signature":"AA=="}"#,
        ] {
            let bytes = hostile(&[Raw::File(b"signature.json", json)]);
            assert_eq!(code(open(&bytes, &store, dev())), "bad_signature");
        }
    }

    #[test]
    fn traversal_and_absolute_paths_are_refused() {
        for path in [
            b"../evil".as_slice(),
            b"/abs",
            b"/etc/passwd",
            b"templates/../../evil",
            b"templates/./x",
            b"templates//x",
            b"templates\\..\\x",
            b"templates/a\nb",
        ] {
            let bytes = hostile(&[Raw::File(path, b"x")]);
            let err = open(&bytes, &TrustStore::empty(), dev()).unwrap_err();
            assert_eq!(err.code(), "unsafe_path", "{}: {err}", escape(path));
        }
        let err = open(
            &hostile(&[Raw::Dir(b"../up/")]),
            &TrustStore::empty(),
            dev(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "unsafe_path");
    }

    #[test]
    fn links_devices_and_fifos_are_refused() {
        for (entry, kind) in [
            (
                Raw::Symlink(b"templates/x", b"/etc/passwd"),
                "symbolic link",
            ),
            (Raw::Hardlink(b"templates/x", b"module.toml"), "hard link"),
            (Raw::Fifo(b"templates/x"), "FIFO"),
        ] {
            let err = open(&hostile(&[entry]), &TrustStore::empty(), dev()).unwrap_err();
            assert_eq!(err.code(), "link_entry");
            assert!(err.to_string().contains(kind), "{err}");
        }
    }

    #[test]
    fn duplicate_entries_are_refused_also_by_case_and_file_folder_clash() {
        for extra in [
            vec![Raw::File(b"module.toml", MANIFEST.as_bytes())],
            vec![
                Raw::File(b"templates/a", b"1"),
                Raw::File(b"templates/A", b"2"),
            ],
            vec![
                Raw::File(b"templates/a", b"1"),
                Raw::File(b"templates/a/b", b"2"),
            ],
            vec![
                Raw::File(b"templates/a/b", b"1"),
                Raw::File(b"templates/a", b"2"),
            ],
            vec![Raw::Dir(b"templates/"), Raw::Dir(b"templates/")],
        ] {
            let err = open(&hostile(&extra), &TrustStore::empty(), dev()).unwrap_err();
            assert_eq!(err.code(), "duplicate_entry", "{err}");
        }
        // A folder entry beside the files in it is fine.
        let ok = hostile(&[Raw::Dir(b"templates/"), Raw::File(b"templates/a", b"1")]);
        open(&ok, &TrustStore::empty(), dev()).unwrap();
    }

    #[test]
    fn oversized_entry_is_refused_from_its_header_before_it_is_read() {
        // Claims 1 GiB but carries 10 bytes: refused by the declared size,
        // so nothing is allocated for it.
        let bytes = hostile(&[Raw::Lying(b"assets/big.bin", 1 << 30, b"0123456789")]);
        let err = open(&bytes, &TrustStore::empty(), dev()).unwrap_err();
        assert_eq!(err.code(), "entry_too_large");

        let big = vec![0u8; (4 * MIB + 1) as usize];
        let bytes = hostile(&[Raw::File(b"assets/big.bin", &big)]);
        let err = open(&bytes, &TrustStore::empty(), dev()).unwrap_err();
        assert_eq!(err.code(), "entry_too_large");
        assert!(err.to_string().contains("4.0 MiB"), "{err}");
        assert_eq!(
            pack(MANIFEST, &wasm(), &[("assets/big.bin", &big)])
                .unwrap_err()
                .code(),
            "entry_too_large"
        );
    }

    #[test]
    fn tar_bomb_over_the_total_is_refused() {
        // 16 files of 4 MiB each beside the manifest and component: every
        // one under the entry cap, together just over the 64 MiB total, in
        // an archive small enough to be read (so the count refuses it).
        let chunk = vec![7u8; (4 * MIB) as usize];
        let names: Vec<String> = (0..16).map(|i| format!("assets/{i:02}.bin")).collect();
        let entries: Vec<Raw<'_>> = names
            .iter()
            .map(|n| Raw::File(n.as_bytes(), &chunk))
            .collect();
        let err = open(&hostile(&entries), &TrustStore::empty(), dev()).unwrap_err();
        assert_eq!(err.code(), "package_too_large");

        // And an archive far bigger than any package is refused unread.
        let huge = vec![0u8; (70 * MIB) as usize];
        assert_eq!(
            code(open(&huge, &TrustStore::empty(), dev())),
            "package_too_large"
        );
    }

    #[test]
    fn too_many_entries_are_refused() {
        let names: Vec<String> = (0..1001).map(|i| format!("assets/{i}.txt")).collect();
        let entries: Vec<Raw<'_>> = names
            .iter()
            .map(|n| Raw::File(n.as_bytes(), b"x"))
            .collect();
        let err = open(&hostile(&entries), &TrustStore::empty(), dev()).unwrap_err();
        assert_eq!(err.code(), "too_many_entries");

        let small = Limits {
            max_entries: 3,
            ..Limits::default()
        };
        let bytes = hostile(&[Raw::File(b"assets/a", b"1"), Raw::File(b"assets/b", b"2")]);
        assert_eq!(
            code(open_with_limits(
                &bytes,
                &TrustStore::empty(),
                dev(),
                &small
            )),
            "too_many_entries"
        );
    }

    #[test]
    fn paths_outside_the_allowed_names_are_refused() {
        for path in [
            b"evil.sh".as_slice(),
            b"src/lib.rs",
            b"templates",
            b"MODULE.TOML",
        ] {
            let err = open(
                &hostile(&[Raw::File(path, b"x")]),
                &TrustStore::empty(),
                dev(),
            )
            .unwrap_err();
            assert_eq!(err.code(), "unexpected_entry", "{}", escape(path));
        }
        assert_eq!(
            pack(MANIFEST, &wasm(), &[("module.wasm", b"x")])
                .unwrap_err()
                .code(),
            "unexpected_entry"
        );
        assert_eq!(
            pack(MANIFEST, &wasm(), &[("../x", b"x")])
                .unwrap_err()
                .code(),
            "unsafe_path"
        );
    }

    #[test]
    fn missing_parts_bad_manifest_core_module_and_garbage_each_have_their_code() {
        let store = TrustStore::empty();
        let wasm = wasm();
        let only_wasm = raw_tar(&[Raw::File(b"module.wasm", &wasm)]);
        assert_eq!(code(open(&only_wasm, &store, dev())), "missing_manifest");
        let only_toml = raw_tar(&[Raw::File(b"module.toml", MANIFEST.as_bytes())]);
        assert_eq!(code(open(&only_toml, &store, dev())), "missing_component");

        let bad = MANIFEST.replace("1.2.3", "one");
        let bytes = raw_tar(&[
            Raw::File(b"module.toml", bad.as_bytes()),
            Raw::File(b"module.wasm", &wasm),
        ]);
        let err = open(&bytes, &store, dev()).unwrap_err();
        assert_eq!(err.code(), "invalid_manifest");
        assert!(err.to_string().contains("module.toml: version"), "{err}");

        let core_module = b"\0asm\x01\0\0\0";
        let bytes = raw_tar(&[
            Raw::File(b"module.toml", MANIFEST.as_bytes()),
            Raw::File(b"module.wasm", core_module),
        ]);
        assert_eq!(code(open(&bytes, &store, dev())), "not_a_component");
        assert_eq!(
            pack(MANIFEST, core_module, &extras()).unwrap_err().code(),
            "not_a_component"
        );

        for garbage in [b"".as_slice(), b"hello", &[0x42; 4096], &[0u8; 1024]] {
            assert_eq!(code(open(garbage, &store, dev())), "not_a_package");
        }
    }

    #[test]
    fn inspect_reports_every_signature_state_without_refusing() {
        let (bytes, store) = signed();
        let shown = inspect(&bytes, &store).unwrap();
        assert_eq!(shown.manifest.id, "demo");
        assert!(matches!(shown.signature, SignatureCheck::Trusted { .. }));
        assert_eq!(shown.files.len(), 5);
        assert!(matches!(
            inspect(&bytes, &TrustStore::empty()).unwrap().signature,
            SignatureCheck::UntrustedKey { .. }
        ));
        let unsigned = pack(MANIFEST, &wasm(), &extras()).unwrap();
        assert_eq!(
            inspect(&unsigned, &store).unwrap().signature,
            SignatureCheck::Unsigned
        );
        let at = bytes.windows(4).position(|w| w == b"Demo").unwrap();
        let mut tampered = bytes.clone();
        tampered[at] ^= 1;
        let shown = inspect(&tampered, &store).unwrap();
        assert!(matches!(shown.signature, SignatureCheck::Bad { .. }));
        assert!(shown.signature.to_string().starts_with("BAD"));
    }

    #[test]
    fn extract_to_writes_the_extra_files_inside_the_dir() {
        let (bytes, store) = signed();
        let package = open(&bytes, &store, OpenOptions::default()).unwrap();
        let dir = temp_dir();
        let written = package.extract_to(&dir.join("demo")).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(
            std::fs::read(dir.join("demo/templates/page.html")).unwrap(),
            b"<h1>{{ title }}</h1>"
        );
        assert!(!dir.join("demo/module.wasm").exists());
        // Extracting again replaces the files.
        package.extract_to(&dir.join("demo")).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn traversal_archive_writes_nothing_outside_the_dir() {
        let root = temp_dir();
        let dir = root.join("module");
        // Refused by open, which writes nothing at all.
        let bytes = hostile(&[Raw::File(b"templates/../../evil", b"pwned")]);
        assert_eq!(
            code(open(&bytes, &TrustStore::empty(), dev())),
            "unsafe_path"
        );
        // And extract_to checks again, even for a package built in memory.
        let (ok, store) = signed();
        let mut package = open(&ok, &store, OpenOptions::default()).unwrap();
        package
            .files
            .insert("templates/../../evil".into(), b"pwned".to_vec());
        let err = package.extract_to(&dir).unwrap_err();
        assert_eq!(err.code(), "unsafe_path");
        let mut package = open(&ok, &store, OpenOptions::default()).unwrap();
        package.files.insert("/tmp/evil".into(), b"pwned".to_vec());
        assert_eq!(package.extract_to(&dir).unwrap_err().code(), "unsafe_path");
        assert!(!root.join("evil").exists());
        assert!(!std::path::Path::new("/tmp/evil").exists());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn extract_to_never_follows_a_link_inside_the_dir() {
        let root = temp_dir();
        let outside = root.join("outside");
        let dir = root.join("module");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let (bytes, store) = signed();
        let package = open(&bytes, &store, OpenOptions::default()).unwrap();

        // A folder that is a link to outside: refused.
        std::os::unix::fs::symlink(&outside, dir.join("templates")).unwrap();
        assert_eq!(package.extract_to(&dir).unwrap_err().code(), "unsafe_path");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

        // A file that is a link to outside: replaced, not written through.
        std::fs::remove_file(dir.join("templates")).unwrap();
        std::fs::create_dir(dir.join("templates")).unwrap();
        let target = outside.join("victim");
        std::fs::write(&target, b"original").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("templates/page.html")).unwrap();
        package.extract_to(&dir).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"original");
        assert!(!std::fs::symlink_metadata(dir.join("templates/page.html"))
            .unwrap()
            .file_type()
            .is_symlink());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn every_refusal_has_a_distinct_code_and_an_api_error() {
        let errors = [
            PackageError::NotAPackage { reason: "x".into() },
            PackageError::Unsigned,
            PackageError::BadSignature { reason: "x".into() },
            PackageError::UntrustedKey { key_id: "x".into() },
            PackageError::PublisherMismatch {
                publisher: "a".into(),
                key_id: "k".into(),
                key_publisher: "b".into(),
            },
            PackageError::UnsafePath {
                path: "x".into(),
                reason: "y".into(),
            },
            PackageError::LinkEntry {
                path: "x".into(),
                kind: "y".into(),
            },
            PackageError::DuplicateEntry { path: "x".into() },
            PackageError::EntryTooLarge {
                path: "x".into(),
                size: Size(2),
                limit: Size(1),
            },
            PackageError::PackageTooLarge {
                size: Size(2),
                limit: Size(1),
            },
            PackageError::TooManyEntries { limit: 1 },
            PackageError::UnexpectedEntry { path: "x".into() },
            PackageError::MissingManifest,
            PackageError::MissingComponent,
            PackageError::NotAComponent,
            PackageError::InvalidManifest(ManifestError {
                file: "module.toml".into(),
                key: "id".into(),
                message: "bad".into(),
            }),
            PackageError::ExtractFailed {
                path: "x".into(),
                reason: "y".into(),
            },
        ];
        let codes: BTreeSet<&str> = errors.iter().map(PackageError::code).collect();
        assert_eq!(codes.len(), errors.len());
        let api = PackageError::Unsigned.into_api_error();
        assert_eq!(api.code(), crate::error::Code::ModulePackageRefused);
    }
}
