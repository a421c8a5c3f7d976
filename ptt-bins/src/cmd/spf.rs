//! `ptt spf`: check a client against a domain's SPF policy, and publish a
//! domain's SPF record by RFC 2136 UPDATE with TSIG.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use ptt_spf::{ReceivedSpf, Request, SpfRecord, SpfResult, is_spf_record};

use crate::dns::{self, Resolver};
use crate::exit::{Failure, Outcome};

/// Check a client against SPF, or publish a domain's SPF record.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    ptt spf check --ip 192.0.2.10 --mail-from alice@example.org --helo mx.example.org\n  \
    ptt spf publish --dns 127.0.0.1:53 --tsig upd-key:hmac-sha256:SECRET --domain example.org \"v=spf1 mx -all\"")]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Evaluate SPF (RFC 7208) for a client: prints the result, the reason
    /// and the Received-SPF header field; exit 0 on pass, 1 otherwise.
    Check(CheckArgs),
    /// Replace a domain's SPF TXT record by a TSIG-signed UPDATE and read it
    /// back.
    Publish(PublishArgs),
}

/// `ptt spf check`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    ptt spf check --ip 192.0.2.10 --mail-from alice@example.org --helo mx.example.org --dns 127.0.0.1:5353\n\n\
    Exit status: 0 pass; 1 any other result (none, neutral, fail, softfail, temperror, permerror); 2 bad input.")]
struct CheckArgs {
    /// The SMTP client's IP address.
    #[arg(long)]
    ip: String,
    /// The MAIL FROM address (empty for a bounce: postmaster@HELO is checked).
    #[arg(long, default_value = "")]
    mail_from: String,
    /// The HELO/EHLO name the client gave.
    #[arg(long)]
    helo: String,
    /// Ask this DNS server (HOST:PORT) instead of the system's resolvers.
    #[arg(long, value_name = "HOST:PORT")]
    dns: Option<String>,
    /// Check the HELO identity instead of MAIL FROM.
    #[arg(long)]
    helo_identity: bool,
    /// The receiving host's name, for the header and %{r} (default: this
    /// host's name).
    #[arg(long)]
    receiver: Option<String>,
}

/// `ptt spf publish`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    ptt spf publish --dns 127.0.0.1:5353 --tsig upd-key:hmac-sha256:c2VjcmV0 --domain example.test \"v=spf1 mx -all\"\n\n\
    Other TXT records of the domain are kept; only v=spf1 records are replaced.")]
struct PublishArgs {
    /// The primary DNS server that takes the UPDATE (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    dns: String,
    /// The TSIG key allowed to update the zone: NAME:ALGORITHM:SECRET.
    #[arg(long, value_name = "NAME:ALG:SECRET")]
    tsig: String,
    /// The domain whose SPF record is replaced.
    #[arg(long)]
    domain: String,
    /// TTL of the new record, in seconds.
    #[arg(long, default_value_t = 300)]
    ttl: u32,
    /// The record, "v=spf1 ...".
    record: String,
}

pub(crate) fn run(args: Args) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("cannot start the async runtime: {e}")))?;
    match args.action {
        Action::Check(a) => runtime.block_on(check(a)),
        Action::Publish(a) => runtime.block_on(publish(a)),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

async fn check(args: CheckArgs) -> Outcome {
    let ip: IpAddr = args
        .ip
        .parse()
        .map_err(|_| Failure::input(format!("--ip {:?}: not an IP address", args.ip)))?;
    if args.helo.is_empty() {
        return Err(Failure::input("--helo: the HELO name is required"));
    }
    let server = args
        .dns
        .as_deref()
        .map(dns::server_addr)
        .transpose()
        .map_err(Failure::Input)?;
    let resolver = Resolver::new(server).map_err(Failure::Input)?;
    let receiver = args.receiver.unwrap_or_else(host_name);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let request = if args.helo_identity {
        Request::helo(ip, &args.helo)
    } else {
        Request::mail_from(ip, &args.mail_from, &args.helo)
    }
    .with_receiver(&receiver)
    .with_timestamp(now);
    let out = crate::dns::evaluate::spf(&resolver, request.clone()).await;
    let header = ReceivedSpf::new(&request, &out);
    println!("result: {}", out.result);
    println!("reason: {}", header.reason());
    if let Some(m) = &out.mechanism {
        println!("mechanism: {m}");
    }
    if let Some(p) = &out.problem {
        println!("problem: {p}");
    }
    if let Some(e) = &out.explanation {
        println!("explanation: {e}");
    }
    println!("{}", header.to_string().replace("\r\n", "\n"));
    if out.result == SpfResult::Pass {
        Ok(())
    } else {
        Err(Failure::Negative)
    }
}

async fn publish(args: PublishArgs) -> Outcome {
    let record = SpfRecord::parse(args.record.trim())
        .map_err(|e| Failure::input(format!("the record is not valid SPF: {e}")))?;
    let text = record.to_string();
    let line = dns::publish::publish_txt(
        &args.dns,
        &args.tsig,
        &args.domain,
        is_spf_record,
        &text,
        args.ttl,
    )
    .await
    .map_err(Failure::Input)?;
    println!("{line}");
    Ok(())
}
