//! `ptt check-config`: is a configuration file right, and what does it run.

use std::path::PathBuf;

use crate::exit::Outcome;

/// Check a configuration file.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  ptt check-config /etc/ptt/ptt.toml\n\n\
Exit 0 with a one-line summary, or 2 with each problem as FILE:LINE:COL: what is wrong; what to write.")]
pub(crate) struct Args {
    /// The configuration file.
    file: PathBuf,
}

pub(crate) fn run(args: Args) -> Outcome {
    let config = super::serve::load(&args.file)?;
    println!("ok: {}", config.summary());
    Ok(())
}
