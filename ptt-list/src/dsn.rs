//! RFC 3464 delivery status notifications: the per-recipient part.

use alloc::string::String;
use alloc::vec::Vec;

use mail_parser::{MessageParser, MimeHeaders};

/// What a DSN says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient` address (the part after `rfc822;`).
    pub final_recipient: Option<String>,
    /// `Original-Recipient` address, when present.
    pub original_recipient: Option<String>,
    /// `Action`, lower case: failed, delayed, delivered, relayed, expanded.
    pub action: String,
    /// `Status`, e.g. `5.1.1`.
    pub status: Option<String>,
    /// `Diagnostic-Code`, when present.
    pub diagnostic: Option<String>,
}

/// How bad a recipient's report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A permanent failure (`Action: failed` with a 5.x.x status, or no status).
    Hard,
    /// A temporary failure (`Action: failed` with 4.x.x, or `delayed`).
    Soft,
    /// Delivered, relayed or expanded: not a failure.
    None,
}

impl DsnRecipient {
    /// Classifies this report.
    pub fn severity(&self) -> Severity {
        match self.action.as_str() {
            "failed" => {
                if self.status.as_deref().is_some_and(|s| s.starts_with('4')) {
                    Severity::Soft
                } else {
                    Severity::Hard
                }
            }
            "delayed" => Severity::Soft,
            _ => Severity::None,
        }
    }
}

/// Finds the `message/delivery-status` part of a `multipart/report` and
/// parses its per-recipient blocks. `None` when the message is not a DSN.
pub fn parse_dsn(data: &[u8]) -> Option<Vec<DsnRecipient>> {
    let msg = MessageParser::default().parse(data)?;
    let raw = msg.raw_message();
    for part in &msg.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let sub = ct.subtype().unwrap_or_default();
        if ct.ctype().eq_ignore_ascii_case("message")
            && (sub.eq_ignore_ascii_case("delivery-status")
                || sub.eq_ignore_ascii_case("global-delivery-status"))
        {
            let body = raw.get(part.offset_body as usize..part.offset_end as usize)?;
            return Some(parse_status_body(body));
        }
    }
    None
}

/// Parses the body of a `message/delivery-status` part: a per-message block,
/// then one block per recipient, separated by blank lines.
pub fn parse_status_body(body: &[u8]) -> Vec<DsnRecipient> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in text.split("\n\n").skip(1) {
        let mut r = DsnRecipient {
            final_recipient: None,
            original_recipient: None,
            action: String::new(),
            status: None,
            diagnostic: None,
        };
        // Unfold continuation lines.
        let unfolded = block.replace("\n ", " ").replace("\n\t", " ");
        for line in unfolded.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            let addr = || {
                value
                    .split_once(';')
                    .map_or(value, |(_, a)| a)
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .into()
            };
            match name.trim().to_ascii_lowercase().as_str() {
                "final-recipient" => r.final_recipient = Some(addr()),
                "original-recipient" => r.original_recipient = Some(addr()),
                "action" => r.action = value.to_ascii_lowercase(),
                "status" => {
                    r.status = value.split_whitespace().next().map(Into::into);
                }
                "diagnostic-code" => r.diagnostic = Some(value.into()),
                _ => {}
            }
        }
        if r.final_recipient.is_some() || !r.action.is_empty() {
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const DSN: &str = "From: MAILER-DAEMON@mx.example.org\r\n\
To: ptt-return-3-bob=example.net@lists.example\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
I could not deliver.\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; mx.example.org\r\n\
Arrival-Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\
\r\n\
Final-Recipient: rfc822; bob@example.net\r\n\
Original-Recipient: rfc822;bob@example.net\r\n\
Action: failed\r\n\
Status: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>:\r\n\
\x20Recipient address rejected\r\n\
\r\n\
--B\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
Subject: hi\r\n\
--B--\r\n";

    #[test]
    fn parses_postfix_style_dsn() {
        let r = parse_dsn(DSN.as_bytes()).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].final_recipient.as_deref(), Some("bob@example.net"));
        assert_eq!(r[0].action, "failed");
        assert_eq!(r[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(r[0].severity(), Severity::Hard);
        assert!(r[0].diagnostic.as_deref().unwrap().contains("rejected"));
    }

    #[test]
    fn not_a_dsn() {
        assert_eq!(parse_dsn(b"Subject: x\r\n\r\nhello\r\n"), None);
    }

    #[test]
    fn delayed_is_soft() {
        let body = b"Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b.c\r\nAction: delayed\r\nStatus: 4.4.1\r\n";
        let r = parse_status_body(body);
        assert_eq!(r[0].severity(), Severity::Soft);
    }
}
