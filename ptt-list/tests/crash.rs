//! Crash test of the list state: a child process makes 200 updates (each
//! touching a list file, bounces.json, temp.json and tmp/), printing
//! "PTT-ACK N" after each commit returns; the parent kills it with SIGKILL at
//! random moments, reloads, and checks that the state loads, holds every
//! acknowledged update, and is one of the states the child could have
//! committed (nothing half-applied). Both backends; the image is also
//! checked with `fsck.fat -n` after every kill, once opening it has replayed
//! the journal of a commit the kill interrupted.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ptt_list::model::{BounceRecord, Retry};
use ptt_list::store::{self, DirFiles, ImageFiles, Store};
use ptt_list::{Address, Changes, Policy, State};

const UPDATES: usize = 200;
const CHILD_ENV: &str = "PTT_LIST_CRASH_CHILD";

fn user(n: usize) -> Address {
    Address::parse(&format!("user-{n}@example.org")).unwrap()
}

fn blob(n: usize) -> String {
    format!("crash-{n}.eml")
}

/// Update `n`: subscribe user-n and record a bounce for it; every third
/// update queues a retry with its message in tmp/; the next one removes it.
fn update(state: &mut State, n: usize) -> Changes {
    let (_, mut c) = state
        .set_subscribed("crash", None, &[user(n)], true)
        .unwrap();
    state.bounces.entry("crash".into()).or_default().insert(
        user(n).key().to_string(),
        BounceRecord {
            score: n as f64,
            updated: n as u64,
            last_post: n as u64,
        },
    );
    c.bounces = true;
    if n.is_multiple_of(3) {
        let body: Vec<u8> = (0..(n * 97) % 20_000 + 100)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        state.blobs.insert(blob(n), body);
        c.blobs_put.insert(blob(n));
        state.queue.push(Retry {
            list: "crash".into(),
            post: n as u64,
            rcpt: user(n),
            attempts: 1,
            next: 0,
            deadline: 1,
            last_error: String::new(),
        });
        c.queue = true;
    } else if n % 3 == 1 {
        state.queue.retain(|r| r.post != (n - 1) as u64);
        state.blobs.remove(&blob(n - 1));
        c.blobs_removed.insert(blob(n - 1));
        c.queue = true;
    }
    c
}

/// How many updates a loaded state holds; panics if it is not exactly the
/// state after some number of updates.
fn applied(state: &State) -> usize {
    let list = &state.lists["crash"];
    let k = list.subscribers.len();
    for n in 0..k {
        assert!(
            list.subscribers.contains(&user(n)),
            "user-{n} missing with {k} subscribers"
        );
        assert!(
            state.bounces["crash"].contains_key(user(n).key()),
            "bounce of user-{n} missing"
        );
    }
    assert_eq!(
        state.bounces.get("crash").map_or(0, |b| b.len()),
        k,
        "bounces.json and the list disagree"
    );
    let open_retry = k > 0 && (k - 1).is_multiple_of(3);
    assert_eq!(
        state.queue.len(),
        usize::from(open_retry),
        "temp.json after {k} updates: {:?}",
        state.queue
    );
    assert_eq!(
        state.blobs.len(),
        usize::from(open_retry),
        "tmp/ after {k} updates: {:?}",
        state.blobs.keys()
    );
    if open_retry {
        let b = &state.blobs[&blob(k - 1)];
        assert_eq!(
            b.len(),
            ((k - 1) * 97) % 20_000 + 100,
            "tmp/{} truncated",
            blob(k - 1)
        );
    }
    k
}

fn child(path: &Path) {
    let mut store = Store::new(store::open(path).unwrap());
    let mut state = store.load().unwrap();
    let start = applied(&state);
    let stdout = std::io::stdout();
    for n in start..UPDATES {
        let c = update(&mut state, n);
        store.commit(&state, &c).unwrap();
        let mut o = stdout.lock();
        writeln!(o, "PTT-ACK {n}").unwrap();
        o.flush().unwrap();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn crash_loop(path: &Path, image: bool) {
    let seed = std::env::var("PTT_LIST_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!(
        "crash test on {} (PTT_LIST_CRASH_SEED={seed})",
        if image { "an image" } else { "a directory" }
    );
    let mut rng = Rng(seed);
    let mut acked: Option<usize> = None;
    let mut prev_k = 0;
    let mut window: u64 = 40_000;
    let mut kills = 0;
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 2000, "no progress");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                all.push(line.clone());
                // libtest may print "test child_entry ... " in front.
                if let Some(i) = line.find("PTT-ACK ") {
                    let _ = tx.send(line[i + 8..].trim().parse::<usize>().unwrap());
                }
            }
            all
        });
        // Kill somewhere between "at once" and "after a few commits".
        // The window grows while kills land before the child commits
        // anything (a loaded machine starts processes slowly).
        let delay = Duration::from_micros(rng.next() % window);
        let started = Instant::now();
        let finished = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() >= delay {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        if finished.is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut acks_now = 0;
        for n in rx.try_iter() {
            assert!(acked.is_none_or(|a| n > a), "acks out of order");
            assert_eq!(
                n,
                prev_k + acks_now,
                "the child acknowledged an update it should not have made"
            );
            acked = Some(n);
            acks_now += 1;
        }
        // Opening replays a journal left by a kill in the middle of the
        // in-place writes; until then other FAT tools may see half of a
        // commit (as a journaling file system's own driver would have to
        // replay first). After it, the volume must be clean.
        let mut store = Store::new(store::open(path).unwrap());
        if image {
            let out = Command::new("fsck.fat")
                .args(["-n", path.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "fsck.fat after a kill and the replay on opening:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let state = store
            .load()
            .unwrap_or_else(|e| panic!("state fails to load after a kill: {e}"));
        let k = applied(&state);
        if let Some(a) = acked {
            assert!(k > a, "acknowledged update {a} lost ({k} applied)");
        }
        // At most the one update in flight when the kill came is there unacknowledged.
        assert!(
            k <= prev_k + acks_now + 1,
            "{k} applied, {prev_k} before this run, {acks_now} acknowledged in it; child said {lines:?}"
        );
        if k == prev_k {
            window = (window * 3 / 2).min(5_000_000);
        } else {
            window = 40_000;
        }
        prev_k = k;
        if finished.is_some() {
            assert!(status.success(), "the child failed on its own");
            assert_eq!(k, UPDATES);
            break;
        }
    }
    println!("{UPDATES} updates done through {kills} kills in {rounds} runs");
    assert!(
        kills >= 5,
        "too few kills landed ({kills}) to mean anything"
    );
}

fn setup(files: impl ptt_list::store::Files) {
    let mut store = Store::new(files);
    let mut state = State::default();
    let c = state
        .create_list(
            "crash",
            "example.org",
            &[1; 32],
            &[Address::parse("m@example.org").unwrap()],
            Policy::Open,
        )
        .unwrap();
    store.commit(&state, &c).unwrap();
}

/// Not a test on its own: the child's body when the parent re-runs this
/// binary with the environment variable set.
#[test]
fn child_entry() {
    if let Ok(p) = std::env::var(CHILD_ENV) {
        child(Path::new(&p));
    }
}

#[test]
fn crash_image() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("crash.img");
    setup(ImageFiles::create(&img, 40 << 20).unwrap());
    crash_loop(&img, true);
}

#[test]
fn crash_directory() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    setup(DirFiles::create(&root).unwrap());
    crash_loop(&root, false);
}
