//! The `Received-SPF` header field (RFC 7208 section 9.1).
//!
//! Every value that came from the network (the sender, the HELO name, the
//! problem text) is written either as a `dot-atom` or as a quoted string with
//! `"` and `\` escaped; the comment escapes `(`, `)` and `\`. Control
//! characters (CR and LF among them) and non-ASCII bytes are replaced by `?`,
//! so no input can end the field or start another one.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use crate::eval::{Identity, Request, SpfOutput, SpfResult};

/// A `Received-SPF` header field for one evaluation.
///
/// ```
/// use ptt_spf::{ReceivedSpf, Request, SpfOutput, SpfResult, Identity};
/// let request = Request::mail_from("192.0.2.1".parse().unwrap(), "alice@example.org", "mx.example.org")
///     .with_receiver("mx.example.net");
/// let output = SpfOutput {
///     result: SpfResult::Pass, identity: Identity::MailFrom, domain: "example.org".into(),
///     sender: "alice@example.org".into(), mechanism: Some("mx".into()), problem: None, explanation: None,
/// };
/// // Unfold the field to read it as one line.
/// let h = ReceivedSpf::new(&request, &output).to_string().replace("\r\n\t", " ");
/// assert!(h.starts_with("Received-SPF: pass (mx.example.net: domain of alice@example.org designates 192.0.2.1 as permitted sender)"));
/// assert!(h.contains("envelope-from=\"alice@example.org\";"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpf {
    result: SpfResult,
    comment: String,
    pairs: Vec<(&'static str, String)>,
}

impl ReceivedSpf {
    /// The header for `output`, the outcome of `request`.
    pub fn new(request: &Request, output: &SpfOutput) -> ReceivedSpf {
        let receiver = request.receiver();
        let ip = request.ip();
        let who = match output.identity {
            Identity::MailFrom => format!("domain of {}", output.sender),
            Identity::Helo => format!("domain {}", output.domain),
        };
        let problem = output.problem.as_deref().unwrap_or("unknown problem");
        let text = match output.result {
            SpfResult::Pass => format!("{who} designates {ip} as permitted sender"),
            SpfResult::Fail => format!("{who} does not designate {ip} as permitted sender"),
            SpfResult::SoftFail => {
                let who = who.replacen("domain of", "domain of transitioning", 1);
                format!("{who} does not designate {ip} as permitted sender")
            }
            SpfResult::Neutral => format!("{ip} is neither permitted nor denied by {who}"),
            SpfResult::None => format!("{who} does not designate permitted sender hosts"),
            SpfResult::TempError => format!("temporary error checking {who}: {problem}"),
            SpfResult::PermError => {
                format!("permanent error in the SPF records of {who}: {problem}")
            }
        };
        let mut pairs = Vec::new();
        pairs.push(("client-ip", ip_text(ip)));
        if output.identity == Identity::MailFrom {
            pairs.push(("envelope-from", value(request.mail_from_raw())));
        }
        pairs.push(("helo", value(request.helo_name())));
        pairs.push(("receiver", value(receiver)));
        pairs.push(("identity", String::from(output.identity.as_str())));
        if let Some(m) = &output.mechanism {
            pairs.push(("mechanism", value(m)));
        }
        if let Some(p) = &output.problem
            && matches!(output.result, SpfResult::TempError | SpfResult::PermError)
        {
            pairs.push(("problem", value(p)));
        }
        ReceivedSpf {
            result: output.result,
            comment: format!("{}: {text}", clean(receiver)),
            pairs,
        }
    }

    /// The comment text (without the parentheses), as a person reads it.
    pub fn reason(&self) -> &str {
        &self.comment
    }
}

fn ip_text(ip: IpAddr) -> String {
    format!("{ip}")
}

/// Replaces what must never reach a header: controls and non-ASCII.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if matches!(c, ' '..='~') { c } else { '?' })
        .collect()
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// A dot-atom when the value is one, else a quoted string.
fn value(s: &str) -> String {
    let s = clean(s);
    let dot_atom = !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext));
    if dot_atom {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn comment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('(');
    for c in clean(s).chars() {
        if matches!(c, '(' | ')' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(')');
    out
}

impl fmt::Display for ReceivedSpf {
    /// The whole field, `Received-SPF: ...`, folded with CRLF and a tab
    /// before lines would pass 78 characters, without a final CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut tokens: Vec<String> = Vec::new();
        tokens.push(String::from(self.result.as_str()));
        // A comment may fold at its spaces: one token per word.
        tokens.extend(comment(&self.comment).split(' ').map(String::from));
        for (k, v) in &self.pairs {
            tokens.push(format!("{k}={v};"));
        }
        let mut line = String::from("Received-SPF:");
        for token in tokens {
            if line.len() + 1 + token.len() > 78 && line.trim() != "Received-SPF:" {
                write!(f, "{line}\r\n")?;
                line = String::from("\t");
                line.push_str(&token);
            } else {
                line.push(' ');
                line.push_str(&token);
            }
        }
        f.write_str(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::Request;
    use alloc::string::ToString;

    fn out(result: SpfResult, problem: Option<&str>) -> SpfOutput {
        SpfOutput {
            result,
            identity: Identity::MailFrom,
            domain: "example.org".into(),
            sender: "a@example.org".into(),
            mechanism: None,
            problem: problem.map(Into::into),
            explanation: None,
        }
    }

    #[test]
    fn hostile_values_cannot_inject() {
        let req = Request::mail_from(
            "192.0.2.1".parse().unwrap(),
            "\"x\r\nX-Evil: 1\"@example.org",
            "evil)\r\nBcc: all@example.org (",
        )
        .with_receiver("mx.example.net");
        let h =
            ReceivedSpf::new(&req, &out(SpfResult::PermError, Some("bad\nterm \"q\""))).to_string();
        for line in h.split("\r\n").skip(1) {
            assert!(line.starts_with('\t'), "unfolded line {line:?} in {h}");
        }
        assert!(!h.replace("\r\n\t", " ").contains('\n'));
        assert!(!h.replace("\r\n\t", " ").contains('\r'));
        assert!(
            h.contains(r#"envelope-from="\"x??X-Evil: 1\"@example.org";"#),
            "{h}"
        );
        assert!(
            h.contains(r#"helo="evil)??Bcc: all@example.org (";"#),
            "{h}"
        );
        assert!(h.contains(r#"problem="bad?term \"q\"";"#), "{h}");
    }

    #[test]
    fn folds_long_fields() {
        let req = Request::mail_from(
            "2001:db8::1".parse().unwrap(),
            "a@example.org",
            "h.example.org",
        );
        let h = ReceivedSpf::new(&req, &out(SpfResult::SoftFail, None)).to_string();
        assert!(
            h.split("\r\n").all(|l| l.len() <= 78 || !l.contains(' ')),
            "{h}"
        );
        assert!(h.contains("identity=mailfrom;"));
    }
}
