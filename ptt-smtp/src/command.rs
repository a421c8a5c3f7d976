//! SMTP commands (RFC 5321 section 4.1 and the ESMTP extensions) with their
//! parameters, parsed from a line without its CRLF and displayed back.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::address::{AddressError, ForwardPath, ReversePath};

/// Why a command line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The verb is not an SMTP command (reply 500).
    #[error("unknown command {verb:?}")]
    Unknown {
        /// The verb as given.
        verb: String,
    },
    /// The arguments do not fit the command (reply 501).
    #[error("{command}: bad arguments {args:?}: {why}")]
    Syntax {
        /// The command.
        command: &'static str,
        /// The arguments as given.
        args: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The address in MAIL or RCPT is invalid (reply 553 / 501).
    #[error("{command}: {source}")]
    Address {
        /// The command.
        command: &'static str,
        /// The address error.
        source: AddressError,
    },
    /// A parameter is malformed or repeated (reply 501).
    #[error("{command}: bad parameter {param:?}: {why}")]
    Param {
        /// The command.
        command: &'static str,
        /// The parameter as given.
        param: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// `BODY=` of MAIL (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Body {
    /// `7BIT`.
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
    /// `BINARYMIME` (only with BDAT).
    BinaryMime,
}

/// `RET=` of MAIL (RFC 3461).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `FULL`: return the whole message in a DSN.
    Full,
    /// `HDRS`: return only the headers.
    Hdrs,
}

/// `NOTIFY=` of RCPT (RFC 3461).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Notify {
    /// `NEVER` (and no other flag).
    pub never: bool,
    /// `SUCCESS`.
    pub success: bool,
    /// `FAILURE`.
    pub failure: bool,
    /// `DELAY`.
    pub delay: bool,
}

/// `ORCPT=` of RCPT (RFC 3461): the original recipient, xtext-decoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Orcpt {
    /// The address type, such as `rfc822` or `utf-8`.
    pub addr_type: String,
    /// The address.
    pub addr: String,
}

/// Parameters of MAIL FROM.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct MailParams {
    /// `SIZE=` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `RET=` (RFC 3461).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461), xtext-decoded.
    pub envid: Option<String>,
    /// `AUTH=` (RFC 4954), xtext-decoded (`<>` when unknown).
    pub auth: Option<String>,
    /// Other parameters (keyword upper-cased, value as given); the server
    /// refuses them with 555.
    pub other: Vec<(String, Option<String>)>,
}

/// Parameters of RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RcptParams {
    /// `NOTIFY=`.
    pub notify: Option<Notify>,
    /// `ORCPT=`.
    pub orcpt: Option<Orcpt>,
    /// Other parameters; the server refuses them with 555.
    pub other: Vec<(String, Option<String>)>,
}

/// One SMTP command.
///
/// ```
/// use ptt_smtp::Command;
/// let c = Command::parse(b"MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME").unwrap();
/// assert_eq!(c.to_string(), "MAIL FROM:<a@example.org> SIZE=1000 BODY=8BITMIME");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `HELO domain`.
    Helo(String),
    /// `EHLO domain-or-literal`.
    Ehlo(String),
    /// `MAIL FROM:<path> params`.
    Mail {
        /// The reverse path.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path> params`.
    Rcpt {
        /// The forward path.
        to: ForwardPath,
        /// Its parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030).
    Bdat {
        /// The chunk size in octets.
        size: u64,
        /// `LAST`.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(String),
    /// `EXPN string`.
    Expn(String),
    /// `HELP [string]`.
    Help(Option<String>),
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// The SASL mechanism, upper-cased.
        mechanism: String,
        /// The initial response as sent (base64, or `=` for empty).
        initial: Option<String>,
    },
}

/// Decodes xtext (RFC 3461 section 4): `+XX` is a hex-escaped octet.
pub fn xtext_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'+' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(core::str::from_utf8(hex).ok()?, 16).ok()?;
            if !hex
                .iter()
                .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h))
            {
                return None;
            }
            out.push(v);
            i += 3;
        } else if (b'!'..=b'~').contains(&c) && c != b'=' {
            out.push(c);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes xtext: `+`, `=`, and octets outside `!`..`~` become `+XX`.
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if (b'!'..=b'~').contains(&c) && c != b'+' && c != b'=' {
            out.push(c as char);
        } else {
            out.push_str(&alloc::format!("+{c:02X}"));
        }
    }
    out
}

fn split_verb(line: &str) -> (&str, &str) {
    match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    }
}

/// Splits `FROM:<path> params`: returns (path, params) after the prefix.
fn split_path<'a>(
    args: &'a str,
    prefix: &str,
    command: &'static str,
) -> Result<(&'a str, &'a str), CommandError> {
    let syntax = |why| CommandError::Syntax {
        command,
        args: args.to_string(),
        why,
    };
    let head = args.get(..prefix.len()).ok_or_else(|| syntax("no path"))?;
    if !head.eq_ignore_ascii_case(prefix) {
        return Err(syntax("expected FROM:<...> or TO:<...>"));
    }
    // Some clients put a space after the colon; accept it (as Postfix does).
    let rest = args[prefix.len()..].trim_start_matches(' ');
    if rest.starts_with("<>") && command == "MAIL" {
        let tail = &rest[2..];
        if !tail.is_empty() && !tail.starts_with(' ') {
            return Err(syntax("text after the path"));
        }
        return Ok((&rest[..2], tail.trim_start_matches(' ')));
    }
    if !rest.starts_with('<') {
        return Err(syntax("the path is not in angle brackets"));
    }
    // Find the closing '>' outside a quoted string.
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => {
                let tail = &rest[i + 1..];
                if !tail.is_empty() && !tail.starts_with(' ') {
                    return Err(syntax("text after the path"));
                }
                return Ok((&rest[..=i], tail.trim_start_matches(' ')));
            }
            _ => {}
        }
    }
    Err(syntax("no closing '>'"))
}

fn params(s: &str) -> impl Iterator<Item = (String, Option<&str>)> {
    s.split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| match p.find('=') {
            Some(i) => (p[..i].to_ascii_uppercase(), Some(&p[i + 1..])),
            None => (p.to_ascii_uppercase(), None),
        })
}

fn param_err(command: &'static str, k: &str, v: Option<&str>, why: &'static str) -> CommandError {
    CommandError::Param {
        command,
        param: match v {
            Some(v) => alloc::format!("{k}={v}"),
            None => k.to_string(),
        },
        why,
    }
}

impl MailParams {
    fn parse(s: &str) -> Result<MailParams, CommandError> {
        let mut p = MailParams::default();
        const C: &str = "MAIL";
        for (k, v) in params(s) {
            let err = |why| param_err(C, &k, v, why);
            match (k.as_str(), v) {
                ("SIZE", Some(v)) if p.size.is_none() => {
                    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(err("SIZE needs a number"));
                    }
                    p.size = Some(v.parse().map_err(|_| err("SIZE is too large"))?);
                }
                ("BODY", Some(v)) if p.body.is_none() => {
                    p.body = Some(match v.to_ascii_uppercase().as_str() {
                        "7BIT" => Body::SevenBit,
                        "8BITMIME" => Body::EightBitMime,
                        "BINARYMIME" => Body::BinaryMime,
                        _ => return Err(err("BODY must be 7BIT, 8BITMIME or BINARYMIME")),
                    })
                }
                ("SMTPUTF8", None) if !p.smtputf8 => p.smtputf8 = true,
                ("RET", Some(v)) if p.ret.is_none() => {
                    p.ret = Some(match v.to_ascii_uppercase().as_str() {
                        "FULL" => Ret::Full,
                        "HDRS" => Ret::Hdrs,
                        _ => return Err(err("RET must be FULL or HDRS")),
                    })
                }
                ("ENVID", Some(v)) if p.envid.is_none() => {
                    if v.len() > 100 {
                        return Err(err("ENVID is longer than 100 characters"));
                    }
                    p.envid = Some(xtext_decode(v).ok_or_else(|| err("ENVID is not xtext"))?)
                }
                ("AUTH", Some(v)) if p.auth.is_none() => {
                    p.auth = Some(xtext_decode(v).ok_or_else(|| err("AUTH is not xtext"))?)
                }
                ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", _) | ("SMTPUTF8", _) => {
                    return Err(err("repeated, or value missing or not allowed"));
                }
                _ => {
                    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        return Err(err("not an esmtp-keyword"));
                    }
                    p.other.push((k.clone(), v.map(str::to_string)));
                }
            }
        }
        Ok(p)
    }
}

impl fmt::Display for MailParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.size {
            write!(f, " SIZE={s}")?;
        }
        if let Some(b) = self.body {
            f.write_str(match b {
                Body::SevenBit => " BODY=7BIT",
                Body::EightBitMime => " BODY=8BITMIME",
                Body::BinaryMime => " BODY=BINARYMIME",
            })?;
        }
        if self.smtputf8 {
            f.write_str(" SMTPUTF8")?;
        }
        if let Some(r) = self.ret {
            f.write_str(match r {
                Ret::Full => " RET=FULL",
                Ret::Hdrs => " RET=HDRS",
            })?;
        }
        if let Some(e) = &self.envid {
            write!(f, " ENVID={}", xtext_encode(e))?;
        }
        if let Some(a) = &self.auth {
            write!(f, " AUTH={}", xtext_encode(a))?;
        }
        write_other(f, &self.other)
    }
}

fn write_other(f: &mut fmt::Formatter<'_>, other: &[(String, Option<String>)]) -> fmt::Result {
    for (k, v) in other {
        match v {
            Some(v) => write!(f, " {k}={v}")?,
            None => write!(f, " {k}")?,
        }
    }
    Ok(())
}

impl RcptParams {
    fn parse(s: &str) -> Result<RcptParams, CommandError> {
        let mut p = RcptParams::default();
        const C: &str = "RCPT";
        for (k, v) in params(s) {
            let err = |why| param_err(C, &k, v, why);
            match (k.as_str(), v) {
                ("NOTIFY", Some(v)) if p.notify.is_none() => {
                    let mut n = Notify::default();
                    for flag in v.split(',') {
                        let seen = match flag.to_ascii_uppercase().as_str() {
                            "NEVER" => core::mem::replace(&mut n.never, true),
                            "SUCCESS" => core::mem::replace(&mut n.success, true),
                            "FAILURE" => core::mem::replace(&mut n.failure, true),
                            "DELAY" => core::mem::replace(&mut n.delay, true),
                            _ => {
                                return Err(err("NOTIFY flags are NEVER, SUCCESS, FAILURE, DELAY"));
                            }
                        };
                        if seen {
                            return Err(err("NOTIFY flag repeated"));
                        }
                    }
                    if n.never && (n.success || n.failure || n.delay) {
                        return Err(err("NOTIFY=NEVER cannot be combined"));
                    }
                    p.notify = Some(n);
                }
                ("ORCPT", Some(v)) if p.orcpt.is_none() => {
                    let semi = v
                        .find(';')
                        .ok_or_else(|| err("ORCPT needs addr-type;xtext"))?;
                    let addr_type = &v[..semi];
                    if addr_type.is_empty()
                        || !addr_type
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        return Err(err("ORCPT addr-type is not an atom"));
                    }
                    let addr = xtext_decode(&v[semi + 1..])
                        .ok_or_else(|| err("ORCPT address is not xtext"))?;
                    if addr.is_empty() || addr.len() > 500 {
                        return Err(err("ORCPT address is empty or too long"));
                    }
                    p.orcpt = Some(Orcpt {
                        addr_type: addr_type.to_ascii_lowercase(),
                        addr,
                    });
                }
                ("NOTIFY" | "ORCPT", _) => {
                    return Err(err("repeated, or value missing"));
                }
                _ => {
                    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        return Err(err("not an esmtp-keyword"));
                    }
                    p.other.push((k.clone(), v.map(str::to_string)));
                }
            }
        }
        Ok(p)
    }
}

impl fmt::Display for RcptParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.notify {
            if n.never {
                f.write_str(" NOTIFY=NEVER")?;
            } else {
                let mut flags = Vec::new();
                if n.success {
                    flags.push("SUCCESS");
                }
                if n.failure {
                    flags.push("FAILURE");
                }
                if n.delay {
                    flags.push("DELAY");
                }
                write!(f, " NOTIFY={}", flags.join(","))?;
            }
        }
        if let Some(o) = &self.orcpt {
            write!(f, " ORCPT={};{}", o.addr_type, xtext_encode(&o.addr))?;
        }
        write_other(f, &self.other)
    }
}

fn no_args(command: &'static str, args: &str, c: Command) -> Result<Command, CommandError> {
    if args.is_empty() {
        Ok(c)
    } else {
        Err(CommandError::Syntax {
            command,
            args: args.to_string(),
            why: "takes no arguments",
        })
    }
}

impl Command {
    /// Parses one command line (without its CRLF). Addresses may be UTF-8
    /// only when the MAIL command carries `SMTPUTF8`; RCPT addresses are
    /// parsed allowing UTF-8 and the server checks them against the
    /// transaction.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let line = core::str::from_utf8(line).map_err(|_| CommandError::Syntax {
            command: "line",
            args: String::from_utf8_lossy(line).into_owned(),
            why: "not UTF-8",
        })?;
        let (verb, args) = split_verb(line);
        let syntax = |command, why| CommandError::Syntax {
            command,
            args: args.to_string(),
            why,
        };
        match verb.to_ascii_uppercase().as_str() {
            "HELO" => {
                let a = args.trim_end_matches(' ');
                if a.is_empty() || a.contains(' ') {
                    return Err(syntax("HELO", "needs one domain"));
                }
                Ok(Command::Helo(a.to_string()))
            }
            "EHLO" => {
                let a = args.trim_end_matches(' ');
                if a.is_empty() || a.contains(' ') {
                    return Err(syntax("EHLO", "needs one domain or address literal"));
                }
                Ok(Command::Ehlo(a.to_string()))
            }
            "MAIL" => {
                let (path, rest) = split_path(args, "FROM:", "MAIL")?;
                let params = MailParams::parse(rest)?;
                let from = ReversePath::parse(path, params.smtputf8).map_err(|source| {
                    CommandError::Address {
                        command: "MAIL",
                        source,
                    }
                })?;
                Ok(Command::Mail { from, params })
            }
            "RCPT" => {
                let (path, rest) = split_path(args, "TO:", "RCPT")?;
                let params = RcptParams::parse(rest)?;
                let to =
                    ForwardPath::parse(path, true).map_err(|source| CommandError::Address {
                        command: "RCPT",
                        source,
                    })?;
                Ok(Command::Rcpt { to, params })
            }
            "DATA" => no_args("DATA", args, Command::Data),
            "BDAT" => {
                let mut it = args.split(' ').filter(|s| !s.is_empty());
                let size = it.next().ok_or_else(|| syntax("BDAT", "needs a size"))?;
                if size.len() > 20 || !size.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(syntax("BDAT", "size is not a number"));
                }
                let size = size.parse().map_err(|_| syntax("BDAT", "size too large"))?;
                let last = match it.next() {
                    None => false,
                    Some(l) if l.eq_ignore_ascii_case("LAST") => true,
                    Some(_) => return Err(syntax("BDAT", "only LAST may follow the size")),
                };
                if it.next().is_some() {
                    return Err(syntax("BDAT", "text after LAST"));
                }
                Ok(Command::Bdat { size, last })
            }
            "RSET" => no_args("RSET", args, Command::Rset),
            "NOOP" => Ok(Command::Noop),
            "QUIT" => no_args("QUIT", args, Command::Quit),
            "VRFY" if !args.is_empty() => Ok(Command::Vrfy(args.to_string())),
            "VRFY" => Err(syntax("VRFY", "needs a string")),
            "EXPN" if !args.is_empty() => Ok(Command::Expn(args.to_string())),
            "EXPN" => Err(syntax("EXPN", "needs a string")),
            "HELP" => Ok(Command::Help(if args.is_empty() {
                None
            } else {
                Some(args.to_string())
            })),
            "STARTTLS" => no_args("STARTTLS", args, Command::StartTls),
            "AUTH" => {
                let mut it = args.split(' ').filter(|s| !s.is_empty());
                let mech = it
                    .next()
                    .ok_or_else(|| syntax("AUTH", "needs a mechanism"))?;
                if !mech
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    || mech.len() > 20
                {
                    return Err(syntax("AUTH", "bad mechanism name"));
                }
                let initial = it.next().map(str::to_string);
                if it.next().is_some() {
                    return Err(syntax("AUTH", "text after the initial response"));
                }
                Ok(Command::Auth {
                    mechanism: mech.to_ascii_uppercase(),
                    initial,
                })
            }
            _ => Err(CommandError::Unknown {
                verb: verb.chars().take(32).collect(),
            }),
        }
    }

    /// The verb, upper case (`"MAIL"`, `"STARTTLS"`).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Helo(_) => "HELO",
            Command::Ehlo(_) => "EHLO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Helo(d) => write!(f, "HELO {d}"),
            Command::Ehlo(d) => write!(f, "EHLO {d}"),
            Command::Mail { from, params } => write!(f, "MAIL FROM:{from}{params}"),
            Command::Rcpt { to, params } => write!(f, "RCPT TO:{to}{params}"),
            Command::Bdat { size, last } => {
                write!(f, "BDAT {size}{}", if *last { " LAST" } else { "" })
            }
            Command::Vrfy(s) => write!(f, "VRFY {s}"),
            Command::Expn(s) => write!(f, "EXPN {s}"),
            Command::Help(Some(s)) => write!(f, "HELP {s}"),
            Command::Auth { mechanism, initial } => match initial {
                Some(i) => write!(f, "AUTH {mechanism} {i}"),
                None => write!(f, "AUTH {mechanism}"),
            },
            other => f.write_str(other.verb()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        let c = Command::parse(b"mail from: <a@example.org> size=10 smtputf8 RET=hdrs ENVID=x+2By")
            .unwrap();
        let Command::Mail { params, .. } = &c else {
            panic!("{c:?}")
        };
        assert_eq!(params.size, Some(10));
        assert!(params.smtputf8);
        assert_eq!(params.ret, Some(Ret::Hdrs));
        assert_eq!(params.envid.as_deref(), Some("x+y"));
        let r = Command::parse(
            b"RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.org",
        )
        .unwrap();
        assert_eq!(
            r.to_string(),
            "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.org"
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<>").unwrap().to_string(),
            "MAIL FROM:<>"
        );
        assert_eq!(
            Command::parse(b"BDAT 100 last").unwrap(),
            Command::Bdat {
                size: 100,
                last: true
            }
        );
        assert!(matches!(
            Command::parse(b"FOO bar"),
            Err(CommandError::Unknown { .. })
        ));
        assert!(matches!(
            Command::parse(b"MAIL FROM:<a@b.c> SIZE=1 SIZE=2"),
            Err(CommandError::Param { .. })
        ));
        assert!(matches!(
            Command::parse(b"RCPT TO:<a@b.c>x"),
            Err(CommandError::Syntax { .. })
        ));
        assert!(matches!(
            Command::parse(b"MAIL FROM:<\xc3\xbc@b.c>"),
            Err(CommandError::Address { .. })
        ));
        assert!(Command::parse("MAIL FROM:<ü@b.c> SMTPUTF8".as_bytes()).is_ok());
        assert!(Command::parse(b"DATA x").is_err());
        assert!(Command::parse(b"RCPT TO:<\"a>b\"@x.org>").is_err());
    }

    #[test]
    fn xtext() {
        assert_eq!(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(xtext_decode("a+2Bb+3Dc+20d").as_deref(), Some("a+b=c d"));
        assert_eq!(xtext_decode("a+2"), None);
        assert_eq!(xtext_decode("a+2b"), None);
    }
}
