//! `ptt adduser`, `ptt passwd`, `ptt deluser`, `ptt users`: the user
//! database, one commit per change (see [`crate::userdb`]).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use crate::exit::{Failure, Outcome};
use crate::userdb::repo::{ChangeError, Source};
use crate::userdb::{
    DOMAINS_FILE, Domains, USERS_DIR, User, UserDb, check_address, domain_of, normalize, password,
};

/// Which repository, from `--users` or from a configuration's `[users]`.
#[derive(Debug, clap::Args)]
pub(crate) struct RepoArgs {
    /// The user repository: a path (bare or not; made on first use) or an
    /// SSH URL (`git@host:users.git`, `ssh://git@host/srv/users.git`).
    #[arg(long, required_unless_present = "config")]
    users: Option<String>,
    /// Take the repository (and the domain) from this configuration file.
    #[arg(long, conflicts_with = "users")]
    config: Option<PathBuf>,
}

impl RepoArgs {
    /// The repository, and the domain the configuration names.
    fn source(&self) -> Result<(Source, Option<String>, tempfile::TempDir), Failure> {
        let (spec, domain) = match (&self.users, &self.config) {
            (Some(u), _) => (u.clone(), None),
            (None, Some(path)) => {
                let config = super::serve::load(path)?;
                let users = config.users.as_ref().ok_or_else(|| {
                    Failure::input(format!("{}: there is no [users] section", path.display()))
                })?;
                (users.repo.clone(), Some(config.domain.clone()))
            }
            (None, None) => return Err(Failure::input("give --users REPO or --config FILE")),
        };
        // A remote repository is changed in a scratch mirror (private to
        // this run, removed after it), then pushed.
        let scratch = tempfile::Builder::new()
            .prefix("ptt-users-")
            .tempdir()
            .map_err(|e| Failure::input(format!("making a scratch folder: {e}")))?;
        let source = Source::new(&spec, &scratch.path().join("users.git"));
        Ok((source, domain, scratch))
    }
}

/// Add a user to the user database.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    ptt adduser --users /var/lib/ptt/users.git --domain example.org alice@example.org\n  \
    printf 'secret\\n' | ptt adduser --users users.git --password-stdin \\\n      \
    --alias al@example.org --forward-to alice@elsewhere.example bob@example.org\n\n\
A new repository takes its first user's domain (and any --domain) as its domains, kept in \
domains.toml; addresses outside them are refused. The password is asked twice on a terminal.")]
pub(crate) struct AddArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The user's address.
    address: String,
    /// A domain users may be in (recorded in the repository).
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Another address that delivers to this user.
    #[arg(long = "alias")]
    aliases: Vec<String>,
    /// A real address to forward this user's mail to.
    #[arg(long = "forward-to")]
    forward_to: Vec<String>,
    /// Another address this user may send as.
    #[arg(long = "may-send-as")]
    may_send_as: Vec<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// Change a user's password.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  printf 'new secret\\n' | ptt passwd --users users.git --password-stdin alice@example.org\n\n\
Running servers pick the change up at their next poll of the repository, or on SIGHUP."
)]
pub(crate) struct PasswdArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The user's address.
    address: String,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// Remove a user from the user database.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  ptt deluser --users users.git alice@example.org")]
pub(crate) struct DelArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The user's address.
    address: String,
}

/// List the users of the user database.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  ptt users --users users.git")]
pub(crate) struct ListArgs {
    #[command(flatten)]
    repo: RepoArgs,
}

fn user_path(address: &str) -> String {
    format!("{USERS_DIR}/{address}.toml")
}

/// Reads a password: one line of standard input, or twice from the
/// terminal without echo.
fn read_password(from_stdin: bool) -> Result<String, Failure> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::input(format!("reading standard input: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if std::io::stdin().is_terminal() {
        let first = prompt_hidden("Password: ")?;
        let second = prompt_hidden("Again: ")?;
        if first != second {
            return Err(Failure::input("the two passwords differ"));
        }
        first
    } else {
        return Err(Failure::input(
            "standard input is not a terminal: give --password-stdin and the password on its first line",
        ));
    };
    if password.is_empty() {
        return Err(Failure::input("the password is empty"));
    }
    Ok(password)
}

/// Asks on the terminal with echo off.
fn prompt_hidden(prompt: &str) -> Result<String, Failure> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let fd = libc::STDIN_FILENO;
    // SAFETY: plain termios calls on standard input with a zeroed struct
    // the kernel fills; the old settings are restored below.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    let echo_off = unsafe { libc::tcgetattr(fd, &mut saved) } == 0 && {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) == 0 }
    };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if echo_off {
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    eprintln!();
    read.map_err(|e| Failure::input(format!("reading the terminal: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn change_failure(e: ChangeError) -> Failure {
    Failure::input(e)
}

/// The domains users may be in: the repository's, the configuration's,
/// and those given now.
fn domains_of(db: &UserDb, config_domain: &Option<String>, given: &[String]) -> Vec<String> {
    let mut all: Vec<String> = db.domains.clone();
    all.extend(config_domain.iter().map(|d| normalize(d)));
    all.extend(given.iter().map(|d| normalize(d.trim_end_matches('.'))));
    all.sort();
    all.dedup();
    all
}

pub(crate) fn add(args: AddArgs) -> Outcome {
    let (source, config_domain, _scratch) = args.repo.source()?;
    let address = normalize(&args.address);
    check_address(&address).map_err(Failure::input)?;
    for d in &args.domains {
        if ptt_smtp::Domain::parse(d, false).is_err() || !d.contains('.') {
            return Err(Failure::input(format!("--domain {d:?}: not a domain name")));
        }
    }
    for a in args
        .aliases
        .iter()
        .chain(&args.may_send_as)
        .chain(&args.forward_to)
    {
        check_address(&normalize(a)).map_err(Failure::input)?;
    }
    let password = read_password(args.password_stdin)?;
    let hash = password::hash(&password).map_err(Failure::input)?;
    let user = User {
        password: hash,
        aliases: args.aliases.iter().map(|a| normalize(a)).collect(),
        forward_to: args.forward_to.clone(),
        may_send_as: args.may_send_as.iter().map(|a| normalize(a)).collect(),
    };
    let mut message = format!("adduser {address}");
    for (what, list) in [
        ("aliases", &user.aliases),
        ("forward_to", &user.forward_to),
        ("may_send_as", &user.may_send_as),
    ] {
        if !list.is_empty() {
            message.push_str(&format!("; {what}: {}", list.join(", ")));
        }
    }
    let email = format!("ptt@{}", domain_of(&address));
    let commit = source
        .change(&message, &email, |db| {
            // The domains: the repository's, the configuration's and those
            // given now; domains.toml is written in the same commit when
            // this adds one.
            let mut domains = domains_of(db, &config_domain, &args.domains);
            if domains.is_empty() {
                // A new repository: its first user's domain is its domain
                // (more with --domain); addresses elsewhere are refused.
                domains.push(domain_of(&address));
            }
            for a in std::iter::once(&address)
                .chain(&user.aliases)
                .chain(&user.may_send_as)
            {
                if !domains.contains(&domain_of(a)) {
                    return Err(format!(
                        "{a} is outside the repository's domains ({}); add one with --domain",
                        domains.join(", ")
                    ));
                }
            }
            if db.owner(&address).is_some() {
                return Err(format!("{address} already exists (as a user or an alias)"));
            }
            for alias in &user.aliases {
                if let Some((owner, _)) = db.owner(alias) {
                    return Err(format!("alias {alias} is already {owner}'s"));
                }
            }
            let mut files = vec![(user_path(&address), Some(user.to_toml().into_bytes()))];
            if domains != db.domains {
                let text = toml::to_string(&Domains { domains }).unwrap_or_default();
                files.push((DOMAINS_FILE.to_string(), Some(text.into_bytes())));
            }
            Ok(files)
        })
        .map_err(change_failure)?;
    println!(
        "added {address} (commit {})",
        &commit[..commit.len().min(12)]
    );
    Ok(())
}

pub(crate) fn passwd(args: PasswdArgs) -> Outcome {
    let (source, _, _scratch) = args.repo.source()?;
    let address = normalize(&args.address);
    let current = source
        .open_or_create()
        .and_then(|_| source.snapshot())
        .map_err(Failure::input)?;
    if current.get(&address).is_none() {
        return Err(Failure::input(format!("{address}: no such user")));
    }
    let password = read_password(args.password_stdin)?;
    let hash = password::hash(&password).map_err(Failure::input)?;
    let commit = source
        .change(
            &format!("passwd {address}"),
            &format!("ptt@{}", domain_of(&address)),
            |db| {
                // The rest of the record as it is at the HEAD committed on.
                let user = db
                    .get(&address)
                    .ok_or_else(|| format!("{address}: no such user"))?;
                let updated = User {
                    password: hash.clone(),
                    ..user.clone()
                };
                Ok(vec![(
                    user_path(&address),
                    Some(updated.to_toml().into_bytes()),
                )])
            },
        )
        .map_err(change_failure)?;
    println!(
        "password of {address} changed (commit {})",
        &commit[..commit.len().min(12)]
    );
    Ok(())
}

pub(crate) fn del(args: DelArgs) -> Outcome {
    let (source, _, _scratch) = args.repo.source()?;
    let address = normalize(&args.address);
    let commit = source
        .change(
            &format!("deluser {address}"),
            &format!("ptt@{}", domain_of(&address)),
            |db| {
                db.get(&address)
                    .map(|_| vec![(user_path(&address), None)])
                    .ok_or_else(|| format!("{address}: no such user"))
            },
        )
        .map_err(change_failure)?;
    println!(
        "removed {address} (commit {})",
        &commit[..commit.len().min(12)]
    );
    Ok(())
}

pub(crate) fn list(args: ListArgs) -> Outcome {
    let (source, _, _scratch) = args.repo.source()?;
    source.fetch().map_err(Failure::input)?;
    let db = source.snapshot().map_err(Failure::input)?;
    let mut out = std::io::stdout().lock();
    let rows: Vec<[String; 4]> = db
        .users()
        .map(|(address, u)| {
            [
                address.to_string(),
                u.aliases.join(","),
                u.forward_to.join(","),
                u.may_send_as.join(","),
            ]
        })
        .collect();
    let header = ["ADDRESS", "ALIASES", "FORWARD_TO", "MAY_SEND_AS"].map(str::to_string);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end()).map_err(Failure::stdout)?;
    }
    for problem in &db.problems {
        eprintln!("ptt: left out: {problem}");
    }
    Ok(())
}
