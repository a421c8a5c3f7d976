//! `ptt dns check`: the domain as the Internet sees it, through the
//! configured resolver, record by record: ok, missing or wrong, and the
//! exact record to publish.

use std::net::IpAddr;

use hickory_proto::rr::{RData, RecordType};
use ptt_spf::{Request, SpfResult};
use serde::Serialize;
use sha2::Digest as _;

use super::{Lookup, Resolver, txt_joined};
use crate::config::{Config, ServiceName};

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// As it should be.
    Ok,
    /// Not there.
    Missing,
    /// There, but not right.
    Wrong,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    /// What was checked: `MX`, `A/AAAA`, `PTR`, `SPF`, `DKIM SEL`, `DMARC` …
    pub(crate) check: String,
    /// The verdict.
    pub(crate) status: Status,
    /// What the resolver gave (or why it gave nothing).
    pub(crate) found: String,
    /// The record to publish, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) publish: Option<String>,
}

fn finding(
    check: impl Into<String>,
    status: Status,
    found: impl Into<String>,
    publish: Option<String>,
) -> Finding {
    Finding {
        check: check.into(),
        status,
        found: found.into(),
        publish: if status == Status::Ok { None } else { publish },
    }
}

fn txts(lookup: &Lookup) -> Vec<String> {
    match lookup {
        Lookup::Found(records) => records
            .iter()
            .filter_map(|r| match r {
                RData::TXT(t) => Some(String::from_utf8_lossy(&txt_joined(t)).into_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn describe(lookup: &Lookup) -> String {
    match lookup {
        Lookup::Found(r) => format!("{} record(s)", r.len()),
        Lookup::NoRecords => "no record".into(),
        Lookup::NxDomain => "no such name".into(),
        Lookup::Failed(e) => format!("lookup failed: {e}"),
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The reverse name of an address (`4.3.2.1.in-addr.arpa`, nibbles for IPv6).
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut out = String::new();
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

/// The `p=` value of a key record, spaces removed (the key is what must
/// match; tag order and spacing may differ).
fn key_of(record: &str) -> String {
    record
        .split(';')
        .find_map(|tag| tag.trim().strip_prefix("p="))
        .map(|p| p.chars().filter(|c| !c.is_whitespace()).collect())
        .unwrap_or_default()
}

/// Runs every check of `config`'s domain.
pub(crate) async fn run(config: &Config, resolver: &Resolver) -> Vec<Finding> {
    let domain = config.domain.as_str();
    let host = config.hostname.as_str();
    let mut out = Vec::new();

    // MX → this host.
    let mx = resolver.lookup(domain, RecordType::MX).await;
    let exchanges: Vec<String> = match &mx {
        Lookup::Found(r) => r
            .iter()
            .filter_map(|r| match r {
                RData::MX(m) => Some(format!("{} {}", m.preference, m.exchange)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let publish_mx = Some(format!("{domain}. MX 10 {host}."));
    out.push(if exchanges.is_empty() {
        finding("MX", Status::Missing, describe(&mx), publish_mx)
    } else if exchanges
        .iter()
        .any(|e| same_name(e.split(' ').nth(1).unwrap_or(""), host))
    {
        finding("MX", Status::Ok, exchanges.join(", "), None)
    } else {
        finding("MX", Status::Wrong, exchanges.join(", "), publish_mx)
    });

    // A/AAAA of this host.
    let mut addresses: Vec<IpAddr> = Vec::new();
    for rtype in [RecordType::A, RecordType::AAAA] {
        if let Lookup::Found(records) = resolver.lookup(host, rtype).await {
            addresses.extend(records.iter().filter_map(|r| match r {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            }));
        }
    }
    let listen = config.receiver.as_ref().and_then(|r| {
        r.listen
            .iter()
            .map(|a| a.ip())
            .find(|ip| !ip.is_unspecified() && !ip.is_loopback())
    });
    let address_hint = listen.map_or("<this host's public address>".to_string(), |ip| {
        ip.to_string()
    });
    out.push(if addresses.is_empty() {
        finding(
            "A/AAAA",
            Status::Missing,
            format!("{host} has no address"),
            Some(format!("{host}. A {address_hint}")),
        )
    } else {
        finding(
            "A/AAAA",
            Status::Ok,
            addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            None,
        )
    });

    // Reverse DNS of each address → this host.
    for ip in &addresses {
        let rev = reverse_name(*ip);
        let ptr = resolver.lookup(&rev, RecordType::PTR).await;
        let names: Vec<String> = match &ptr {
            Lookup::Found(r) => r
                .iter()
                .filter_map(|r| match r {
                    RData::PTR(p) => Some(p.0.to_string()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let publish = Some(format!("{rev}. PTR {host}.  (set by whoever holds {ip})"));
        out.push(if names.is_empty() {
            finding(
                format!("PTR {ip}"),
                Status::Missing,
                describe(&ptr),
                publish,
            )
        } else if names.iter().any(|n| same_name(n, host)) {
            finding(format!("PTR {ip}"), Status::Ok, names.join(", "), None)
        } else {
            finding(
                format!("PTR {ip}"),
                Status::Wrong,
                names.join(", "),
                publish,
            )
        });
    }

    // SPF: the relay sends from this host's addresses; each must pass.
    let spf_lookup = resolver.lookup(domain, RecordType::TXT).await;
    let spf: Vec<String> = txts(&spf_lookup)
        .into_iter()
        .filter(|t| ptt_spf::is_spf_record(t.as_bytes()))
        .collect();
    // The relay sends from this host: name it, whatever the MX says.
    let publish_spf = Some(format!("{domain}. TXT \"v=spf1 a:{host} -all\""));
    out.push(match spf.as_slice() {
        [] => finding("SPF", Status::Missing, describe(&spf_lookup), publish_spf),
        [record] => {
            let mut failing = Vec::new();
            for ip in &addresses {
                let request = Request::mail_from(*ip, &format!("postmaster@{domain}"), host);
                let result = super::evaluate::spf(resolver, request).await;
                if result.result != SpfResult::Pass {
                    failing.push(format!("{ip}: {}", result.result.as_str()));
                }
            }
            if addresses.is_empty() {
                finding(
                    "SPF",
                    Status::Wrong,
                    format!("{record} (no address of {host} to check)"),
                    publish_spf,
                )
            } else if failing.is_empty() {
                finding("SPF", Status::Ok, record.clone(), None)
            } else {
                finding(
                    "SPF",
                    Status::Wrong,
                    format!("{record} ({})", failing.join(", ")),
                    publish_spf,
                )
            }
        }
        many => finding(
            "SPF",
            Status::Wrong,
            format!("{} SPF records: {}", many.len(), many.join(" | ")),
            publish_spf,
        ),
    });

    // DKIM: each published-to-be selector holds its key.
    if config.signer.is_some()
        && let Ok(store) = crate::service::signer::store(config)
        && let Ok(file) = store.read()
    {
        use crate::service::signer::keys::Want;
        for entry in file.keys.iter().filter(|k| k.want() == Want::Key) {
            let Ok(key) = store.key(&entry.selector) else {
                continue;
            };
            let want = key.key_record().to_string();
            let name = format!("{}._domainkey.{domain}", entry.selector);
            let lookup = resolver.lookup(&name, RecordType::TXT).await;
            let found = txts(&lookup);
            let check = format!("DKIM {} ({})", entry.selector, entry.state);
            let publish = Some(format!("{name}. TXT \"{want}\""));
            out.push(if found.is_empty() {
                finding(check, Status::Missing, describe(&lookup), publish)
            } else if found.iter().any(|t| key_of(t) == key_of(&want)) {
                finding(check, Status::Ok, "matches its key", None)
            } else {
                finding(check, Status::Wrong, "does not match its key", publish)
            });
        }
    }

    // DMARC with rua.
    let name = format!("_dmarc.{domain}");
    let lookup = resolver.lookup(&name, RecordType::TXT).await;
    let dmarc: Vec<String> = txts(&lookup)
        .into_iter()
        .filter(|t| ptt_dmarc::record::is_dmarc_record(t))
        .collect();
    let publish = Some(format!(
        "{name}. TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}\""
    ));
    out.push(match dmarc.as_slice() {
        [] => finding("DMARC", Status::Missing, describe(&lookup), publish),
        [record] => match ptt_dmarc::DmarcRecord::parse(record) {
            Ok(r) if r.rua.as_ref().is_some_and(|u| !u.is_empty()) => {
                finding("DMARC", Status::Ok, record.clone(), None)
            }
            Ok(_) => finding(
                "DMARC",
                Status::Wrong,
                format!("{record} (no rua=: no reports)"),
                Some(format!(
                    "{name}. TXT \"{}; rua=mailto:postmaster@{domain}\"",
                    record.trim_end().trim_end_matches(';')
                )),
            ),
            Err(e) => finding("DMARC", Status::Wrong, format!("{record} ({e})"), publish),
        },
        many => finding(
            "DMARC",
            Status::Wrong,
            format!("{} DMARC records", many.len()),
            publish,
        ),
    });

    if let Some(mode) = &config.dns.mta_sts {
        out.extend(mta_sts(config, resolver, mode).await);
    }
    if let Some(rua) = &config.dns.tls_rpt {
        let name = format!("_smtp._tls.{domain}");
        let lookup = resolver.lookup(&name, RecordType::TXT).await;
        let found: Vec<String> = txts(&lookup)
            .into_iter()
            .filter(|t| t.starts_with("v=TLSRPTv1"))
            .collect();
        let publish = Some(format!("{name}. TXT \"v=TLSRPTv1; rua={rua}\""));
        out.push(match found.as_slice() {
            [] => finding("TLS-RPT", Status::Missing, describe(&lookup), publish),
            [r] if r.contains(rua.as_str()) => finding("TLS-RPT", Status::Ok, r.clone(), None),
            other => finding("TLS-RPT", Status::Wrong, other.join(" | "), publish),
        });
    }
    if config.dns.dane {
        out.push(tlsa(config, resolver).await);
    }
    out
}

/// `_mta-sts` TXT, and the policy over HTTPS naming this host with `mode`.
async fn mta_sts(config: &Config, resolver: &Resolver, mode: &str) -> Vec<Finding> {
    let domain = config.domain.as_str();
    let host = config.hostname.as_str();
    let name = format!("_mta-sts.{domain}");
    let lookup = resolver.lookup(&name, RecordType::TXT).await;
    let found: Vec<String> = txts(&lookup)
        .into_iter()
        .filter(|t| t.starts_with("v=STSv1"))
        .collect();
    let publish = Some(format!(
        "{name}. TXT \"v=STSv1; id={}\"",
        super::super::service::trace::unix_now()
    ));
    let mut out = vec![match found.as_slice() {
        [r] if r.contains("id=") => finding("MTA-STS TXT", Status::Ok, r.clone(), None),
        [] => finding("MTA-STS TXT", Status::Missing, describe(&lookup), publish),
        other => finding("MTA-STS TXT", Status::Wrong, other.join(" | "), publish),
    }];
    let url_host = format!("mta-sts.{domain}");
    let want = format!("version: STSv1\nmode: {mode}\nmx: {host}\nmax_age: 604800\n");
    let publish = Some(format!(
        "https://{url_host}/.well-known/mta-sts.txt serving:\n{want}"
    ));
    let fetched = match crate::net::tls::verified_connector(config.dns.https_ca.as_deref()) {
        Ok(connector) => crate::net::https::mta_sts_policy(resolver, &connector, &url_host).await,
        Err(e) => Err(e),
    };
    out.push(match fetched {
        Err(e) => finding("MTA-STS policy", Status::Missing, e, publish),
        Ok(body) => {
            let field = |k: &str| {
                body.lines()
                    .filter_map(|l| l.split_once(':'))
                    .filter(|(key, _)| key.trim() == k)
                    .map(|(_, v)| v.trim().to_string())
                    .collect::<Vec<_>>()
            };
            let mx_ok = field("mx").iter().any(|p| match p.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(_, rest)| same_name(rest, suffix)),
                None => same_name(p, host),
            });
            let mode_ok = field("mode").first().is_some_and(|m| m == mode);
            let version_ok = field("version").first().is_some_and(|v| v == "STSv1");
            let summary = body.replace('\n', "; ").trim_end_matches("; ").to_string();
            if mx_ok && mode_ok && version_ok {
                finding("MTA-STS policy", Status::Ok, summary, None)
            } else {
                finding("MTA-STS policy", Status::Wrong, summary, publish)
            }
        }
    });
    out
}

/// `_25._tcp.HOST` TLSA 3 1 1 for the receiver's current certificate.
async fn tlsa(config: &Config, resolver: &Resolver) -> Finding {
    let host = &config.hostname;
    let name = format!("_25._tcp.{host}");
    let cert_path = config
        .tls
        .cert
        .clone()
        .filter(|p| p.is_file())
        .or_else(|| {
            Some(config.state_of(ServiceName::Receiver).join("acme/cert.pem"))
                .filter(|p| p.is_file())
        })
        .unwrap_or_else(|| config.state_of(ServiceName::Receiver).join("tls/cert.pem"));
    let Some(spki_hash) = std::fs::read(&cert_path)
        .ok()
        .and_then(|pem| crate::net::acme::spki(&pem))
        .map(sha2::Sha256::digest)
    else {
        return finding(
            "TLSA",
            Status::Missing,
            format!("no certificate at {}", cert_path.display()),
            None,
        );
    };
    let hex: String = spki_hash.iter().map(|b| format!("{b:02x}")).collect();
    let publish = Some(format!("{name}. TLSA 3 1 1 {hex}"));
    let lookup = resolver.lookup(&name, RecordType::TLSA).await;
    let records: Vec<(u8, u8, u8, Vec<u8>)> = match &lookup {
        Lookup::Found(r) => r
            .iter()
            .filter_map(|r| match r {
                RData::TLSA(t) => Some((
                    u8::from(t.cert_usage),
                    u8::from(t.selector),
                    u8::from(t.matching),
                    t.cert_data.clone(),
                )),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if records.is_empty() {
        return finding("TLSA", Status::Missing, describe(&lookup), publish);
    }
    if records
        .iter()
        .any(|(u, s, m, d)| *u == 3 && *s == 1 && *m == 1 && d.as_slice() == spki_hash.as_slice())
    {
        finding("TLSA", Status::Ok, format!("3 1 1 {hex}"), None)
    } else {
        finding(
            "TLSA",
            Status::Wrong,
            "no record matches the receiver's certificate",
            publish,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.7".parse().unwrap()),
            "7.2.0.192.in-addr.arpa"
        );
        assert!(reverse_name("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0."));
        assert!(reverse_name("2001:db8::1".parse().unwrap()).ends_with("8.b.d.0.1.0.0.2.ip6.arpa"));
    }
}
