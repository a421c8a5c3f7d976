//! The verbs of `ptt`, one module each.
//!
//! To add a verb: a module with an `Args` struct (clap `Args`, with an
//! example in its `after_help`) and `fn run(args: Args) -> Outcome`, one
//! variant in [`Verb`] and one arm in [`run`].

use clap::Subcommand;

use crate::exit::Outcome;

pub(crate) mod acme;
pub(crate) mod arc;
pub(crate) mod auth;
pub(crate) mod ca;
pub(crate) mod check_config;
pub(crate) mod dkim;
pub(crate) mod dmarc;
pub(crate) mod dns;
pub(crate) mod list;
pub(crate) mod queue;
pub(crate) mod sandbox_check;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod smtp_sink;
pub(crate) mod spam;
pub(crate) mod spf;
pub(crate) mod up;
pub(crate) mod users;

/// Every verb `ptt` knows.
#[derive(Debug, Subcommand)]
pub(crate) enum Verb {
    /// Run every service on loopback with generated keys (a local demo).
    Up(up::Args),
    /// Run some or all services of a configuration file.
    Serve(serve::Args),
    /// Check a configuration file.
    CheckConfig(check_config::Args),
    /// Apply a service's sandbox, then try what it must never do.
    SandboxCheck(sandbox_check::Args),
    /// Make the private CA the services use between themselves.
    Ca(ca::Args),
    /// Add a user to the user database (a Git repository).
    Adduser(users::AddArgs),
    /// Change a user's password.
    Passwd(users::PasswdArgs),
    /// Remove a user from the user database.
    Deluser(users::DelArgs),
    /// List the users of the user database.
    Users(users::ListArgs),
    /// Make an empty mailing-list state: a FAT32 image (or a directory).
    Create(list::CreateArgs),
    /// Add a mailing list.
    Add(list::AddArgs),
    /// Add moderators to a mailing list.
    AddModerator(list::AddModeratorArgs),
    /// Remove moderators from a mailing list.
    RemModerator(list::RemModeratorArgs),
    /// Subscribe addresses to a mailing list.
    Subscribe(list::SubscribeArgs),
    /// Unsubscribe addresses from a mailing list.
    Unsubscribe(list::UnsubscribeArgs),
    /// Show mailing lists, their members, pending requests, held posts, retries and bounces.
    Show(list::ShowArgs),
    /// Validate an ARC chain, or seal a message with a new ARC set (RFC 8617).
    Arc(arc::Args),
    /// Certificates by ACME DNS-01 (RFC 8555) through the primary DNS server.
    Acme(acme::Args),
    /// Authenticate a message: SPF, DKIM and DMARC, and the Authentication-Results field.
    Auth(auth::Args),
    /// DKIM: generate a key and its TXT record, sign, verify (RFC 6376, 8463); the signer's keys.
    Dkim(dkim::Args),
    /// Publish a domain's DMARC record (RFC 7489) by DNS UPDATE with TSIG.
    Dmarc(dmarc::Args),
    /// Check the domain's DNS: MX, A/AAAA, PTR, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, TLSA.
    Dns(dns::Args),
    /// The relay's queue: list, show, retry, delete.
    Queue(queue::Args),
    /// Run an SMTP server that stores each accepted message in a Maildir.
    SmtpSink(smtp_sink::Args),
    /// Send a message from standard input to an SMTP server.
    Send(send::Args),
    /// Check a client against SPF (RFC 7208), or publish a domain's SPF record.
    Spf(spf::Args),
    /// Train, run and inspect the Bayesian spam filter.
    Spam(spam::Args),
}

/// Runs one verb.
pub(crate) fn run(verb: Verb) -> Outcome {
    match verb {
        Verb::Up(args) => up::run(args),
        Verb::Serve(args) => serve::run(args),
        Verb::CheckConfig(args) => check_config::run(args),
        Verb::SandboxCheck(args) => sandbox_check::run(args),
        Verb::Ca(args) => ca::run(args),
        Verb::Adduser(args) => users::add(args),
        Verb::Passwd(args) => users::passwd(args),
        Verb::Deluser(args) => users::del(args),
        Verb::Users(args) => users::list(args),
        Verb::Create(args) => list::create(args),
        Verb::Add(args) => list::add(args),
        Verb::AddModerator(args) => list::add_moderator(args),
        Verb::RemModerator(args) => list::rem_moderator(args),
        Verb::Subscribe(args) => list::subscribe(args),
        Verb::Unsubscribe(args) => list::unsubscribe(args),
        Verb::Show(args) => list::show(args),
        Verb::Arc(args) => arc::run(args),
        Verb::Acme(args) => acme::run(args),
        Verb::Auth(args) => auth::run(args),
        Verb::Dkim(args) => dkim::run(args),
        Verb::Dmarc(args) => dmarc::run(args),
        Verb::Dns(args) => dns::run(args),
        Verb::Queue(args) => queue::run(args),
        Verb::SmtpSink(args) => smtp_sink::run(args),
        Verb::Send(args) => send::run(args),
        Verb::Spf(args) => spf::run(args),
        Verb::Spam(args) => spam::run(args),
    }
}
