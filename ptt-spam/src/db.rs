//! The token table: message counts per class and, per token hash, how many
//! spam and ham messages contained it.
//!
//! In memory and on disk it is the same open-addressing hash table (linear
//! probing, power-of-two capacity, hash 0 marks an empty slot), so a stored
//! database is usable as soon as it is mapped and checked, without decoding
//! or rebuilding anything: a loaded table stays in the file's pages until it
//! is first changed.

use alloc::vec;
use alloc::vec::Vec;

use crate::Class;
use crate::DEFAULT_OSB_WINDOW;

/// One slot of the table: a token hash and its spam and ham message counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) hash: u64,
    pub(crate) spam: u32,
    pub(crate) ham: u32,
}

/// Counts for one token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Spam messages trained that contained the token.
    pub spam: u32,
    /// Ham messages trained that contained the token.
    pub ham: u32,
}

/// A trained token database.
pub struct TokenDb {
    /// The OSB window of the tokens (see [`crate::Tokenizer::osb_window`]).
    pub(crate) osb_window: u8,
    pub(crate) spam_messages: u64,
    pub(crate) ham_messages: u64,
    /// The slots, when in memory (a new or changed table); empty while
    /// `mapped` holds them.
    pub(crate) slots: Vec<Slot>,
    /// The pages of a loaded store file, checked, in their own layout (16
    /// bytes a slot, see [`crate::store`]), until the table is first changed.
    #[cfg(feature = "std")]
    pub(crate) mapped: Option<crate::mapped::Mapped>,
    /// Occupied slots (including tokens whose counts fell to zero).
    pub(crate) len: usize,
}

impl core::fmt::Debug for TokenDb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TokenDb")
            .field("osb_window", &self.osb_window)
            .field("spam_messages", &self.spam_messages)
            .field("ham_messages", &self.ham_messages)
            .field("capacity", &self.capacity())
            .field("occupied", &self.len)
            .field("mapped", &self.mapped_bytes().is_some())
            .finish()
    }
}

impl Clone for TokenDb {
    /// A copy in memory (a mapped table is decoded).
    fn clone(&self) -> Self {
        TokenDb {
            osb_window: self.osb_window,
            spam_messages: self.spam_messages,
            ham_messages: self.ham_messages,
            slots: (0..self.capacity()).map(|i| self.slot_at(i)).collect(),
            #[cfg(feature = "std")]
            mapped: None,
            len: self.len,
        }
    }
}

impl PartialEq for TokenDb {
    /// The same counts in the same table layout, wherever the slots live.
    fn eq(&self, other: &Self) -> bool {
        self.osb_window == other.osb_window
            && self.spam_messages == other.spam_messages
            && self.ham_messages == other.ham_messages
            && self.len == other.len
            && self.capacity() == other.capacity()
            && (0..self.capacity()).all(|i| self.slot_at(i) == other.slot_at(i))
    }
}

impl Eq for TokenDb {}

/// Reads slot `i` of a 16-byte-per-slot table (empty past the end).
#[inline]
pub(crate) fn slot_from_bytes(bytes: &[u8], i: usize) -> Slot {
    let mut b = [0u8; 16];
    if let Some(s) = i.checked_mul(16).and_then(|at| bytes.get(at..at + 16)) {
        b.copy_from_slice(s);
    }
    let [
        h0,
        h1,
        h2,
        h3,
        h4,
        h5,
        h6,
        h7,
        s0,
        s1,
        s2,
        s3,
        a0,
        a1,
        a2,
        a3,
    ] = b;
    Slot {
        hash: u64::from_le_bytes([h0, h1, h2, h3, h4, h5, h6, h7]),
        spam: u32::from_le_bytes([s0, s1, s2, s3]),
        ham: u32::from_le_bytes([a0, a1, a2, a3]),
    }
}

/// Linear probing over any slot array: `at(i)` reads slot `i`.
#[inline]
fn probe(capacity: usize, hash: u64, at: impl Fn(usize) -> Slot) -> Counts {
    let mask = capacity.wrapping_sub(1);
    let mut i = (hash as usize) & mask;
    // At most `capacity` probes, even in a (corrupt) table with no empty slot.
    for _ in 0..capacity {
        let slot = at(i);
        if slot.hash == hash {
            return Counts {
                spam: slot.spam,
                ham: slot.ham,
            };
        }
        if slot.hash == 0 {
            break;
        }
        i = (i + 1) & mask;
    }
    Counts::default()
}

impl Default for TokenDb {
    fn default() -> Self {
        Self::new()
    }
}

const MIN_CAPACITY: usize = 1024;

impl TokenDb {
    /// An empty database.
    pub fn new() -> Self {
        TokenDb {
            osb_window: DEFAULT_OSB_WINDOW as u8,
            spam_messages: 0,
            ham_messages: 0,
            slots: vec![Slot::default(); MIN_CAPACITY],
            #[cfg(feature = "std")]
            mapped: None,
            len: 0,
        }
    }

    /// The slot bytes of a loaded store file, while they hold the table.
    #[inline]
    pub(crate) fn mapped_bytes(&self) -> Option<&[u8]> {
        #[cfg(feature = "std")]
        if let Some(m) = &self.mapped {
            return Some(m.slot_bytes());
        }
        None
    }

    /// Slots in the table (a power of two).
    pub(crate) fn capacity(&self) -> usize {
        match self.mapped_bytes() {
            Some(bytes) => bytes.len() / 16,
            None => self.slots.len(),
        }
    }

    /// Slot `i` (empty past the end).
    pub(crate) fn slot_at(&self, i: usize) -> Slot {
        match self.mapped_bytes() {
            Some(bytes) => slot_from_bytes(bytes, i),
            None => self.slots.get(i).copied().unwrap_or_default(),
        }
    }

    /// The slots in memory, decoding a mapped table first.
    fn slots_mut(&mut self) -> &mut Vec<Slot> {
        #[cfg(feature = "std")]
        if let Some(m) = self.mapped.take() {
            let bytes = m.slot_bytes();
            self.slots = (0..bytes.len() / 16)
                .map(|i| slot_from_bytes(bytes, i))
                .collect();
        }
        &mut self.slots
    }

    /// An empty database for tokens made with OSB window `window` (1 to 5;
    /// [`TokenDb::new`] has the default, 5). The window is saved with the
    /// store, so that classifying uses the window of the training.
    pub fn with_osb_window(window: usize) -> Self {
        let mut db = TokenDb::new();
        db.osb_window = window.clamp(1, crate::MAX_OSB_WINDOW) as u8;
        db
    }

    /// The OSB window the tokens were made with.
    pub fn osb_window(&self) -> usize {
        usize::from(self.osb_window)
    }

    /// Spam messages trained.
    pub fn spam_messages(&self) -> u64 {
        self.spam_messages
    }

    /// Ham messages trained.
    pub fn ham_messages(&self) -> u64 {
        self.ham_messages
    }

    /// Distinct tokens with a non-zero count.
    pub fn token_count(&self) -> usize {
        (0..self.capacity())
            .map(|i| self.slot_at(i))
            .filter(|s| s.hash != 0 && (s.spam != 0 || s.ham != 0))
            .count()
    }

    /// The counts of one token hash (zero when unknown).
    #[inline]
    pub fn get(&self, hash: u64) -> Counts {
        if hash == 0 {
            return Counts::default();
        }
        match self.mapped_bytes() {
            Some(bytes) => probe(bytes.len() / 16, hash, |i| slot_from_bytes(bytes, i)),
            None => {
                let v = &self.slots;
                probe(v.len(), hash, |i| v.get(i).copied().unwrap_or_default())
            }
        }
    }

    /// Asks the CPU to fetch the slot where `hash` would start its probe,
    /// so that a run of lookups overlaps its cache misses (a hint: no
    /// effect on results).
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let ptr: *const u8 = match self.mapped_bytes() {
                Some(bytes) => {
                    let i = (hash as usize) & (bytes.len() / 16).wrapping_sub(1);
                    bytes.as_ptr().wrapping_add(i.wrapping_mul(16))
                }
                None => {
                    let i = (hash as usize) & self.slots.len().wrapping_sub(1);
                    self.slots.as_ptr().wrapping_add(i).cast()
                }
            };
            // The probe often runs on into the next cache line (16-byte
            // slots, four to a line): fetch that one too.
            // SAFETY: a prefetch is only a hint: it never faults and changes
            // nothing, whatever the address (here inside the table or just
            // past its end).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(ptr.cast());
                _mm_prefetch::<_MM_HINT_T0>(ptr.wrapping_add(64).cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    fn slot_mut(&mut self, hash: u64) -> &mut Slot {
        if (self.len + 1) * 4 > self.capacity() * 3 {
            self.grow();
        }
        let slots = self.slots_mut();
        let mask = slots.len() - 1;
        let mut i = (hash as usize) & mask;
        let mut new = false;
        loop {
            let h = slots[i].hash;
            if h == hash {
                break;
            }
            if h == 0 {
                slots[i].hash = hash;
                new = true;
                break;
            }
            i = (i + 1) & mask;
        }
        self.len += usize::from(new);
        &mut self.slots_mut()[i]
    }

    fn grow(&mut self) {
        let old = core::mem::take(self.slots_mut());
        self.rebuild_from(old, self.slots_for(self.len + 1));
    }

    fn slots_for(&self, n: usize) -> usize {
        // Keep the load factor at or under one half after a rebuild.
        (n * 2).next_power_of_two().max(MIN_CAPACITY)
    }

    fn rebuild_from(&mut self, old: Vec<Slot>, capacity: usize) {
        let mut slots = vec![Slot::default(); capacity];
        self.len = 0;
        let mask = capacity - 1;
        for slot in old
            .into_iter()
            .filter(|s| s.hash != 0 && (s.spam != 0 || s.ham != 0))
        {
            let mut i = (slot.hash as usize) & mask;
            while slots[i].hash != 0 {
                i = (i + 1) & mask;
            }
            slots[i] = slot;
            self.len += 1;
        }
        self.slots = slots;
    }

    /// Drops tokens whose counts fell to zero and shrinks the table to fit.
    pub fn compact(&mut self) {
        let live = self.token_count();
        let old = core::mem::take(self.slots_mut());
        let capacity = self.slots_for(live);
        self.rebuild_from(old, capacity);
    }

    /// Drops tokens seen in fewer than `min_messages` messages (spam and
    /// ham together) and shrinks the table: most tokens of a large training
    /// set, OSB pairs above all, were seen once and say little, while they
    /// make the table several times larger and lookups slower.
    pub fn prune(&mut self, min_messages: u32) {
        for slot in self.slots_mut() {
            if slot.spam.saturating_add(slot.ham) < min_messages {
                slot.spam = 0;
                slot.ham = 0;
            }
        }
        self.compact();
    }

    /// Counts one message of `class` containing `tokens` (each hash once:
    /// pass the deduplicated hashes of [`crate::Tokens`]).
    pub fn train(&mut self, tokens: &[u64], class: Class) {
        for &hash in tokens {
            if hash == 0 {
                continue;
            }
            let slot = self.slot_mut(hash);
            match class {
                Class::Spam => slot.spam = slot.spam.saturating_add(1),
                Class::Ham => slot.ham = slot.ham.saturating_add(1),
            }
        }
        match class {
            Class::Spam => self.spam_messages = self.spam_messages.saturating_add(1),
            Class::Ham => self.ham_messages = self.ham_messages.saturating_add(1),
        }
    }

    /// Undoes [`TokenDb::train`] of the same message and class (a user's
    /// correction of a wrong training). Counts never go below zero.
    pub fn untrain(&mut self, tokens: &[u64], class: Class) {
        let slots = self.slots_mut();
        let mask = slots.len() - 1;
        for &hash in tokens {
            let mut i = (hash as usize) & mask;
            while let Some(slot) = slots.get_mut(i) {
                if slot.hash == hash && hash != 0 {
                    match class {
                        Class::Spam => slot.spam = slot.spam.saturating_sub(1),
                        Class::Ham => slot.ham = slot.ham.saturating_sub(1),
                    }
                    break;
                }
                if slot.hash == 0 {
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        match class {
            Class::Spam => self.spam_messages = self.spam_messages.saturating_sub(1),
            Class::Ham => self.ham_messages = self.ham_messages.saturating_sub(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_drops_rare_tokens() {
        let mut db = TokenDb::new();
        let toks: Vec<u64> = (1..5000u64).map(|i| crate::hash::mix(i) | 1).collect();
        db.train(&toks, Class::Spam);
        db.train(&toks[..100], Class::Ham);
        db.prune(2);
        assert_eq!(db.token_count(), 100);
        assert_eq!(db.get(toks[50]), Counts { spam: 1, ham: 1 });
        assert_eq!(db.get(toks[200]), Counts::default());
        assert!(db.capacity() < 1024 * 2);
        assert_eq!(db.spam_messages(), 1);
    }

    #[test]
    fn train_untrain_roundtrip() {
        let mut db = TokenDb::new();
        let toks: Vec<u64> = (1..5000u64).map(|i| crate::hash::mix(i) | 1).collect();
        db.train(&toks, Class::Spam);
        db.train(&toks[..10], Class::Ham);
        assert_eq!(db.get(toks[0]), Counts { spam: 1, ham: 1 });
        assert_eq!(db.get(toks[4000]), Counts { spam: 1, ham: 0 });
        assert_eq!(db.get(12345), Counts::default());
        db.untrain(&toks, Class::Spam);
        assert_eq!(db.get(toks[4000]), Counts::default());
        assert_eq!(db.token_count(), 10);
        assert_eq!((db.spam_messages(), db.ham_messages()), (0, 1));
        db.compact();
        assert_eq!(db.len, 10);
        assert_eq!(db.get(toks[3]), Counts { spam: 0, ham: 1 });
        // Untraining more than trained saturates at zero.
        db.untrain(&toks, Class::Spam);
        assert_eq!(db.spam_messages(), 0);
    }
}
