//! The list server: ptt-list's engine over SMTP, behind the receiver and
//! in front of the signer.
//!
//! The receiver asks it, before its own RCPT reply, whether an address
//! of `[lists] domain` is a list address ([`super::hop::Hop::verify`]), and
//! hands it the mail for those addresses with its `Authentication-Results`
//! on top ([`session`]). The engine decides; the server commits what it
//! changed to `[lists] state` under the state's lock ([`state`]), then
//! sends what it decided (posts to every subscriber, confirmations,
//! notices to moderators) through the signer, which ARC-seals and
//! DKIM-signs each copy and hands it to the relay ([`outbound`]). A copy
//! the signer cannot take now waits in the list's retry queue, tried again
//! by [`retries`]; bounces come back to the VERP return addresses and are
//! scored by the engine. RFC 8058 one-click unsubscription is served over
//! HTTPS on `[lists] https_listen` ([`one_click`]).

pub(crate) mod one_click;
pub(crate) mod outbound;
pub(crate) mod retries;
pub(crate) mod session;
pub(crate) mod state;

use std::sync::Arc;

use ptt_list::Entropy;

use self::state::ListState;
use super::Running;
use super::hop::Hop;
use super::listener::Listener;
use crate::config::{Config, ServiceName};

/// What every session and task of the list server shares.
pub(crate) struct Shared {
    /// Our host name (the authserv-id of the receiver's results, too).
    pub(crate) hostname: String,
    /// The domain lists live on.
    pub(crate) domain: String,
    /// The list state.
    pub(crate) state: ListState,
    /// Where everything the lists send goes.
    pub(crate) signer: Hop,
}

/// Fresh randomness for one engine call.
pub(crate) fn entropy() -> Entropy {
    let mut bytes = [0u8; 20];
    if crate::random::fill(&mut bytes).is_err() {
        // The kernel's generator does not fail once the system is up;
        // should it, tokens still differ per call.
        let t = super::trace::unix_now().to_le_bytes();
        bytes[..8].copy_from_slice(&t);
    }
    Entropy(bytes)
}

/// The URL put in `List-Unsubscribe`: `[lists] one_click_url`, or the
/// first `https_listen` under our host name.
pub(crate) fn one_click_url(config: &Config) -> Option<String> {
    let lists = config.lists.as_ref()?;
    if let Some(url) = &lists.one_click_url {
        return Some(url.clone());
    }
    let first = lists.https_listen.first()?;
    let port = match first.port() {
        443 => String::new(),
        p => format!(":{p}"),
    };
    Some(format!(
        "https://{}{port}/lists/unsubscribe",
        config.hostname
    ))
}

/// Starts `[lists]`.
pub(crate) async fn start(config: &Config) -> Result<Running, String> {
    let (Some(section), Some(signer)) = (&config.lists, &config.signer) else {
        return Err("[lists] needs [lists] and [signer] sections".into());
    };
    let identity = crate::net::pki::identity(config, ServiceName::Lists)?;
    let acceptor = identity.internal_acceptor(&[ServiceName::Receiver.internal_name()])?;
    let state = ListState::open(&section.state, &section.domain, one_click_url(config))?;
    let shared = Arc::new(Shared {
        hostname: config.hostname.clone(),
        domain: section.domain.clone(),
        state,
        signer: Hop::internal(
            &identity,
            signer.address,
            ServiceName::Signer,
            &config.hostname,
        )?,
    });
    let mut tasks = vec![tokio::spawn(retries::run(shared.clone()))];
    if !section.https_listen.is_empty() {
        let (tls, acme) = super::public_tls(config, &identity, ServiceName::Lists)?;
        tasks.extend(acme);
        for addr in &section.https_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("[lists] https_listen {addr}: {e}"))?;
            tracing::info!(service = "lists", %addr, "one-click unsubscription over HTTPS");
            tasks.push(tokio::spawn(one_click::serve(
                listener,
                tls.clone(),
                shared.clone(),
            )));
        }
    }
    let spec = super::internal_spec(config, ServiceName::Lists, acceptor);
    let listeners = Listener::spawn_all(&section.listen, &spec, move |_| {
        session::Session::new(shared.clone())
    })?;
    Ok(Running {
        name: ServiceName::Lists,
        listeners,
        tasks,
    })
}
