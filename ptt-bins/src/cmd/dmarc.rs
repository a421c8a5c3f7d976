//! `ptt dmarc`: publish a domain's DMARC record by RFC 2136 UPDATE with
//! TSIG, through the same path as the signer's keys and `ptt spf publish`.

use crate::dns;
use crate::exit::{Failure, Outcome};

/// DMARC records.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    ptt dmarc publish --dns 127.0.0.1:53 --tsig upd-key:hmac-sha256:SECRET --domain example.org \\\n      \
    \"v=DMARC1; p=reject; rua=mailto:dmarc@example.org\"")]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Make `_dmarc.DOMAIN` hold exactly this DMARC record (other TXT
    /// records there are kept; nothing is sent when it already does).
    Publish(PublishArgs),
    /// The aggregate reports other receivers sent to `[receiver] dmarc_rua`:
    /// one line each (reporter, domain, period, messages, DMARC pass, fail).
    Reports(ReportsArgs),
}

#[derive(Debug, clap::Args)]
struct ReportsArgs {
    /// The site's configuration file.
    #[arg(long)]
    config: std::path::PathBuf,
}

fn reports(args: ReportsArgs) -> Outcome {
    use std::io::Write as _;
    let config = super::serve::load(&args.config)?;
    let dir = crate::service::receiver::dmarc_reports::kept_dir(&config);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "xml"));
    files.sort();
    let mut out = std::io::stdout().lock();
    if files.is_empty() {
        writeln!(out, "no aggregate reports in {}", dir.display()).map_err(Failure::stdout)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<28} {:<24} {:<23} {:>8} {:>6} {:>6}",
        "reporter", "domain", "period (UTC)", "messages", "pass", "fail"
    )
    .map_err(Failure::stdout)?;
    for file in files {
        let Ok(xml) = std::fs::read(&file) else {
            continue;
        };
        let report = match ptt_dmarc::report::Feedback::parse_xml(&xml) {
            Ok(r) => r,
            Err(e) => {
                writeln!(out, "{}: {e}", file.display()).map_err(Failure::stdout)?;
                continue;
            }
        };
        let (mut total, mut pass) = (0u64, 0u64);
        for r in &report.records {
            total += r.count;
            if r.policy_evaluated.dkim_pass || r.policy_evaluated.spf_pass {
                pass += r.count;
            }
        }
        let day = |t: u64| {
            crate::service::trace::rfc5322_date(t)
                .split(' ')
                .skip(1)
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        };
        writeln!(
            out,
            "{:<28} {:<24} {:<23} {:>8} {:>6} {:>6}",
            report.metadata.org_name,
            report.policy.domain,
            format!(
                "{} - {}",
                day(report.metadata.begin),
                day(report.metadata.end)
            ),
            total,
            pass,
            total - pass
        )
        .map_err(Failure::stdout)?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct PublishArgs {
    /// The primary DNS server that takes the UPDATE (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    dns: String,
    /// The TSIG key allowed to update the zone: NAME:ALGORITHM:SECRET.
    #[arg(long, value_name = "NAME:ALG:SECRET")]
    tsig: String,
    /// The domain whose DMARC record is set.
    #[arg(long)]
    domain: String,
    /// TTL of the record, in seconds.
    #[arg(long, default_value_t = 300)]
    ttl: u32,
    /// The record, "v=DMARC1; p=…".
    record: String,
}

pub(crate) fn run(args: Args) -> Outcome {
    match args.action {
        Action::Publish(a) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::input(format!("cannot start the async runtime: {e}")))?
            .block_on(publish(a)),
        Action::Reports(a) => reports(a),
    }
}

async fn publish(args: PublishArgs) -> Outcome {
    let text = args.record.trim().to_string();
    ptt_dmarc::DmarcRecord::parse(&text)
        .map_err(|e| Failure::input(format!("the record is not valid DMARC: {e}")))?;
    let domain = args.domain.trim_end_matches('.');
    // RFC 7489 §6.6.3's rule for which TXT records are DMARC's.
    let is_dmarc = |t: &[u8]| std::str::from_utf8(t).is_ok_and(ptt_dmarc::record::is_dmarc_record);
    let line = dns::publish::publish_txt(
        &args.dns,
        &args.tsig,
        &format!("_dmarc.{domain}"),
        is_dmarc,
        &text,
        args.ttl,
    )
    .await
    .map_err(Failure::Input)?;
    println!("{line}");
    Ok(())
}
