//! No backend: every operation reports `Unsupported`.

use alloc::vec::Vec;

use super::{Backend, CryptoError};

pub(crate) struct NoBackend;

impl Backend for NoBackend {
    type RsaKey = core::convert::Infallible;
    type Ed25519Key = core::convert::Infallible;

    fn rsa_from_pkcs1(_: &[u8]) -> Result<Self::RsaKey, CryptoError> {
        Err(CryptoError::Unsupported)
    }
    fn rsa_from_pkcs8(_: &[u8]) -> Result<Self::RsaKey, CryptoError> {
        Err(CryptoError::Unsupported)
    }
    fn rsa_sign(key: &Self::RsaKey, _: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match *key {}
    }
    fn rsa_public(key: &Self::RsaKey) -> Vec<u8> {
        match *key {}
    }
    fn rsa_verify(_: &[u8], _: &[u8], _: &[u8]) -> Result<bool, CryptoError> {
        Err(CryptoError::Unsupported)
    }
    type ParsedPublic = ();
    fn rsa_public_parse(_: &[u8]) -> Option<()> {
        None
    }
    fn ed25519_public_parse(_: &[u8; 32]) -> Option<()> {
        None
    }
    fn verify_parsed(_: &(), _: &[u8], _: &[u8]) -> Result<bool, CryptoError> {
        Err(CryptoError::Unsupported)
    }
    fn rsa_generate(_: usize) -> Result<Vec<u8>, CryptoError> {
        Err(CryptoError::Unsupported)
    }
    fn ed25519_from_seed(_: &[u8; 32]) -> Result<Self::Ed25519Key, CryptoError> {
        Err(CryptoError::Unsupported)
    }
    fn ed25519_sign(key: &Self::Ed25519Key, _: &[u8]) -> Vec<u8> {
        match *key {}
    }
    fn ed25519_public(key: &Self::Ed25519Key) -> [u8; 32] {
        match *key {}
    }
    fn ed25519_verify(_: &[u8; 32], _: &[u8], _: &[u8]) -> Result<bool, CryptoError> {
        Err(CryptoError::Unsupported)
    }
}
