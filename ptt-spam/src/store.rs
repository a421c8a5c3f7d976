//! The on-disk form of a [`TokenDb`]: one file, read in one go.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "PTTSPAM\x1a"
//!      8     4  format version, u32 LE (= 1)
//!     12     4  flags, u32 LE: bits 0-3 the OSB window the tokens were
//!               made with (0: the default, 5; else 1 to 4), others 0
//!     16     8  spam messages trained, u64 LE
//!     24     8  ham messages trained, u64 LE
//!     32     8  table capacity in slots, u64 LE (a power of two)
//!     40     8  occupied slots, u64 LE
//!     48  16*N  slots: token hash u64 LE, spam count u32 LE, ham count u32 LE
//!   end-8    8  checksum: the crate's token hash over all bytes before it
//! ```
//!
//! The slots are the in-memory open-addressing table itself, so [`load`]
//! maps the file and checks it in one pass (header, checksum, occupied
//! slots), and lookups read the file's pages directly; the table is decoded
//! into memory only when it is changed. [`save`] writes a new file beside
//! the old one, fsyncs it and renames it over, so a server that reads the database while
//! it is trained sees either the old or the new one, never a torn file.

#[cfg(feature = "std")]
use alloc::vec;
use alloc::vec::Vec;

use crate::MAX_OSB_WINDOW;
use crate::db::{Slot, TokenDb};
use crate::hash::{Stream, hash_bytes};
#[cfg(feature = "std")]
use crate::mapped::Mapped;

/// The first bytes of every token store.
pub const MAGIC: [u8; 8] = *b"PTTSPAM\x1a";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
const HEADER: usize = 48;
const SLOT: usize = 16;
const CHECKSUM_SEED: u64 = 0x7074_7473_7061_6d31; // "pttspam1"
/// Largest table accepted (2^28 slots, 4 GiB), so a corrupt header cannot ask
/// for unbounded memory.
const MAX_CAPACITY: u64 = 1 << 28;

/// Why a token store could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// The file is shorter than a header and checksum.
    #[error("token store is {len} bytes, shorter than the {min}-byte header and checksum")]
    TooShort {
        /// The length seen.
        len: usize,
        /// The least length of a valid store.
        min: usize,
    },
    /// The file does not start with the magic: it is not a ptt token store.
    #[error("not a ptt token store: starts with {found:02x?} ({hint}), expected \"PTTSPAM\\x1a\"")]
    Foreign {
        /// The first bytes of the file.
        found: [u8; 8],
        /// What the file looks like, when recognised.
        hint: &'static str,
    },
    /// A store of a format version this build does not know.
    #[error(
        "token store format version {found} is not supported (this build reads version {VERSION})"
    )]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// A header field holds an impossible value.
    #[error("corrupt token store: field {field} is {value}: {why}")]
    Field {
        /// The header field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The checksum does not match the contents (a torn or damaged file).
    #[error("corrupt token store: checksum {found:016x} does not match contents ({computed:016x})")]
    Checksum {
        /// The checksum stored in the file.
        found: u64,
        /// The checksum of the contents.
        computed: u64,
    },
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

fn guess(bytes: &[u8]) -> &'static str {
    let bdb = |m: u32| {
        bytes
            .get(12..16)
            .is_some_and(|s| s == m.to_le_bytes() || s == m.to_be_bytes())
    };
    let found = bytes.get(..8).unwrap_or(bytes);
    if bdb(0x0005_3162) || bdb(0x0006_1561) {
        "looks like a Berkeley DB file, e.g. a bogofilter wordlist"
    } else if found.starts_with(b"SQLite f") {
        "an SQLite database"
    } else if found.starts_with(b"From ")
        || found.starts_with(b"Return-P")
        || found.starts_with(b"Received")
    {
        "a mail message"
    } else {
        "unknown contents"
    }
}

impl TokenDb {
    /// The store's bytes (see the module docs for the layout).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.slots.len() * SLOT + 8);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&osb_window_flags(self.osb_window).to_le_bytes());
        out.extend_from_slice(&self.spam_messages.to_le_bytes());
        out.extend_from_slice(&self.ham_messages.to_le_bytes());
        out.extend_from_slice(&(self.capacity() as u64).to_le_bytes());
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        match self.mapped_bytes() {
            // Already in the file layout.
            Some(bytes) => out.extend_from_slice(bytes),
            None => {
                for slot in &self.slots {
                    out.extend_from_slice(&slot.hash.to_le_bytes());
                    out.extend_from_slice(&slot.spam.to_le_bytes());
                    out.extend_from_slice(&slot.ham.to_le_bytes());
                }
            }
        }
        let sum = hash_bytes(CHECKSUM_SEED, &out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Reads a store from its bytes, checking magic, version, sizes and
    /// checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<TokenDb, FormatError> {
        let head = Header::parse(bytes, bytes.len() as u64)?;
        let body = bytes.len() - 8;
        let mut sum = Stream::new(CHECKSUM_SEED, body as u64);
        sum.words(&bytes[..body]);
        let computed = sum.finish(&[]);
        let found = u64_at(bytes, body);
        if found != computed {
            return Err(FormatError::Checksum { found, computed });
        }
        let mut slots = Vec::with_capacity(head.capacity as usize);
        decode_slots(&bytes[HEADER..body], &mut slots);
        head.finish(slots)
    }
}

/// The flags word for a database of OSB window `window`: 0 for window 5
/// (stores written before the field existed hold window 5, and must go on
/// reading as what they are, whatever today's default), the window itself
/// otherwise.
fn osb_window_flags(window: u8) -> u32 {
    if usize::from(window) == MAX_OSB_WINDOW {
        0
    } else {
        u32::from(window)
    }
}

/// The OSB window a flags word records; `None` for undefined flags.
fn osb_window_of_flags(flags: u32) -> Option<u8> {
    match flags {
        0 => u8::try_from(MAX_OSB_WINDOW).ok(),
        1..=4 => u8::try_from(flags).ok(),
        _ => None,
    }
}

/// The OSB window of the store at `path`, from its header alone: a
/// classifier must tokenize with the window the store was trained with,
/// and can start before the whole store is loaded. Any problem with the
/// file is [`load`]'s to report; this answers `None` then.
#[cfg(feature = "std")]
pub fn peek_osb_window(path: &std::path::Path) -> Option<usize> {
    let mut file = std::fs::File::open(path).ok()?;
    let file_len = file.metadata().ok()?.len();
    let mut head = [0u8; HEADER];
    let got = read_full(&mut file, &mut head).ok()?;
    let header = Header::parse(head.get(..got)?, file_len).ok()?;
    Some(usize::from(header.osb_window))
}

/// The validated fixed header.
struct Header {
    osb_window: u8,
    spam_messages: u64,
    ham_messages: u64,
    capacity: u64,
    len: u64,
}

impl Header {
    /// Checks the header at the start of `bytes` against the file length.
    fn parse(bytes: &[u8], file_len: u64) -> Result<Header, FormatError> {
        if bytes.len() < 8 || (bytes.len() < HEADER && bytes[..8] != MAGIC) {
            let mut found = [0u8; 8];
            for (d, s) in found.iter_mut().zip(bytes) {
                *d = *s;
            }
            if bytes.len() >= 8 {
                return Err(FormatError::Foreign {
                    found,
                    hint: guess(bytes),
                });
            }
        }
        if bytes.len() < HEADER || file_len < (HEADER + 8) as u64 {
            return Err(FormatError::TooShort {
                len: file_len as usize,
                min: HEADER + 8,
            });
        }
        let mut found = [0u8; 8];
        found.copy_from_slice(&bytes[..8]);
        if found != MAGIC {
            return Err(FormatError::Foreign {
                found,
                hint: guess(bytes),
            });
        }
        let version = u32_at(bytes, 8);
        if version != VERSION {
            return Err(FormatError::Version { found: version });
        }
        let flags = u32_at(bytes, 12);
        let Some(osb_window) = osb_window_of_flags(flags) else {
            return Err(FormatError::Field {
                field: "flags",
                value: flags.into(),
                why: "version 1 flags must be 0 to 4 (the OSB window; 0 for 5)",
            });
        };
        let capacity = u64_at(bytes, 32);
        if capacity == 0 || !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
            return Err(FormatError::Field {
                field: "capacity",
                value: capacity,
                why: "must be a power of two between 1 and 2^28",
            });
        }
        if file_len != HEADER as u64 + capacity * SLOT as u64 + 8 {
            return Err(FormatError::Field {
                field: "capacity",
                value: capacity,
                why: "does not match the file length",
            });
        }
        let len = u64_at(bytes, 40);
        if len >= capacity {
            return Err(FormatError::Field {
                field: "occupied",
                value: len,
                why: "the table must keep at least one empty slot",
            });
        }
        Ok(Header {
            osb_window,
            spam_messages: u64_at(bytes, 16),
            ham_messages: u64_at(bytes, 24),
            capacity,
            len,
        })
    }

    /// The database, once the slots are read and the checksum matched.
    fn finish(self, slots: Vec<Slot>) -> Result<TokenDb, FormatError> {
        let occupied = slots.iter().filter(|s| s.hash != 0).count() as u64;
        self.into_db(occupied, slots)
    }

    /// The database of this header and `slots` (empty while a mapping holds
    /// them), once `occupied` slots were counted and match the header.
    fn into_db(self, occupied: u64, slots: Vec<Slot>) -> Result<TokenDb, FormatError> {
        if occupied != self.len {
            return Err(FormatError::Field {
                field: "occupied",
                value: self.len,
                why: "does not match the slots in use",
            });
        }
        Ok(TokenDb {
            osb_window: self.osb_window,
            spam_messages: self.spam_messages,
            ham_messages: self.ham_messages,
            slots,
            #[cfg(feature = "std")]
            mapped: None,
            len: self.len as usize,
        })
    }
}

/// Checks a mapped store in one pass over its bytes (header, checksum,
/// occupied slots) and makes it a database that reads the mapping.
#[cfg(feature = "std")]
fn from_map(map: memmap2::Mmap) -> Result<TokenDb, FormatError> {
    let bytes: &[u8] = &map;
    let head = Header::parse(bytes, bytes.len() as u64)?;
    let body = bytes.len() - 8;
    let mut sum = Stream::new(CHECKSUM_SEED, body as u64);
    sum.words(&bytes[..HEADER]);
    let mut occupied = 0u64;
    for slot in bytes[HEADER..body].chunks_exact(SLOT) {
        let hash = u64_at(slot, 0);
        sum.word(hash);
        sum.word(u64_at(slot, 8));
        occupied += u64::from(hash != 0);
    }
    let computed = sum.finish(&[]);
    let found = u64_at(bytes, body);
    if found != computed {
        return Err(FormatError::Checksum { found, computed });
    }
    let mut db = head.into_db(occupied, Vec::new())?;
    let slots = HEADER..map.len().saturating_sub(8);
    db.mapped = Some(Mapped::new(map, slots));
    Ok(db)
}

fn decode_slots(bytes: &[u8], out: &mut Vec<Slot>) {
    out.extend(bytes.chunks_exact(SLOT).map(|c| Slot {
        hash: u64_at(c, 0),
        spam: u32_at(c, 8),
        ham: u32_at(c, 12),
    }));
}

/// Errors reading or writing a store file.
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid store.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        source: FormatError,
    },
}

/// Loads a store file: maps it read-only and checks it in one pass (magic,
/// version, sizes, checksum, occupied slots); lookups then read the file's
/// pages, shared with every other process that has it loaded, and nothing is
/// decoded until the table is changed. Where the file cannot be mapped it is
/// read in one streaming pass instead.
///
/// The mapping stays valid when [`save`] replaces the file (it renames a new
/// file over the old one); a store must not be rewritten in place while
/// loaded.
#[cfg(feature = "std")]
pub fn load(path: &std::path::Path) -> Result<TokenDb, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let format = |source| StoreError::Format {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    // The header first: a foreign or truncated file is refused before any
    // of it is mapped.
    let mut head = [0u8; HEADER];
    let got = read_full(&mut file, &mut head).map_err(io)?;
    Header::parse(&head[..got], file_len).map_err(format)?;
    // SAFETY: the mapping is read-only and private to this TokenDb. Its
    // contents are only ever read through bounds-checked slices and checked
    // (header, checksum) before use; ptt replaces stores by renaming a new
    // file over the old one, which leaves this mapping's pages as they are.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) };
    if let Ok(map) = map {
        return from_map(map).map_err(format);
    }
    load_read(file, file_len, head).map_err(|e| match e {
        LoadError::Io(e) => io(e),
        LoadError::Format(e) => format(e),
    })
}

#[cfg(feature = "std")]
enum LoadError {
    Io(std::io::Error),
    Format(FormatError),
}

/// [`load`] without a mapping: one pass over the rest of the file (after
/// the header `head`, already read), decoding the table and checking the
/// checksum as the bytes arrive.
#[cfg(feature = "std")]
fn load_read(
    mut file: std::fs::File,
    file_len: u64,
    head: [u8; HEADER],
) -> Result<TokenDb, LoadError> {
    use std::io::Read;
    let header = Header::parse(&head, file_len).map_err(LoadError::Format)?;
    let body = file_len - 8;
    let mut sum = Stream::new(CHECKSUM_SEED, body);
    sum.words(&head);
    let mut slots = Vec::with_capacity(header.capacity as usize);
    let mut buf = vec![0u8; 1 << 16];
    let mut left = (body - HEADER as u64) as usize;
    while left > 0 {
        let n = left.min(buf.len());
        file.read_exact(&mut buf[..n]).map_err(LoadError::Io)?;
        sum.words(&buf[..n]);
        decode_slots(&buf[..n], &mut slots);
        left -= n;
    }
    let mut tail = [0u8; 8];
    file.read_exact(&mut tail).map_err(LoadError::Io)?;
    let found = u64::from_le_bytes(tail);
    let computed = sum.finish(&[]);
    if found != computed {
        return Err(LoadError::Format(FormatError::Checksum { found, computed }));
    }
    header.finish(slots).map_err(LoadError::Format)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
#[cfg(feature = "std")]
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Writes a store atomically: a new file beside `path`, fsync, rename over
/// `path`, fsync of the directory.
#[cfg(feature = "std")]
pub fn save(db: &TokenDb, path: &std::path::Path) -> Result<(), StoreError> {
    use std::io::Write;
    let io = |source| StoreError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "spam.db".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&db.to_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            // Persist the rename; not every platform can fsync a directory.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Class;

    fn sample() -> TokenDb {
        let mut db = TokenDb::new();
        let toks: Vec<u64> = (1..3000u64).map(|i| crate::hash::mix(i) | 1).collect();
        db.train(&toks, Class::Spam);
        db.train(&toks[..100], Class::Ham);
        db
    }

    #[test]
    fn roundtrip() {
        let db = sample();
        let bytes = db.to_bytes();
        assert_eq!(TokenDb::from_bytes(&bytes), Ok(db));
    }

    /// The OSB window travels with the store; window 5 is written as flags
    /// 0, as every store was before the field existed (when 5 was the
    /// default), so those still read as window 5; undefined flag bits are
    /// refused.
    #[test]
    fn osb_window_in_the_flags() {
        let mut db = TokenDb::with_osb_window(5);
        db.train(&[7, 9], Class::Spam);
        let bytes = db.to_bytes();
        assert_eq!(u32_at(&bytes, 12), 0);
        assert_eq!(TokenDb::from_bytes(&bytes).map(|d| d.osb_window()), Ok(5));
        for window in 1..=4 {
            let mut narrow = TokenDb::with_osb_window(window);
            narrow.train(&[7, 9], Class::Ham);
            let bytes = narrow.to_bytes();
            assert_eq!(u32_at(&bytes, 12), window as u32);
            let back = TokenDb::from_bytes(&bytes).expect("reads");
            assert_eq!(back.osb_window(), window);
            assert_eq!(back, narrow);
        }
        let mut bad = bytes.clone();
        bad[12] = 0x10;
        // (the checksum would fail too; the header is checked first)
        assert!(matches!(
            TokenDb::from_bytes(&bad),
            Err(FormatError::Field { field: "flags", .. })
        ));
    }

    #[cfg(feature = "std")]
    #[test]
    fn osb_window_peeked_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("narrow.db");
        save(&TokenDb::with_osb_window(2), &path).expect("save");
        assert_eq!(peek_osb_window(&path), Some(2));
        assert_eq!(load(&path).map(|d| d.osb_window()).ok(), Some(2));
        assert_eq!(peek_osb_window(&dir.path().join("absent.db")), None);
    }

    #[test]
    fn rejects_foreign_and_corrupt() {
        let db = sample();
        let bytes = db.to_bytes();
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(matches!(
            TokenDb::from_bytes(&bad),
            Err(FormatError::Foreign { .. })
        ));
        let mut bad = bytes.clone();
        bad[8] = 9;
        assert_eq!(
            TokenDb::from_bytes(&bad),
            Err(FormatError::Version { found: 9 })
        );
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x40;
        assert!(matches!(
            TokenDb::from_bytes(&bad),
            Err(FormatError::Checksum { .. })
        ));
        assert!(matches!(
            TokenDb::from_bytes(&bytes[..bytes.len() - 16]),
            Err(FormatError::Field {
                field: "capacity",
                ..
            })
        ));
        assert!(matches!(
            TokenDb::from_bytes(b"PTT"),
            Err(FormatError::TooShort { .. })
        ));
        let mut bdb = [0u8; 64];
        bdb[12..16].copy_from_slice(&0x0005_3162u32.to_le_bytes());
        let err = TokenDb::from_bytes(&bdb).unwrap_err();
        assert!(err.to_string().contains("Berkeley DB"), "{err}");
    }
}
