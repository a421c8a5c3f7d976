//! DNS over one smoltcp UDP socket: the questions of every session's
//! evaluators sent to one resolver, identical ones merged, answers matched
//! by id and question, lost ones sent again, and each answer handed to
//! everyone who asked. Messages are encoded and decoded with hickory-proto
//! (which does no I/O itself).

use hickory_proto::op::{Message, MessageType, Query as WireQuery, ResponseCode};
use ptt_dns::{Answer, Query};
use smoltcp::socket::udp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpEndpoint;

use crate::dns::Lookup;
use crate::dns::evaluate::{answer_of, record_type};

/// How long to wait for an answer before sending the question again.
const TRY_AFTER: Duration = Duration::from_secs(3);
/// How many times a question is sent before it is given up (a temporary
/// failure).
const TRIES: u8 = 2;

/// Who is waiting for an answer: a session's number.
pub(crate) type Asker = u64;

/// A question out.
struct Pending {
    id: u16,
    query: Query,
    askers: Vec<Asker>,
    /// When it was last sent; `None`: not sent yet.
    sent: Option<Instant>,
    tries: u8,
}

/// The DNS client of the loop.
pub(crate) struct Dns {
    server: IpEndpoint,
    pending: Vec<Pending>,
    /// The next message id, from a random start.
    next_id: u16,
}

impl Dns {
    /// A client asking `server`; `seed` starts the message ids.
    pub(crate) fn new(server: IpEndpoint, seed: u16) -> Dns {
        Dns {
            server,
            pending: Vec::new(),
            next_id: seed,
        }
    }

    /// `asker` wants the answer to `query`.
    pub(crate) fn ask(&mut self, query: Query, asker: Asker) {
        let same =
            |p: &Pending| p.query.qtype == query.qtype && same_name(&p.query.name, &query.name);
        if let Some(p) = self.pending.iter_mut().find(|p| same(p)) {
            if !p.askers.contains(&asker) {
                p.askers.push(asker);
            }
            return;
        }
        self.next_id = self.next_id.wrapping_add(0x9e37);
        self.pending.push(Pending {
            id: self.next_id,
            query,
            askers: vec![asker],
            sent: None,
            tries: 0,
        });
    }

    /// Forgets what `asker` asked (its session has ended).
    pub(crate) fn forget(&mut self, asker: Asker) {
        for p in &mut self.pending {
            p.askers.retain(|a| *a != asker);
        }
        self.pending.retain(|p| !p.askers.is_empty());
    }

    /// Reads the answers that have come, sends what is due, and returns
    /// every answer with who asked it (a question tried too often comes
    /// back as a temporary failure).
    pub(crate) fn poll(
        &mut self,
        socket: &mut udp::Socket,
        now: Instant,
    ) -> Vec<(Asker, Query, Answer)> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while socket.can_recv() {
            let Ok((n, meta)) = socket.recv_slice(&mut buf) else {
                break;
            };
            if meta.endpoint != self.server {
                continue;
            }
            if let Some(reply) = buf.get(..n) {
                self.take_reply(reply, &mut out);
            }
        }
        let mut i = 0;
        while let Some(p) = self.pending.get_mut(i) {
            let due = p.sent.is_none_or(|at| now >= at + TRY_AFTER);
            if due && p.tries >= TRIES {
                let p = self.pending.swap_remove(i);
                let why = format!("no answer from {} after {TRIES} tries", self.server);
                for asker in p.askers {
                    out.push((asker, p.query.clone(), Answer::TempError(why.clone())));
                }
                continue;
            }
            if due && socket.can_send() {
                match encode(p.id, &p.query) {
                    Ok(bytes) => {
                        // A full send buffer: tried again on the next turn.
                        if socket.send_slice(&bytes, self.server).is_ok() {
                            p.sent = Some(now);
                            p.tries += 1;
                        }
                    }
                    Err(why) => {
                        let p = self.pending.swap_remove(i);
                        for asker in p.askers {
                            out.push((asker, p.query.clone(), Answer::TempError(why.clone())));
                        }
                        continue;
                    }
                }
            }
            i += 1;
        }
        out
    }

    /// When the loop must turn again for a question to be sent again.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|p| p.sent.map_or(Instant::from_millis(0), |at| at + TRY_AFTER))
            .min()
    }

    fn take_reply(&mut self, reply: &[u8], out: &mut Vec<(Asker, Query, Answer)>) {
        let Ok(message) = Message::from_vec(reply) else {
            return;
        };
        if message.metadata.message_type != MessageType::Response {
            return;
        }
        let Some(at) = self.pending.iter().position(|p| {
            p.id == message.metadata.id
                && message.queries.first().is_some_and(|q| {
                    q.query_type() == record_type(p.query.qtype)
                        && same_name(&q.name().to_ascii(), &p.query.name)
                })
        }) else {
            // Not ours (late, spoofed or already answered).
            return;
        };
        let p = self.pending.swap_remove(at);
        let answer = answer_of(p.query.qtype, lookup_of(&message, &p.query));
        for asker in p.askers {
            out.push((asker, p.query.clone(), answer.clone()));
        }
    }
}

/// Names equal without case and the root's dot.
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// A question as a DNS message (recursion desired, EDNS with 1232 bytes).
fn encode(id: u16, query: &Query) -> Result<Vec<u8>, String> {
    let name = crate::dns::fqdn(query.name.trim_end_matches('.'))?;
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(WireQuery::query(name, record_type(query.qtype)));
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(1232);
    message.set_edns(edns);
    message
        .to_vec()
        .map_err(|e| format!("cannot encode the question for {}: {e}", query.name))
}

/// What a reply says of `query`, as the tokio resolver reports it.
fn lookup_of(message: &Message, query: &Query) -> Lookup {
    if message.metadata.truncation {
        // Over UDP only: a record set this large is not one SPF, DKIM or
        // DMARC would use.
        return Lookup::Failed("the answer was truncated".into());
    }
    match message.metadata.response_code {
        ResponseCode::NoError => Lookup::of_answers(&message.answers, record_type(query.qtype)),
        ResponseCode::NXDomain => Lookup::NxDomain,
        code => Lookup::Failed(format!("the server answered {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{RData, Record, rdata::TXT};
    use ptt_dns::QueryType;

    fn reply_to(question: &[u8], records: &[&str], code: ResponseCode) -> Vec<u8> {
        let asked = Message::from_vec(question).expect("a question");
        let mut reply = Message::response(asked.metadata.id, asked.metadata.op_code);
        reply.metadata.response_code = code;
        reply.queries = asked.queries.clone();
        let name = asked.queries[0].name().clone();
        for text in records {
            reply.answers.push(Record::from_rdata(
                name.clone(),
                300,
                RData::TXT(TXT::new(vec![text.to_string()])),
            ));
        }
        reply.to_vec().expect("encodes")
    }

    #[test]
    fn an_answer_goes_to_every_asker_and_a_stranger_s_is_ignored() {
        let mut dns = Dns::new(
            IpEndpoint::new(std::net::Ipv4Addr::new(192, 0, 2, 1).into(), 53),
            7,
        );
        let q = Query::new("Example.TEST", QueryType::Txt);
        dns.ask(q.clone(), 1);
        dns.ask(Query::new("example.test.", QueryType::Txt), 2);
        assert_eq!(dns.pending.len(), 1, "the same question is asked once");
        let wire = encode(dns.pending[0].id, &dns.pending[0].query).expect("encodes");

        // A reply with another id is not taken.
        let mut stranger =
            Message::from_vec(&reply_to(&wire, &["v=spf1 -all"], ResponseCode::NoError))
                .expect("decodes");
        stranger.metadata.id ^= 1;
        let mut out = Vec::new();
        dns.take_reply(&stranger.to_vec().expect("encodes"), &mut out);
        assert!(out.is_empty());

        dns.take_reply(
            &reply_to(&wire, &["v=spf1 -all"], ResponseCode::NoError),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        for (_, query, answer) in &out {
            assert_eq!(query.qtype, QueryType::Txt);
            assert_eq!(answer, &Answer::Txt(vec![b"v=spf1 -all".to_vec()]));
        }
        assert!(dns.pending.is_empty());
    }

    #[test]
    fn nxdomain_servfail_and_empty_answers_keep_their_meaning() {
        let q = Query::new("x.example.test", QueryType::Txt);
        let wire = encode(1, &q).expect("encodes");
        let of = |code, records: &[&str]| {
            let m = Message::from_vec(&reply_to(&wire, records, code)).expect("decodes");
            answer_of(q.qtype, lookup_of(&m, &q))
        };
        assert_eq!(of(ResponseCode::NXDomain, &[]), Answer::NxDomain);
        assert_eq!(of(ResponseCode::NoError, &[]), Answer::NoRecords);
        assert!(matches!(
            of(ResponseCode::ServFail, &[]),
            Answer::TempError(_)
        ));
    }

    #[test]
    fn a_session_that_ends_takes_its_questions_with_it() {
        let mut dns = Dns::new(
            IpEndpoint::new(std::net::Ipv4Addr::new(192, 0, 2, 1).into(), 53),
            7,
        );
        dns.ask(Query::new("a.test", QueryType::Txt), 1);
        dns.ask(Query::new("b.test", QueryType::Txt), 2);
        dns.ask(Query::new("b.test", QueryType::Txt), 1);
        dns.forget(1);
        assert_eq!(dns.pending.len(), 1);
        assert_eq!(dns.pending[0].askers, vec![2]);
    }
}
