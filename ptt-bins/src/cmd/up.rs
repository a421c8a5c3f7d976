//! `ptt up`: every service of a domain on loopback, with generated keys.

use crate::exit::{Failure, Outcome};

/// Run every service on loopback with generated keys.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  ptt up --domain example.test")]
pub(crate) struct Args {
    /// The mail domain the local service is for.
    #[arg(long, default_value = "example.test")]
    domain: String,
}

pub(crate) fn run(args: Args) -> Outcome {
    Err(Failure::input(format!(
        "no service can run for {} yet: the SMTP server machine (ptt-smtp) is not built",
        args.domain
    )))
}
