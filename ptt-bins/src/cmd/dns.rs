//! `ptt dns check`: is the domain published as a mail domain should be.

use std::io::Write as _;
use std::path::PathBuf;

use crate::dns::check::{Finding, Status};
use crate::exit::{Failure, Outcome};

/// The domain's DNS, as the Internet sees it.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt dns check --config /etc/ptt/ptt.toml\n  ptt dns check --config /etc/ptt/ptt.toml --json\n\n\
Checks, through [dns] resolver: MX → hostname; A/AAAA of hostname; the PTR of each of those\n\
addresses → hostname; SPF passing those addresses; each DKIM selector matching its key; DMARC\n\
with rua; with [dns] mta_sts, the _mta-sts record and the policy over HTTPS; with tls_rpt, the\n\
_smtp._tls record; with dane, the TLSA of the receiver's certificate. Exit 0 when all is well, 1 otherwise."
)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Check every record the domain should publish.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The site's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// One JSON array of findings instead of the table (for monitoring).
    #[arg(long)]
    json: bool,
}

/// Prints the findings as a table: one line per record, the record to
/// publish under each that is not ok.
pub(crate) fn print_table(
    findings: &[Finding],
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    for f in findings {
        let status = match f.status {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Wrong => "wrong",
        };
        writeln!(out, "{status:<8} {:<width$}  {}", f.check, f.found)?;
        if let Some(publish) = &f.publish {
            for line in publish.lines() {
                writeln!(out, "{:<8} {:<width$}  publish: {line}", "", "")?;
            }
        }
    }
    Ok(())
}

pub(crate) fn run(args: Args) -> Outcome {
    let Action::Check(args) = args.action;
    let config = super::serve::load(&args.config)?;
    let runtime = super::serve::runtime()?;
    let findings = runtime.block_on(async {
        let resolver = crate::dns::Resolver::for_config(&config).map_err(Failure::Input)?;
        Ok::<_, Failure>(crate::dns::check::run(&config, &resolver).await)
    })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let text = serde_json::to_string_pretty(&findings).map_err(Failure::input)?;
        writeln!(out, "{text}").map_err(Failure::stdout)?;
    } else {
        print_table(&findings, &mut out).map_err(Failure::stdout)?;
    }
    if findings.iter().all(|f| f.status == Status::Ok) {
        Ok(())
    } else {
        Err(Failure::Negative)
    }
}
