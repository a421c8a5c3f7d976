//! `ptt`: one command for the servers and the tools of a ptt mail domain.
//!
//! Each verb lives in its own module under `cmd/`; this file only parses the
//! command line and turns a verb's outcome into the exit code:
//! 0 success, 1 a negative verdict from a check, 2 bad usage or bad input
//! (one line on standard error, never a panic or a backtrace).

mod authn;
mod cmd;
mod dns;
mod exit;
mod maildir;
mod pki;
mod random;
mod smtp_io;

use std::process::ExitCode;

use clap::Parser;

use crate::exit::Failure;

/// Run a complete, secure SMTP service for a domain, and its tools.
#[derive(Debug, Parser)]
#[command(name = "ptt", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  ptt up                      run every service on loopback with generated keys\n  ptt <verb> --help           what a verb does, with an example"
)]
struct Cli {
    #[command(subcommand)]
    verb: cmd::Verb,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli.verb) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Negative) => ExitCode::from(1),
        Err(Failure::Input(message)) => {
            eprintln!("ptt: {message}");
            ExitCode::from(2)
        }
    }
}
