//! Where mail for a domain goes (RFC 5321 §5.1, RFC 7505): the MX hosts in
//! order of preference, shuffled among equals, the domain itself when it
//! has no MX (the implicit MX), and no host at all for a null MX.
//!
//! ```
//! use ptt_queue::route::{mx_hosts, Route};
//! let records = [(20, "b.example.net.".to_string()), (10, "a.example.net".to_string())];
//! assert_eq!(mx_hosts("example.net", &records, 7),
//!            Route::Hosts(vec!["a.example.net".into(), "b.example.net".into()]));
//! assert_eq!(mx_hosts("example.net", &[], 7), Route::Hosts(vec!["example.net".into()]));
//! assert_eq!(mx_hosts("example.net", &[(0, ".".to_string())], 7), Route::NullMx);
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The hosts to try for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// These hosts, in order.
    Hosts(Vec<String>),
    /// The domain accepts no mail (RFC 7505): fail at once, `5.1.10`.
    NullMx,
}

/// Orders a domain's MX records (preference, exchange): lowest preference
/// first, equals shuffled with `random`, names without the final dot and
/// lower-cased, duplicates dropped. No records means the domain itself.
pub fn mx_hosts(domain: &str, records: &[(u16, String)], random: u64) -> Route {
    if records.is_empty() {
        return Route::Hosts(alloc::vec![
            domain.trim_end_matches('.').to_ascii_lowercase()
        ]);
    }
    let is_null = |name: &str| name == "." || name.is_empty();
    if records.iter().any(|(_, name)| is_null(name)) {
        // RFC 7505 §3: a null MX alone means no mail; beside other records
        // it is an error, which we read the same way (never guess a host).
        return Route::NullMx;
    }
    let mut state = random | 1;
    let mut keyed: Vec<(u16, u64, String)> = records
        .iter()
        .map(|(preference, name)| {
            // xorshift64: a tie-breaker per record, from the caller's seed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (
                *preference,
                state,
                name.trim_end_matches('.').to_ascii_lowercase(),
            )
        })
        .collect();
    keyed.sort();
    let mut hosts: Vec<String> = Vec::new();
    for (_, _, name) in keyed {
        if !hosts.contains(&name) {
            hosts.push(name.to_string());
        }
    }
    Route::Hosts(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_are_shuffled_and_preference_is_kept() {
        let records: Vec<(u16, String)> = (0..4)
            .map(|i| (10, alloc::format!("mx{i}.example.net")))
            .chain([
                (5, "first.example.net".into()),
                (50, "last.example.net".into()),
            ])
            .collect();
        let mut firsts = alloc::collections::BTreeSet::new();
        for seed in 0..64u64 {
            let Route::Hosts(hosts) = mx_hosts(
                "example.net",
                &records,
                seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ) else {
                panic!()
            };
            assert_eq!(hosts.len(), 6);
            assert_eq!(hosts[0], "first.example.net");
            assert_eq!(hosts[5], "last.example.net");
            firsts.insert(hosts[1].clone());
        }
        assert_eq!(firsts.len(), 4, "every equal MX comes first sometimes");
    }

    #[test]
    fn null_mx_and_duplicates() {
        let r = [(0u16, ".".to_string()), (10, "mx.example.net".to_string())];
        assert_eq!(mx_hosts("example.net", &r, 1), Route::NullMx);
        let r = [
            (10u16, "MX.example.net.".to_string()),
            (20, "mx.example.net".to_string()),
        ];
        assert_eq!(
            mx_hosts("example.net", &r, 1),
            Route::Hosts(alloc::vec!["mx.example.net".into()])
        );
    }
}
