//! A store file mapped read-only: what a [`crate::TokenDb`] loaded by
//! [`crate::store::load`] reads its slots from until it is first changed.
//! Its own module, so that the database and the store file format do not
//! import each other.

/// A mapped store whose header and checksum were checked.
pub(crate) struct Mapped {
    map: memmap2::Mmap,
    slots: core::ops::Range<usize>,
}

impl Mapped {
    /// The mapping, with the byte range of its slot array.
    pub(crate) fn new(map: memmap2::Mmap, slots: core::ops::Range<usize>) -> Mapped {
        Mapped { map, slots }
    }

    /// The slot array (16 bytes a slot).
    #[inline]
    pub(crate) fn slot_bytes(&self) -> &[u8] {
        self.map.get(self.slots.clone()).unwrap_or(&[])
    }
}
