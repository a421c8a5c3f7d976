//! `ptt ca --config FILE`: makes the site's private CA (`STATE/ca/ca.pem`
//! and `ca-key.pem`, mode 0600) if there is none, and says where it is.
//! The services make it themselves at first start when they share a
//! folder; this is for sites where they do not: a systemd unit that runs
//! before them (`deploy/systemd/ptt-ca.service`), or a CA made once and
//! handed to every pod as a Kubernetes Secret.

use std::path::PathBuf;

use crate::exit::{Failure, Outcome};

/// Make the private CA the services use between themselves.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  ptt ca --config /etc/ptt/ptt.toml\n  \
kubectl -n ptt create secret generic ptt-ca --from-file=/var/lib/ptt/ca/ca.pem --from-file=/var/lib/ptt/ca/ca-key.pem")]
pub(crate) struct Args {
    /// The configuration file (its `state` and `domain`).
    #[arg(long)]
    config: PathBuf,
}

pub(crate) fn run(args: Args) -> Outcome {
    let config = super::serve::load(&args.config)?;
    let dir = config.state.join("ca");
    let existed = dir.join("ca.pem").exists();
    crate::net::pki::LocalCa::load_or_create(&dir, &config.domain).map_err(Failure::Input)?;
    println!(
        "{} the private CA of {}: {} (its key ca-key.pem, mode 0600, beside it)",
        if existed { "kept" } else { "made" },
        config.domain,
        dir.join("ca.pem").display()
    );
    Ok(())
}
