//! The interop edge of relaxed body canonicalization: a body whose last
//! line ends in spaces or tabs and has no final CRLF (possible outside
//! SMTP, e.g. `ptt dkim sign` on a file).
//!
//! RFC 6376 §3.4.4 says to ignore all whitespace at the end of lines, then
//! add a CRLF to a non-empty body that lacks one: `abc  ` → `abc\r\n`. Of
//! the independent implementations at hand, Mail::DKIM (Perl) and mail-auth
//! (Rust; its relaxed body writes a space only before a following
//! character) do that; dkimpy compresses the trailing run to one space
//! first and keeps it (`abc \r\n`); OpenDKIM's test mode does not sign such
//! a file at all. ptt follows the RFC and the majority. This test checks
//! ptt byte for byte against Mail::DKIM, and records dkimpy's difference so
//! that a change on either side is noticed.

use ptt_dkim::{Canonicalization, canonicalize_body};
use std::process::Command;

const BODIES: [&[u8]; 6] = [
    b"abc  ",
    b"abc \t",
    b"a  b\t\t",
    b"line one\r\nline two  ",
    b"abc  \r\n",
    b"x\r\n\r\n  ",
];

/// Mail::DKIM's relaxed canonical body of each body, as hex.
fn mail_dkim(bodies: &[&[u8]]) -> Option<Vec<String>> {
    let ok = Command::new("perl")
        .args(["-MMail::DKIM::Canonicalization::relaxed", "-e", "1"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        return None;
    }
    let hex: Vec<String> = bodies
        .iter()
        .map(|b| b.iter().map(|c| format!("{c:02x}")).collect())
        .collect();
    let script = r#"
package Collect; sub new { my $s = ""; bless \$s } sub PRINT { my $self = shift; $$self .= join("", @_) }
package main;
use Mail::DKIM::Canonicalization::relaxed;
use Mail::DKIM::Signature;
my $sig = Mail::DKIM::Signature->new(Algorithm => "rsa-sha256", Method => "relaxed", Domain => "x.test", Selector => "s");
for my $hex (@ARGV) {
  my $body = pack("H*", $hex);
  my $out = Collect->new;
  my $c = Mail::DKIM::Canonicalization::relaxed->new(output => $out, Signature => $sig);
  $c->add_body($body);
  $c->finish_body;
  print unpack("H*", $$out), "\n";
}
"#;
    let out = Command::new("perl")
        .arg("-e")
        .arg(script)
        .args(&hex)
        .output()
        .expect("run perl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

/// dkimpy's relaxed canonical body of each body, as hex.
fn dkimpy(bodies: &[&[u8]]) -> Vec<String> {
    let hex: Vec<String> = bodies
        .iter()
        .map(|b| b.iter().map(|c| format!("{c:02x}")).collect())
        .collect();
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys\nfrom dkim.canonicalization import Relaxed\nfor h in sys.argv[1:]:\n    print(Relaxed.canonicalize_body(bytes.fromhex(h)).hex())",
        ])
        .args(&hex)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn ptt(body: &[u8]) -> String {
    canonicalize_body(Canonicalization::Relaxed, body)
        .iter()
        .map(|c| format!("{c:02x}"))
        .collect()
}

#[test]
fn relaxed_bodies_without_a_final_crlf_follow_the_rfc_and_the_majority() {
    // The RFC's reading, written out.
    assert_eq!(ptt(b"abc  "), ptt(b"abc\r\n"));
    assert_eq!(
        ptt(b"line one\r\nline two  "),
        ptt(b"line one\r\nline two\r\n")
    );
    let Some(perl) = mail_dkim(&BODIES) else {
        panic!(
            "this test needs Mail::DKIM (Debian package libmail-dkim-perl); run .ci/test, which installs every peer"
        );
    };
    let python = dkimpy(&BODIES);
    let mut dkimpy_differs = Vec::new();
    for (i, body) in BODIES.iter().enumerate() {
        let ours = ptt(body);
        assert_eq!(
            ours,
            perl[i],
            "Mail::DKIM and ptt on {:?}",
            String::from_utf8_lossy(body)
        );
        if python[i] != ours {
            dkimpy_differs.push(String::from_utf8_lossy(body).into_owned());
        }
    }
    // dkimpy keeps one space of a trailing run when no CRLF follows, and
    // only then: every body with a final CRLF agrees.
    assert_eq!(
        dkimpy_differs,
        [
            "abc  ",
            "abc \t",
            "a  b\t\t",
            "line one\r\nline two  ",
            "x\r\n\r\n  "
        ],
        "dkimpy's relaxed body changed"
    );
}
