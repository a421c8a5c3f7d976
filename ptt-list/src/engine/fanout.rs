//! One post to every subscriber: the rewritten message once, and per
//! subscriber only what differs (address, VERP return path, one-click
//! token), grouped by domain; and one delivery rebuilt for a retry.

use super::*;

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
pub(super) fn percent_encode_into(s: &str, out: &mut String) {
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
