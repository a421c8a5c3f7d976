//! `ptt dkim keygen|sign|verify`: DKIM keys, signing and verification
//! (ptt-dkim), with keys published as TXT and verified over DNS or given
//! records.

use std::io::{Read as _, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Subcommand, ValueEnum};
use ptt_dkim::{
    Answer, Canonicalization, CrlfNormalizer, KeyKind, Signer, SignerConfig, SigningKey, Verdict,
    Verifier, VerifyPolicy, generate_key,
};

use crate::dns::{self, Resolver};
use crate::exit::{Failure, Outcome};

/// DKIM: make a key, sign a message, verify a message's signatures.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ptt dkim keygen --algorithm ed25519 --selector s2026 --domain example.com --out s2026.pem
  ptt dkim sign --key s2026.pem --selector s2026 --domain example.com < msg.eml > signed.eml
  ptt dkim verify --dns 127.0.0.1:5353 < signed.eml
  ptt dkim verify --txt 's2026._domainkey.example.com=v=DKIM1; k=ed25519; p=...' < signed.eml")]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Generate a private key (PKCS#8 PEM) and print its TXT record.
    Keygen(KeygenArgs),
    /// Sign a message from standard input; write the signed message.
    Sign(SignArgs),
    /// Verify every DKIM-Signature of a message from standard input.
    Verify(VerifyArgs),
    /// Rotate the signer's keys: new dated selectors, published, checked, then signing.
    Rotate(RotateArgs),
    /// List the signer's selectors and their state.
    Keys(KeysArgs),
}

/// `ptt dkim rotate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt dkim rotate --config /etc/ptt/ptt.toml\n\n\
Makes a key pair (Ed25519 and RSA-2048) under a new dated selector (p2026m12-ed25519, …),\n\
publishes it at [dns] primary with [dns] tsig_key, and switches the signer to it only when\n\
the loop is closed: the record is seen through [dns] resolver, one record TTL has passed,\n\
the record holds this very key, and a test message signed with it verifies. The old keys\n\
stay published for [signer] retention_seconds, then are revoked (p=) and removed.\n\
A rotation that stops half way leaves the new keys pending; running it again resumes them."
)]
pub(crate) struct RotateArgs {
    /// The site's configuration file.
    #[arg(long)]
    config: std::path::PathBuf,
    /// How long to wait for the record to be seen through the resolver.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// `ptt dkim keys`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  ptt dkim keys --config /etc/ptt/ptt.toml")]
pub(crate) struct KeysArgs {
    /// The site's configuration file.
    #[arg(long)]
    config: std::path::PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyAlgorithm {
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "ed25519")]
    Ed25519,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  ptt dkim keygen --algorithm rsa-2048 --selector s1 --domain example.com --out s1.pem
prints the record for s1._domainkey.example.com as strings of at most 255 bytes.")]
struct KeygenArgs {
    /// Key type and size.
    #[arg(long, value_enum)]
    algorithm: KeyAlgorithm,
    /// The selector (`s=`).
    #[arg(long)]
    selector: String,
    /// The signing domain (`d=`).
    #[arg(long)]
    domain: String,
    /// Where to write the private key (refuses to overwrite).
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  ptt dkim sign --key s1.pem --selector s1 --domain example.com --headers from,to,subject,date < msg > signed")]
struct SignArgs {
    /// Private key: PEM (PKCS#1 or PKCS#8, RSA > 1024 bits or Ed25519) or a
    /// base64 Ed25519 seed.
    #[arg(long)]
    key: std::path::PathBuf,
    /// The selector (`s=`).
    #[arg(long)]
    selector: String,
    /// The signing domain (`d=`).
    #[arg(long)]
    domain: String,
    /// Header names to sign, comma separated (default: From, Subject, Date,
    /// To, Cc, Message-ID, MIME and list fields...).
    #[arg(long, value_delimiter = ',')]
    headers: Option<Vec<String>>,
    /// Canonicalization, header/body.
    #[arg(long, default_value = "relaxed/relaxed")]
    canon: String,
    /// Do not over-sign (list each header once more than it occurs).
    #[arg(long)]
    no_oversign: bool,
    /// `i=`, the agent or user identifier.
    #[arg(long)]
    identity: Option<String>,
    /// Add `x=` this many seconds after `t=`.
    #[arg(long)]
    expire_after: Option<u64>,
    /// Add `l=` (body length).
    #[arg(long)]
    body_length: bool,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:
  ptt dkim verify --dns 127.0.0.1:5353 < signed.eml
Exit status: 0 when at least one signature passes, 1 when none does.")]
struct VerifyArgs {
    /// Ask this DNS server (HOST:PORT) for key records.
    #[arg(long, conflicts_with = "txt")]
    dns: Option<String>,
    /// Key records given on the command line, NAME=VALUE (repeatable);
    /// names not given are NXDOMAIN.
    #[arg(long)]
    txt: Vec<String>,
    /// The time to check `t=`/`x=` against (seconds since the epoch;
    /// default now).
    #[arg(long)]
    now: Option<u64>,
    /// The authserv-id of the Authentication-Results line.
    #[arg(long, default_value = "localhost")]
    authserv_id: String,
    /// Refuse signatures with `l=` (default: verify the signed part and
    /// report the rest as unsigned).
    #[arg(long)]
    refuse_body_length: bool,
}

/// Runs `ptt dkim`.
pub(crate) fn run(args: Args) -> Outcome {
    match args.action {
        Action::Keygen(a) => keygen(a),
        Action::Sign(a) => sign(a),
        Action::Verify(a) => verify(a),
        Action::Rotate(a) => rotate(a),
        Action::Keys(a) => keys(a),
    }
}

fn keys(a: KeysArgs) -> Outcome {
    use std::io::Write as _;
    let config = super::serve::load(&a.config)?;
    let store = crate::service::signer::store(&config).map_err(Failure::Input)?;
    let file = store.read().map_err(Failure::Input)?;
    let mut out = std::io::stdout().lock();
    let when = |t: u64| {
        if t == 0 {
            "-".to_string()
        } else {
            crate::service::trace::rfc5322_date(t)
        }
    };
    writeln!(
        out,
        "{:<24} {:<8} {:<9} {:<32} UNTIL",
        "SELECTOR", "ALG", "STATE", "CREATED"
    )
    .map_err(Failure::stdout)?;
    for k in &file.keys {
        let until = match k.state {
            crate::service::signer::keys::KeyState::Retiring => when(k.retire_at),
            crate::service::signer::keys::KeyState::Revoked => when(k.remove_at),
            _ => "-".into(),
        };
        let alg = format!("{:?}", k.algorithm).to_ascii_lowercase();
        writeln!(
            out,
            "{:<24} {:<8} {:<9} {:<32} {until}",
            k.selector,
            alg,
            k.state,
            when(k.created)
        )
        .map_err(Failure::stdout)?;
    }
    Ok(())
}

fn rotate(a: RotateArgs) -> Outcome {
    use crate::service::signer::keys::{KeyState, dated_prefix};
    let config = super::serve::load(&a.config)?;
    let section = config
        .signer
        .clone()
        .ok_or_else(|| Failure::input(format!("{}: there is no [signer]", a.config.display())))?;
    let domain = config.domain.clone();
    let runtime = super::serve::runtime()?;
    runtime.block_on(async move {
        let publisher = crate::service::signer::publish::Publisher::new(&config)
            .map_err(Failure::Input)?
            .ok_or_else(|| {
                Failure::input("rotate publishes the new keys itself: set [dns] primary and tsig_key")
            })?;
        let store = crate::service::signer::store(&config).map_err(Failure::Input)?;
        let now = unix_now();
        // Resume pending keys, or make a new pair.
        let selectors = store
            .change(|f| {
                let pending: Vec<String> = f
                    .keys
                    .iter()
                    .filter(|k| k.state == KeyState::Pending)
                    .map(|k| k.selector.clone())
                    .collect();
                if !pending.is_empty() {
                    return Ok(pending);
                }
                let prefix = dated_prefix(f, now);
                store.make(f, &prefix, KeyState::Pending, now)
            })
            .map_err(Failure::Input)?;
        let mut records = Vec::new();
        for sel in &selectors {
            let key = store.key(sel).map_err(Failure::Input)?;
            let record = key.key_record().to_string();
            let done = publisher
                .ensure(sel, &domain, &record, section.record_ttl)
                .await
                .map_err(Failure::Input)?;
            println!("{sel}: record {done} at the primary");
            records.push((sel.clone(), key, record));
        }
        // Seen through the ordinary resolver, holding this very key.
        let resolver = crate::dns::Resolver::new(config.dns.resolver).map_err(Failure::Input)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(a.timeout);
        for (sel, _, record) in &records {
            let name = format!("{sel}._domainkey.{domain}");
            loop {
                let seen = match resolver.lookup(&name, hickory_proto::rr::RecordType::TXT).await {
                    crate::dns::Lookup::Found(rs) => rs
                        .iter()
                        .filter_map(|r| match r {
                            hickory_proto::rr::RData::TXT(t) => Some(crate::dns::txt_joined(t)),
                            _ => None,
                        })
                        .any(|t| t == record.as_bytes()),
                    _ => false,
                };
                if seen {
                    println!("{sel}: the resolver serves the new key");
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(Failure::input(format!(
                        "{name}: not seen through the resolver after {} s; the new keys stay pending (run again to resume)",
                        a.timeout
                    )));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        println!("waiting one record TTL ({} s) for caches", section.record_ttl);
        tokio::time::sleep(Duration::from_secs(u64::from(section.record_ttl))).await;
        // A test message signed with each new key verifies through DNS.
        let mut message = format!(
            "From: postmaster@{domain}\r\nTo: postmaster@{domain}\r\nSubject: ptt dkim rotate test\r\nDate: {}\r\n\r\nkey check\r\n",
            crate::service::trace::rfc5322_date(unix_now())
        )
        .into_bytes();
        for (sel, key, _) in &records {
            let cfg = SignerConfig::new(&domain, sel);
            let mut signer = Signer::new(key, &cfg)
                .map_err(Failure::input)?
                .at(Some(unix_now()), None);
            signer.update(&message);
            let field = signer.finish().map_err(Failure::input)?;
            message = [field.as_bytes(), &message].concat();
        }
        let results = crate::dns::evaluate::dkim(&resolver, &message, unix_now()).await;
        let failed: Vec<String> = results
            .iter()
            .filter(|r| r.verdict.as_str() != "pass")
            .map(|r| format!("{}: {}", r.selector.as_deref().unwrap_or("?"), r.verdict.as_str()))
            .collect();
        if failed.is_empty() && results.len() == records.len() {
            println!("a test message signed with the new keys verifies");
        } else {
            return Err(Failure::input(format!(
                "a test message signed with the new keys does not verify ({}); they stay pending",
                failed.join(", ")
            )));
        }
        let retire_at = unix_now() + section.retention.as_secs();
        store
            .change(|f| {
                // Only what is still pending is promoted: a run that raced
                // another must not revive a retired key.
                let pending = f
                    .keys
                    .iter()
                    .filter(|k| selectors.contains(&k.selector))
                    .all(|k| k.state == KeyState::Pending);
                if !pending {
                    return Err(format!(
                        "{} are no longer pending (another rotation?); nothing changed",
                        selectors.join(", ")
                    ));
                }
                for k in f.keys.iter_mut() {
                    if selectors.contains(&k.selector) {
                        k.state = KeyState::Active;
                    } else if k.state == KeyState::Active {
                        k.state = KeyState::Retiring;
                        k.retire_at = retire_at;
                    }
                }
                Ok(())
            })
            .map_err(Failure::Input)?;
        println!(
            "rotated: signing with {}; the old keys stay published until {}",
            selectors.join(", "),
            crate::service::trace::rfc5322_date(retire_at)
        );
        Ok(())
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn keygen(a: KeygenArgs) -> Outcome {
    let kind = match a.algorithm {
        KeyAlgorithm::Rsa2048 => KeyKind::Rsa2048,
        KeyAlgorithm::Rsa3072 => KeyKind::Rsa3072,
        KeyAlgorithm::Ed25519 => KeyKind::Ed25519,
    };
    // Validate names before making a key.
    if !valid_name(&a.domain) || !valid_name(&a.selector) {
        return Err(Failure::input(format!(
            "not a domain name: --domain {:?} / --selector {:?}",
            a.domain, a.selector
        )));
    }
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| Failure::input(format!("reading /dev/urandom: {e}")))?;
    let generated = generate_key(kind, seed).map_err(Failure::input)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&a.out)
        .map_err(|e| Failure::input(format!("{}: {e}", a.out.display())))?;
    file.write_all(generated.pem.as_bytes())
        .map_err(|e| Failure::input(format!("{}: {e}", a.out.display())))?;
    let record = generated.key.key_record();
    let strings = record.to_txt_strings();
    let quoted: Vec<String> = strings.iter().map(|s| format!("\"{s}\"")).collect();
    println!(
        "{}._domainkey.{}. IN TXT {}",
        a.selector,
        a.domain,
        quoted.join(" ")
    );
    Ok(())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn read_stdin_crlf() -> Result<Vec<u8>, Failure> {
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .map_err(|e| Failure::input(format!("reading standard input: {e}")))?;
    let mut msg = Vec::with_capacity(raw.len() + raw.len() / 32);
    CrlfNormalizer::new().update(&raw, &mut msg);
    Ok(msg)
}

fn sign(a: SignArgs) -> Outcome {
    let pem =
        std::fs::read(&a.key).map_err(|e| Failure::input(format!("{}: {e}", a.key.display())))?;
    let key = SigningKey::from_pem(&pem)
        .map_err(|e| Failure::input(format!("{}: {e}", a.key.display())))?;
    let (hc, bc) = Canonicalization::parse_pair(&a.canon).ok_or_else(|| {
        Failure::input(format!(
            "--canon {:?}: expected simple|relaxed[/simple|relaxed]",
            a.canon
        ))
    })?;
    let mut cfg = SignerConfig::new(&a.domain, &a.selector);
    if let Some(h) = a.headers {
        cfg.headers = h.into_iter().map(|s| s.trim().to_string()).collect();
    }
    cfg.header_canon = hc;
    cfg.body_canon = bc;
    cfg.oversign = !a.no_oversign;
    cfg.identity = a.identity;
    let now = unix_now();
    cfg.timestamp = Some(now);
    cfg.expiration = a.expire_after.map(|s| now + s);
    cfg.body_length = a.body_length;
    let mut signer = Signer::new(&key, &cfg).map_err(Failure::input)?;
    let msg = read_stdin_crlf()?;
    signer.update(&msg);
    let field = signer.finish().map_err(Failure::input)?;
    let mut out = std::io::stdout().lock();
    out.write_all(field.as_bytes())
        .and_then(|()| out.write_all(&msg))
        .and_then(|()| out.flush())
        .map_err(Failure::stdout)
}

fn verify(a: VerifyArgs) -> Outcome {
    let msg = read_stdin_crlf()?;
    let now = a.now.unwrap_or_else(unix_now);
    let policy = VerifyPolicy {
        body_length: if a.refuse_body_length {
            ptt_dkim::BodyLengthPolicy::Refuse
        } else {
            ptt_dkim::BodyLengthPolicy::Honour
        },
        ..VerifyPolicy::default()
    };
    let results = match &a.dns {
        Some(server) => {
            let addr = dns::server_addr(server).map_err(Failure::input)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failure::input(format!("starting the runtime: {e}")))?;
            rt.block_on(async {
                let resolver = Resolver::new(Some(addr))?;
                let mut v = Verifier::new(policy, now);
                v.update(&msg);
                v.end();
                let _ = dns::evaluate::drive(&resolver, &mut v).await;
                Ok::<_, String>(v.into_results())
            })
            .map_err(Failure::input)?
        }
        None => {
            let mut records: Vec<(String, String)> = Vec::new();
            for t in &a.txt {
                let (name, value) = t
                    .split_once('=')
                    .ok_or_else(|| Failure::input(format!("--txt {t:?}: expected NAME=VALUE")))?;
                records.push((
                    name.trim_end_matches('.').to_ascii_lowercase(),
                    value.to_string(),
                ));
            }
            ptt_dkim::verify_message(&msg, now, policy, |name| {
                let found: Vec<Vec<u8>> = records
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_bytes().to_vec())
                    .collect();
                if found.is_empty() {
                    Answer::NxDomain
                } else {
                    Answer::Txt(found)
                }
            })
        }
    };
    let mut methods = Vec::new();
    for r in &results {
        println!("{r}");
        methods.push(ar_method(r));
    }
    if results.is_empty() {
        println!("dkim=none (no DKIM-Signature)");
        methods.push("dkim=none".to_string());
    }
    println!(
        "Authentication-Results: {};\r\n\t{}",
        a.authserv_id,
        methods.join(";\r\n\t")
    );
    if results.iter().any(|r| r.verdict == Verdict::Pass) {
        Ok(())
    } else {
        Err(Failure::Negative)
    }
}

/// One `dkim=` method of an Authentication-Results field (RFC 8601 §2.7.1).
fn ar_method(r: &ptt_dkim::SignatureResult) -> String {
    let mut s = format!("dkim={}", r.verdict.as_str());
    if let Some(reason) = r.verdict.reason() {
        s.push_str(&format!(
            " ({})",
            reason.to_string().replace(['(', ')'], "")
        ));
    } else if r.weak_key {
        s.push_str(" (weak key)");
    }
    if let Some(sig) = &r.signature {
        s.push_str(&format!(
            " header.d={} header.s={}",
            sig.domain, sig.selector
        ));
        if let Some(i) = &sig.identity {
            s.push_str(&format!(" header.i={i}"));
        }
        s.push_str(&format!(" header.a={}", sig.algorithm));
        let b: String = base64_prefix(&sig.signature);
        s.push_str(&format!(" header.b={b}"));
    } else if let Some(d) = &r.domain {
        s.push_str(&format!(" header.d={d}"));
    }
    s
}

fn base64_prefix(sig: &[u8]) -> String {
    use base64::Engine as _;
    let full = base64::engine::general_purpose::STANDARD.encode(sig);
    full.chars().take(8).collect()
}
