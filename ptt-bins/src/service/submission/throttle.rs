//! Password-guessing throttle: failed logins counted per client address
//! (IPv6 per /64, since one host has a whole prefix) and per account over a
//! window. Each failure delays the next answer a little more; past the
//! limit, the address or account is blocked until the window ends, and
//! the block is logged with its reason and expiry. Addresses in the
//! allow-list (the site's own proxies and bridges) are never throttled.
//! Memory is bounded: at most [`CAPACITY`] entries per kind, expired ones
//! dropped first, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Network;

/// Entries kept per kind (addresses, accounts).
pub(crate) const CAPACITY: usize = 65_536;

/// How much longer each failure makes the next answer wait.
const STEP: Duration = Duration::from_millis(100);
/// The longest such delay.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// The throttle's settings.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Failures from one address before it is blocked.
    pub(crate) per_ip: u32,
    /// Failures for one account before it is blocked.
    pub(crate) per_user: u32,
    /// The counting window and the block's length.
    pub(crate) window: Duration,
    /// Never throttled.
    pub(crate) allow: Vec<Network>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
    blocked_until: Option<Instant>,
}

/// A block in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    /// What is blocked: `address 192.0.2.7` or `account alice@example.org`.
    pub(crate) what: String,
    /// For how much longer.
    pub(crate) remaining: Duration,
    /// How many failures led to it.
    pub(crate) failures: u32,
}

/// The throttle of one submission service.
#[derive(Debug)]
pub(crate) struct Throttle {
    limits: Limits,
    by_ip: Mutex<HashMap<IpAddr, Entry>>,
    by_user: Mutex<HashMap<String, Entry>>,
    /// (address key, account) pairs that logged in within the window: an
    /// account blocked by someone else's guesses stays open to its owner's
    /// usual address, so nobody can lock a user out from afar.
    known: Mutex<HashMap<(IpAddr, String), Instant>>,
}

/// The key of a client address: IPv4 as is, IPv6 by its /64.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
        v4 => v4,
    }
}

fn blocked(entry: Option<&Entry>, now: Instant) -> Option<(Duration, u32)> {
    let e = entry?;
    let until = e.blocked_until?;
    (until > now).then(|| (until - now, e.failures))
}

/// Records one failure in `map`; returns the new count and whether this
/// failure started a block.
fn record<K: std::hash::Hash + Eq + Clone>(
    map: &mut HashMap<K, Entry>,
    key: &K,
    limit: u32,
    window: Duration,
    now: Instant,
) -> (u32, bool) {
    if !map.contains_key(key) && map.len() >= CAPACITY {
        map.retain(|_, e| {
            now.duration_since(e.since) < window || e.blocked_until.is_some_and(|u| u > now)
        });
        if map.len() >= CAPACITY
            && let Some(oldest) = map
                .iter()
                .filter(|(_, e)| e.blocked_until.is_none())
                .min_by_key(|(_, e)| e.since)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
    }
    let entry = map.entry(key.clone()).or_insert(Entry {
        failures: 0,
        since: now,
        blocked_until: None,
    });
    let expired_block = entry.blocked_until.is_some_and(|u| u <= now);
    if expired_block || (entry.blocked_until.is_none() && now.duration_since(entry.since) >= window)
    {
        *entry = Entry {
            failures: 0,
            since: now,
            blocked_until: None,
        };
    }
    entry.failures = entry.failures.saturating_add(1);
    let starts = entry.blocked_until.is_none() && entry.failures >= limit;
    if starts {
        entry.blocked_until = Some(now + window);
    }
    (entry.failures, starts)
}

impl Throttle {
    /// A throttle with these limits.
    pub(crate) fn new(limits: Limits) -> Throttle {
        Throttle {
            limits,
            by_ip: Mutex::new(HashMap::new()),
            by_user: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Records a successful login of `user` from `ip`.
    pub(crate) fn succeeded(&self, ip: IpAddr, user: &str, now: Instant) {
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        if known.len() >= CAPACITY {
            let window = self.limits.window;
            known.retain(|_, at| now.duration_since(*at) < window);
            if known.len() >= CAPACITY {
                return;
            }
        }
        known.insert((ip_key(ip), crate::userdb::normalize(user)), now);
    }

    fn is_known(&self, key: IpAddr, user: &str, now: Instant) -> bool {
        self.known.lock().is_ok_and(|k| {
            k.get(&(key, user.to_string()))
                .is_some_and(|at| now.duration_since(*at) < self.limits.window)
        })
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.limits.allow.iter().any(|n| n.contains(ip))
    }

    /// The block that stops a login from `ip` as `user` now, if any.
    pub(crate) fn check(&self, ip: IpAddr, user: &str, now: Instant) -> Option<Block> {
        if self.allowed(ip) {
            return None;
        }
        let key = ip_key(ip);
        if let Some((remaining, failures)) = blocked(self.by_ip.lock().ok()?.get(&key), now) {
            return Some(Block {
                what: format!("address {key}"),
                remaining,
                failures,
            });
        }
        let user = crate::userdb::normalize(user);
        if self.is_known(key, &user, now) {
            return None;
        }
        blocked(self.by_user.lock().ok()?.get(&user), now).map(|(remaining, failures)| Block {
            what: format!("account {user}"),
            remaining,
            failures,
        })
    }

    /// Records a failed login; gives how long to wait before answering,
    /// and the blocks this failure started (to be logged).
    pub(crate) fn failed(&self, ip: IpAddr, user: &str, now: Instant) -> (Duration, Vec<Block>) {
        if self.allowed(ip) {
            return (Duration::ZERO, Vec::new());
        }
        let window = self.limits.window;
        let mut started = Vec::new();
        let key = ip_key(ip);
        let ip_count = match self.by_ip.lock() {
            Ok(mut map) => {
                let (n, starts) = record(&mut map, &key, self.limits.per_ip, window, now);
                if starts {
                    started.push(Block {
                        what: format!("address {key}"),
                        remaining: window,
                        failures: n,
                    });
                }
                n
            }
            Err(_) => 0,
        };
        let user = crate::userdb::normalize(user);
        let user_count = match self.by_user.lock() {
            Ok(mut map) if !user.is_empty() => {
                let (n, starts) = record(&mut map, &user, self.limits.per_user, window, now);
                if starts {
                    started.push(Block {
                        what: format!("account {user}"),
                        remaining: window,
                        failures: n,
                    });
                }
                n
            }
            _ => 0,
        };
        let delay = (STEP * ip_count.max(user_count)).min(MAX_DELAY);
        (delay, started)
    }

    /// Entries held (addresses, accounts).
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        (
            self.by_ip.lock().map_or(0, |m| m.len()),
            self.by_user.lock().map_or(0, |m| m.len()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(allow: &[&str]) -> Throttle {
        Throttle::new(Limits {
            per_ip: 5,
            per_user: 3,
            window: Duration::from_secs(60),
            allow: allow.iter().map(|a| Network::parse(a).unwrap()).collect(),
        })
    }

    #[test]
    fn an_address_is_blocked_after_its_limit_then_released() {
        let t = throttle(&[]);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..4 {
            assert_eq!(t.check(ip, &format!("u{i}@x.test"), t0), None);
            let (delay, blocks) = t.failed(ip, &format!("u{i}@x.test"), t0);
            assert_eq!(delay, STEP * (i + 1));
            assert!(blocks.is_empty());
        }
        let (_, blocks) = t.failed(ip, "u9@x.test", t0);
        assert_eq!(blocks[0].what, "address 192.0.2.7");
        let block = t
            .check(ip, "anyone@x.test", t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(block.remaining, Duration::from_secs(59));
        assert_eq!(t.check("192.0.2.8".parse().unwrap(), "x@x.test", t0), None);
        assert_eq!(t.check(ip, "x@x.test", t0 + Duration::from_secs(61)), None);
    }

    #[test]
    fn an_account_is_blocked_whatever_the_address() {
        let t = throttle(&[]);
        let t0 = Instant::now();
        for i in 0..3u8 {
            t.failed(IpAddr::from([198, 51, 100, i]), "Alice@x.test", t0);
        }
        let block = t
            .check(IpAddr::from([203, 0, 113, 1]), "alice@X.test", t0)
            .unwrap();
        assert_eq!(block.what, "account alice@x.test");
    }

    #[test]
    fn an_account_blocked_by_others_stays_open_to_its_usual_address() {
        let t = throttle(&[]);
        let t0 = Instant::now();
        let home: IpAddr = "192.0.2.10".parse().unwrap();
        t.succeeded(home, "alice@x.test", t0);
        for i in 0..3u8 {
            t.failed(IpAddr::from([198, 51, 100, i]), "alice@x.test", t0);
        }
        assert!(
            t.check("203.0.113.9".parse().unwrap(), "alice@x.test", t0)
                .is_some()
        );
        assert_eq!(t.check(home, "alice@x.test", t0), None);
    }

    #[test]
    fn ipv6_counts_per_64_and_the_allow_list_is_never_throttled() {
        let t = throttle(&["10.0.0.0/8"]);
        let t0 = Instant::now();
        for i in 0..5u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
            t.failed(ip, &format!("u{i}@x.test"), t0);
        }
        assert!(
            t.check("2001:db8:0:1::ffff".parse().unwrap(), "z@x.test", t0)
                .is_some()
        );
        assert!(
            t.check("2001:db8:0:2::1".parse().unwrap(), "z@x.test", t0)
                .is_none()
        );
        for _ in 0..50 {
            t.failed("10.1.2.3".parse().unwrap(), "", t0);
        }
        assert!(t.check("10.1.2.3".parse().unwrap(), "", t0).is_none());
    }

    #[test]
    fn memory_stays_bounded_under_many_addresses() {
        let t = throttle(&[]);
        let t0 = Instant::now();
        for i in 0..(CAPACITY as u32 + 100) {
            t.failed(IpAddr::from(i.to_be_bytes()), "", t0);
        }
        assert!(t.len().0 <= CAPACITY);
    }
}
