//! SMTP listeners that can stop gracefully: a listen backlog sized for
//! bursts, at most `max_sessions` sessions at once (more wait in the
//! backlog), and a [`Listener::shutdown`] that stops accepting, then waits
//! (bounded) for the sessions in flight to finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ptt_smtp::server::ServerConfig;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::metrics;
use crate::net::smtp::{Answer, SessionHandler, serve};

/// Connections the kernel queues before we accept them (the default
/// of 128 overflows under a burst of a thousand clients).
const BACKLOG: u32 = 4096;

/// Binds `addr` with [`BACKLOG`].
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket for {addr}: {e}"))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| format!("SO_REUSEADDR on {addr}: {e}"))?;
    socket
        .bind(addr)
        .map_err(|e| format!("listening on {addr}: {e}"))?;
    socket
        .listen(BACKLOG)
        .map_err(|e| format!("listening on {addr}: {e}"))
}

/// How one listener speaks.
#[derive(Clone)]
pub(crate) struct Spec {
    /// `submission`, `signer` … (for the logs).
    pub(crate) service: &'static str,
    /// The SMTP machine's settings.
    pub(crate) config: Arc<ServerConfig>,
    /// TLS, for STARTTLS or implicit TLS.
    pub(crate) tls: Option<TlsAcceptor>,
    /// TLS from the first byte (RFC 8314).
    pub(crate) implicit: bool,
    /// Sessions at once.
    pub(crate) max_sessions: usize,
}

/// A running listener.
pub(crate) struct Listener {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    sessions: Arc<Semaphore>,
    max: u32,
    task: JoinHandle<()>,
}

impl Listener {
    /// Accepts on `listener` until shut down, one task per session with
    /// the handler `make(peer)` gives.
    pub(crate) fn spawn<H, F>(listener: TcpListener, spec: Spec, make: F) -> Listener
    where
        H: SessionHandler + 'static,
        F: Fn(SocketAddr) -> H + Send + 'static,
    {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let max = spec.max_sessions.clamp(1, Semaphore::MAX_PERMITS) as u32;
        let sessions = Arc::new(Semaphore::new(max as usize));
        let (stop, mut stopped) = watch::channel(false);
        let permits = sessions.clone();
        let task = tokio::spawn(async move {
            loop {
                let permit = tokio::select! {
                    _ = stopped.changed() => break,
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let (tcp, peer) = tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            // Out of descriptors and the like: wait, go on.
                            tracing::warn!(service = spec.service, %addr, "accept: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let mut handler = Metered {
                    inner: make(peer),
                    service: spec.service,
                };
                let (config, tls, implicit) =
                    (spec.config.clone(), spec.tls.clone(), spec.implicit);
                let service = spec.service;
                let stop = stopped.clone();
                tokio::spawn(async move {
                    ::metrics::counter!(metrics::SESSIONS, "service" => service).increment(1);
                    let open = ::metrics::gauge!(metrics::SESSIONS_OPEN, "service" => service);
                    open.increment(1.0);
                    if let Err(e) =
                        serve(tcp, config, tls, implicit, &mut handler, Some(stop)).await
                    {
                        tracing::debug!(service, %peer, "session ended: {e}");
                    }
                    open.decrement(1.0);
                    drop(permit);
                });
            }
        });
        Listener {
            addr,
            stop,
            sessions,
            max,
            task,
        }
    }

    /// One listener per address of `addrs`, each as `spec` says, logged.
    pub(crate) fn spawn_all<H, F>(
        addrs: &[SocketAddr],
        spec: &Spec,
        make: F,
    ) -> Result<Vec<Listener>, String>
    where
        H: SessionHandler + 'static,
        F: Fn(SocketAddr) -> H + Clone + Send + 'static,
    {
        addrs
            .iter()
            .map(|addr| {
                let listener = Listener::spawn(bind(*addr)?, spec.clone(), make.clone());
                tracing::info!(
                    service = spec.service,
                    addr = %listener.addr(),
                    tls = if spec.implicit { "implicit" } else { "starttls" },
                    "listening"
                );
                Ok(listener)
            })
            .collect()
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, then waits up to `grace` for the sessions in
    /// flight; gives how many were still running when it gave up.
    pub(crate) async fn shutdown(self, grace: Duration) -> usize {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        match tokio::time::timeout(grace, self.sessions.acquire_many(self.max)).await {
            Ok(_) => 0,
            Err(_) => self.max as usize - self.sessions.available_permits(),
        }
    }
}

/// A session's handler, counted: each end of data by outcome and the
/// reply's code, and the time its answer took.
struct Metered<H> {
    inner: H,
    service: &'static str,
}

impl<H: SessionHandler> SessionHandler for Metered<H> {
    async fn event(
        &mut self,
        event: ptt_smtp::server::Event,
        session: &ptt_smtp::server::Server,
    ) -> Answer {
        let started =
            matches!(event, ptt_smtp::server::Event::DataEnd { .. }).then(std::time::Instant::now);
        let answer = self.inner.event(event, session).await;
        if let Some(started) = started {
            let (outcome, reason) = match &answer {
                Answer::Accept => ("accepted", "2.0.0".to_string()),
                Answer::AcceptWith(r) => ("accepted", metrics::reason(r)),
                Answer::Refuse(r) => ("refused", metrics::reason(r)),
            };
            ::metrics::counter!(metrics::MESSAGES, "service" => self.service, "outcome" => outcome, "reason" => reason)
                .increment(1);
            ::metrics::histogram!(metrics::MESSAGE_SECONDS, "service" => self.service)
                .record(started.elapsed().as_secs_f64());
        }
        answer
    }

    fn tls_peer(&mut self, cert: Option<&[u8]>) {
        self.inner.tls_peer(cert);
    }

    fn closed(&mut self) {
        self.inner.closed();
    }
}
