//! `ptt`: one command for the servers and the tools of a ptt mail domain,
//! and the server layer its services are made of.
//!
//! Each verb lives in its own module under `cmd/`; this file only parses the
//! command line and turns a verb's outcome into the exit code:
//! 0 success, 1 a negative verdict from a check, 2 bad usage or bad input
//! (one line on standard error, never a panic or a backtrace), 141 when
//! the reader of standard output went away (as a command killed by SIGPIPE).

mod authn;
mod cmd;
pub mod config;
mod dns;
mod exit;
mod net;
mod random;
mod sandbox;
mod service;
#[cfg(feature = "smoltcp")]
pub mod smol;
mod store;
pub mod userdb;

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

/// Parses the command line, runs the verb and turns its outcome into the
/// exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `println!` panics when standard output has been closed (`ptt … | head`).
    // That is the reader's choice, not an error of ours: stop quietly with
    // the status a shell gives a command killed by SIGPIPE (128 + 13), as C
    // tools do, instead of printing a panic and a backtrace.
    // Only the main thread's: a panic elsewhere might not reach this
    // function, and must then at least be reported.
    let report = std::panic::take_hook();
    let main_thread = std::thread::current().id();
    std::panic::set_hook(Box::new(move |info| {
        let closed = info.payload_as_str().is_some_and(is_closed_stdout);
        if !closed || std::thread::current().id() != main_thread {
            report(info);
        }
    }));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cmd::run(cli.verb)));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(Failure::Negative)) => ExitCode::from(1),
        Ok(Err(Failure::Input(message))) => {
            eprintln!("ptt: {message}");
            ExitCode::from(2)
        }
        Ok(Err(Failure::Printed)) => ExitCode::from(2),
        Ok(Err(Failure::OutputClosed)) => ExitCode::from(141),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied());
            if message.is_some_and(is_closed_stdout) {
                ExitCode::from(141)
            } else {
                std::panic::resume_unwind(payload)
            }
        }
    }
}

/// Whether a panic message is `print!`'s on a closed standard output.
fn is_closed_stdout(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}
