//! The state of a list server: what `lists/NAME.json`, `bounces.json`,
//! `temp.json` and `tmp/` hold.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::address::Address;

/// Who may post to a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Subscribers and moderators post; anyone else is held for a moderator.
    #[default]
    Subscribers,
    /// Moderators post; every other post is held for a moderator.
    Moderated,
    /// Anyone posts.
    Open,
}

impl Policy {
    /// Parses `subscribers`, `moderated` or `open`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "subscribers" => Some(Policy::Subscribers),
            "moderated" => Some(Policy::Moderated),
            "open" => Some(Policy::Open),
            _ => None,
        }
    }

    /// The name [`Policy::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Subscribers => "subscribers",
            Policy::Moderated => "moderated",
            Policy::Open => "open",
        }
    }
}

/// Who may ask `NAME-subscribers` for the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Nobody: the request is answered with a refusal.
    Nobody,
    /// Subscribers and moderators.
    #[default]
    Subscribers,
    /// Moderators only.
    Moderators,
}

/// A list's settings, each with a default so that old files keep loading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Who may post.
    pub policy: Policy,
    /// Subscriptions wait for a moderator after the subscriber confirmed.
    pub subscription_moderated: bool,
    /// Who may read the roster.
    pub subscribers_visible: Visibility,
    /// Largest accepted post, in octets.
    pub max_size: u64,
    /// Put in front of the subject (for example `[ptt] `), unless present.
    pub subject_prefix: Option<String>,
    /// Text appended to posts (plain-text bodies, or as a part of multipart/mixed).
    pub footer: Option<String>,
    /// Rewrite From to the list when the author's domain publishes
    /// `p=quarantine` or `p=reject`.
    pub dmarc_mitigation: bool,
    /// HTTPS URL for RFC 8058 one-click unsubscription; `None` gives only the
    /// mailto: form (RFC 8058 requires HTTPS for one-click).
    pub one_click_url: Option<String>,
    /// Seconds a pending confirmation waits.
    pub confirm_expiry: u64,
    /// Seconds a held post or a pending moderation waits.
    pub hold_expiry: u64,
    /// Bounce score at which a subscriber is removed.
    pub bounce_threshold: f64,
    /// Score added by a permanent failure.
    pub bounce_hard: f64,
    /// Score added by a temporary failure reported by a DSN.
    pub bounce_soft: f64,
    /// Seconds for a bounce score to halve.
    pub bounce_half_life: u64,
    /// First retry delay, in seconds (doubled on each attempt).
    pub retry_first: u64,
    /// Longest retry delay, in seconds.
    pub retry_max: u64,
    /// Seconds after the first failure at which a delivery is given up.
    pub retry_deadline: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::Subscribers,
            subscription_moderated: false,
            subscribers_visible: Visibility::Subscribers,
            max_size: 10 * 1024 * 1024,
            subject_prefix: None,
            footer: None,
            dmarc_mitigation: true,
            one_click_url: None,
            confirm_expiry: 7 * 86_400,
            hold_expiry: 14 * 86_400,
            bounce_threshold: 5.0,
            bounce_hard: 1.0,
            bounce_soft: 0.5,
            bounce_half_life: 7 * 86_400,
            retry_first: 15 * 60,
            retry_max: 8 * 3600,
            retry_deadline: 5 * 86_400,
        }
    }
}

/// What a pending request would change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Add the address.
    Subscribe,
    /// Remove the address.
    Unsubscribe,
}

/// Who a pending request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The address owner must write to `NAME-confirm-TOKEN`.
    Confirmation,
    /// A moderator must write to `NAME-accept-TOKEN` or `NAME-reject-TOKEN`.
    Moderator,
}

/// A subscription change waiting for a confirmation or a moderator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The token in the confirm/accept/reject addresses.
    pub token: String,
    /// The address to add or remove.
    pub address: Address,
    /// Add or remove.
    pub change: Change,
    /// Who it waits for.
    pub stage: Stage,
    /// Unix time after which it is dropped.
    pub expires: u64,
}

/// Why a post waits for a moderator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HoldReason {
    /// The author is not subscribed (policy `subscribers`).
    NotSubscribed,
    /// Every post is moderated (policy `moderated`).
    Moderated,
    /// DMARC failed and the author domain says `p=reject`: held silently
    /// (no notice to anyone) and dropped on expiry unless released.
    DmarcReject,
}

/// A post waiting for a moderator; its bytes are in `tmp/held-TOKEN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Held {
    /// The token in the accept/reject addresses.
    pub token: String,
    /// The author (From).
    pub author: Address,
    /// Subject, for moderators and `ptt show`.
    pub subject: String,
    /// Why it is held.
    pub reason: HoldReason,
    /// The author domain's DMARC policy when it came in (for From rewriting on release).
    pub author_policy: DmarcPolicy,
    /// Unix time after which it is dropped.
    pub expires: u64,
}

/// The author domain's published DMARC policy, as the caller found it (the
/// DMARC evaluator is another crate; this one only needs the verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    /// No DMARC record, or it could not be fetched.
    #[default]
    Absent,
    /// `p=none`.
    None,
    /// `p=quarantine`.
    Quarantine,
    /// `p=reject`.
    Reject,
}

/// The DMARC result of an incoming message, with the author domain's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Authentication {
    /// Whether DMARC passed (aligned SPF or DKIM); `false` also when not evaluated.
    pub dmarc_pass: bool,
    /// Whether DMARC was evaluated and failed.
    pub dmarc_fail: bool,
    /// The policy the author domain publishes.
    pub author_policy: DmarcPolicy,
}

/// One mailing list: `lists/NAME.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct List {
    /// The list name (local part of the post address).
    pub name: String,
    /// The domain the list answers on.
    pub domain: String,
    /// One line shown in List-Id and in help.
    #[serde(default)]
    pub description: String,
    /// Settings.
    #[serde(default)]
    pub settings: Settings,
    /// Subscribers, sorted by domain.
    #[serde(default)]
    pub subscribers: BTreeSet<Address>,
    /// Moderators (they also may post, and receive the owner's mail).
    #[serde(default)]
    pub moderators: BTreeSet<Address>,
    /// Subscription changes waiting for a confirmation or a moderator.
    #[serde(default)]
    pub pending: Vec<Pending>,
    /// Posts waiting for a moderator.
    #[serde(default)]
    pub held: Vec<Held>,
    /// Number of the last post sent (also in VERP addresses).
    #[serde(default)]
    pub counter: u64,
    /// Hex key of the one-click unsubscription HMAC.
    pub secret: String,
}

impl List {
    /// A new list with default settings; `secret` keys the one-click tokens
    /// (give 32 random bytes).
    pub fn new(name: &str, domain: &str, secret: &[u8]) -> Self {
        let mut hex = String::with_capacity(secret.len() * 2);
        for b in secret {
            hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        List {
            name: name.into(),
            domain: domain.to_ascii_lowercase(),
            description: String::new(),
            settings: Settings::default(),
            subscribers: BTreeSet::new(),
            moderators: BTreeSet::new(),
            pending: Vec::new(),
            held: Vec::new(),
            counter: 0,
            secret: hex,
        }
    }

    /// `NAME@DOMAIN`.
    pub fn post_address(&self) -> String {
        alloc::format!("{}@{}", self.name, self.domain)
    }

    /// The address of a role of this list.
    pub fn role_address(&self, role: &crate::address::Role) -> String {
        alloc::format!("{}@{}", role.local_part(&self.name), self.domain)
    }

    /// Whether `a` is a moderator.
    pub fn is_moderator(&self, a: &Address) -> bool {
        self.moderators.contains(a)
    }

    /// Whether `a` is subscribed.
    pub fn is_subscriber(&self, a: &Address) -> bool {
        self.subscribers.contains(a)
    }
}

/// A subscriber's bounce record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BounceRecord {
    /// Score at `updated` (it halves every `bounce_half_life`).
    pub score: f64,
    /// Unix time of the last change.
    pub updated: u64,
    /// Number of the last post that counted (one bounce per post counts).
    pub last_post: u64,
}

/// `bounces.json`: list name → subscriber key → record.
pub type Bounces = BTreeMap<String, BTreeMap<String, BounceRecord>>;

/// A delivery waiting for a retry: an entry of `temp.json`. The post's
/// bytes are in `tmp/<blob>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    /// The list.
    pub list: String,
    /// The post number.
    pub post: u64,
    /// The subscriber.
    pub rcpt: Address,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix time of the next attempt.
    pub next: u64,
    /// Unix time after which it is given up (a permanent failure).
    pub deadline: u64,
    /// Last error text.
    pub last_error: String,
}

impl Retry {
    /// Name of the file in `tmp/` holding the post's shared bytes.
    pub fn blob(&self) -> String {
        post_blob(&self.list, self.post)
    }
}

/// Name of the `tmp/` file of post `post` of `list`.
pub fn post_blob(list: &str, post: u64) -> String {
    alloc::format!("{list}-{post}.eml")
}

/// Name of the `tmp/` file of a held post.
pub fn held_blob(token: &str) -> String {
    alloc::format!("held-{token}.eml")
}

/// Everything a list server keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// `lists/NAME.json`, by name.
    pub lists: BTreeMap<String, List>,
    /// `bounces.json`.
    pub bounces: Bounces,
    /// `temp.json`: the retry queue.
    pub queue: Vec<Retry>,
    /// `tmp/`: held posts and posts waiting for retries, by file name.
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// Which parts of the [`State`] an operation changed, so that the caller
/// writes only those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Lists to write (`lists/NAME.json`).
    pub lists: BTreeSet<String>,
    /// Lists to delete.
    pub lists_removed: BTreeSet<String>,
    /// `bounces.json` changed.
    pub bounces: bool,
    /// `temp.json` changed.
    pub queue: bool,
    /// `tmp/` files to write.
    pub blobs_put: BTreeSet<String>,
    /// `tmp/` files to delete.
    pub blobs_removed: BTreeSet<String>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// Adds another set of changes.
    pub fn merge(&mut self, other: Changes) {
        self.lists.extend(other.lists);
        self.lists_removed.extend(other.lists_removed);
        self.bounces |= other.bounces;
        self.queue |= other.queue;
        for b in other.blobs_put {
            self.blobs_removed.remove(&b);
            self.blobs_put.insert(b);
        }
        for b in other.blobs_removed {
            self.blobs_put.remove(&b);
            self.blobs_removed.insert(b);
        }
    }

    /// Every list and file: what a full save writes.
    pub fn everything(state: &State) -> Changes {
        Changes {
            lists: state.lists.keys().cloned().collect(),
            lists_removed: BTreeSet::new(),
            bounces: true,
            queue: true,
            blobs_put: state.blobs.keys().cloned().collect(),
            blobs_removed: BTreeSet::new(),
        }
    }
}
