//! The directory backend.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Files, Op, StoreError, initial_ops};

const JOURNAL: &str = "journal";

fn encode_journal(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        let (kind, path, data): (u8, &str, &[u8]) = match op {
            Op::Put(p, d) => (b'P', p, d),
            Op::Remove(p) => (b'R', p, &[]),
        };
        out.push(kind);
        out.extend_from_slice(&(path.len() as u64).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&(data.len() as u64).to_le_bytes());
        out.extend_from_slice(data);
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

fn decode_journal(data: &[u8]) -> Option<Vec<Op>> {
    let split = data.len().checked_sub(32)?;
    let (body, sum) = data.split_at(split);
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    let mut ops = Vec::new();
    let mut rest = body;
    let take = |rest: &mut &[u8], n: usize| -> Option<Vec<u8>> {
        if rest.len() < n {
            return None;
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Some(a.to_vec())
    };
    let len = |rest: &mut &[u8]| -> Option<usize> {
        let b = take(rest, 8)?;
        usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok()
    };
    while let Some((&kind, tail)) = rest.split_first() {
        rest = tail;
        let n = len(&mut rest)?;
        let path = String::from_utf8(take(&mut rest, n)?).ok()?;
        if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return None;
        }
        let n = len(&mut rest)?;
        let data = take(&mut rest, n)?;
        ops.push(match kind {
            b'P' => Op::Put(path, data),
            b'R' => Op::Remove(path),
            _ => return None,
        });
    }
    Some(ops)
}

/// The state in a plain directory. Each file is replaced atomically: the
/// new content goes to `.NAME.new` beside it, is flushed with `fsync`, and
/// renamed over the old file; then the directory is fsynced. A commit of
/// more than one file is made all-or-nothing by first writing every
/// change to `journal` (the same way, with a SHA-256 over it), applying
/// them, and removing `journal`; opening the directory replays a journal
/// left by a crash (replay is idempotent).
#[derive(Debug)]
pub struct DirFiles {
    root: PathBuf,
}

fn sync_dir(p: &Path) -> Result<(), StoreError> {
    fs::File::open(p)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(p.display().to_string(), e))
}

impl DirFiles {
    /// Makes a new state directory (it may exist but must be empty).
    pub fn create(root: &Path) -> Result<Self, StoreError> {
        let shown = root.display().to_string();
        if root.exists() {
            let empty = fs::read_dir(root)
                .map_err(|e| StoreError::io(&shown, e))?
                .next()
                .is_none();
            if !empty {
                return Err(StoreError::Exists(shown));
            }
        }
        for d in ["", "lists", "tmp"] {
            fs::create_dir_all(root.join(d)).map_err(|e| StoreError::io(&shown, e))?;
        }
        let mut files = DirFiles {
            root: root.to_path_buf(),
        };
        files.apply(&initial_ops())?;
        sync_dir(root)?;
        Ok(files)
    }

    /// Opens a state directory: it must have `lists/`; a missing `tmp/` is
    /// made.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let shown = root.display().to_string();
        if !root.join("lists").is_dir() {
            return Err(StoreError::NotAnImage {
                path: shown,
                why: "a directory without lists/".into(),
            });
        }
        fs::create_dir_all(root.join("tmp")).map_err(|e| StoreError::io(&shown, e))?;
        let files = DirFiles {
            root: root.to_path_buf(),
        };
        files.replay()?;
        Ok(files)
    }

    fn replay(&self) -> Result<(), StoreError> {
        let p = self.path(JOURNAL);
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io(p.display().to_string(), e)),
        };
        // Written by rename, so complete; the hash guards against anything else.
        let ops = decode_journal(&data).ok_or_else(|| StoreError::Corrupt {
            file: JOURNAL.into(),
            why: "journal does not verify".into(),
        })?;
        self.apply_each(&ops)?;
        self.remove(JOURNAL)
    }

    fn remove(&self, rel: &str) -> Result<(), StoreError> {
        let p = self.path(rel);
        match fs::remove_file(&p) {
            Ok(()) => sync_dir(p.parent().unwrap_or(&self.root)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(rel, e)),
        }
    }

    fn apply_each(&self, ops: &[Op]) -> Result<(), StoreError> {
        for op in ops {
            match op {
                Op::Put(rel, data) => self.put(rel, data)?,
                Op::Remove(rel) => self.remove(rel)?,
            }
        }
        Ok(())
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn put(&self, rel: &str, data: &[u8]) -> Result<(), StoreError> {
        let target = self.path(rel);
        let parent = target.parent().unwrap_or(&self.root).to_path_buf();
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file");
        let tmp = parent.join(format!(".{name}.new"));
        let shown = target.display().to_string();
        let io = |e| StoreError::io(&shown, e);
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(data).map_err(|e| full_or(e, &shown))?;
        f.sync_all().map_err(|e| full_or(e, &shown))?;
        drop(f);
        fs::rename(&tmp, &target).map_err(io)?;
        sync_dir(&parent)
    }
}

fn full_or(e: std::io::Error, path: &str) -> StoreError {
    if e.raw_os_error() == Some(28) {
        StoreError::Full {
            path: path.into(),
            why: e.to_string(),
        }
    } else {
        StoreError::io(path, e)
    }
}

impl Files for DirFiles {
    fn read(&mut self, rel: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match fs::read(self.path(rel)) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(rel, e)),
        }
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StoreError> {
        let p = self.path(dir);
        let rd = match fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(dir, e)),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e.map_err(|e| StoreError::io(dir, e))?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            // `.NAME.new` files are writes that never finished.
            if name.starts_with('.') || !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            out.push(name);
        }
        out.sort();
        Ok(out)
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        if ops.len() <= 1 {
            return self.apply_each(ops);
        }
        self.put(JOURNAL, &encode_journal(ops))?;
        self.apply_each(ops)?;
        self.remove(JOURNAL)
    }
}
