//! `ptt up`: the services of one mail domain on loopback, so that a
//! newcomer sees the whole path of a message with one command.
//!
//! It writes a complete site under `--state` (default `ptt-local/`): a
//! configuration file `ptt.toml` spelling out every key, a user repository
//! `users.git` with one user (a fresh password each run, printed), and a
//! records file standing in for the domain's DNS (its DKIM keys, SPF and
//! DMARC), then serves that configuration exactly as
//! `ptt serve --config ptt-local/ptt.toml` would: submission, the signer,
//! the relay, the receiver and the list server (with a list `team@DOMAIN`
//! the user moderates, its state in `lists/`), each behind its own
//! listener, talking to each other over TLS with certificates from a
//! private CA made under the state folder.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{Config, ServiceName};
use crate::dns::LocalRecords;
use crate::exit::{Failure, Outcome};
use crate::userdb::repo::Source;
use crate::userdb::{DOMAINS_FILE, Domains, USERS_DIR, User, password};

/// Run every service of a domain on loopback with generated keys.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt up --domain example.test --state ./ptt-local\n\n\
Then send as the printed user, e.g. with swaks:\n  \
swaks --server 127.0.0.1:5870 -tls --auth PLAIN --auth-user demo@example.test \\\n      \
--auth-password PASSWORD --from demo@example.test --to demo@example.test\n\n\
Go on later with the configuration it wrote:\n  ptt serve --config ptt-local/ptt.toml"
)]
pub(crate) struct Args {
    /// The mail domain the local service is for.
    #[arg(long, default_value = "example.test")]
    domain: String,
    /// Where the configuration, users, keys, certificates and mail are kept.
    #[arg(long, default_value = "ptt-local")]
    state: PathBuf,
    /// The address every listener binds.
    #[arg(long, default_value = "127.0.0.1")]
    listen: IpAddr,
    /// Submission with STARTTLS (587 in production).
    #[arg(long, default_value_t = 5870)]
    submission_port: u16,
    /// Submission with implicit TLS (465 in production).
    #[arg(long, default_value_t = 4650)]
    submissions_port: u16,
    /// The receiver (25 in production).
    #[arg(long, default_value_t = 2525)]
    receiver_port: u16,
    /// The signer (internal).
    #[arg(long, default_value_t = 10465)]
    signer_port: u16,
    /// The relay (internal).
    #[arg(long, default_value_t = 10025)]
    relay_port: u16,
    /// The list server (internal).
    #[arg(long, default_value_t = 10026)]
    lists_port: u16,
    /// The list server's HTTPS one-click unsubscription (443 in production).
    #[arg(long, default_value_t = 8443)]
    lists_https_port: u16,
    /// The local part of the generated user.
    #[arg(long, default_value = "demo")]
    user: String,
}

fn io_failure(what: &str, path: &Path) -> impl Fn(std::io::Error) -> Failure {
    let at = format!("{what} {}", path.display());
    move |e| Failure::input(format!("{at}: {e}"))
}

/// The configuration `ptt up` writes: every key, defaults included.
fn site_config(args: &Args, domain: &str, state: &Path) -> String {
    let at = |port: u16| std::net::SocketAddr::new(args.listen, port).to_string();
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# Written by `ptt up`: a complete site on loopback. Every key is spelled out\n\
# with its value, defaults included; deploy/ptt.example.toml documents each.\n\
# Run it again with: ptt serve --config {config}\n\
domain = \"{domain}\"\n\
hostname = \"mx.{domain}\"\n\
state = \"{state}\"\n\
\n\
[dns]\n\
# The system's resolver is used when `resolver` is left out.\n\
# Records answered locally first: this demo's DNS (DKIM keys, SPF, DMARC).\n\
records = \"{state}/dns-records.toml\"\n\
\n\
[users]\n\
repo = \"{state}/users.git\"\n\
poll_seconds = 2\n\
\n\
[log]\n\
format = \"text\"\n\
\n\
[submission]\n\
listen = [\"{sub}\"]\n\
listen_tls = [\"{subs}\"]\n\
max_message_size = 36700160\n\
auth_concurrency = 1\n\
max_failures_per_ip = 10\n\
max_failures_per_user = 10\n\
block_seconds = 900\n\
allow = []\n\
max_sessions = 4096\n\
\n\
[signer]\n\
listen = [\"{signer}\"]\n\
address = \"{signer}\"\n\
selector = \"ptt\"\n\
record_ttl = 300\n\
retention_seconds = 604800\n\
\n\
[relay]\n\
listen = [\"{relay}\"]\n\
address = \"{relay}\"\n\
port = 25\n\
# A local demo never reaches the Internet: mail for other domains stays in\n\
# the queue (`ptt queue list`). Remove this line to deliver it.\n\
hold = true\n\
\n\
[receiver]\n\
listen = [\"{receiver}\"]\n\
address = \"{receiver}\"\n\
max_message_size = 36700160\n\
\n\
[lists]\n\
listen = [\"{lists}\"]\n\
address = \"{lists}\"\n\
state = \"{state}/lists\"\n\
domain = \"{domain}\"\n\
https_listen = [\"{lists_https}\"]",
        config = state.join("ptt.toml").display(),
        state = state.display(),
        sub = at(args.submission_port),
        subs = at(args.submissions_port),
        signer = at(args.signer_port),
        relay = at(args.relay_port),
        receiver = at(args.receiver_port),
        lists = at(args.lists_port),
        lists_https = at(args.lists_https_port),
    );
    c
}

/// The list state under `lists/` (made if new) with the list `team`,
/// which `moderator` moderates and is subscribed to; its address.
fn demo_list(config: &Config, moderator: &str) -> Result<String, Failure> {
    use ptt_list::store::{self, DirFiles, Store};
    let Some(lists) = &config.lists else {
        return Ok(String::new());
    };
    let path = &lists.state;
    if !path.exists() {
        std::fs::create_dir_all(path).map_err(io_failure("creating", path))?;
        DirFiles::create(path).map_err(Failure::input)?;
    }
    let name = "team";
    let _lock = store::lock(path).map_err(Failure::input)?;
    let mut files = Store::new(store::open(path).map_err(Failure::input)?);
    let mut state = files.load().map_err(Failure::input)?;
    if !state.lists.contains_key(name) {
        let m = ptt_list::Address::parse(moderator).map_err(Failure::input)?;
        let secret = crate::random::bytes32().map_err(Failure::Input)?;
        let mut changes = state
            .create_list(
                name,
                &lists.domain,
                &secret,
                std::slice::from_ref(&m),
                ptt_list::Policy::Subscribers,
            )
            .map_err(Failure::input)?;
        let (_, subscribed) = state
            .set_subscribed(name, None, &[m], true)
            .map_err(Failure::input)?;
        changes.merge(subscribed);
        files.commit(&state, &changes).map_err(Failure::input)?;
    }
    Ok(format!("{name}@{}", lists.domain))
}

/// Makes the demo user (or gives it a new password): one commit.
fn demo_user(config: &Config, address: &str, domain: &str) -> Result<String, Failure> {
    let repo = &config
        .users
        .as_ref()
        .ok_or_else(|| Failure::input("no [users]"))?
        .repo;
    let source = Source::new(repo, &config.state.join("users-mirror"));
    let mut bytes = [0u8; 12];
    crate::random::fill(&mut bytes)
        .map_err(|e| Failure::input(format!("reading /dev/urandom: {e}")))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let user = User {
        password: password::hash(&secret).map_err(Failure::input)?,
        ..User::default()
    };
    let domains = toml::to_string(&Domains {
        domains: vec![domain.to_string()],
    })
    .unwrap_or_default();
    let files = vec![
        (
            format!("{USERS_DIR}/{address}.toml"),
            Some(user.to_toml().into_bytes()),
        ),
        (DOMAINS_FILE.to_string(), Some(domains.into_bytes())),
    ];
    source
        .change(
            &format!("ptt up: {address} with a new password"),
            &format!("ptt@{domain}"),
            |_| Ok(files.clone()),
        )
        .map_err(Failure::input)?;
    Ok(secret)
}

pub(crate) fn run(args: Args) -> Outcome {
    let domain = args.domain.trim_end_matches('.').to_ascii_lowercase();
    if ptt_smtp::Domain::parse(&domain, false).is_err() || !domain.contains('.') {
        return Err(Failure::input(format!(
            "--domain {domain:?}: not a domain name"
        )));
    }
    std::fs::create_dir_all(&args.state).map_err(io_failure("creating", &args.state))?;
    let state = std::fs::canonicalize(&args.state).map_err(io_failure("reading", &args.state))?;
    let config_path = state.join("ptt.toml");

    // The DNS stand-in must exist before the configuration is checked.
    let records_path = state.join("dns-records.toml");
    if !records_path.exists() {
        std::fs::write(&records_path, "").map_err(io_failure("writing", &records_path))?;
    }
    std::fs::write(&config_path, site_config(&args, &domain, &state))
        .map_err(io_failure("writing", &config_path))?;
    let config = super::serve::load(&config_path)?;

    let address = format!("{}@{domain}", args.user.to_ascii_lowercase());
    crate::userdb::check_address(&address).map_err(Failure::input)?;
    let secret = demo_user(&config, &address, &domain)?;
    let list = demo_list(&config, &address)?;

    // The signer's keys (made now if new) and the records the domain
    // would publish.
    let keys = crate::service::signer::active_keys(&config).map_err(Failure::Input)?;
    let mut records = LocalRecords {
        zones: vec![domain.clone()],
        ..LocalRecords::default()
    };
    for key in &keys {
        records.txt.insert(
            format!("{}._domainkey.{domain}", key.selector),
            vec![key.record()],
        );
    }
    records.txt.insert(
        domain.clone(),
        vec!["v=spf1 ip4:127.0.0.0/8 ip6:::1 -all".into()],
    );
    records.txt.insert(
        format!("_dmarc.{domain}"),
        vec![format!(
            "v=DMARC1; p=reject; rua=mailto:postmaster@{domain}"
        )],
    );
    let text = toml::to_string(&records).map_err(Failure::input)?;
    std::fs::write(&records_path, text).map_err(io_failure("writing", &records_path))?;

    super::serve::init_logging(false);
    // The same sandbox as `ptt serve`: everything is written by now.
    crate::sandbox::enter(&config, &config.services()).map_err(Failure::Input)?;
    let config = Arc::new(config);
    let runtime = super::serve::runtime()?;
    runtime.block_on(async move {
        let names = config.services();
        let site = crate::service::start(&config, &names)
            .await
            .map_err(Failure::Input)?;
        let addr_of = |name: ServiceName| {
            site.running
                .iter()
                .filter(|r| r.name == name)
                .flat_map(|r| r.addrs())
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let submission = config.submission.as_ref();
        println!("ptt up: {domain} on {}", args.listen);
        println!(
            "  receiver     {}  (STARTTLS offered; mail for @{domain} only)",
            addr_of(ServiceName::Receiver)
        );
        let port_addr = |list: Option<&Vec<std::net::SocketAddr>>| {
            list.and_then(|l| l.first())
                .map_or(String::new(), |a| a.to_string())
        };
        println!(
            "  submission   {}  (STARTTLS, then AUTH)",
            port_addr(submission.map(|s| &s.listen))
        );
        println!(
            "  submissions  {}  (implicit TLS, then AUTH)",
            port_addr(submission.map(|s| &s.listen_tls))
        );
        println!(
            "  signer       {}  (internal: client certificates only)",
            addr_of(ServiceName::Signer)
        );
        println!(
            "  relay        {}  (internal: the signer only)",
            addr_of(ServiceName::Relay)
        );
        println!(
            "  lists        {}  (internal: the receiver only; one-click HTTPS on {})",
            addr_of(ServiceName::Lists),
            config
                .lists
                .as_ref()
                .map_or(String::new(), |l| port_addr(Some(&l.https_listen)))
        );
        println!("  user         {address}  password {secret}");
        println!(
            "  list         {list}  ({address} moderates it and is subscribed; `ptt show {}`)",
            config
                .lists
                .as_ref()
                .map_or(String::new(), |l| l.state.display().to_string())
        );
        println!(
            "  CA           {}  (trust it to check the servers' certificate)",
            state.join("ca/ca.pem").display()
        );
        println!(
            "  mail         {}/ADDRESS/new",
            config
                .state_of(ServiceName::Receiver)
                .join("mail")
                .display()
        );
        println!(
            "  queue        {}  (mail for other domains is held: `ptt queue list --config {}`)",
            crate::service::relay::queue_path(&config).display(),
            config_path.display()
        );
        println!("  DNS records the domain publishes:");
        for (name, texts) in &records.txt {
            for text in texts {
                println!("    {name}. TXT \"{text}\"");
            }
        }
        println!("  DNS check of the local zone (what a real domain must publish):");
        if let Ok(resolver) = crate::dns::Resolver::for_config(&config) {
            let findings = crate::dns::check::run(&config, &resolver).await;
            let mut table = Vec::new();
            let _ = super::dns::print_table(&findings, &mut table);
            for line in String::from_utf8_lossy(&table).lines() {
                println!("    {line}");
            }
        }
        println!("  config       {}", config_path.display());
        println!(
            "Go on later with: ptt serve --config {}",
            config_path.display()
        );
        println!("Stop with Ctrl-C.");
        let _ = std::io::Write::flush(&mut std::io::stdout());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| Failure::input(format!("SIGTERM: {e}")))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        crate::service::stop(site.running).await;
        println!("ptt up: stopped");
        Ok(())
    })
}
