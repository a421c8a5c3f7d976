//! mail-auth 0.6's side of the DKIM and ARC benches: a TXT cache filled
//! once with the key records, so mail-auth verifies without DNS, as
//! ptt-dkim and ptt-arc do with their key answers.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

use mail_auth_06 as mail_auth;

use mail_auth::common::parse::TxtRecordParser as _;
use mail_auth::common::verify::DomainKey;
use mail_auth::{ResolverCache, Txt};

/// mail-auth's TXT cache, filled once with the key records.
pub struct TxtCache(Mutex<HashMap<String, Txt>>);

impl TxtCache {
    /// The cache holding each `(name, key record)`, under the name with and
    /// without the trailing dot.
    pub fn with_key_records<'a>(
        records: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Self {
        let cache = TxtCache(Mutex::new(HashMap::new()));
        for (name, record) in records {
            for n in [format!("{name}."), name.clone()] {
                let key =
                    DomainKey::parse(record.as_bytes()).expect("mail-auth reads the key record");
                cache.insert(n, Txt::from(key), Instant::now());
            }
        }
        cache
    }
}

impl ResolverCache<String, Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.get(name).cloned()
    }
    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        String: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name)
    }
    fn insert(&self, key: String, value: Txt, _: Instant) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, value);
        }
    }
}
