//! When to try again, and when to give up.

use alloc::vec;
use alloc::vec::Vec;

/// The retry schedule of a queue, in seconds.
///
/// ```
/// use ptt_queue::RetryPolicy;
/// let policy = RetryPolicy::default();
/// // The wait after the first failed attempt, then the second…
/// assert_eq!(policy.wait_after(1), 300);
/// assert_eq!(policy.wait_after(2), 900);
/// // …and the last step repeats.
/// assert_eq!(policy.wait_after(40), 4 * 3600);
/// assert_eq!(policy.give_up_after, 5 * 86_400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Waits after the 1st, 2nd, … failed attempt; the last one repeats.
    /// Never empty (an empty list means 5 minutes).
    pub backoff: Vec<u64>,
    /// A message still not delivered this long after it arrived fails for
    /// the recipients left (one last attempt is made at that moment).
    pub give_up_after: u64,
    /// When set, a "delayed" report goes to the sender (once) when a
    /// message has waited this long.
    pub warn_after: Option<u64>,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            backoff: vec![300, 900, 1800, 3600, 7200, 4 * 3600],
            give_up_after: 5 * 86_400,
            warn_after: None,
        }
    }
}

impl RetryPolicy {
    /// How long to wait after the `attempts`-th attempt (1-based) failed.
    pub fn wait_after(&self, attempts: u32) -> u64 {
        let i = (attempts.max(1) - 1) as usize;
        match self.backoff.get(i).or(self.backoff.last()) {
            Some(&wait) => wait.max(1),
            None => 300,
        }
    }

    /// When a message that arrived at `arrived` is tried next, after its
    /// `attempts`-th attempt ended at `now`: never later than its deadline.
    pub fn next_attempt(&self, arrived: u64, attempts: u32, now: u64) -> u64 {
        let deadline = self.deadline(arrived);
        now.saturating_add(self.wait_after(attempts))
            .min(deadline.max(now))
    }

    /// When a message that arrived at `arrived` fails.
    pub fn deadline(&self, arrived: u64) -> u64 {
        arrived.saturating_add(self.give_up_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_caps_the_wait() {
        let p = RetryPolicy::default();
        let arrived = 1_000_000;
        let late = arrived + p.give_up_after - 60;
        assert_eq!(p.next_attempt(arrived, 9, late), p.deadline(arrived));
        assert_eq!(p.next_attempt(arrived, 1, arrived), arrived + 300);
        let empty = RetryPolicy {
            backoff: Vec::new(),
            ..RetryPolicy::default()
        };
        assert_eq!(empty.wait_after(3), 300);
    }
}
