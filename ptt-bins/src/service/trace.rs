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
        date = rfc5322_date(unix_now()),
    )
}

/// `Sun, 22 Nov 2026 01:25:55 +0000` for a Unix time (RFC 5322 §3.3).
pub(crate) fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
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
