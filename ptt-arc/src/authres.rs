//! Building the ARC-Authentication-Results payload from this hop's
//! Authentication-Results header fields (RFC 8617 §4.1.1, RFC 8601).
//!
//! Consolidation follows the ValiMail suite's convention: every
//! Authentication-Results field whose authserv-id is ours, top to bottom;
//! each result (a `;`-separated method result, comments kept) with its
//! folding whitespace collapsed to single spaces, joined by `"; "` after
//! the authserv-id.

use alloc::string::String;
use alloc::vec::Vec;

use crate::header::skip_cfws;
use crate::message::{Field, bytes};

/// Header field name of Authentication-Results.
pub const AUTHENTICATION_RESULTS: &str = "Authentication-Results";

/// Splits `s` on `;` outside comments and quoted strings.
fn split_results(s: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if quoted || depth > 0 => escaped = true,
            b'"' if depth == 0 => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            b';' if !quoted && depth == 0 => {
                out.push(s.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s.get(start..).unwrap_or_default());
    out
}

/// Collapses runs of folding whitespace to one space and trims.
fn collapse(s: &[u8]) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in String::from_utf8_lossy(s).chars() {
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// The authserv-id of an Authentication-Results value and the rest after
/// its `;` (`None` when the value has no `;`).
pub fn split_authserv_id(value: &[u8]) -> Option<(String, &[u8])> {
    let start = skip_cfws(value, 0);
    let rest = value.get(start..)?;
    let semi = split_results(rest).first().map(|s| s.len())?;
    let head = rest.get(..semi)?;
    // The authserv-id may be followed by a version number: "id 1;".
    let id: String = String::from_utf8_lossy(head)
        .chars()
        .take_while(|c| !c.is_ascii_whitespace() && *c != '(')
        .collect();
    if id.is_empty() {
        return None;
    }
    Some((id, rest.get(semi + 1..).unwrap_or_default()))
}

/// The results of every Authentication-Results field of `authserv_id`,
/// top to bottom, each normalized (folding collapsed). `none` results are
/// dropped.
pub fn results_for(message: &[u8], fields: &[Field], authserv_id: &str) -> Vec<String> {
    let mut results = Vec::new();
    for field in fields {
        if !bytes(message, field.name.clone())
            .eq_ignore_ascii_case(AUTHENTICATION_RESULTS.as_bytes())
        {
            continue;
        }
        let value = bytes(message, field.value.clone());
        let Some((id, rest)) = split_authserv_id(value) else {
            continue;
        };
        if !id.eq_ignore_ascii_case(authserv_id) {
            continue;
        }
        for result in split_results(rest) {
            let r = collapse(result);
            if !r.is_empty() && !r.eq_ignore_ascii_case("none") {
                results.push(r);
            }
        }
    }
    results
}

/// Whether one of `results` is an `arc=` result.
pub fn has_arc_result(results: &[String]) -> bool {
    results.iter().any(|r| {
        r.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("arc="))
            || r.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("arc "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::split;

    #[test]
    fn consolidates_in_order_for_our_id_only() {
        let m = b"Authentication-Results: lists.example.org; arc=none;\r\n  spf=pass smtp.mfrom=jqd@d1.example\r\n\
Authentication-Results: lists.example.org; dkim=pass (1024-bit;  key) header.i=@d1.example\r\n\
Authentication-Results: LISTS.example.org 1; dmarc=pass\r\n\
Authentication-Results: nobody.example.org; something=ignored      \r\n\
Authentication-Results: lists.example.org; none\r\n\
From: x\r\n\r\n";
        let (fields, _) = split(m);
        let r = results_for(m, &fields, "lists.example.org");
        assert_eq!(
            r,
            [
                "arc=none",
                "spf=pass smtp.mfrom=jqd@d1.example",
                "dkim=pass (1024-bit; key) header.i=@d1.example",
                "dmarc=pass"
            ]
        );
        assert!(has_arc_result(&r));
        assert!(!has_arc_result(&r[1..]));
    }
}
