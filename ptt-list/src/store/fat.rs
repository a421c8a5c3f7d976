//! The little of FAT32 that ptt reads and writes by itself: the boot
//! sector's geometry, cluster chains, and the first entries of a
//! directory. Used to find the journal's clusters and to repair the `.`
//! and `..` entries that fatfs 0.3.6 writes wrongly.

use std::vec::Vec;

/// Positioned reads and writes on the image.
pub(crate) trait RawIo {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> std::io::Result<()>;
}

/// Where things are on a FAT32 volume.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) bytes_per_sector: u64,
    pub(crate) sectors_per_cluster: u64,
    pub(crate) reserved: u64,
    pub(crate) fats: u64,
    pub(crate) fat_size: u64,
    pub(crate) root_cluster: u32,
    pub(crate) clusters: u64,
}

fn u16le(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([
        b.get(at).copied().unwrap_or(0),
        b.get(at + 1).copied().unwrap_or(0),
    ]))
}
fn u32le(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 4];
    for (i, v) in x.iter_mut().enumerate() {
        *v = b.get(at + i).copied().unwrap_or(0);
    }
    u64::from(u32::from_le_bytes(x))
}

impl Geometry {
    /// Reads the boot sector; `Err` says why this is not a FAT32 volume.
    pub(crate) fn read(io: &mut impl RawIo) -> Result<Geometry, String> {
        let mut boot = [0u8; 512];
        io.read_at(0, &mut boot)
            .map_err(|e| format!("cannot read the boot sector: {e}"))?;
        if boot[510] != 0x55 || boot[511] != 0xAA {
            return Err("no boot sector signature".into());
        }
        let bps = u16le(&boot, 11);
        let spc = u64::from(boot[13]);
        let reserved = u16le(&boot, 14);
        let fats = u64::from(boot[16]);
        let root_entries = u16le(&boot, 17);
        let fat16 = u16le(&boot, 22);
        let total = match u16le(&boot, 19) {
            0 => u32le(&boot, 32),
            t => t,
        };
        let fat_size = u32le(&boot, 36);
        if !matches!(bps, 512 | 1024 | 2048 | 4096)
            || spc == 0
            || !spc.is_power_of_two()
            || fats == 0
            || reserved == 0
        {
            return Err("not a FAT boot sector".into());
        }
        if root_entries != 0 || fat16 != 0 || fat_size == 0 {
            return Err("a FAT12/16 volume, not FAT32".into());
        }
        let data_start = reserved + fats * fat_size;
        if total <= data_start {
            return Err("volume smaller than its FATs".into());
        }
        let clusters = (total - data_start) / spc;
        Ok(Geometry {
            bytes_per_sector: bps,
            sectors_per_cluster: spc,
            reserved,
            fats,
            fat_size,
            root_cluster: u32le(&boot, 44) as u32,
            clusters,
        })
    }

    pub(crate) fn cluster_size(&self) -> u64 {
        self.bytes_per_sector * self.sectors_per_cluster
    }

    pub(crate) fn cluster_offset(&self, c: u32) -> u64 {
        (self.reserved + self.fats * self.fat_size) * self.bytes_per_sector
            + u64::from(c.saturating_sub(2)) * self.cluster_size()
    }

    fn valid(&self, c: u32) -> bool {
        c >= 2 && u64::from(c) < self.clusters + 2
    }

    /// The cluster chain starting at `first` (cut at a bad link or a loop).
    pub(crate) fn chain(&self, io: &mut impl RawIo, first: u32) -> std::io::Result<Vec<u32>> {
        let mut out = Vec::new();
        let mut c = first;
        while self.valid(c) && (out.len() as u64) <= self.clusters {
            out.push(c);
            let mut e = [0u8; 4];
            io.read_at(
                self.reserved * self.bytes_per_sector + u64::from(c) * 4,
                &mut e,
            )?;
            c = u32::from_le_bytes(e) & 0x0FFF_FFFF;
        }
        Ok(out)
    }

    /// The raw 32-byte entries of a directory.
    pub(crate) fn dir_entries(
        &self,
        io: &mut impl RawIo,
        first: u32,
    ) -> std::io::Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        for c in self.chain(io, first)? {
            let mut buf = vec![0u8; self.cluster_size() as usize];
            io.read_at(self.cluster_offset(c), &mut buf)?;
            for e in buf.chunks_exact(32) {
                let mut a = [0u8; 32];
                a.copy_from_slice(e);
                if a[0] == 0 {
                    return Ok(out);
                }
                out.push(a);
            }
        }
        Ok(out)
    }
}

const ATTR_LFN: u8 = 0x0F;
const ATTR_DIR: u8 = 0x10;
const ATTR_VOLUME: u8 = 0x08;

pub(crate) fn entry_cluster(e: &[u8; 32]) -> u32 {
    ((u16le(e, 20) << 16) | u16le(e, 26)) as u32
}

fn is_live_sfn(e: &[u8; 32]) -> bool {
    e[0] != 0 && e[0] != 0xE5 && e[11] != ATTR_LFN
}

/// Finds the first cluster of the root-directory file whose 8.3 name is
/// `name` (11 bytes, space-padded, upper case).
pub(crate) fn find_in_root(
    g: &Geometry,
    io: &mut impl RawIo,
    name: &[u8; 11],
) -> std::io::Result<Option<(u32, u64)>> {
    for e in g.dir_entries(io, g.root_cluster)? {
        if is_live_sfn(&e) && e[11] & (ATTR_DIR | ATTR_VOLUME) == 0 && &e[..11] == name {
            return Ok(Some((entry_cluster(&e), u32le(&e, 28))));
        }
    }
    Ok(None)
}

/// Repairs what fatfs 0.3.6 writes when it creates a subdirectory, so that
/// `fsck.fat -n` accepts the image: fatfs puts an LFN entry in front of
/// `.` and of `..`, and points `..` of a child of the FAT32 root at the
/// root's cluster (2) where the specification wants 0. For each
/// subdirectory of the root, the first cluster is rewritten to `.`, `..`
/// (cluster 0) and then the other entries in their order, without the LFN
/// entries that belonged to `.` and `..`. Directories that are already
/// right are not touched. Returns how many were repaired.
///
/// Only children of the root are handled: ptt creates no deeper directory.
pub(crate) fn fix_subdirs(g: &Geometry, io: &mut impl RawIo) -> std::io::Result<usize> {
    let mut fixed = 0;
    for e in g.dir_entries(io, g.root_cluster)? {
        if !is_live_sfn(&e) || e[11] & ATTR_DIR == 0 || e[11] & ATTR_VOLUME != 0 || e[0] == b'.' {
            continue;
        }
        let first = entry_cluster(&e);
        if !g.valid(first) {
            continue;
        }
        let off = g.cluster_offset(first);
        let mut buf = vec![0u8; g.cluster_size() as usize];
        io.read_at(off, &mut buf)?;
        let slots: Vec<[u8; 32]> = buf
            .chunks_exact(32)
            .map(|c| {
                let mut a = [0u8; 32];
                a.copy_from_slice(c);
                a
            })
            .collect();
        let used = slots.iter().position(|s| s[0] == 0).unwrap_or(slots.len());
        let is_dot = |s: &[u8; 32]| is_live_sfn(s) && &s[..11] == b".          ";
        let is_dotdot = |s: &[u8; 32]| is_live_sfn(s) && &s[..11] == b"..         ";
        let right = slots.first().is_some_and(is_dot)
            && slots
                .get(1)
                .is_some_and(|s| is_dotdot(s) && entry_cluster(s) == 0);
        if right {
            continue;
        }
        let (Some(dot), Some(dotdot)) = (
            slots.iter().take(used).find(|s| is_dot(s)).copied(),
            slots.iter().take(used).find(|s| is_dotdot(s)).copied(),
        ) else {
            continue;
        };
        let mut dotdot = dotdot;
        dotdot[20] = 0;
        dotdot[21] = 0;
        dotdot[26] = 0;
        dotdot[27] = 0;
        let mut rest = Vec::new();
        let mut i = 0;
        while i < used {
            // A run of LFN entries followed by `.` or `..` goes with it.
            let mut j = i;
            while j < used && slots[j][11] == ATTR_LFN && slots[j][0] != 0xE5 {
                j += 1;
            }
            if j < used && (is_dot(&slots[j]) || is_dotdot(&slots[j])) {
                i = j + 1;
                continue;
            }
            let end = (j + 1).min(used);
            rest.extend_from_slice(&slots[i..end]);
            i = end;
        }
        let mut out = vec![dot, dotdot];
        out.extend(rest);
        let ends_here = used < slots.len();
        let mut bytes = Vec::with_capacity(buf.len());
        for k in 0..slots.len() {
            match out.get(k) {
                Some(s) => bytes.extend_from_slice(s),
                None if k < used && !ends_here => {
                    let mut del = [0u8; 32];
                    del[0] = 0xE5;
                    bytes.extend_from_slice(&del);
                }
                None => bytes.extend_from_slice(&[0u8; 32]),
            }
        }
        io.write_at(off, &bytes)?;
        fixed += 1;
    }
    Ok(fixed)
}
