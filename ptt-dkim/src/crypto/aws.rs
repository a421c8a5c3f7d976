//! The aws-lc-rs backend.

use alloc::vec::Vec;

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RsaKeyPair, UnparsedPublicKey,
};

use super::{Backend, CryptoError};

pub(crate) struct AwsLc;

impl Backend for AwsLc {
    type RsaKey = RsaKeyPair;
    type Ed25519Key = Ed25519KeyPair;

    fn rsa_from_pkcs1(der: &[u8]) -> Result<RsaKeyPair, CryptoError> {
        RsaKeyPair::from_der(der).map_err(|_| CryptoError::KeyRejected)
    }

    fn rsa_from_pkcs8(der: &[u8]) -> Result<RsaKeyPair, CryptoError> {
        RsaKeyPair::from_pkcs8(der).map_err(|_| CryptoError::KeyRejected)
    }

    fn rsa_sign(key: &RsaKeyPair, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut sig = alloc::vec![0; key.public_modulus_len()];
        key.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            data,
            &mut sig,
        )
        .map_err(|_| CryptoError::Sign)?;
        Ok(sig)
    }

    fn rsa_public(key: &RsaKeyPair) -> Vec<u8> {
        key.public_key().as_ref().to_vec()
    }

    fn rsa_verify(public_der: &[u8], data: &[u8], sig: &[u8]) -> Result<bool, CryptoError> {
        let key = UnparsedPublicKey::new(
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            public_der,
        );
        Ok(key.verify(data, sig).is_ok())
    }

    // aws-lc keeps the parsed key and, for RSA once it has verified with
    // it, its Montgomery context: a cached key skips both.
    type ParsedPublic = ParsedPublicKey;

    fn rsa_public_parse(public_der: &[u8]) -> Option<ParsedPublicKey> {
        ParsedPublicKey::new(
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            public_der,
        )
        .ok()
    }

    fn ed25519_public_parse(public: &[u8; 32]) -> Option<ParsedPublicKey> {
        ParsedPublicKey::new(&signature::ED25519, public).ok()
    }

    fn verify_parsed(key: &ParsedPublicKey, msg: &[u8], sig: &[u8]) -> Result<bool, CryptoError> {
        Ok(key.verify_sig(msg, sig).is_ok())
    }

    fn rsa_generate(bits: usize) -> Result<Vec<u8>, CryptoError> {
        let size = match bits {
            2048 => aws_lc_rs::rsa::KeySize::Rsa2048,
            3072 => aws_lc_rs::rsa::KeySize::Rsa3072,
            4096 => aws_lc_rs::rsa::KeySize::Rsa4096,
            _ => return Err(CryptoError::Unsupported),
        };
        let key = RsaKeyPair::generate(size).map_err(|_| CryptoError::Sign)?;
        let der = key.as_der().map_err(|_| CryptoError::Sign)?;
        Ok(der.as_ref().to_vec())
    }

    fn ed25519_from_seed(seed: &[u8; 32]) -> Result<Ed25519KeyPair, CryptoError> {
        Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| CryptoError::KeyRejected)
    }

    fn ed25519_sign(key: &Ed25519KeyPair, msg: &[u8]) -> Vec<u8> {
        key.sign(msg).as_ref().to_vec()
    }

    fn ed25519_public(key: &Ed25519KeyPair) -> [u8; 32] {
        let mut out = [0; 32];
        let public = key.public_key().as_ref();
        if public.len() == 32 {
            out.copy_from_slice(public);
        }
        out
    }

    fn ed25519_verify(public: &[u8; 32], msg: &[u8], sig: &[u8]) -> Result<bool, CryptoError> {
        let key = UnparsedPublicKey::new(&signature::ED25519, public);
        Ok(key.verify(msg, sig).is_ok())
    }

    // The verifier hashes the header data as it canonicalizes it, so the
    // data itself is never kept.
    const RSA_VERIFIES_DIGEST: bool = true;

    fn rsa_verify_digest(
        public_der: &[u8],
        digest: &[u8; 32],
        sig: &[u8],
    ) -> Result<bool, CryptoError> {
        let digest = sha256_digest(digest)?;
        let key = UnparsedPublicKey::new(
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            public_der,
        );
        Ok(key.verify_digest(&digest, sig).is_ok())
    }

    fn verify_parsed_rsa_digest(
        key: &ParsedPublicKey,
        digest: &[u8; 32],
        sig: &[u8],
    ) -> Result<bool, CryptoError> {
        let digest = sha256_digest(digest)?;
        Ok(key.verify_digest_sig(&digest, sig).is_ok())
    }
}

/// A SHA-256 value computed outside aws-lc, in its digest type.
fn sha256_digest(digest: &[u8; 32]) -> Result<Digest, CryptoError> {
    Digest::import_less_safe(digest, &SHA256).map_err(|_| CryptoError::Unsupported)
}
