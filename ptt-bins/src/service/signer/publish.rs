//! The signer's key records at the primary: at start and then every
//! minute (or the record TTL, when shorter), each selector's TXT record at
//! `SELECTOR._domainkey.DOMAIN` is made to say what its state wants (the
//! key, the key revoked, or nothing) through the shared RFC 2136 path
//! ([`crate::dns::publish`]): nothing sent when it already does, so a
//! restart makes no new serial. Retention and revocation fall due here
//! too. A refused or failed UPDATE is logged with the server's answer and
//! tried again with backoff; signing goes on with the keys whose records
//! were seen published.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;

use super::keys::{Due, KeyState, KeyStore, KeysFile, Want, due};
use super::{DkimKey, Shared};
use crate::config::Config;
use crate::dns::{TsigKey, Updater, fqdn};
use crate::service::trace::unix_now;

/// The longest wait between two rounds, and after repeated failures.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// The UPDATE client of `[dns] primary` with `tsig_key`.
pub(crate) struct Publisher {
    updater: Updater,
    primary: SocketAddr,
}

impl Publisher {
    /// The publisher of `config`, or `None` when it names no primary and
    /// key (the operator then publishes the records, which are logged).
    pub(crate) fn new(config: &Config) -> Result<Option<Publisher>, String> {
        let (Some(primary), Some(key_file)) = (config.dns.primary, &config.dns.tsig_key) else {
            return Ok(None);
        };
        let key = TsigKey::from_bind_file(key_file)?;
        Ok(Some(Publisher {
            updater: Updater::connect(primary, &key)?,
            primary,
        }))
    }

    /// The selector's name and zone.
    async fn place(&self, selector: &str, domain: &str) -> Result<(Name, Name), String> {
        let name = fqdn(&format!("{selector}._domainkey.{domain}"))?;
        let zone = self.updater.zone_of(&name).await?;
        Ok((name, zone))
    }

    /// Makes the record of `selector` say `value`.
    pub(crate) async fn ensure(
        &self,
        selector: &str,
        domain: &str,
        value: &str,
        ttl: u32,
    ) -> Result<crate::dns::publish::Published, String> {
        let (name, zone) = self.place(selector, domain).await?;
        self.updater
            .ensure_txt(&zone, &name, |_| true, value, ttl)
            .await
    }

    /// Removes the record of `selector`.
    pub(crate) async fn remove(&self, selector: &str, domain: &str) -> Result<bool, String> {
        let (name, zone) = self.place(selector, domain).await?;
        self.updater.remove_txt(&zone, &name, |_| true).await
    }
}

/// Publishes, retires and revokes for ever; keeps `shared`'s signing keys
/// to the active keys whose records are published.
pub(crate) async fn maintain(
    shared: Arc<Shared>,
    store: KeyStore,
    publisher: Option<Publisher>,
    domain: String,
    ttl: u32,
) {
    let every = Duration::from_secs(u64::from(ttl).clamp(1, 60));
    let mut verified: HashMap<String, String> = HashMap::new();
    let mut wait = every;
    loop {
        match round(
            &shared,
            &store,
            publisher.as_ref(),
            &domain,
            ttl,
            &mut verified,
        )
        .await
        {
            Ok(errors) if errors.is_empty() => wait = every,
            Ok(errors) => {
                for e in &errors {
                    tracing::warn!(service = "signer", retry_in_s = wait.as_secs(), "{e}");
                }
                wait = (wait * 2).min(MAX_WAIT);
            }
            Err(e) => {
                tracing::warn!(service = "signer", retry_in_s = wait.as_secs(), "keys: {e}");
                wait = (wait * 2).min(MAX_WAIT);
            }
        }
        tokio::time::sleep(wait).await;
    }
}

async fn round(
    shared: &Shared,
    store: &KeyStore,
    publisher: Option<&Publisher>,
    domain: &str,
    ttl: u32,
    verified: &mut HashMap<String, String>,
) -> Result<Vec<String>, String> {
    let now = unix_now();
    let file = store.read()?;
    for state in ["pending", "active", "retiring", "revoked", "removed"] {
        let n = file
            .keys
            .iter()
            .filter(|k| format!("{:?}", k.state).eq_ignore_ascii_case(state))
            .count();
        metrics::gauge!(super::super::metrics::DKIM_KEYS, "state" => state).set(n as f64);
    }
    let mut errors = Vec::new();
    // Transitions due: the DNS change first, then the state.
    for step in due(&file, now) {
        let done = match (&step, publisher) {
            (Due::Revoke(sel), Some(p)) => {
                let revoked = algorithm_of(&file, sel)
                    .map(|a| a.revoked_record())
                    .unwrap_or_default();
                p.ensure(sel, domain, &revoked, ttl).await.map(|_| ())
            }
            (Due::Remove(sel), Some(p)) => p.remove(sel, domain).await.map(|_| ()),
            (Due::Revoke(sel), None) => {
                tracing::warn!(
                    service = "signer",
                    selector = sel,
                    "publish {sel}._domainkey.{domain} TXT \"{}\" yourself (revoked)",
                    algorithm_of(&file, sel)
                        .map(|a| a.revoked_record())
                        .unwrap_or_default()
                );
                Ok(())
            }
            (Due::Remove(sel), None) => {
                tracing::warn!(
                    service = "signer",
                    selector = sel,
                    "remove {sel}._domainkey.{domain} TXT yourself"
                );
                Ok(())
            }
        };
        if let Err(e) = done {
            errors.push(e);
            continue;
        }
        let changed = store.change(|f| {
            for k in f.keys.iter_mut() {
                match &step {
                    Due::Revoke(sel) if &k.selector == sel && k.state == KeyState::Retiring => {
                        k.state = KeyState::Revoked;
                        // Long enough for caches to see the revocation.
                        k.remove_at = now + 2 * u64::from(ttl);
                    }
                    Due::Remove(sel) if &k.selector == sel && k.state == KeyState::Revoked => {
                        k.state = KeyState::Removed;
                    }
                    _ => {}
                }
            }
            Ok(())
        });
        if let Err(e) = changed {
            errors.push(e);
            continue;
        }
        match &step {
            Due::Revoke(sel) => tracing::info!(
                service = "signer",
                selector = sel,
                "retention over: key revoked (p= empty)"
            ),
            Due::Remove(sel) => {
                let _ = std::fs::remove_file(store.pem_path(sel));
                verified.remove(sel);
                tracing::info!(
                    service = "signer",
                    selector = sel,
                    "key removed from DNS and disk"
                );
            }
        }
    }
    // Every selector's record as its state wants.
    let file = store.read()?;
    for entry in file.keys.iter().filter(|k| k.want() == Want::Key) {
        let record = match store.key(&entry.selector) {
            Ok(key) => key.key_record().to_string(),
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let Some(p) = publisher else {
            if verified.get(&entry.selector) != Some(&record) {
                tracing::info!(
                    service = "signer",
                    selector = entry.selector,
                    "publish {}._domainkey.{domain} TXT \"{record}\"",
                    entry.selector
                );
                verified.insert(entry.selector.clone(), record);
            }
            continue;
        };
        match p.ensure(&entry.selector, domain, &record, ttl).await {
            Ok(done) => {
                if done != crate::dns::publish::Published::Unchanged {
                    tracing::info!(service = "signer", selector = entry.selector, primary = %p.primary, "key record {done}");
                }
                verified.insert(entry.selector.clone(), record);
            }
            Err(e) => {
                // The primary cannot be changed or asked now: still sign
                // with a key whose record was seen published, at the
                // primary before or through the resolver now (a restart
                // while the primary is down keeps signing).
                let seen = verified.get(&entry.selector) == Some(&record)
                    || served(&shared.resolver, &entry.selector, domain, &record).await;
                if seen {
                    verified.insert(entry.selector.clone(), record);
                } else {
                    verified.remove(&entry.selector);
                }
                errors.push(format!("publishing {}: {e}", entry.selector));
            }
        }
    }
    set_signing(shared, store, &file, verified);
    Ok(errors)
}

/// Whether the resolver serves `record` for `selector`.
async fn served(
    resolver: &crate::dns::Resolver,
    selector: &str,
    domain: &str,
    record: &str,
) -> bool {
    let name = format!("{selector}._domainkey.{domain}");
    match resolver
        .lookup(&name, hickory_proto::rr::RecordType::TXT)
        .await
    {
        crate::dns::Lookup::Found(records) => records.iter().any(|r| match r {
            hickory_proto::rr::RData::TXT(t) => crate::dns::txt_joined(t) == record.as_bytes(),
            _ => false,
        }),
        _ => false,
    }
}

fn algorithm_of(file: &KeysFile, selector: &str) -> Option<super::keys::Algorithm> {
    file.keys
        .iter()
        .find(|k| k.selector == selector)
        .map(|k| k.algorithm)
}

/// The signing set: active keys whose current record was seen published.
fn set_signing(
    shared: &Shared,
    store: &KeyStore,
    file: &KeysFile,
    verified: &HashMap<String, String>,
) {
    let keys: Vec<DkimKey> = file
        .keys
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .filter_map(|k| {
            let key = store.key(&k.selector).ok()?;
            (verified.get(&k.selector) == Some(&key.key_record().to_string())).then(|| DkimKey {
                selector: k.selector.clone(),
                algorithm: k.algorithm,
                key,
            })
        })
        .collect();
    let current: Vec<String> = shared
        .signing
        .read()
        .map(|s| s.iter().map(|k| k.selector.clone()).collect())
        .unwrap_or_default();
    let next: Vec<String> = keys.iter().map(|k| k.selector.clone()).collect();
    if current != next {
        tracing::info!(
            service = "signer",
            selectors = next.join(","),
            "signing with"
        );
    }
    if let Ok(mut signing) = shared.signing.write() {
        *signing = Arc::new(keys);
    }
}
