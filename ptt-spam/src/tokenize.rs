//! The tokenizer: a raw message in, a set of 64-bit token hashes out.
//!
//! MIME structure, transfer encodings and charsets are decoded by
//! [`mail_parser`]; HTML is reduced to text by its `html_to_text`. On the
//! decoded text this module finds:
//!
//! - body words (lower-cased; CJK ideographs one per word) and their
//!   orthogonal sparse bigrams: each word paired with the word before it
//!   (OSB window 2, the default; up to 5, each word with the 4 before it,
//!   the distance kept);
//! - URLs in text and HTML: `url:HOST` and each parent domain;
//! - selected headers as prefixed tokens: `subj:`, `from:`, `to:`, `rcvd:`
//!   (Received hosts), `ct:` (content types), `cs:` (charsets), `xm:`
//!   (X-Mailer / User-Agent), `mid:` (Message-ID domain), `h:` (other header
//!   values), `hn:` (names of the headers present);
//! - attachments: `att:EXT`, and names with an executable or script
//!   extension, which decide the verdict on their own (see
//!   [`crate::Classification::dangerous_attachment`]).
//!
//! Work is bounded by [`Limits`]: bytes given to the MIME parser, bytes of
//! decoded text examined per part, parts, headers, and tokens emitted.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use mail_parser::{
    Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType,
};

use crate::hash::{hash_bytes, pair};
use crate::{DEFAULT_OSB_WINDOW, MAX_OSB_WINDOW};

/// Bounds on the work done for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the raw message given to the MIME parser; the rest is only
    /// scanned for attachment names.
    pub max_message_bytes: usize,
    /// Bytes of decoded text examined per part (and per header value).
    pub max_part_bytes: usize,
    /// MIME parts examined.
    pub max_parts: usize,
    /// Header fields examined per part.
    pub max_headers: usize,
    /// Tokens emitted (before deduplication); the rest are dropped.
    pub max_tokens: usize,
    /// Longest word kept, in bytes (longer runs are base64 or noise).
    pub max_word_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1 << 20,
            max_part_bytes: 128 << 10,
            max_parts: 64,
            max_headers: 128,
            max_tokens: 30_000,
            max_word_bytes: 40,
        }
    }
}

/// The tokens of one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tokens {
    /// Distinct token hashes, in the order first seen.
    pub(crate) hashes: Vec<u64>,
    /// Hash → readable token, when the tokenizer explains (sorted by hash).
    pub(crate) names: Vec<(u64, String)>,
    /// Attachment names with an executable or script extension.
    pub(crate) dangerous: Vec<String>,
    /// Whether a limit cut the work short.
    pub(crate) truncated: bool,
}

impl Tokens {
    /// Keeps only the tokens whose readable name `keep` accepts; names are
    /// recorded when the tokenizer [explains](Tokenizer::explain), and
    /// without them nothing is dropped. For measuring what a family of
    /// tokens is worth (`examples/crossval.rs --ablation`).
    ///
    /// ```
    /// use ptt_spam::Tokenizer;
    /// let msg = b"Subject: cheap pills\r\n\r\nbuy now\r\n";
    /// let mut t = Tokenizer::default().explain(true).tokenize(msg);
    /// let all = t.hashes().len();
    /// t.retain_named(|name| !name.starts_with("subj:"));
    /// assert_eq!(t.hashes().len(), all - 2);
    /// ```
    pub fn retain_named(&mut self, keep: impl Fn(&str) -> bool) {
        let dropped: alloc::collections::BTreeSet<u64> = self
            .names
            .iter()
            .filter(|(_, name)| !keep(name))
            .map(|(h, _)| *h)
            .collect();
        self.hashes.retain(|h| !dropped.contains(h));
        self.names.retain(|(h, _)| !dropped.contains(h));
    }

    /// The distinct token hashes, in the order the message first yields
    /// them (what [`crate::TokenDb::train`] takes).
    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    /// The readable form of a token, when the tokenizer was built with
    /// [`Tokenizer::explain`].
    pub fn name(&self, hash: u64) -> Option<&str> {
        self.names
            .binary_search_by_key(&hash, |(h, _)| *h)
            .ok()
            .and_then(|i| self.names.get(i))
            .map(|(_, n)| n.as_str())
    }

    /// Attachment names with an executable or script extension.
    pub fn dangerous_attachments(&self) -> &[String] {
        &self.dangerous
    }

    /// Whether a [`Limits`] bound cut the tokenizing short.
    pub fn truncated(&self) -> bool {
        self.truncated
    }
}

/// Extensions of attachments that run code when opened: a message carrying
/// one is spam whatever its words (the rule of the original filter).
pub const DANGEROUS_EXTENSIONS: &[&str] = &[
    "exe",
    "com",
    "scr",
    "pif",
    "bat",
    "cmd",
    "cpl",
    "msi",
    "msp",
    "vbs",
    "vbe",
    "js",
    "jse",
    "wsf",
    "wsh",
    "hta",
    "jar",
    "lnk",
    "reg",
    "ps1",
    "scf",
    "chm",
    "dll",
    "sys",
    "gadget",
    "application",
    "msc",
    "inf",
    "vb",
    "ws",
    "psc1",
    "appx",
    "iso",
    "img",
];

/// Whether `name` ends in one of [`DANGEROUS_EXTENSIONS`] (case-insensitive).
pub fn is_dangerous_name(name: &str) -> bool {
    has_extension(name, DANGEROUS_EXTENSIONS.iter().copied())
}

/// Whether `name` (trimmed of trailing dots, spaces and quotes) has a stem
/// and ends in one of `extensions` (case-insensitive).
fn has_extension<'a>(name: &str, mut extensions: impl Iterator<Item = &'a str>) -> bool {
    let name = name.trim().trim_end_matches(['.', ' ', '"']);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => extensions.any(|d| d.eq_ignore_ascii_case(ext)),
        _ => false,
    }
}

const SEED_BODY: u64 = 0x626f_6479; // "body"

/// Turns raw messages into [`Tokens`].
#[derive(Debug, Clone)]
pub struct Tokenizer {
    limits: Limits,
    explain: bool,
    osb_window: usize,
    parser: MessageParser,
    /// Lower-case extensions of attachments that run code when opened.
    dangerous: alloc::sync::Arc<[String]>,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Tokenizer {
    /// A tokenizer with the given limits.
    pub fn new(limits: Limits) -> Self {
        Tokenizer {
            limits,
            explain: false,
            osb_window: DEFAULT_OSB_WINDOW,
            parser: MessageParser::new()
                .with_mime_headers()
                .with_address_headers()
                .header_text(HeaderName::Subject),
            dangerous: DANGEROUS_EXTENSIONS
                .iter()
                .map(|e| String::from(*e))
                .collect(),
        }
    }

    /// Sets the extensions that make an attachment dangerous (without the
    /// dot, any case), instead of [`DANGEROUS_EXTENSIONS`].
    ///
    /// ```
    /// use ptt_spam::Tokenizer;
    /// let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
    ///   Content-Type: application/octet-stream; name=\"run.xyz\"\r\n\r\nAA\r\n--b--\r\n";
    /// assert!(Tokenizer::default().tokenize(msg).dangerous_attachments().is_empty());
    /// let t = Tokenizer::default().dangerous_extensions(&["xyz"]).tokenize(msg);
    /// assert_eq!(t.dangerous_attachments(), ["run.xyz"]);
    /// ```
    pub fn dangerous_extensions(mut self, extensions: &[&str]) -> Self {
        self.dangerous = extensions
            .iter()
            .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
            .collect();
        self
    }

    /// Also keep the readable form of each token, for explaining verdicts
    /// (slower; off by default).
    pub fn explain(mut self, on: bool) -> Self {
        self.explain = on;
        self
    }

    /// Sets the OSB window: each body word is paired with each of the
    /// `window - 1` words before it (1: words alone; 2, the default; at
    /// most 5). A database must be classified with the window it was
    /// trained with: pairs of a wider window are unknown to it.
    ///
    /// ```
    /// use ptt_spam::Tokenizer;
    /// let msg = b"Subject: x\r\n\r\none two three four five six\r\n";
    /// let wide = Tokenizer::default().osb_window(5).tokenize(msg).hashes().len();
    /// let narrow = Tokenizer::default().tokenize(msg).hashes().len(); // window 2
    /// assert_eq!(wide - narrow, 4 + 3 + 2); // the pairs at distances 2, 3 and 4
    /// ```
    pub fn osb_window(mut self, window: usize) -> Self {
        self.osb_window = window.clamp(1, MAX_OSB_WINDOW);
        self
    }

    /// The OSB window in force (see [`Tokenizer::osb_window`]).
    pub fn osb_window_size(&self) -> usize {
        self.osb_window
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Tokenizes one raw message (RFC 5322 bytes, with or without an mbox
    /// `From ` line). Never fails: garbage yields the tokens it has.
    pub fn tokenize(&self, raw: &[u8]) -> Tokens {
        let mut raw = raw;
        if raw.starts_with(b"From ") {
            raw = match memchr::memchr(b'\n', raw) {
                Some(i) => &raw[i + 1..],
                None => &[],
            };
        }
        let (head, tail) = raw.split_at(raw.len().min(self.limits.max_message_bytes));
        let mut sink = Sink::new(self.limits, self.explain, self.osb_window - 1);
        sink.dangerous_ext = self.dangerous.clone();
        if !tail.is_empty() {
            sink.truncated = true;
            scan_attachment_names(tail, &mut sink);
        }
        match self.parser.parse(head) {
            Some(message) => sink.message(&message, 0),
            None => {
                let text = String::from_utf8_lossy(head);
                sink.body(clip(&text, self.limits.max_part_bytes));
            }
        }
        sink.finish()
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Sink {
    limits: Limits,
    explain: bool,
    /// Distinct hashes, in the order first seen.
    raw: Vec<u64>,
    /// The hashes of `raw` as an open-addressing set (0: empty), at most
    /// half full: a message repeats most of its tokens, and a probe in this
    /// small table costs less than sorting them all to drop the repeats.
    seen: Vec<u64>,
    /// Tokens emitted, repeats included (what [`Limits::max_tokens`] bounds).
    emitted: usize,
    names: Vec<(u64, String)>,
    dangerous: Vec<String>,
    /// The extensions that make an attachment dangerous.
    dangerous_ext: alloc::sync::Arc<[String]>,
    truncated: bool,
    parts: usize,
    word: String,
    /// How many of the words before a body word it is paired with (0..=4).
    pairs: usize,
    /// Hashes (and, explaining, words) of the last 4 body words.
    window: [u64; 4],
    window_words: [String; 4],
    window_len: usize,
}

impl Sink {
    fn new(limits: Limits, explain: bool, pairs: usize) -> Self {
        Sink {
            limits,
            explain,
            pairs: pairs.min(4),
            raw: Vec::with_capacity(2048),
            seen: alloc::vec![0; 4096],
            emitted: 0,
            names: Vec::new(),
            dangerous: Vec::new(),
            dangerous_ext: alloc::sync::Arc::from(Vec::new()),
            truncated: false,
            parts: 0,
            word: String::with_capacity(64),
            window: [0; 4],
            window_words: Default::default(),
            window_len: 0,
        }
    }

    fn is_dangerous(&self, name: &str) -> bool {
        has_extension(name, self.dangerous_ext.iter().map(String::as_str))
    }

    fn full(&mut self) -> bool {
        if self.emitted >= self.limits.max_tokens {
            self.truncated = true;
            true
        } else {
            false
        }
    }

    #[inline]
    fn push(&mut self, hash: u64) {
        if self.emitted >= self.limits.max_tokens {
            self.truncated = true;
            return;
        }
        self.emitted += 1;
        if hash != 0 && self.insert(hash) {
            self.raw.push(hash);
        }
    }

    /// Adds `hash` (not 0) to the set; whether it was new.
    #[inline]
    fn insert(&mut self, hash: u64) -> bool {
        if (self.raw.len() + 1) * 2 > self.seen.len() {
            let capacity = (self.seen.len() * 2).max(64);
            self.seen = alloc::vec![0; capacity];
            let raw = core::mem::take(&mut self.raw);
            for &h in &raw {
                self.insert_unchecked(h);
            }
            self.raw = raw;
        }
        self.insert_unchecked(hash)
    }

    /// [`Sink::insert`] into a set known to have room.
    #[inline]
    fn insert_unchecked(&mut self, hash: u64) -> bool {
        let mask = self.seen.len() - 1;
        let mut i = (hash as usize) & mask;
        while let Some(slot) = self.seen.get_mut(i) {
            if *slot == hash {
                return false;
            }
            if *slot == 0 {
                *slot = hash;
                return true;
            }
            i = (i + 1) & mask;
        }
        false
    }

    fn push_named(&mut self, hash: u64, name: impl FnOnce() -> String) {
        if self.explain && self.emitted < self.limits.max_tokens {
            self.names.push((hash, name()));
        }
        self.push(hash);
    }

    /// A prefixed token: `prefix` + `value` as one token.
    fn tag(&mut self, prefix: &str, value: &str) {
        let seed = hash_bytes(0, prefix.as_bytes());
        let h = hash_bytes(seed, value.as_bytes());
        self.push_named(h, || alloc::format!("{prefix}{value}"));
    }

    /// Each word of `text` as a prefixed token (no bigrams).
    fn tag_words(&mut self, prefix: &str, text: &str) {
        let seed = hash_bytes(0, prefix.as_bytes());
        let text = clip(text, self.limits.max_part_bytes);
        let mut word = core::mem::take(&mut self.word);
        for_each_word(text, self.limits.max_word_bytes, &mut word, |w| {
            let h = hash_bytes(seed, w.as_bytes());
            self.push_named(h, || alloc::format!("{prefix}{w}"));
        });
        self.word = word;
    }

    /// Body text: words, their OSB pairs, and URLs.
    fn body(&mut self, text: &str) {
        let text = clip(text, self.limits.max_part_bytes);
        self.urls(text);
        self.window_len = 0;
        let mut word = core::mem::take(&mut self.word);
        for_each_word(text, self.limits.max_word_bytes, &mut word, |w| {
            if self.emitted >= self.limits.max_tokens {
                self.truncated = true;
                return;
            }
            let h = hash_bytes(SEED_BODY, w.as_bytes());
            self.push_named(h, || String::from(w));
            let n = self.window_len.min(self.pairs);
            for d in 0..n {
                let prev = self.window[(self.window_len - 1 - d) % 4];
                let ph = pair(prev, h, d as u32 + 1);
                if self.explain {
                    let pw = self.window_words[(self.window_len - 1 - d) % 4].clone();
                    self.push_named(ph, || alloc::format!("{pw} <{}> {w}", d + 1));
                } else {
                    self.push(ph);
                }
            }
            let slot = self.window_len % 4;
            self.window[slot] = h;
            if self.explain {
                self.window_words[slot].clear();
                self.window_words[slot].push_str(w);
            }
            self.window_len += 1;
        });
        self.word = word;
    }

    /// `url:HOST` and each parent domain for every URL in `text`.
    fn urls(&mut self, text: &str) {
        let bytes = text.as_bytes();
        let mut host = String::new();
        for at in memchr::memmem::find_iter(bytes, b"://") {
            let scheme_ok = bytes[..at].len() >= 4
                && (bytes[..at].ends_with(b"http")
                    || bytes[..at].ends_with(b"https")
                    || bytes[..at].ends_with(b"HTTP")
                    || bytes[..at].ends_with(b"HTTPS")
                    || bytes[..at].ends_with(b"ftp"));
            if !scheme_ok {
                continue;
            }
            host.clear();
            let rest = &bytes[at + 3..];
            let end = rest
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || b"-.@_%:".contains(b)))
                .unwrap_or(rest.len())
                .min(255);
            let authority = &rest[..end];
            let authority = match authority.iter().rposition(|b| *b == b'@') {
                Some(i) => &authority[i + 1..],
                None => authority,
            };
            let authority = match authority.iter().position(|b| *b == b':') {
                Some(i) => &authority[..i],
                None => authority,
            };
            for b in authority {
                host.push(b.to_ascii_lowercase() as char);
            }
            let h = host.trim_matches('.');
            if h.is_empty() || !h.contains('.') {
                continue;
            }
            if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                self.tag("url:", "ip");
                self.tag("url:", h);
                continue;
            }
            let h = String::from(h);
            self.tag("url:", &h);
            let mut rest = h.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if !parent.contains('.') {
                    self.tag("tld:", parent);
                    break;
                }
                self.tag("url:", parent);
                rest = parent;
            }
            if self.full() {
                return;
            }
        }
    }

    fn address(&mut self, prefix: &str, value: &HeaderValue<'_>) {
        let Some(address) = value.as_address() else {
            if let Some(text) = value.as_text() {
                self.tag_words(prefix, text);
            }
            return;
        };
        let one = |sink: &mut Sink, name: Option<&str>, addr: Option<&str>| {
            if let Some(name) = name {
                sink.tag_words(prefix, name);
            }
            if let Some(addr) = addr {
                let addr = addr.to_ascii_lowercase();
                sink.tag(prefix, &addr);
                if let Some((_, domain)) = addr.rsplit_once('@') {
                    sink.tag(prefix, &alloc::format!("@{domain}"));
                }
            }
        };
        match address {
            Address::List(list) => {
                for a in list.iter().take(16) {
                    one(self, a.name.as_deref(), a.address.as_deref());
                }
            }
            Address::Group(groups) => {
                for g in groups.iter().take(4) {
                    for a in g.addresses.iter().take(16) {
                        one(self, a.name.as_deref(), a.address.as_deref());
                    }
                }
            }
        }
    }

    fn headers(&mut self, message: &Message<'_>, headers: &[mail_parser::Header<'_>]) {
        let raw = message.raw_message();
        let mut received = 0;
        for header in headers.iter().take(self.limits.max_headers) {
            if self.full() {
                return;
            }
            let name = header.name.as_str();
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("x-spam") || lower.starts_with("x-bogosity") {
                // Verdicts of earlier filters (and our own) are not evidence.
                continue;
            }
            self.tag("hn:", &lower);
            let raw_value = raw
                .get(header.offset_start as usize..header.offset_end as usize)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            let raw_value = clip(&raw_value, 2048);
            match &header.name {
                HeaderName::Subject => {
                    let subject = header.value.as_text().unwrap_or(raw_value);
                    self.tag_words("subj:", subject);
                }
                HeaderName::From | HeaderName::Sender => self.address("from:", &header.value),
                HeaderName::ReplyTo => self.address("rt:", &header.value),
                HeaderName::To | HeaderName::Cc => self.address("to:", &header.value),
                HeaderName::Received => {
                    received += 1;
                    if received <= 8 {
                        self.received(raw_value);
                    }
                }
                HeaderName::ContentType => {
                    if let Some(ct) = header.value.as_content_type() {
                        let t = alloc::format!(
                            "{}/{}",
                            ct.ctype().to_ascii_lowercase(),
                            ct.subtype().unwrap_or("").to_ascii_lowercase()
                        );
                        self.tag("ct:", &t);
                        if let Some(cs) = ct.attribute("charset") {
                            self.tag("cs:", &cs.to_ascii_lowercase());
                        }
                    }
                }
                HeaderName::MessageId => {
                    if let Some((_, domain)) =
                        raw_value.trim().trim_end_matches('>').rsplit_once('@')
                    {
                        self.tag("mid:", &domain.to_ascii_lowercase());
                    }
                }
                HeaderName::Date
                | HeaderName::References
                | HeaderName::InReplyTo
                | HeaderName::ContentDisposition
                | HeaderName::ContentId
                | HeaderName::ContentTransferEncoding => {}
                HeaderName::Other(_) => match lower.as_str() {
                    "x-mailer" | "user-agent" => self.tag_words("xm:", raw_value),
                    "delivered-to" | "x-original-to" | "envelope-to" => {
                        self.tag_words("to:", raw_value)
                    }
                    _ => {
                        let v = clip(raw_value, 256);
                        self.tag_words("h:", v);
                    }
                },
                _ => {
                    let v = clip(raw_value, 256);
                    self.tag_words("h:", v);
                }
            }
        }
    }

    /// Host names and IP literals of a Received field.
    fn received(&mut self, value: &str) {
        for word in value.split(|c: char| {
            c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | ';' | '<' | '>' | ',' | '=')
        }) {
            let w = word.trim_matches(|c: char| c == '.' || c == '-');
            if w.len() < 4 || w.len() > 120 || !w.contains('.') {
                continue;
            }
            if !w
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                continue;
            }
            if w.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                // An IP: keep the /24, which says more than the host.
                if let Some((net, _)) = w.rsplit_once('.') {
                    self.tag("rcvd:", net);
                }
                continue;
            }
            self.tag("rcvd:", &w.to_ascii_lowercase());
        }
    }

    fn message(&mut self, message: &Message<'_>, depth: usize) {
        for (i, part) in message.parts.iter().enumerate() {
            if self.parts >= self.limits.max_parts || self.full() {
                self.truncated = true;
                return;
            }
            self.parts += 1;
            if i == 0 {
                self.headers(message, &part.headers);
            } else {
                // Only the MIME headers of inner parts say something.
                for h in part.headers.iter().take(16) {
                    if let (HeaderName::ContentType, Some(ct)) =
                        (&h.name, h.value.as_content_type())
                    {
                        let t = alloc::format!(
                            "{}/{}",
                            ct.ctype().to_ascii_lowercase(),
                            ct.subtype().unwrap_or("").to_ascii_lowercase()
                        );
                        self.tag("ct:", &t);
                        if let Some(cs) = ct.attribute("charset") {
                            self.tag("cs:", &cs.to_ascii_lowercase());
                        }
                    }
                }
            }
            if let Some(name) = part.attachment_name() {
                let name = clip(name, 255);
                if let Some((_, ext)) = name.rsplit_once('.') {
                    self.tag("att:", &ext.to_ascii_lowercase());
                }
                if self.is_dangerous(name) && self.dangerous.len() < 8 {
                    self.dangerous.push(String::from(name));
                }
            }
            match &part.body {
                PartType::Text(text) => self.body(text),
                PartType::Html(html) => {
                    let html = clip(html, self.limits.max_part_bytes);
                    self.urls(html);
                    self.html_tags(html);
                    let text = mail_parser::decoders::html::html_to_text(html);
                    self.body(&text);
                }
                PartType::Message(inner) if depth < 2 => self.message(inner, depth + 1),
                PartType::Binary(_) | PartType::InlineBinary(_)
                    if part.attachment_name().is_none() =>
                {
                    self.tag("att:", "");
                }
                _ => {}
            }
            if part.is_encoding_problem {
                self.tag("mime:", "encoding-problem");
            }
        }
    }

    /// Tag names of HTML (`html:img`, `html:font` …): layout says a lot.
    fn html_tags(&mut self, html: &str) {
        let bytes = html.as_bytes();
        let mut seen = 0;
        for at in memchr::memchr_iter(b'<', bytes) {
            let rest = &bytes[at + 1..];
            let end = rest
                .iter()
                .position(|b| !b.is_ascii_alphanumeric())
                .unwrap_or(rest.len())
                .min(12);
            if end == 0 {
                continue;
            }
            let mut tag = [0u8; 12];
            for (d, s) in tag.iter_mut().zip(&rest[..end]) {
                *d = s.to_ascii_lowercase();
            }
            if let Ok(t) = core::str::from_utf8(&tag[..end]) {
                let t = String::from(t);
                self.tag("html:", &t);
            }
            seen += 1;
            if seen > 2000 {
                break;
            }
        }
    }

    fn finish(mut self) -> Tokens {
        if self.explain {
            self.names.sort_unstable_by_key(|(h, _)| *h);
            self.names.dedup_by_key(|(h, _)| *h);
        }
        Tokens {
            hashes: self.raw,
            names: self.names,
            dangerous: self.dangerous,
            truncated: self.truncated,
        }
    }
}

/// Attachment names in the part of a message past the parser's limit: a
/// `name=` or `filename=` parameter in the raw bytes.
fn scan_attachment_names(tail: &[u8], sink: &mut Sink) {
    for at in memchr::memmem::find_iter(tail, b"name=") {
        if sink.dangerous.len() >= 8 {
            return;
        }
        let rest = &tail[at + 5..];
        let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
        let end = rest
            .iter()
            .position(|b| matches!(b, b'"' | b';' | b'\r' | b'\n'))
            .unwrap_or(rest.len())
            .min(255);
        let name = String::from_utf8_lossy(&rest[..end]);
        if sink.is_dangerous(&name) {
            sink.dangerous.push(name.into_owned());
        }
    }
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

/// Calls `f` with each normalized word of `text`: runs of letters, digits
/// and `$'-_`, lower-cased, trimmed of `'-_`, 2 to `max` bytes; long digit
/// runs become `#N` (their length); each CJK ideograph is a word of its own.
fn for_each_word(text: &str, max: usize, word: &mut String, mut f: impl FnMut(&str)) {
    let emit = |word: &mut String, f: &mut dyn FnMut(&str)| {
        let w = word.trim_matches(|c| c == '\'' || c == '-' || c == '_');
        if w.len() >= 2 && w.len() <= max {
            if w.len() > 4 && w.bytes().all(|b| b.is_ascii_digit()) {
                let mut n = String::new();
                let _ = write!(n, "#{}", w.len());
                f(&n);
            } else {
                f(w);
            }
        }
        word.clear();
    };
    word.clear();
    let mut too_long = false;
    for c in text.chars() {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() || matches!(c, '$' | '\'' | '-' | '_') {
                if word.len() <= max {
                    word.push(c.to_ascii_lowercase());
                } else {
                    too_long = true;
                }
                continue;
            }
        } else if is_cjk(c) {
            if !word.is_empty() && !too_long {
                emit(word, &mut f);
            }
            word.clear();
            too_long = false;
            let mut one = [0u8; 4];
            f(c.encode_utf8(&mut one));
            continue;
        } else if c.is_alphanumeric() {
            if word.len() <= max {
                for l in c.to_lowercase() {
                    word.push(l);
                }
            } else {
                too_long = true;
            }
            continue;
        }
        if !word.is_empty() {
            if too_long {
                word.clear();
            } else {
                emit(word, &mut f);
            }
        }
        too_long = false;
    }
    if !word.is_empty() && !too_long {
        emit(word, &mut f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = String::new();
        for_each_word(s, 40, &mut buf, |w| out.push(String::from(w)));
        out
    }

    fn names_window(raw: &str, window: usize) -> Vec<String> {
        let t = Tokenizer::default()
            .osb_window(window)
            .explain(true)
            .tokenize(raw.as_bytes());
        t.names.into_iter().map(|(_, n)| n).collect()
    }

    #[test]
    fn words_are_normalized() {
        assert_eq!(
            words("Hello, WORLD! It's $100 -- call 5551234567 now_ Über 東京"),
            [
                "hello", "world", "it's", "$100", "call", "#10", "now", "über", "東", "京"
            ]
        );
        let long = "a".repeat(100);
        assert_eq!(words(&alloc::format!("x1 {long} y2")), ["x1", "y2"]);
    }

    #[test]
    fn headers_urls_osb_and_charsets() {
        let raw = "From bob@example.org Mon Jan  1 00:00:00 2002\n\
                   Received: from mx.example.org (mx.example.org [192.0.2.7]) by in.example.net\n\
                   From: \"Bob Smith\" <bob@example.org>\n\
                   To: alice@example.net\n\
                   Subject: =?iso-8859-1?q?Gr=FC=DFe?= friend\n\
                   X-Mailer: Mutt 1.4\n\
                   X-Spam-Status: Yes, score=9\n\
                   Content-Type: text/html; charset=iso-8859-1\n\
                   Content-Transfer-Encoding: quoted-printable\n\
                   \n\
                   <html><body><p>Buy ch=E8ap <a href=3D\"http://www.Shop.example.com/x\">now</a> \
                   today please</p></body></html>\n";
        // The widest window, to see pairs at every distance.
        let n = names_window(raw, 5);
        for want in [
            "subj:grüße",
            "subj:friend",
            "from:bob",
            "from:bob@example.org",
            "from:@example.org",
            "to:alice@example.net",
            "rcvd:mx.example.org",
            "rcvd:192.0.2",
            "rcvd:in.example.net",
            "xm:mutt",
            "ct:text/html",
            "cs:iso-8859-1",
            "url:www.shop.example.com",
            "url:example.com",
            "tld:com",
            "html:a",
            "buy",
            "chèap",
            "buy <1> chèap",
            "buy <3> today",
            "buy <4> please",
            "hn:x-mailer",
        ] {
            assert!(n.iter().any(|x| x == want), "missing {want:?} in {n:?}");
        }
        assert!(
            !n.iter()
                .any(|x| x.contains("score") || x.contains("x-spam")),
            "{n:?}"
        );
        assert!(!n.iter().any(|x| x.contains("<5>")));
    }

    #[test]
    fn dangerous_attachments() {
        let raw = "From: a@b.example\nSubject: invoice\nMIME-Version: 1.0\n\
                   Content-Type: multipart/mixed; boundary=\"XX\"\n\n--XX\n\
                   Content-Type: text/plain\n\nsee attached\n--XX\n\
                   Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\n\
                   Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\n\
                   Content-Transfer-Encoding: base64\n\nTVqQAAMAAAAEAAAA\n--XX--\n";
        let t = Tokenizer::default().tokenize(raw.as_bytes());
        assert_eq!(t.dangerous_attachments(), ["invoice.pdf.exe"]);
        assert!(is_dangerous_name("RUN.BAT"));
        assert!(!is_dangerous_name("report.pdf"));
        assert!(!is_dangerous_name(".exe"));
        assert!(!is_dangerous_name("exe"));
    }

    #[test]
    fn hashes_are_distinct_and_complete() {
        // Enough distinct words that the repeat filter grows several times.
        let mut raw = String::from("Subject: words words\n\n");
        for i in 0..1800 {
            let _ = write!(raw, "w{} w{} again ", i % 1700, i % 23);
        }
        let t = Tokenizer::default().explain(true).tokenize(raw.as_bytes());
        let mut sorted = t.hashes().to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), t.hashes().len(), "no repeats");
        // Every explained token is among the hashes, and the other way round.
        let missing: Vec<_> = t
            .names
            .iter()
            .filter(|(h, _)| sorted.binary_search(h).is_err())
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(t.names.len(), t.hashes().len());
        assert!(!t.truncated());
    }

    #[test]
    fn bounded_on_huge_input() {
        let mut raw = String::from("Subject: big\nContent-Type: text/plain\n\n");
        for i in 0..400_000 {
            let _ = write!(raw, "w{i} ");
        }
        let t = Tokenizer::default().tokenize(raw.as_bytes());
        assert!(t.truncated());
        assert!(t.hashes().len() <= Limits::default().max_tokens);
        let garbage: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let t = Tokenizer::default().tokenize(&garbage);
        assert!(t.hashes().len() <= Limits::default().max_tokens);
        assert!(Tokenizer::default().tokenize(b"").hashes().len() < 5);
    }
}
