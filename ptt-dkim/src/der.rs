//! The little DER the key formats need: SubjectPublicKeyInfo, RSAPublicKey,
//! PKCS#8 PrivateKeyInfo, all read without panics.

use alloc::vec::Vec;

pub(crate) const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Reads one TLV: returns (tag, content, rest).
pub(crate) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in rest.get(..n)? {
            len = (len << 8) | usize::from(b);
        }
        if len < 0x80 {
            return None; // not minimal
        }
        (len, rest.get(n..)?)
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    let (tag, content, rest) = tlv(input)?;
    (tag == want).then_some((content, rest))
}

/// SubjectPublicKeyInfo → (algorithm OID, key bytes of the BIT STRING).
pub(crate) fn spki(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, rest) = expect(input, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (alg, seq_rest) = expect(seq, 0x30)?;
    let (oid, _params) = expect(alg, 0x06)?;
    let (bits, tail) = expect(seq_rest, 0x03)?;
    if !tail.is_empty() {
        return None;
    }
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then_some((oid, key))
}

/// RSAPublicKey → modulus length in bits, when it is well formed.
pub(crate) fn rsa_public_key_bits(input: &[u8]) -> Option<usize> {
    let (seq, rest) = expect(input, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (n, seq_rest) = expect(seq, 0x02)?;
    let (e, tail) = expect(seq_rest, 0x02)?;
    if !tail.is_empty() || e.is_empty() {
        return None;
    }
    let n = match n.iter().position(|b| *b != 0) {
        Some(i) => n.get(i..)?,
        None => return None,
    };
    let top = n.first()?;
    Some((n.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

/// RSAPrivateKey (PKCS#1) → modulus length in bits.
pub(crate) fn rsa_private_key_bits(input: &[u8]) -> Option<usize> {
    let (seq, _) = expect(input, 0x30)?;
    let (_version, rest) = expect(seq, 0x02)?;
    let (n, _) = expect(rest, 0x02)?;
    let n = n.get(n.iter().position(|b| *b != 0)?..)?;
    let top = n.first()?;
    Some((n.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
}

/// PKCS#8 PrivateKeyInfo → (algorithm OID, privateKey OCTET STRING content).
pub(crate) fn pkcs8(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (seq, _) = expect(input, 0x30)?;
    let (_version, rest) = expect(seq, 0x02)?;
    let (alg, rest) = expect(rest, 0x30)?;
    let (oid, _) = expect(alg, 0x06)?;
    let (key, _) = expect(rest, 0x04)?;
    Some((oid, key))
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

/// Wraps an RSAPublicKey in a SubjectPublicKeyInfo (what `p=` usually holds).
pub(crate) fn rsa_spki(rsa_public_key: &[u8]) -> Vec<u8> {
    let mut alg = Vec::new();
    push_tlv(&mut alg, 0x06, OID_RSA);
    alg.extend_from_slice(&[0x05, 0x00]);
    let mut bits = Vec::with_capacity(rsa_public_key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(rsa_public_key);
    let mut seq = Vec::new();
    push_tlv(&mut seq, 0x30, &alg);
    push_tlv(&mut seq, 0x03, &bits);
    let mut out = Vec::new();
    push_tlv(&mut out, 0x30, &seq);
    out
}

/// PKCS#8 v1 for an Ed25519 seed (RFC 8410).
pub(crate) fn ed25519_pkcs8(seed: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::from(
        &[
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ][..],
    );
    out.extend_from_slice(seed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_round_trip() {
        // SEQUENCE { INTEGER 0x00c1 (one 8-bit modulus), INTEGER 3 }
        let rsa = [0x30, 0x07, 0x02, 0x02, 0x00, 0xc1, 0x02, 0x01, 0x03];
        assert_eq!(rsa_public_key_bits(&rsa), Some(8));
        let wrapped = rsa_spki(&rsa);
        let (oid, key) = spki(&wrapped).unwrap();
        assert_eq!(oid, OID_RSA);
        assert_eq!(key, rsa);
        assert!(spki(&rsa).is_none());
        assert!(rsa_public_key_bits(&wrapped[..wrapped.len() - 1]).is_none());
        let p8 = ed25519_pkcs8(&[7; 32]);
        let (oid, key) = pkcs8(&p8).unwrap();
        assert_eq!(oid, OID_ED25519);
        assert_eq!(&key[2..], &[7; 32]);
    }
}
