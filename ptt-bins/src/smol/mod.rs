//! The unikernel route: the receiver's job (SMTP with STARTTLS, SPF, DKIM,
//! DMARC, `Authentication-Results`, hand-off to a next hop) on smoltcp over
//! a TAP device, with no tokio and no `std::net`: one loop that reads the
//! clock once per turn, polls smoltcp, and steps every session machine and
//! the DNS client with that time. What a unikernel would replace is the
//! TAP device, the clock and `phy::wait`; the rest is the same code.
//!
//! The heap has a fixed budget ([`CountingAllocator`]): a connection that
//! would not fit gets `421` and is closed before anything is built for it.

mod budget;
mod dns;
mod next_hop;
mod session;
mod stream;

use std::net::IpAddr;
use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ptt_dmarc::psl::PublicSuffixList;
use ptt_smtp::{ClientConfig, ServerConfig, TlsMode};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::phy::{Medium, TunTapInterface, wait};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use budget::Budget;
pub use budget::{CountingAllocator, allocated, peak_allocated};
use dns::Dns;
use session::{Now, Session, Shared, Turn};

/// The receiver on smoltcp over a TAP device.
#[derive(Debug, Parser)]
#[command(name = "ptt-smol-receiver", version)]
#[command(
    about = "The ptt receiver on smoltcp over a TAP device: no tokio, no std networking, one loop",
    after_help = "Example (in a network namespace with tap0 at 192.0.2.1/24):\n  ptt-smol-receiver --tap tap0 --address 192.0.2.2/24 --resolver 192.0.2.1:53 \\\n    --next-hop 192.0.2.1:2525 --hostname mx.example.test --domain example.test \\\n    --cert cert.pem --key key.pem"
)]
pub struct Args {
    /// The TAP device (it must exist and be up).
    #[arg(long)]
    pub tap: String,
    /// This host's address on the TAP network, with its prefix length.
    #[arg(long, value_name = "IPV4/LEN")]
    pub address: String,
    /// The default gateway, when the resolver or the next hop is off the
    /// TAP network.
    #[arg(long, value_name = "IPV4")]
    pub gateway: Option<String>,
    /// The SMTP port.
    #[arg(long, default_value_t = 25)]
    pub port: u16,
    /// The DNS resolver asked for SPF, DKIM and DMARC (UDP).
    #[arg(long, value_name = "IPV4:PORT")]
    pub resolver: String,
    /// Where every message goes once it is authenticated (SMTP, clear).
    #[arg(long, value_name = "IPV4:PORT")]
    pub next_hop: String,
    /// This host's name (greeting, `Authentication-Results`, `Received`).
    #[arg(long)]
    pub hostname: String,
    /// A domain mail is taken for (repeat for more); any other recipient
    /// is refused.
    #[arg(long = "domain", required = true)]
    pub domains: Vec<String>,
    /// The TLS certificate chain (PEM) for STARTTLS.
    #[arg(long)]
    pub cert: PathBuf,
    /// Its private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// The heap budget in MiB: connections that would not fit get 421.
    #[arg(long, default_value_t = 64)]
    pub budget_mib: usize,
    /// The largest message taken, in bytes.
    #[arg(long, default_value_t = 10 << 20)]
    pub max_message_size: usize,
    /// How many sockets listen on the port at once (smoltcp has no accept
    /// queue: each takes one connection and is replaced at once).
    #[arg(long, default_value_t = 4)]
    pub listeners: usize,
}

/// Each connection's receive and send buffers.
const SOCKET_BUFFER: usize = 16 * 1024;
/// What a session is reckoned to take before its message: two connections
/// (the client's and the next hop's) with two socket buffers each, the SMTP
/// machines, and a TLS session with its records.
const PER_SESSION: usize = 4 * SOCKET_BUFFER + 96 * 1024;

fn parse_endpoint(text: &str, what: &str) -> Result<IpEndpoint, String> {
    let addr: std::net::SocketAddrV4 = text
        .parse()
        .map_err(|e| format!("--{what} {text:?}: not IPV4:PORT ({e})"))?;
    Ok(IpEndpoint::new((*addr.ip()).into(), addr.port()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // The kernel's randomness; the clock when it cannot be read.
    if crate::random::fill(&mut bytes).is_err() {
        return SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    }
    u64::from_le_bytes(bytes)
}

/// A small, fast generator for per-turn numbers (seeded from the kernel).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 32) as u32
    }
}

fn listening_socket(port: u16) -> Result<tcp::Socket<'static>, String> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
        tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
    );
    socket
        .listen(IpListenEndpoint::from(port))
        .map_err(|e| format!("listen on port {port}: {e}"))?;
    // A client that goes silent is dropped by the SMTP machine's timers;
    // one that vanishes by TCP's.
    socket.set_timeout(Some(smoltcp::time::Duration::from_secs(600)));
    tuned(&mut socket);
    Ok(socket)
}

/// SMTP is a dialogue of short lines: each is sent at once (no Nagle) and
/// acknowledged at once (no delayed ACK), or the two wait on each other
/// for tens of milliseconds per reply.
pub(crate) fn tuned(socket: &mut tcp::Socket<'_>) {
    socket.set_nagle_enabled(false);
    socket.set_ack_delay(None);
}

/// The sockets listening on the SMTP port.
struct Listeners {
    port: u16,
    handles: Vec<SocketHandle>,
}

impl Listeners {
    fn new(port: u16, count: usize, sockets: &mut SocketSet<'static>) -> Result<Listeners, String> {
        let handles = (0..count)
            .map(|_| listening_socket(port).map(|s| sockets.add(s)))
            .collect::<Result<_, _>>()?;
        Ok(Listeners { port, handles })
    }

    /// The sockets that have taken a connection, each replaced by a new
    /// listening one.
    fn take_connected(
        &mut self,
        sockets: &mut SocketSet<'static>,
    ) -> Result<Vec<SocketHandle>, String> {
        let mut taken = Vec::new();
        for slot in &mut self.handles {
            if sockets.get_mut::<tcp::Socket>(*slot).is_listening() {
                continue;
            }
            taken.push(*slot);
            *slot = sockets.add(listening_socket(self.port)?);
        }
        Ok(taken)
    }
}

/// Runs the receiver until it is killed.
pub fn run(args: Args) -> Result<(), String> {
    let cidr: IpCidr = args
        .address
        .parse()
        .map_err(|_| format!("--address {:?}: not IPV4/LEN", args.address))?;
    let resolver = parse_endpoint(&args.resolver, "resolver")?;
    let next_hop = parse_endpoint(&args.next_hop, "next-hop")?;
    let cert = std::fs::read(&args.cert).map_err(|e| format!("{}: {e}", args.cert.display()))?;
    let key = std::fs::read(&args.key).map_err(|e| format!("{}: {e}", args.key.display()))?;
    let tls = crate::net::tls::server_config_from_pem(&cert, &key)?;
    let budget = Budget {
        limit: args.budget_mib.saturating_mul(1 << 20),
        per_session: PER_SESSION,
        baseline: 0,
    };
    // A message may take a quarter of the heap at most.
    let max_message_size = args.max_message_size.min(budget.limit / 4);
    let mut shared = Shared {
        smtp: Arc::new(ServerConfig {
            hostname: args.hostname.clone(),
            banner: "ESMTP ptt receiver (smoltcp)".into(),
            starttls: true,
            max_message_size: max_message_size as u64,
            ..ServerConfig::default()
        }),
        tls,
        psl: Box::leak(Box::new(PublicSuffixList::builtin())),
        hostname: args.hostname.clone(),
        domains: args
            .domains
            .iter()
            .map(|d| d.trim_end_matches('.').to_string())
            .collect(),
        next_hop,
        client: ClientConfig {
            hello_name: args.hostname.clone(),
            tls: TlsMode::None,
            timeout: Duration::from_secs(120),
            ..ClientConfig::default()
        },
        dkim_keys: Arc::new(ptt_dkim::SharedKeyCache::new(1024)),
        budget,
        socket_buffer: SOCKET_BUFFER,
    };

    let mut device = TunTapInterface::new(&args.tap, Medium::Ethernet)
        .map_err(|e| format!("TAP device {}: {e}", args.tap))?;
    let fd = device.as_raw_fd();
    let seed = random_u64();
    let mut rng = XorShift(seed | 1);
    let mac = seed.to_le_bytes();
    // Locally administered, unicast.
    let hardware = EthernetAddress([0x02, mac[1], mac[2], mac[3], mac[4], mac[5]]);
    let mut config = Config::new(hardware.into());
    config.random_seed = seed;
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(cidr);
    });
    if let Some(gateway) = &args.gateway {
        let gateway: std::net::Ipv4Addr = gateway
            .parse()
            .map_err(|_| format!("--gateway {gateway:?}: not an IPv4 address"))?;
        iface
            .routes_mut()
            .add_default_ipv4_route(gateway)
            .map_err(|e| format!("--gateway: {e}"))?;
    }

    let mut sockets = SocketSet::new(Vec::new());
    let mut udp_socket = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]),
    );
    udp_socket
        .bind(49152 + (rng.next() % 16384) as u16)
        .map_err(|e| format!("DNS socket: {e}"))?;
    let udp_handle = sockets.add(udp_socket);
    let mut dns = Dns::new(resolver, rng.next() as u16);
    let mut listeners = Listeners::new(args.port, args.listeners.max(1), &mut sockets)?;
    let mut sessions: Vec<Session> = Vec::new();
    // What the process holds with no session: each session's reservation
    // counts from here.
    shared.budget.baseline = allocated();
    let mut spent: Vec<(SocketHandle, Instant)> = Vec::new();
    let mut refusals: Vec<(SocketHandle, Instant)> = Vec::new();
    let mut next_id = 0u64;
    let mut next_port = rng.next() as u16;
    let busy = format!("421 4.3.2 {} too busy; try again later\r\n", args.hostname);
    tracing::info!(
        service = "smol-receiver",
        tap = args.tap,
        address = %cidr,
        port = args.port,
        budget_mib = args.budget_mib,
        "listening"
    );

    loop {
        let instant = Instant::now();
        let now = Now {
            time: Duration::from_micros(instant.total_micros().max(0) as u64),
            unix: unix_now(),
            random: rng.next(),
        };
        // Packets one at a time, and after each a fresh socket listens in
        // the place of one that took a connection: smoltcp has no accept
        // queue, so this is what keeps a burst of SYNs from being refused.
        let mut arrived = Vec::new();
        loop {
            match iface.poll_ingress_single(instant, &mut device, &mut sockets) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    arrived.extend(listeners.take_connected(&mut sockets)?);
                }
            }
        }
        for handle in arrived {
            let peer: IpAddr = match sockets.get_mut::<tcp::Socket>(handle).remote_endpoint() {
                Some(ep) => ep.addr.into(),
                None => {
                    spent.push((handle, instant));
                    continue;
                }
            };
            if !shared
                .budget
                .admits(allocated(), sessions.len(), max_message_size)
            {
                // Answered once the handshake is done (a socket cannot
                // send before); nothing else is built for it.
                refusals.push((handle, instant));
                tracing::warn!(service = "smol-receiver", %peer, allocated = allocated(), "over the heap budget: 421");
                continue;
            }
            next_id += 1;
            sessions.push(Session::new(next_id, handle, peer, &shared, now));
        }

        // The connections refused for the budget: 421, then closed.
        refusals.retain(|(handle, since)| {
            let socket = sockets.get_mut::<tcp::Socket>(*handle);
            if socket.can_send() {
                let _ = socket.send_slice(busy.as_bytes());
                socket.close();
            } else if socket.is_active()
                && instant - *since < smoltcp::time::Duration::from_secs(30)
            {
                return true;
            }
            spent.push((*handle, instant));
            false
        });

        let mut turn = Turn {
            sockets: &mut sockets,
            iface: &mut iface,
            dns: &mut dns,
            shared: &shared,
            now,
            next_port: &mut next_port,
        };
        for session in sessions.iter_mut() {
            session.step(&mut turn);
        }
        // DNS: questions out, answers to their askers (twice: a session
        // given an answer may ask its next question at once).
        for _ in 0..2 {
            let udp = turn.sockets.get_mut::<udp::Socket>(udp_handle);
            let answers = turn.dns.poll(udp, instant);
            for (asker, query, answer) in answers {
                if let Some(s) = sessions.iter_mut().find(|s| s.id == asker) {
                    s.answer(&query, answer, &mut turn);
                }
            }
        }
        for session in sessions.iter_mut() {
            spent.extend(session.spent.drain(..).map(|h| (h, instant)));
        }
        sessions.retain(|s| !s.done);
        // Closed sockets go; one that lingers past a minute is aborted.
        spent.retain(|(handle, since)| {
            let socket = sockets.get_mut::<tcp::Socket>(*handle);
            let gone = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
            if gone || instant - *since > smoltcp::time::Duration::from_secs(60) {
                socket.abort();
                sockets.remove(*handle);
                false
            } else {
                true
            }
        });
        iface.poll_egress(instant, &mut device, &mut sockets);

        let mut delay = iface.poll_delay(instant, &sockets);
        let mut sooner = |at: Instant| {
            let d = if at > instant {
                at - instant
            } else {
                smoltcp::time::Duration::ZERO
            };
            delay = Some(delay.map_or(d, |x| x.min(d)));
        };
        if let Some(at) = dns.poll_at() {
            sooner(at);
        }
        for session in &sessions {
            if let Some(at) = session.poll_at() {
                sooner(Instant::from_micros(at.as_micros() as i64));
            }
        }
        if !spent.is_empty() || !refusals.is_empty() {
            sooner(instant + smoltcp::time::Duration::from_secs(1));
        }
        wait(fd, delay).map_err(|e| format!("waiting on {}: {e}", args.tap))?;
    }
}
