//! `ptt-smol-receiver`: the receiver on smoltcp over a TAP device, the
//! unikernel route of ptt (see `ptt_bins::smol`). Its own binary, because
//! it counts every allocation against its heap budget.

use std::process::ExitCode;

use clap::Parser as _;
use ptt_bins::smol::{Args, CountingAllocator, run};

#[global_allocator]
static HEAP: CountingAllocator = CountingAllocator;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("ptt-smol-receiver: {why}");
            ExitCode::from(2)
        }
    }
}
