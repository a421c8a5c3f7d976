//! The list state as the server uses it: the FAT32 image or directory of
//! `[lists] state`, shared with the `ptt create/add/subscribe/…` verbs.
//!
//! Every change is made under the state's lock ([`ptt_list::store::lock`],
//! which the verbs take too) on a state read again under that lock, and
//! committed before the lock is released: neither side can overwrite the
//! other's update with an older copy. Reads that only answer a question
//! (is this a list address? when is the next retry due?) use the state
//! read at the last change, read again when the files moved since or
//! after [`FRESH`] (file times are coarse: a write in the same tick as
//! ours may not move them).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use ptt_list::store::{self, Store, StoreError};
use ptt_list::{Changes, State};

/// How long a read state answers questions without looking again.
pub(crate) const FRESH: Duration = Duration::from_secs(2);

/// The state of `[lists] state`.
pub(crate) struct ListState {
    path: PathBuf,
    /// The domain the server answers for.
    domain: String,
    /// `List-Unsubscribe`'s HTTPS URL for every list of `domain`, when the
    /// server serves (or names) one.
    one_click_url: Option<String>,
    /// The state as last read or written, with the files' stamp and the
    /// time then.
    cached: Mutex<Option<(Stamp, Instant, State)>>,
}

/// What says the files changed: the modification times of the image, or
/// of the directory and its subdirectories, with the sizes of the files
/// the verbs rewrite.
type Stamp = Vec<(Option<SystemTime>, u64)>;

fn stamp(path: &Path) -> Stamp {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| (m.modified().ok(), m.len()))
            .unwrap_or((None, 0))
    };
    if path.is_dir() {
        ["", "lists", "tmp", "bounces.json", "temp.json"]
            .iter()
            .map(|sub| of(&path.join(sub)))
            .collect()
    } else {
        vec![of(path)]
    }
}

impl ListState {
    /// The state at `path` (it must exist: `ptt create` makes it).
    pub(crate) fn open(
        path: &Path,
        domain: &str,
        one_click_url: Option<String>,
    ) -> Result<ListState, String> {
        let state = ListState {
            path: path.to_path_buf(),
            domain: domain.to_ascii_lowercase(),
            one_click_url,
            cached: Mutex::new(None),
        };
        state
            .read(|s| s.lists.len())
            .map_err(|e| format!("{e} (make it with `ptt create {}`)", path.display()))?;
        Ok(state)
    }

    /// Loads the state (the caller holds the lock), with this server's
    /// one-click URL on its lists.
    fn load(&self) -> Result<State, StoreError> {
        let mut state = Store::new(store::open(&self.path)?).load()?;
        if let Some(url) = &self.one_click_url {
            for list in state.lists.values_mut() {
                if list.domain.eq_ignore_ascii_case(&self.domain) {
                    list.settings.one_click_url = Some(url.clone());
                }
            }
        }
        Ok(state)
    }

    /// Answers `f` from the state, read again if the files changed since
    /// the last read.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, StoreError> {
        let now = stamp(&self.path);
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, at, state)) = cached.as_ref()
            && *s == now
            && at.elapsed() < FRESH
        {
            return Ok(f(state));
        }
        let lock = store::lock(&self.path)?;
        let state = self.load()?;
        let stamp_then = stamp(&self.path);
        drop(lock);
        let answer = f(&state);
        *cached = Some((stamp_then, Instant::now(), state));
        Ok(answer)
    }

    /// Runs `f` on the state read under the lock, and commits the changes
    /// it returns before the lock is released. Returns what `f` gave.
    pub(crate) fn change<T>(
        &self,
        f: impl FnOnce(&mut State) -> (T, Changes),
    ) -> Result<T, StoreError> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let lock = store::lock(&self.path)?;
        let mut state = self.load()?;
        let (answer, changes) = f(&mut state);
        Store::new(store::open(&self.path)?).commit(&state, &changes)?;
        let stamp_then = stamp(&self.path);
        drop(lock);
        *cached = Some((stamp_then, Instant::now(), state));
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ptt_list::{Address, Policy};

    fn made() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lists");
        std::fs::create_dir(&path).unwrap();
        store::DirFiles::create(&path).unwrap();
        (dir, path)
    }

    #[test]
    fn a_change_by_another_writer_is_seen_and_kept() {
        let (_dir, path) = made();
        let state = ListState::open(&path, "lists.test", None).unwrap();
        state
            .change(|s| {
                let c = s
                    .create_list(
                        "dev",
                        "lists.test",
                        &[1; 32],
                        &[Address::parse("mod@lists.test").unwrap()],
                        Policy::Subscribers,
                    )
                    .unwrap();
                ((), c)
            })
            .unwrap();
        assert!(state.read(|s| s.accepts("dev@lists.test")).unwrap());
        // Another writer (a `ptt subscribe`) under the lock.
        {
            let _lock = store::lock(&path).unwrap();
            let mut other = Store::new(store::open(&path).unwrap());
            let mut s = other.load().unwrap();
            let a = Address::parse("ann@example.net").unwrap();
            let (_, c) = s.set_subscribed("dev", None, &[a], true).unwrap();
            other.commit(&s, &c).unwrap();
        }
        // The server's next change starts from the other writer's state.
        state
            .change(|s| {
                let b = Address::parse("bob@example.net").unwrap();
                let (_, c) = s.set_subscribed("dev", None, &[b], true).unwrap();
                ((), c)
            })
            .unwrap();
        let mut check = Store::new(store::open(&path).unwrap());
        let subscribers: Vec<String> = check.load().unwrap().lists["dev"]
            .subscribers
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(subscribers, ["ann@example.net", "bob@example.net"]);
    }

    #[test]
    fn the_configured_one_click_url_goes_on_the_lists_of_the_domain() {
        let (_dir, path) = made();
        let url = "https://mx.lists.test:8443/lists/unsubscribe".to_string();
        let state = ListState::open(&path, "lists.test", Some(url.clone())).unwrap();
        state
            .change(|s| {
                let m = [Address::parse("mod@lists.test").unwrap()];
                let mut c = s
                    .create_list("dev", "lists.test", &[1; 32], &m, Policy::Open)
                    .unwrap();
                c.merge(
                    s.create_list("other", "elsewhere.test", &[2; 32], &m, Policy::Open)
                        .unwrap(),
                );
                ((), c)
            })
            .unwrap();
        let urls = state
            .change(|s| {
                let urls: Vec<Option<String>> = ["dev", "other"]
                    .iter()
                    .map(|n| s.lists[*n].settings.one_click_url.clone())
                    .collect();
                (urls, Changes::default())
            })
            .unwrap();
        assert_eq!(urls[0].as_deref(), Some(url.as_str()));
        assert_eq!(
            urls[1].as_deref(),
            Some("https://elsewhere.test/lists/unsubscribe")
        );
    }
}
