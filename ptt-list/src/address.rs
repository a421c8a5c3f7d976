//! Mail addresses and the addresses a list answers to.
//!
//! Every list `NAME@DOMAIN` owns a family of local parts:
//!
//! | Local part | Role |
//! |---|---|
//! | `NAME` | post to the list |
//! | `NAME-subscribe`, `NAME-unsubscribe` | start a (confirmed) subscription change |
//! | `NAME-subscribers`, `NAME-help`, `NAME-owner` | ask for the roster, ask for help, write to the moderators |
//! | `NAME-confirm-TOKEN` | confirm a pending subscription change |
//! | `NAME-accept-TOKEN`, `NAME-reject-TOKEN` | a moderator decides on a pending subscription or a held post |
//! | `NAME-return-N-local=domain` | VERP return path of post `N` to subscriber `local@domain` |
//!
//! List names may contain `-`: the longest list name that leaves a valid
//! suffix wins, and an exact match is always a post.

use alloc::string::{String, ToString};
use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an address or a list name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// No `@`, or more than one outside a quoted string.
    #[error("address {0:?}: expected local@domain")]
    NoAt(String),
    /// The local part is empty, too long, or has a character outside dot-atom.
    #[error("address {input:?}: bad local part ({why})")]
    BadLocal {
        /// The address as given.
        input: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The domain is not a host name.
    #[error("address {input:?}: bad domain ({why})")]
    BadDomain {
        /// The address as given.
        input: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A list name outside `[a-z0-9][a-z0-9._-]*`, or too long.
    #[error("list name {input:?}: {why}")]
    BadListName {
        /// The name as given.
        input: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// A mailbox `local@domain`. The domain is kept in lower case; the local part
/// as given, but two addresses compare equal ignoring case (as nearly every
/// mail system treats them). Ordering is by domain first, so a sorted set of
/// addresses is already grouped by domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    local: String,
    domain: String,
    key: String,
}

impl Address {
    /// Parses `local@domain` (no display name, no angle brackets).
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let at = input
            .rfind('@')
            .ok_or_else(|| AddressError::NoAt(input.to_string()))?;
        let (local, domain) = (&input[..at], &input[at + 1..]);
        check_local(local).map_err(|why| AddressError::BadLocal {
            input: input.to_string(),
            why,
        })?;
        check_domain(domain).map_err(|why| AddressError::BadDomain {
            input: input.to_string(),
            why,
        })?;
        Ok(Self::from_parts(local, domain))
    }

    fn from_parts(local: &str, domain: &str) -> Self {
        let domain = domain.to_ascii_lowercase();
        let key = {
            let mut k = local.to_ascii_lowercase();
            k.push('@');
            k.push_str(&domain);
            k
        };
        Address {
            local: local.to_string(),
            domain,
            key,
        }
    }

    /// The local part, as given.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain, in lower case.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The address in lower case: what equality and lookups use.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Address {}
impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Address {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.domain
            .cmp(&other.domain)
            .then_with(|| self.key.cmp(&other.key))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Address::parse(&s)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
    }
}

fn is_atext(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&c)
}

fn check_local(local: &str) -> Result<(), &'static str> {
    if local.is_empty() {
        return Err("empty");
    }
    if local.len() > 64 {
        return Err("longer than 64 octets");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("misplaced dot");
    }
    if !local.bytes().all(|c| c == b'.' || is_atext(c)) {
        return Err("character outside dot-atom");
    }
    Ok(())
}

/// Checks a host name: labels of letters, digits and `-`, joined by dots.
pub(crate) fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.is_empty() {
        return Err("empty");
    }
    if domain.len() > 253 {
        return Err("longer than 253 octets");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("label longer than 63 octets");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("label starts or ends with '-'");
        }
        if !label
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        {
            return Err("character outside letters, digits and '-'");
        }
    }
    Ok(())
}

/// Suffixes that name a role; a list name may not end in one of them, so
/// that `NAME-help` can never be both a list and a role of another list.
pub const ROLE_WORDS: [&str; 9] = [
    "subscribe",
    "unsubscribe",
    "subscribers",
    "help",
    "owner",
    "confirm",
    "accept",
    "reject",
    "return",
];

/// Checks a list name: `[a-z0-9][a-z0-9._-]*`, at most 40 characters, not
/// ending in `-` and not ending in `-ROLE` for a role word (see
/// [`ROLE_WORDS`]).
pub fn check_list_name(name: &str) -> Result<(), AddressError> {
    let bad = |why| AddressError::BadListName {
        input: name.to_string(),
        why,
    };
    let first = name.bytes().next().ok_or_else(|| bad("empty"))?;
    if name.len() > 40 {
        return Err(bad("longer than 40 characters"));
    }
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err(bad("must start with a lower-case letter or a digit"));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
    {
        return Err(bad("only a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    if name.ends_with(['-', '.']) {
        return Err(bad("must not end with '-' or '.'"));
    }
    for part in name.split('-').skip(1) {
        if ROLE_WORDS.contains(&part) {
            return Err(bad(
                "a '-' followed by a role word (subscribe, help, owner, ...) would clash with the list's own addresses",
            ));
        }
    }
    Ok(())
}

/// What a recipient address of a list asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `NAME`: a post.
    Post,
    /// `NAME-subscribe`.
    Subscribe,
    /// `NAME-unsubscribe`.
    Unsubscribe,
    /// `NAME-subscribers`: the roster.
    Subscribers,
    /// `NAME-help`.
    Help,
    /// `NAME-owner`: mail to the moderators.
    Owner,
    /// `NAME-confirm-TOKEN`.
    Confirm(String),
    /// `NAME-accept-TOKEN`.
    Accept(String),
    /// `NAME-reject-TOKEN`.
    Reject(String),
    /// `NAME-return-N-local=domain`: a bounce of post `post` to `rcpt`.
    Return {
        /// The post's number (the list's counter when it went out).
        post: u64,
        /// The subscriber the bounce is about.
        rcpt: Address,
    },
}

impl Role {
    /// The local part of this role's address for list `name`.
    pub fn local_part(&self, name: &str) -> String {
        match self {
            Role::Post => name.to_string(),
            Role::Subscribe => alloc::format!("{name}-subscribe"),
            Role::Unsubscribe => alloc::format!("{name}-unsubscribe"),
            Role::Subscribers => alloc::format!("{name}-subscribers"),
            Role::Help => alloc::format!("{name}-help"),
            Role::Owner => alloc::format!("{name}-owner"),
            Role::Confirm(t) => alloc::format!("{name}-confirm-{t}"),
            Role::Accept(t) => alloc::format!("{name}-accept-{t}"),
            Role::Reject(t) => alloc::format!("{name}-reject-{t}"),
            Role::Return { post, rcpt } => {
                alloc::format!("{name}-return-{post}-{}={}", rcpt.local(), rcpt.domain())
            }
        }
    }

    /// Parses the part of a local part after `NAME-` (`suffix` is `None`
    /// for the bare list name).
    pub fn parse_suffix(suffix: Option<&str>) -> Option<Role> {
        let Some(s) = suffix else {
            return Some(Role::Post);
        };
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "subscribe" => return Some(Role::Subscribe),
            "unsubscribe" => return Some(Role::Unsubscribe),
            "subscribers" => return Some(Role::Subscribers),
            "help" => return Some(Role::Help),
            "owner" => return Some(Role::Owner),
            _ => {}
        }
        let (word, rest) = lower.split_once('-')?;
        match word {
            "confirm" if is_token(rest) => Some(Role::Confirm(rest.to_string())),
            "accept" if is_token(rest) => Some(Role::Accept(rest.to_string())),
            "reject" if is_token(rest) => Some(Role::Reject(rest.to_string())),
            "return" => {
                // Keep the case of the subscriber's local part: take it from `s`.
                let orig_rest = s.get(word.len() + 1..)?;
                let (n, addr) = orig_rest.split_once('-')?;
                let post = n.parse::<u64>().ok()?;
                let eq = addr.rfind('=')?;
                let (local, domain) = (&addr[..eq], &addr[eq + 1..]);
                check_local(local).ok()?;
                check_domain(domain).ok()?;
                Some(Role::Return {
                    post,
                    rcpt: Address::from_parts(local, domain),
                })
            }
            _ => None,
        }
    }
}

/// Tokens are lower-case base32 (`a-z2-7`), 16 characters.
pub(crate) fn is_token(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(&c))
}

/// Finds which list (among `names`) and which role a local part addresses.
/// An exact name is a post; otherwise the longest `NAME-` prefix whose rest
/// is a role wins.
pub fn classify<'a>(
    local: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<(&'a str, Role)> {
    let lower = local.to_ascii_lowercase();
    let mut best: Option<(&'a str, Role)> = None;
    for name in names {
        if lower == name {
            return Some((name, Role::Post));
        }
        let Some(rest) = lower.strip_prefix(name).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let orig = local.get(name.len() + 1..).unwrap_or(rest);
        if let Some(role) = Role::parse_suffix(Some(orig))
            && best.as_ref().is_none_or(|(b, _)| b.len() < name.len())
        {
            best = Some((name, role));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn parses_and_refuses() {
        let a = Address::parse("Foo.Bar@Example.ORG").unwrap();
        assert_eq!(a.to_string(), "Foo.Bar@example.org");
        assert_eq!(a.key(), "foo.bar@example.org");
        assert_eq!(a, Address::parse("foo.bar@example.org").unwrap());
        for bad in [
            "",
            "foo",
            "@x.org",
            "a b@x.org",
            "a@",
            "a@-x.org",
            "a..b@x.org",
            "a@x..org",
            "<a@x.org>",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_with_dashes_in_names() {
        let names = ["ptt", "ptt-dev", "a-b-c"];
        let n = || names.iter().copied();
        assert_eq!(classify("ptt", n()), Some(("ptt", Role::Post)));
        assert_eq!(classify("PTT-Dev", n()), Some(("ptt-dev", Role::Post)));
        assert_eq!(
            classify("ptt-dev-subscribe", n()),
            Some(("ptt-dev", Role::Subscribe))
        );
        assert_eq!(
            classify("ptt-subscribe", n()),
            Some(("ptt", Role::Subscribe))
        );
        assert_eq!(classify("a-b-c-help", n()), Some(("a-b-c", Role::Help)));
        assert_eq!(classify("ptt-nope", n()), None);
        assert_eq!(
            classify("ptt-dev-confirm-abcdefgh234567ab", n()),
            Some(("ptt-dev", Role::Confirm("abcdefgh234567ab".into())))
        );
        let r = classify("ptt-dev-return-42-Jo.Doe=Ex-ample.org", n()).unwrap();
        assert_eq!(r.0, "ptt-dev");
        match r.1 {
            Role::Return { post, rcpt } => {
                assert_eq!(post, 42);
                assert_eq!(rcpt.to_string(), "Jo.Doe@ex-ample.org");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn list_names() {
        for good in ["ptt", "ptt-dev", "a.b_c-d", "0day"] {
            check_list_name(good).unwrap();
        }
        for bad in ["", "Ptt", "-x", "x-", "a b", "x-help", "x-return-y", "a@b"] {
            assert!(check_list_name(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn address_round_trips(local in "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-z0-9]{1,5}){0,2}",
                               domain in "[a-z0-9]{1,10}(-[a-z0-9]{1,5})?(\\.[a-z]{2,6}){1,2}") {
            let text = alloc::format!("{local}@{domain}");
            let a = Address::parse(&text).unwrap();
            prop_assert_eq!(a.to_string(), text.clone());
            prop_assert_eq!(Address::parse(&a.to_string()).unwrap(), a.clone());
            let role = Role::Return { post: 7, rcpt: a.clone() };
            let lp = role.local_part("my-list");
            prop_assert_eq!(classify(&lp, ["my-list", "my"]), Some(("my-list", role)));
        }
    }
}
