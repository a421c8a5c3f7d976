//! SASL PLAIN (RFC 4616) and LOGIN, the two mechanisms SMTP AUTH offers
//! here (only under TLS).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `LOGIN` (draft-murchison-sasl-login).
    Login,
}

impl Mechanism {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// What a client authenticated with. The password is not shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authorization identity (PLAIN only; empty when not given).
    pub authzid: String,
    /// The user name (authentication identity).
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("authzid", &self.authzid)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a SASL response was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// Not base64.
    #[error("SASL response is not base64")]
    Base64,
    /// Not UTF-8.
    #[error("SASL response is not UTF-8")]
    Utf8,
    /// PLAIN message without the two NUL separators or with an empty user
    /// name or password.
    #[error("PLAIN response is not authzid NUL authcid NUL passwd")]
    PlainFormat,
    /// The client sent `*`.
    #[error("client cancelled the exchange")]
    Cancelled,
}

/// Decodes one base64 response line; `=` is an empty response.
pub fn decode_response(line: &str) -> Result<Vec<u8>, SaslError> {
    let line = line.trim_end_matches(' ');
    if line == "*" {
        return Err(SaslError::Cancelled);
    }
    if line == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| SaslError::Base64)
}

/// Base64 of `bytes` (`=` when empty), as a response or challenge line.
pub fn encode(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::from("=");
    }
    STANDARD.encode(bytes)
}

/// Parses a decoded PLAIN message.
pub fn parse_plain(msg: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = msg.split(|&b| b == 0);
    let (Some(z), Some(u), Some(p), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::PlainFormat);
    };
    if u.is_empty() || p.is_empty() {
        return Err(SaslError::PlainFormat);
    }
    let s = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| SaslError::Utf8);
    Ok(Credentials {
        authzid: s(z)?,
        username: s(u)?,
        password: s(p)?,
    })
}

/// The PLAIN message for `creds`, base64-encoded.
pub fn plain_response(creds: &Credentials) -> String {
    let mut m = Vec::new();
    m.extend_from_slice(creds.authzid.as_bytes());
    m.push(0);
    m.extend_from_slice(creds.username.as_bytes());
    m.push(0);
    m.extend_from_slice(creds.password.as_bytes());
    encode(&m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let c = Credentials {
            authzid: String::new(),
            username: "alice".into(),
            password: "s3cret".into(),
        };
        let r = plain_response(&c);
        assert_eq!(r, "AGFsaWNlAHMzY3JldA==");
        assert_eq!(parse_plain(&decode_response(&r).unwrap()).unwrap(), c);
        assert!(!alloc::format!("{c:?}").contains("s3cret"));
        assert_eq!(parse_plain(b"a\0b"), Err(SaslError::PlainFormat));
        assert_eq!(decode_response("*"), Err(SaslError::Cancelled));
        assert_eq!(decode_response("!!"), Err(SaslError::Base64));
    }
}
