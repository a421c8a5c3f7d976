//! The heap budget: a counting global allocator and the admission rule
//! that keeps the process inside its budget (a unikernel has a fixed
//! heap; running out there is the end of it).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes allocated now, through [`CountingAllocator`].
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
/// The most that was allocated at once.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting what is allocated. It never refuses an
/// allocation itself: the receiver's admission rule keeps new work out before the
/// budget is reached.
///
/// ```
/// use ptt_bins::smol::{CountingAllocator, allocated, peak_allocated};
///
/// #[global_allocator]
/// static HEAP: CountingAllocator = CountingAllocator;
///
/// fn main() {
///     let before = allocated();
///     let block = vec![1u8; 1 << 20];
///     assert!(allocated() >= before + (1 << 20));
///     drop(block);
///     assert!(allocated() < before + (1 << 20));
///     assert!(peak_allocated() >= before + (1 << 20));
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

fn count_up(size: usize) {
    let now = ALLOCATED.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to `System` unchanged; only counts are
// kept beside it.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_up(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count_up(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            ALLOCATED.fetch_sub(layout.size(), Ordering::Relaxed);
            count_up(new_size);
        }
        p
    }
}

/// Bytes allocated now (0 unless [`CountingAllocator`] is the global
/// allocator).
pub fn allocated() -> usize {
    ALLOCATED.load(Ordering::Relaxed)
}

/// The most bytes allocated at once so far.
pub fn peak_allocated() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// The heap budget and what a new session is reckoned to need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// The whole heap the process may use, in bytes.
    pub(crate) limit: usize,
    /// What one session may take besides its message: its socket buffers,
    /// its SMTP machine and a TLS session (reserved when it is let in,
    /// since it grows after: the handshake comes later).
    pub(crate) per_session: usize,
    /// What the process holds with no session (measured at start).
    pub(crate) baseline: usize,
}

impl Budget {
    /// Whether one more session fits beside `live` sessions, with
    /// `allocated` bytes in use and `headroom` left over (room for a
    /// message to grow: one that goes over the budget anyway has its data
    /// dropped and is refused with 452, see [`Budget::over`]). Each live
    /// session counts at least its reservation, so a burst of connections
    /// is not let in on the heap they have not taken yet.
    pub(crate) fn admits(&self, allocated: usize, live: usize, headroom: usize) -> bool {
        let reserved = self
            .baseline
            .saturating_add(live.saturating_mul(self.per_session));
        allocated
            .max(reserved)
            .saturating_add(self.per_session)
            .saturating_add(headroom)
            <= self.limit
    }

    /// Whether `allocated` is past the budget: message data arriving then
    /// is dropped and its transaction refused.
    pub(crate) fn over(&self, allocated: usize) -> bool {
        allocated > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_let_in_only_with_room_for_it_and_the_reservations_before_it() {
        let budget = Budget {
            limit: 64 << 20,
            per_session: 128 << 10,
            baseline: 2 << 20,
        };
        assert!(budget.admits(10 << 20, 0, 10 << 20));
        assert!(!budget.admits(60 << 20, 0, 10 << 20));
        assert!(!budget.admits(usize::MAX, 0, 0));
        assert!(budget.admits((64 << 20) - (128 << 10), 0, 0));
        // 100 sessions just let in hold little yet, but their
        // reservations count: 2 MiB + 100 x 128 KiB + 128 KiB + 50 MiB is
        // over 64 MiB, though only 3 MiB is allocated.
        assert!(!budget.admits(3 << 20, 100, 50 << 20));
        assert!(budget.admits(3 << 20, 100, 40 << 20));
        assert!(budget.over((64 << 20) + 1));
        assert!(!budget.over(64 << 20));
    }
}
