//! The relay's queue on disk, `state/relay/queue/`: per message `ID.msg`
//! (the message as received) and `ID.toml` (the [`Entry`]: envelope and
//! per-recipient state). An entry exists once its `.toml` does: both files
//! are written to temporary names and fsynced, the message renamed into
//! place first, then the entry, then the folder fsynced, all before the
//! relay says `250`. Each change of state replaces the `.toml` the same way,
//! so a crash leaves the old version or the new one, never half of one.
//!
//! `control/` holds requests from `ptt queue` (`retry-ID`, `retry-all`,
//! `delete-ID`) for a running relay, which takes them within a second;
//! `.lock` is held (flock) by the running relay.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use ptt_queue::Entry;

/// A request from `ptt queue` to the running relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Try this entry (or all) now.
    Retry(Option<String>),
    /// Drop this entry.
    Delete(String),
}

impl Request {
    fn file_name(&self) -> String {
        match self {
            Request::Retry(None) => "retry-all".into(),
            Request::Retry(Some(id)) => format!("retry-{id}"),
            Request::Delete(id) => format!("delete-{id}"),
        }
    }

    fn parse(name: &str) -> Option<Request> {
        if name == "retry-all" {
            return Some(Request::Retry(None));
        }
        if let Some(id) = name.strip_prefix("retry-") {
            return is_id(id).then(|| Request::Retry(Some(id.to_string())));
        }
        let id = name.strip_prefix("delete-")?;
        is_id(id).then(|| Request::Delete(id.to_string()))
    }
}

/// Queue ids are what [`crate::store::spool::new_id`] makes: hex digits.
pub(crate) fn is_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The queue folder.
#[derive(Debug, Clone)]
pub(crate) struct QueueDir {
    dir: PathBuf,
}

impl QueueDir {
    /// Opens (creating) `dir`.
    pub(crate) fn open(dir: &Path) -> std::io::Result<QueueDir> {
        std::fs::create_dir_all(dir.join("control"))?;
        Ok(QueueDir {
            dir: dir.to_path_buf(),
        })
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    fn msg(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.msg"))
    }

    fn toml(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.toml"))
    }

    fn write_temp(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(tmp)
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    /// Stores new entries with their messages, durably (one folder fsync
    /// for all of them). On error nothing counts: the entries written are
    /// removed again.
    pub(crate) fn put(&self, entries: &[(&Entry, &[u8])]) -> std::io::Result<()> {
        let result = (|| {
            let mut temps = Vec::new();
            for (entry, message) in entries {
                let text = toml::to_string(entry).map_err(std::io::Error::other)?;
                temps.push((
                    self.write_temp(&format!("{}.msg", entry.id), message)?,
                    self.msg(&entry.id),
                ));
                temps.push((
                    self.write_temp(&format!("{}.toml", entry.id), text.as_bytes())?,
                    self.toml(&entry.id),
                ));
            }
            for (tmp, path) in &temps {
                std::fs::rename(tmp, path)?;
            }
            self.sync_dir()
        })();
        if result.is_err() {
            for (entry, _) in entries {
                let _ = std::fs::remove_file(self.toml(&entry.id));
                let _ = std::fs::remove_file(self.msg(&entry.id));
                let _ = std::fs::remove_file(self.dir.join(format!(".{}.msg.tmp", entry.id)));
                let _ = std::fs::remove_file(self.dir.join(format!(".{}.toml.tmp", entry.id)));
            }
        }
        result
    }

    /// Replaces an entry's state, durably.
    pub(crate) fn save(&self, entry: &Entry) -> std::io::Result<()> {
        self.apply(std::slice::from_ref(entry), &[])
    }

    /// Replaces the states of `saves` and deletes `removes` (each state
    /// before its message: without it the message is void), with one folder
    /// fsync for all.
    pub(crate) fn apply(&self, saves: &[Entry], removes: &[String]) -> std::io::Result<()> {
        let mut temps = Vec::new();
        for entry in saves {
            let text = toml::to_string(entry).map_err(std::io::Error::other)?;
            temps.push((
                self.write_temp(&format!("{}.toml", entry.id), text.as_bytes())?,
                self.toml(&entry.id),
            ));
        }
        for (tmp, path) in temps {
            std::fs::rename(tmp, path)?;
        }
        for id in removes {
            match std::fs::remove_file(self.toml(id)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let _ = std::fs::remove_file(self.msg(id));
        }
        self.sync_dir()
    }

    /// The message of an entry.
    pub(crate) fn message(&self, id: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.msg(id))
    }

    /// Reads one entry.
    pub(crate) fn entry(&self, id: &str) -> Result<Entry, String> {
        let path = self.toml(id);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
    }

    /// Every entry, oldest first; an unreadable one is renamed `ID.broken`
    /// (kept for a human, never tried) and reported.
    pub(crate) fn load_all(&self) -> std::io::Result<(Vec<Entry>, Vec<String>)> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".toml")
                    .filter(|id| is_id(id))
                    .map(str::to_string)
            })
            .collect();
        ids.sort();
        let (mut entries, mut broken) = (Vec::new(), Vec::new());
        for id in ids {
            match self.entry(&id) {
                Ok(entry) if entry.id == id && self.msg(&id).is_file() => entries.push(entry),
                Ok(_) => {
                    broken.push(format!(
                        "{id}: its message file is missing or its id differs"
                    ));
                    let _ = std::fs::rename(self.toml(&id), self.dir.join(format!("{id}.broken")));
                }
                Err(e) => {
                    broken.push(e);
                    let _ = std::fs::rename(self.toml(&id), self.dir.join(format!("{id}.broken")));
                }
            }
        }
        // Messages whose entry was never written (a crash before the
        // rename): nobody was told 250 for them.
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stray = name.starts_with('.') && name.ends_with(".tmp");
            let orphan = name.strip_suffix(".msg").is_some_and(|id| {
                !self.toml(id).exists() && !self.dir.join(format!("{id}.broken")).exists()
            });
            if stray || orphan {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok((entries, broken))
    }

    /// Deletes an entry (the state first: without it the message is void).
    pub(crate) fn remove(&self, id: &str) -> std::io::Result<()> {
        self.apply(&[], &[id.to_string()])
    }

    /// Takes the relay's lock: `Ok(None)` when another process holds it.
    pub(crate) fn lock(&self) -> std::io::Result<Option<File>> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))?;
        // SAFETY: flock on a file descriptor this function owns.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            Ok(Some(file))
        } else {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }

    /// Leaves a request for the running relay.
    pub(crate) fn request(&self, request: &Request) -> std::io::Result<PathBuf> {
        let path = self.dir.join("control").join(request.file_name());
        File::create(&path)?;
        Ok(path)
    }

    /// Takes the requests waiting.
    pub(crate) fn take_requests(&self) -> Vec<Request> {
        let Ok(dir) = std::fs::read_dir(self.dir.join("control")) else {
            return Vec::new();
        };
        let mut requests = Vec::new();
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(r) = Request::parse(&name) {
                requests.push(r);
            }
            let _ = std::fs::remove_file(e.path());
        }
        requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_and_broken_ones_are_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let q = QueueDir::open(dir.path()).unwrap();
        let a = Entry::new("0a", "x@example.org", &["y@example.net"], 5);
        let b = Entry::new("0b", "", &["z@example.net"], 6);
        q.put(&[(&a, b"A"), (&b, b"B")]).unwrap();
        std::fs::write(dir.path().join("0c.toml"), "garbage =").unwrap();
        std::fs::write(dir.path().join("0c.msg"), "C").unwrap();
        std::fs::write(dir.path().join("0d.msg"), "orphan").unwrap();
        std::fs::write(dir.path().join(".0e.msg.tmp"), "half").unwrap();
        let (entries, broken) = q.load_all().unwrap();
        assert_eq!(entries, vec![a.clone(), b]);
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(dir.path().join("0c.broken").exists());
        assert!(dir.path().join("0c.msg").exists(), "kept for a human");
        assert!(!dir.path().join("0d.msg").exists());
        assert!(!dir.path().join(".0e.msg.tmp").exists());
        assert_eq!(q.message("0a").unwrap(), b"A");
        let mut a2 = a.clone();
        a2.attempts = 3;
        q.save(&a2).unwrap();
        assert_eq!(q.entry("0a").unwrap().attempts, 3);
        q.remove("0a").unwrap();
        assert_eq!(q.load_all().unwrap().0.len(), 1);
        let mut b2 = q.entry("0b").unwrap();
        b2.attempts = 7;
        let c = Entry::new("0f", "", &["w@example.net"], 8);
        q.put(&[(&c, b"F")]).unwrap();
        q.apply(&[b2], &["0f".to_string(), "0nothere".to_string()])
            .unwrap();
        let (left, _) = q.load_all().unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].attempts, 7);
        assert!(!dir.path().join("0f.msg").exists());
    }

    #[test]
    fn requests_and_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let q = QueueDir::open(dir.path()).unwrap();
        q.request(&Request::Retry(None)).unwrap();
        q.request(&Request::Delete("0a".into())).unwrap();
        std::fs::write(dir.path().join("control/delete-../x"), "").ok();
        let mut got = q.take_requests();
        got.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(
            got,
            vec![Request::Delete("0a".into()), Request::Retry(None)]
        );
        assert!(q.take_requests().is_empty());
        let held = q.lock().unwrap();
        assert!(held.is_some());
        assert!(q.lock().unwrap().is_none(), "flock is per open file");
    }
}
