//! What each hop writes into a message: the `Received` trace field
//! (RFC 5321 §4.4) and RFC 5322 dates.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The Unix time now, in seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `Received` field a hop adds, CRLF-terminated: from whom (the HELO
/// name, kept to printable characters, and the address), by which host,
/// with which protocol (`ESMTPSA` …), the queue id, and when.
pub(crate) fn received_field(
    helo: &str,
    peer: IpAddr,
    by: &str,
    protocol: &str,
    id: &str,
) -> String {
    received_field_at(helo, peer, by, protocol, id, unix_now())
}

/// [`received_field`] dated `now` (Unix seconds), for a loop that reads
/// its clock once per turn.
pub(crate) fn received_field_at(
    helo: &str,
    peer: IpAddr,
    by: &str,
    protocol: &str,
    id: &str,
    now: u64,
) -> String {
    let helo: String = helo
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | ';'))
        .take(255)
        .collect();
    let helo = if helo.is_empty() {
        "unknown".into()
    } else {
        helo
    };
    format!(
        "Received: from {helo} ([{peer}])\r\n\tby {by} with {protocol} id {id};\r\n\t{date}\r\n",
        date = rfc5322_date(now),
    )
}

/// `Sun, 22 Nov 2026 01:25:55 +0000` for a Unix time (RFC 5322 §3.3): the
/// workspace's one formatter, ptt-list's.
pub(crate) use ptt_list::rfc5322_date;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_310_755),
            "Sun, 22 Nov 2026 01:25:55 +0000"
        );
    }

    #[test]
    fn a_hostile_helo_cannot_break_the_field() {
        let f = received_field(
            "evil\r\nBcc: x (y); z",
            "192.0.2.1".parse().unwrap(),
            "mx.test",
            "ESMTPSA",
            "1",
        );
        assert!(
            f.starts_with("Received: from evilBcc:xyz ([192.0.2.1])\r\n"),
            "{f}"
        );
        assert_eq!(f.matches("\r\n").count(), 3);
    }
}
