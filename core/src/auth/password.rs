//! Password hashing with argon2id.
//!
//! Hashing is CPU-bound by design, so it runs on the blocking pool and never
//! stalls the async workers. A login for an unknown e-mail verifies against a
//! fixed dummy hash, so it costs the same time as a wrong password.

use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;

use crate::error::{Error, Result};

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work).
pub const MAX_LENGTH: usize = 256;

/// Check the password policy; the error names the rule.
pub fn check_policy(password: &str) -> Result<()> {
    let len = password.chars().count();
    if len < MIN_LENGTH {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_LENGTH} characters"),
        ));
    }
    if len > MAX_LENGTH {
        return Err(Error::invalid(
            "password",
            format!("must be at most {MAX_LENGTH} characters"),
        ));
    }
    Ok(())
}

/// Hash a password (argon2id, random salt) on the blocking pool.
pub async fn hash(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(Error::internal)?
}

fn hash_blocking(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(Error::internal)
}

/// Verify `password` against `stored`, or against the dummy hash when there
/// is no user, so both paths take the same time. Returns whether it matched
/// (always false without a user).
pub async fn verify(password: &str, stored: Option<String>) -> Result<bool> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let real = stored.is_some();
        let hash = match stored {
            Some(h) => h,
            None => dummy_hash().to_owned(),
        };
        let parsed = PasswordHash::new(&hash).map_err(Error::internal)?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && real)
    })
    .await
    .map_err(Error::internal)?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_blocking("kontor-dummy-password-for-timing").unwrap_or_else(|_| {
            // Unreachable in practice; a malformed dummy still fails verification.
            String::new()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify("wrong horse battery", Some(h)).await.unwrap());
        assert!(!verify("kontor-dummy-password-for-timing", None)
            .await
            .unwrap());
    }

    #[test]
    fn policy_names_the_rule() {
        assert!(check_policy("short")
            .unwrap_err()
            .to_string()
            .contains("at least"));
        assert!(check_policy("long enough!").is_ok());
    }
}
