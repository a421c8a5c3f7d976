//! The decisions: what an incoming message, a delivery result or the
//! passing of time does to the [`State`], and what goes out.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use hmac::{Hmac, Mac};
use mail_parser::{MessageParser, MimeHeaders};
use sha2::Sha256;

use crate::address::{Address, AddressError, Role, check_list_name, classify};
use crate::dsn::{Severity, parse_dsn};
use crate::message::{Notice, Raw, base32, field_bytes, percent_encode};
use crate::model::*;

/// Randomness for one call (tokens and Message-IDs); give fresh random bytes.
#[derive(Debug, Clone, Copy)]
pub struct Entropy(pub [u8; 20]);

impl Entropy {
    fn token(&self) -> String {
        base32(self.0.get(..10).unwrap_or_default())
    }
    fn id_part(&self) -> String {
        base32(self.0.get(10..).unwrap_or_default())
    }
}

/// An incoming message for one recipient.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The SMTP reverse path (empty for bounces).
    pub mail_from: &'a str,
    /// The recipient (one of the list's addresses).
    pub rcpt: &'a str,
    /// The message as received.
    pub data: &'a [u8],
    /// DMARC verdict and the author domain's policy.
    pub auth: Authentication,
}

/// The answer to give to the SMTP client for this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// 250: taken (which may mean silently dropped; see the events).
    Accept,
    /// A refusal with its code, enhanced code and text.
    Reject {
        /// Basic code (550, 552, ...).
        code: u16,
        /// Enhanced status code.
        enhanced: &'static str,
        /// Text.
        text: String,
    },
}

/// A message the list sends (notices, confirmations, owner mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Reverse path (empty: null sender, as for automatic replies).
    pub mail_from: String,
    /// Recipients.
    pub rcpts: Vec<String>,
    /// The message.
    pub data: Vec<u8>,
}

/// One subscriber's copy of a post, owned: `header` followed by the post's
/// shared bytes ([`FanOut::common`], or the `tmp/` file of a retry).
/// [`DeliveryRef::to_delivery`] makes one from a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The subscriber.
    pub rcpt: String,
    /// The VERP return path `NAME-return-N-local=domain@D`.
    pub mail_from: String,
    /// Per-subscriber header fields (List-Unsubscribe with its one-click token).
    pub header: Vec<u8>,
}

impl Delivery {
    /// The full message: the header fields, then `common`.
    pub fn message(&self, common: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.header.len() + common.len());
        m.extend_from_slice(&self.header);
        m.extend_from_slice(common);
        m
    }
}

/// One subscriber's copy of a post as a [`FanOut`] holds it: borrowed
/// from the plan, which keeps every subscriber's texts in one buffer and
/// the parts of the List-Unsubscribe field that do not change once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRef<'a> {
    /// The subscriber.
    pub rcpt: &'a str,
    /// The VERP return path `NAME-return-N-local=domain@D`.
    pub mail_from: &'a str,
    /// `[List-Unsubscribe up to the address, percent-encoded address and
    /// token, the rest of the field (and List-Unsubscribe-Post)]`.
    parts: [&'a str; 3],
}

impl<'a> DeliveryRef<'a> {
    /// The per-subscriber header fields in pieces, to write one after the
    /// other (then [`FanOut::common`]) without joining them.
    pub fn header_parts(&self) -> [&'a [u8]; 3] {
        self.parts.map(str::as_bytes)
    }

    /// The per-subscriber header fields (List-Unsubscribe with its
    /// one-click token, and List-Unsubscribe-Post).
    pub fn header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(self.parts.iter().map(|p| p.len()).sum());
        for p in self.parts {
            h.extend_from_slice(p.as_bytes());
        }
        h
    }

    /// An owned copy.
    pub fn to_delivery(&self) -> Delivery {
        Delivery {
            rcpt: self.rcpt.into(),
            mail_from: self.mail_from.into(),
            header: self.header(),
        }
    }
}

/// The deliveries to one domain, borrowed from a [`FanOut`].
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    /// The recipients' domain.
    pub domain: &'a str,
    fan: &'a FanOut,
    slots: &'a [Slot],
}

impl<'a> Batch<'a> {
    /// One per subscriber of that domain, in address order.
    pub fn deliveries(&self) -> impl ExactSizeIterator<Item = DeliveryRef<'a>> + use<'a> {
        let fan = self.fan;
        self.slots.iter().map(move |s| fan.view(s))
    }

    /// Number of deliveries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there is no delivery (never, in a plan).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

impl core::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Batch")
            .field("domain", &self.domain)
            .field("deliveries", &self.slots.len())
            .finish()
    }
}

/// Where one delivery's texts are in [`FanOut`]'s buffer: the recipient
/// from the end of the previous one to `rcpt_end`, then the VERP address to
/// `from_end`, then the percent-encoded address and the token to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    start: usize,
    rcpt_end: usize,
    from_end: usize,
    end: usize,
}

/// A domain's deliveries: `slots[first..end]`, the domain at `domain` in
/// the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    domain: core::ops::Range<usize>,
    end: usize,
}

/// The plan for sending one post to every subscriber: the rewritten
/// message once, and per subscriber only what differs (address, VERP
/// return path, one-click token), grouped by domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOut {
    /// The list.
    pub list: String,
    /// The post's number.
    pub post: u64,
    /// Rewritten header and body, the same for every subscriber.
    pub common: Vec<u8>,
    /// Every delivery's texts, back to back (see `Slot`).
    text: String,
    slots: Vec<Slot>,
    groups: Vec<Group>,
    /// List-Unsubscribe up to the address (empty without one-click).
    unsub_head: String,
    /// The rest of List-Unsubscribe (and List-Unsubscribe-Post).
    unsub_tail: String,
}

impl FanOut {
    /// The full message for one delivery.
    pub fn message(&self, d: &DeliveryRef<'_>) -> Vec<u8> {
        let parts = d.header_parts();
        let len = parts.iter().map(|p| p.len()).sum::<usize>() + self.common.len();
        let mut m = Vec::with_capacity(len);
        for p in parts {
            m.extend_from_slice(p);
        }
        m.extend_from_slice(&self.common);
        m
    }

    /// The deliveries grouped by domain, domains in order.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = Batch<'_>> {
        let mut first = 0;
        self.groups.iter().map(move |g| {
            let slots = self.slots.get(first..g.end).unwrap_or_default();
            first = g.end;
            Batch {
                domain: self.text.get(g.domain.clone()).unwrap_or_default(),
                fan: self,
                slots,
            }
        })
    }

    /// Every delivery, in the order of [`FanOut::batches`].
    pub fn deliveries(&self) -> impl ExactSizeIterator<Item = DeliveryRef<'_>> {
        self.slots.iter().map(|s| self.view(s))
    }

    /// Delivery number `i` in the order of [`FanOut::deliveries`].
    pub fn get(&self, i: usize) -> Option<DeliveryRef<'_>> {
        self.slots.get(i).map(|s| self.view(s))
    }

    /// Number of deliveries.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there is no recipient.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn view(&self, s: &Slot) -> DeliveryRef<'_> {
        let t = |a: usize, b: usize| self.text.get(a..b).unwrap_or_default();
        DeliveryRef {
            rcpt: t(s.start, s.rcpt_end),
            mail_from: t(s.rcpt_end, s.from_end),
            parts: [
                self.unsub_head.as_str(),
                t(s.from_end, s.end),
                self.unsub_tail.as_str(),
            ],
        }
    }
}

/// What happened, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A post went out (or is about to).
    Posted {
        /// List.
        list: String,
        /// Post number.
        post: u64,
    },
    /// A post is held.
    Held {
        /// List.
        list: String,
        /// Token of the accept/reject addresses.
        token: String,
        /// Why.
        reason: HoldReason,
    },
    /// A message was taken and dropped.
    Dropped {
        /// Why.
        reason: &'static str,
    },
    /// A subscription change waits.
    Pending {
        /// List.
        list: String,
        /// Token.
        token: String,
        /// Who it waits for.
        stage: Stage,
    },
    /// An address joined.
    Subscribed(Address),
    /// An address left.
    Unsubscribed(Address),
    /// A bounce was counted; `score` is the new score.
    Bounce {
        /// Subscriber.
        rcpt: Address,
        /// Score after this bounce.
        score: f64,
    },
    /// A subscriber was removed for bouncing.
    RemovedForBounces(Address),
    /// A delivery was queued for a retry.
    Queued {
        /// Subscriber.
        rcpt: Address,
        /// When it is retried.
        next: u64,
    },
    /// A held post, a pending request or a retry expired.
    Expired(String),
    /// A message was answered (help, roster, refusals).
    Answered(&'static str),
}

/// Everything a call decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// What to answer the SMTP client.
    pub reply: Reply,
    /// Messages to send.
    pub send: Vec<Outgoing>,
    /// A post to fan out.
    pub fanout: Option<FanOut>,
    /// What to persist, before acknowledging (see the `store` module).
    pub changes: Changes,
    /// What happened.
    pub events: Vec<Event>,
}

impl Output {
    fn accept() -> Self {
        Output {
            reply: Reply::Accept,
            send: Vec::new(),
            fanout: None,
            changes: Changes::default(),
            events: Vec::new(),
        }
    }
    fn reject(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Output {
            reply: Reply::Reject {
                code,
                enhanced,
                text: text.into(),
            },
            ..Output::accept()
        }
    }
    fn dropped(reason: &'static str) -> Self {
        let mut o = Output::accept();
        o.events.push(Event::Dropped { reason });
        o
    }
}

/// The outcome of one delivery attempt, reported by the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// Accepted by the recipient's server.
    Delivered,
    /// A 4xx or a connection failure: retry later.
    Temporary(String),
    /// A 5xx: give up.
    Permanent(String),
}

/// Why an administrative change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// `ptt add` of a name that is taken (names are unique across domains,
    /// since the file is `lists/NAME.json`).
    #[error("list {0:?} exists")]
    Exists(String),
    /// No list by that name (on that domain).
    #[error("unknown list {0:?}")]
    Unknown(String),
    /// A bad address or list name.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A bad domain.
    #[error("domain {input:?}: {why}")]
    Domain {
        /// As given.
        input: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A list needs at least one moderator.
    #[error("list {0:?} would have no moderator left")]
    LastModerator(String),
    /// Removing someone who is not a moderator.
    #[error("{address} is not a moderator of {list:?}")]
    NotModerator {
        /// List.
        list: String,
        /// Address.
        address: String,
    },
}

/// The one-click token of `address` on `list`: HMAC-SHA256 keyed by the
/// list's secret over the list name and the lower-cased address, 128 bits in
/// unpadded base64url. Verifiable without storing anything.
pub fn one_click_token(list: &List, address: &Address) -> String {
    String::from_utf8_lossy(&token_bytes(prefixed_mac(list), address)).into_owned()
}

fn keyed_mac(list: &List) -> Hmac<Sha256> {
    let key = decode_hex(&list.secret);
    // HMAC takes keys of any length; this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| {
        <Hmac<Sha256> as Mac>::new_from_slice(b"").unwrap_or_else(|_| unreachable!())
    })
}

/// The list's keyed MAC already fed with the part of the message that is
/// the same for every subscriber.
fn prefixed_mac(list: &List) -> Hmac<Sha256> {
    let mut mac = keyed_mac(list);
    mac.update(b"ptt-list one-click\0");
    mac.update(list.name.as_bytes());
    mac.update(b"\0");
    mac
}

fn token_bytes(mut prefixed: Hmac<Sha256>, address: &Address) -> [u8; 22] {
    use base64::Engine as _;
    prefixed.update(address.key().as_bytes());
    let tag = prefixed.finalize().into_bytes();
    let mut out = [0u8; 22];
    let _ = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(tag.get(..16).unwrap_or_default(), &mut out);
    out
}

fn decode_hex(s: &str) -> Vec<u8> {
    let v = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| (p.first().map_or(0, |&c| v(c)) << 4) | p.get(1).map_or(0, |&c| v(c)))
        .collect()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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

/// Plans the fan-out of post number `post`: rewrites the message once
/// (RFC 2369 fields, Sender, Precedence, X-Loop, subject prefix, footer, and
/// the From rewrite for authors whose domain says quarantine or reject),
/// then makes one delivery per subscriber, grouped by domain, each with its
/// VERP return path and its RFC 8058 one-click List-Unsubscribe.
///
/// The message is held once; per subscriber the plan keeps only what
/// differs (the address, the VERP return path, the percent-encoded address
/// and the token), all in one buffer.
pub fn plan_post(list: &List, post: u64, data: &[u8], author_policy: DmarcPolicy) -> FanOut {
    let common = rewrite(list, data, author_policy);
    let planner = Planner::new(list, post);
    let n = list.subscribers.len();
    // Each address appears about three times (recipient, VERP, URL).
    let addresses: usize = list.subscribers.iter().map(|s| s.key().len()).sum();
    let mut text = String::with_capacity(3 * addresses + n * planner.fixed_len() + 16);
    let mut slots: Vec<Slot> = Vec::with_capacity(n);
    let mut groups: Vec<Group> = Vec::new();
    for sub in &list.subscribers {
        let slot = planner.push(sub, &mut text);
        let dom = sub.domain();
        match groups.last_mut() {
            Some(g) if text.get(g.domain.clone()) == Some(dom) => g.end = slots.len() + 1,
            _ => groups.push(Group {
                domain: slot.rcpt_end - dom.len()..slot.rcpt_end,
                end: slots.len() + 1,
            }),
        }
        slots.push(slot);
    }
    FanOut {
        list: list.name.clone(),
        post,
        common,
        text,
        slots,
        groups,
        unsub_head: planner.unsub_head,
        unsub_tail: planner.unsub_tail,
    }
}

/// What the deliveries of one post share, made once: the VERP and
/// List-Unsubscribe templates and the MAC keyed and fed with the list name.
struct Planner {
    /// `NAME-return-N-`.
    verp_head: String,
    /// `@DOMAIN`.
    verp_tail: String,
    /// List-Unsubscribe up to the address (empty without one-click).
    unsub_head: String,
    /// The rest of List-Unsubscribe (and List-Unsubscribe-Post).
    unsub_tail: String,
    /// `None` without a one-click URL.
    mac: Option<Hmac<Sha256>>,
}

impl Planner {
    fn new(list: &List, post: u64) -> Self {
        let name = &list.name;
        let domain = &list.domain;
        let mailto = format!("<mailto:{name}-unsubscribe@{domain}?subject=unsubscribe>");
        let (unsub_head, unsub_tail, mac) = match list.settings.one_click_url.as_deref() {
            Some(url) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                (
                    format!(
                        "List-Unsubscribe: <{url}{sep}list={}&address=",
                        percent_encode(name)
                    ),
                    format!(
                        ">,\r\n {mailto}\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                    ),
                    Some(prefixed_mac(list)),
                )
            }
            None => (
                String::new(),
                format!("List-Unsubscribe: {mailto}\r\n"),
                None,
            ),
        };
        Planner {
            verp_head: format!("{name}-return-{post}-"),
            verp_tail: format!("@{domain}"),
            unsub_head,
            unsub_tail,
            mac,
        }
    }

    /// Octets of a delivery's texts besides the addresses.
    fn fixed_len(&self) -> usize {
        let one_click = if self.mac.is_some() { 2 + 7 + 22 } else { 0 };
        2 + self.verp_head.len() + self.verp_tail.len() + one_click
    }

    /// Appends `sub`'s texts to `text`: the address, the VERP return path
    /// and (one-click) the percent-encoded address with its token.
    fn push(&self, sub: &Address, text: &mut String) -> Slot {
        let (local, dom) = (sub.local(), sub.domain());
        let start = text.len();
        text.push_str(local);
        text.push('@');
        text.push_str(dom);
        let rcpt_end = text.len();
        text.push_str(&self.verp_head);
        text.push_str(local);
        text.push('=');
        text.push_str(dom);
        text.push_str(&self.verp_tail);
        let from_end = text.len();
        if let Some(mac) = &self.mac {
            percent_encode_into(local, text);
            text.push_str("%40");
            percent_encode_into(dom, text);
            text.push_str("&token=");
            let token = token_bytes(mac.clone(), sub);
            // base64url is ASCII.
            text.push_str(core::str::from_utf8(&token).unwrap_or_default());
        }
        Slot {
            start,
            rcpt_end,
            from_end,
            end: text.len(),
        }
    }
}

/// RFC 3986 unreserved characters: `ALPHA / DIGIT / "-" / "." / "_" / "~"`.
const UNRESERVED: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        c += 1;
    }
    t
};

/// Appends `s` with everything but RFC 3986 unreserved characters
/// percent-encoded octet by octet; runs of unreserved characters (ASCII,
/// so on character boundaries) are copied at once.
fn percent_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut run = 0;
    for (i, c) in s.bytes().enumerate() {
        if UNRESERVED[usize::from(c)] {
            continue;
        }
        out.push_str(s.get(run..i).unwrap_or_default());
        out.push('%');
        out.push(char::from(HEX[usize::from(c >> 4)]));
        out.push(char::from(HEX[usize::from(c & 15)]));
        run = i + 1;
    }
    out.push_str(s.get(run..).unwrap_or_default());
}

/// The per-subscriber part of a post (for retries from the queue).
pub fn delivery_for(list: &List, post: u64, rcpt: &Address) -> Delivery {
    let planner = Planner::new(list, post);
    let mut text = String::new();
    let s = planner.push(rcpt, &mut text);
    let t = |a: usize, b: usize| text.get(a..b).unwrap_or_default();
    DeliveryRef {
        rcpt: t(s.start, s.rcpt_end),
        mail_from: t(s.rcpt_end, s.from_end),
        parts: [
            &planner.unsub_head,
            t(s.from_end, s.end),
            &planner.unsub_tail,
        ],
    }
    .to_delivery()
}

fn rewrite(list: &List, data: &[u8], author_policy: DmarcPolicy) -> Vec<u8> {
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
fn add_footer(raw: &mut Raw, data: &[u8], footer: &str) {
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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn qp_encode(text: &[u8]) -> Vec<u8> {
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

struct Ctx<'a> {
    now: u64,
    entropy: &'a Entropy,
    seq: u32,
}

impl Ctx<'_> {
    fn message_id(&mut self, domain: &str) -> String {
        self.seq += 1;
        format!(
            "<{}.{}.{}@{domain}>",
            self.now,
            self.entropy.id_part(),
            self.seq
        )
    }
}

fn notice(
    ctx: &mut Ctx<'_>,
    list: &List,
    from_role: &Role,
    to: &str,
    subject: &str,
    body: &str,
    attach: Option<&[u8]>,
) -> Outgoing {
    let from = list.role_address(from_role);
    let reply_to = matches!(from_role, Role::Confirm(_)).then_some(from.as_str());
    let n = Notice {
        from: &from,
        to,
        subject,
        reply_to,
        message_id: ctx.message_id(&list.domain),
        date: ctx.now,
        body,
        attach,
    };
    Outgoing {
        mail_from: String::new(),
        rcpts: alloc::vec![to.to_string()],
        data: n.to_bytes(),
    }
}

fn to_moderators(
    ctx: &mut Ctx<'_>,
    list: &List,
    subject: &str,
    body: &str,
    attach: Option<&[u8]>,
) -> Vec<Outgoing> {
    list.moderators
        .iter()
        .map(|m| {
            notice(
                ctx,
                list,
                &Role::Owner,
                &m.to_string(),
                subject,
                body,
                attach,
            )
        })
        .collect()
}

fn help_text(list: &List) -> String {
    let a = |r: Role| list.role_address(&r);
    format!(
        "This is the list {post}{desc}.\n\n\
         To post, write to {post}.\n\
         To subscribe, write to {sub}.\n\
         To unsubscribe, write to {unsub}.\n\
         For the list of subscribers, write to {subs}.\n\
         To reach the moderators, write to {owner}.\n",
        post = list.post_address(),
        desc = if list.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", list.description)
        },
        sub = a(Role::Subscribe),
        unsub = a(Role::Unsubscribe),
        subs = a(Role::Subscribers),
        owner = a(Role::Owner),
    )
}

fn is_auto(raw: &Raw) -> bool {
    raw.get("Auto-Submitted")
        .is_some_and(|f| !f.value().eq_ignore_ascii_case("no"))
        || raw.get("Precedence").is_some_and(|f| {
            matches!(
                f.value().to_ascii_lowercase().as_str(),
                "bulk" | "list" | "junk"
            )
        })
}

impl State {
    /// Whether `rcpt` is one of the addresses of a list here (for the SMTP
    /// server's RCPT answer).
    pub fn accepts(&self, rcpt: &str) -> bool {
        self.route(rcpt).is_some()
    }

    fn route(&self, rcpt: &str) -> Option<(String, Role)> {
        let a = Address::parse(rcpt).ok()?;
        let names = self
            .lists
            .values()
            .filter(|l| l.domain == a.domain())
            .map(|l| l.name.as_str());
        classify(a.local(), names).map(|(n, r)| (n.to_string(), r))
    }

    /// Decides what to do with a message to one of the lists' addresses.
    pub fn handle(&mut self, now: u64, entropy: &Entropy, input: &Incoming<'_>) -> Output {
        let Some((name, role)) = self.route(input.rcpt) else {
            return Output::reject(
                550,
                "5.1.1",
                format!("<{}>: no such list address", input.rcpt),
            );
        };
        let Some(list) = self.lists.get(&name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        if input.data.len() as u64 > list.settings.max_size {
            return Output::reject(
                552,
                "5.3.4",
                format!("message larger than {} octets", list.settings.max_size),
            );
        }
        let mut ctx = Ctx {
            now,
            entropy,
            seq: 0,
        };
        let raw = Raw::parse(input.data);
        match role {
            Role::Return { post, rcpt } => self.on_bounce(&mut ctx, &name, post, &rcpt, input.data),
            Role::Post => self.on_post(&mut ctx, &name, &raw, input),
            Role::Owner => {
                let loop_mark = list.role_address(&Role::Owner);
                if raw
                    .all("X-Loop")
                    .any(|f| f.value().eq_ignore_ascii_case(&loop_mark))
                {
                    return Output::dropped("loop on the owner address");
                }
                let mut fwd = raw.clone();
                fwd.fields.insert(
                    0,
                    crate::message::Field {
                        name: "X-Loop".into(),
                        raw: field_bytes("X-Loop", &loop_mark),
                    },
                );
                let mut out = Output::accept();
                out.send.push(Outgoing {
                    mail_from: String::new(),
                    rcpts: list.moderators.iter().map(ToString::to_string).collect(),
                    data: fwd.to_bytes(),
                });
                out.events
                    .push(Event::Answered("forwarded to the moderators"));
                out
            }
            _ => {
                // Commands: never answer bounces or automatic mail.
                if input.mail_from.is_empty() || is_auto(&raw) {
                    return Output::dropped("automatic mail to a command address");
                }
                let requester = author(input.data)
                    .map(|(a, _)| a)
                    .or_else(|| Address::parse(input.mail_from).ok());
                let Some(requester) = requester else {
                    return Output::reject(550, "5.1.7", "no usable sender address");
                };
                self.on_command(&mut ctx, &name, role, &requester, input.mail_from)
            }
        }
    }

    fn on_post(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        raw: &Raw,
        input: &Incoming<'_>,
    ) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let list_id = format!("<{}.{}>", list.name, list.domain);
        let post_addr = list.post_address();
        if raw
            .all("List-Id")
            .any(|f| f.value().to_ascii_lowercase().contains(&list_id))
            || raw
                .all("X-Loop")
                .any(|f| f.value().eq_ignore_ascii_case(&post_addr))
        {
            return Output::dropped("loop: the message already went through this list");
        }
        if input.mail_from.is_empty() {
            return Output::dropped("bounce sent to the post address");
        }
        let Some((author, _)) = author(input.data) else {
            return Output::reject(550, "5.6.0", "no usable From address");
        };
        let reason = if input.auth.dmarc_fail && input.auth.author_policy == DmarcPolicy::Reject {
            Some(HoldReason::DmarcReject)
        } else if list.is_moderator(&author) {
            None
        } else {
            match list.settings.policy {
                Policy::Open => None,
                Policy::Subscribers if list.is_subscriber(&author) => None,
                Policy::Subscribers => Some(HoldReason::NotSubscribed),
                Policy::Moderated => Some(HoldReason::Moderated),
            }
        };
        match reason {
            None => self.post(name, input.data, input.auth.author_policy),
            Some(reason) => {
                let subject = raw.get("Subject").map(|f| f.value()).unwrap_or_default();
                self.hold(
                    ctx,
                    name,
                    author,
                    subject,
                    reason,
                    input.auth.author_policy,
                    input.data,
                )
            }
        }
    }

    fn post(&mut self, name: &str, data: &[u8], policy: DmarcPolicy) -> Output {
        let Some(list) = self.lists.get_mut(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        list.counter += 1;
        let fan = plan_post(list, list.counter, data, policy);
        let mut out = Output::accept();
        out.changes.lists.insert(name.to_string());
        out.events.push(Event::Posted {
            list: name.to_string(),
            post: list.counter,
        });
        out.fanout = Some(fan);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        author: Address,
        subject: String,
        reason: HoldReason,
        author_policy: DmarcPolicy,
        data: &[u8],
    ) -> Output {
        let Some(list) = self.lists.get_mut(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let token = ctx.entropy.token();
        let blob = held_blob(&token);
        list.held.push(Held {
            token: token.clone(),
            author: author.clone(),
            subject: subject.clone(),
            reason,
            author_policy,
            expires: ctx.now + list.settings.hold_expiry,
        });
        self.blobs.insert(blob.clone(), data.to_vec());
        let list = &self.lists[name];
        let mut out = Output::accept();
        out.changes.lists.insert(name.to_string());
        out.changes.blobs_put.insert(blob);
        if reason != HoldReason::DmarcReject {
            let why = match reason {
                HoldReason::NotSubscribed => "the author is not subscribed",
                _ => "the list is moderated",
            };
            let body = format!(
                "A post to {} from {author} is held: {why}.\nSubject: {subject}\n\n\
                 To send it to the list, write to {}\nTo discard it, write to {}\n\
                 It is discarded by itself in {} days.\n",
                list.post_address(),
                list.role_address(&Role::Accept(token.clone())),
                list.role_address(&Role::Reject(token.clone())),
                list.settings.hold_expiry / 86_400,
            );
            out.send = to_moderators(
                ctx,
                list,
                &format!("Held post to {}: {subject}", list.post_address()),
                &body,
                Some(data),
            );
        }
        out.events.push(Event::Held {
            list: name.to_string(),
            token,
            reason,
        });
        out
    }

    fn on_command(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        role: Role,
        requester: &Address,
        mail_from: &str,
    ) -> Output {
        let Some(list) = self.lists.get(name) else {
            return Output::reject(550, "5.1.1", "no such list");
        };
        let to = requester.to_string();
        let mut out = Output::accept();
        let accept = matches!(role, Role::Accept(_));
        match role {
            Role::Help => {
                out.send.push(notice(
                    ctx,
                    list,
                    &Role::Help,
                    &to,
                    &format!("Help for {}", list.post_address()),
                    &help_text(list),
                    None,
                ));
                out.events.push(Event::Answered("help"));
            }
            Role::Subscribers => {
                let allowed = match list.settings.subscribers_visible {
                    Visibility::Nobody => false,
                    Visibility::Moderators => list.is_moderator(requester),
                    Visibility::Subscribers => {
                        list.is_moderator(requester) || list.is_subscriber(requester)
                    }
                };
                let body = if allowed {
                    let mut b = format!(
                        "Subscribers of {} ({}):\n",
                        list.post_address(),
                        list.subscribers.len()
                    );
                    for s in &list.subscribers {
                        b.push_str(&s.to_string());
                        b.push('\n');
                    }
                    b
                } else {
                    "The roster of this list is not available to you.\n".to_string()
                };
                out.send.push(notice(
                    ctx,
                    list,
                    &Role::Help,
                    &to,
                    &format!("Subscribers of {}", list.post_address()),
                    &body,
                    None,
                ));
                out.events.push(Event::Answered(if allowed {
                    "roster"
                } else {
                    "roster refused"
                }));
            }
            Role::Subscribe | Role::Unsubscribe => {
                let change = if role == Role::Subscribe {
                    Change::Subscribe
                } else {
                    Change::Unsubscribe
                };
                let member = list.is_subscriber(requester);
                if (change == Change::Subscribe) == member {
                    let text = if member {
                        format!("{to} is already subscribed to {}.\n", list.post_address())
                    } else {
                        format!("{to} is not subscribed to {}.\n", list.post_address())
                    };
                    out.send.push(notice(
                        ctx,
                        list,
                        &Role::Help,
                        &to,
                        &format!("Your request to {}", list.post_address()),
                        &text,
                        None,
                    ));
                    out.events.push(Event::Answered("nothing to change"));
                    return out;
                }
                let token = ctx.entropy.token();
                let expires = ctx.now + list.settings.confirm_expiry;
                let confirm = Role::Confirm(token.clone());
                let what = if change == Change::Subscribe {
                    "subscribe to"
                } else {
                    "unsubscribe from"
                };
                let body = format!(
                    "Someone, maybe you, asked to {what} {} for {to}.\n\n\
                     To confirm, reply to this message, or write to {}.\n\
                     If you did not ask, ignore this message: nothing changes.\n",
                    list.post_address(),
                    list.role_address(&confirm),
                );
                let subject = format!("Confirm: {what} {} ({token})", list.post_address());
                out.send
                    .push(notice(ctx, list, &confirm, &to, &subject, &body, None));
                let _ = mail_from;
                let Some(list) = self.lists.get_mut(name) else {
                    return out;
                };
                list.pending.retain(|p| {
                    !(p.address == *requester
                        && p.change == change
                        && p.stage == Stage::Confirmation)
                });
                list.pending.push(Pending {
                    token: token.clone(),
                    address: requester.clone(),
                    change,
                    stage: Stage::Confirmation,
                    expires,
                });
                out.changes.lists.insert(name.to_string());
                out.events.push(Event::Pending {
                    list: name.to_string(),
                    token,
                    stage: Stage::Confirmation,
                });
            }
            Role::Confirm(token) => {
                let found = list.pending.iter().position(|p| {
                    p.token == token && p.stage == Stage::Confirmation && p.expires > ctx.now
                });
                let Some(i) = found else {
                    out.send.push(notice(
                        ctx,
                        list,
                        &Role::Help,
                        &to,
                        "Unknown or expired confirmation",
                        "This confirmation is unknown or has expired; please ask again.\n",
                        None,
                    ));
                    out.events.push(Event::Answered("unknown token"));
                    return out;
                };
                let moderated = list.settings.subscription_moderated;
                let hold_expiry = list.settings.hold_expiry;
                let Some(list) = self.lists.get_mut(name) else {
                    return out;
                };
                let mut p = list.pending.remove(i);
                out.changes.lists.insert(name.to_string());
                if p.change == Change::Subscribe && moderated {
                    p.stage = Stage::Moderator;
                    p.expires = ctx.now + hold_expiry;
                    let token = p.token.clone();
                    let addr = p.address.clone();
                    list.pending.push(p);
                    let list = &self.lists[name];
                    let body = format!(
                        "{addr} asks to join {} and confirmed the address.\n\n\
                         To accept, write to {}\nTo refuse, write to {}\n",
                        list.post_address(),
                        list.role_address(&Role::Accept(token.clone())),
                        list.role_address(&Role::Reject(token.clone())),
                    );
                    out.send = to_moderators(
                        ctx,
                        list,
                        &format!("Subscription request for {}: {addr}", list.post_address()),
                        &body,
                        None,
                    );
                    out.send.push(notice(
                        ctx,
                        list,
                        &Role::Help,
                        &addr.to_string(),
                        &format!("Your subscription to {}", list.post_address()),
                        "Your address is confirmed; a moderator will now review the request.\n",
                        None,
                    ));
                    out.events.push(Event::Pending {
                        list: name.to_string(),
                        token,
                        stage: Stage::Moderator,
                    });
                } else {
                    out.merge_from(self.apply_change(ctx, name, p.change, &p.address));
                }
            }
            Role::Accept(token) | Role::Reject(token) => {
                if !list.is_moderator(requester)
                    && !Address::parse(mail_from).is_ok_and(|a| list.is_moderator(&a))
                {
                    return Output::dropped("accept/reject from someone who is not a moderator");
                }
                if let Some(i) = list.held.iter().position(|h| h.token == token) {
                    let Some(list) = self.lists.get_mut(name) else {
                        return out;
                    };
                    let h = list.held.remove(i);
                    let blob = held_blob(&h.token);
                    let data = self.blobs.remove(&blob);
                    out.changes.lists.insert(name.to_string());
                    out.changes.blobs_removed.insert(blob);
                    match (accept, data) {
                        (true, Some(data)) => {
                            let mut posted = self.post(name, &data, h.author_policy);
                            posted.changes.merge(core::mem::take(&mut out.changes));
                            return posted;
                        }
                        _ => out.events.push(Event::Dropped {
                            reason: "held post rejected by a moderator",
                        }),
                    }
                } else if let Some(i) = list
                    .pending
                    .iter()
                    .position(|p| p.token == token && p.stage == Stage::Moderator)
                {
                    let Some(list) = self.lists.get_mut(name) else {
                        return out;
                    };
                    let p = list.pending.remove(i);
                    out.changes.lists.insert(name.to_string());
                    if accept {
                        out.merge_from(self.apply_change(ctx, name, p.change, &p.address));
                    } else {
                        let list = &self.lists[name];
                        out.send.push(notice(
                            ctx,
                            list,
                            &Role::Help,
                            &p.address.to_string(),
                            &format!("Your subscription to {}", list.post_address()),
                            "A moderator declined your subscription request.\n",
                            None,
                        ));
                        out.events.push(Event::Answered("subscription declined"));
                    }
                } else {
                    out.send.push(notice(
                        ctx,
                        list,
                        &Role::Help,
                        &to,
                        "Unknown or expired token",
                        "Nothing waits under this token (already decided, or expired).\n",
                        None,
                    ));
                    out.events.push(Event::Answered("unknown token"));
                }
            }
            Role::Post | Role::Owner | Role::Return { .. } => {}
        }
        out
    }

    fn apply_change(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        change: Change,
        address: &Address,
    ) -> Output {
        let mut out = Output::accept();
        let Some(list) = self.lists.get_mut(name) else {
            return out;
        };
        out.changes.lists.insert(name.to_string());
        let (subject, body, event) = match change {
            Change::Subscribe => {
                list.subscribers.insert(address.clone());
                (
                    "Welcome",
                    format!("Welcome to {}.\n\n{}", list.post_address(), help_text(list)),
                    Event::Subscribed(address.clone()),
                )
            }
            Change::Unsubscribe => {
                list.subscribers.remove(address);
                (
                    "Goodbye",
                    format!(
                        "{address} is no longer subscribed to {}.\n",
                        list.post_address()
                    ),
                    Event::Unsubscribed(address.clone()),
                )
            }
        };
        if let Some(b) = self.bounces.get_mut(name)
            && b.remove(address.key()).is_some()
        {
            out.changes.bounces = true;
        }
        let list = &self.lists[name];
        out.send.push(notice(
            ctx,
            list,
            &Role::Help,
            &address.to_string(),
            &format!("{subject}: {}", list.post_address()),
            &body,
            None,
        ));
        out.events.push(event);
        out
    }

    fn on_bounce(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        post: u64,
        rcpt: &Address,
        data: &[u8],
    ) -> Output {
        let severity = match parse_dsn(data) {
            Some(reports) => {
                // The VERP address names the subscriber; the report says how bad.
                let mut worst = Severity::None;
                for r in &reports {
                    match r.severity() {
                        Severity::Hard => worst = Severity::Hard,
                        Severity::Soft if worst == Severity::None => worst = Severity::Soft,
                        _ => {}
                    }
                }
                worst
            }
            // Not a DSN (an autoresponder, a non-standard bounce): counted as soft.
            None => Severity::Soft,
        };
        if severity == Severity::None {
            return Output::dropped("delivery report without a failure");
        }
        self.count_bounce(ctx, name, post, rcpt, severity)
    }

    fn count_bounce(
        &mut self,
        ctx: &mut Ctx<'_>,
        name: &str,
        post: u64,
        rcpt: &Address,
        severity: Severity,
    ) -> Output {
        let mut out = Output::accept();
        let Some(list) = self.lists.get(name) else {
            return out;
        };
        if !list.is_subscriber(rcpt) {
            out.events.push(Event::Dropped {
                reason: "bounce for an address that is not subscribed",
            });
            return out;
        }
        let s = &list.settings;
        let (hard, soft, half, threshold) = (
            s.bounce_hard,
            s.bounce_soft,
            s.bounce_half_life,
            s.bounce_threshold,
        );
        let records = self.bounces.entry(name.to_string()).or_default();
        let rec = records
            .entry(rcpt.key().to_string())
            .or_insert(BounceRecord {
                score: 0.0,
                updated: ctx.now,
                last_post: 0,
            });
        if rec.last_post == post && post != 0 {
            out.events.push(Event::Dropped {
                reason: "this post's bounce already counted",
            });
            return out;
        }
        rec.score = decayed(rec.score, rec.updated, ctx.now, half)
            + if severity == Severity::Hard {
                hard
            } else {
                soft
            };
        rec.updated = ctx.now;
        rec.last_post = post;
        let score = rec.score;
        out.changes.bounces = true;
        out.events.push(Event::Bounce {
            rcpt: rcpt.clone(),
            score,
        });
        // As shown (two decimals): five hard bounces in a row reach a
        // threshold of 5 even though the first have decayed a little.
        if score + 0.005 >= threshold {
            records.remove(rcpt.key());
            let Some(list) = self.lists.get_mut(name) else {
                return out;
            };
            list.subscribers.remove(rcpt);
            out.changes.lists.insert(name.to_string());
            let list = &self.lists[name];
            let body = format!(
                "{rcpt} was removed from {}: its bounce score reached {score:.2} (threshold {threshold}).\n",
                list.post_address()
            );
            out.send = to_moderators(
                ctx,
                list,
                &format!("{rcpt} removed from {} for bounces", list.post_address()),
                &body,
                None,
            );
            out.events.push(Event::RemovedForBounces(rcpt.clone()));
        }
        out
    }

    /// A subscriber's bounce score now (decayed).
    pub fn bounce_score(&self, list: &str, rcpt: &Address, now: u64) -> f64 {
        let half = self
            .lists
            .get(list)
            .map_or(7 * 86_400, |l| l.settings.bounce_half_life);
        self.bounces
            .get(list)
            .and_then(|m| m.get(rcpt.key()))
            .map_or(0.0, |r| decayed(r.score, r.updated, now, half))
    }

    /// Feeds back the result of delivering post `post` of `list` to `rcpt`.
    /// `common` is the post's shared bytes ([`FanOut::common`], or the
    /// `tmp/` file for a retry); it is kept in `tmp/` while retries wait.
    #[allow(clippy::too_many_arguments)]
    pub fn delivery_result(
        &mut self,
        now: u64,
        entropy: &Entropy,
        list: &str,
        post: u64,
        rcpt: &Address,
        result: DeliveryResult,
        common: &[u8],
    ) -> Output {
        let mut ctx = Ctx {
            now,
            entropy,
            seq: 0,
        };
        let mut out = Output::accept();
        let at = self
            .queue
            .iter()
            .position(|r| r.list == list && r.post == post && r.rcpt == *rcpt);
        let Some(settings) = self.lists.get(list).map(|l| l.settings.clone()) else {
            return out;
        };
        match result {
            DeliveryResult::Delivered => {
                if let Some(i) = at {
                    self.queue.remove(i);
                    out.changes.queue = true;
                }
            }
            DeliveryResult::Permanent(_) => {
                if let Some(i) = at {
                    self.queue.remove(i);
                    out.changes.queue = true;
                }
                let c = out.changes.clone();
                out = self.count_bounce(&mut ctx, list, post, rcpt, Severity::Hard);
                out.changes.merge(c);
            }
            DeliveryResult::Temporary(error) => {
                let entry = match at {
                    Some(i) => &mut self.queue[i],
                    None => {
                        self.queue.push(Retry {
                            list: list.to_string(),
                            post,
                            rcpt: rcpt.clone(),
                            attempts: 0,
                            next: now,
                            deadline: now + settings.retry_deadline,
                            last_error: String::new(),
                        });
                        let blob = post_blob(list, post);
                        if !self.blobs.contains_key(&blob) {
                            self.blobs.insert(blob.clone(), common.to_vec());
                            out.changes.blobs_put.insert(blob);
                        }
                        let n = self.queue.len() - 1;
                        &mut self.queue[n]
                    }
                };
                entry.attempts += 1;
                entry.last_error = error;
                let delay = settings
                    .retry_first
                    .saturating_mul(1u64 << (entry.attempts - 1).min(30))
                    .min(settings.retry_max);
                entry.next = now + delay;
                out.changes.queue = true;
                if entry.next > entry.deadline {
                    let i = at.unwrap_or(self.queue.len() - 1);
                    self.queue.remove(i);
                    out.events
                        .push(Event::Expired(format!("retries of post {post} to {rcpt}")));
                    let c = out.changes.clone();
                    let ev = out.events.clone();
                    out = self.count_bounce(&mut ctx, list, post, rcpt, Severity::Hard);
                    out.changes.merge(c);
                    out.events.splice(0..0, ev);
                } else {
                    out.events.push(Event::Queued {
                        rcpt: rcpt.clone(),
                        next: entry.next,
                    });
                }
            }
        }
        self.gc_blob(list, post, &mut out.changes);
        out
    }

    fn gc_blob(&mut self, list: &str, post: u64, changes: &mut Changes) {
        let blob = post_blob(list, post);
        if self.blobs.contains_key(&blob)
            && !self.queue.iter().any(|r| r.list == list && r.post == post)
        {
            self.blobs.remove(&blob);
            changes.blobs_put.remove(&blob);
            changes.blobs_removed.insert(blob);
        }
    }

    /// Retries due at `now`: each with its delivery (VERP, per-subscriber
    /// header) and the `tmp/` file holding the shared bytes.
    pub fn due_retries(&self, now: u64) -> Vec<(Retry, Delivery)> {
        self.queue
            .iter()
            .filter(|r| r.next <= now)
            .filter_map(|r| {
                let list = self.lists.get(&r.list)?;
                Some((r.clone(), delivery_for(list, r.post, &r.rcpt)))
            })
            .collect()
    }

    /// When [`State::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Option<u64> {
        let q = self.queue.iter().map(|r| r.next.min(r.deadline));
        let l = self.lists.values().flat_map(|l| {
            l.pending
                .iter()
                .map(|p| p.expires)
                .chain(l.held.iter().map(|h| h.expires))
        });
        q.chain(l).min()
    }

    /// Drops expired pending requests and held posts (and their `tmp/`
    /// files), and gives up retries past their deadline (counted as hard
    /// bounces).
    pub fn handle_timeout(&mut self, now: u64, entropy: &Entropy) -> Output {
        let mut ctx = Ctx {
            now,
            entropy,
            seq: 0,
        };
        let mut out = Output::accept();
        for (name, list) in self.lists.iter_mut() {
            let before = (list.pending.len(), list.held.len());
            list.pending.retain(|p| {
                let keep = p.expires > now;
                if !keep {
                    out.events.push(Event::Expired(format!(
                        "pending request of {} on {name}",
                        p.address
                    )));
                }
                keep
            });
            let mut gone = Vec::new();
            list.held.retain(|h| {
                let keep = h.expires > now;
                if !keep {
                    gone.push(held_blob(&h.token));
                }
                keep
            });
            for b in gone {
                self.blobs.remove(&b);
                out.events
                    .push(Event::Expired(format!("held post {b} on {name}")));
                out.changes.blobs_removed.insert(b);
            }
            if before != (list.pending.len(), list.held.len()) {
                out.changes.lists.insert(name.clone());
            }
        }
        let expired: Vec<Retry> = self
            .queue
            .iter()
            .filter(|r| r.deadline <= now)
            .cloned()
            .collect();
        if !expired.is_empty() {
            self.queue.retain(|r| r.deadline > now);
            out.changes.queue = true;
        }
        for r in expired {
            out.events.push(Event::Expired(format!(
                "retries of post {} to {}",
                r.post, r.rcpt
            )));
            let o = self.count_bounce(&mut ctx, &r.list, r.post, &r.rcpt, Severity::Hard);
            out.merge_from(o);
            let mut c = Changes::default();
            self.gc_blob(&r.list, r.post, &mut c);
            out.changes.merge(c);
        }
        out
    }

    /// RFC 8058 one-click unsubscription (the HTTPS POST the web front end
    /// receives): checks the token and removes the address, no confirmation.
    pub fn one_click(
        &mut self,
        now: u64,
        entropy: &Entropy,
        list: &str,
        address: &str,
        token: &str,
    ) -> Result<Output, ListError> {
        let l = self
            .lists
            .get(list)
            .ok_or_else(|| ListError::Unknown(list.to_string()))?;
        let a = Address::parse(address)?;
        let want = one_click_token(l, &a);
        if !ct_eq(want.as_bytes(), token.as_bytes()) {
            let mut o = Output::reject(403, "5.7.1", "bad one-click token");
            o.events.push(Event::Dropped {
                reason: "bad one-click token",
            });
            return Ok(o);
        }
        if !l.is_subscriber(&a) {
            return Ok(Output::dropped(
                "one-click for an address that is not subscribed",
            ));
        }
        let mut ctx = Ctx {
            now,
            entropy,
            seq: 0,
        };
        Ok(self.apply_change(&mut ctx, list, Change::Unsubscribe, &a))
    }

    // ----- administration (the `ptt` verbs) -----

    /// Creates a list (`ptt add`).
    pub fn create_list(
        &mut self,
        name: &str,
        domain: &str,
        secret: &[u8],
        moderators: &[Address],
        policy: Policy,
    ) -> Result<Changes, ListError> {
        check_list_name(name)?;
        crate::address::check_domain(domain).map_err(|why| ListError::Domain {
            input: domain.to_string(),
            why,
        })?;
        if self.lists.contains_key(name) {
            return Err(ListError::Exists(name.to_string()));
        }
        if moderators.is_empty() {
            return Err(ListError::LastModerator(name.to_string()));
        }
        let mut l = List::new(name, domain, secret);
        l.settings.policy = policy;
        l.settings.one_click_url = Some(format!("https://{}/lists/unsubscribe", l.domain));
        l.moderators.extend(moderators.iter().cloned());
        self.lists.insert(name.to_string(), l);
        Ok(Changes {
            lists: BTreeSet::from([name.to_string()]),
            bounces: true,
            ..Changes::default()
        })
    }

    /// The list `name` on `domain` (when given), for changing.
    pub fn list_mut(&mut self, name: &str, domain: Option<&str>) -> Result<&mut List, ListError> {
        match self.lists.get_mut(name) {
            Some(l) if domain.is_none_or(|d| d.eq_ignore_ascii_case(&l.domain)) => Ok(l),
            _ => Err(ListError::Unknown(name.to_string())),
        }
    }

    /// Adds moderators; returns how many were new.
    pub fn add_moderators(
        &mut self,
        name: &str,
        domain: Option<&str>,
        who: &[Address],
    ) -> Result<(usize, Changes), ListError> {
        let l = self.list_mut(name, domain)?;
        let n = who
            .iter()
            .filter(|a| l.moderators.insert((*a).clone()))
            .count();
        Ok((
            n,
            Changes {
                lists: BTreeSet::from([name.to_string()]),
                ..Changes::default()
            },
        ))
    }

    /// Removes moderators (never the last one).
    pub fn remove_moderators(
        &mut self,
        name: &str,
        domain: Option<&str>,
        who: &[Address],
    ) -> Result<Changes, ListError> {
        let l = self.list_mut(name, domain)?;
        for a in who {
            if !l.moderators.contains(a) {
                return Err(ListError::NotModerator {
                    list: name.to_string(),
                    address: a.to_string(),
                });
            }
        }
        if who.iter().collect::<BTreeSet<_>>().len() >= l.moderators.len() {
            return Err(ListError::LastModerator(name.to_string()));
        }
        for a in who {
            l.moderators.remove(a);
        }
        Ok(Changes {
            lists: BTreeSet::from([name.to_string()]),
            ..Changes::default()
        })
    }

    /// Subscribes or unsubscribes addresses directly (an administrator's
    /// act, no confirmation); returns how many changed.
    pub fn set_subscribed(
        &mut self,
        name: &str,
        domain: Option<&str>,
        who: &[Address],
        subscribed: bool,
    ) -> Result<(usize, Changes), ListError> {
        let l = self.list_mut(name, domain)?;
        let n = who
            .iter()
            .filter(|a| {
                if subscribed {
                    l.subscribers.insert((*a).clone())
                } else {
                    l.subscribers.remove(*a)
                }
            })
            .count();
        let mut c = Changes {
            lists: BTreeSet::from([name.to_string()]),
            ..Changes::default()
        };
        if !subscribed && let Some(b) = self.bounces.get_mut(name) {
            for a in who {
                c.bounces |= b.remove(a.key()).is_some();
            }
        }
        Ok((n, c))
    }
}

impl Output {
    fn merge_from(&mut self, other: Output) {
        if other.reply != Reply::Accept {
            self.reply = other.reply;
        }
        self.send.extend(other.send);
        if other.fanout.is_some() {
            self.fanout = other.fanout;
        }
        self.changes.merge(other.changes);
        self.events.extend(other.events);
    }
}

fn decayed(score: f64, since: u64, now: u64, half_life: u64) -> f64 {
    if now <= since || half_life == 0 {
        return score;
    }
    let halvings = (now - since) as f64 / half_life as f64;
    score * libm_exp2(-halvings)
}

fn libm_exp2(x: f64) -> f64 {
    x.exp2()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn percent_encode_into_matches_percent_encode(s in "\\PC{0,24}") {
            let mut out = String::from("x");
            percent_encode_into(&s, &mut out);
            prop_assert_eq!(out, format!("x{}", percent_encode(&s)));
        }
    }

    /// The plan and the retry path make the same deliveries, in domain
    /// order, and the tokens are the ones `one_click` checks.
    #[test]
    fn plan_matches_delivery_for() {
        let mut l = List::new("ptt-dev", "lists.example", &[9; 32]);
        for a in [
            "Bob@example.net",
            "a+tag@other.example",
            "carol@example.net",
            "d@z.example",
        ] {
            l.subscribers.insert(Address::parse(a).unwrap());
        }
        for url in [None, Some("https://lists.example/u?x=1")] {
            l.settings.one_click_url = url.map(String::from);
            let fan = plan_post(&l, 4, b"Subject: s\r\n\r\nbody\r\n", DmarcPolicy::Absent);
            assert_eq!(fan.len(), 4);
            let got: Vec<Delivery> = fan.deliveries().map(|d| d.to_delivery()).collect();
            let want: Vec<Delivery> = l
                .subscribers
                .iter()
                .map(|a| delivery_for(&l, 4, a))
                .collect();
            assert_eq!(got, want);
            let batches: Vec<(&str, Vec<&str>)> = fan
                .batches()
                .map(|b| (b.domain, b.deliveries().map(|d| d.rcpt).collect()))
                .collect();
            assert_eq!(
                batches,
                [
                    ("example.net", vec!["Bob@example.net", "carol@example.net"]),
                    ("other.example", vec!["a+tag@other.example"]),
                    ("z.example", vec!["d@z.example"]),
                ]
            );
            let d = fan.get(2).unwrap();
            assert_eq!(
                d.mail_from,
                "ptt-dev-return-4-a+tag=other.example@lists.example"
            );
            let header = String::from_utf8(d.header()).unwrap();
            let token = one_click_token(&l, &Address::parse("A+TAG@other.example").unwrap());
            match url {
                Some(_) => assert_eq!(
                    header,
                    format!(
                        "List-Unsubscribe: <https://lists.example/u?x=1&list=ptt-dev&address=a%2Btag%40other.example&token={token}>,\r\n <mailto:ptt-dev-unsubscribe@lists.example?subject=unsubscribe>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
                    )
                ),
                None => assert_eq!(
                    header,
                    "List-Unsubscribe: <mailto:ptt-dev-unsubscribe@lists.example?subject=unsubscribe>\r\n"
                ),
            }
            let msg = fan.message(&d);
            assert!(msg.starts_with(header.as_bytes()));
            assert!(msg.ends_with(&fan.common));
            assert_eq!(msg.len(), header.len() + fan.common.len());
        }
    }
}
