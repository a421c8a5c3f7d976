//! The directory backend.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Files, Op, StoreError, initial_ops};

/// The state in a plain directory. Each file is replaced atomically: the
/// new content goes to `.NAME.new` beside it, is flushed with `fsync`, and
/// renamed over the old file; then the directory is fsynced.
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
        Ok(DirFiles {
            root: root.to_path_buf(),
        })
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
        for op in ops {
            match op {
                Op::Put(rel, data) => self.put(rel, data)?,
                Op::Remove(rel) => {
                    let p = self.path(rel);
                    match fs::remove_file(&p) {
                        Ok(()) => sync_dir(p.parent().unwrap_or(&self.root))?,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(StoreError::io(rel, e)),
                    }
                }
            }
        }
        Ok(())
    }
}
