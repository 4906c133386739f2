//! Lamport's logical clock.
//!
//! Invariants: the value never decreases; `tick` returns a value strictly greater than every value
//! returned before by this clock; `update(r)` returns a value strictly greater than both `r` and
//! every value returned before. A new clock reads 0.

use std::sync::atomic::{AtomicU64, Ordering};

/// A thread-safe Lamport clock (lock-free).
///
/// # Example
///
/// ```
/// use kafka_timesync::clock::LamportClock;
///
/// let a = LamportClock::new();
/// let b = LamportClock::new();
/// let sent = a.tick(); // a stamps a message: 1
/// b.tick(); // b stamps one of its own: 1
/// let received = b.update(sent); // b receives a's message: max(1, 1) + 1
/// assert_eq!((sent, received), (1, 2));
/// assert!(b.tick() > received, "every later event is stamped higher");
/// ```
#[derive(Debug, Default)]
pub struct LamportClock {
    value: AtomicU64,
}

impl LamportClock {
    /// A clock reading 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock resuming from a persisted value.
    pub fn starting_at(value: u64) -> Self {
        Self {
            value: AtomicU64::new(value),
        }
    }

    /// The current value, without advancing.
    pub fn value(&self) -> u64 {
        self.value.load(Ordering::SeqCst)
    }

    /// A local or send event: increments and returns the new value.
    ///
    /// Saturates at `u64::MAX` rather than wrapping, so the clock never runs backwards.
    pub fn tick(&self) -> u64 {
        self.advance(|v| v.saturating_add(1))
    }

    /// A receive event: sets the clock to `max(local, received) + 1` and returns it.
    pub fn update(&self, received: u64) -> u64 {
        self.advance(|v| v.max(received).saturating_add(1))
    }

    /// Merges a received value without counting an event: `max(local, received)`.
    pub fn witness(&self, received: u64) -> u64 {
        self.advance(|v| v.max(received))
    }

    fn advance(&self, f: impl Fn(u64) -> u64) -> u64 {
        let mut cur = self.value.load(Ordering::SeqCst);
        loop {
            let next = f(cur);
            match self
                .value
                .compare_exchange_weak(cur, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn prototype_expectations() {
        let c = LamportClock::new();
        assert_eq!(c.value(), 0);
        assert_eq!(c.tick(), 1);
        assert_eq!(c.tick(), 2);
        assert_eq!(c.update(5), 6);
        assert_eq!(c.update(3), 7);
        assert_eq!(c.value(), 7);
    }

    #[test]
    fn three_threads_ticking_give_thirty_distinct_values() {
        let c = Arc::new(LamportClock::new());
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || (0..10).map(|_| c.tick()).collect::<Vec<_>>())
            })
            .collect();
        let all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let distinct: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(distinct.len(), 30);
        assert_eq!(all.iter().max(), Some(&30));
    }

    #[test]
    fn witness_does_not_count_an_event() {
        let c = LamportClock::starting_at(4);
        assert_eq!(c.witness(2), 4);
        assert_eq!(c.witness(9), 9);
        assert_eq!(c.tick(), 10);
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let c = LamportClock::starting_at(u64::MAX);
        assert_eq!(c.tick(), u64::MAX);
        assert_eq!(c.update(3), u64::MAX);
    }
}
