//! SMTP reply parsing: `Reply::parse` and the incremental `ReplyParser`
//! never panic, a parsed reply displays and parses back to itself, and the
//! client machine survives any server bytes.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use ptt_smtp::client::{Input, Output};
use ptt_smtp::{Client, ClientConfig, ForwardPath, Message, Reply, ReplyParser, ReversePath};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = Reply::parse(data) {
        let again = Reply::parse(r.to_string().as_bytes()).expect("display parses");
        assert_eq!(again.code(), r.code());
    }
    let mut p = ReplyParser::new();
    for chunk in data.chunks(7) {
        p.push(chunk);
        while let Ok(Some(_)) = p.next_reply() {}
    }
    let mut client = Client::new(ClientConfig::default(), Duration::ZERO);
    client.send(Message {
        from: ReversePath::Null,
        params: Default::default(),
        to: vec![(ForwardPath::Postmaster, Default::default())],
        data: b"x\r\n".to_vec(),
    });
    client.finish();
    let mut t = Duration::ZERO;
    for chunk in data.chunks(13) {
        t += Duration::from_millis(1);
        client.handle_input(Input::Receive(t, chunk));
        loop {
            match client.poll_output() {
                Output::StartTls => client.handle_input(Input::TlsEstablished(t)),
                Output::Close | Output::Timeout(_) => break,
                Output::Transmit(_) | Output::Event(_) => {}
            }
        }
    }
});
