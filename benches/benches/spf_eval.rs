//! SPF evaluation of a realistic include chain (a domain that includes a
//! mail provider, a marketing sender and an outsourced relay, the provider
//! splitting its netblocks over three more records), with every DNS answer
//! served from memory. Reference in the same run: viaspf 0.6, another Rust
//! SPF evaluator, on the same records through its `Lookup` trait (its
//! futures complete at once, so they are polled with `now_or_never`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use ptt_spf::{Answer, Evaluator, QueryType, Request, SpfResult};

/// (name, TXT).
const TXT: &[(&str, &str)] = &[
    (
        "example.com",
        "v=spf1 mx include:_spf.mailhost.example include:spf.marketing.example \
         include:relay.outsourced.example ip4:192.0.2.0/27 -all",
    ),
    (
        "_spf.mailhost.example",
        "v=spf1 include:_netblocks.mailhost.example include:_netblocks2.mailhost.example \
         include:_netblocks3.mailhost.example ~all",
    ),
    (
        "_netblocks.mailhost.example",
        "v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ip4:66.102.0.0/20 ip4:66.249.80.0/20 \
         ip4:72.14.192.0/18 ip4:74.125.0.0/16 ip4:108.177.8.0/21 ip4:173.194.0.0/16 \
         ip4:209.85.128.0/17 ip4:216.58.192.0/19 ip4:216.239.32.0/19 ~all",
    ),
    (
        "_netblocks2.mailhost.example",
        "v=spf1 ip6:2001:4860:4000::/36 ip6:2404:6800:4000::/36 ip6:2607:f8b0:4000::/36 \
         ip6:2800:3f0:4000::/36 ip6:2a00:1450:4000::/36 ip6:2c0f:fb50:4000::/36 ~all",
    ),
    (
        "_netblocks3.mailhost.example",
        "v=spf1 ip4:172.217.0.0/19 ip4:172.217.32.0/20 ip4:172.217.128.0/19 \
         ip4:172.217.160.0/20 ip4:172.217.192.0/19 ip4:172.253.56.0/21 ip4:172.253.112.0/20 \
         ip4:108.177.96.0/19 ip4:35.191.0.0/16 ip4:130.211.0.0/22 ~all",
    ),
    (
        "spf.marketing.example",
        "v=spf1 ip4:205.201.128.0/20 ip4:198.2.128.0/18 ip4:148.105.8.0/21 -all",
    ),
    (
        "relay.outsourced.example",
        "v=spf1 a:out1.relay.outsourced.example a:out2.relay.outsourced.example -all",
    ),
];

/// The client: inside the last netblock of the outsourced relay, so every
/// include before it is evaluated (10 DNS-querying terms in all).
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 42);

fn zone() -> HashMap<(String, QueryType), Answer> {
    let mut z = HashMap::new();
    for (name, txt) in TXT {
        z.insert(
            (name.to_string(), QueryType::Txt),
            Answer::Txt(vec![txt.as_bytes().to_vec()]),
        );
    }
    z.insert(
        ("example.com".into(), QueryType::Mx),
        Answer::Mx(vec!["mx1.example.com".into(), "mx2.example.com".into()]),
    );
    for (name, ip) in [
        ("mx1.example.com", Ipv4Addr::new(192, 0, 2, 100)),
        ("mx2.example.com", Ipv4Addr::new(192, 0, 2, 101)),
        (
            "out1.relay.outsourced.example",
            Ipv4Addr::new(203, 0, 113, 41),
        ),
        ("out2.relay.outsourced.example", CLIENT),
    ] {
        z.insert((name.into(), QueryType::A), Answer::A(vec![ip]));
    }
    z
}

fn ptt_eval(z: &HashMap<(String, QueryType), Answer>) -> SpfResult {
    let request = Request::mail_from(
        IpAddr::V4(CLIENT),
        "news@example.com",
        "out2.relay.outsourced.example",
    );
    Evaluator::run(request, |q| {
        z.get(&(q.name.to_ascii_lowercase(), q.qtype))
            .cloned()
            .unwrap_or(Answer::NxDomain)
    })
    .result
}

struct ViaLookup(HashMap<(String, QueryType), Answer>);

impl ViaLookup {
    fn get(&self, name: &viaspf::lookup::Name, t: QueryType) -> Option<&Answer> {
        let n = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        self.0.get(&(n, t))
    }
}

use viaspf::lookup::{Lookup, LookupError, LookupResult, Name};

#[async_trait::async_trait]
impl Lookup for ViaLookup {
    async fn lookup_a<'l, 'a>(&'l self, name: &'a Name) -> LookupResult<Vec<Ipv4Addr>> {
        match self.get(name, QueryType::A) {
            Some(Answer::A(v)) => Ok(v.clone()),
            _ => Err(LookupError::NoRecords),
        }
    }
    async fn lookup_aaaa<'l, 'a>(&'l self, name: &'a Name) -> LookupResult<Vec<Ipv6Addr>> {
        match self.get(name, QueryType::Aaaa) {
            Some(Answer::Aaaa(v)) => Ok(v.clone()),
            _ => Err(LookupError::NoRecords),
        }
    }
    async fn lookup_mx<'l, 'a>(&'l self, name: &'a Name) -> LookupResult<Vec<Name>> {
        match self.get(name, QueryType::Mx) {
            Some(Answer::Mx(v)) => Ok(v.iter().map(|n| Name::new(n).expect("name")).collect()),
            _ => Err(LookupError::NoRecords),
        }
    }
    async fn lookup_txt<'l, 'a>(&'l self, name: &'a Name) -> LookupResult<Vec<String>> {
        match self.get(name, QueryType::Txt) {
            Some(Answer::Txt(v)) => Ok(v
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect()),
            _ => Err(LookupError::NoRecords),
        }
    }
    async fn lookup_ptr<'l>(&'l self, _ip: IpAddr) -> LookupResult<Vec<Name>> {
        Err(LookupError::NoRecords)
    }
}

fn viaspf_eval(
    lookup: &ViaLookup,
    config: &viaspf::Config,
    sender: &viaspf::Sender,
) -> viaspf::SpfResult {
    viaspf::evaluate_sender(lookup, config, IpAddr::V4(CLIENT), sender, None)
        .now_or_never()
        .expect("in-memory lookups complete at once")
        .spf_result
}

fn bench(c: &mut Criterion) {
    let z = zone();
    assert_eq!(ptt_eval(&z), SpfResult::Pass);
    let via = ViaLookup(zone());
    let config = viaspf::Config::default();
    let sender = viaspf::Sender::from_address("news@example.com").expect("sender");
    assert_eq!(viaspf_eval(&via, &config, &sender), viaspf::SpfResult::Pass);

    let mut g = c.benchmark_group("spf_include_chain");
    g.bench_function("ptt-spf", |b| b.iter(|| ptt_eval(black_box(&z))));
    g.bench_function("viaspf (reference)", |b| {
        b.iter(|| viaspf_eval(black_box(&via), &config, &sender))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
