//! The crypto operations DKIM needs, behind one small trait with a backend
//! per feature: `aws-lc-rs` (preferred when both are built) or `ring`.

use alloc::vec::Vec;

#[cfg(feature = "aws-lc-rs")]
mod aws;
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
mod none;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
mod ring_backend;

/// A failure inside the crypto backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The backend does not accept this key.
    #[error("the crypto backend rejected the key")]
    KeyRejected,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// This build has no backend for the operation.
    #[error("no crypto backend for this operation in this build (features aws-lc-rs / ring)")]
    Unsupported,
}

/// What a backend provides. Keys are parsed once and kept.
pub(crate) trait Backend {
    type RsaKey;
    type Ed25519Key;
    /// RSAPrivateKey (PKCS#1) DER.
    fn rsa_from_pkcs1(der: &[u8]) -> Result<Self::RsaKey, CryptoError>;
    /// PKCS#8 DER of an RSA key.
    fn rsa_from_pkcs8(der: &[u8]) -> Result<Self::RsaKey, CryptoError>;
    /// RSASSA-PKCS1-v1_5 with SHA-256 over `data`.
    fn rsa_sign(key: &Self::RsaKey, data: &[u8]) -> Result<Vec<u8>, CryptoError>;
    /// The RSAPublicKey DER.
    fn rsa_public(key: &Self::RsaKey) -> Vec<u8>;
    /// Verifies RSASSA-PKCS1-v1_5 SHA-256 (keys of 1024 to 8192 bits).
    fn rsa_verify(public_der: &[u8], data: &[u8], sig: &[u8]) -> Result<bool, CryptoError>;
    /// A public key parsed for repeated verification.
    type ParsedPublic: Send + Sync;
    /// Parses an RSAPublicKey DER once (`None` when the backend refuses it).
    fn rsa_public_parse(public_der: &[u8]) -> Option<Self::ParsedPublic>;
    /// Parses a raw Ed25519 public key once.
    fn ed25519_public_parse(public: &[u8; 32]) -> Option<Self::ParsedPublic>;
    /// [`Backend::rsa_verify`] or [`Backend::ed25519_verify`] with a key
    /// parsed before (the key says which).
    fn verify_parsed(key: &Self::ParsedPublic, msg: &[u8], sig: &[u8])
    -> Result<bool, CryptoError>;
    /// A new RSA key of `bits` bits, as PKCS#8 DER.
    fn rsa_generate(bits: usize) -> Result<Vec<u8>, CryptoError>;
    /// An Ed25519 key from its 32-byte seed.
    fn ed25519_from_seed(seed: &[u8; 32]) -> Result<Self::Ed25519Key, CryptoError>;
    /// Ed25519 over `msg` (DKIM passes the SHA-256 of the data).
    fn ed25519_sign(key: &Self::Ed25519Key, msg: &[u8]) -> Vec<u8>;
    /// The 32-byte public key.
    fn ed25519_public(key: &Self::Ed25519Key) -> [u8; 32];
    /// Verifies Ed25519 over `msg`.
    fn ed25519_verify(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> Result<bool, CryptoError>;
    /// Whether the backend verifies RSA over a SHA-256 digest computed
    /// before ([`Backend::rsa_verify_digest`]); ring hashes the data itself.
    const RSA_VERIFIES_DIGEST: bool = false;
    /// [`Backend::rsa_verify`] given the SHA-256 of the data.
    fn rsa_verify_digest(
        _public_der: &[u8],
        _digest: &[u8; 32],
        _sig: &[u8],
    ) -> Result<bool, CryptoError> {
        Err(CryptoError::Unsupported)
    }
    /// [`Backend::rsa_verify_digest`] with an RSA key parsed before.
    fn verify_parsed_rsa_digest(
        _key: &Self::ParsedPublic,
        _digest: &[u8; 32],
        _sig: &[u8],
    ) -> Result<bool, CryptoError> {
        Err(CryptoError::Unsupported)
    }
}

/// The parsed public key type of the selected backend.
pub(crate) type ParsedPublic = <Selected as Backend>::ParsedPublic;

#[cfg(feature = "aws-lc-rs")]
pub(crate) type Selected = aws::AwsLc;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub(crate) type Selected = ring_backend::Ring;
#[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
pub(crate) type Selected = none::NoBackend;

/// The name of the backend this build uses.
pub const BACKEND: &str = {
    #[cfg(feature = "aws-lc-rs")]
    {
        "aws-lc-rs"
    }
    #[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
    {
        "ring"
    }
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    {
        "none"
    }
};
