//! `ptt auth check`: SPF, DKIM and DMARC on a message, as the receiver
//! would run them, printing the `Authentication-Results` field it would add.

use std::io::Read as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use ptt_dmarc::eval::DmarcResult;
use ptt_dmarc::psl::PublicSuffixList;

use crate::authn::{Envelope, authenticate};
use crate::dns::{Resolver, server_addr};
use crate::exit::{Failure, Outcome};

/// Authenticate a message: SPF, DKIM and DMARC together.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run SPF, DKIM and DMARC on a message from standard input and print
    /// the Authentication-Results field a receiver would add. Exit 0 when
    /// DMARC passes, 1 otherwise.
    #[command(
        after_help = "Example:\n  ptt auth check --ip 192.0.2.10 --mail-from alice@example.org \\\n      --helo mail.example.org --dns 127.0.0.1:5353 < message.eml"
    )]
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The SMTP client's IP address.
    #[arg(long)]
    ip: IpAddr,
    /// The MAIL FROM address (empty for the null sender).
    #[arg(long, default_value = "")]
    mail_from: String,
    /// The HELO/EHLO name the client gave.
    #[arg(long)]
    helo: String,
    /// DNS server to ask (HOST:PORT); the system's resolver when absent.
    #[arg(long)]
    dns: Option<String>,
    /// The authserv-id of the Authentication-Results field (this host).
    #[arg(long, default_value = "localhost")]
    authserv_id: String,
    /// A Public Suffix List file to use instead of the compiled-in copy.
    #[arg(long)]
    psl: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: Args) -> Outcome {
    match args.command {
        Command::Check(args) => check(args),
    }
}

fn check(args: CheckArgs) -> Outcome {
    let server = args
        .dns
        .as_deref()
        .map(server_addr)
        .transpose()
        .map_err(Failure::Input)?;
    let psl = match &args.psl {
        None => PublicSuffixList::builtin(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::input(format!("--psl {}: {e}", path.display())))?;
            PublicSuffixList::parse_lossy(&text).0
        }
    };
    let mut message = Vec::new();
    std::io::stdin()
        .read_to_end(&mut message)
        .map_err(|e| Failure::input(format!("reading the message: {e}")))?;
    let message = ptt_arc::message::to_crlf(&message);
    let envelope = Envelope {
        ip: args.ip,
        helo: args.helo,
        mail_from: args.mail_from,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("starting the runtime: {e}")))?;
    let auth = runtime.block_on(async {
        let resolver = Resolver::new(server)?;
        let sample = crate::random::below(100);
        Ok::<_, String>(
            authenticate(
                &resolver,
                &psl,
                &message,
                &envelope,
                &args.authserv_id,
                now,
                sample,
            )
            .await,
        )
    });
    let auth = auth.map_err(Failure::Input)?;
    for result in &auth.dkim {
        println!("{result}");
    }
    if let Some(problem) = &auth.from_problem {
        println!("dmarc: {problem}");
    }
    print!("{}", auth.received_spf);
    print!(
        "{}",
        auth.header_field(&args.authserv_id)
            .map_err(Failure::Input)?
    );
    if auth.dmarc.result == DmarcResult::Pass {
        Ok(())
    } else {
        Err(Failure::Negative)
    }
}
