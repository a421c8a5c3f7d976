//! The MTA-STS policies of the domains the relay delivers to (RFC 8461):
//! the `_mta-sts` TXT record looked up before each delivery, the policy
//! fetched over HTTPS when the record's id changed or the cached one
//! expired, and kept in memory and in `state/relay/mta-sts/DOMAIN.toml`
//! so that a restart (or an attacker blocking the fetch) does not forget
//! an `enforce` policy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use hickory_proto::rr::RecordType;
use ptt_queue::mta_sts::{CachedPolicy, Policy, StsRecord, pick_record, refresh_needed};
use tokio_rustls::TlsConnector;

use crate::dns::{Lookup, Resolver, txt_joined};

/// The policy cache.
pub(crate) struct StsCache {
    dir: PathBuf,
    memory: Mutex<HashMap<String, CachedPolicy>>,
}

impl StsCache {
    /// A cache kept in `dir`.
    pub(crate) fn new(dir: PathBuf) -> StsCache {
        StsCache {
            dir,
            memory: Mutex::new(HashMap::new()),
        }
    }

    fn file(&self, domain: &str) -> PathBuf {
        self.dir.join(format!("{domain}.toml"))
    }

    fn cached(&self, domain: &str) -> Option<CachedPolicy> {
        if let Some(c) = self.memory.lock().ok()?.get(domain) {
            return Some(c.clone());
        }
        let text = std::fs::read_to_string(self.file(domain)).ok()?;
        let cached: CachedPolicy = toml::from_str(&text).ok()?;
        if let Ok(mut m) = self.memory.lock() {
            m.insert(domain.to_string(), cached.clone());
        }
        Some(cached)
    }

    fn store(&self, domain: &str, cached: &CachedPolicy) {
        if let Ok(mut m) = self.memory.lock() {
            m.insert(domain.to_string(), cached.clone());
        }
        let _ = std::fs::create_dir_all(&self.dir);
        if let Ok(text) = toml::to_string(cached) {
            let _ = crate::store::write_atomic(&self.file(domain), text.as_bytes());
        }
    }

    /// The policy in force for `domain` at `now`, fetching it when the
    /// record says so. `None`: the domain has no (usable) policy, and mail
    /// goes as without MTA-STS (RFC 8461 §5: a failed fetch with nothing
    /// cached is no policy).
    pub(crate) async fn policy(
        &self,
        resolver: &Resolver,
        connector: &TlsConnector,
        domain: &str,
        now: u64,
    ) -> Option<Policy> {
        // Domains are lower-case ASCII here (userdb::domain_of); refuse
        // anything that could step out of the cache folder.
        if domain.is_empty() || domain.contains(['/', '\\']) || domain.starts_with('.') {
            return None;
        }
        let record = match resolver
            .lookup(&format!("_mta-sts.{domain}"), RecordType::TXT)
            .await
        {
            Lookup::Found(records) => {
                let texts: Vec<String> = records
                    .iter()
                    .filter_map(|r| match r {
                        hickory_proto::rr::RData::TXT(t) => {
                            Some(String::from_utf8_lossy(&txt_joined(t)).into_owned())
                        }
                        _ => None,
                    })
                    .collect();
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                pick_record(&refs).ok().flatten()
            }
            _ => None,
        };
        let cached = self.cached(domain);
        if refresh_needed(cached.as_ref(), record.as_ref(), now)
            && let Some(record) = &record
        {
            match self.fetch(resolver, connector, domain, record, now).await {
                Ok(fresh) => return Some(fresh),
                Err(why) => {
                    tracing::warn!(
                        service = "relay",
                        domain,
                        "MTA-STS policy not fetched: {why}"
                    )
                }
            }
        }
        cached.and_then(|c| c.fresh_policy(now).cloned())
    }

    async fn fetch(
        &self,
        resolver: &Resolver,
        connector: &TlsConnector,
        domain: &str,
        record: &StsRecord,
        now: u64,
    ) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        let text = crate::net::https::mta_sts_policy(resolver, connector, &host).await?;
        let policy = Policy::parse(&text).map_err(|e| e.to_string())?;
        let cached = CachedPolicy::new(record, policy.clone(), now);
        self.store(domain, &cached);
        tracing::info!(service = "relay", domain, id = record.id, mode = %policy.mode, "MTA-STS policy fetched");
        Ok(policy)
    }
}
