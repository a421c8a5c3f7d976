//! `ptt serve`: run some or all services of a configuration file in this
//! process, until SIGTERM or SIGINT (SIGHUP reloads the users).

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, ServiceName};
use crate::exit::{Failure, Outcome};

/// Run the services of a configuration file.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    ptt serve --config /etc/ptt/ptt.toml                 every configured service\n  \
    ptt serve --config /etc/ptt/ptt.toml signer relay    two of them (one process each works the same)\n\n\
Services: submission, signer, relay, receiver, lists. RUST_LOG filters the log, e.g. RUST_LOG=debug.")]
pub(crate) struct Args {
    /// The configuration file.
    #[arg(long)]
    config: PathBuf,
    /// The services to run (all configured ones when none is named).
    services: Vec<String>,
}

/// Loads a configuration, printing every problem as `FILE:LINE:COL: …`.
pub(crate) fn load(path: &std::path::Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|problems| {
        eprintln!("{problems}");
        Failure::Printed
    })
}

/// Sends `tracing` events to standard error, as text or JSON, filtered by
/// `RUST_LOG` (default `info`).
pub(crate) fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Parses the service words against what the file configures.
fn services(config: &Config, words: &[String]) -> Result<Vec<ServiceName>, Failure> {
    let configured = config.services();
    if words.is_empty() {
        if configured.is_empty() {
            return Err(Failure::input(format!(
                "{}: no service is configured; add a [submission], [signer], [relay] or [receiver] section",
                config.path.display()
            )));
        }
        return Ok(configured);
    }
    words
        .iter()
        .map(|w| {
            let name = ServiceName::parse(w).ok_or_else(|| {
                Failure::input(format!(
                    "{w:?} is not a service; name some of: submission, signer, relay, receiver, lists"
                ))
            })?;
            if !configured.contains(&name) {
                return Err(Failure::input(format!(
                    "{}: there is no [{name}] section to run",
                    config.path.display()
                )));
            }
            Ok(name)
        })
        .collect()
}

/// Keeps the heap small under load: large blocks (argon2's 19 MiB per
/// password check) always come from `mmap` and go back to the kernel when
/// freed (glibc would otherwise raise its threshold after the first one and
/// keep them), and few arenas.
fn tune_allocator() {
    // SAFETY: mallopt only sets glibc allocator parameters; called before
    // any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Builds the runtime every server verb runs on: two workers, and a small
/// pool for blocking work (password checks, fsyncs).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("starting the runtime: {e}")))
}

pub(crate) fn run(args: Args) -> Outcome {
    let config = load(&args.config)?;
    let names = services(&config, &args.services)?;
    init_logging(config.log.json);
    // Before the runtime starts its threads: they inherit the sandbox.
    crate::sandbox::enter(&config, &names).map_err(Failure::Input)?;
    runtime()?
        .block_on(crate::service::run(Arc::new(config), &names))
        .map_err(Failure::Input)
}
