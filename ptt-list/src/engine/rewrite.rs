//! A post as the subscribers get it: the author read from From, the
//! subject prefix, the list fields, the footer, the DMARC mitigation.

use super::*;

/// The author of a message: the first From address and its display name.
pub fn author(data: &[u8]) -> Option<(Address, Option<String>)> {
    let msg = MessageParser::default().parse_headers(data)?;
    let from = msg.from()?.first()?;
    let addr = Address::parse(from.address()?).ok()?;
    Some((addr, from.name().map(ToString::to_string)))
}

const LIST_HEADERS: [&str; 13] = [
    "List-Id",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Owner",
    "List-Archive",
    "Precedence",
    "Sender",
    "X-Loop",
    "Return-Path",
    "Errors-To",
];

pub(super) fn rewrite(list: &List, data: &[u8], author_policy: DmarcPolicy) -> Vec<u8> {
    let name = &list.name;
    let domain = &list.domain;
    let mut raw = Raw::parse(data);
    raw.remove(&LIST_HEADERS);
    if let Some(prefix) = &list.settings.subject_prefix {
        let subject = raw.get("Subject").map(|f| f.value()).unwrap_or_default();
        if !subject
            .to_ascii_lowercase()
            .contains(prefix.trim().to_ascii_lowercase().as_str())
        {
            raw.set("Subject", &format!("{prefix}{subject}"));
        }
    }
    if list.settings.dmarc_mitigation
        && matches!(author_policy, DmarcPolicy::Quarantine | DmarcPolicy::Reject)
        && let Some((addr, display)) = author(data)
    {
        {
            let who = display.unwrap_or_else(|| addr.to_string());
            let who: String = who.chars().filter(|c| *c != '"' && *c != '\\').collect();
            let phrase = if who.is_ascii() {
                format!("\"{who} via {name}\"")
            } else {
                use base64::Engine as _;
                let text = format!("{who} via {name}");
                format!(
                    "=?utf-8?b?{}?=",
                    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
                )
            };
            raw.set("From", &format!("{phrase} <{name}@{domain}>"));
            if raw.get("Reply-To").is_none() {
                raw.push("Reply-To", &addr.to_string());
            }
            raw.set("X-Original-From", &addr.to_string());
        }
    }
    let desc = list.description.replace(['<', '>', '\r', '\n'], "");
    let list_id = if desc.is_empty() {
        format!("<{name}.{domain}>")
    } else {
        format!("{desc} <{name}.{domain}>")
    };
    raw.push("List-Id", &list_id);
    raw.push("List-Post", &format!("<mailto:{name}@{domain}>"));
    raw.push(
        "List-Help",
        &format!("<mailto:{name}-help@{domain}?subject=help>"),
    );
    raw.push(
        "List-Subscribe",
        &format!("<mailto:{name}-subscribe@{domain}?subject=subscribe>"),
    );
    raw.push("List-Owner", &format!("<mailto:{name}-owner@{domain}>"));
    raw.push("Sender", &format!("{name}-owner@{domain}"));
    raw.push("Precedence", "list");
    raw.push("X-Loop", &format!("{name}@{domain}"));
    if let Some(footer) = &list.settings.footer {
        add_footer(&mut raw, data, footer);
    }
    raw.to_bytes()
}

/// Appends the footer where that keeps the message valid: to a text/plain
/// body in 7bit/8bit (as is) or quoted-printable (encoded), or as a new
/// text/plain part at the end of a multipart/mixed. Signed, encrypted,
/// base64 and other bodies are left alone.
pub(super) fn add_footer(raw: &mut Raw, data: &[u8], footer: &str) {
    let Some(msg) = MessageParser::default().parse_headers(data) else {
        return;
    };
    let (ctype, sub, boundary) = match msg.content_type() {
        None => ("text".to_string(), "plain".to_string(), None),
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase(),
            ct.attribute("boundary").map(ToString::to_string),
        ),
    };
    let cte = msg
        .content_transfer_encoding()
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let text = crate::message::to_crlf(footer.as_bytes());
    match (ctype.as_str(), sub.as_str()) {
        ("text", "plain") => {
            let body = &mut raw.body;
            if !body.is_empty() && !body.ends_with(b"\r\n") {
                body.extend_from_slice(b"\r\n");
            }
            match cte.as_str() {
                "7bit" | "8bit" | "binary" => {
                    if !text.is_ascii() && cte == "7bit" {
                        return;
                    }
                    body.extend_from_slice(b"-- \r\n");
                    body.extend_from_slice(&text);
                }
                "quoted-printable" => {
                    body.extend_from_slice(b"-- \r\n");
                    body.extend_from_slice(&qp_encode(&text));
                }
                _ => {}
            }
            if !body.ends_with(b"\r\n") {
                body.extend_from_slice(b"\r\n");
            }
        }
        ("multipart", "mixed") => {
            let Some(b) = boundary else { return };
            let close = format!("--{b}--");
            let Some(at) = find(&raw.body, close.as_bytes()) else {
                return;
            };
            let mut part = Vec::new();
            part.extend_from_slice(format!("--{b}\r\n").as_bytes());
            part.extend_from_slice(
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nContent-Disposition: inline\r\n\r\n",
            );
            part.extend_from_slice(&text);
            if !part.ends_with(b"\r\n") {
                part.extend_from_slice(b"\r\n");
            }
            let tail = raw.body.split_off(at);
            raw.body.extend_from_slice(&part);
            raw.body.extend_from_slice(&tail);
        }
        _ => {}
    }
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn qp_encode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in text.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut col = 0;
        for &c in line {
            let enc = !(c == b' ' || (33..=126).contains(&c)) || c == b'=';
            let w = if enc { 3 } else { 1 };
            if col + w > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if enc {
                out.extend_from_slice(format!("={c:02X}").as_bytes());
            } else {
                out.push(c);
            }
            col += w;
        }
        if line.last() == Some(&b' ') {
            out.extend_from_slice(b"=\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
    if out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    out
}
