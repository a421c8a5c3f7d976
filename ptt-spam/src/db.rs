//! The token table: message counts per class and, per token hash, how many
//! spam and ham messages contained it.
//!
//! In memory and on disk it is the same open-addressing hash table (linear
//! probing, power-of-two capacity, hash 0 marks an empty slot), so a stored
//! database is usable right after one read, without rebuilding anything.

use alloc::vec;
use alloc::vec::Vec;

use crate::Class;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenDb {
    pub(crate) spam_messages: u64,
    pub(crate) ham_messages: u64,
    pub(crate) slots: Vec<Slot>,
    /// Occupied slots (including tokens whose counts fell to zero).
    pub(crate) len: usize,
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
            spam_messages: 0,
            ham_messages: 0,
            slots: vec![Slot::default(); MIN_CAPACITY],
            len: 0,
        }
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
        self.slots
            .iter()
            .filter(|s| s.hash != 0 && (s.spam != 0 || s.ham != 0))
            .count()
    }

    /// The counts of one token hash (zero when unknown).
    #[inline]
    pub fn get(&self, hash: u64) -> Counts {
        let mask = self.slots.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            let Some(slot) = self.slots.get(i) else {
                return Counts::default();
            };
            if slot.hash == hash {
                return Counts {
                    spam: slot.spam,
                    ham: slot.ham,
                };
            }
            if slot.hash == 0 {
                return Counts::default();
            }
            i = (i + 1) & mask;
        }
    }

    fn slot_mut(&mut self, hash: u64) -> &mut Slot {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = (hash as usize) & mask;
        loop {
            let h = self.slots[i].hash;
            if h == hash {
                break;
            }
            if h == 0 {
                self.slots[i].hash = hash;
                self.len += 1;
                break;
            }
            i = (i + 1) & mask;
        }
        &mut self.slots[i]
    }

    fn grow(&mut self) {
        let old = core::mem::take(&mut self.slots);
        self.rebuild_from(old, self.slots_for(self.len + 1));
    }

    fn slots_for(&self, n: usize) -> usize {
        // Keep the load factor at or under one half after a rebuild.
        (n * 2).next_power_of_two().max(MIN_CAPACITY)
    }

    fn rebuild_from(&mut self, old: Vec<Slot>, capacity: usize) {
        self.slots = vec![Slot::default(); capacity];
        self.len = 0;
        let mask = capacity - 1;
        for slot in old
            .into_iter()
            .filter(|s| s.hash != 0 && (s.spam != 0 || s.ham != 0))
        {
            let mut i = (slot.hash as usize) & mask;
            while self.slots[i].hash != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
            self.len += 1;
        }
    }

    /// Drops tokens whose counts fell to zero and shrinks the table to fit.
    pub fn compact(&mut self) {
        let live = self.token_count();
        let old = core::mem::take(&mut self.slots);
        let capacity = self.slots_for(live);
        self.rebuild_from(old, capacity);
    }

    /// Drops tokens seen in fewer than `min_messages` messages (spam and
    /// ham together) and shrinks the table: most tokens of a large training
    /// set, OSB pairs above all, were seen once and say little, while they
    /// make the table several times larger and lookups slower.
    pub fn prune(&mut self, min_messages: u32) {
        for slot in &mut self.slots {
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
        let mask = self.slots.len() - 1;
        for &hash in tokens {
            let mut i = (hash as usize) & mask;
            while let Some(slot) = self.slots.get_mut(i) {
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
        assert!(db.slots.len() < 1024 * 2);
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
