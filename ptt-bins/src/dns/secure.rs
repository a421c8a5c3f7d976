//! Lookups whose DNSSEC status matters (DANE, RFC 7672): asked of the
//! configured resolver with the AD and DO bits set, and each answer
//! classified as the resolver vouches for it: [`Security::Secure`] (it
//! validated the answer: AD), [`Security::Insecure`] (no AD: unsigned, or
//! a resolver that does not validate), [`Security::Bogus`] (SERVFAIL that
//! goes away with checking disabled: the signatures are wrong),
//! [`Security::TimedOut`], or another failure. The relay trusts TLSA
//! records only when they are secure, and never downgrades on a bogus or
//! timed-out answer.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::xfer::DnsHandle as _;
use hickory_proto::op::{DnsRequest, Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use super::fqdn;

/// How long one question may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the resolver says of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Security {
    /// Validated (AD).
    Secure,
    /// Not validated: no signatures, or a resolver that does not check.
    Insecure,
    /// The signatures do not validate.
    Bogus,
    /// No answer in time.
    TimedOut,
    /// Another failure (REFUSED, a SERVFAIL that stays with CD, a
    /// transport error).
    Failed(String),
}

impl fmt::Display for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::Secure => f.write_str("secure"),
            Security::Insecure => f.write_str("insecure"),
            Security::Bogus => f.write_str("bogus (DNSSEC validation failed)"),
            Security::TimedOut => f.write_str("timed out"),
            Security::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// An answer and what it is worth.
#[derive(Debug, Clone)]
pub(crate) struct SecureAnswer {
    /// Secure, insecure, bogus…
    pub(crate) security: Security,
    /// The records of the type asked for (empty: none, or no answer).
    pub(crate) records: Vec<RData>,
}

/// A client of the configured resolver for DNSSEC-aware questions.
pub(crate) struct SecureResolver {
    client: Client<TokioRuntimeProvider>,
    server: SocketAddr,
}

impl SecureResolver {
    /// A client of `server`. Needs a tokio runtime.
    pub(crate) fn connect(server: SocketAddr) -> SecureResolver {
        let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
            .with_timeout(Some(TIMEOUT))
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        tokio::spawn(background);
        SecureResolver { client, server }
    }

    /// The server asked.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server
    }

    async fn ask(
        &self,
        name: &str,
        rtype: RecordType,
        checking_disabled: bool,
    ) -> Result<Message, Security> {
        let name = fqdn(name).map_err(Security::Failed)?;
        let mut message = Message::query();
        message.add_query(Query::query(name, rtype));
        message.metadata.recursion_desired = true;
        // RFC 6840 §5.7: AD in a query asks for AD in the answer.
        message.metadata.authentic_data = true;
        message.metadata.checking_disabled = checking_disabled;
        let mut edns = Edns::new();
        edns.set_dnssec_ok(true);
        edns.set_max_payload(1232);
        message.set_edns(edns);
        let mut responses = self.client.send(DnsRequest::from(message));
        match tokio::time::timeout(TIMEOUT + Duration::from_secs(1), responses.next()).await {
            Err(_) => Err(Security::TimedOut),
            Ok(Some(Ok(response))) => Ok(response.into_message()),
            Ok(Some(Err(e))) => {
                let text = e.to_string();
                if text.to_ascii_lowercase().contains("timed out") || text.contains("timeout") {
                    Err(Security::TimedOut)
                } else {
                    Err(Security::Failed(text))
                }
            }
            Ok(None) => Err(Security::Failed("no response".into())),
        }
    }

    /// Looks `name` up for `rtype` and says what the answer is worth.
    pub(crate) async fn lookup(&self, name: &str, rtype: RecordType) -> SecureAnswer {
        let fail = |security| SecureAnswer {
            security,
            records: Vec::new(),
        };
        let message = match self.ask(name, rtype, false).await {
            Ok(m) => m,
            Err(security) => return fail(security),
        };
        match message.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => SecureAnswer {
                security: if message.metadata.authentic_data {
                    Security::Secure
                } else {
                    Security::Insecure
                },
                records: message
                    .answers
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| r.data.clone())
                    .collect(),
            },
            ResponseCode::ServFail => match self.ask(name, rtype, true).await {
                Ok(unchecked)
                    if matches!(
                        unchecked.metadata.response_code,
                        ResponseCode::NoError | ResponseCode::NXDomain
                    ) =>
                {
                    fail(Security::Bogus)
                }
                Ok(_) => fail(Security::Failed("SERVFAIL".into())),
                Err(security) => fail(security),
            },
            code => fail(Security::Failed(format!("the resolver answered {code}"))),
        }
    }

    /// Whether the resolver validates: an answer for `probe` (a signed
    /// name) carries AD.
    pub(crate) async fn validates(&self, probe: &str) -> Security {
        self.lookup(probe, RecordType::SOA).await.security
    }
}
