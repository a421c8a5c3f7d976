//! Message authentication as a receiver does it: SPF (ptt-spf), DKIM
//! (ptt-dkim) and DMARC (ptt-dmarc), with every DNS question of the
//! Sans-IO evaluators answered by the resolver (the questions of one round
//! concurrently, SPF and DKIM side by side), and the
//! `Authentication-Results` field that records the verdicts (RFC 8601).
//!
//! Used by `ptt auth check` and by the local receiver of `ptt up`.

use std::net::IpAddr;

use ptt_dkim::SignatureResult;
use ptt_dmarc::authres::{AuthenticationResults, MethodResult, claims_authserv_id, items};
use ptt_dmarc::eval::{
    self as dmarc, AuthInput, DkimOutcome, DkimResult, Evaluation, SpfOutcome, Verdict,
};
use ptt_dmarc::psl::PublicSuffixList;
use ptt_spf::{Identity, Request, SpfOutput};

use crate::dns::{Resolver, evaluate};

/// What the SMTP session knows about the sender.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    /// The client's address.
    pub(crate) ip: IpAddr,
    /// The HELO/EHLO name.
    pub(crate) helo: String,
    /// The MAIL FROM address, empty for the null sender.
    pub(crate) mail_from: String,
}

/// The verdicts on one message.
#[derive(Debug)]
pub(crate) struct Authentication {
    /// SPF for MAIL FROM (or HELO for the null sender).
    pub(crate) spf: SpfOutput,
    /// The `Received-SPF` field, CRLF-terminated.
    pub(crate) received_spf: String,
    /// One result per DKIM-Signature.
    pub(crate) dkim: Vec<SignatureResult>,
    /// DMARC for the RFC 5322.From domain.
    pub(crate) dmarc: Verdict,
    /// Why DMARC could not evaluate the From field (its permerror).
    pub(crate) from_problem: Option<String>,
}

impl Authentication {
    /// The `Authentication-Results` field for `authserv_id`, CRLF-terminated.
    pub(crate) fn header_field(&self, authserv_id: &str) -> Result<String, String> {
        let mut ar = AuthenticationResults::new(authserv_id)
            .map_err(|e| format!("authserv-id {authserv_id:?}: {e}"))?;
        let spf = spf_outcome(&self.spf);
        ar.push(
            items::spf(&spf, Some(&self.spf.sender))
                .or_else(|_| items::spf(&spf, None))
                .or_else(|_| MethodResult::new("spf", spf.result.as_str()))
                .map_err(|e| e.to_string())?,
        );
        if self.dkim.is_empty() {
            ar.push(MethodResult::new("dkim", "none").map_err(|e| e.to_string())?);
        }
        for outcome in dkim_outcomes(&self.dkim) {
            let item = items::dkim(&outcome)
                .or_else(|_| MethodResult::new("dkim", outcome.result.as_str()))
                .map_err(|e| e.to_string())?;
            ar.push(item);
        }
        ar.push(
            items::dmarc(&self.dmarc)
                .or_else(|_| MethodResult::new("dmarc", self.dmarc.result.as_str()))
                .map_err(|e| e.to_string())?,
        );
        Ok(ar.to_header_field())
    }
}

/// Runs SPF, DKIM and DMARC on `message` (the whole message, CRLF line ends).
///
/// `receiver` names this host in `Received-SPF`; `now` is the Unix time for
/// DKIM's `t=`/`x=`; `sample` is a random number for DMARC `pct`.
pub(crate) async fn authenticate(
    resolver: &Resolver,
    psl: &PublicSuffixList,
    message: &[u8],
    envelope: &Envelope,
    receiver: &str,
    now: u64,
    sample: u32,
) -> Authentication {
    let request = if envelope.mail_from.is_empty() {
        Request::helo(envelope.ip, &envelope.helo)
    } else {
        Request::mail_from(envelope.ip, &envelope.mail_from, &envelope.helo)
    }
    .with_receiver(receiver)
    .with_timestamp(now);
    let (spf, dkim) = tokio::join!(
        evaluate::spf(resolver, request.clone()),
        evaluate::dkim(resolver, message, now),
    );
    let mut received_spf = ptt_spf::ReceivedSpf::new(&request, &spf).to_string();
    if !received_spf.ends_with("\r\n") {
        received_spf.push_str("\r\n");
    }
    let input = AuthInput {
        spf: Some(spf_outcome(&spf)),
        dkim: dkim_outcomes(&dkim),
    };
    let (dmarc, from_problem) = match from_domain(message) {
        Ok(domain) => match Evaluation::new(psl, &domain, input, sample) {
            Ok(evaluation) => (evaluate::dmarc(resolver, evaluation).await, None),
            Err(e) => (Evaluation::permerror(&domain), Some(e.to_string())),
        },
        Err(why) => (Evaluation::permerror(""), Some(why)),
    };
    Authentication {
        spf,
        received_spf,
        dkim,
        dmarc,
        from_problem,
    }
}

fn spf_outcome(spf: &SpfOutput) -> SpfOutcome {
    let result = dmarc::SpfResult::from(spf.result);
    match spf.identity {
        Identity::Helo => SpfOutcome::helo(result, &spf.domain),
        Identity::MailFrom => SpfOutcome::mail_from(result, &spf.domain),
    }
}

fn dkim_outcomes(results: &[SignatureResult]) -> Vec<DkimOutcome> {
    results
        .iter()
        .map(|r| {
            let result = DkimResult::from(&r.verdict);
            let outcome = DkimOutcome::new(result, r.domain.as_deref().unwrap_or_default());
            match &r.selector {
                Some(s) => outcome.with_selector(s),
                None => outcome,
            }
        })
        .collect()
}

/// The header block of `message` (without the empty line), or all of it
/// when it has no body.
pub(crate) fn header_block(message: &[u8]) -> &[u8] {
    if message.starts_with(b"\r\n") {
        return &[];
    }
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => &message[..end + 2],
        None => message,
    }
}

/// The addresses of the single From field (RFC 5322 §3.6.2: exactly one
/// From field), lowercase-domain as written otherwise; an error says what
/// was wrong.
pub(crate) fn from_addresses(message: &[u8]) -> Result<Vec<String>, String> {
    let fields = ptt_dkim::split_header_fields(header_block(message));
    let mut froms = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(b"from"));
    let field = froms.next().ok_or("the message has no From field")?;
    if froms.next().is_some() {
        return Err("the message has more than one From field".into());
    }
    let value = String::from_utf8_lossy(field.value()).replace(['\r', '\n'], "");
    let addresses = address_list(&strip_comments(&value))?;
    if addresses.is_empty() {
        return Err(format!("no address in From: {:?}", value.trim()));
    }
    Ok(addresses)
}

/// The addr-specs of an address list (RFC 5322 §3.4), comments already
/// removed: commas inside quoted strings or angle brackets do not split,
/// `<…>` wins over the display name, and groups (`name: a@b, c@d;`) give
/// their members. Anything it cannot read whole is an error, never a
/// guess: a reader that split it otherwise could show another address.
fn address_list(value: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| {
        Err(format!(
            "cannot read the address list {:?}: {why}",
            value.trim()
        ))
    };
    let mut parts = Vec::new();
    let (mut current, mut quoted, mut escaped, mut angle) = (String::new(), false, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            current.push(c);
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '\\' => return bad("a backslash outside a quoted string"),
            '"' if !angle => quoted = !quoted,
            '<' if !quoted => {
                if angle {
                    return bad("'<' inside '<…>'");
                }
                angle = true;
            }
            '>' if !quoted => {
                if !angle {
                    return bad("'>' without '<'");
                }
                angle = false;
            }
            ',' | ';' if !quoted && !angle => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            ':' if !quoted && !angle => {
                // A group's display name ends here.
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if quoted || angle || escaped {
        return bad("an unclosed quoted string or '<'");
    }
    parts.push(current);
    let mut out = Vec::new();
    for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let spec = match (part.find('<'), part.rfind('>')) {
            (Some(open), Some(close)) => {
                if part.matches('<').count() > 1 || !part[close + 1..].trim().is_empty() {
                    return bad("text after '<…>'");
                }
                let mut in_quotes = false;
                for c in part[..open].chars() {
                    match c {
                        '"' => in_quotes = !in_quotes,
                        '@' if !in_quotes => return bad("an '@' in an unquoted display name"),
                        _ => {}
                    }
                }
                part[open + 1..close].trim()
            }
            _ => {
                if part.contains(char::is_whitespace) || part.contains('"') {
                    return bad("a display name without '<address>'");
                }
                part
            }
        };
        let Some((local, domain)) = spec.rsplit_once('@') else {
            return bad("an address without '@'");
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if local.is_empty() || domain.is_empty() || domain.contains(char::is_whitespace) {
            return bad("an empty local part or domain");
        }
        out.push(format!("{local}@{domain}"));
    }
    Ok(out)
}

/// The domain of the single address in the single From field (RFC 7489
/// 6.6.1): anything else is an error saying what was wrong.
pub(crate) fn from_domain(message: &[u8]) -> Result<String, String> {
    let addresses = from_addresses(message)?;
    let [address] = addresses.as_slice() else {
        return Err(format!("From holds {} addresses, not one", addresses.len()));
    };
    Ok(address.rsplit_once('@').map_or("", |(_, d)| d).to_string())
}

/// Removes RFC 5322 comments (nested parentheses) outside quoted strings.
fn strip_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0u32, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `message` without the `Authentication-Results` fields that claim
/// `authserv_id` (RFC 8601 §5: a receiver removes forged results of its own
/// before adding its own).
pub(crate) fn strip_forged_results(message: &[u8], authserv_id: &str) -> Vec<u8> {
    let head = header_block(message);
    let mut out = Vec::with_capacity(message.len());
    for field in ptt_dkim::split_header_fields(head) {
        let forged = field.name.eq_ignore_ascii_case(b"authentication-results")
            && claims_authserv_id(&String::from_utf8_lossy(field.value()), authserv_id);
        if !forged {
            out.extend_from_slice(field.raw);
        }
    }
    out.extend_from_slice(&message[head.len()..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_domain_reads_one_address() {
        let m = |from: &str| format!("From: {from}\r\nTo: x@y\r\n\r\nbody\r\n").into_bytes();
        assert_eq!(from_domain(&m("a@Example.ORG")).unwrap(), "example.org");
        assert_eq!(
            from_domain(&m("\"Doe, J (x@evil.test)\" <j@example.org>")).unwrap(),
            "example.org"
        );
        assert_eq!(
            from_domain(&m("J (work: j@evil.test) <j@example.org>")).unwrap(),
            "example.org"
        );
        assert!(from_domain(&m("a@one.test, b@two.test")).is_err());
        assert!(from_domain(&m("undisclosed")).is_err());
        assert!(from_domain(b"From: a@x.test\r\nFrom: b@y.test\r\n\r\n").is_err());
        assert!(from_domain(b"To: a@x.test\r\n\r\n").is_err());
    }

    #[test]
    fn from_addresses_reads_lists_quotes_and_groups() {
        let m = |from: &str| format!("From: {from}\r\n\r\n").into_bytes();
        assert_eq!(
            from_addresses(&m("\"a@b, c\" <j@Example.org>, k@x.test")).unwrap(),
            ["j@example.org", "k@x.test"]
        );
        assert_eq!(
            from_addresses(&m("team: a@x.test, b@y.test;")).unwrap(),
            ["a@x.test", "b@y.test"]
        );
        assert!(from_addresses(&m("nobody")).is_err());
        // What a lenient reader could split otherwise is refused, not guessed.
        for tricky in [
            "\\\"x, victim@bank.example, \"y <alice@example.org>",
            "victim@bank.example <alice@example.org>",
            "<alice@example.org> victim@bank.example",
            "\"unclosed <alice@example.org>",
            "a <b <alice@example.org>>",
            "Alice alice@example.org",
        ] {
            assert!(from_addresses(&m(tricky)).is_err(), "{tricky}");
        }
    }

    #[test]
    fn forged_results_of_our_id_are_removed_and_others_kept() {
        let message = b"Authentication-Results: mx.example.org; dkim=pass\r\n\
Authentication-Results: other.example; spf=pass\r\n\
Authentication-Results: MX.EXAMPLE.ORG;\r\n\tdmarc=pass\r\n\
Subject: hi\r\n\r\nAuthentication-Results: mx.example.org; in the body\r\n";
        let out = strip_forged_results(message, "mx.example.org");
        assert_eq!(
            out,
            b"Authentication-Results: other.example; spf=pass\r\nSubject: hi\r\n\r\n\
Authentication-Results: mx.example.org; in the body\r\n"
        );
    }
}
