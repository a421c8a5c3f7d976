//! Delivery status notifications (RFC 3464 inside an RFC 6522
//! `multipart/report`): what a sender gets back when mail to some
//! recipients failed, is delayed, or (when asked) was delivered.
//!
//! ```
//! use ptt_queue::dsn::{compose, Dsn};
//! use ptt_queue::{Entry, NoticeKind, RecipientState, Report};
//!
//! let mut entry = Entry::new("q1", "alice@example.org", &["bob@example.net"], 0);
//! entry.recipients[0].state = RecipientState::Failed {
//!     report: Report { status: "5.1.1".into(), remote_mta: Some("mx.example.net".into()),
//!                      diagnostic: "smtp; 550 5.1.1 no such user".into(), at: 0 },
//!     notified: false,
//! };
//! let original = b"From: alice@example.org\r\nSubject: hi\r\n\r\nbody\r\n";
//! let message = compose(&Dsn {
//!     entry: &entry,
//!     kind: NoticeKind::Failure,
//!     recipients: &["bob@example.net".to_string()],
//!     original,
//!     reporting_mta: "mail.example.org",
//!     from: "MAILER-DAEMON@mail.example.org",
//!     date: "Mon, 7 Dec 2026 10:00:00 +0000",
//!     arrival_date: "Mon, 7 Dec 2026 09:00:00 +0000",
//!     message_id: "<dsn.q1@mail.example.org>",
//!     boundary: "b0",
//! });
//! let text = String::from_utf8(message).unwrap();
//! assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
//! assert!(text.contains("Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
//! assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n"));
//! assert!(!text.contains("body"), "headers only unless RET=FULL");
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::entry::{Entry, Return};
use crate::queue::NoticeKind;

/// Everything a report is made of; the date, message id and MIME boundary
/// come from the caller (no clock or randomness here).
#[derive(Debug, Clone, Copy)]
pub struct Dsn<'a> {
    /// The queue entry reported on.
    pub entry: &'a Entry,
    /// What kind of report.
    pub kind: NoticeKind,
    /// The recipients it is about.
    pub recipients: &'a [String],
    /// The original message (its header, or all of it with `RET=FULL`, is
    /// returned).
    pub original: &'a [u8],
    /// Our host name (`Reporting-MTA`).
    pub reporting_mta: &'a str,
    /// The report's `From:` address (e.g. `MAILER-DAEMON@host`).
    pub from: &'a str,
    /// The `Date:` field, RFC 5322 form.
    pub date: &'a str,
    /// When the message arrived, RFC 5322 form.
    pub arrival_date: &'a str,
    /// The `Message-ID:` field, with angle brackets.
    pub message_id: &'a str,
    /// A MIME boundary that does not occur in the original message.
    pub boundary: &'a str,
}

/// One line of header text that cannot break the header: CR, LF and other
/// controls become spaces, non-ASCII becomes `?`, and it is cut at 900
/// bytes.
fn field(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| match c {
            ' '..='~' => c,
            '\t' | '\r' | '\n' => ' ',
            _ => '?',
        })
        .collect();
    if s.len() > 900 {
        s.truncate(900);
    }
    String::from(s.trim())
}

/// The original's header section, up to (not including) the empty line.
fn header_of(message: &[u8]) -> &[u8] {
    let mut i = 0;
    while i < message.len() {
        let end = message[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |p| i + p + 1);
        let line = &message[i..end];
        if line == b"\r\n" || line == b"\n" {
            return &message[..i];
        }
        i = end;
    }
    message
}

/// Composes the report, ready to be handed on (CRLF line ends).
pub fn compose(dsn: &Dsn<'_>) -> Vec<u8> {
    let entry = dsn.entry;
    let (subject, action, intro) = match dsn.kind {
        NoticeKind::Failure => (
            "Undelivered Mail Returned to Sender",
            "failed",
            "Your message could not be delivered to the recipients below. This is a\r\npermanent error; it will not be tried again.",
        ),
        NoticeKind::Delay => (
            "Delayed Mail (still being retried)",
            "delayed",
            "Your message has not yet been delivered to the recipients below. It is\r\nstill being tried; you need not send it again.",
        ),
        NoticeKind::Success => (
            "Successful Mail Delivery Report",
            "delivered",
            "Your message was delivered to the recipients below.",
        ),
    };
    let boundary = field(dsn.boundary);
    let mut out = String::new();
    out += &format!("From: Mail Delivery System <{}>\r\n", field(dsn.from));
    out += &format!("To: <{}>\r\n", field(&entry.from));
    out += &format!("Subject: {subject}\r\n");
    out += &format!("Date: {}\r\n", field(dsn.date));
    out += &format!("Message-ID: {}\r\n", field(dsn.message_id));
    // RFC 3834: an automatic reply, which nothing should answer.
    out += "Auto-Submitted: auto-replied\r\n";
    out += "MIME-Version: 1.0\r\n";
    out += &format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
    );
    out += "\r\nThis is a MIME-encapsulated delivery report.\r\n\r\n";

    // The part for people.
    out += &format!("--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
    out += &format!(
        "This is the mail system at {}.\r\n\r\n{intro}\r\n\r\n",
        field(dsn.reporting_mta)
    );
    let about = |address: &str| {
        entry
            .recipients
            .iter()
            .find(|r| r.address.eq_ignore_ascii_case(address))
    };
    for address in dsn.recipients {
        let why = about(address)
            .and_then(|r| r.last_report())
            .map(|r| field(&r.diagnostic))
            .unwrap_or_default();
        out += &format!("<{}>: {}\r\n", field(address), why);
    }
    out += "\r\n";

    // The part for programs.
    out += &format!("--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n");
    out += &format!("Reporting-MTA: dns; {}\r\n", field(dsn.reporting_mta));
    if let Some(envid) = &entry.envid {
        out += &format!("Original-Envelope-Id: {}\r\n", field(envid));
    }
    out += &format!("Arrival-Date: {}\r\n", field(dsn.arrival_date));
    for address in dsn.recipients {
        let recipient = about(address);
        let report = recipient.and_then(|r| r.last_report());
        out += "\r\n";
        if let Some(orcpt) = recipient.and_then(|r| r.orcpt.as_deref()) {
            out += &format!("Original-Recipient: {}\r\n", field(orcpt));
        }
        out += &format!("Final-Recipient: rfc822; {}\r\n", field(address));
        out += &format!("Action: {action}\r\n");
        let status = report
            .map(|r| field(&r.status))
            .unwrap_or_else(|| match dsn.kind {
                NoticeKind::Failure => "5.0.0".into(),
                NoticeKind::Delay => "4.0.0".into(),
                NoticeKind::Success => "2.0.0".into(),
            });
        out += &format!("Status: {status}\r\n");
        if let Some(report) = report {
            if let Some(mta) = &report.remote_mta {
                out += &format!("Remote-MTA: dns; {}\r\n", field(mta));
            }
            if report.diagnostic.contains(';') {
                out += &format!("Diagnostic-Code: {}\r\n", field(&report.diagnostic));
            }
        }
        if dsn.kind == NoticeKind::Delay {
            out += &format!("Last-Attempt-Date: {}\r\n", field(dsn.date));
        }
    }
    out += "\r\n";

    // The original.
    let mut bytes = out.into_bytes();
    match entry.ret {
        Return::Full => {
            bytes.extend_from_slice(
                format!("--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes(),
            );
            bytes.extend_from_slice(dsn.original);
            if !dsn.original.ends_with(b"\n") {
                bytes.extend_from_slice(b"\r\n");
            }
        }
        Return::Headers => {
            bytes.extend_from_slice(
                format!("--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n").as_bytes(),
            );
            let header = header_of(dsn.original);
            bytes.extend_from_slice(header);
            if !header.is_empty() && !header.ends_with(b"\n") {
                bytes.extend_from_slice(b"\r\n");
            }
        }
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{RecipientState, Report};
    use alloc::string::ToString;

    fn failed(entry: &mut Entry, i: usize, diagnostic: &str) {
        entry.recipients[i].state = RecipientState::Failed {
            report: Report {
                status: "5.1.1".into(),
                remote_mta: Some("mx.example.net".into()),
                diagnostic: diagnostic.into(),
                at: 0,
            },
            notified: false,
        };
    }

    fn dsn<'a>(entry: &'a Entry, recipients: &'a [String], original: &'a [u8]) -> Dsn<'a> {
        Dsn {
            entry,
            kind: NoticeKind::Failure,
            recipients,
            original,
            reporting_mta: "mail.example.org",
            from: "MAILER-DAEMON@mail.example.org",
            date: "Mon, 7 Dec 2026 10:00:00 +0000",
            arrival_date: "Mon, 7 Dec 2026 09:00:00 +0000",
            message_id: "<x@mail.example.org>",
            boundary: "=_b",
        }
    }

    #[test]
    fn a_hostile_reply_cannot_add_header_fields() {
        let mut entry = Entry::new("q", "a@example.org", &["b@example.net"], 0);
        failed(
            &mut entry,
            0,
            "smtp; 550 no\r\nBcc: victim@example.com\r\n\r\nX",
        );
        let rcpts = ["b@example.net".to_string()];
        let text =
            String::from_utf8(compose(&dsn(&entry, &rcpts, b"Subject: s\r\n\r\nb"))).unwrap();
        assert!(!text.contains("\r\nBcc:"), "{text}");
        assert!(
            text.contains("Diagnostic-Code: smtp; 550 no  Bcc: victim@example.com    X\r\n"),
            "{text}"
        );
    }

    #[test]
    fn full_return_and_envid_and_orcpt() {
        let mut entry = Entry::new("q", "a@example.org", &["b@example.net", "c@example.net"], 0);
        entry.ret = Return::Full;
        entry.envid = Some("E-1".into());
        entry.recipients[1].orcpt = Some("rfc822;c@example.net".into());
        failed(
            &mut entry,
            1,
            "x-ptt; example.net accepts no mail (null MX)",
        );
        let rcpts = ["c@example.net".to_string()];
        let text = String::from_utf8(compose(&dsn(
            &entry,
            &rcpts,
            b"Subject: s\r\n\r\nthe body\r\n",
        )))
        .unwrap();
        assert!(text.contains("Original-Envelope-Id: E-1\r\n"));
        assert!(text.contains(
            "Original-Recipient: rfc822;c@example.net\r\nFinal-Recipient: rfc822; c@example.net\r\n"
        ));
        assert!(text.contains(
            "Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nthe body\r\n\r\n--=_b--\r\n"
        ));
        assert!(
            !text.contains("b@example.net"),
            "only the recipients reported on"
        );
    }
}
