//! `ptt sandbox-check --config FILE SERVICE`: applies exactly the sandbox
//! `ptt serve` gives SERVICE ([`crate::sandbox::apply`], the same
//! function), then tries what that service must never do and prints one
//! line per attempt with the kernel's answer. Exit 0 only when every
//! forbidden attempt was refused (and the service's own state stays
//! writable), 1 otherwise.

use std::path::PathBuf;

use crate::config::{SandboxMode, ServiceName};
use crate::exit::{Failure, Outcome};
use crate::sandbox::{self, Plan, probe};

/// Apply a service's sandbox, then try what it must never do.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt sandbox-check --config /etc/ptt/ptt.toml signer\n\n\
Each line: `refused  WHAT: the kernel's answer` (as it must be), or ALLOWED / FAILED."
)]
pub(crate) struct Args {
    /// The configuration file.
    #[arg(long)]
    config: PathBuf,
    /// The service whose sandbox to check: submission, signer, relay, receiver or lists.
    service: String,
}

pub(crate) fn run(args: Args) -> Outcome {
    let config = super::serve::load(&args.config)?;
    let service = ServiceName::parse(&args.service).ok_or_else(|| {
        Failure::input(format!(
            "{:?} is not a service; name one of: submission, signer, relay, receiver, lists",
            args.service
        ))
    })?;
    if !config.services().contains(&service) {
        return Err(Failure::input(format!(
            "{}: there is no [{service}] section",
            config.path.display()
        )));
    }
    if config.sandbox == SandboxMode::Off {
        println!(
            "note: the configuration says sandbox = \"off\"; checking the sandbox it would apply"
        );
    }
    // Everything the attempts aim at exists before the sandbox closes.
    probe::make_targets(&config).map_err(Failure::Input)?;
    let plan = Plan::for_services(&config, &[service]);
    sandbox::prepare(&config, &[service], &plan).map_err(Failure::Input)?;
    let targets = probe::plan_attempts(&config, service);
    let own = config.state_of(service).join("sandbox-check");
    let status = sandbox::apply(&plan).map_err(Failure::Input)?;
    println!("{service}: {status}");
    println!(
        "may bind {:?}, connect to {:?}, write {}",
        plan.bind,
        plan.connect,
        plan.write
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut all_refused = true;
    for attempt in probe::attempts(&plan, &targets) {
        all_refused &= attempt.refused();
        println!("{attempt}");
    }
    // The service's own state stays its own.
    let kept = std::fs::write(&own, b"sandbox-check\n").and_then(|()| std::fs::remove_file(&own));
    match &kept {
        Ok(()) => println!("allowed  write {} (its own state)", own.display()),
        Err(e) => println!("FAILED   write {} (its own state): {e}", own.display()),
    }
    if all_refused && kept.is_ok() {
        Ok(())
    } else {
        Err(Failure::Negative)
    }
}
