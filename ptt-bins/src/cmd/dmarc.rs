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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("cannot start the async runtime: {e}")))?;
    match args.action {
        Action::Publish(a) => runtime.block_on(publish(a)),
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
