//! The FAT32 image backend.
//!
//! # Why fatfs plus two repairs, and not a FAT layer of our own
//!
//! `fatfs` 0.3.6 reads and writes FAT32 well (files, long names, cluster
//! allocation, FSInfo) and mtools agrees with what it writes; its one
//! defect that matters here is in `create_dir` (an LFN entry before `.` and
//! before `..`, and `..` of a child of the root pointing at cluster 2 instead
//! of 0), which `fsck.fat -n` rejects. That is a few bytes in the first
//! cluster of each new directory, and ptt creates exactly two directories
//! (`lists/`, `tmp/`), both children of the root, so the repair
//! ([`super::fat::fix_subdirs`]) is small, runs in the same transaction
//! that created them, and is checked by `fsck.fat -n` in the tests. A FAT
//! layer of our own would replace a few thousand lines of well-used code
//! for that.
//!
//! The second gap is atomicity: fatfs updates a directory entry, the FATs
//! and the data with many small writes, so a crash between them can leave
//! a damaged volume, and "write new file, rename" alone is not enough on
//! FAT. So every write fatfs makes during one commit goes to an overlay of
//! 512-byte blocks in memory; at the end the blocks are written, with a
//! SHA-256 over them, to the preallocated file `journal` in the image and
//! fsynced; then they are written in place and fsynced; then the journal
//! is cleared. Opening an image replays a complete journal (idempotent) and
//! ignores a torn one. A crash at any point leaves the old state or the
//! new one, as ptt sees it. Other FAT tools (mtools, `fsck.fat`) read the
//! volume directly: after a crash during the in-place writes they see half
//! of a commit until ptt has opened the image once (any `ptt` list verb
//! does), which replays the journal. Inside a commit, each file is still written as `NAME.new`,
//! flushed, and renamed over `NAME`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use fatfs::{FatType, FileSystem, FormatVolumeOptions, FsOptions};
use sha2::{Digest, Sha256};

use super::fat::{Geometry, RawIo, find_in_root, fix_subdirs};
use super::{Files, Op, StoreError, initial_ops};

/// Smallest image `ptt create` makes: FAT32 needs 65525 clusters.
pub const MIN_IMAGE_SIZE: u64 = 34 * 1024 * 1024;

const BLK: u64 = 512;
const JOURNAL_NAME: &str = "journal";
const JOURNAL_SFN: &[u8; 11] = b"JOURNAL    ";
const MAGIC: &[u8; 8] = b"PTTJRNL1";
const HEADER: usize = 64;

#[derive(Debug)]
struct Disk {
    file: File,
    len: u64,
    pos: u64,
    /// Written during this commit, not yet on the image.
    overlay: BTreeMap<u64, Box<[u8; 512]>>,
    /// Write straight to the file (only while `create` builds a new image).
    direct: bool,
}

impl Disk {
    fn block(&self, idx: u64) -> io::Result<[u8; 512]> {
        if let Some(b) = self.overlay.get(&idx) {
            return Ok(**b);
        }
        let mut b = [0u8; 512];
        self.file.read_exact_at(&mut b, idx * BLK)?;
        Ok(b)
    }
}

impl RawIo for Disk {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let (idx, within) = (at / BLK, (at % BLK) as usize);
            let b = self.block(idx)?;
            let n = (buf.len() - done).min(512 - within);
            buf[done..done + n].copy_from_slice(&b[within..within + n]);
            done += n;
        }
        Ok(())
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        if offset + buf.len() as u64 > self.len {
            return Err(io::Error::other("write past the end of the image"));
        }
        if self.direct {
            return self.file.write_all_at(buf, offset);
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let (idx, within) = (at / BLK, (at % BLK) as usize);
            let mut b = self.block(idx)?;
            let n = (buf.len() - done).min(512 - within);
            b[within..within + n].copy_from_slice(&buf[done..done + n]);
            self.overlay.insert(idx, Box::new(b));
            done += n;
        }
        Ok(())
    }
}

/// A handle fatfs owns while this module keeps another one for commits.
#[derive(Debug, Clone)]
struct SharedDisk(Arc<Mutex<Disk>>);

impl SharedDisk {
    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Read for SharedDisk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut d = self.lock();
        let n = buf.len().min(d.len.saturating_sub(d.pos) as usize);
        let pos = d.pos;
        d.read_at(pos, &mut buf[..n])?;
        d.pos += n as u64;
        Ok(n)
    }
}

impl Write for SharedDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut d = self.lock();
        let pos = d.pos;
        d.write_at(pos, buf)?;
        d.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for SharedDisk {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let mut d = self.lock();
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(o) => d.len.checked_add_signed(o),
            SeekFrom::Current(o) => d.pos.checked_add_signed(o),
        };
        let new = new
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        d.pos = new;
        Ok(new)
    }
}

/// A FAT32 image holding the list state. See the module documentation for
/// how commits are made atomic.
#[derive(Debug)]
pub struct ImageFiles {
    path: String,
    disk: SharedDisk,
    /// Byte ranges of the journal file in the image.
    journal: Vec<(u64, u64)>,
    capacity: u64,
}

type Dir<'a> = fatfs::Dir<'a, SharedDisk>;

fn not_image(path: &str, why: impl Into<String>) -> StoreError {
    StoreError::NotAnImage {
        path: path.into(),
        why: why.into(),
    }
}

fn fat_err(path: &str, e: io::Error) -> StoreError {
    if e.to_string().contains("No space left") {
        StoreError::Full {
            path: path.into(),
            why: "no free cluster".into(),
        }
    } else {
        StoreError::io(path, e)
    }
}

fn split(path: &str) -> (Option<&str>, &str) {
    match path.rsplit_once('/') {
        Some((d, f)) => (Some(d), f),
        None => (None, path),
    }
}

fn put_file(root: &Dir<'_>, path: &str, data: &[u8]) -> io::Result<()> {
    let (dir, name) = split(path);
    let d = match dir {
        Some(d) => root.open_dir(d)?,
        None => root.clone(),
    };
    let new = format!("{name}.new");
    {
        let mut f = d.create_file(&new)?;
        f.truncate()?;
        f.write_all(data)?;
        f.flush()?;
    }
    match d.remove(name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    d.rename(&new, &d, name)
}

fn remove_file(root: &Dir<'_>, path: &str) -> io::Result<()> {
    match root.remove(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

impl ImageFiles {
    /// Makes a new FAT32 image file of `size` bytes with the empty layout
    /// (`bounces.json`, `temp.json`, `lists/`, `tmp/`) and the journal.
    pub fn create(path: &Path, size: u64) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if size < MIN_IMAGE_SIZE {
            return Err(StoreError::Full {
                path: shown,
                why: format!(
                    "{size} bytes is too small for FAT32; give at least {}M",
                    MIN_IMAGE_SIZE >> 20
                ),
            });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    StoreError::Exists(shown.clone())
                } else {
                    StoreError::io(&shown, e)
                }
            })?;
        let built = (|| -> Result<(), StoreError> {
            file.set_len(size).map_err(|e| StoreError::io(&shown, e))?;
            fatfs::format_volume(
                &mut file,
                FormatVolumeOptions::new()
                    .fat_type(FatType::Fat32)
                    .volume_label(*b"PTT        "),
            )
            .map_err(|e| StoreError::io(&shown, e))?;
            let disk = SharedDisk(Arc::new(Mutex::new(Disk {
                file: file.try_clone().map_err(|e| StoreError::io(&shown, e))?,
                len: size,
                pos: 0,
                overlay: BTreeMap::new(),
                direct: true,
            })));
            let journal = (size / 4).clamp(1 << 20, 256 << 20);
            with_fs(&shown, &disk, |root| {
                root.create_dir("lists")?;
                root.create_dir("tmp")?;
                let mut j = root.create_file(JOURNAL_NAME)?;
                let zeros = vec![0u8; 1 << 16];
                let mut left = journal;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    j.write_all(&zeros[..n])?;
                    left -= n as u64;
                }
                j.flush()?;
                drop(j);
                for op in initial_ops() {
                    if let Op::Put(p, d) = op {
                        put_file(root, &p, &d)?;
                    }
                }
                Ok(())
            })?;
            let mut d = disk.lock();
            let g = Geometry::read(&mut *d).map_err(|why| not_image(&shown, why))?;
            fix_subdirs(&g, &mut *d).map_err(|e| StoreError::io(&shown, e))?;
            d.file.sync_all().map_err(|e| StoreError::io(&shown, e))?;
            Ok(())
        })();
        if let Err(e) = built {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
        drop(file);
        Self::open(path)
    }

    /// Opens an image made by [`ImageFiles::create`] and replays its
    /// journal if a commit was interrupted after the journal was written.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| StoreError::io(&shown, e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io(&shown, e))?
            .len();
        if len < 1024 {
            return Err(not_image(&shown, "too small"));
        }
        let mut disk = Disk {
            file,
            len,
            pos: 0,
            overlay: BTreeMap::new(),
            direct: false,
        };
        let g = Geometry::read(&mut disk).map_err(|why| not_image(&shown, why))?;
        let (first, size) = find_in_root(&g, &mut disk, JOURNAL_SFN)
            .map_err(|e| StoreError::io(&shown, e))?
            .ok_or_else(|| {
                not_image(
                    &shown,
                    "a FAT32 volume without ptt's journal (make images with `ptt create`)",
                )
            })?;
        let chain = g
            .chain(&mut disk, first)
            .map_err(|e| StoreError::io(&shown, e))?;
        let cs = g.cluster_size();
        let mut journal: Vec<(u64, u64)> = Vec::new();
        for c in chain {
            let off = g.cluster_offset(c);
            match journal.last_mut() {
                Some((o, l)) if *o + *l == off => *l += cs,
                _ => journal.push((off, cs)),
            }
        }
        let capacity = journal.iter().map(|(_, l)| l).sum::<u64>().min(size);
        if capacity < 4096 {
            return Err(not_image(&shown, "ptt's journal is too small"));
        }
        let mut me = ImageFiles {
            path: shown,
            disk: SharedDisk(Arc::new(Mutex::new(disk))),
            journal,
            capacity,
        };
        me.replay()?;
        Ok(me)
    }

    fn journal_io(
        &self,
        d: &Disk,
        logical: u64,
        buf: &mut [u8],
        write: Option<&[u8]>,
    ) -> io::Result<()> {
        let mut done = 0usize;
        let total = write.map_or(buf.len(), <[u8]>::len);
        let mut base = 0u64;
        for &(off, len) in &self.journal {
            while done < total && logical + (done as u64) < base + len {
                let at = logical + done as u64;
                if at < base {
                    break;
                }
                let within = at - base;
                let n = ((len - within) as usize).min(total - done);
                match write {
                    Some(w) => d.file.write_all_at(&w[done..done + n], off + within)?,
                    None => d
                        .file
                        .read_exact_at(&mut buf[done..done + n], off + within)?,
                }
                done += n;
            }
            base += len;
        }
        if done < total {
            return Err(io::Error::other("journal too small"));
        }
        Ok(())
    }

    /// Writes back a complete journal left by an interrupted commit.
    fn replay(&mut self) -> Result<(), StoreError> {
        let d = self.disk.lock();
        let mut head = [0u8; HEADER];
        self.journal_io(&d, 0, &mut head, None)
            .map_err(|e| StoreError::io(&self.path, e))?;
        if &head[..8] != MAGIC {
            return Ok(());
        }
        let body_len = u64::from_le_bytes(head[24..32].try_into().unwrap_or_default());
        let count = u64::from_le_bytes(head[16..24].try_into().unwrap_or_default());
        if body_len != count * (8 + BLK) || HEADER as u64 + body_len > self.capacity {
            return Ok(()); // torn: the commit never reached the image
        }
        let mut body = vec![0u8; body_len as usize];
        self.journal_io(&d, HEADER as u64, &mut body, None)
            .map_err(|e| StoreError::io(&self.path, e))?;
        let mut h = Sha256::new();
        h.update(&head[..32]);
        h.update(&body);
        if h.finalize().as_slice() != &head[32..64] {
            return Ok(());
        }
        for rec in body.chunks_exact(8 + BLK as usize) {
            let idx = u64::from_le_bytes(rec[..8].try_into().unwrap_or_default());
            if (idx + 1) * BLK > d.len {
                return Err(not_image(&self.path, "journal names a block past the end"));
            }
            d.file
                .write_all_at(&rec[8..], idx * BLK)
                .map_err(|e| StoreError::io(&self.path, e))?;
        }
        d.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.journal_io(&d, 0, &mut [], Some(&[0u8; 8]))
            .map_err(|e| StoreError::io(&self.path, e))?;
        d.file
            .sync_data()
            .map_err(|e| StoreError::io(&self.path, e))?;
        Ok(())
    }

    fn rollback(&self) {
        self.disk.lock().overlay.clear();
    }

    /// Writes the overlay through the journal (see the module documentation).
    fn commit(&self) -> Result<(), StoreError> {
        let mut d = self.disk.lock();
        let blocks = std::mem::take(&mut d.overlay);
        if blocks.is_empty() {
            return Ok(());
        }
        let mut body = Vec::with_capacity(blocks.len() * (8 + BLK as usize));
        for (idx, b) in &blocks {
            body.extend_from_slice(&idx.to_le_bytes());
            body.extend_from_slice(&b[..]);
        }
        if (HEADER + body.len()) as u64 > self.capacity {
            return Err(StoreError::Full {
                path: self.path.clone(),
                why: format!(
                    "an update of {} KiB does not fit the journal of {} KiB",
                    body.len() >> 10,
                    self.capacity >> 10
                ),
            });
        }
        let mut head = [0u8; HEADER];
        head[..8].copy_from_slice(MAGIC);
        head[16..24].copy_from_slice(&(blocks.len() as u64).to_le_bytes());
        head[24..32].copy_from_slice(&(body.len() as u64).to_le_bytes());
        let mut h = Sha256::new();
        h.update(&head[..32]);
        h.update(&body);
        head[32..64].copy_from_slice(&h.finalize());
        let io = |e| StoreError::io(&self.path, e);
        let mut rec = head.to_vec();
        rec.extend_from_slice(&body);
        self.journal_io(&d, 0, &mut [], Some(&rec)).map_err(io)?;
        d.file.sync_data().map_err(io)?;
        for (idx, b) in &blocks {
            d.file.write_all_at(&b[..], idx * BLK).map_err(io)?;
        }
        d.file.sync_data().map_err(io)?;
        self.journal_io(&d, 0, &mut [], Some(&[0u8; 8]))
            .map_err(io)?;
        d.file.sync_data().map_err(io)?;
        Ok(())
    }

    /// Free space in the image, in bytes.
    pub fn free_bytes(&mut self) -> Result<u64, StoreError> {
        self.disk.lock().pos = 0;
        let out = FileSystem::new(
            self.disk.clone(),
            FsOptions::new().update_accessed_date(false),
        )
        .map_err(|e| not_image(&self.path, e.to_string()))
        .and_then(|fs| {
            let s = fs.stats().map_err(|e| StoreError::io(&self.path, e))?;
            Ok(u64::from(s.free_clusters()) * u64::from(s.cluster_size()))
        });
        self.rollback();
        out
    }
}

fn with_fs<R>(
    path: &str,
    disk: &SharedDisk,
    f: impl FnOnce(&Dir<'_>) -> io::Result<R>,
) -> Result<R, StoreError> {
    disk.lock().pos = 0;
    let fs = FileSystem::new(disk.clone(), FsOptions::new().update_accessed_date(false))
        .map_err(|e| not_image(path, e.to_string()))?;
    let r = {
        let root = fs.root_dir();
        f(&root)
    };
    let u = fs.unmount();
    let r = r.map_err(|e| fat_err(path, e))?;
    u.map_err(|e| fat_err(path, e))?;
    Ok(r)
}

impl Files for ImageFiles {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = with_fs(&self.path, &self.disk, |root| match root.open_file(path) {
            Ok(mut f) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v)?;
                Ok(Some(v))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        });
        self.rollback();
        r
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, StoreError> {
        let r = with_fs(&self.path, &self.disk, |root| {
            let d = match root.open_dir(dir) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut out = Vec::new();
            for e in d.iter() {
                let e = e?;
                let name = e.file_name();
                if e.is_file() && !name.ends_with(".new") {
                    out.push(name);
                }
            }
            out.sort();
            Ok(out)
        });
        self.rollback();
        r
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let r = with_fs(&self.path, &self.disk, |root| {
            for op in ops {
                match op {
                    Op::Put(p, d) => put_file(root, p, d)?,
                    Op::Remove(p) => remove_file(root, p)?,
                }
            }
            Ok(())
        });
        match r {
            Ok(()) => self.commit().inspect_err(|_| self.rollback()),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }
}
