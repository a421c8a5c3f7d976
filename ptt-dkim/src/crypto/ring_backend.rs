//! The ring backend (no_std with `alloc`). ring cannot generate RSA keys.

use alloc::vec::Vec;

use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey};

use super::{Backend, CryptoError};

pub(crate) struct Ring;

impl Backend for Ring {
    type RsaKey = RsaKeyPair;
    type Ed25519Key = Ed25519KeyPair;

    fn rsa_from_pkcs1(der: &[u8]) -> Result<RsaKeyPair, CryptoError> {
        RsaKeyPair::from_der(der).map_err(|_| CryptoError::KeyRejected)
    }

    fn rsa_from_pkcs8(der: &[u8]) -> Result<RsaKeyPair, CryptoError> {
        RsaKeyPair::from_pkcs8(der).map_err(|_| CryptoError::KeyRejected)
    }

    fn rsa_sign(key: &RsaKeyPair, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut sig = alloc::vec![0; key.public().modulus_len()];
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

    // ring parses the key on every verification; the bytes are kept.
    type ParsedPublic = (bool, Vec<u8>);

    fn rsa_public_parse(public_der: &[u8]) -> Option<(bool, Vec<u8>)> {
        Some((true, public_der.to_vec()))
    }

    fn ed25519_public_parse(public: &[u8; 32]) -> Option<(bool, Vec<u8>)> {
        Some((false, public.to_vec()))
    }

    fn verify_parsed(key: &(bool, Vec<u8>), msg: &[u8], sig: &[u8]) -> Result<bool, CryptoError> {
        match key {
            (true, der) => Self::rsa_verify(der, msg, sig),
            (false, raw) => {
                let raw: [u8; 32] = raw[..].try_into().map_err(|_| CryptoError::KeyRejected)?;
                Self::ed25519_verify(&raw, msg, sig)
            }
        }
    }

    fn rsa_generate(_bits: usize) -> Result<Vec<u8>, CryptoError> {
        Err(CryptoError::Unsupported)
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
}
