//! The mailing-list verbs: `ptt create`, `add`, `add-moderator`,
//! `rem-moderator`, `subscribe`, `unsubscribe`, `show`. Each opens the
//! state (a FAT32 image or a directory), changes it through ptt-list, and
//! commits atomically before printing what it did.

use std::path::{Path, PathBuf};

use ptt_list::store::{self, DirFiles, Files, ImageFiles, Store};
use ptt_list::{Address, Changes, Policy, State};

use crate::exit::{Failure, Outcome};

/// The state at `path`, locked against the list server and other verbs
/// until the returned lock is dropped (after the commit).
/// A state store over either backend.
type AnyStore = Store<Box<dyn Files + Send>>;

fn open(path: &Path) -> Result<(store::Lock, AnyStore, State), Failure> {
    let lock = store::lock(path).map_err(Failure::input)?;
    let mut store = Store::new(store::open(path).map_err(Failure::input)?);
    let state = store.load().map_err(Failure::input)?;
    Ok((lock, store, state))
}

fn commit(store: &mut AnyStore, state: &State, changes: &Changes) -> Outcome {
    store.commit(state, changes).map_err(Failure::input)
}

fn addresses(list: &[String]) -> Result<Vec<Address>, Failure> {
    list.iter()
        .map(|a| {
            Address::parse(a.trim_start_matches('<').trim_end_matches('>'))
                .map_err(|e| Failure::input(format!("bad address: {e}")))
        })
        .collect()
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("size {s:?}: expected a number with an optional K, M or G suffix"))
}

/// `NAME EMAIL...`, or only `EMAIL...` when the domain has a single list
/// (the form of the original ptt's README).
fn name_and_emails(
    state: &State,
    domain: &str,
    words: &[String],
) -> Result<(String, Vec<Address>), Failure> {
    let first = words
        .first()
        .ok_or_else(|| Failure::input("give the list NAME and one or more EMAIL"))?;
    if first.contains('@') {
        let on_domain: Vec<&str> = state
            .lists
            .values()
            .filter(|l| l.domain.eq_ignore_ascii_case(domain))
            .map(|l| l.name.as_str())
            .collect();
        return match on_domain.as_slice() {
            [one] => Ok((one.to_string(), addresses(words)?)),
            [] => Err(Failure::input(format!("unknown list: no list on {domain}"))),
            _ => Err(Failure::input(format!(
                "{domain} has {} lists: give the list NAME before the addresses",
                on_domain.len()
            ))),
        };
    }
    if words.len() < 2 {
        return Err(Failure::input("give one or more EMAIL after the list NAME"));
    }
    Ok((first.clone(), addresses(&words[1..])?))
}

// ----- create -----

/// Make an empty list state: a FAT32 image (or a directory).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ptt create lipap.img\n  ptt create lipap.img --size 128M\n  ptt create /var/lib/ptt/lists/     (an existing empty directory)\n\nThe image holds bounces.json, temp.json, lists/, tmp/ and the journal that makes updates atomic;\nit passes fsck.fat -n and mtools reads it (mdir -i lipap.img ::/lists)."
)]
pub(crate) struct CreateArgs {
    /// The image file to make (it must not exist), or an empty directory.
    image: PathBuf,
    /// Size of the image (FAT32 needs at least 34M).
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    size: u64,
}

pub(crate) fn create(args: CreateArgs) -> Outcome {
    if args.image.is_dir() {
        DirFiles::create(&args.image).map_err(Failure::input)?;
        println!("created the list state directory {}", args.image.display());
    } else {
        ImageFiles::create(&args.image, args.size).map_err(Failure::input)?;
        println!(
            "created {} ({} MiB, FAT32)",
            args.image.display(),
            args.size >> 20
        );
    }
    Ok(())
}

// ----- add -----

/// Add a mailing list NAME@DOMAIN.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt add lipap.img --domain mailingl.st ptt --moderator foo@bar.com\n  ptt add lipap.img --domain mailingl.st ptt-dev --moderator foo@bar.com --subscriber a@b.org --policy open"
)]
pub(crate) struct AddArgs {
    /// The image or directory made by `ptt create`.
    image: PathBuf,
    /// The domain the list answers on.
    #[arg(long)]
    domain: String,
    /// The list name (a-z, 0-9, '.', '_', '-').
    name: String,
    /// A moderator (repeat for more; at least one).
    #[arg(long = "moderator", required = true)]
    moderators: Vec<String>,
    /// A subscriber to add at once (repeat for more).
    #[arg(long = "subscriber")]
    subscribers: Vec<String>,
    /// Who may post: subscribers, moderated or open.
    #[arg(long, default_value = "subscribers", value_parser = ["subscribers", "moderated", "open"])]
    policy: String,
    /// Subscriptions wait for a moderator after the confirmation.
    #[arg(long)]
    moderate_subscriptions: bool,
    /// Put this in front of subjects, e.g. `"[ptt] "`.
    #[arg(long)]
    subject_prefix: Option<String>,
    /// A line describing the list (shown in List-Id and help).
    #[arg(long)]
    description: Option<String>,
}

pub(crate) fn add(args: AddArgs) -> Outcome {
    let moderators = addresses(&args.moderators)?;
    let subscribers = addresses(&args.subscribers)?;
    let policy = Policy::parse(&args.policy).unwrap_or_default();
    let (_lock, mut store, mut state) = open(&args.image)?;
    let secret = crate::random::bytes32().map_err(Failure::Input)?;
    let mut changes = state
        .create_list(&args.name, &args.domain, &secret, &moderators, policy)
        .map_err(Failure::input)?;
    let list = state.list_mut(&args.name, None).map_err(Failure::input)?;
    list.settings.subscription_moderated = args.moderate_subscriptions;
    list.settings.subject_prefix = args.subject_prefix;
    if let Some(d) = args.description {
        list.description = d;
    }
    let (n, c) = state
        .set_subscribed(&args.name, None, &subscribers, true)
        .map_err(Failure::input)?;
    changes.merge(c);
    commit(&mut store, &state, &changes)?;
    println!(
        "added {}@{} (policy {}, {} moderator(s), {n} subscriber(s))",
        args.name,
        args.domain.to_ascii_lowercase(),
        policy.as_str(),
        moderators.len()
    );
    Ok(())
}

// ----- moderators and subscribers -----

/// Names a list and addresses.
#[derive(Debug, clap::Args)]
pub(crate) struct MembersArgs {
    /// The image or directory made by `ptt create`.
    image: PathBuf,
    /// The list's domain.
    #[arg(long)]
    domain: String,
    /// NAME EMAIL... (NAME may be left out when the domain has one list).
    #[arg(required = true, value_name = "NAME EMAIL")]
    words: Vec<String>,
}

/// Add moderators to a list.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt add-moderator lipap.img --domain mailingl.st ptt bar@foo.com"
)]
pub(crate) struct AddModeratorArgs {
    #[command(flatten)]
    m: MembersArgs,
}

/// Remove moderators from a list (never the last one).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt rem-moderator lipap.img --domain mailingl.st ptt bar@foo.com"
)]
pub(crate) struct RemModeratorArgs {
    #[command(flatten)]
    m: MembersArgs,
}

/// Subscribe addresses directly (no confirmation: the administrator vouches).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt subscribe lipap.img --domain mailingl.st ptt alice@example.org bob@example.net"
)]
pub(crate) struct SubscribeArgs {
    #[command(flatten)]
    m: MembersArgs,
}

/// Unsubscribe addresses directly.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  ptt unsubscribe lipap.img --domain mailingl.st ptt alice@example.org"
)]
pub(crate) struct UnsubscribeArgs {
    #[command(flatten)]
    m: MembersArgs,
}

enum Members {
    AddModerator,
    RemModerator,
    Subscribe,
    Unsubscribe,
}

fn members(m: MembersArgs, what: Members) -> Outcome {
    let (_lock, mut store, mut state) = open(&m.image)?;
    let (name, who) = name_and_emails(&state, &m.domain, &m.words)?;
    let domain = Some(m.domain.as_str());
    let (line, changes) = match what {
        Members::AddModerator => {
            let (n, c) = state
                .add_moderators(&name, domain, &who)
                .map_err(Failure::input)?;
            (format!("{n} moderator(s) added to {name}"), c)
        }
        Members::RemModerator => {
            let c = state
                .remove_moderators(&name, domain, &who)
                .map_err(Failure::input)?;
            (format!("{} moderator(s) removed from {name}", who.len()), c)
        }
        Members::Subscribe => {
            let (n, c) = state
                .set_subscribed(&name, domain, &who, true)
                .map_err(Failure::input)?;
            (
                format!(
                    "{n} address(es) subscribed to {name} ({} already were)",
                    who.len() - n
                ),
                c,
            )
        }
        Members::Unsubscribe => {
            let (n, c) = state
                .set_subscribed(&name, domain, &who, false)
                .map_err(Failure::input)?;
            (
                format!(
                    "{n} address(es) unsubscribed from {name} ({} were not subscribed)",
                    who.len() - n
                ),
                c,
            )
        }
    };
    commit(&mut store, &state, &changes)?;
    println!("{line}");
    Ok(())
}

pub(crate) fn add_moderator(a: AddModeratorArgs) -> Outcome {
    members(a.m, Members::AddModerator)
}
pub(crate) fn rem_moderator(a: RemModeratorArgs) -> Outcome {
    members(a.m, Members::RemModerator)
}
pub(crate) fn subscribe(a: SubscribeArgs) -> Outcome {
    members(a.m, Members::Subscribe)
}
pub(crate) fn unsubscribe(a: UnsubscribeArgs) -> Outcome {
    members(a.m, Members::Unsubscribe)
}

// ----- show -----

/// Show the lists (counts, pending, held, retry queue, bounces), or one list in full.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ptt show lipap.img\n  ptt show lipap.img --domain mailingl.st ptt"
)]
pub(crate) struct ShowArgs {
    /// The image or directory made by `ptt create`.
    image: PathBuf,
    /// Only lists on this domain.
    #[arg(long)]
    domain: Option<String>,
    /// One list, in full.
    name: Option<String>,
}

pub(crate) fn show(args: ShowArgs) -> Outcome {
    let (_lock, _, state) = open(&args.image)?;
    let domain = args.domain.as_deref();
    if let Some(name) = &args.name {
        let mut state = state;
        let l = state
            .list_mut(name, domain)
            .map_err(Failure::input)?
            .clone();
        println!(
            "list {}  policy {}  posts {}",
            l.post_address(),
            l.settings.policy.as_str(),
            l.counter
        );
        if !l.description.is_empty() {
            println!("description {}", l.description);
        }
        println!("moderators ({}):", l.moderators.len());
        for m in &l.moderators {
            println!("  {m}");
        }
        println!("subscribers ({}):", l.subscribers.len());
        let bounces = state.bounces.get(name);
        for s in &l.subscribers {
            match bounces.and_then(|b| b.get(s.key())) {
                Some(b) => println!("  {s}  bounce score {:.2}", b.score),
                None => println!("  {s}"),
            }
        }
        println!("pending ({}):", l.pending.len());
        for p in &l.pending {
            println!(
                "  {:?} {} waits for {:?}, token {}, expires {}",
                p.change,
                p.address,
                p.stage,
                p.token,
                ptt_list::rfc5322_date(p.expires)
            );
        }
        println!("held ({}):", l.held.len());
        for h in &l.held {
            println!(
                "  from {} {:?} ({:?}): accept with {}-accept-{}@{}",
                h.author, h.subject, h.reason, l.name, h.token, l.domain
            );
        }
        let queued: Vec<_> = state.queue.iter().filter(|r| &r.list == name).collect();
        println!("retry queue ({}):", queued.len());
        for r in queued {
            println!(
                "  post {} to {}: {} attempt(s), next {}, last error {}",
                r.post,
                r.rcpt,
                r.attempts,
                ptt_list::rfc5322_date(r.next),
                r.last_error
            );
        }
        return Ok(());
    }
    let mut shown = 0;
    for l in state
        .lists
        .values()
        .filter(|l| domain.is_none_or(|d| d.eq_ignore_ascii_case(&l.domain)))
    {
        let bouncing = state.bounces.get(&l.name).map_or(0, |b| b.len());
        println!(
            "{}  policy {}  {} subscriber(s)  {} moderator(s)  {} pending  {} held  {} bouncing  {} post(s)",
            l.post_address(),
            l.settings.policy.as_str(),
            l.subscribers.len(),
            l.moderators.len(),
            l.pending.len(),
            l.held.len(),
            bouncing,
            l.counter
        );
        shown += 1;
    }
    if shown == 0 {
        println!("no lists");
    }
    println!(
        "retry queue: {} delivery(ies), {} file(s) in tmp/",
        state.queue.len(),
        state.blobs.len()
    );
    Ok(())
}
