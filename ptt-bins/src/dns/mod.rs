//! DNS for the verbs, over hickory: a stub resolver that answers the Sans-IO
//! evaluators' questions (SPF, DKIM, DMARC ask "TXT for X?" and take the
//! answer), and RFC 2136 UPDATE signed with TSIG for publishing records.
//!
//! - [`Resolver`]: `lookup(name, type)` gives a [`Lookup`]: the records, no
//!   records (NOERROR/NODATA), NXDOMAIN, or a failure (timeout, SERVFAIL,
//!   REFUSED...) that the evaluators turn into `temperror`.
//! - [`TsigKey`]: `NAME:ALGORITHM:SECRET` as the command line takes it.
//! - [`Updater`]: the zone of a name, signed queries, and
//!   [`Updater::replace_txt`], one atomic UPDATE that removes chosen TXT
//!   records of a name and adds one.
//! - [`txt_strings`]: a long text split into the at most 255-byte strings a
//!   TXT record is made of.

pub(crate) mod check;
pub(crate) mod evaluate;
pub(crate) mod publish;
pub(crate) mod secure;

use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle as _;
use hickory_net::{DnsError, NetError};
use hickory_proto::op::{DnsRequest, Message, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{DNSClass, Name, RData, RecordType, TSigner};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};

/// How long one DNS exchange may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// `HOST:PORT` (an address or a name) as a socket address.
pub(crate) fn server_addr(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("--dns {text:?}: not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("--dns {text:?}: no address"))
}

/// A name as hickory wants it, fully qualified (so no search list applies).
pub(crate) fn fqdn(name: &str) -> Result<Name, String> {
    let mut n = Name::from_ascii(name).map_err(|e| format!("bad DNS name {name:?}: {e}"))?;
    n.set_fqdn(true);
    Ok(n)
}

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Records of the type asked (CNAMEs already followed).
    Found(Vec<RData>),
    /// The name exists, without records of that type.
    NoRecords,
    /// The name does not exist.
    NxDomain,
    /// Timeout, SERVFAIL, REFUSED or any other failure, with what it was.
    Failed(String),
}

impl Lookup {
    /// The records of type `rtype` among an answer's (a CNAME chain's
    /// records are left out): `Found`, or `NoRecords` when there are none.
    pub(crate) fn of_answers<'r>(
        answers: impl IntoIterator<Item = &'r hickory_proto::rr::Record>,
        rtype: RecordType,
    ) -> Lookup {
        let data: Vec<RData> = answers
            .into_iter()
            .filter(|r| r.record_type() == rtype)
            .map(|r| r.data.clone())
            .collect();
        if data.is_empty() {
            Lookup::NoRecords
        } else {
            Lookup::Found(data)
        }
    }
}

/// A caching stub resolver, either the system's or one server, with an
/// optional local zone of TXT records answered before any server is asked
/// (`ptt up` serves its own domain's records that way).
pub(crate) struct Resolver {
    inner: TokioResolver,
    local_txt: std::collections::HashMap<String, Vec<String>>,
    local_zones: Vec<String>,
    /// DKIM key records parsed once for every message this resolver serves
    /// (keyed by the record's text, so the DNS answer stays the authority).
    dkim_keys: std::sync::Arc<ptt_dkim::SharedKeyCache>,
}

/// How many DKIM key records a process keeps parsed (each at most
/// `ptt_dkim::CACHED_RECORD_MAX` bytes of text: a few MiB at worst).
const DKIM_KEYS_KEPT: usize = 1024;

impl Resolver {
    /// The resolver of `[dns]`, with its local records file answered first.
    pub(crate) fn for_config(config: &crate::config::Config) -> Result<Resolver, String> {
        let mut resolver = match Resolver::new(config.dns.resolver) {
            Ok(r) => r,
            // No system resolver configured: only the local records answer.
            Err(_) if config.dns.records.is_some() => {
                Resolver::new(Some(std::net::SocketAddr::from(([127, 0, 0, 1], 53))))?
            }
            Err(e) => return Err(e),
        };
        if let Some(path) = &config.dns.records {
            let records = LocalRecords::load(path)?;
            for zone in &records.zones {
                resolver.add_local_zone(zone);
            }
            for (name, texts) in &records.txt {
                for text in texts {
                    resolver.add_local_txt(name, text);
                }
            }
        }
        Ok(resolver)
    }

    /// A resolver asking `server` (UDP, then TCP on truncation), or the
    /// system's configured servers when `None`. Needs a tokio runtime.
    pub(crate) fn new(server: Option<SocketAddr>) -> Result<Resolver, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    provider,
                )
            }
            None => TokioResolver::builder(provider)
                .map_err(|e| format!("reading the system's DNS configuration: {e}"))?,
        };
        let opts = builder.options_mut();
        opts.timeout = TIMEOUT;
        opts.attempts = 2;
        opts.ndots = 0;
        // Mail sees DNS as the Internet does: never /etc/hosts (it answers
        // 127.0.0.1's PTR with the machine's own names, for one).
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        let inner = builder
            .build()
            .map_err(|e| format!("building the resolver: {e}"))?;
        Ok(Resolver {
            inner,
            local_txt: std::collections::HashMap::new(),
            local_zones: Vec::new(),
            dkim_keys: std::sync::Arc::new(ptt_dkim::SharedKeyCache::new(DKIM_KEYS_KEPT)),
        })
    }

    /// The parsed DKIM keys this resolver's verifications share.
    pub(crate) fn dkim_keys(&self) -> std::sync::Arc<ptt_dkim::SharedKeyCache> {
        self.dkim_keys.clone()
    }

    /// Makes this resolver authoritative for `zone`: names in it that have no
    /// local records do not exist (NXDOMAIN), and no server is asked.
    pub(crate) fn add_local_zone(&mut self, zone: &str) {
        self.local_zones.push(local_key(zone));
    }

    /// Answers TXT questions for `name` with `text` (one record, split into
    /// 255-byte strings), without asking any server; other types of `name`
    /// get no records.
    pub(crate) fn add_local_txt(&mut self, name: &str, text: &str) {
        self.local_txt
            .entry(local_key(name))
            .or_default()
            .push(text.to_string());
    }

    /// Looks `name` up for records of `rtype`.
    pub(crate) async fn lookup(&self, name: &str, rtype: RecordType) -> Lookup {
        if let Some(texts) = self.local_txt.get(&local_key(name)) {
            if rtype != RecordType::TXT {
                return Lookup::NoRecords;
            }
            return Lookup::Found(
                texts
                    .iter()
                    .map(|t| RData::TXT(TXT::new(txt_strings(t))))
                    .collect(),
            );
        }
        let key = local_key(name);
        if self
            .local_zones
            .iter()
            .any(|z| key == *z || key.ends_with(&format!(".{z}")))
        {
            return if self.local_zones.contains(&key) {
                Lookup::NoRecords
            } else {
                Lookup::NxDomain
            };
        }
        let name = match fqdn(name) {
            Ok(n) => n,
            Err(e) => return Lookup::Failed(e),
        };
        match self.inner.lookup(name, rtype).await {
            Ok(lookup) => Lookup::of_answers(lookup.answers(), rtype),
            // hickory reports REFUSED, SERVFAIL and the like as "no records"
            // too: only NOERROR and NXDOMAIN are answers.
            Err(NetError::Dns(DnsError::NoRecordsFound(none))) => match none.response_code {
                ResponseCode::NoError => Lookup::NoRecords,
                ResponseCode::NXDomain => Lookup::NxDomain,
                code => Lookup::Failed(format!("the server answered {code}")),
            },
            Err(e) => Lookup::Failed(e.to_string()),
        }
    }
}

fn local_key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The strings of a TXT record, joined (how SPF, DKIM and DMARC read them).
pub(crate) fn txt_joined(txt: &TXT) -> Vec<u8> {
    txt.txt_data
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect()
}

/// Splits `text` into strings of at most 255 bytes (on character
/// boundaries), as one TXT record must hold a long value.
pub(crate) fn txt_strings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        if current.len() + ch.len_utf8() > 255 {
            out.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

/// A TSIG key: `NAME:ALGORITHM:SECRET` (base64 secret, as `tsig-keygen`
/// writes it; algorithms hmac-sha256, hmac-sha384, hmac-sha512).
#[derive(Clone)]
pub(crate) struct TsigKey {
    name: Name,
    algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "TsigKey({} {:?})", self.name, self.algorithm)
    }
}

impl FromStr for TsigKey {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.splitn(3, ':');
        let (Some(name), Some(alg), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("--tsig: expected NAME:ALGORITHM:SECRET".to_string());
        };
        let algorithm = match alg.to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => {
                return Err(format!(
                    "--tsig: algorithm {other:?} is not one of hmac-sha256, hmac-sha384, hmac-sha512"
                ));
            }
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|e| format!("--tsig: the secret is not base64 ({e})"))?;
        if secret.is_empty() {
            return Err("--tsig: empty secret".to_string());
        }
        Ok(TsigKey {
            name: fqdn(name).map_err(|e| format!("--tsig: key name: {e}"))?,
            algorithm,
            secret,
        })
    }
}

impl TsigKey {
    fn signer(&self) -> Result<TSigner, String> {
        TSigner::new(
            self.secret.clone(),
            self.algorithm.clone(),
            self.name.clone(),
            300,
        )
        .map_err(|e| format!("TSIG key: {e}"))
    }
}

/// Talks to one primary server with TSIG-signed messages.
pub(crate) struct Updater {
    client: Client<TokioRuntimeProvider>,
}

impl Updater {
    /// A client for `server` signing with `key`. Needs a tokio runtime.
    pub(crate) fn connect(server: SocketAddr, key: &TsigKey) -> Result<Updater, String> {
        let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
            .with_timeout(Some(TIMEOUT))
            .with_signer(Some(key.signer()?))
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        tokio::spawn(background);
        Ok(Updater { client })
    }

    /// Sends one message, returns the response or why there is none.
    async fn exchange(&self, message: Message) -> Result<Message, String> {
        let mut responses = self.client.send(DnsRequest::from(message));
        match responses.next().await {
            Some(Ok(response)) => Ok(response.into_message()),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("no response".to_string()),
        }
    }

    /// A signed query; the response's records of `rtype` at `name`.
    pub(crate) async fn query(&self, name: &Name, rtype: RecordType) -> Result<Message, String> {
        let mut client = self.client.clone();
        let response = client
            .query(name.clone(), DNSClass::IN, rtype)
            .await
            .map_err(|e| format!("query {name} {rtype}: {e}"))?;
        Ok(response.into_message())
    }

    /// The zone `name` belongs to: the owner of the SOA record in the answer
    /// or in the authority section of a SOA query.
    pub(crate) async fn zone_of(&self, name: &Name) -> Result<Name, String> {
        let response = self.query(name, RecordType::SOA).await?;
        if response.metadata.response_code != ResponseCode::NoError
            && response.metadata.response_code != ResponseCode::NXDomain
        {
            return Err(format!(
                "SOA query for {name}: {}",
                response.metadata.response_code
            ));
        }
        response
            .answers
            .iter()
            .chain(response.authorities.iter())
            .find(|r| r.record_type() == RecordType::SOA)
            .map(|r| r.name.clone())
            .ok_or_else(|| format!("the server is not authoritative for a zone holding {name}"))
    }

    /// The TXT records at `name`, each one's strings joined.
    pub(crate) async fn txt(&self, name: &Name) -> Result<Vec<TXT>, String> {
        let response = self.query(name, RecordType::TXT).await?;
        match response.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => return Err(format!("TXT query for {name}: {code}")),
        }
        Ok(response
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) if r.name == *name => Some(t.clone()),
                _ => None,
            })
            .collect())
    }
}

/// Records answered before the resolver is asked, from a TOML file:
///
/// ```toml
/// # the zones answered only from here (other names go to the resolver)
/// zones = ["example.test"]
/// [txt]
/// "example.test" = ["v=spf1 ip4:127.0.0.0/8 -all"]
/// "_dmarc.example.test" = ["v=DMARC1; p=reject"]
/// ```
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalRecords {
    /// Zones answered only from this file.
    #[serde(default)]
    pub(crate) zones: Vec<String>,
    /// TXT records by name.
    #[serde(default)]
    pub(crate) txt: std::collections::BTreeMap<String, Vec<String>>,
}

impl LocalRecords {
    /// Reads a records file.
    pub(crate) fn load(path: &std::path::Path) -> Result<LocalRecords, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_strings_split_at_255_bytes() {
        assert_eq!(txt_strings(""), vec![String::new()]);
        assert_eq!(txt_strings("v=spf1 -all"), vec!["v=spf1 -all".to_string()]);
        let long = "a".repeat(600);
        let parts = txt_strings(&long);
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            vec![255, 255, 90]
        );
        assert_eq!(parts.concat(), long);
    }

    #[test]
    fn tsig_key_specs() {
        let key: TsigKey = "upd-key:hmac-sha256:c2VjcmV0".parse().unwrap();
        assert_eq!(key.secret, b"secret");
        assert!(!format!("{key:?}").contains("c2VjcmV0"));
        assert!("upd-key:hmac-md5:c2VjcmV0".parse::<TsigKey>().is_err());
        assert!("upd-key:hmac-sha256:!!".parse::<TsigKey>().is_err());
        assert!("upd-key".parse::<TsigKey>().is_err());
    }
}
