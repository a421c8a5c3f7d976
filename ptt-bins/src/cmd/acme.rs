//! `ptt acme renew`: get a new certificate by ACME DNS-01 now, for the
//! services of a configuration that face the Internet; a running service
//! starts presenting it within seconds, without a restart.

use std::path::PathBuf;

use crate::config::ServiceName;
use crate::exit::{Failure, Outcome};

/// ACME certificates.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt acme renew --config /etc/ptt/ptt.toml            submission's and the receiver's\n  \
    ptt acme renew --config /etc/ptt/ptt.toml receiver\n\n\
The services renew by themselves when two thirds of a certificate's life are over;\n\
this forces a renewal now (a running service swaps to it live)."
)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Obtain a new certificate now.
    Renew(RenewArgs),
}

#[derive(Debug, clap::Args)]
struct RenewArgs {
    /// The site's configuration file (with `[tls] acme`).
    #[arg(long)]
    config: PathBuf,
    /// submission and/or receiver (both configured ones when none is named).
    services: Vec<String>,
}

pub(crate) fn run(args: Args) -> Outcome {
    let Action::Renew(args) = args.action;
    let config = super::serve::load(&args.config)?;
    if config.tls.acme.is_none() {
        return Err(Failure::input(format!(
            "{}: [tls] has no acme = {{ directory = … }}",
            args.config.display()
        )));
    }
    let facing = [ServiceName::Submission, ServiceName::Receiver];
    let services: Vec<ServiceName> = if args.services.is_empty() {
        config
            .services()
            .into_iter()
            .filter(|s| facing.contains(s))
            .collect()
    } else {
        args.services
            .iter()
            .map(|w| {
                ServiceName::parse(w)
                    .filter(|s| facing.contains(s))
                    .ok_or_else(|| Failure::input(format!("{w:?}: name submission or receiver")))
            })
            .collect::<Result<_, _>>()?
    };
    super::serve::init_logging(config.log.json);
    let runtime = super::serve::runtime()?;
    runtime.block_on(async {
        for service in services {
            let acme = crate::net::acme::Acme::new(&config, service)
                .map_err(Failure::Input)?
                .ok_or_else(|| Failure::input("no [tls] acme"))?;
            acme.obtain()
                .await
                .map_err(|e| Failure::input(format!("{service}: {e}")))?;
            println!(
                "{service}: new certificate in {}",
                config.state_of(service).join("acme").display()
            );
        }
        Ok(())
    })
}
