//! `ptt queue`: what the relay holds, why, and when it tries next; retry
//! and delete by hand.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ptt_queue::{Entry, RecipientState};

use crate::exit::{Failure, Outcome};
use crate::service::relay::queue_dir::{QueueDir, Request, is_id};
use crate::service::relay::queue_path;
use crate::service::trace::{rfc5322_date, unix_now};

/// The relay's queue.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ptt queue list --config /etc/ptt/ptt.toml\n  ptt queue show 0006a1b2c3d4e5f6a7b8 --config /etc/ptt/ptt.toml\n  ptt queue retry --config /etc/ptt/ptt.toml\n  ptt queue delete 0006a1b2c3d4e5f6a7b8 --config /etc/ptt/ptt.toml\n\n\
The queue is STATE/relay/queue/. With the relay running, retry and delete are passed to it\n\
(it takes them within a second); without it, the files are changed directly."
)]
pub(crate) struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Every queued message: sender, recipients left and why, next attempt.
    List(ConfigArg),
    /// One message: its envelope, each recipient's state, its header.
    Show(IdArgs),
    /// Try one message (or all) now.
    Retry(RetryArgs),
    /// Drop a message without telling its sender.
    Delete(IdArgs),
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// The site's configuration file.
    #[arg(long)]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
struct IdArgs {
    /// The queue id (as `ptt queue list` and the relay's log give it).
    id: String,
    /// The site's configuration file.
    #[arg(long)]
    config: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RetryArgs {
    /// The queue id; all messages without it.
    id: Option<String>,
    /// The site's configuration file.
    #[arg(long)]
    config: PathBuf,
}

fn open(config: &std::path::Path) -> Result<QueueDir, Failure> {
    let config = super::serve::load(config)?;
    let path = queue_path(&config);
    if !path.is_dir() {
        return Err(Failure::input(format!(
            "{} does not exist: the relay has not run with this configuration",
            path.display()
        )));
    }
    QueueDir::open(&path).map_err(|e| Failure::input(format!("{}: {e}", path.display())))
}

fn check_id(id: &str) -> Result<(), Failure> {
    if is_id(id) {
        Ok(())
    } else {
        Err(Failure::input(format!(
            "{id:?} is not a queue id (letters and digits)"
        )))
    }
}

/// "in 5m", "3h ago".
fn relative(at: u64, now: u64) -> String {
    let span = |s: u64| match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    };
    if at >= now {
        format!("in {}", span(at - now))
    } else {
        format!("{} ago", span(now - at))
    }
}

fn state_line(state: &RecipientState) -> String {
    match state {
        RecipientState::Pending { last: None } => "pending, not tried yet".into(),
        RecipientState::Pending { last: Some(r) } => {
            format!("deferred {}: {}", r.status, r.diagnostic)
        }
        RecipientState::Delivered { report, .. } => format!("delivered: {}", report.diagnostic),
        RecipientState::Failed { report, notified } => format!(
            "failed {}: {}{}",
            report.status,
            report.diagnostic,
            if *notified {
                " (sender told)"
            } else {
                " (report to send)"
            }
        ),
    }
}

fn summary(entry: &Entry, now: u64) -> String {
    let mut out = format!(
        "{}  from <{}>  arrived {}  attempts {}  next {}\n",
        entry.id,
        entry.from,
        relative(entry.arrived, now),
        entry.attempts,
        relative(entry.next_attempt, now),
    );
    for r in entry
        .recipients
        .iter()
        .filter(|r| !matches!(r.state, RecipientState::Delivered { .. }))
    {
        out += &format!("    {}  {}\n", r.address, state_line(&r.state));
    }
    out
}

pub(crate) fn run(args: Args) -> Outcome {
    let now = unix_now();
    let mut out = std::io::stdout().lock();
    match args.action {
        Action::List(a) => {
            let queue = open(&a.config)?;
            let mut ids: Vec<String> = std::fs::read_dir(queue.path())
                .map_err(|e| Failure::input(format!("{}: {e}", queue.path().display())))?
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_suffix(".toml")
                        .filter(|id| is_id(id))
                        .map(str::to_string)
                })
                .collect();
            ids.sort();
            if ids.is_empty() {
                writeln!(out, "the queue is empty").map_err(Failure::stdout)?;
            }
            for id in &ids {
                match queue.entry(id) {
                    Ok(entry) => write!(out, "{}", summary(&entry, now)),
                    Err(e) => writeln!(out, "{id}  unreadable: {e}"),
                }
                .map_err(Failure::stdout)?;
            }
            if !ids.is_empty() {
                writeln!(out, "{} queued", ids.len()).map_err(Failure::stdout)?;
            }
        }
        Action::Show(a) => {
            check_id(&a.id)?;
            let queue = open(&a.config)?;
            let entry = queue.entry(&a.id).map_err(Failure::input)?;
            let mut text = format!(
                "id: {}\nfrom: <{}>\narrived: {}\nattempts: {}\nnext attempt: {} ({})\n",
                entry.id,
                entry.from,
                rfc5322_date(entry.arrived),
                entry.attempts,
                rfc5322_date(entry.next_attempt),
                relative(entry.next_attempt, now),
            );
            if let Some(envid) = &entry.envid {
                text += &format!("envid: {envid}\n");
            }
            text += "recipients:\n";
            for r in &entry.recipients {
                text += &format!("  {}  {}", r.address, state_line(&r.state));
                if let Some(mta) = r.last_report().and_then(|r| r.remote_mta.as_deref()) {
                    text += &format!("  [{mta}]");
                }
                text += "\n";
            }
            let message = queue.message(&a.id).unwrap_or_default();
            text += &format!("message: {} bytes\n", message.len());
            let header_end = message
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(message.len().min(4096));
            text += &String::from_utf8_lossy(&message[..header_end]).replace("\r\n", "\n");
            text += "\n";
            out.write_all(text.as_bytes()).map_err(Failure::stdout)?;
        }
        Action::Retry(a) => {
            if let Some(id) = &a.id {
                check_id(id)?;
            }
            let queue = open(&a.config)?;
            if let Some(id) = &a.id {
                queue
                    .entry(id)
                    .map_err(|_| Failure::input(format!("no queued message {id}")))?;
            }
            match queue.lock().map_err(|e| Failure::input(e.to_string()))? {
                None => {
                    ask_running(&queue, &Request::Retry(a.id.clone()))?;
                    writeln!(
                        out,
                        "the relay tries {} now",
                        a.id.as_deref().unwrap_or("every queued message")
                    )
                    .map_err(Failure::stdout)?;
                }
                Some(_lock) => {
                    let (entries, _) = queue
                        .load_all()
                        .map_err(|e| Failure::input(e.to_string()))?;
                    let mut n = 0;
                    for mut entry in entries {
                        if a.id.as_deref().is_none_or(|id| id == entry.id) {
                            entry.next_attempt = now;
                            queue
                                .save(&entry)
                                .map_err(|e| Failure::input(e.to_string()))?;
                            n += 1;
                        }
                    }
                    writeln!(out, "{n} message(s) due now; the relay is not running, it tries them when it starts")
                        .map_err(Failure::stdout)?;
                }
            }
        }
        Action::Delete(a) => {
            check_id(&a.id)?;
            let queue = open(&a.config)?;
            queue
                .entry(&a.id)
                .map_err(|_| Failure::input(format!("no queued message {}", a.id)))?;
            match queue.lock().map_err(|e| Failure::input(e.to_string()))? {
                None => ask_running(&queue, &Request::Delete(a.id.clone()))?,
                Some(_lock) => queue
                    .remove(&a.id)
                    .map_err(|e| Failure::input(e.to_string()))?,
            }
            writeln!(out, "deleted {}", a.id).map_err(Failure::stdout)?;
        }
    }
    Ok(())
}

/// Leaves a request for the running relay and waits for it to be taken.
fn ask_running(queue: &QueueDir, request: &Request) -> Result<(), Failure> {
    let path = queue.request(request).map_err(|e| {
        Failure::input(format!(
            "writing a request in {}: {e}",
            queue.path().display()
        ))
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while path.exists() {
        if Instant::now() > deadline {
            return Err(Failure::input(format!(
                "the relay did not take {} within 10 s (is it stuck?)",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
