//! SPF macro parser and expander: never panics, round-trips, and expansion
//! of a domain-spec stays within 253 characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_spf::{MacroContext, MacroString, MacroValues};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for context in [MacroContext::DomainSpec, MacroContext::Explanation] {
        if let Ok(m) = MacroString::parse(text, context) {
            assert_eq!(MacroString::parse(&m.to_string(), context).as_ref(), Ok(&m));
            let values = MacroValues {
                local_part: "strong-bad",
                sender_domain: "email.example.com",
                domain: "email.example.com",
                ip: "2001:db8::cb01".parse().unwrap(),
                helo: "mx.example.org",
                validated_name: Some("mx.example.org"),
                receiver: "rx.example.net",
                timestamp: 1_700_000_000,
            };
            let _ = m.expand(&values);
            assert!(m.expand_domain(&values).len() <= 253);
        }
    }
});
