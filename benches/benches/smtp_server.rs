//! The ptt-smtp server machine parsing a pipelined session: 100
//! transactions (EHLO once, then MAIL, 3 RCPT, DATA with a 4 KB body of
//! 78-octet lines, some dot-stuffed), fed in 16 KiB reads, every event
//! accepted.
//!
//! Reference in the same run: the floor any SMTP server pays on the same
//! bytes, splitting at CRLF with memchr and copying each line (no parsing,
//! no state). The ratio says what the machine's parsing, checks and events
//! cost on top of that.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ptt_smtp::server::{Event, Input, Output, Server, ServerConfig};

fn session() -> Vec<u8> {
    let mut s = b"EHLO client.example\r\n".to_vec();
    let mut body = Vec::new();
    let mut i = 0;
    while body.len() < 4096 {
        if i % 10 == 0 {
            body.extend_from_slice(
                b"..a line starting with a dot, stuffed by the client ..................\r\n",
            );
        } else {
            body.extend_from_slice(
                b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tem\r\n",
            );
        }
        i += 1;
    }
    for n in 0..100 {
        s.extend_from_slice(
            format!("MAIL FROM:<sender{n}@example.org> SIZE=4200 BODY=8BITMIME\r\n").as_bytes(),
        );
        for r in 0..3 {
            s.extend_from_slice(
                format!("RCPT TO:<rcpt{r}@example.net> NOTIFY=FAILURE\r\n").as_bytes(),
            );
        }
        s.extend_from_slice(b"DATA\r\nSubject: bench\r\n\r\n");
        s.extend_from_slice(&body);
        s.extend_from_slice(b".\r\n");
    }
    s.extend_from_slice(b"QUIT\r\n");
    s
}

fn run_machine(input: &[u8], config: &Arc<ServerConfig>) -> (usize, usize) {
    let t = Duration::ZERO;
    let mut s = Server::new(config.clone(), t, false);
    let (mut out, mut data) = (0, 0);
    for chunk in input.chunks(16 * 1024) {
        s.handle_input(Input::Receive(t, chunk));
        loop {
            match s.poll_output() {
                Output::Transmit(b) => out += b.len(),
                Output::Event(Event::DataChunk(b)) => data += b.len(),
                Output::Event(e) => {
                    if e.needs_answer() {
                        s.accept().unwrap();
                    }
                }
                _ => break,
            }
        }
    }
    (out, data)
}

fn floor(input: &[u8]) -> usize {
    let mut copied = Vec::with_capacity(16 * 1024);
    let mut total = 0;
    for chunk in input.chunks(16 * 1024) {
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            copied.extend_from_slice(&rest[..=i]);
            rest = &rest[i + 1..];
        }
        total += copied.len();
        copied.clear();
    }
    total
}

fn bench(c: &mut Criterion) {
    let input = session();
    let config = Arc::new(ServerConfig::default());
    let (out, data) = run_machine(&input, &config);
    assert!(out > 0 && data > 400_000, "the session ran: {out} {data}");
    let mut g = c.benchmark_group("smtp_server_pipelined_session");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("ptt_smtp_server", |b| {
        b.iter(|| run_machine(black_box(&input), &config))
    });
    g.bench_function("reference_floor_memchr_line_split", |b| {
        b.iter(|| floor(black_box(&input)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
