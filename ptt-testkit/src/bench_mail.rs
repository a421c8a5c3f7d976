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

/// The header fields the DKIM and ARC benchmarks sign, in this order: the
/// same `h=` for ptt and for mail-auth (which does not over-sign).
pub const SIGNED_HEADERS: [&str; 7] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
];

/// The DKIM benchmarks' message of about `size` bytes: a usual header with
/// each of [`SIGNED_HEADERS`] once, and [`plain_text_message`]'s body.
///
/// ```
/// let m = ptt_testkit::bench_mail::dkim_message(4096);
/// assert!(m.starts_with(b"From: Alice <alice@example.com>\r\n"));
/// ```
pub fn dkim_message(size: usize) -> Vec<u8> {
    plain_text_message(
        "From: Alice <alice@example.com>\r\n\
         To: Bob <bob@example.net>\r\n\
         Subject: DKIM benchmark message\r\n\
         Date: Sun, 22 Nov 2026 00:00:00 +0000\r\n\
         Message-ID: <bench@example.com>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n",
        size,
    )
}
