//! The services of a ptt site, each in its own module: a config section, a
//! session handler and a `start` that binds its listeners and spawns its
//! tasks. [`run`] starts the services asked for in one process, reloads
//! the users on SIGHUP, and on SIGTERM or SIGINT stops them in pipeline
//! order ([`STOP_ORDER`]), each after its sessions in flight have finished, so that nothing that got a `250`
//! is lost and a message in flight always finds its next hop listening.
//!
//! Services only ever talk to each other over SMTP with TLS and client
//! certificates from the private CA, so running each in its own process
//! (`ptt serve --config F signer`) works the same as all in one.

pub(crate) mod forwarding;
pub(crate) mod hop;
pub(crate) mod listener;
pub(crate) mod lists;
pub(crate) mod metrics;
pub(crate) mod receiver;
pub(crate) mod relay;
pub(crate) mod signer;
pub(crate) mod submission;
pub(crate) mod trace;
pub(crate) mod transaction;
pub(crate) mod users;

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use self::listener::Listener;
use self::users::Users;
use crate::config::{Config, ServiceName};
use crate::net::tls::Identity;

/// How long a stopping service waits for its sessions in flight.
pub(crate) const GRACE: Duration = Duration::from_secs(30);

/// A started service.
pub(crate) struct Running {
    /// Which.
    pub(crate) name: ServiceName,
    /// Its listeners.
    pub(crate) listeners: Vec<Listener>,
    /// Its background tasks (retries, watchers), stopped last.
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// The addresses it listens on.
    pub(crate) fn addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners.iter().map(Listener::addr).collect()
    }

    /// Stops accepting, waits for the sessions in flight, stops the tasks.
    pub(crate) async fn shutdown(self) {
        let listened = !self.listeners.is_empty();
        // All listeners of the service at once: the grace is the service's.
        let left: usize =
            futures_util::future::join_all(self.listeners.into_iter().map(|l| l.shutdown(GRACE)))
                .await
                .into_iter()
                .sum();
        for task in self.tasks {
            task.abort();
        }
        if left > 0 {
            tracing::warn!(service = %self.name, sessions = left, "stopped with sessions still open");
        } else if listened {
            tracing::info!(service = %self.name, "stopped");
        }
    }
}

/// The acceptor of a listener that faces users or the Internet: `[tls]`'s
/// static certificate; or one obtained by ACME, kept current by the task
/// returned (presenting the service's private-CA certificate until the
/// first one arrives); or the service's own from the private CA.
pub(crate) fn public_tls(
    config: &Config,
    identity: &Identity,
    service: ServiceName,
) -> Result<(TlsAcceptor, Option<JoinHandle<()>>), String> {
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        return Ok((crate::net::tls::acceptor(cert, key)?, None));
    }
    let Some(acme) = crate::net::acme::Acme::new(config, service)? else {
        return Ok((identity.public_acceptor()?, None));
    };
    // The stored certificate, or (none yet, or a pair that does not
    // match) the private CA's until the ACME task gets one.
    let live = match acme
        .stored()
        .map(|(cert, key)| crate::net::acme::LiveCert::new(&cert, &key))
    {
        Some(Ok(live)) => live,
        Some(Err(e)) => {
            tracing::warn!(%service, "the stored ACME certificate is unusable ({e}); ordering a new one");
            crate::net::acme::LiveCert::new(&identity.cert_pem, &identity.key_pem)?
        }
        None => crate::net::acme::LiveCert::new(&identity.cert_pem, &identity.key_pem)?,
    };
    let live = Arc::new(live);
    let acceptor = live.acceptor()?;
    Ok((
        acceptor,
        Some(tokio::spawn(crate::net::acme::manage(acme, live))),
    ))
}

/// The size limit of the internal hops (signer, relay): the largest
/// message a public listener takes, plus room for the fields each hop adds
/// (`Received`, two `DKIM-Signature`s, an ARC set).
pub(crate) fn internal_size_limit(config: &Config) -> u64 {
    const ROOM: u64 = 64 * 1024;
    let public = [
        config.submission.as_ref().map(|s| s.max_message_size),
        config.receiver.as_ref().map(|r| r.max_message_size),
    ];
    public.into_iter().flatten().max().unwrap_or(36_700_160) + ROOM
}

/// How an internal hop (signer, relay) listens: implicit TLS with
/// `acceptor` (which checks the client's certificate), the internal size
/// limit, up to 4096 sessions.
pub(crate) fn internal_spec(
    config: &Config,
    service: ServiceName,
    acceptor: TlsAcceptor,
) -> listener::Spec {
    listener::Spec {
        service: service.as_str(),
        config: Arc::new(ptt_smtp::ServerConfig {
            hostname: config.hostname.clone(),
            banner: format!("ESMTP ptt {service}"),
            max_message_size: internal_size_limit(config),
            ..ptt_smtp::ServerConfig::default()
        }),
        tls: Some(acceptor),
        implicit: true,
        max_sessions: 4096,
    }
}

/// Services started by [`start`], and the user database they share.
pub(crate) struct Site {
    /// Each service, in pipeline order.
    pub(crate) running: Vec<Running>,
    /// The users, when a started service reads them.
    pub(crate) users: Option<Users>,
}

/// Starts `names` (in pipeline order whatever the order given).
pub(crate) async fn start(config: &Arc<Config>, names: &[ServiceName]) -> Result<Site, String> {
    metrics::install(config, names)?;
    let mut users: Option<Users> = None;
    let mut running = Vec::new();
    for name in ServiceName::ALL.into_iter().filter(|n| names.contains(n)) {
        let needs_users = matches!(name, ServiceName::Submission | ServiceName::Receiver);
        if needs_users && users.is_none() {
            let loaded = Users::load(config, name.as_str()).await?;
            if let Some(u) = &config.users {
                running.push(Running {
                    name,
                    listeners: Vec::new(),
                    tasks: vec![loaded.watch(u.poll)],
                });
            }
            users = Some(loaded);
        }
        let started = match name {
            ServiceName::Submission => {
                submission::start(config, users.clone().ok_or("no users")?).await
            }
            ServiceName::Receiver => {
                receiver::start(config, users.clone().ok_or("no users")?).await
            }
            ServiceName::Signer => signer::start(config).await,
            ServiceName::Relay => relay::start(config).await,
            ServiceName::Lists => lists::start(config).await,
        };
        match started {
            Ok(r) => running.push(r),
            Err(e) => {
                stop(running).await;
                return Err(format!("{name}: {e}"));
            }
        }
    }
    Ok(Site { running, users })
}

/// Runs `names` until SIGTERM or SIGINT; SIGHUP reloads the users.
pub(crate) async fn run(config: Arc<Config>, names: &[ServiceName]) -> Result<(), String> {
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP: {e}"))?;
    let site = start(&config, names).await?;
    tracing::info!(
        services = names
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(","),
        "ready"
    );
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Some(users) = &site.users {
                    tracing::info!("SIGHUP: reading the user database again");
                    if let Err(e) = users.reload().await {
                        tracing::warn!("reading the user repository: {e}");
                    }
                }
            }
        }
    }
    tracing::info!("stopping");
    stop(site.running).await;
    Ok(())
}

/// The order services stop in: each after those that hand it mail
/// (submission and lists → signer → relay → receiver, which takes the
/// relay's local deliveries), so that a message in flight always finds its
/// next hop listening.
pub(crate) const STOP_ORDER: [ServiceName; 5] = [
    ServiceName::Submission,
    ServiceName::Lists,
    ServiceName::Signer,
    ServiceName::Relay,
    ServiceName::Receiver,
];

/// Stops services in [`STOP_ORDER`].
pub(crate) async fn stop(mut running: Vec<Running>) {
    running.sort_by_key(|r| STOP_ORDER.iter().position(|n| *n == r.name));
    for r in running {
        r.shutdown().await;
    }
}
