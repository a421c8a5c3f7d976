//! Aggregate reports we build validate against the RFC 7489 appendix C
//! schema (tests/data/rfc7489-rua.xsd) with a real validator, `xmllint`
//! from Debian's libxml2-utils, and read back to the same content.

use std::net::IpAddr;
use std::process::Command;

use ptt_dmarc::DmarcRecord;
use ptt_dmarc::eval::*;
use ptt_dmarc::psl::PublicSuffixList;
use ptt_dmarc::report::*;

const XSD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc7489-rua.xsd");

/// `Ok(())` when xmllint says the document validates, else its complaint.
fn xmllint(xml: &str) -> Result<(), String> {
    let program = ptt_testkit::require_program("xmllint", "Debian package libxml2-utils");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.xml");
    std::fs::write(&path, xml).unwrap();
    let out = Command::new(program)
        .args(["--noout", "--schema", XSD])
        .arg(&path)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn day_of_mail() -> Feedback {
    let psl = PublicSuffixList::builtin();
    let record_text = "v=DMARC1; p=reject; sp=quarantine; pct=50; fo=0:d; rua=mailto:d@example.com";
    let record = DmarcRecord::parse(record_text).unwrap();
    let meta = ReportMetadata {
        org_name: "ptt <test> & co".into(),
        email: "dmarc-reports@mx.example.org".into(),
        extra_contact_info: Some("https://mx.example.org/dmarc?a=1&b=2".into()),
        report_id: "mx.example.org!example.com!1700000000".into(),
        begin: 1_700_000_000,
        end: 1_700_086_399,
        errors: vec!["one TXT lookup timed out".into()],
        generator: None,
    };
    let mut builder =
        ReportBuilder::new(meta, PolicyPublished::from_record("example.com", &record));
    let cases: Vec<(&str, &str, &str, AuthInput, u32)> = vec![
        // Aligned DKIM pass, three times from one IP: one row, count 3.
        (
            "192.0.2.1",
            "bounce.example.com",
            "example.com",
            AuthInput {
                spf: Some(SpfOutcome::mail_from(SpfResult::Pass, "bounce.example.com")),
                dkim: vec![DkimOutcome::new(DkimResult::Pass, "example.com").with_selector("s1")],
            },
            0,
        ),
        (
            "192.0.2.1",
            "bounce.example.com",
            "example.com",
            AuthInput {
                spf: Some(SpfOutcome::mail_from(SpfResult::Pass, "bounce.example.com")),
                dkim: vec![DkimOutcome::new(DkimResult::Pass, "example.com").with_selector("s1")],
            },
            1,
        ),
        (
            "192.0.2.1",
            "bounce.example.com",
            "example.com",
            AuthInput {
                spf: Some(SpfOutcome::mail_from(SpfResult::Pass, "bounce.example.com")),
                dkim: vec![DkimOutcome::new(DkimResult::Pass, "example.com").with_selector("s1")],
            },
            2,
        ),
        // Spoofed from IPv6, sampled in (reject) and out (quarantine).
        (
            "2001:db8::25",
            "evil.example",
            "example.com",
            AuthInput {
                spf: Some(SpfOutcome::mail_from(SpfResult::Fail, "evil.example")),
                dkim: vec![],
            },
            10,
        ),
        (
            "2001:db8::25",
            "evil.example",
            "example.com",
            AuthInput {
                spf: Some(SpfOutcome::mail_from(SpfResult::Fail, "evil.example")),
                dkim: vec![],
            },
            70,
        ),
        // Subdomain, null sender (HELO), two signatures, no SPF.
        (
            "198.51.100.7",
            "",
            "news.example.com",
            AuthInput {
                spf: Some(SpfOutcome::helo(SpfResult::None, "mta.example.net")),
                dkim: vec![
                    DkimOutcome::new(DkimResult::Fail, "news.example.com"),
                    DkimOutcome::new(DkimResult::Pass, "esp.example.net"),
                ],
            },
            99,
        ),
        ("198.51.100.8", "", "example.com", AuthInput::default(), 0),
    ];
    for (ip, envelope_from, from, auth, sample) in cases {
        let verdict = Evaluation::new(&psl, from, auth.clone(), sample)
            .unwrap()
            .run(|q| match q.name.as_str() {
                "_dmarc.example.com" => Answer::txt(record_text),
                _ => Answer::NxDomain,
            });
        builder.add(&ReportEntry {
            source_ip: ip.parse::<IpAddr>().unwrap(),
            envelope_from: envelope_from.into(),
            envelope_to: Some("example.org".into()),
            auth,
            verdict,
            overrides: vec![],
        });
    }
    assert_eq!(builder.len(), 5);
    builder.build()
}

#[test]
fn built_report_validates_against_rfc7489_schema() {
    let feedback = day_of_mail();
    let xml = feedback.to_xml();
    xmllint(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    assert!(
        xml.contains("<source_ip>2001:db8:0:0:0:0:0:25</source_ip>"),
        "{xml}"
    );
    assert!(xml.contains("<org_name>ptt &lt;test&gt; &amp; co</org_name>"));
    assert!(xml.contains("<type>sampled_out</type>"));

    // Read back: the same report.
    let back = Feedback::parse_xml(xml.as_bytes()).unwrap();
    assert_eq!(back, feedback);
    let first = &back.records[0];
    assert_eq!(first.count, 3);
    assert!(first.policy_evaluated.dkim_pass && first.policy_evaluated.spf_pass);
    let spoof: Vec<_> = back
        .records
        .iter()
        .filter(|r| r.identifiers.envelope_from.as_deref() == Some("evil.example"))
        .collect();
    assert_eq!(spoof.len(), 2);
    assert_eq!(spoof[0].policy_evaluated.disposition, Disposition::Reject);
    assert_eq!(
        spoof[1].policy_evaluated.disposition,
        Disposition::Quarantine
    );
    assert_eq!(back.policy.fo.as_deref(), Some("0:d"));
    assert_eq!(back.policy.pct, Some(50));
}

#[test]
fn validator_rejects_what_the_schema_forbids() {
    // The checks above mean something only if xmllint does check.
    let xml = day_of_mail().to_xml();
    for (from, to) in [
        ("<header_from>example.com</header_from>", ""),
        (
            "<disposition>reject</disposition>",
            "<disposition>drop</disposition>",
        ),
        (
            "<source_ip>192.0.2.1</source_ip>",
            "<source_ip>2001:db8::1</source_ip>",
        ),
        ("<version>1.0</version>", ""),
        ("<scope>mfrom</scope>", "<scope>pra</scope>"),
    ] {
        assert!(xml.contains(from), "{from}");
        let broken = xml.replacen(from, to, 1);
        assert!(
            xmllint(&broken).is_err(),
            "xmllint accepted {to:?} for {from:?}"
        );
    }
}

#[test]
fn stalwart_samples_written_back_validate() {
    // Reports read from other receivers, written in our RFC 7489 form.
    let Some(dir) = ptt_testkit::shared_suite(
        "conformance/stalwart-mail-auth-resources/resources/dmarc-feedback",
    ) else {
        return;
    };
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let reports = match path.extension().and_then(|e| e.to_str()) {
            Some("xml") => vec![Feedback::parse_xml(&bytes).unwrap()],
            Some("eml") => from_message(&bytes).unwrap(),
            _ => continue,
        };
        for r in reports {
            let xml = r.to_xml();
            xmllint(&xml).unwrap_or_else(|e| panic!("{}: {e}\n{xml}", path.display()));
            n += 1;
        }
    }
    assert_eq!(n, 10);
}

#[test]
fn gzip_attachment_reads_back_here_and_in_python() {
    let feedback = day_of_mail();
    assert_eq!(
        feedback.file_name("mx.example.org"),
        "mx.example.org!example.com!1700000000!1700086399.xml.gz"
    );
    assert_eq!(
        feedback.subject("mx.example.org"),
        "Report Domain: example.com Submitter: mx.example.org Report-ID: <mx.example.org!example.com!1700000000>"
    );
    let gz = feedback.to_gzip();
    // Python's gzip module (CRC and length checked) gives back our XML.
    let out = ptt_testkit::python::run(
        "import gzip\nsys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))",
        serde_json::json!({"txt": {}}),
        &gz,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), feedback.to_xml());
    // And our reader takes it from an email as a receiver would send it.
    let b64 = {
        let out = ptt_testkit::python::run(
            "import base64\nsys.stdout.write(base64.encodebytes(sys.stdin.buffer.read()).decode())",
            serde_json::json!({"txt": {}}),
            &gz,
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mail = format!(
        "From: dmarc@mx.example.org\r\nTo: d@example.com\r\nSubject: {}\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nreport\r\n\
         --b\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{}\"\r\n\r\n{}\r\n--b--\r\n",
        feedback.subject("mx.example.org"),
        feedback.file_name("mx.example.org"),
        b64.replace('\n', "\r\n")
    );
    let reports = from_message(mail.as_bytes()).unwrap();
    assert_eq!(reports, vec![feedback]);
}
