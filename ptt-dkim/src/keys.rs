//! Key records parsed once and kept across messages.
//!
//! A receiver sees the same few keys all day. Parsing a key record (its tag
//! list, the base64 of `p=`) and handing the key to the crypto backend (which
//! for RSA also works out a Montgomery context on first use) costs a fair
//! share of a 4 KB verification, so a [`Verifier`](crate::Verifier) given a
//! [`KeyCache`] looks the record's text up there first. The cache is keyed by
//! the text of the TXT record: a changed record is a new entry, and the DNS
//! answer stays the authority (the caller's resolver decides how long to
//! believe it).

use alloc::sync::Arc;
use core::fmt;

use crate::crypto::{Backend, ParsedPublic, Selected};
use crate::key::{DkimKeyRecord, KeyRecordError, PublicKey};

/// One key record as read from one TXT record: the record (or why it does
/// not parse), its key (or why it is unusable), and the key as the crypto
/// backend parsed it.
///
/// ```
/// use ptt_dkim::{PublicKey, VerifyingKey};
/// let key = VerifyingKey::parse(b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
/// assert!(matches!(key.key(), Ok(PublicKey::Ed25519(_))));
/// assert!(VerifyingKey::parse(b"v=DKIM1; p=%").record().is_err());
/// ```
pub struct VerifyingKey {
    record: Result<DkimKeyRecord, KeyRecordError>,
    key: Result<PublicKey, KeyRecordError>,
    parsed: Option<ParsedPublic>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("record", &self.record)
            .field("key", &self.key)
            .field("parsed", &self.parsed.is_some())
            .finish()
    }
}

impl VerifyingKey {
    /// Parses one TXT record's text (its strings joined).
    pub fn parse(record: &[u8]) -> Self {
        let record = DkimKeyRecord::parse(record);
        let key = match &record {
            Ok(r) => r.public_key(),
            Err(e) => Err(e.clone()),
        };
        let parsed = match &key {
            Ok(PublicKey::Rsa { der, .. }) => Selected::rsa_public_parse(der),
            Ok(PublicKey::Ed25519(raw)) => Selected::ed25519_public_parse(raw),
            Err(_) => None,
        };
        VerifyingKey {
            record,
            key,
            parsed,
        }
    }

    /// The record, or why it does not parse.
    pub fn record(&self) -> Result<&DkimKeyRecord, &KeyRecordError> {
        self.record.as_ref()
    }

    /// The record's key, or why it cannot be used.
    pub fn key(&self) -> Result<&PublicKey, &KeyRecordError> {
        self.key.as_ref()
    }

    /// The key as the crypto backend parsed it, when the record has a
    /// usable one.
    pub(crate) fn parsed(&self) -> Option<&ParsedPublic> {
        self.parsed.as_ref()
    }
}

/// Where a [`Verifier`](crate::Verifier) keeps parsed key records between
/// messages: shared by every verifier of a process, so it takes `&self`.
/// [`SharedKeyCache`] (feature `std`) is one; a `no_std` user supplies
/// their own over whatever lock the platform has.
pub trait KeyCache: Send + Sync {
    /// The key parsed from exactly this record text, if kept.
    fn get(&self, record: &[u8]) -> Option<Arc<VerifyingKey>>;
    /// Keeps a key parsed from this record text.
    fn put(&self, record: &[u8], key: Arc<VerifyingKey>);
}

/// The key for `record`: from `cache` when it has it, else parsed (and
/// kept there).
pub(crate) fn lookup(cache: Option<&dyn KeyCache>, record: &[u8]) -> Arc<VerifyingKey> {
    let Some(cache) = cache else {
        return Arc::new(VerifyingKey::parse(record));
    };
    if let Some(key) = cache.get(record) {
        return key;
    }
    let key = Arc::new(VerifyingKey::parse(record));
    // Only what saves work later, and not what would let one zone fill
    // the cache: records that parse, of a key record's size.
    if key.record.is_ok() && record.len() <= CACHED_RECORD_MAX {
        cache.put(record, key.clone());
    }
    key
}

/// The longest record text a [`Verifier`](crate::Verifier) puts in its
/// [`KeyCache`] (an RSA-4096 key record is about 800 bytes); longer ones,
/// and records that do not parse, are parsed each time.
pub const CACHED_RECORD_MAX: usize = 4096;

#[cfg(feature = "std")]
pub use shared::SharedKeyCache;

#[cfg(feature = "std")]
mod shared {
    use alloc::collections::BTreeMap;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use std::sync::Mutex;

    use super::{KeyCache, VerifyingKey};

    /// A [`KeyCache`] behind a mutex, holding at most `capacity` records
    /// (the least recently used goes first).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ptt_dkim::{Answer, SharedKeyCache, Verifier, VerifyPolicy, Step};
    /// let keys = Arc::new(SharedKeyCache::new(1000));
    /// for _ in 0..2 {
    ///     let mut v = Verifier::new(VerifyPolicy::default(), 1_700_000_000)
    ///         .with_key_cache(keys.clone());
    ///     v.update(b"From: a@example.com\r\nDKIM-Signature: v=1; a=ed25519-sha256; d=example.com;\r\n s=sel; h=from; bh=AAAA; b=AAAA\r\n\r\nHi\r\n");
    ///     v.end();
    ///     while let Step::Query(q) = v.poll() {
    ///         v.answer(&q, Answer::txt("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="));
    ///     }
    ///     assert_eq!(v.results()[0].verdict.as_str(), "fail");
    /// }
    /// assert_eq!(keys.len(), 1);
    /// ```
    #[derive(Debug)]
    pub struct SharedKeyCache {
        capacity: usize,
        inner: Mutex<Entries>,
    }

    #[derive(Debug, Default)]
    struct Entries {
        clock: u64,
        by_record: BTreeMap<Vec<u8>, (u64, Arc<VerifyingKey>)>,
    }

    impl SharedKeyCache {
        /// A cache of at most `capacity` records (at least one).
        pub fn new(capacity: usize) -> Self {
            SharedKeyCache {
                capacity: capacity.max(1),
                inner: Mutex::new(Entries::default()),
            }
        }

        /// How many records are kept.
        pub fn len(&self) -> usize {
            self.inner.lock().map_or(0, |e| e.by_record.len())
        }

        /// Whether none is kept.
        pub fn is_empty(&self) -> bool {
            self.len() == 0
        }
    }

    impl KeyCache for SharedKeyCache {
        fn get(&self, record: &[u8]) -> Option<Arc<VerifyingKey>> {
            let mut entries = self.inner.lock().ok()?;
            entries.clock += 1;
            let now = entries.clock;
            let (used, key) = entries.by_record.get_mut(record)?;
            *used = now;
            Some(key.clone())
        }

        fn put(&self, record: &[u8], key: Arc<VerifyingKey>) {
            let Ok(mut entries) = self.inner.lock() else {
                return;
            };
            entries.clock += 1;
            let now = entries.clock;
            if entries.by_record.len() >= self.capacity && !entries.by_record.contains_key(record) {
                let oldest = entries
                    .by_record
                    .iter()
                    .min_by_key(|(_, (used, _))| *used)
                    .map(|(r, _)| r.clone());
                if let Some(oldest) = oldest {
                    entries.by_record.remove(&oldest);
                }
            }
            entries.by_record.insert(record.to_vec(), (now, key));
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn records_that_do_not_parse_or_are_too_long_are_not_kept() {
            let cache = SharedKeyCache::new(10);
            let junk = super::super::lookup(Some(&cache), b"v=DKIM1; p=%");
            assert!(junk.record().is_err());
            let long = [b"v=DKIM1; n=".as_slice(), &[b'x'; 5000], b"; p="].concat();
            assert!(super::super::lookup(Some(&cache), &long).record().is_ok());
            assert!(cache.is_empty());
            let good = b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
            super::super::lookup(Some(&cache), good);
            assert_eq!(cache.len(), 1);
        }

        #[test]
        fn keeps_at_most_capacity_and_drops_the_least_recently_used() {
            let cache = SharedKeyCache::new(2);
            let key = |r: &[u8]| Arc::new(VerifyingKey::parse(r));
            cache.put(b"a", key(b"a"));
            cache.put(b"b", key(b"b"));
            assert!(cache.get(b"a").is_some());
            cache.put(b"c", key(b"c"));
            assert_eq!(cache.len(), 2);
            assert!(cache.get(b"b").is_none(), "b was the least recently used");
            assert!(cache.get(b"a").is_some() && cache.get(b"c").is_some());
        }
    }
}
