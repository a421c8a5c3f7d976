//! The SMTP server machine on arbitrary client bytes, split at arbitrary
//! points, with decisions taken from the input: it must never panic, and
//! its output must always be well-formed replies.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ptt_smtp::server::{Input, Output, Server, ServerConfig};
use ptt_smtp::{Reply, ReplyParser};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let config = Arc::new(ServerConfig {
        starttls: ctl & 1 != 0,
        auth: true,
        auth_without_tls: ctl & 2 != 0,
        pipelining: ctl & 4 != 0,
        max_message_size: 1000,
        max_recipients: 5,
        max_line_length: 100,
        ..ServerConfig::default()
    });
    let mut t = Duration::ZERO;
    let mut server = Server::new(config, t, ctl & 8 != 0);
    let mut replies = ReplyParser::new();
    let step = usize::from(ctl >> 4) + 1;
    let mut decide = 0usize;
    for chunk in rest.chunks(step) {
        t += Duration::from_millis(10);
        server.handle_input(Input::Receive(t, chunk));
        loop {
            match server.poll_output() {
                Output::Transmit(b) => replies.push(&b),
                Output::Event(e) => {
                    if e.needs_answer() {
                        decide += 1;
                        let r = if decide % 3 == 0 {
                            server.refuse(Reply::new(550, None, "no"))
                        } else {
                            server.accept()
                        };
                        assert!(r.is_ok());
                    }
                }
                Output::StartTls => server.handle_input(Input::TlsEstablished(t)),
                Output::Close | Output::Timeout(_) => break,
            }
        }
        while let Some(r) = replies.next_reply().expect("server replies parse") {
            assert!((200..600).contains(&r.code()));
        }
    }
    server.handle_input(Input::Timeout(t + Duration::from_secs(3600)));
    let _ = server.poll_output();
});
