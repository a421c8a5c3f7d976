//! A Maildir-style folder where each accepted message is one file: written
//! under `tmp/`, fsynced, renamed into `new/`, and the folder fsynced, so
//! that a `250` is only sent for a message that is on disk.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Deliveries made by this process, across every [`Maildir`] value: two
/// values for the same folder (the receiver opens one per delivery) must
/// never make the same name in the same microsecond.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// One folder with `tmp/`, `new/` and `cur/`.
#[derive(Debug)]
pub(crate) struct Maildir {
    root: PathBuf,
}

impl Maildir {
    /// Opens `root`, creating it and its subfolders if needed. Folders it
    /// creates are made durable (each parent fsynced), so that the first
    /// message of a new mailbox does not vanish with its folder.
    pub(crate) fn create(root: &Path) -> std::io::Result<Maildir> {
        for sub in ["tmp", "new", "cur"] {
            let dir = root.join(sub);
            if dir.is_dir() {
                continue;
            }
            let mut missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
            std::fs::create_dir_all(&dir)?;
            missing.reverse();
            for created in missing {
                if let Some(parent) = created.parent() {
                    File::open(parent)?.sync_all()?;
                }
            }
        }
        Ok(Maildir {
            root: root.to_path_buf(),
        })
    }

    /// A name no other delivery of this process or another one uses; names
    /// sort in arrival order (seconds, then zero-padded microseconds).
    pub(crate) fn unique_name(&self) -> String {
        let n = DELIVERIES.fetch_add(1, Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}.M{:06}P{}Q{n}.ptt",
            t.as_secs(),
            t.subsec_micros(),
            std::process::id()
        )
    }

    /// Where the message `name` is written before it is published.
    pub(crate) fn tmp_path(&self, name: &str) -> PathBuf {
        self.root.join("tmp").join(name)
    }

    /// Publishes the message written to [`tmp_path`](Self::tmp_path)`(name)`
    /// as `file`: fsyncs it, links it into `new/` (which fails rather than
    /// replace a message already there), removes the temporary name and
    /// fsyncs the folder; without `fsync`, the same minus both fsyncs
    /// (benchmarks only). Blocking.
    pub(crate) fn publish(&self, name: &str, file: File, fsync: bool) -> std::io::Result<()> {
        if fsync {
            file.sync_all()?;
        }
        drop(file);
        let new = self.root.join("new");
        std::fs::hard_link(self.tmp_path(name), new.join(name))?;
        std::fs::remove_file(self.tmp_path(name))?;
        if fsync {
            File::open(&new)?.sync_all()?;
        }
        Ok(())
    }

    /// Stores `parts` (concatenated) as one message durably; returns its name.
    /// Blocking: call it from `spawn_blocking` in async code.
    pub(crate) fn deliver(&self, parts: &[&[u8]]) -> std::io::Result<String> {
        let name = self.unique_name();
        let tmp = self.tmp_path(&name);
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            for part in parts {
                file.write_all(part)?;
            }
            self.publish(&name, file, true)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_messages_land_in_new_with_unique_names() {
        let dir = tempfile::tempdir().unwrap();
        let md = Maildir::create(dir.path()).unwrap();
        let a = md.deliver(&[b"A: 1\r\n", b"\r\nbody\r\n"]).unwrap();
        let b = md.deliver(&[b"B: 2\r\n\r\n"]).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            std::fs::read(dir.path().join("new").join(&a)).unwrap(),
            b"A: 1\r\n\r\nbody\r\n"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn many_values_for_one_folder_never_overwrite_each_other() {
        // The receiver opens a Maildir value per delivery; a lost message
        // in a SIGTERM test came from two of them naming a file alike.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let root = root.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let md = Maildir::create(&root).unwrap();
                        md.deliver(&[format!("{t}-{i}").as_bytes()]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(std::fs::read_dir(root.join("new")).unwrap().count(), 800);
    }
}
