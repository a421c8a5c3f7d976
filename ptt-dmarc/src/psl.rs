//! The Public Suffix List and the organizational domain (RFC 7489 3.2).
//!
//! A copy of the list is compiled in ([`PublicSuffixList::builtin`]); a
//! newer one can be loaded at run time from the text of a
//! `public_suffix_list.dat` file ([`PublicSuffixList::parse`]). Rules are
//! matched with the algorithm of publicsuffix.org: the longest matching rule
//! wins, a wildcard rule `*.ck` makes every label under `ck` a suffix, an
//! exception rule `!www.ck` wins over everything and makes `ck` the suffix of
//! `www.ck`, and an unlisted TLD is a suffix by the implicit `*` rule.
//!
//! Names are compared in their ASCII form: rules and domains written in
//! Unicode are converted to A-labels (`xn--…`, RFC 3492 Punycode) after
//! lowercasing, so `公司.cn` and `xn--55qx5d.cn` are the same rule.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The list compiled into the crate (see `data/SOURCE.md`).
pub const BUILTIN_LIST: &str = include_str!("../data/public_suffix_list.dat");

/// A line of the list that cannot be a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PslError {
    /// A rule with an empty label, a `*` that is not a whole leftmost label,
    /// a `!` not at the start, or a character that is not allowed in a name.
    #[error("line {line}: invalid rule {rule:?}")]
    InvalidRule {
        /// 1-based line number.
        line: usize,
        /// The rule as written.
        rule: String,
    },
    /// The text holds no rule at all (e.g. an HTML error page was saved).
    #[error("the list holds no rules")]
    Empty,
}

/// A loaded Public Suffix List.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicSuffixList {
    rules: RuleTable,
}

const NORMAL: u8 = 1;
/// `*.X`, stored as `X`.
const WILDCARD: u8 = 2;
/// `!X`, stored as `X`.
const EXCEPTION: u8 = 4;

/// Names with their rule kinds, in an open-addressing hash table (FNV-1a,
/// linear probing, at most half full): `no_std` has no `HashMap`, and a
/// lookup per suffix label must be cheap.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct RuleTable {
    entries: Vec<(String, u8)>,
    /// Index + 1 into `entries`; 0 is an empty slot. Length a power of two.
    slots: Vec<u32>,
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl RuleTable {
    fn slot_of(&self, name: &str) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = (fnv1a(name) as usize) & mask;
        loop {
            let e = *self.slots.get(i)?;
            if e == 0 {
                return Some(i);
            }
            if self
                .entries
                .get(e as usize - 1)
                .is_some_and(|(n, _)| n == name)
            {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn get(&self, name: &str) -> u8 {
        self.slot_of(name)
            .and_then(|i| self.slots.get(i))
            .and_then(|&e| e.checked_sub(1))
            .and_then(|e| self.entries.get(e as usize))
            .map_or(0, |(_, flags)| *flags)
    }

    fn insert(&mut self, name: String, flag: u8) {
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            let size = (self.slots.len() * 2).max(64);
            self.slots = alloc::vec![0; size];
            for idx in 0..self.entries.len() {
                let Some(name) = self.entries.get(idx).map(|(n, _)| n.clone()) else {
                    continue;
                };
                if let Some(i) = self.slot_of(&name) {
                    self.slots[i] = idx as u32 + 1;
                }
            }
        }
        let Some(i) = self.slot_of(&name) else { return };
        match self.slots[i] {
            0 => {
                self.entries.push((name, flag));
                self.slots[i] = self.entries.len() as u32;
            }
            e => {
                if let Some(entry) = self.entries.get_mut(e as usize - 1) {
                    entry.1 |= flag;
                }
            }
        }
    }

    fn rule_count(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, f)| f.count_ones() as usize)
            .sum()
    }
}

impl PublicSuffixList {
    /// The compiled-in list.
    pub fn builtin() -> PublicSuffixList {
        // The compiled-in copy is checked by a unit test to parse cleanly;
        // should it ever not, the rules that did parse are still used.
        PublicSuffixList::parse_lossy(BUILTIN_LIST).0
    }

    /// Parses the text of a `public_suffix_list.dat` file: one rule per line,
    /// `//` comments and blank lines ignored, each line read up to its first
    /// whitespace. Any invalid rule is an error.
    pub fn parse(text: &str) -> Result<PublicSuffixList, PslError> {
        let (list, mut errors) = PublicSuffixList::parse_lossy(text);
        if !errors.is_empty() {
            return Err(errors.swap_remove(0));
        }
        if list.is_empty() {
            return Err(PslError::Empty);
        }
        Ok(list)
    }

    /// Like [`parse`](Self::parse) but keeps the valid rules and returns the
    /// invalid ones beside them.
    pub fn parse_lossy(text: &str) -> (PublicSuffixList, Vec<PslError>) {
        let mut list = PublicSuffixList {
            rules: RuleTable::default(),
        };
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let rule = line.split_whitespace().next().unwrap_or("");
            if rule.is_empty() || rule.starts_with("//") {
                continue;
            }
            let bad = || PslError::InvalidRule {
                line: i + 1,
                rule: rule.to_string(),
            };
            let (flag, body) = if let Some(rest) = rule.strip_prefix('!') {
                (EXCEPTION, rest)
            } else if let Some(rest) = rule.strip_prefix("*.") {
                (WILDCARD, rest)
            } else {
                (NORMAL, rule)
            };
            match to_ascii_name(body) {
                Some(name) if !name.contains('*') && !name.contains('!') => {
                    list.rules.insert(name, flag);
                }
                _ => errors.push(bad()),
            }
        }
        (list, errors)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.rule_count()
    }

    /// True when the list holds no rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The public suffix of `domain` in ASCII form (lowercase, A-labels), or
    /// `None` for a name that is not a valid domain (empty label, bad
    /// character) or that only an exception rule for a TLD would match.
    pub fn public_suffix(&self, domain: &str) -> Option<String> {
        let name = to_ascii_name(domain.strip_suffix('.').unwrap_or(domain))?;
        let start = self.suffix_start(&name)?;
        name.get(start..).map(str::to_string)
    }

    /// Where the public suffix of `name` (ASCII, lowercase) starts. Every
    /// suffix of a dotted name is a substring of it, so the rules are looked
    /// up without building strings.
    fn suffix_start(&self, name: &str) -> Option<usize> {
        // starts[k - 1]: where the suffix of k labels starts.
        let mut starts: Vec<usize> = name.rmatch_indices('.').map(|(i, _)| i + 1).collect();
        starts.push(0);
        let n = starts.len();
        let mut exception = None;
        let mut best = 1; // the implicit "*" rule
        for k in 1..=n {
            let suffix = name.get(*starts.get(k - 1)?..)?;
            let flags = self.rules.get(suffix);
            if flags & EXCEPTION != 0 {
                exception = Some(k);
            }
            if flags & NORMAL != 0 {
                best = best.max(k);
            }
            if k < n && flags & WILDCARD != 0 {
                best = best.max(k + 1);
            }
        }
        match exception {
            // The exception rule wins: the suffix is the rule minus its
            // leftmost label.
            Some(k) if k >= 2 => starts.get(k - 2).copied(),
            Some(_) => None,
            None => starts.get(best - 1).copied(),
        }
    }

    /// The organizational domain (RFC 7489 3.2): the public suffix plus one
    /// label. A name that is itself a public suffix is its own
    /// organizational domain. `None` for a name that is not a valid domain.
    pub fn organizational_domain(&self, domain: &str) -> Option<String> {
        let name = to_ascii_name(domain.strip_suffix('.').unwrap_or(domain))?;
        match self.registrable_start(&name) {
            Some(start) => name.get(start..).map(str::to_string),
            None => Some(name),
        }
    }

    /// The registrable domain: the public suffix plus one label, or `None`
    /// when `domain` is itself a public suffix or not a valid domain (the
    /// semantics of publicsuffix.org's `checkPublicSuffix` tests).
    pub fn registrable_domain(&self, domain: &str) -> Option<String> {
        let name = to_ascii_name(domain.strip_suffix('.').unwrap_or(domain))?;
        let start = self.registrable_start(&name)?;
        name.get(start..).map(str::to_string)
    }

    fn registrable_start(&self, name: &str) -> Option<usize> {
        let suffix = self.suffix_start(name)?;
        if suffix == 0 {
            return None;
        }
        let head = name.get(..suffix - 1)?;
        Some(head.rfind('.').map_or(0, |i| i + 1))
    }

    /// True when `domain` is itself a public suffix.
    pub fn is_public_suffix(&self, domain: &str) -> bool {
        match (
            to_ascii_name(domain.strip_suffix('.').unwrap_or(domain)),
            self.public_suffix(domain),
        ) {
            (Some(name), Some(s)) => name == s,
            _ => false,
        }
    }
}

/// Lowercases a domain and converts non-ASCII labels to A-labels. `None`
/// for an empty name, an empty label, or a label with characters other than
/// letters, digits, `-`, `_`, `*` and `!` (the last two are checked by the
/// callers), or a label longer than 63 octets.
pub fn to_ascii_name(domain: &str) -> Option<String> {
    if domain.is_empty() || domain.len() > 1024 {
        return None;
    }
    let mut out = String::with_capacity(domain.len());
    for (i, label) in domain.split('.').enumerate() {
        if label.is_empty() {
            return None;
        }
        if i > 0 {
            out.push('.');
        }
        let start = out.len();
        if label.is_ascii() {
            for b in label.bytes() {
                if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'*' | b'!')) {
                    return None;
                }
                out.push(b.to_ascii_lowercase() as char);
            }
        } else {
            let lower: String = label.chars().flat_map(char::to_lowercase).collect();
            if lower
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '.')
            {
                return None;
            }
            out.push_str("xn--");
            punycode_encode(&lower, &mut out)?;
        }
        if out.len() - start > 63 {
            return None;
        }
    }
    Some(out)
}

/// RFC 3492 Punycode encoding of one label (without the `xn--` prefix).
fn punycode_encode(input: &str, out: &mut String) -> Option<()> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    fn adapt(mut delta: u32, numpoints: u32, first: bool) -> u32 {
        delta /= if first { DAMP } else { 2 };
        delta += delta / numpoints;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + SKEW)
    }
    fn digit(d: u32) -> char {
        if d < 26 {
            (b'a' + d as u8) as char
        } else {
            (b'0' + (d - 26) as u8) as char
        }
    }
    let chars: Vec<u32> = input.chars().map(|c| c as u32).collect();
    let basic = chars.iter().filter(|&&c| c < 0x80).count() as u32;
    for &c in &chars {
        if c < 0x80 {
            out.push(char::from_u32(c)?);
        }
    }
    if basic > 0 {
        out.push('-');
    }
    let mut n: u32 = 0x80;
    let mut delta: u32 = 0;
    let mut bias: u32 = 72;
    let mut h = basic;
    let total = chars.len() as u32;
    while h < total {
        let m = *chars.iter().filter(|&&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(h + 1)?)?;
        n = m;
        for &c in &chars {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, h + 1, h == basic);
                delta = 0;
                h += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(psl: &PublicSuffixList, d: &str) -> String {
        psl.organizational_domain(d).unwrap()
    }

    #[test]
    fn builtin_list_parses_cleanly() {
        let (list, errors) = PublicSuffixList::parse_lossy(BUILTIN_LIST);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(list.len() > 9000, "{}", list.len());
        assert_eq!(PublicSuffixList::parse(BUILTIN_LIST).unwrap(), list);
    }

    #[test]
    fn co_uk_and_friends() {
        let psl = PublicSuffixList::builtin();
        assert_eq!(org(&psl, "mail.example.co.uk"), "example.co.uk");
        assert_eq!(org(&psl, "example.co.uk"), "example.co.uk");
        assert_eq!(org(&psl, "co.uk"), "co.uk");
        assert!(psl.is_public_suffix("co.uk"));
        assert!(!psl.is_public_suffix("example.co.uk"));
        assert_eq!(org(&psl, "a.b.example.com"), "example.com");
        assert_eq!(org(&psl, "Example.COM."), "example.com");
        // Unlisted TLD: the implicit "*" rule.
        assert_eq!(org(&psl, "a.b.example.invalidtld"), "example.invalidtld");
        assert_eq!(psl.organizational_domain("a..b"), None);
        assert_eq!(psl.organizational_domain(""), None);
        assert_eq!(psl.organizational_domain("a b.com"), None);
    }

    #[test]
    fn wildcard_and_exception() {
        let psl = PublicSuffixList::builtin();
        // *.ck and !www.ck are in the real list.
        assert_eq!(psl.public_suffix("foo.ck").unwrap(), "foo.ck");
        assert_eq!(org(&psl, "a.b.foo.ck"), "b.foo.ck");
        assert_eq!(psl.public_suffix("www.ck").unwrap(), "ck");
        assert_eq!(org(&psl, "www.ck"), "www.ck");
        assert_eq!(org(&psl, "mail.www.ck"), "www.ck");
        // A list of our own, loaded at run time.
        let psl = PublicSuffixList::parse(
            "// test list\n\ncom\n*.jp\n!city.kobe.jp\n*.kawasaki.jp\nuk\nco.uk\n",
        )
        .unwrap();
        assert_eq!(psl.len(), 6);
        assert_eq!(org(&psl, "a.b.example.co.uk"), "example.co.uk");
        // *.jp makes kobe.jp a suffix (this list has no *.kobe.jp).
        assert_eq!(psl.public_suffix("x.y.kobe.jp").unwrap(), "kobe.jp");
        assert_eq!(org(&psl, "x.y.kobe.jp"), "y.kobe.jp");
        assert_eq!(org(&psl, "www.city.kobe.jp"), "city.kobe.jp");
        assert_eq!(org(&psl, "a.b.kawasaki.jp"), "a.b.kawasaki.jp");
        assert_eq!(psl.public_suffix("b.kawasaki.jp").unwrap(), "b.kawasaki.jp");
        assert!(matches!(
            PublicSuffixList::parse("com\n*.*.jp\n"),
            Err(PslError::InvalidRule { line: 2, .. })
        ));
        assert!(matches!(
            PublicSuffixList::parse("com\na..b\n"),
            Err(PslError::InvalidRule { line: 2, .. })
        ));
        assert_eq!(
            PublicSuffixList::parse("// nothing\n"),
            Err(PslError::Empty)
        );
    }

    #[test]
    fn punycode() {
        // RFC 3492 7.1 sample (B): Chinese (simplified) and a few short ones.
        let mut s = String::new();
        punycode_encode("他们为什么不说中文", &mut s).unwrap();
        assert_eq!(s, "ihqwcrb4cv8a8dqg056pqjye");
        assert_eq!(to_ascii_name("bücher.de").unwrap(), "xn--bcher-kva.de");
        assert_eq!(to_ascii_name("公司.CN").unwrap(), "xn--55qx5d.cn");
        let psl = PublicSuffixList::builtin();
        assert_eq!(org(&psl, "www.example.公司.cn"), "example.xn--55qx5d.cn");
        assert_eq!(
            org(&psl, "www.example.xn--55qx5d.cn"),
            "example.xn--55qx5d.cn"
        );
    }
}
