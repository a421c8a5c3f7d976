//! Authentication-Results parser: never panics, and whatever it reads the
//! writer writes back (on one line and folded) to text that reads the same,
//! so a parsed field can be re-emitted without injection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptt_dmarc::authres::{AuthenticationResults, claims_authserv_id};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = claims_authserv_id(text, "mx.example.org");
    if let Ok(field) = AuthenticationResults::parse(text) {
        let line = field.to_string();
        assert!(!line.contains(['\r', '\n']), "{line:?}");
        assert_eq!(
            AuthenticationResults::parse(&line).as_ref(),
            Ok(&field),
            "{line}"
        );
        let folded = field.to_header_field();
        // Every line break is a fold (CRLF + tab) but the final one.
        let body = folded.strip_suffix("\r\n").expect("ends with CRLF");
        assert_eq!(
            body.matches("\r\n").count(),
            body.matches("\r\n\t").count(),
            "{folded:?}"
        );
        assert_eq!(
            AuthenticationResults::parse(&folded).as_ref(),
            Ok(&field),
            "{folded}"
        );
        assert!(claims_authserv_id(&line, field.authserv_id()));
    }
});
