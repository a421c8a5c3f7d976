//! Persistence of the [`State`] in the original ptt's layout:
//!
//! ```text
//! bounces.json      bounce scores (list → subscriber → score)
//! temp.json         the retry queue
//! lists/NAME.json   one list: settings, subscribers, moderators, pending, held, counter
//! tmp/              posts waiting for retries, held posts
//! ```
//!
//! Two backends implement [`Files`]: [`DirFiles`] (a plain directory) and
//! [`ImageFiles`] (a FAT32 image, through `fatfs`, with a journal that makes
//! each commit all-or-nothing). [`Store`] loads and commits through either.

mod dir;
mod fat;
mod image;

use std::collections::BTreeMap;
use std::string::String;
use std::vec::Vec;

pub use dir::DirFiles;
pub use image::{ImageFiles, MIN_IMAGE_SIZE};

use crate::model::{Bounces, Changes, List, Retry, State};

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The path is neither a directory nor a FAT32 image.
    #[error("{path}: not a ptt image or directory ({why})")]
    NotAnImage {
        /// The path.
        path: String,
        /// What did not fit.
        why: String,
    },
    /// No space left in the image (or its journal).
    #[error("{path}: image full ({why})")]
    Full {
        /// The path.
        path: String,
        /// What ran out.
        why: String,
    },
    /// A state file does not parse.
    #[error("{file}: {why}")]
    Corrupt {
        /// The file, e.g. `lists/ptt.json`.
        file: String,
        /// The parser's complaint.
        why: String,
    },
    /// `ptt create` on something that exists.
    #[error("{0}: exists already")]
    Exists(String),
    /// Any other I/O error.
    #[error("{path}: {source}")]
    Io {
        /// What was being accessed.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// One change to a file, in a batch given to [`Files::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write (create or replace) a file.
    Put(String, Vec<u8>),
    /// Remove a file (no error if it is missing).
    Remove(String),
}

/// A file tree holding the state: paths are `/`-separated and relative, e.g.
/// `lists/ptt.json`.
pub trait Files {
    /// Reads a file; `None` when it does not exist.
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The names of the files (not directories) in `dir`.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StoreError>;
    /// Applies a batch in order. Each `Put` is atomic (new file written,
    /// flushed, renamed over the old one); the image backend also makes the
    /// whole batch atomic. When this returns `Ok`, the batch is durable.
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError>;
}

/// Loads and saves a [`State`] through a [`Files`] backend.
#[derive(Debug)]
pub struct Store<F: Files> {
    files: F,
}

const BOUNCES: &str = "bounces.json";
const TEMP: &str = "temp.json";

fn list_path(name: &str) -> String {
    format!("lists/{name}.json")
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, data: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(data).map_err(|e| StoreError::Corrupt {
        file: file.into(),
        why: e.to_string(),
    })
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut v = serde_json::to_vec_pretty(value).unwrap_or_default();
    v.push(b'\n');
    v
}

/// The files of an empty state (what `ptt create` writes).
pub fn initial_ops() -> Vec<Op> {
    vec![
        Op::Put(BOUNCES.into(), json(&Bounces::new())),
        Op::Put(TEMP.into(), json(&Vec::<Retry>::new())),
    ]
}

impl<F: Files> Store<F> {
    /// Wraps a backend.
    pub fn new(files: F) -> Self {
        Store { files }
    }

    /// The backend.
    pub fn files(&mut self) -> &mut F {
        &mut self.files
    }

    /// Reads the whole state. Missing files are empty; a file that does
    /// not parse is an error naming it. A list file's name must match the
    /// list inside it.
    pub fn load(&mut self) -> Result<State, StoreError> {
        let mut state = State::default();
        if let Some(b) = self.files.read(BOUNCES)? {
            state.bounces = parse(BOUNCES, &b)?;
        }
        if let Some(t) = self.files.read(TEMP)? {
            state.queue = parse(TEMP, &t)?;
        }
        for file in self.files.list("lists")? {
            let Some(stem) = file.strip_suffix(".json") else {
                continue;
            };
            let path = list_path(stem);
            let Some(data) = self.files.read(&path)? else {
                continue;
            };
            let list: List = parse(&path, &data)?;
            if list.name != stem {
                return Err(StoreError::Corrupt {
                    file: path,
                    why: format!("holds the list {:?}", list.name),
                });
            }
            state.lists.insert(list.name.clone(), list);
        }
        let mut blobs = BTreeMap::new();
        for file in self.files.list("tmp")? {
            let path = format!("tmp/{file}");
            if let Some(data) = self.files.read(&path)? {
                blobs.insert(file, data);
            }
        }
        state.blobs = blobs;
        Ok(state)
    }

    /// Writes what `changes` says changed. Order: new `tmp/` files first,
    /// then the JSON files that refer to them, then removals, so that even
    /// a backend that is atomic per file only never leaves a reference to
    /// a missing file.
    pub fn commit(&mut self, state: &State, changes: &Changes) -> Result<(), StoreError> {
        let ops = ops_for(state, changes);
        if ops.is_empty() {
            return Ok(());
        }
        self.files.apply(&ops)
    }
}

/// The file operations that persist `changes`.
pub fn ops_for(state: &State, changes: &Changes) -> Vec<Op> {
    let mut ops = Vec::new();
    for b in &changes.blobs_put {
        if let Some(data) = state.blobs.get(b) {
            ops.push(Op::Put(format!("tmp/{b}"), data.clone()));
        }
    }
    for name in &changes.lists {
        if let Some(l) = state.lists.get(name) {
            ops.push(Op::Put(list_path(name), json(l)));
        }
    }
    if changes.bounces {
        ops.push(Op::Put(BOUNCES.into(), json(&state.bounces)));
    }
    if changes.queue {
        ops.push(Op::Put(TEMP.into(), json(&state.queue)));
    }
    for name in &changes.lists_removed {
        ops.push(Op::Remove(list_path(name)));
    }
    for b in &changes.blobs_removed {
        ops.push(Op::Remove(format!("tmp/{b}")));
    }
    ops
}

impl<F: Files + ?Sized> Files for Box<F> {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).read(path)
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, StoreError> {
        (**self).list(dir)
    }
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        (**self).apply(ops)
    }
}

/// An exclusive lock on the state at `path` (the directory or the image
/// file itself), held until dropped. Everyone who changes the state (the
/// `ptt` verbs, the list server) takes it around load, change and commit,
/// so no update is lost between two writers.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let held = ptt_list::store::lock(dir.path()).unwrap();
/// // A second writer would wait here until `held` is dropped.
/// drop(held);
/// ```
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

/// Takes the [`Lock`] on the state at `path`, waiting for another holder.
pub fn lock(path: &std::path::Path) -> Result<Lock, StoreError> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotAnImage {
            path: path.display().to_string(),
            why: "no such file or directory".into(),
        },
        _ => StoreError::io(path.display().to_string(), e),
    })?;
    file.lock()
        .map_err(|e| StoreError::io(format!("locking {}", path.display()), e))?;
    Ok(Lock { _file: file })
}

/// Opens the state at `path`: a directory ([`DirFiles`]) or a FAT32 image
/// file ([`ImageFiles`]).
pub fn open(path: &std::path::Path) -> Result<Box<dyn Files + Send>, StoreError> {
    if path.is_dir() {
        Ok(Box::new(DirFiles::open(path)?))
    } else if path.exists() {
        Ok(Box::new(ImageFiles::open(path)?))
    } else {
        Err(StoreError::NotAnImage {
            path: path.display().to_string(),
            why: "no such file or directory".into(),
        })
    }
}
