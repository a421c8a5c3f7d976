//! The relay's queue on disk, `state/relay/queue/`: per message `ID.msg`
//! (the message as received) and `ID.toml` (the [`Entry`]: envelope and
//! per-recipient state). An entry exists once its `.toml` does: both files
//! are written to temporary names and fsynced, the message renamed into
//! place first, then the entry, then the folder fsynced, all before the
//! relay says `250`. Each change of state replaces the `.toml` the same way,
//! so a crash leaves the old version or the new one, never half of one.
//!
//! The running relay keeps the files of delivered entries for reuse
//! ([`QueueDir::recycling`]): a removed entry's two files are renamed to
//! `.ID.toml.spare` and `.ID.msg.spare` (the state first, so the entry is
//! void at once) and later written over for a new entry in place of a new
//! temporary file (then cut to the new length). A file system without a
//! journal (ext4 made without one, as on the load machine) scans past
//! every inode freed in the last minutes for each inode it allocates; with
//! a file created and one deleted per message, that scan was most of the
//! relay's CPU time under load. Writing over the old bytes instead of
//! emptying the file first also spares freeing and allocating its blocks
//! (about 10% more messages per second in the load run). So a spare keeps the
//! bytes of the entry it held until it is written again, in the relay's
//! own folder, at most [`SPARE_KEPT_BYTES`] of them: a larger file is
//! emptied when set aside; the files of an entry deleted on purpose
//! ([`QueueDir::remove`], `ptt queue delete`) are deleted, not kept. A
//! spare is written over only after the folder fsync that made its rename
//! durable (else a crash of the machine could bring the old name back on
//! new content). Spares are void: a crash leaves them for the next start,
//! which fsyncs the folder, empties them and takes them up again.
//!
//! `control/` holds requests from `ptt queue` (`retry-ID`, `retry-all`,
//! `delete-ID`) for a running relay, which takes them within a second;
//! `.lock` is held (flock) by the running relay.

use std::fs::File;
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

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

/// Deletes `path`; one that is not there is no error.
fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The name a removed entry's file is kept under for reuse.
const SPARE_SUFFIX: &str = ".spare";

/// A spare larger than this is emptied when set aside (spares hold
/// 64 MiB at most with the relay's 1,024).
const SPARE_KEPT_BYTES: u64 = 64 * 1024;

/// Files of removed entries, to be written over for new ones.
#[derive(Debug, Default)]
struct Spares {
    paths: Mutex<Vec<PathBuf>>,
    /// How many are kept at most; 0: files are deleted, never reused.
    keep: usize,
}

impl Spares {
    fn take(&self) -> Option<PathBuf> {
        self.paths.lock().ok()?.pop()
    }

    fn have_room(&self) -> bool {
        self.paths.lock().is_ok_and(|p| p.len() < self.keep)
    }

    /// Keeps `path` when there is room; gives it back when there is none
    /// (to be deleted).
    fn give(&self, path: PathBuf) -> Result<(), PathBuf> {
        match self.paths.lock() {
            Ok(mut paths) if paths.len() < self.keep => {
                paths.push(path);
                Ok(())
            }
            _ => Err(path),
        }
    }
}

/// The queue folder.
#[derive(Debug, Clone)]
pub(crate) struct QueueDir {
    dir: PathBuf,
    /// The folder itself, fsynced for several writers at once.
    sync: Arc<FolderSync>,
    spares: Arc<Spares>,
}

/// The folder's fsync, shared (group commit): a writer whose renames are
/// done asks for an fsync begun after them; writers asking while one runs
/// are all served by the next, so that concurrent sessions pay for one
/// folder fsync instead of one each.
#[derive(Debug)]
struct FolderSync {
    folder: File,
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Requests so far; request `n` is served by an fsync begun after it.
    asked: u64,
    /// Every request up to this one is served.
    served: u64,
    /// The requests served by fsyncs that failed (`after < n <= upto`),
    /// the latest [`FAILURES_KEPT`]: a waiter reads its own fsync's result
    /// even when a later one ended before it woke.
    failed: Vec<(u64, u64)>,
    running: bool,
}

/// Failed folder fsyncs remembered (each waiter reads its result as soon
/// as it wakes; a folder whose fsyncs fail is a disk in trouble).
const FAILURES_KEPT: usize = 64;

impl FolderSync {
    fn new(folder: File) -> FolderSync {
        FolderSync {
            folder,
            state: Mutex::default(),
            done: Condvar::new(),
        }
    }

    /// Returns once an fsync of the folder begun after this call has
    /// ended (run by this caller or by another one).
    fn sync(&self) -> std::io::Result<()> {
        let poisoned = || std::io::Error::other("the queue folder's fsync state is poisoned");
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        state.asked += 1;
        let mine = state.asked;
        loop {
            if state.served >= mine {
                let failed = state
                    .failed
                    .iter()
                    .any(|&(after, upto)| after < mine && mine <= upto);
                return if failed {
                    Err(std::io::Error::other("fsync of the queue folder failed"))
                } else {
                    Ok(())
                };
            }
            if state.running {
                state = self.done.wait(state).map_err(|_| poisoned())?;
                continue;
            }
            // Every request made so far is served by this fsync.
            state.running = true;
            let (after, covers) = (state.served, state.asked);
            drop(state);
            let result = self.folder.sync_all();
            state = self.state.lock().map_err(|_| poisoned())?;
            state.running = false;
            state.served = covers;
            if result.is_err() {
                if state.failed.len() == FAILURES_KEPT {
                    state.failed.remove(0);
                }
                state.failed.push((after, covers));
            }
            self.done.notify_all();
            result?;
        }
    }
}

impl QueueDir {
    /// Opens (creating) `dir`.
    pub(crate) fn open(dir: &Path) -> std::io::Result<QueueDir> {
        std::fs::create_dir_all(dir.join("control"))?;
        Ok(QueueDir {
            dir: dir.to_path_buf(),
            sync: Arc::new(FolderSync::new(File::open(dir)?)),
            spares: Arc::default(),
        })
    }

    /// Keeps up to `keep` files of removed entries for reuse (see the
    /// module's text). Only for the process holding the [`lock`]: another
    /// one could take a spare the holder is writing.
    ///
    /// [`lock`]: QueueDir::lock
    pub(crate) fn recycling(self, keep: usize) -> QueueDir {
        QueueDir {
            dir: self.dir,
            sync: self.sync,
            spares: Arc::new(Spares {
                paths: Mutex::default(),
                keep,
            }),
        }
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

    /// Writes `bytes` over a spare file, or else to a new temporary one
    /// named after `name`, and fsyncs it: the path written, to be renamed
    /// into place.
    fn write_temp(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        let (tmp, mut file, old_len) = match self.take_spare() {
            Some(reused) => reused,
            None => {
                let tmp = self.dir.join(format!(".{name}.tmp"));
                let file = File::create(&tmp)?;
                (tmp, file, 0)
            }
        };
        let len = bytes.len() as u64;
        let written = file
            .write_all(bytes)
            // Written over a longer one: its tail cut off.
            .and_then(|()| {
                if old_len > len {
                    file.set_len(len)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    /// A spare opened for writing over, with its length.
    fn take_spare(&self) -> Option<(PathBuf, File, u64)> {
        let spare = self.spares.take()?;
        let opened = File::options()
            .write(true)
            .open(&spare)
            .and_then(|file| Ok((file.metadata()?.len(), file)));
        match opened {
            Ok((len, file)) => Some((spare, file, len)),
            // Gone (deleted by hand), or unusable: forgotten, and deleted
            // if still there.
            Err(_) => {
                let _ = std::fs::remove_file(&spare);
                None
            }
        }
    }

    /// Removes a file of a delivered entry: renamed to a spare when the
    /// spares have room (the rename is the removal; larger than
    /// [`SPARE_KEPT_BYTES`], it is emptied), deleted otherwise. The spare
    /// returned may be written over only once the folder is fsynced: until
    /// then a crash of the machine can bring its old name back, on new
    /// content.
    fn discard(&self, path: &Path) -> std::io::Result<Option<PathBuf>> {
        if !self.spares.have_room() {
            return remove_if_present(path).map(|()| None);
        }
        let spare = self.spare_path(path);
        match std::fs::rename(path, &spare) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let small = std::fs::metadata(&spare).is_ok_and(|m| m.len() <= SPARE_KEPT_BYTES);
        if small
            || File::options()
                .write(true)
                .truncate(true)
                .open(&spare)
                .is_ok()
        {
            Ok(Some(spare))
        } else {
            let _ = std::fs::remove_file(&spare);
            Ok(None)
        }
    }

    /// Hands spares set aside over for reuse, once the folder fsync made
    /// their renames durable; those with no room are deleted.
    fn give_spares(&self, spares: Vec<PathBuf>) {
        for spare in spares {
            if let Err(spare) = self.spares.give(spare) {
                let _ = std::fs::remove_file(spare);
            }
        }
    }

    /// `.NAME.spare` for `NAME` in the folder.
    fn spare_path(&self, path: &Path) -> PathBuf {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        self.dir.join(format!(".{name}{SPARE_SUFFIX}"))
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        self.sync.sync()
    }

    /// Stores new entries with their messages, durably (one folder fsync
    /// for all of them). On error nothing counts: the entries written are
    /// removed again.
    pub(crate) fn put(&self, entries: &[(&Entry, &[u8])]) -> std::io::Result<()> {
        let mut temps = Vec::new();
        let result = (|| {
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
            }
            // The files written and not yet renamed (temporary or spare).
            for (tmp, _) in &temps {
                let _ = std::fs::remove_file(tmp);
            }
        }
        result
    }

    /// Replaces an entry's state, durably.
    pub(crate) fn save(&self, entry: &Entry) -> std::io::Result<()> {
        self.apply(std::slice::from_ref(entry), &[])
    }

    /// Replaces the states of `saves` and deletes `removes`, delivered or
    /// given up (each state before its message: without it the message is
    /// void), with one folder fsync for all. Their files become spares.
    pub(crate) fn apply(&self, saves: &[Entry], removes: &[String]) -> std::io::Result<()> {
        let mut temps = Vec::new();
        for entry in saves {
            let text = toml::to_string(entry).map_err(std::io::Error::other)?;
            temps.push((
                self.write_temp(&format!("{}.toml", entry.id), text.as_bytes())?,
                self.toml(&entry.id),
            ));
        }
        for (i, (tmp, path)) in temps.iter().enumerate() {
            if let Err(e) = std::fs::rename(tmp, path) {
                // The states not renamed are left as they were.
                for (tmp, _) in &temps[i..] {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
        let mut spares = Vec::new();
        for id in removes {
            spares.extend(self.discard(&self.toml(id))?);
            if let Ok(spare) = self.discard(&self.msg(id)) {
                spares.extend(spare);
            }
        }
        self.sync_dir()?;
        self.give_spares(spares);
        Ok(())
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
        // rename): nobody was told 250 for them. Spares left by an earlier
        // run are taken up again (emptied) or deleted, after a folder
        // fsync: their renames may not be durable yet.
        let mut spares = Vec::new();
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.ends_with(SPARE_SUFFIX) {
                spares.push(e.path());
                continue;
            }
            let stray = name.starts_with('.') && name.ends_with(".tmp");
            let orphan = name.strip_suffix(".msg").is_some_and(|id| {
                !self.toml(id).exists() && !self.dir.join(format!("{id}.broken")).exists()
            });
            if stray || orphan {
                let _ = std::fs::remove_file(e.path());
            }
        }
        if !spares.is_empty() {
            self.sync_dir()?;
            for path in spares {
                // Emptied and kept, or deleted.
                let refused = match File::options().write(true).truncate(true).open(&path) {
                    Ok(_) => self.spares.give(path).err(),
                    Err(_) => Some(path),
                };
                if let Some(path) = refused {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        Ok((entries, broken))
    }

    /// Deletes an entry on purpose (`ptt queue delete`; the state first:
    /// without it the message is void). Its files are deleted, not kept as
    /// spares: nothing of it stays, and an attempt still reading its
    /// message reads it whole.
    pub(crate) fn remove(&self, id: &str) -> std::io::Result<()> {
        remove_if_present(&self.toml(id))?;
        remove_if_present(&self.msg(id))?;
        self.sync_dir()
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

    /// The spares of a directory, sorted.
    fn spares(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(SPARE_SUFFIX))
            .collect();
        names.sort();
        names
    }

    /// The length of each spare, by name.
    fn spare_lengths(dir: &Path) -> Vec<(String, u64)> {
        spares(dir)
            .into_iter()
            .map(|n| {
                let len = std::fs::metadata(dir.join(&n)).unwrap().len();
                (n, len)
            })
            .collect()
    }

    #[test]
    fn removed_entries_files_are_written_again_for_new_ones() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let q = QueueDir::open(dir.path()).unwrap().recycling(4);
        let a = Entry::new("0a", "x@example.org", &["y@example.net"], 5);
        let long = b"a long message, longer than the next one";
        q.put(&[(&a, long)]).unwrap();
        let inodes = |id: &str| {
            let ino = |p: PathBuf| std::fs::metadata(p).unwrap().ino();
            let mut both = [ino(q.msg(id)), ino(q.toml(id))];
            both.sort();
            both
        };
        let old = inodes("0a");
        // Delivered: set aside with its bytes, to be written over.
        q.apply(&[], &["0a".to_string()]).unwrap();
        assert!(!q.toml("0a").exists() && !q.msg("0a").exists());
        let lengths = spare_lengths(dir.path());
        assert_eq!(lengths[0], (".0a.msg.spare".to_string(), long.len() as u64));
        assert_eq!(lengths[1].0, ".0a.toml.spare");
        assert_eq!(q.load_all().unwrap().0, vec![], "a spare is no entry");

        let b = Entry::new("0b", "", &["z@example.net"], 6);
        q.put(&[(&b, b"short")]).unwrap();
        assert!(spares(dir.path()).is_empty(), "both taken");
        assert_eq!(inodes("0b"), old, "the same two files, written again");
        assert_eq!(q.message("0b").unwrap(), b"short", "the old tail cut off");
        assert_eq!(q.entry("0b").unwrap(), b);

        // Deleted on purpose: deleted, not kept as spares.
        q.remove("0b").unwrap();
        assert!(!q.toml("0b").exists() && !q.msg("0b").exists());
        assert!(spares(dir.path()).is_empty());

        // A large message is emptied when set aside.
        let c = Entry::new("0c", "", &["z@example.net"], 6);
        let large = vec![b'x'; SPARE_KEPT_BYTES as usize + 1];
        q.put(&[(&c, &large)]).unwrap();
        q.apply(&[], &["0c".to_string()]).unwrap();
        let lengths = spare_lengths(dir.path());
        assert_eq!(lengths[0], (".0c.msg.spare".to_string(), 0), "emptied");
        assert_eq!(lengths[1].0, ".0c.toml.spare");
        assert!(lengths[1].1 > 0, "a small one kept: {lengths:?}");

        // Past `keep`, files are deleted.
        let many: Vec<Entry> = (0..4)
            .map(|i| Entry::new(&format!("1{i}"), "", &["w@example.net"], 7))
            .collect();
        let pairs: Vec<(&Entry, &[u8])> = many.iter().map(|e| (e, &b"m"[..])).collect();
        q.put(&pairs).unwrap();
        let ids: Vec<String> = many.iter().map(|e| e.id.clone()).collect();
        q.apply(&[], &ids).unwrap();
        assert_eq!(spares(dir.path()).len(), 4);
        assert_eq!(q.load_all().unwrap().0, vec![]);
    }

    #[test]
    fn spares_left_by_a_crash_are_emptied_and_taken_up() {
        let dir = tempfile::tempdir().unwrap();
        // A spare written for an entry that was never renamed into place,
        // and one set aside but not emptied.
        std::fs::write(dir.path().join(".0a.msg.spare"), "half a message").unwrap();
        std::fs::write(dir.path().join(".0b.toml.spare"), "id = \"0b\"").unwrap();
        let q = QueueDir::open(dir.path()).unwrap().recycling(8);
        let (entries, broken) = q.load_all().unwrap();
        assert!(entries.is_empty() && broken.is_empty());
        assert_eq!(spares(dir.path()).len(), 2);
        for name in spares(dir.path()) {
            let len = std::fs::metadata(dir.path().join(name)).unwrap().len();
            assert_eq!(len, 0);
        }
        let c = Entry::new("0c", "", &["w@example.net"], 8);
        q.put(&[(&c, b"C")]).unwrap();
        assert!(spares(dir.path()).is_empty());
        assert_eq!(q.load_all().unwrap().0, vec![c]);
        assert_eq!(q.message("0c").unwrap(), b"C");

        // Without recycling (`ptt queue` while no relay runs), spares are
        // deleted.
        std::fs::write(dir.path().join(".0d.msg.spare"), "x").unwrap();
        let plain = QueueDir::open(dir.path()).unwrap();
        plain.load_all().unwrap();
        assert!(spares(dir.path()).is_empty());
        plain.remove("0c").unwrap();
        assert!(spares(dir.path()).is_empty() && !plain.msg("0c").exists());
    }

    #[test]
    fn concurrent_folder_syncs_are_all_served() {
        let dir = tempfile::tempdir().unwrap();
        let sync = Arc::new(FolderSync::new(File::open(dir.path()).unwrap()));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let sync = sync.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        sync.sync().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let state = sync.state.lock().unwrap();
        assert_eq!(state.asked, 320);
        assert_eq!(state.served, 320, "every request served");
        assert!(state.failed.is_empty());
        assert!(!state.running);
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
