//! Who is calling and what they may do.
//!
//! * [`password`] — argon2id hashing, off the async runtime;
//! * [`roles`] — roles and the role → permission map (modules add permissions);
//! * [`users`] — the people of a tenant;
//! * [`sessions`] — browser/API login sessions, stored server-side and revocable;
//! * [`tokens`] — personal API tokens, shown once and stored hashed;
//! * [`principal`] — the authenticated caller every handler receives;
//! * [`rate_limit`] — brute-force protection for login;
//! * [`signature`] — the `Kontor-Signature` HMAC of machine senders
//!   (payment webhooks, module hooks).

pub mod password;
pub mod principal;
pub mod rate_limit;
pub mod roles;
pub mod sessions;
pub mod signature;
pub mod tokens;
pub mod users;

pub use principal::Principal;
pub use roles::Role;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// 32 random bytes, base64url without padding: the secret part of every token.
pub(crate) fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 hex of a high-entropy token. Tokens carry 256 random bits, so a
/// fast hash is enough; a stolen table still does not yield usable tokens.
pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Lower-cased, trimmed e-mail: the form uniqueness and login compare.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausibility check on an e-mail address (one `@`, a dot in the domain,
/// no spaces); delivery is the only real test.
pub fn is_plausible_email(email: &str) -> bool {
    let email = email.trim();
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
        && !domain.contains('@')
        && email.len() <= 254
}
