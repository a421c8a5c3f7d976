//! Password hashes: argon2id in PHC strings (RFC 9106 parameters as
//! argon2's defaults: 19 MiB, 2 passes, 1 lane). Verification reads the
//! parameters from the stored string, so older hashes keep working after
//! the defaults change.
//!
//! ```
//! use ptt_bins::userdb::password;
//! let phc = password::hash("correct horse").unwrap();
//! assert!(phc.starts_with("$argon2id$"));
//! assert!(password::verify("correct horse", &phc));
//! assert!(!password::verify("wrong", &phc));
//! ```

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

/// Hashing failed (the kernel's random source, or an empty password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Empty passwords are refused.
    #[error("the password is empty")]
    Empty,
    /// argon2 refused.
    #[error("hashing the password: {0}")]
    Argon2(String),
}

/// Hashes `password` with a fresh salt.
pub fn hash(password: &str) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError::Argon2(e.to_string()))
}

/// Whether `password` matches the PHC string `phc` (false for a malformed
/// string, never a panic).
pub fn verify(password: &str, phc: &str) -> bool {
    !password.is_empty()
        && Argon2::default()
            .verify_password(password.as_bytes(), phc)
            .is_ok()
}

/// Whether `phc` is an argon2 PHC string this module can verify against.
pub fn is_hash(phc: &str) -> bool {
    argon2::password_hash::phc::PasswordHash::new(phc).is_ok()
}

/// A hash of a password nobody has, computed once: verifying against it
/// for unknown users takes as long as for real ones, so timing does not
/// tell which accounts exist.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("ptt decoy: no account has this password").unwrap_or_default())
}
