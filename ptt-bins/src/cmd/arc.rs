//! `ptt arc`: validate an ARC chain, or seal a message (RFC 8617).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};
use futures_util::future::join_all;
use ptt_arc::header::ChainStatus;
use ptt_arc::message::to_crlf;
use ptt_arc::seal::{HeaderStyle, SealOutcome, Sealer};
use ptt_arc::verify::{Answer, ArcVerdict, ArcVerifier, Query, Step};

use crate::dns::{self, Resolver};
use crate::exit::{Failure, Outcome};

/// Validate or seal an Authenticated Received Chain (ARC, RFC 8617).
#[derive(Debug, ClapArgs)]
#[command(after_help = "Examples:
  ptt arc verify < message.eml
  ptt arc verify --txt 'sel._domainkey.example.org=v=DKIM1; k=rsa; p=MIIB...' < message.eml
  ptt arc seal --key arc.pem --selector sel --domain example.org \\
      --authserv-id mx.example.org --dns 127.0.0.1:5353 < in.eml > out.eml")]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Validate the chain of the message on standard input: prints `cv=`
    /// and why. Exit 0 for pass or none, 1 for fail.
    #[command(after_help = "Example:
  ptt arc verify --dns 127.0.0.1:5353 < message.eml
  cv=pass (2 sets, oldest-pass=0)")]
    Verify(KeysArgs),
    /// Validate the chain of the message on standard input, stamp the result
    /// into an Authentication-Results field of this host, and seal: writes
    /// the message with the new ARC set on top to standard output.
    #[command(after_help = "Example:
  ptt arc seal --key arc.pem --selector arc1 --domain lists.example.org \\
      --authserv-id lists.example.org < in.eml > out.eml")]
    Seal(SealArgs),
}

/// Where DKIM key records come from.
#[derive(Debug, ClapArgs)]
struct KeysArgs {
    /// Ask this DNS server (HOST:PORT) for the key records, instead of the
    /// system's resolvers.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "txt")]
    dns: Option<String>,
    /// Use this TXT record (repeatable) and no DNS at all; names not given
    /// have no record.
    #[arg(long, value_name = "NAME=VALUE")]
    txt: Vec<String>,
}

#[derive(Debug, ClapArgs)]
struct SealArgs {
    /// The private key (PEM: PKCS#1 or PKCS#8, RSA or Ed25519).
    #[arg(long, value_name = "KEY.pem")]
    key: PathBuf,
    /// The selector (`s=`).
    #[arg(long)]
    selector: String,
    /// The sealing domain (`d=`).
    #[arg(long)]
    domain: String,
    /// This host's authserv-id: its Authentication-Results fields go into
    /// the ARC-Authentication-Results.
    #[arg(long, value_name = "ID")]
    authserv_id: String,
    /// The header fields the ARC-Message-Signature signs, colon-separated
    /// (default: the usual From, To, Subject, Date, ... that are present).
    #[arg(long, value_name = "NAME:NAME…")]
    headers: Option<String>,
    /// `t=` (seconds since the epoch; default: now).
    #[arg(long)]
    timestamp: Option<u64>,
    #[command(flatten)]
    keys: KeysArgs,
}

/// Runs `ptt arc`.
pub(crate) fn run(args: Args) -> Outcome {
    match args.action {
        Action::Verify(keys) => verify(&keys),
        Action::Seal(seal) => seal_message(&seal),
    }
}

fn read_message() -> Result<Vec<u8>, Failure> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| Failure::input(format!("reading standard input: {e}")))?;
    Ok(to_crlf(&raw))
}

/// A source of key records.
enum Keys {
    Txt(BTreeMap<String, String>),
    Dns(Box<Resolver>),
}

impl Keys {
    fn from_args(args: &KeysArgs) -> Result<Keys, Failure> {
        if !args.txt.is_empty() {
            let mut map = BTreeMap::new();
            for item in &args.txt {
                let (name, value) = item.split_once('=').ok_or_else(|| {
                    Failure::input(format!("--txt {item:?}: expected NAME=VALUE"))
                })?;
                map.insert(
                    name.trim_end_matches('.').to_ascii_lowercase(),
                    value.to_string(),
                );
            }
            return Ok(Keys::Txt(map));
        }
        let server = args
            .dns
            .as_deref()
            .map(dns::server_addr)
            .transpose()
            .map_err(Failure::Input)?;
        Resolver::new(server)
            .map(|r| Keys::Dns(Box::new(r)))
            .map_err(Failure::Input)
    }

    async fn answer(&self, q: &Query) -> Answer {
        let name = q.name.trim_end_matches('.').to_ascii_lowercase();
        match self {
            Keys::Txt(map) => match map.get(&name) {
                Some(v) => Answer::Txt(vec![v.as_bytes().to_vec()]),
                None => Answer::NxDomain,
            },
            Keys::Dns(resolver) => dns::evaluate::ask(resolver, q).await,
        }
    }
}

/// Validates `message`, asking every key query at once.
async fn validate(message: &[u8], keys: &Keys) -> ArcVerdict {
    let mut v = ArcVerifier::from_message(message);
    let mut open = Vec::new();
    loop {
        match v.poll() {
            Step::Query(q) => open.push(q),
            Step::Done(verdict) => return verdict,
            Step::Wait => {
                let answers = join_all(open.iter().map(|q| keys.answer(q))).await;
                for (q, a) in open.drain(..).zip(answers) {
                    v.answer(&q, a);
                }
            }
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::input(format!("starting the runtime: {e}")))
}

fn verify(args: &KeysArgs) -> Outcome {
    let message = read_message()?;
    let rt = runtime()?;
    let verdict = rt.block_on(async {
        let keys = Keys::from_args(args)?;
        Ok::<_, Failure>(validate(&message, &keys).await)
    })?;
    println!("{verdict}");
    match verdict.status {
        ChainStatus::Fail => Err(Failure::Negative),
        ChainStatus::Pass | ChainStatus::None => Ok(()),
    }
}

fn seal_message(args: &SealArgs) -> Outcome {
    let pem = std::fs::read(&args.key)
        .map_err(|e| Failure::input(format!("{}: {e}", args.key.display())))?;
    let key = ptt_arc::SigningKey::from_pem(&pem)
        .map_err(|e| Failure::input(format!("{}: {e}", args.key.display())))?;
    let mut sealer = Sealer::new(&key, &args.domain, &args.selector, &args.authserv_id)
        .map_err(Failure::input)?
        .with_style(HeaderStyle::Folded);
    if let Some(h) = &args.headers {
        let names: Vec<&str> = h.split(':').map(str::trim).collect();
        sealer = sealer.with_signed_headers(&names).map_err(Failure::input)?;
    }
    let message = read_message()?;
    let rt = runtime()?;
    let verdict = rt.block_on(async {
        let keys = Keys::from_args(&args.keys)?;
        Ok::<_, Failure>(validate(&message, &keys).await)
    })?;
    eprintln!("ptt arc seal: {verdict}");
    // Stamp the chain status into this host's Authentication-Results unless
    // one of them already carries an arc= result.
    let stamped = ptt_arc::seal::stamp(&message, &args.authserv_id, &verdict);
    let timestamp = args.timestamp.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let out = match sealer
        .seal(&stamped, &verdict, timestamp)
        .map_err(Failure::input)?
    {
        SealOutcome::Sealed(set) => set.prepend_to(&stamped),
        SealOutcome::ChainAlreadyFailed => {
            eprintln!(
                "ptt arc seal: the chain already failed (cv=fail): no new set (RFC 8617 §5.1)"
            );
            stamped
        }
        _ => {
            eprintln!("ptt arc seal: no new set");
            stamped
        }
    };
    std::io::stdout().write_all(&out).map_err(Failure::stdout)
}
