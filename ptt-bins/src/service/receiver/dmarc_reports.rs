//! DMARC aggregate reports (RFC 7489 §7.2): the receiver records every
//! message it evaluates against a policy that asks for reports (`rua=`),
//! grouped by policy domain with ptt-dmarc's `ReportBuilder`, and once per
//! `[receiver] dmarc_report_seconds` (a day by default) sends each policy
//! domain its report: the RFC 7489 XML, gzip-compressed, attached to a
//! message from `postmaster@DOMAIN`, through the signer (DKIM-signed) and
//! the relay. A `mailto:` address outside the policy domain's
//! organizational domain is used only if that domain agrees
//! (`POLICY._report._dmarc.DEST` TXT `v=DMARC1`, §7.1).
//!
//! The day's records are kept in memory: a restart loses the reports of
//! the day so far, never mail.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use base64::Engine as _;
use hickory_proto::rr::RecordType;
use ptt_dmarc::psl::PublicSuffixList;
use ptt_dmarc::report::{Feedback, PolicyPublished, ReportBuilder, ReportEntry, ReportMetadata};

use crate::authn::Authentication;
use crate::dns::{Lookup, Resolver, txt_joined};
use crate::service::hop::{Handoff, Hop};
use crate::service::trace::rfc5322_date;

/// One policy domain's report in the making.
struct Pending {
    builder: ReportBuilder,
    /// Its `mailto:` destinations.
    rua: Vec<String>,
}

/// The reports of the current period.
pub(crate) struct Reports {
    domain: String,
    hostname: String,
    /// When the current period began.
    begin: Mutex<u64>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Reports {
    /// No report yet; the period begins at `now`.
    pub(crate) fn new(domain: &str, hostname: &str, now: u64) -> Reports {
        Reports {
            domain: domain.to_string(),
            hostname: hostname.to_string(),
            begin: Mutex::new(now),
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Records one evaluated message, if its policy asks for reports.
    pub(crate) fn record(&self, ip: IpAddr, mail_from: &str, auth: &Authentication) {
        let verdict = &auth.dmarc;
        let (Some(record), Some(policy_domain)) = (&verdict.record, &verdict.policy_domain) else {
            return;
        };
        let rua: Vec<String> = record
            .rua
            .iter()
            .flatten()
            .filter_map(|u| u.mailto().map(str::to_string))
            .collect();
        if rua.is_empty() {
            return;
        }
        let entry = ReportEntry {
            source_ip: ip,
            envelope_from: crate::userdb::domain_of(mail_from),
            envelope_to: Some(self.domain.clone()),
            auth: auth.input.clone(),
            verdict: verdict.clone(),
            overrides: Vec::new(),
        };
        let begin = self.begin.lock().map(|b| *b).unwrap_or(0);
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let domain = policy_domain.to_ascii_lowercase();
        pending
            .entry(domain.clone())
            .or_insert_with(|| Pending {
                builder: ReportBuilder::new(
                    ReportMetadata {
                        org_name: self.domain.clone(),
                        email: format!("postmaster@{}", self.domain),
                        begin,
                        ..ReportMetadata::default()
                    },
                    PolicyPublished::from_record(&domain, record),
                ),
                rua,
            })
            .builder
            .add(&entry);
    }

    /// Ends the period at `now`: the reports to send, with their
    /// destinations.
    fn take(&self, now: u64) -> Vec<(Feedback, Vec<String>)> {
        let begin = self
            .begin
            .lock()
            .map(|mut b| std::mem::replace(&mut *b, now))
            .unwrap_or(0);
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        pending
            .drain()
            .map(|(domain, p)| {
                let mut feedback = p.builder.build();
                feedback.metadata.begin = begin;
                feedback.metadata.end = now;
                feedback.metadata.report_id = format!("{domain}.{begin}.{now}@{}", self.hostname);
                (feedback, p.rua)
            })
            .collect()
    }

    /// Sends the period's reports (ending it at `now`); returns how many
    /// messages were handed to the signer.
    pub(crate) async fn send(
        &self,
        signer: &Hop,
        resolver: &Resolver,
        psl: &PublicSuffixList,
        now: u64,
    ) -> usize {
        let mut sent = 0;
        for (feedback, rua) in self.take(now) {
            let policy_domain = feedback.policy.domain.clone();
            for to in rua {
                let dest = crate::userdb::domain_of(&to);
                if !self.accepted_by(resolver, psl, &policy_domain, &dest).await {
                    tracing::warn!(
                        service = "receiver",
                        policy_domain,
                        to,
                        "DMARC report not sent: the destination's domain does not accept reports for this domain (RFC 7489 §7.1)"
                    );
                    continue;
                }
                let message = self.compose(&feedback, &to, now);
                let from = format!("postmaster@{}", self.domain);
                match signer
                    .send(&from, std::slice::from_ref(&to), &message)
                    .await
                {
                    Handoff::Taken { .. } => {
                        sent += 1;
                        tracing::info!(
                            service = "receiver",
                            policy_domain,
                            to,
                            records = feedback.records.len(),
                            "DMARC report sent"
                        );
                    }
                    other => tracing::warn!(
                        service = "receiver",
                        policy_domain,
                        to,
                        "DMARC report not sent: {other:?}"
                    ),
                }
            }
        }
        sent
    }

    /// RFC 7489 §7.1: a destination outside the policy domain's
    /// organizational domain must publish `POLICY._report._dmarc.DEST`.
    async fn accepted_by(
        &self,
        resolver: &Resolver,
        psl: &PublicSuffixList,
        policy_domain: &str,
        dest: &str,
    ) -> bool {
        let org = |d: &str| {
            psl.organizational_domain(d)
                .unwrap_or_else(|| d.to_string())
        };
        if org(policy_domain).eq_ignore_ascii_case(&org(dest)) {
            return true;
        }
        let name = format!("{policy_domain}._report._dmarc.{dest}");
        match resolver.lookup(&name, RecordType::TXT).await {
            Lookup::Found(records) => records.iter().any(|r| match r {
                hickory_proto::rr::RData::TXT(t) => {
                    String::from_utf8_lossy(&txt_joined(t)).starts_with("v=DMARC1")
                }
                _ => false,
            }),
            _ => false,
        }
    }

    /// The report message: a short text and the gzip'd XML attached.
    fn compose(&self, feedback: &Feedback, to: &str, now: u64) -> Vec<u8> {
        let name = feedback.file_name(&self.hostname);
        let boundary = format!("=_dmarc_{now}_{}", feedback.records.len());
        let data = base64::engine::general_purpose::STANDARD.encode(feedback.to_gzip());
        let mut body = String::new();
        for chunk in data.as_bytes().chunks(76) {
            body.push_str(&String::from_utf8_lossy(chunk));
            body.push_str("\r\n");
        }
        format!(
            "From: postmaster@{domain}\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {date}\r\n\
Message-ID: <{id}>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n\
This is a DMARC aggregate report (RFC 7489) from {domain} for {policy}.\r\n\r\n\
--{boundary}\r\nContent-Type: application/gzip; name=\"{name}\"\r\n\
Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
{body}--{boundary}--\r\n",
            domain = self.domain,
            subject = feedback.subject(&self.hostname),
            date = rfc5322_date(now),
            id = feedback.metadata.report_id,
            policy = feedback.policy.domain,
        )
        .into_bytes()
    }
}

/// Where the reports sent to our `rua=` are kept.
pub(crate) fn kept_dir(config: &crate::config::Config) -> std::path::PathBuf {
    config
        .state_of(crate::config::ServiceName::Receiver)
        .join("dmarc-reports")
}

/// Keeps the reports a message carries, one XML file each, named
/// `REPORTER!POLICY-DOMAIN!BEGIN!END.xml`; says how many.
pub(crate) fn keep(dir: &std::path::Path, message: &[u8]) -> Result<usize, String> {
    let reports = ptt_dmarc::report::from_message(message).map_err(|e| e.to_string())?;
    if reports.is_empty() {
        return Err("no report attached".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .take(100)
            .collect()
    };
    for report in &reports {
        let name = format!(
            "{}!{}!{}!{}.xml",
            clean(&report.metadata.org_name),
            clean(&report.policy.domain),
            report.metadata.begin,
            report.metadata.end
        );
        crate::store::write_atomic(&dir.join(name), report.to_xml().as_bytes())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(reports.len())
}
