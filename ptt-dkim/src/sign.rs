//! Signing: private keys, key generation and the streaming [`Signer`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest as _, Sha256};

use crate::canon::{BodyHasher, HeaderField, header_hash_input, split_header_fields};
use crate::crypto::{Backend, CryptoError, Selected};
use crate::der;
use crate::head::HeadSplitter;
use crate::key::DkimKeyRecord;
use crate::signature::{
    Algorithm, Canonicalization, DkimSignature, UnsignedTags, base64_in, valid_domain,
};
use crate::tag::parse_tag_list;

/// Why a key cannot be loaded or a message cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The key text is neither PEM nor a base64 Ed25519 seed.
    #[error("private key: not PEM (RSA PRIVATE KEY / PRIVATE KEY) nor a base64 Ed25519 seed")]
    NotPem,
    /// The PEM label is not one we read.
    #[error("private key: unsupported PEM label {0:?}")]
    PemLabel(String),
    /// The DER inside is malformed or of an unknown algorithm.
    #[error("private key: {0}")]
    Der(&'static str),
    /// RSA keys of 1024 bits or less are refused for signing (RFC 8301).
    #[error(
        "RSA key of {bits} bits refused for signing: at least 2048 recommended, more than 1024 required (RFC 8301)"
    )]
    WeakKey {
        /// The modulus size.
        bits: usize,
    },
    /// The message has no From: header field (RFC 6376 §5.4 requires signing it).
    #[error("the message has no From: header field")]
    NoFrom,
    /// `d=`, `s=` or `i=` is not usable.
    #[error("bad {tag}={value:?}")]
    Config {
        /// The tag.
        tag: &'static str,
        /// The value.
        value: String,
    },
    /// The header block exceeds the configured limit.
    #[error("header block larger than {0} bytes")]
    HeaderTooLarge(usize),
    /// The crypto backend failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

enum Inner {
    Rsa {
        key: <Selected as Backend>::RsaKey,
        bits: usize,
        public: Vec<u8>,
    },
    Ed25519 {
        key: <Selected as Backend>::Ed25519Key,
        public: [u8; 32],
    },
}

/// A private key for `rsa-sha256` or `ed25519-sha256`.
pub struct SigningKey {
    inner: Inner,
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

fn pem_decode(text: &[u8]) -> Result<(String, Vec<u8>), SignError> {
    let text = core::str::from_utf8(text).map_err(|_| SignError::NotPem)?;
    let start = text.find("-----BEGIN ").ok_or(SignError::NotPem)?;
    let rest = &text[start + 11..];
    let label_end = rest.find("-----").ok_or(SignError::NotPem)?;
    let label = &rest[..label_end];
    let body_start = label_end + 5;
    let end_marker = alloc::format!("-----END {label}-----");
    let end = rest.find(&end_marker).ok_or(SignError::NotPem)?;
    let b64: String = rest
        .get(body_start..end)
        .ok_or(SignError::NotPem)?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = B64.decode(b64).map_err(|_| SignError::NotPem)?;
    Ok((label.to_string(), der))
}

/// PEM text for DER bytes under `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = alloc::format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(core::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

/// The kinds of key [`generate_key`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 3072 bits.
    Rsa3072,
    /// Ed25519.
    Ed25519,
}

/// A generated key: the private key as PKCS#8 PEM, and the loaded key.
#[derive(Debug)]
pub struct GeneratedKey {
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub pem: String,
    /// The key, ready to sign.
    pub key: SigningKey,
}

/// Generates a key. Ed25519 keys come from `seed` (the caller's 32 random
/// bytes); RSA keys use the backend's own random generator (aws-lc-rs only:
/// ring cannot generate RSA keys and returns `Unsupported`).
pub fn generate_key(kind: KeyKind, seed: [u8; 32]) -> Result<GeneratedKey, SignError> {
    let der = match kind {
        KeyKind::Rsa2048 => Selected::rsa_generate(2048)?,
        KeyKind::Rsa3072 => Selected::rsa_generate(3072)?,
        KeyKind::Ed25519 => der::ed25519_pkcs8(&seed),
    };
    let key = SigningKey::from_pkcs8_der(&der)?;
    Ok(GeneratedKey {
        pem: pem_encode("PRIVATE KEY", &der),
        key,
    })
}

/// RSA keys of 1024 bits or less are refused at load time (RFC 8301), the
/// same way with every backend.
fn refuse_weak(pkcs1: &[u8]) -> Result<(), SignError> {
    match der::rsa_private_key_bits(pkcs1) {
        Some(bits) if bits <= 1024 => Err(SignError::WeakKey { bits }),
        Some(_) => Ok(()),
        None => Err(SignError::Der("not an RSAPrivateKey")),
    }
}

impl SigningKey {
    /// Reads a key (RSA keys of 1024 bits or less are refused): PEM `RSA PRIVATE KEY` (PKCS#1), PEM `PRIVATE KEY`
    /// (PKCS#8, RSA or Ed25519), or a bare base64 32-byte Ed25519 seed as
    /// dkimpy's `dknewkey` writes it.
    pub fn from_pem(text: &[u8]) -> Result<Self, SignError> {
        let trimmed: Vec<u8> = text
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if !text.windows(5).any(|w| w == b"-----") {
            if let Ok(seed) = B64.decode(&trimmed)
                && let Ok(seed) = <[u8; 32]>::try_from(seed.as_slice())
            {
                return Self::from_ed25519_seed(&seed);
            }
            return Err(SignError::NotPem);
        }
        let (label, der) = pem_decode(text)?;
        match label.as_str() {
            "RSA PRIVATE KEY" => Self::from_rsa_pkcs1_der(&der),
            "PRIVATE KEY" => Self::from_pkcs8_der(&der),
            _ => Err(SignError::PemLabel(label)),
        }
    }

    /// An RSA key from RSAPrivateKey (PKCS#1) DER.
    #[cfg_attr(
        not(any(feature = "aws-lc-rs", feature = "ring")),
        allow(unreachable_code)
    )]
    pub fn from_rsa_pkcs1_der(der: &[u8]) -> Result<Self, SignError> {
        refuse_weak(der)?;
        let key = Selected::rsa_from_pkcs1(der)?;
        Ok(Self::rsa(key))
    }

    fn rsa(key: <Selected as Backend>::RsaKey) -> Self {
        let public = Selected::rsa_public(&key);
        let bits = der::rsa_public_key_bits(&public).unwrap_or(0);
        SigningKey {
            inner: Inner::Rsa { key, bits, public },
        }
    }

    /// A key from PKCS#8 DER (RSA or Ed25519).
    #[cfg_attr(
        not(any(feature = "aws-lc-rs", feature = "ring")),
        allow(unreachable_code)
    )]
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignError> {
        let (oid, inner) = der::pkcs8(der).ok_or(SignError::Der("not PKCS#8"))?;
        if oid == der::OID_RSA {
            refuse_weak(inner)?;
            Ok(Self::rsa(Selected::rsa_from_pkcs8(der)?))
        } else if oid == der::OID_ED25519 {
            // The private key is an OCTET STRING holding the 32-byte seed.
            let seed = inner
                .get(2..)
                .filter(|s| inner.first() == Some(&0x04) && s.len() == 32)
                .ok_or(SignError::Der("Ed25519 key is not a 32-byte seed"))?;
            let mut s = [0; 32];
            s.copy_from_slice(seed);
            Self::from_ed25519_seed(&s)
        } else {
            Err(SignError::Der(
                "PKCS#8 of an algorithm other than RSA or Ed25519",
            ))
        }
    }

    /// An Ed25519 key from its 32-byte seed (RFC 8032 "secret key").
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Result<Self, SignError> {
        let key = Selected::ed25519_from_seed(seed)?;
        let public = Selected::ed25519_public(&key);
        Ok(SigningKey {
            inner: Inner::Ed25519 { key, public },
        })
    }

    /// `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Inner::Rsa { .. } => Algorithm::RsaSha256,
            Inner::Ed25519 { .. } => Algorithm::Ed25519Sha256,
        }
    }

    /// The RSA modulus size, or `None` for Ed25519.
    pub fn bits(&self) -> Option<usize> {
        match self.inner {
            Inner::Rsa { bits, .. } => Some(bits),
            Inner::Ed25519 { .. } => None,
        }
    }

    /// Signs `data` as DKIM does: RSASSA-PKCS1-v1_5/SHA-256 over the data, or
    /// Ed25519 over the SHA-256 of the data (RFC 8463 §3).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.inner {
            Inner::Rsa { key, .. } => Ok(Selected::rsa_sign(key, data)?),
            Inner::Ed25519 { key, .. } => Ok(Selected::ed25519_sign(key, &Sha256::digest(data))),
        }
    }

    /// The key record to publish (`v=DKIM1; k=...; p=...`), RSA keys in
    /// SubjectPublicKeyInfo form.
    pub fn key_record(&self) -> DkimKeyRecord {
        let (key_type, public_key) = match &self.inner {
            Inner::Rsa { public, .. } => ("rsa", der::rsa_spki(public)),
            Inner::Ed25519 { public, .. } => ("ed25519", public.to_vec()),
        };
        DkimKeyRecord {
            key_type: key_type.into(),
            hashes: None,
            services: None,
            flags: Vec::new(),
            notes: None,
            public_key,
            unknown: Vec::new(),
        }
    }
}

/// Header fields signed by default (when present; with over-signing also
/// when absent, so that none can be added).
pub const DEFAULT_SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Id",
    "List-Post",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// What to sign and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerConfig {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    /// Header names to sign, in this order.
    pub headers: Vec<String>,
    /// List each name once more than it occurs, so that no field of that
    /// name can be added without breaking the signature.
    pub oversign: bool,
    /// Header canonicalization.
    pub header_canon: Canonicalization,
    /// Body canonicalization.
    pub body_canon: Canonicalization,
    /// `i=`, if any.
    pub identity: Option<String>,
    /// `t=` (the caller's clock).
    pub timestamp: Option<u64>,
    /// `x=`.
    pub expiration: Option<u64>,
    /// Add `l=` with the canonical body length.
    pub body_length: bool,
    /// Largest header block accepted.
    pub max_header_bytes: usize,
}

impl SignerConfig {
    /// relaxed/relaxed, the default header list, over-signing on, no `t=`.
    pub fn new(domain: &str, selector: &str) -> Self {
        SignerConfig {
            domain: domain.into(),
            selector: selector.into(),
            headers: DEFAULT_SIGNED_HEADERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            oversign: true,
            header_canon: Canonicalization::Relaxed,
            body_canon: Canonicalization::Relaxed,
            identity: None,
            timestamp: None,
            expiration: None,
            body_length: false,
            max_header_bytes: 1 << 20,
        }
    }
}

/// Streaming signer: feed the message (CRLF line ends) with
/// [`update`](Signer::update), then [`finish`](Signer::finish) returns the
/// `DKIM-Signature` field to put on top.
pub struct Signer<'k> {
    key: &'k SigningKey,
    config: &'k SignerConfig,
    /// `t=` and `x=` of this message (the config's unless set per message).
    timestamp: Option<u64>,
    expiration: Option<u64>,
    head: HeadSplitter,
    body: BodyHasher,
    error: Option<SignError>,
}

impl core::fmt::Debug for Signer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Signer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<'k> Signer<'k> {
    /// Checks the key and the configuration. RSA keys of 1024 bits or less
    /// are refused. Both are borrowed: a signing service keeps one key and
    /// one configuration per domain and signs every message with them.
    pub fn new(key: &'k SigningKey, config: &'k SignerConfig) -> Result<Self, SignError> {
        if let Some(bits) = key.bits()
            && bits <= 1024
        {
            return Err(SignError::WeakKey { bits });
        }
        let bad = |tag, value: &str| SignError::Config {
            tag,
            value: value.into(),
        };
        if !valid_domain(&config.domain) {
            return Err(bad("d", &config.domain));
        }
        if !valid_domain(&config.selector) {
            return Err(bad("s", &config.selector));
        }
        if let Some(i) = &config.identity {
            let ok = i.rsplit_once('@').is_some_and(|(_, d)| {
                d.eq_ignore_ascii_case(&config.domain)
                    || d.to_ascii_lowercase()
                        .ends_with(&alloc::format!(".{}", config.domain.to_ascii_lowercase()))
            });
            if !ok || i.contains(';') || i.contains(char::is_whitespace) {
                return Err(bad("i", i));
            }
        }
        if config.headers.is_empty()
            || !config
                .headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case("from"))
        {
            return Err(bad("h", &config.headers.join(":")));
        }
        Ok(Signer {
            key,
            body: BodyHasher::new(config.body_canon, None),
            head: HeadSplitter::new(config.max_header_bytes),
            timestamp: config.timestamp,
            expiration: config.expiration,
            config,
            error: None,
        })
    }

    /// Sets `t=` and `x=` for this message, in place of the config's: the
    /// caller's clock, read when the message is signed, while the config is
    /// shared by every message.
    ///
    /// ```
    /// use ptt_dkim::{Signer, SignerConfig, SigningKey};
    /// let key = SigningKey::from_ed25519_seed(&[7; 32]).unwrap();
    /// let config = SignerConfig::new("example.com", "sel");
    /// let now = 1_700_000_000;
    /// let mut signer = Signer::new(&key, &config).unwrap().at(Some(now), Some(now + 86_400));
    /// signer.update(b"From: a@example.com\r\n\r\nHi.\r\n");
    /// let field = signer.finish().unwrap();
    /// assert!(field.contains("t=1700000000;") && field.contains("x=1700086400;"));
    /// ```
    pub fn at(mut self, timestamp: Option<u64>, expiration: Option<u64>) -> Self {
        self.timestamp = timestamp;
        self.expiration = expiration;
        self
    }

    /// Feeds the next bytes of the message.
    pub fn update(&mut self, data: &[u8]) {
        if self.head.is_done() {
            self.body.update(data);
            return;
        }
        match self.head.push(data) {
            Ok(Some(body)) => self.body.update(body),
            Ok(None) => {}
            Err(limit) => self.error = Some(SignError::HeaderTooLarge(limit)),
        }
    }

    /// Ends the message and signs it. Returns the whole field,
    /// `DKIM-Signature: ...` folded, ending with CRLF.
    pub fn finish(mut self) -> Result<String, SignError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.head.finish();
        let head = self.head.head();
        let fields = split_header_fields(head);
        if !fields.iter().any(|f| f.is("from")) {
            return Err(SignError::NoFrom);
        }
        let cfg = self.config;
        // h=: each configured name once per field of that name, once more
        // to over-sign; borrowed, written in lower case.
        let mut names: Vec<&str> = Vec::with_capacity(cfg.headers.len() * 2);
        for name in &cfg.headers {
            let count = fields.iter().filter(|f| f.is(name)).count();
            let n = count + usize::from(cfg.oversign);
            names.extend(core::iter::repeat_n(name.as_str(), n));
        }
        let body = self.body.finish();
        let tags = UnsignedTags {
            algorithm: self.key.algorithm(),
            header_canon: cfg.header_canon,
            body_canon: cfg.body_canon,
            domain: &cfg.domain,
            selector: &cfg.selector,
            identity: cfg.identity.as_deref(),
            query_methods: None,
            timestamp: self.timestamp,
            expiration: self.expiration,
            body_length: cfg.body_length.then_some(body.canonical_len),
            headers: &names,
            lowercase_headers: true,
            copied_headers: None,
            unknown: &[],
            body_hash: &body.hash,
        };
        sign_tags(self.key, &tags, &fields)
    }
}

/// The pieces of a tag list between "; " separators, as `split("; ")` gives
/// them, found by looking for the `;` alone (a signer folds one per message).
fn tags(list: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(list);
    core::iter::from_fn(move || {
        let s = rest?;
        let mut from = 0;
        while let Some(k) = memchr::memchr(b';', s.as_bytes().get(from..)?) {
            let at = from + k;
            if s.as_bytes().get(at + 1) == Some(&b' ') {
                rest = s.get(at + 2..);
                return s.get(..at);
            }
            from = at + 1;
        }
        rest = None;
        Some(s)
    })
}

/// Folds `DKIM-Signature: <tags>` (with `b=` empty at the end) at about 78
/// columns; breaks only where RFC 6376 allows FWS.
/// `room` is what the caller will append (the folded `b=` value).
fn fold(unsigned: &str, room: usize) -> String {
    // Written piece by piece into one buffer: a piece is " TAG;" (" b=" for
    // the last), wrapped onto a new line when it would pass column 78.
    let mut out = String::with_capacity(unsigned.len() + 64 + room);
    out.push_str("DKIM-Signature:");
    let mut col = out.len();
    for tag in tags(unsigned) {
        let last = tag == "b=";
        let body = if last { tag } else { tag.trim_end_matches(';') };
        let semi = !last;
        let piece_len = 1 + body.len() + usize::from(semi);
        if col + piece_len > 78 && col > 16 {
            if let Some(h) = tag.strip_prefix("h=") {
                // h= may break before a colon.
                out.push_str(" h=");
                col += 3;
                let h = h.trim_end_matches(';');
                let count = h.split(':').count();
                for (k, name) in h.split(':').enumerate() {
                    let item_len = name.len() + 1;
                    if col + item_len > 78 {
                        out.push_str("\r\n\t");
                        col = 1;
                    }
                    out.push_str(name);
                    out.push(if k + 1 == count { ';' } else { ':' });
                    col += item_len;
                }
                continue;
            }
            out.push_str("\r\n\t");
            col = 1;
            out.push_str(body.trim_start());
            if semi {
                out.push(';');
            }
            col += piece_len - 1;
        } else {
            out.push(' ');
            out.push_str(body);
            if semi {
                out.push(';');
            }
            col += piece_len;
        }
    }
    out
}

/// Room for a folded `b=` value of `b64_len` characters after the field's
/// text: a CRLF TAB before each 64-character piece, and the final CRLF.
fn folded_b_room(b64_len: usize) -> usize {
    b64_len + (b64_len / 64 + 1) * 3 + 2
}

/// Signs a prepared signature (every tag but `b=`) over `fields`: the header
/// data is built exactly as a verifier will, then `b=` is appended, folded.
/// Returns the whole field with its final CRLF.
pub fn sign_fields(
    key: &SigningKey,
    sig: &DkimSignature,
    fields: &[HeaderField<'_>],
) -> Result<String, SignError> {
    sign_tags(key, &sig.unsigned_tags(), fields)
}

/// [`sign_fields`] over borrowed tags: `h=` selects the fields (names
/// matched ignoring case) and is written as `tags` says.
fn sign_tags<N: IntoIterator<Item: AsRef<str>> + Copy>(
    key: &SigningKey,
    tags: &UnsignedTags<'_, N>,
    fields: &[HeaderField<'_>],
) -> Result<String, SignError> {
    let mut unsigned = String::with_capacity(256);
    let _ = tags.write(&mut unsigned);
    // Base64 of the signature: the modulus's length for RSA, 64 bytes for
    // Ed25519.
    let b64_len = key.bits().map_or(64, |bits| bits.div_ceil(8)).div_ceil(3) * 4;
    let mut folded = fold(&unsigned, folded_b_room(b64_len));
    let value = &folded.as_bytes()["DKIM-Signature:".len()..];
    // The fold ends with the empty `b=`, so there is nothing to blank (a
    // tag list that did not would be looked up).
    let b_span = if value.ends_with(b"b=") {
        value.len()..value.len()
    } else {
        parse_tag_list(value)
            .ok()
            .and_then(|tags| {
                tags.iter()
                    .find(|t| t.name == "b")
                    .map(|t| t.full_span.clone())
            })
            .unwrap_or(value.len()..value.len())
    };
    let folded_len = folded.len();
    folded.push_str("\r\n");
    let field = HeaderField {
        name: b"DKIM-Signature",
        raw: folded.as_bytes(),
    };
    let data = header_hash_input(tags.header_canon, fields, tags.headers, &field, b_span);
    let signature = key.sign(&data)?;
    // Base64 on the stack for keys up to 8192 bits.
    let (mut stack, mut heap) = ([0u8; 1368], String::new());
    let b = base64_in(&signature, &mut stack, &mut heap).as_bytes();
    let mut out = folded;
    out.truncate(folded_len);
    out.reserve(folded_b_room(b.len()));
    let mut col = out
        .as_bytes()
        .iter()
        .rposition(|&c| c == b'\n')
        .map_or(out.len(), |p| out.len() - p - 1);
    for chunk in b.chunks(64) {
        if col + chunk.len() > 78 {
            out.push_str("\r\n\t");
            col = 1;
        }
        out.push_str(core::str::from_utf8(chunk).unwrap_or_default());
        col += chunk.len();
    }
    out.push_str("\r\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::HeaderNames;

    #[test]
    fn fold_keeps_lines_short_and_parses() {
        let mut sig =
            DkimSignature::parse(b"v=1; a=rsa-sha256; d=example.com; s=sel; h=from; bh=AAAA; b=")
                .unwrap();
        sig.headers =
            HeaderNames::from_names(core::iter::repeat_n("content-transfer-encoding", 7)).unwrap();
        let mut unsigned = String::new();
        sig.write_unsigned(&mut unsigned).unwrap();
        let folded = fold(&unsigned, 0);
        assert!(folded.split("\r\n").all(|l| l.len() <= 78), "{folded}");
        let parsed = DkimSignature::parse(&folded.as_bytes()[15..]).unwrap();
        assert_eq!(parsed, sig);
    }

    fn fold_reference(unsigned: &str) -> String {
        let mut out = String::from("DKIM-Signature:");
        let mut col = out.len();
        for tag in unsigned.split("; ") {
            let last = tag == "b=";
            let piece = if last {
                alloc::format!(" {tag}")
            } else {
                alloc::format!(" {};", tag.trim_end_matches(';'))
            };
            if col + piece.len() > 78 && col > 16 {
                if let Some(h) = tag.strip_prefix("h=") {
                    // h= may break before a colon.
                    out.push_str(" h=");
                    col += 3;
                    let names: Vec<&str> = h.trim_end_matches(';').split(':').collect();
                    for (k, name) in names.iter().enumerate() {
                        let item = if k + 1 == names.len() {
                            alloc::format!("{name};")
                        } else {
                            alloc::format!("{name}:")
                        };
                        if col + item.len() > 78 {
                            out.push_str("\r\n\t");
                            col = 1;
                        }
                        out.push_str(&item);
                        col += item.len();
                    }
                    continue;
                }
                out.push_str("\r\n\t");
                col = 1;
                out.push_str(piece.trim_start());
                col += piece.len() - 1;
            } else {
                out.push_str(&piece);
                col += piece.len();
            }
        }
        out
    }

    #[test]
    fn tags_split_as_str_split_does() {
        for list in [
            "",
            ";",
            "; ",
            "a",
            "a;",
            "a; ",
            "a;; b",
            "a; ; b",
            ";; ;",
            "v=1; a=x; b=",
            "x=a;b; y=; z",
            "; ; ",
        ] {
            let want: Vec<&str> = list.split("; ").collect();
            assert_eq!(tags(list).collect::<Vec<_>>(), want, "{list:?}");
        }
    }

    /// The allocation-free fold writes what the earlier one (a format! per
    /// piece) wrote, for tag lists of many shapes.
    #[test]
    fn fold_equals_reference() {
        let names = [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "content-transfer-encoding",
            "x",
        ];
        for d in [
            "a.example",
            "mail.sub.example.com",
            &format!("{}example", "long.".repeat(15)),
        ] {
            for n in 0..names.len() * 3 {
                let sel = ["s", "sel", "selector-2026", "brisbane", "k1"][n % 5];
                let mut sig = DkimSignature::parse(
                    format!("v=1; a=rsa-sha256; d={d}; s={sel}; h=from; bh=AAAA; b=").as_bytes(),
                )
                .unwrap();
                sig.headers = HeaderNames::from_names(names.iter().cycle().take(n + 1)).unwrap();
                sig.timestamp = (n % 2 == 0).then_some(1_700_000_000 + n as u64);
                sig.identity = (n % 3 == 0).then(|| format!("user{n}@{d}"));
                sig.body_hash = vec![n as u8; 32];
                let mut unsigned = String::new();
                sig.write_unsigned(&mut unsigned).unwrap();
                assert_eq!(fold(&unsigned, 0), fold_reference(&unsigned), "{unsigned}");
            }
        }
    }

    #[test]
    fn pem_round_trip() {
        let pem = pem_encode("PRIVATE KEY", &[1, 2, 3]);
        assert_eq!(
            pem_decode(pem.as_bytes()).unwrap(),
            ("PRIVATE KEY".into(), vec![1, 2, 3])
        );
        assert_eq!(
            SigningKey::from_pem(b"hello").unwrap_err(),
            SignError::NotPem
        );
    }
}
