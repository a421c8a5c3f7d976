//! Whole conversations: the server and the client run against each other in
//! memory (a `Pair`, as in quinn-proto's tests), plus raw probes of the
//! server and proptest round trips.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use proptest::prelude::*;

use crate::client::{self, Client, ClientConfig, ClientEvent, Message, TlsMode};
use crate::command::{Body, Command, MailParams, Notify, Orcpt, RcptParams, Ret};
use crate::reply::{EnhancedCode, Reply};
use crate::sasl::Credentials;
use crate::server::{self, Event, Server, ServerConfig};
use crate::{ForwardPath, Mailbox, ReversePath, data};

type Policy = Box<dyn FnMut(&Event) -> Option<Reply>>;

/// A server and a client wired back to back; TLS is simulated (both sides
/// are told the handshake completed once both asked for it).
struct Pair {
    server: Server,
    client: Client,
    now: Duration,
    policy: Policy,
    /// Deliver bytes in pieces of at most this many octets.
    fragment: usize,
    server_events: Vec<Event>,
    client_events: Vec<ClientEvent>,
    /// Messages the server accepted.
    stored: Vec<Vec<u8>>,
    current: Vec<u8>,
    s2c: Vec<u8>,
    c2s: Vec<u8>,
    server_closed: bool,
    client_closed: bool,
    server_tls: bool,
    client_tls: bool,
}

impl Pair {
    fn new(sc: ServerConfig, cc: ClientConfig) -> Pair {
        let now = Duration::from_secs(1);
        let implicit = cc.tls == TlsMode::Implicit;
        Pair {
            server: Server::new(Arc::new(sc), now, implicit),
            client: Client::new(cc, now),
            now,
            policy: Box::new(|_| None),
            fragment: usize::MAX,
            server_events: Vec::new(),
            client_events: Vec::new(),
            stored: Vec::new(),
            current: Vec::new(),
            s2c: Vec::new(),
            c2s: Vec::new(),
            server_closed: false,
            client_closed: false,
            server_tls: false,
            client_tls: false,
        }
    }

    fn msg(from: &str, to: &[&str], body: &[u8]) -> Message {
        Message {
            from: ReversePath::parse(from, true).unwrap(),
            params: MailParams::default(),
            to: to
                .iter()
                .map(|t| (ForwardPath::parse(t, true).unwrap(), RcptParams::default()))
                .collect(),
            data: body.to_vec(),
        }
    }

    /// One round: each side runs until it waits; returns whether anything
    /// moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        // Server side.
        loop {
            match self.server.poll_output() {
                server::Output::Transmit(b) => {
                    self.s2c.extend(b);
                    moved = true;
                }
                server::Output::Event(e) => {
                    moved = true;
                    match &e {
                        Event::DataChunk(b) => self.current.extend_from_slice(b),
                        Event::DataStart { .. } | Event::Reset | Event::DataRefused { .. } => {
                            self.current.clear()
                        }
                        _ => {}
                    }
                    if e.needs_answer() {
                        match (self.policy)(&e) {
                            None => {
                                if matches!(e, Event::DataEnd { .. }) {
                                    self.stored.push(core::mem::take(&mut self.current));
                                }
                                self.server.accept().unwrap()
                            }
                            Some(r) if r.is_positive() => {
                                if matches!(e, Event::DataEnd { .. }) {
                                    self.stored.push(core::mem::take(&mut self.current));
                                }
                                self.server.accept_with(r).unwrap()
                            }
                            Some(r) => self.server.refuse(r).unwrap(),
                        }
                    }
                    self.server_events.push(e);
                }
                server::Output::StartTls => {
                    self.server_tls = true;
                    moved = true;
                }
                server::Output::Close => {
                    if !self.server_closed {
                        moved = true;
                    }
                    self.server_closed = true;
                    break;
                }
                server::Output::Timeout(_) => break,
            }
        }
        // Client side.
        loop {
            match self.client.poll_output() {
                client::Output::Transmit(b) => {
                    self.c2s.extend(b);
                    moved = true;
                }
                client::Output::Event(e) => {
                    self.client_events.push(e);
                    moved = true;
                }
                client::Output::StartTls => {
                    self.client_tls = true;
                    moved = true;
                }
                client::Output::Close => {
                    if !self.client_closed {
                        moved = true;
                    }
                    self.client_closed = true;
                    break;
                }
                client::Output::Timeout(_) => break,
            }
        }
        if self.server_tls && self.client_tls {
            self.server_tls = false;
            self.client_tls = false;
            self.server
                .handle_input(server::Input::TlsEstablished(self.now));
            self.client
                .handle_input(client::Input::TlsEstablished(self.now));
            moved = true;
        }
        // Deliver bytes, in fragments.
        if !self.c2s.is_empty() && !self.server_tls {
            let n = self.fragment.min(self.c2s.len());
            let part: Vec<u8> = self.c2s.drain(..n).collect();
            self.server
                .handle_input(server::Input::Receive(self.now, &part));
            moved = true;
        }
        if !self.s2c.is_empty() && !self.client_tls {
            let n = self.fragment.min(self.s2c.len());
            let part: Vec<u8> = self.s2c.drain(..n).collect();
            self.client
                .handle_input(client::Input::Receive(self.now, &part));
            moved = true;
        }
        if self.server_closed && !self.client_closed && self.s2c.is_empty() {
            self.client.handle_input(client::Input::Closed(self.now));
        }
        if self.client_closed && !self.server_closed && self.c2s.is_empty() {
            self.server.handle_input(server::Input::Closed(self.now));
        }
        self.now += Duration::from_millis(1);
        moved
    }

    fn drive(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
        panic!("conversation did not settle");
    }

    fn results(&self) -> Vec<crate::TransactionResult> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Transaction(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    fn failures(&self) -> Vec<client::ClientError> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Failed(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }
}

fn creds(user: &str, pass: &str) -> Credentials {
    Credentials {
        authzid: String::new(),
        username: user.into(),
        password: pass.into(),
    }
}

#[test]
fn pair_two_messages_with_a_refused_recipient() {
    for (pipelining, chunking, fragment) in [
        (true, false, usize::MAX),
        (false, false, usize::MAX),
        (true, true, usize::MAX),
        (false, true, 1),
        (true, false, 1),
        (true, false, 7),
    ] {
        let sc = ServerConfig {
            pipelining,
            ..ServerConfig::default()
        };
        let cc = ClientConfig {
            tls: TlsMode::None,
            chunking,
            ..ClientConfig::default()
        };
        let mut p = Pair::new(sc, cc);
        p.fragment = fragment;
        p.policy = Box::new(|e| match e {
            Event::Rcpt { to, .. } if to.to_string().contains("nobody") => Some(Reply::new(
                550,
                Some(EnhancedCode::new(5, 1, 1)),
                "No such user",
            )),
            _ => None,
        });
        let body = b"Subject: one\n\n.leading dot\nline\r\n..two\n";
        p.client.send(Pair::msg(
            "<a@example.org>",
            &["<b@example.net>", "<nobody@example.net>", "<c@example.net>"],
            body,
        ));
        p.client
            .send(Pair::msg("<>", &["<nobody@example.net>"], b"x"));
        p.client
            .send(Pair::msg("<a@example.org>", &["<Postmaster>"], b""));
        p.client.finish();
        p.drive();
        let label =
            alloc::format!("pipelining={pipelining} chunking={chunking} fragment={fragment}");
        assert!(p.server_closed && p.client_closed, "{label}");
        assert!(p.failures().is_empty(), "{label}: {:?}", p.failures());
        let r = p.results();
        assert_eq!(r.len(), 3, "{label}");
        assert_eq!(r[0].rcpts.len(), 3);
        assert_eq!(r[0].rcpts[1].1.code(), 550);
        assert_eq!(r[0].rcpts[1].1.enhanced(), Some(EnhancedCode::new(5, 1, 1)));
        assert_eq!(r[0].delivered().len(), 2);
        assert!(!r[0].all_delivered());
        assert!(r[0].data.as_ref().unwrap().is_positive(), "{label}");
        // No recipient accepted: no data, and RSET before the next one.
        assert!(r[1].delivered().is_empty());
        assert!(r[2].all_delivered(), "{label}: {:?}", r[2]);
        assert_eq!(
            p.stored,
            vec![
                b"Subject: one\r\n\r\n.leading dot\r\nline\r\n..two\r\n".to_vec(),
                Vec::new()
            ],
            "{label}"
        );
        assert!(p.server_events.contains(&Event::Reset), "{label}");
        assert_eq!(
            p.server_events
                .iter()
                .filter(|e| matches!(e, Event::DataStart { chunked } if *chunked == chunking))
                .count(),
            2,
            "{label}"
        );
    }
}

#[test]
fn pair_verify_asks_rcpt_only_then_resets() {
    for (pipelining, chunking) in [(true, false), (false, false), (true, true)] {
        let sc = ServerConfig {
            pipelining,
            ..ServerConfig::default()
        };
        let cc = ClientConfig {
            tls: TlsMode::None,
            chunking,
            ..ClientConfig::default()
        };
        let mut p = Pair::new(sc, cc);
        p.policy = Box::new(|e| match e {
            Event::Rcpt { to, .. } if to.to_string().contains("nobody") => Some(Reply::new(
                550,
                Some(EnhancedCode::new(5, 1, 1)),
                "no such list",
            )),
            _ => None,
        });
        let rcpt = |t: &str| (ForwardPath::parse(t, true).unwrap(), RcptParams::default());
        let id = p.client.verify(
            ReversePath::Null,
            vec![rcpt("<list@example.org>"), rcpt("<nobody@example.org>")],
        );
        p.client.send(Pair::msg(
            "<a@example.org>",
            &["<list@example.org>"],
            b"x\r\n",
        ));
        p.client.finish();
        p.drive();
        let label = alloc::format!("pipelining={pipelining} chunking={chunking}");
        let r = p.results();
        assert_eq!(r.len(), 2, "{label}");
        assert_eq!(r[0].id, id);
        assert!(r[0].mail.is_positive());
        assert!(r[0].rcpts[0].1.is_positive(), "{label}");
        assert_eq!(r[0].rcpts[1].1.code(), 550, "{label}");
        assert_eq!(r[0].data, None, "{label}");
        // The probe sent no data; the message after it went whole.
        assert_eq!(p.stored, vec![b"x\r\n".to_vec()], "{label}");
        assert!(r[1].all_delivered(), "{label}: {:?}", r[1]);
        let starts = p
            .server_events
            .iter()
            .filter(|e| matches!(e, Event::DataStart { .. }))
            .count();
        assert_eq!(starts, 1, "{label}");
        assert!(p.server_events.contains(&Event::Reset), "{label}");
    }
}

#[test]
fn pair_helo_fallback() {
    let mut p = Pair::new(
        ServerConfig::default(),
        ClientConfig {
            tls: TlsMode::Opportunistic,
            ..ClientConfig::default()
        },
    );
    p.policy = Box::new(|e| match e {
        Event::Hello { extended: true, .. } => Some(Reply::new(502, None, "no EHLO here")),
        _ => None,
    });
    p.client
        .send(Pair::msg("<a@example.org>", &["<b@example.net>"], b"hi\n"));
    p.client.finish();
    p.drive();
    assert!(p.failures().is_empty(), "{:?}", p.failures());
    assert!(p.results()[0].all_delivered());
    assert!(p.server_events.contains(&Event::Hello {
        name: "localhost".into(),
        extended: false
    }));
    assert_eq!(p.stored, vec![b"hi\r\n".to_vec()]);
}

#[test]
fn pair_starttls_then_auth() {
    for user in ["alice", "mallory"] {
        let sc = ServerConfig {
            starttls: true,
            auth: true,
            require_auth: true,
            ..ServerConfig::default()
        };
        let cc = ClientConfig {
            tls: TlsMode::Required,
            credentials: Some(creds(user, "pw")),
            ..ClientConfig::default()
        };
        let mut p = Pair::new(sc, cc);
        p.policy = Box::new(|e| match e {
            Event::Auth { credentials, .. }
                if credentials.username == "alice" && credentials.password == "pw" =>
            {
                None
            }
            Event::Auth { .. } => Some(Reply::new(535, Some(EnhancedCode::new(5, 7, 8)), "no")),
            _ => None,
        });
        p.client.send(Pair::msg(
            "<alice@example.org>",
            &["<b@example.net>"],
            b"hi",
        ));
        p.client.finish();
        p.drive();
        assert!(p.server.is_tls() && p.client.is_tls());
        let hellos = p
            .server_events
            .iter()
            .filter(|e| matches!(e, Event::Hello { .. }))
            .count();
        assert_eq!(hellos, 2, "EHLO again after STARTTLS");
        if user == "alice" {
            assert!(p.failures().is_empty(), "{:?}", p.failures());
            assert_eq!(p.server.authenticated_user(), Some("alice"));
            assert!(p.results()[0].all_delivered());
        } else {
            assert!(matches!(
                p.failures()[0],
                client::ClientError::Refused { step: "AUTH", .. }
            ));
            assert!(p.stored.is_empty());
        }
    }
}

#[test]
fn pair_required_tls_not_offered() {
    let mut p = Pair::new(
        ServerConfig::default(),
        ClientConfig {
            tls: TlsMode::Required,
            ..ClientConfig::default()
        },
    );
    p.client
        .send(Pair::msg("<a@example.org>", &["<b@example.net>"], b"hi"));
    p.client.finish();
    p.drive();
    assert_eq!(p.failures(), vec![client::ClientError::NoStartTls]);
    assert!(p.stored.is_empty());
    assert!(p.client_closed);
}

#[test]
fn pair_size_checked_before_sending() {
    let mut p = Pair::new(
        ServerConfig {
            max_message_size: 10,
            ..ServerConfig::default()
        },
        ClientConfig {
            tls: TlsMode::None,
            ..ClientConfig::default()
        },
    );
    p.client.send(Pair::msg(
        "<a@example.org>",
        &["<b@example.net>"],
        b"0123456789abc",
    ));
    p.client
        .send(Pair::msg("<a@example.org>", &["<b@example.net>"], b"small"));
    p.client.finish();
    p.drive();
    let r = p.results();
    assert_eq!(r[0].mail.code(), 552);
    assert!(r[1].all_delivered());
    assert_eq!(
        p.server_events
            .iter()
            .filter(|e| matches!(e, Event::Mail { .. }))
            .count(),
        1,
        "the big one never reached the server"
    );
}

#[test]
fn pair_utf8_addresses_and_dsn() {
    let mut p = Pair::new(
        ServerConfig::default(),
        ClientConfig {
            tls: TlsMode::None,
            ..ClientConfig::default()
        },
    );
    let mut m = Pair::msg(
        "<ü@bücher.example>",
        &["<ö@example.net>"],
        "Grüße\n".as_bytes(),
    );
    m.params.ret = Some(Ret::Hdrs);
    m.params.envid = Some("id 1+2".into());
    m.to[0].1.notify = Some(Notify {
        failure: true,
        ..Notify::default()
    });
    p.client.send(m);
    p.client.finish();
    p.drive();
    assert!(p.results()[0].all_delivered(), "{:?}", p.results());
    let mail = p
        .server_events
        .iter()
        .find_map(|e| match e {
            Event::Mail { params, .. } => Some(params.clone()),
            _ => None,
        })
        .unwrap();
    assert!(mail.smtputf8);
    assert_eq!(mail.body, Some(Body::EightBitMime));
    assert_eq!(mail.envid.as_deref(), Some("id 1+2"));
    assert_eq!(mail.ret, Some(Ret::Hdrs));
    assert_eq!(mail.size, Some("Grüße\r\n.\r\n".len() as u64));
}

// ---- raw probes of the server ----

/// Runs the server over `chunks`, accepting everything; returns the wire
/// output and the events.
fn raw(config: ServerConfig, chunks: &[&[u8]]) -> (String, Vec<Event>) {
    raw_tls(config, chunks, false)
}

fn raw_tls(config: ServerConfig, chunks: &[&[u8]], tls: bool) -> (String, Vec<Event>) {
    let t = Duration::ZERO;
    let mut s = Server::new(Arc::new(config), t, tls);
    let mut wire = Vec::new();
    let mut events = Vec::new();
    let pump = |s: &mut Server, wire: &mut Vec<u8>, events: &mut Vec<Event>| loop {
        match s.poll_output() {
            server::Output::Transmit(b) => wire.extend(b),
            server::Output::Event(e) => {
                if e.needs_answer() {
                    s.accept().unwrap();
                }
                events.push(e);
            }
            server::Output::StartTls => s.handle_input(server::Input::TlsEstablished(t)),
            server::Output::Close | server::Output::Timeout(_) => break,
        }
    };
    pump(&mut s, &mut wire, &mut events);
    for c in chunks {
        s.handle_input(server::Input::Receive(t, c));
        pump(&mut s, &mut wire, &mut events);
    }
    (String::from_utf8(wire).unwrap(), events)
}

fn codes(wire: &str) -> Vec<&str> {
    wire.lines()
        .filter(|l| l.get(3..4) == Some(" "))
        .map(|l| &l[..3])
        .collect()
}

const HEAD: &[u8] = b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n";

#[test]
fn smuggling_is_refused() {
    // The classic: a bare-LF end-of-data followed by a smuggled transaction.
    let mut input = HEAD.to_vec();
    input.extend_from_slice(
        b"DATA\r\nSubject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nforged\r\n.\r\nNOOP\r\n",
    );
    let (wire, events) = raw(ServerConfig::default(), &[&input]);
    assert_eq!(
        codes(&wire),
        ["220", "250", "250", "250", "354", "554", "250"]
    );
    assert!(wire.contains("554 5.6.0 Bare CR or LF"));
    let mails = events
        .iter()
        .filter(|e| matches!(e, Event::Mail { .. }))
        .count();
    assert_eq!(mails, 1, "the smuggled MAIL must not be seen as a command");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::DataRefused { .. }))
    );
    assert!(!events.iter().any(|e| matches!(e, Event::DataEnd { .. })));
    // Variants: bare CR, and "\r\n.\n", and "\n.\r\n".
    for smuggle in [
        &b"body\r.\rMAIL FROM:<e@x.org>\r\n.\r\n"[..],
        b"body\r\n.\nMAIL FROM:<e@x.org>\r\n.\r\n",
        b"body\n.\r\nMAIL FROM:<e@x.org>\r\n.\r\n",
        b"body\r\n.\r\r\n.\r\n",
    ] {
        let mut input = HEAD.to_vec();
        input.extend_from_slice(b"DATA\r\n");
        input.extend_from_slice(smuggle);
        let (wire, events) = raw(ServerConfig::default(), &[&input]);
        assert_eq!(codes(&wire).last(), Some(&"554"), "{smuggle:?}: {wire}");
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Mail { .. }))
                .count(),
            1
        );
    }
}

#[test]
fn nul_and_bare_newlines_in_commands() {
    let (wire, events) = raw(
        ServerConfig::default(),
        &[
            HEAD,
            b"NOOP\nRCPT TO:<c@example.org>\r\n",
            b"NO\0OP\r\nRSET\r\n",
        ],
    );
    assert_eq!(
        codes(&wire),
        ["220", "250", "250", "250", "500", "503", "500", "250"]
    );
    assert!(events.contains(&Event::Reset));
    let (wire, _) = raw(
        ServerConfig::default(),
        &[HEAD, b"DATA\r\nab\0c\r\n.\r\nQUIT\r\n"],
    );
    assert!(wire.contains("554 5.6.0 NUL"), "{wire}");
    assert!(wire.ends_with("221 2.0.0 Bye\r\n"));
}

#[test]
fn overlong_lines() {
    let long = vec![b'A'; 5000];
    let (wire, _) = raw(ServerConfig::default(), &[&long, &long, b"\r\nNOOP\r\n"]);
    assert_eq!(codes(&wire), ["220", "500", "250"]);
    assert!(wire.contains("500 5.5.6 Line too long"));
    let mut line = b"NOOP ".to_vec();
    line.extend(vec![b'x'; 1200]);
    line.extend_from_slice(b"\r\nNOOP\r\n");
    let (wire, _) = raw(ServerConfig::default(), &[&line]);
    assert_eq!(codes(&wire), ["220", "500", "250"]);
}

#[test]
fn ten_thousand_recipients() {
    let mut input = b"EHLO c.test\r\nMAIL FROM:<a@example.org>\r\n".to_vec();
    for i in 0..10_000 {
        input.extend_from_slice(alloc::format!("RCPT TO:<r{i}@example.org>\r\n").as_bytes());
    }
    let (wire, events) = raw(ServerConfig::default(), &[&input]);
    let c = codes(&wire);
    assert_eq!(c.iter().filter(|c| **c == "250").count(), 1 + 1 + 1000);
    assert_eq!(c.iter().filter(|c| **c == "452").count(), 20);
    assert_eq!(c.last(), Some(&"421"));
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Rcpt { .. }))
            .count(),
        1000
    );
}

#[test]
fn size_enforced_while_streaming() {
    let cfg = || ServerConfig {
        max_message_size: 100,
        ..ServerConfig::default()
    };
    let (wire, _) = raw(cfg(), &[b"EHLO c\r\nMAIL FROM:<a@b.c> SIZE=101\r\n"]);
    assert!(wire.ends_with("552 5.3.4 Message size exceeds fixed maximum message size\r\n"));
    let mut input = HEAD.to_vec();
    input.extend_from_slice(b"DATA\r\n");
    let big = vec![b'x'; 150];
    let (wire, events) = raw(cfg(), &[&input, &big, &big, b"\r\n.\r\n"]);
    assert!(wire.ends_with("552 5.3.4 Message size exceeds fixed maximum message size\r\n"));
    let streamed: usize = events
        .iter()
        .map(|e| match e {
            Event::DataChunk(b) => b.len(),
            _ => 0,
        })
        .sum();
    assert!(streamed <= 100, "stopped streaming at the limit");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::DataRefused { .. }))
    );
}

#[test]
fn starttls_discards_pipelined_commands() {
    let cfg = ServerConfig {
        starttls: true,
        auth: true,
        ..ServerConfig::default()
    };
    let (wire, events) = raw(
        cfg.clone(),
        &[b"EHLO c\r\nAUTH PLAIN AGEAYg==\r\nSTARTTLS\r\nMAIL FROM:<evil@x.org>\r\n"],
    );
    assert_eq!(codes(&wire), ["220", "250", "538", "220"]);
    assert!(wire.contains("250-STARTTLS"));
    assert!(
        !wire.contains("AUTH PLAIN"),
        "AUTH is not offered in the clear"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Mail { .. })));
    // After TLS: EHLO again is required; AUTH is offered; STARTTLS is not.
    let (wire, events) = raw(
        cfg,
        &[
            b"EHLO c\r\nSTARTTLS\r\n",
            b"MAIL FROM:<a@x.org>\r\nEHLO c\r\nAUTH LOGIN\r\n",
            b"YWxpY2U=\r\n",
            b"cHc=\r\nAUTH PLAIN\r\n",
        ],
    );
    assert_eq!(
        codes(&wire),
        [
            "220", "250", "220", "503", "250", "334", "334", "235", "503"
        ]
    );
    assert!(wire.contains("250-AUTH PLAIN LOGIN"));
    assert!(events.iter().any(|e| matches!(e,
        Event::Auth { credentials, .. } if credentials.username == "alice" && credentials.password == "pw")));
}

#[test]
fn auth_failures_close() {
    let cfg = ServerConfig {
        auth: true,
        ..ServerConfig::default()
    };
    let (wire, _) = raw_tls(
        cfg,
        &[b"EHLO c\r\nAUTH PLAIN !!\r\nAUTH PLAIN\r\n*\r\nAUTH LOGIN\r\n%%\r\nNOOP\r\n"],
        true,
    );
    assert_eq!(
        codes(&wire),
        ["220", "250", "501", "334", "501", "334", "501", "421"]
    );
}

#[test]
fn bdat_chunks() {
    let mut input = HEAD.to_vec();
    input.extend_from_slice(b"BDAT 5\r\nab\r\ncBDAT 3 LAST\r\nd\r\nBDAT 2\r\nxyQUIT\r\n");
    let (wire, events) = raw(ServerConfig::default(), &[&input]);
    assert_eq!(
        codes(&wire),
        ["220", "250", "250", "250", "250", "250", "503", "221"]
    );
    let data: Vec<u8> = events
        .iter()
        .flat_map(|e| match e {
            Event::DataChunk(b) => b.clone(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(data, b"ab\r\ncd\r\n");
    assert!(events.contains(&Event::DataEnd { size: 8 }));
    // BDAT after a bare LF chunk is refused at the last chunk.
    let mut input = HEAD.to_vec();
    input.extend_from_slice(b"BDAT 3 LAST\r\na\nbNOOP\r\n");
    let (wire, _) = raw(ServerConfig::default(), &[&input]);
    assert_eq!(codes(&wire), ["220", "250", "250", "250", "554", "250"]);
}

#[test]
fn sequence_errors_and_limits() {
    let (wire, _) = raw(
        ServerConfig::default(),
        &[b"MAIL FROM:<a@b.c>\r\nEHLO c\r\nRCPT TO:<a@b.c>\r\nDATA\r\nMAIL FROM:<a@b.c>\r\nMAIL FROM:<a@b.c>\r\nDATA\r\nFOO\r\nMAIL FROM:<a@b.c> FOO=1\r\nVRFY x\r\nEXPN x\r\nHELP\r\nRSET\r\nMAIL FROM:<a@b.c> FOO=1\r\n"],
    );
    assert_eq!(
        codes(&wire),
        [
            "220", "503", "250", "503", "503", "250", "503", "554", "500", "503", "252", "502",
            "214", "250", "555"
        ]
    );
    let many = "FOO\r\n".repeat(30);
    let (wire, _) = raw(ServerConfig::default(), &[many.as_bytes()]);
    assert_eq!(codes(&wire).len(), 1 + 20 + 1);
    assert_eq!(codes(&wire).last(), Some(&"421"));
    let rsets = "RSET\r\n".repeat(5);
    let (wire, _) = raw(
        ServerConfig {
            max_rsets: 3,
            ..ServerConfig::default()
        },
        &[rsets.as_bytes()],
    );
    assert_eq!(codes(&wire), ["220", "250", "250", "250", "421"]);
    let (wire, _) = raw(
        ServerConfig::default(),
        &["EHLO c\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<ü@b.c>\r\n".as_bytes()],
    );
    assert!(wire.ends_with("553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"));
}

#[test]
fn timeout_closes() {
    let cfg = ServerConfig::default();
    let timeout = cfg.command_timeout;
    let mut s = Server::new(Arc::new(cfg), Duration::ZERO, false);
    let server::Output::Transmit(_) = s.poll_output() else {
        panic!()
    };
    let server::Output::Timeout(at) = s.poll_output() else {
        panic!()
    };
    assert_eq!(at, timeout);
    s.handle_input(server::Input::Timeout(at - Duration::from_secs(1)));
    assert!(matches!(s.poll_output(), server::Output::Timeout(_)));
    s.handle_input(server::Input::Timeout(at));
    let server::Output::Transmit(b) = s.poll_output() else {
        panic!()
    };
    assert!(b.starts_with(b"421 4.4.2"));
    assert_eq!(s.poll_output(), server::Output::Close);
}

#[test]
fn answer_without_event_is_an_error() {
    let mut s = Server::new(Arc::new(ServerConfig::default()), Duration::ZERO, false);
    assert!(s.accept().is_err());
}

// ---- proptest round trips ----

fn atom() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}"
}

fn mailbox() -> impl Strategy<Value = Mailbox> {
    (
        prop_oneof![
            proptest::collection::vec(atom(), 1..3).prop_map(|v| v.join(".")),
            "[ -~]{1,12}".prop_filter("no ambiguous chars", |s| !s.contains(['@', '<', '>'])),
        ],
        "[a-z0-9]{1,10}(\\.[a-z]{2,5}){1,2}",
    )
        .prop_map(|(l, d)| Mailbox::new(&l, crate::Domain::Name(d)).unwrap())
}

fn xtext_value() -> impl Strategy<Value = String> {
    "[ -~]{1,20}"
}

fn command() -> impl Strategy<Value = Command> {
    let mail_params = (
        proptest::option::of(0u64..u64::MAX),
        proptest::option::of(prop_oneof![
            Just(Body::SevenBit),
            Just(Body::EightBitMime),
            Just(Body::BinaryMime)
        ]),
        any::<bool>(),
        proptest::option::of(prop_oneof![Just(Ret::Full), Just(Ret::Hdrs)]),
        proptest::option::of(xtext_value()),
        proptest::option::of(xtext_value()),
    )
        .prop_map(|(size, body, smtputf8, ret, envid, auth)| MailParams {
            size,
            body,
            smtputf8,
            ret,
            envid,
            auth,
            other: Vec::new(),
        });
    let rcpt_params = (
        proptest::option::of((any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>())),
        proptest::option::of(("rfc822|utf-8", xtext_value())),
    )
        .prop_map(|(n, o)| RcptParams {
            notify: n.map(|(never, success, failure, delay)| {
                if never || !(success || failure || delay) {
                    Notify {
                        never: true,
                        ..Notify::default()
                    }
                } else {
                    Notify {
                        never: false,
                        success,
                        failure,
                        delay,
                    }
                }
            }),
            orcpt: o.map(|(t, a)| Orcpt {
                addr_type: t,
                addr: a,
            }),
            other: Vec::new(),
        });
    prop_oneof![
        "[a-z0-9.-]{1,20}".prop_map(Command::Helo),
        "[a-z0-9.-]{1,20}".prop_map(Command::Ehlo),
        (proptest::option::of(mailbox()), mail_params).prop_map(|(m, params)| Command::Mail {
            from: m.map_or(ReversePath::Null, ReversePath::Mailbox),
            params
        }),
        (proptest::option::of(mailbox()), rcpt_params).prop_map(|(m, params)| Command::Rcpt {
            to: m.map_or(ForwardPath::Postmaster, ForwardPath::Mailbox),
            params
        }),
        Just(Command::Data),
        (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
        Just(Command::Rset),
        Just(Command::Noop),
        Just(Command::Quit),
        Just(Command::StartTls),
        "[a-z]{1,10}".prop_map(Command::Vrfy),
        proptest::option::of("[a-z]{1,10}").prop_map(Command::Help),
        ("PLAIN|LOGIN", proptest::option::of("[A-Za-z0-9+/]{1,20}=?"))
            .prop_map(|(mechanism, initial)| Command::Auth { mechanism, initial }),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    (
        200u16..600,
        any::<bool>(),
        0u16..100,
        0u16..100,
        proptest::collection::vec("[a-zA-Z][ -~]{0,30}", 1..5),
    )
        .prop_map(|(code, enh, s, d, lines)| {
            let class = (code / 100) as u8;
            let e = (enh && class != 3).then_some(EnhancedCode::new(class, s, d));
            Reply::multiline(code, e, lines)
        })
}

proptest! {
    #[test]
    fn command_round_trip(c in command()) {
        let text = c.to_string();
        prop_assert_eq!(Command::parse(text.as_bytes()).unwrap(), c);
    }

    #[test]
    fn reply_round_trip(r in reply()) {
        let text = r.to_string();
        prop_assert_eq!(Reply::parse(text.as_bytes()).unwrap(), r);
    }

    #[test]
    fn dot_stuffing_round_trip(
        body in proptest::collection::vec(
            prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), 1u8..=255], 0..300),
        frag in 1usize..64,
    ) {
        let wire = data::stuff(&body);
        let mut input = HEAD.to_vec();
        input.extend_from_slice(b"DATA\r\n");
        input.extend_from_slice(&wire);
        input.extend_from_slice(b"QUIT\r\n");
        let chunks: Vec<&[u8]> = input.chunks(frag).collect();
        let (out, events) = raw(ServerConfig::default(), &chunks);
        let got: Vec<u8> = events.iter().flat_map(|e| match e {
            Event::DataChunk(b) => b.clone(),
            _ => Vec::new(),
        }).collect();
        prop_assert_eq!(got, data::normalize(&body));
        prop_assert!(out.ends_with("250 2.0.0 OK\r\n221 2.0.0 Bye\r\n"), "{}", out);
    }

    #[test]
    fn server_never_panics(input in proptest::collection::vec(any::<u8>(), 0..400), frag in 1usize..50) {
        let chunks: Vec<&[u8]> = input.chunks(frag).collect();
        let mut with_head = vec![HEAD];
        with_head.extend(chunks);
        let _ = raw(ServerConfig { auth: true, auth_without_tls: true, starttls: true, ..ServerConfig::default() }, &with_head);
    }
}

#[test]
fn display_sanity() {
    assert_eq!(
        Command::parse(b"RCPT TO:<\"a b\"@x.org> NOTIFY=NEVER")
            .unwrap()
            .to_string(),
        "RCPT TO:<\"a b\"@x.org> NOTIFY=NEVER"
    );
    assert_eq!("x".to_string(), "x");
}
