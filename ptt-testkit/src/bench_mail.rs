//! The plain-text messages the DKIM and ARC benchmarks sign and verify.

/// `header` (a header block ending in the empty line) followed by a
/// plain-text body up to about `size` bytes in all. Every body line has runs
/// of spaces, a tab and trailing spaces, so relaxed canonicalization has work
/// to do on each.
///
/// ```
/// let m = ptt_testkit::bench_mail::plain_text_message("Subject: x\r\n\r\n", 4096);
/// assert!(m.len() <= 4096 && m.len() > 4000);
/// assert!(m.ends_with(b"here.    \r\n"));
/// ```
pub fn plain_text_message(header: &str, size: usize) -> Vec<u8> {
    let mut m = String::from(header);
    let mut n = 0;
    while m.len() + 70 < size {
        n += 1;
        m.push_str(&format!(
            "Line {n:04} of the body, with  some   spaces and a tab\there.    \r\n"
        ));
    }
    m.into_bytes()
}
