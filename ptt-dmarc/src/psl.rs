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

use alloc::collections::BTreeSet;
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
    normal: BTreeSet<String>,
    /// `*.X` stored as `X`.
    wildcard: BTreeSet<String>,
    /// `!X` stored as `X`.
    exception: BTreeSet<String>,
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
            normal: BTreeSet::new(),
            wildcard: BTreeSet::new(),
            exception: BTreeSet::new(),
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
            let (set, body) = if let Some(rest) = rule.strip_prefix('!') {
                (&mut list.exception, rest)
            } else if let Some(rest) = rule.strip_prefix("*.") {
                (&mut list.wildcard, rest)
            } else {
                (&mut list.normal, rule)
            };
            match to_ascii_name(body) {
                Some(name) if !name.contains('*') && !name.contains('!') => {
                    set.insert(name);
                }
                _ => errors.push(bad()),
            }
        }
        (list, errors)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.normal.len() + self.wildcard.len() + self.exception.len()
    }

    /// True when the list holds no rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The public suffix of `domain` in ASCII form (lowercase, A-labels), or
    /// `None` for a name that is not a valid domain (empty label, bad
    /// character).
    pub fn public_suffix(&self, domain: &str) -> Option<String> {
        let name = to_ascii_name(domain.strip_suffix('.').unwrap_or(domain))?;
        let labels: Vec<&str> = name.split('.').collect();
        let n = labels.len();
        let suffix_of = |k: usize| labels[n - k..].join(".");
        // Exception rules win: the suffix is the rule minus its first label.
        for k in (1..=n).rev() {
            if self.exception.contains(&suffix_of(k)) {
                return Some(suffix_of(k - 1)).filter(|s| !s.is_empty());
            }
        }
        let mut best = 1; // the implicit "*" rule
        for k in 1..=n {
            let s = suffix_of(k);
            if self.normal.contains(&s) {
                best = best.max(k);
            }
            if k < n && self.wildcard.contains(&s) {
                best = best.max(k + 1);
            }
        }
        Some(suffix_of(best))
    }

    /// The organizational domain (RFC 7489 3.2): the public suffix plus one
    /// label. A name that is itself a public suffix is its own
    /// organizational domain. `None` for a name that is not a valid domain.
    pub fn organizational_domain(&self, domain: &str) -> Option<String> {
        let name = to_ascii_name(domain.strip_suffix('.').unwrap_or(domain))?;
        Some(self.registrable_domain(&name).unwrap_or(name))
    }

    /// The registrable domain: the public suffix plus one label, or `None`
    /// when `domain` is itself a public suffix or not a valid domain (the
    /// semantics of publicsuffix.org's `checkPublicSuffix` tests).
    pub fn registrable_domain(&self, domain: &str) -> Option<String> {
        let name = to_ascii_name(domain.strip_suffix('.').unwrap_or(domain))?;
        let suffix = self.public_suffix(&name)?;
        if name.len() <= suffix.len() {
            return None;
        }
        let head = name.get(..name.len() - suffix.len() - 1)?;
        let label = head.rsplit('.').next().unwrap_or(head);
        Some(alloc::format!("{label}.{suffix}"))
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
