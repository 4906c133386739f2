//! Hybrid logical clock (Kulkarni, Demirbas, Madeppa, Avva, Leone: "Logical Physical Clocks",
//! 2014).
//!
//! A [`HybridTimestamp`] is `(wall_ms, logical)`: `wall_ms` is the largest physical time (Unix
//! milliseconds) this node has heard of, `logical` orders events that share the same `wall_ms`.
//! Timestamps compare lexicographically and respect happened-before like a Lamport clock, while
//! staying close to physical time.
//!
//! Invariants of a [`HybridClock`]:
//!
//! * **Monotonic.** Every timestamp returned by [`HybridClock::send`] / [`HybridClock::receive`]
//!   is strictly greater than every timestamp the clock returned or was resumed from before, even
//!   if the physical time source steps backwards (the only exception is saturation at
//!   `(u64::MAX, u32::MAX)`, unreachable with real clocks).
//! * **Never behind physical time.** `wall_ms >= pt` where `pt` is the physical time read for the
//!   operation (a negative physical time reads as 0).
//! * **Receive dominates both.** `receive(m)` returns a timestamp greater than `m` and greater than
//!   the local clock before the call.
//! * **Bounded drift from physical time.** A remote timestamp whose `wall_ms` is more than
//!   `max_offset_ms` ahead of local physical time is refused with [`HlcError::TooFarAhead`] (and
//!   counted, see [`HybridClock::refused_count`]); the clock is left unchanged. So `wall_ms` never
//!   exceeds `pt + max_offset_ms + 1` for a clock that is only fed accepted timestamps (the `+ 1`
//!   comes from the carry below). This is the rule CockroachDB applies.
//! * **Bounded logical part.** `logical` is a `u32`. Advancing `logical` past `u32::MAX`
//!   ([`MAX_LOGICAL`]) instead advances `wall_ms` by one millisecond and resets `logical` to 0
//!   (a carry): wait-free, order-preserving, and it never blocks for physical time to catch up.
//!   With honest peers `logical` stays small (the paper bounds it by the number of events within
//!   the clock uncertainty window); a carry only happens after 2³² events within one millisecond
//!   or when a peer sends `logical = u32::MAX`.
//!
//! The clock is `Send + Sync`: one instance is shared by all tasks of a node (a short mutex
//! section per operation).

use crate::time::TimeSource;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The largest logical counter; advancing past it carries into `wall_ms`.
pub const MAX_LOGICAL: u32 = u32::MAX;

/// An HLC timestamp: wall-clock milliseconds plus a logical counter that orders events within
/// the same millisecond. Ordered lexicographically (wall_ms, then logical).
///
/// Displayed as `wall_ms:logical`, e.g. `1790000000223:0`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct HybridTimestamp {
    /// Milliseconds since the Unix epoch (the largest physical time seen).
    pub wall_ms: u64,
    /// Events at the same `wall_ms`.
    pub logical: u32,
}

impl HybridTimestamp {
    /// A timestamp from its parts.
    pub const fn new(wall_ms: u64, logical: u32) -> Self {
        Self { wall_ms, logical }
    }

    /// The next timestamp: `logical + 1`, or a carry to `(wall_ms + 1, 0)` at [`MAX_LOGICAL`].
    /// Saturates at `(u64::MAX, u32::MAX)`.
    pub const fn successor(self) -> Self {
        if self.logical < MAX_LOGICAL {
            Self {
                wall_ms: self.wall_ms,
                logical: self.logical + 1,
            }
        } else if self.wall_ms < u64::MAX {
            Self {
                wall_ms: self.wall_ms + 1,
                logical: 0,
            }
        } else {
            self
        }
    }
}

impl std::fmt::Display for HybridTimestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.wall_ms, self.logical)
    }
}

/// Why a hybrid clock refused a remote timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlcError {
    /// The remote `wall_ms` is further ahead of local physical time than the maximum offset.
    #[error(
        "remote hybrid timestamp {remote} is {ahead_ms} ms ahead of local physical time \
         {physical_ms} ms, more than the maximum clock offset of {max_offset_ms} ms"
    )]
    TooFarAhead {
        /// The refused timestamp.
        remote: HybridTimestamp,
        /// Local physical time (Unix ms) when it was refused.
        physical_ms: u64,
        /// `remote.wall_ms - physical_ms`.
        ahead_ms: u64,
        /// The configured maximum offset.
        max_offset_ms: u64,
    },
}

/// A thread-safe hybrid logical clock over an injected physical time source.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use kafka_timesync::clock::{HybridClock, HybridTimestamp};
/// use kafka_timesync::time::ManualTime;
///
/// let time = Arc::new(ManualTime::new(1_790_000_000_000_000_000)); // ns: 1790000000000 ms
/// let clock = HybridClock::new(time.clone(), 500);
/// // Two sends within one millisecond: same wall time, the logical part orders them.
/// assert_eq!(clock.send(), HybridTimestamp::new(1_790_000_000_000, 0));
/// assert_eq!(clock.send(), HybridTimestamp::new(1_790_000_000_000, 1));
/// // A message from a node 200 ms ahead: the clock moves past it, whatever its own time says.
/// let remote = HybridTimestamp::new(1_790_000_000_200, 3);
/// assert_eq!(clock.receive(&remote), Ok(HybridTimestamp::new(1_790_000_000_200, 4)));
/// // One more than max_offset_ms (500) ahead of physical time is refused.
/// assert!(clock.receive(&HybridTimestamp::new(1_790_000_000_501, 0)).is_err());
/// ```
#[derive(Debug)]
pub struct HybridClock {
    physical: Arc<dyn TimeSource>,
    max_offset_ms: u64,
    state: Mutex<HybridTimestamp>,
    refused: AtomicU64,
}

impl HybridClock {
    /// A clock starting at `(0, 0)` (its first event takes the physical time). Remote timestamps
    /// more than `max_offset_ms` ahead of `physical` are refused (`u64::MAX` disables the check).
    pub fn new(physical: Arc<dyn TimeSource>, max_offset_ms: u64) -> Self {
        Self::resume(physical, max_offset_ms, HybridTimestamp::default())
    }

    /// A clock resuming from a persisted timestamp: every later timestamp is greater than it.
    pub fn resume(
        physical: Arc<dyn TimeSource>,
        max_offset_ms: u64,
        last: HybridTimestamp,
    ) -> Self {
        Self {
            physical,
            max_offset_ms,
            state: Mutex::new(last),
            refused: AtomicU64::new(0),
        }
    }

    /// The configured maximum offset in milliseconds.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// The physical time in Unix milliseconds as this clock reads it (negative times read as 0).
    pub fn physical_ms(&self) -> u64 {
        let ns = self.physical.now_ns();
        if ns <= 0 {
            0
        } else {
            (ns / 1_000_000) as u64
        }
    }

    /// A local or send event (the paper's send rule): `wall_ms = max(wall_ms, pt)`; `logical`
    /// is reset to 0 if `wall_ms` moved, else incremented. Returns the event's timestamp.
    pub fn send(&self) -> HybridTimestamp {
        let pt = self.physical_ms();
        let mut s = self.lock();
        let next = if pt > s.wall_ms {
            HybridTimestamp::new(pt, 0)
        } else {
            s.successor()
        };
        *s = next;
        next
    }

    /// A receive event (the paper's receive rule): `wall_ms = max(local, remote, pt)`; `logical`
    /// continues from whichever side(s) hold that `wall_ms`, or 0 if physical time is ahead of
    /// both. The result is greater than both `remote` and the local clock.
    ///
    /// A remote timestamp more than the maximum offset ahead of physical time is refused with
    /// [`HlcError::TooFarAhead`], counted, and leaves the clock unchanged.
    pub fn receive(&self, remote: &HybridTimestamp) -> Result<HybridTimestamp, HlcError> {
        let pt = self.check(remote)?;
        let mut s = self.lock();
        let local = *s;
        let wall = local.wall_ms.max(remote.wall_ms).max(pt);
        let next = if wall == local.wall_ms && wall == remote.wall_ms {
            HybridTimestamp::new(wall, local.logical.max(remote.logical)).successor()
        } else if wall == local.wall_ms {
            local.successor()
        } else if wall == remote.wall_ms {
            remote.successor()
        } else {
            HybridTimestamp::new(wall, 0)
        };
        *s = next;
        Ok(next)
    }

    /// Merges a remote timestamp without counting an event: the clock becomes
    /// `max(local, remote, (pt, 0))`. The next [`send`](Self::send) is then greater than `remote`.
    /// Refuses (and counts) remote timestamps too far ahead, like [`receive`](Self::receive).
    pub fn witness(&self, remote: &HybridTimestamp) -> Result<HybridTimestamp, HlcError> {
        let pt = self.check(remote)?;
        let mut s = self.lock();
        let next = (*s).max(*remote).max(HybridTimestamp::new(pt, 0));
        *s = next;
        Ok(next)
    }

    /// The current timestamp, without counting an event (for persisting or reporting).
    pub fn snapshot(&self) -> HybridTimestamp {
        *self.lock()
    }

    /// How many remote timestamps have been refused as too far ahead.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Reads physical time and checks `remote` against the maximum offset; returns `pt`.
    fn check(&self, remote: &HybridTimestamp) -> Result<u64, HlcError> {
        let pt = self.physical_ms();
        if remote.wall_ms > pt.saturating_add(self.max_offset_ms) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(HlcError::TooFarAhead {
                remote: *remote,
                physical_ms: pt,
                ahead_ms: remote.wall_ms - pt,
                max_offset_ms: self.max_offset_ms,
            });
        }
        Ok(pt)
    }

    fn lock(&self) -> MutexGuard<'_, HybridTimestamp> {
        // Every mutation is a single assignment of a Copy value: a poisoned lock still holds a
        // consistent timestamp.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualTime;
    use proptest::prelude::*;

    const T0_MS: i64 = 1_790_000_000_000;

    fn clock(max_offset_ms: u64) -> (Arc<ManualTime>, HybridClock) {
        let t = Arc::new(ManualTime::new(T0_MS * 1_000_000));
        let c = HybridClock::new(t.clone(), max_offset_ms);
        (t, c)
    }

    fn ts(wall_ms: i64, logical: u32) -> HybridTimestamp {
        HybridTimestamp::new(wall_ms as u64, logical)
    }

    #[test]
    fn send_follows_physical_time_and_counts_within_a_millisecond() {
        let (t, c) = clock(500);
        assert_eq!(c.send(), ts(T0_MS, 0));
        assert_eq!(c.send(), ts(T0_MS, 1));
        assert_eq!(c.send(), ts(T0_MS, 2));
        t.advance_ms(1);
        assert_eq!(c.send(), ts(T0_MS + 1, 0));
        // Sub-millisecond progress does not move wall_ms.
        t.advance(999_999);
        assert_eq!(c.send(), ts(T0_MS + 1, 1));
    }

    #[test]
    fn physical_time_stepping_back_never_moves_the_clock_back() {
        let (t, c) = clock(500);
        let a = c.send();
        t.advance_ms(-10_000);
        let b = c.send();
        assert_eq!(b, ts(T0_MS, 1));
        assert!(b > a);
    }

    #[test]
    fn receive_applies_the_paper_rules() {
        let (t, c) = clock(500);
        c.send(); // (T0, 0)
                  // Remote ahead (within offset): continue from the remote's counter.
        assert_eq!(c.receive(&ts(T0_MS + 100, 7)).unwrap(), ts(T0_MS + 100, 8));
        // Same wall on both sides: max of the counters + 1.
        assert_eq!(c.receive(&ts(T0_MS + 100, 3)).unwrap(), ts(T0_MS + 100, 9));
        assert_eq!(
            c.receive(&ts(T0_MS + 100, 20)).unwrap(),
            ts(T0_MS + 100, 21)
        );
        // Remote behind the local clock: local counter + 1.
        assert_eq!(c.receive(&ts(T0_MS - 5, 99)).unwrap(), ts(T0_MS + 100, 22));
        // Physical time ahead of both: logical resets.
        t.advance_ms(200);
        assert_eq!(c.receive(&ts(T0_MS + 150, 4)).unwrap(), ts(T0_MS + 200, 0));
        assert_eq!(c.refused_count(), 0);
    }

    #[test]
    fn remote_too_far_ahead_is_refused_counted_and_ignored() {
        let (_t, c) = clock(500);
        let before = c.send();
        let remote = ts(T0_MS + 501, 0);
        let err = c.receive(&remote).unwrap_err();
        assert_eq!(
            err,
            HlcError::TooFarAhead {
                remote,
                physical_ms: T0_MS as u64,
                ahead_ms: 501,
                max_offset_ms: 500
            }
        );
        assert!(err.to_string().contains("501 ms ahead"), "{err}");
        assert!(
            err.to_string().contains("maximum clock offset of 500 ms"),
            "{err}"
        );
        assert_eq!(c.refused_count(), 1);
        assert!(c.witness(&ts(T0_MS + 10_000, 0)).is_err());
        assert_eq!(c.refused_count(), 2);
        assert_eq!(c.snapshot(), before);
        // Exactly at the bound is accepted.
        assert_eq!(c.receive(&ts(T0_MS + 500, 0)).unwrap(), ts(T0_MS + 500, 1));
        assert_eq!(c.refused_count(), 2);
    }

    #[test]
    fn witness_merges_without_counting_an_event() {
        let (_t, c) = clock(500);
        assert_eq!(c.witness(&ts(T0_MS + 10, 4)).unwrap(), ts(T0_MS + 10, 4));
        assert_eq!(c.witness(&ts(T0_MS, 9)).unwrap(), ts(T0_MS + 10, 4));
        assert_eq!(c.send(), ts(T0_MS + 10, 5));
    }

    #[test]
    fn logical_overflow_carries_into_wall_ms() {
        let (_t, c) = clock(500);
        let got = c.receive(&ts(T0_MS + 1, MAX_LOGICAL)).unwrap();
        assert_eq!(got, ts(T0_MS + 2, 0));
        assert_eq!(c.send(), ts(T0_MS + 2, 1));
        let c = HybridClock::resume(Arc::new(ManualTime::new(0)), 0, ts(T0_MS, MAX_LOGICAL));
        assert_eq!(c.send(), ts(T0_MS + 1, 0));
        assert_eq!(
            HybridTimestamp::new(u64::MAX, u32::MAX).successor(),
            HybridTimestamp::new(u64::MAX, u32::MAX)
        );
    }

    #[test]
    fn resume_continues_after_the_persisted_timestamp() {
        let t = Arc::new(ManualTime::new(T0_MS * 1_000_000));
        let c = HybridClock::resume(t.clone(), 500, ts(T0_MS + 50, 3));
        assert_eq!(c.snapshot(), ts(T0_MS + 50, 3));
        assert_eq!(c.send(), ts(T0_MS + 50, 4));
        t.advance_ms(51);
        assert_eq!(c.send(), ts(T0_MS + 51, 0));
    }

    #[test]
    fn negative_physical_time_reads_as_zero() {
        let c = HybridClock::new(Arc::new(ManualTime::new(-5_000_000_000)), 500);
        assert_eq!(c.physical_ms(), 0);
        assert_eq!(c.send(), ts(0, 1));
    }

    #[test]
    fn display_and_serde_field_names() {
        let t = ts(1_790_000_000_223, 7);
        assert_eq!(t.to_string(), "1790000000223:7");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"wall_ms":1790000000223,"logical":7}"#
        );
    }

    #[test]
    fn concurrent_senders_get_distinct_increasing_timestamps() {
        let (_t, c) = clock(500);
        let c = Arc::new(c);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || (0..1000).map(|_| c.send()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            let v = h.join().unwrap();
            assert!(
                v.windows(2).all(|w| w[0] < w[1]),
                "per-thread order must be increasing"
            );
            all.extend(v);
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 4000);
        assert_eq!(c.snapshot(), ts(T0_MS, 3999));
    }

    #[test]
    fn clock_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HybridClock>();
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Move physical time by this many ms (may be negative: a stepping system clock).
        Advance(i64),
        Send,
        /// A remote timestamp `ahead` ms relative to local physical time.
        Receive {
            ahead: i64,
            logical: u32,
        },
        Witness {
            ahead: i64,
            logical: u32,
        },
    }

    const MAX_OFFSET: u64 = 250;

    fn arb_logical() -> impl Strategy<Value = u32> {
        prop_oneof![
            0u32..8,
            Just(MAX_LOGICAL),
            Just(MAX_LOGICAL - 1),
            any::<u32>()
        ]
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        // `ahead` ranges beyond MAX_OFFSET so refusals are exercised too.
        prop_oneof![
            (-20i64..40).prop_map(Op::Advance),
            Just(Op::Send),
            (-600i64..400, arb_logical())
                .prop_map(|(ahead, logical)| Op::Receive { ahead, logical }),
            (-600i64..400, arb_logical())
                .prop_map(|(ahead, logical)| Op::Witness { ahead, logical }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn hlc_invariants_hold_under_adversarial_but_allowed_input(
            ops in proptest::collection::vec(arb_op(), 1..60)
        ) {
            let (t, c) = clock(MAX_OFFSET);
            let mut prev = c.snapshot();
            let mut refused = 0u64;
            // Largest physical time read and largest accepted remote wall time: wall_ms may exceed
            // their maximum by at most the one-millisecond carry.
            let mut max_pt = 0u64;
            let mut max_remote_wall = 0u64;
            // Largest accepted remote logical; the local logical may exceed it only by the number
            // of events since.
            let mut max_remote_logical = 0u64;
            let mut events = 0u64;
            for op in ops {
                let pt = c.physical_ms();
                max_pt = max_pt.max(pt);
                let now = match op {
                    Op::Advance(ms) => { t.advance_ms(ms); continue; }
                    Op::Send => {
                        events += 1;
                        let n = c.send();
                        prop_assert!(n > prev, "send not monotonic: {prev} -> {n}");
                        n
                    }
                    Op::Receive { ahead, logical } | Op::Witness { ahead, logical } => {
                        let is_receive = matches!(op, Op::Receive { .. });
                        let remote = HybridTimestamp::new((pt as i64 + ahead) as u64, logical);
                        let res = if is_receive { c.receive(&remote) } else { c.witness(&remote) };
                        if remote.wall_ms > pt + MAX_OFFSET {
                            refused += 1;
                            prop_assert!(
                                matches!(res, Err(HlcError::TooFarAhead { .. })),
                                "must refuse {remote} at pt {pt}"
                            );
                            prop_assert_eq!(c.snapshot(), prev, "refusal must not change the clock");
                            prop_assert_eq!(c.refused_count(), refused);
                            continue;
                        }
                        let n = match res {
                            Ok(n) => n,
                            Err(e) => return Err(TestCaseError::fail(format!("refused allowed {remote}: {e}"))),
                        };
                        max_remote_wall = max_remote_wall.max(remote.wall_ms);
                        max_remote_logical = max_remote_logical.max(u64::from(remote.logical));
                        if is_receive {
                            events += 1;
                            prop_assert!(n > prev && n > remote, "receive {remote} on {prev} gave {n}");
                        } else {
                            prop_assert!(n >= prev && n >= remote, "witness {remote} on {prev} gave {n}");
                        }
                        n
                    }
                };
                prop_assert!(now.wall_ms >= pt, "behind physical time: {now} < {pt}");
                prop_assert!(
                    now.wall_ms <= max_pt.max(max_remote_wall) + 1,
                    "drifted: {now} with max pt {max_pt}, max remote {max_remote_wall}"
                );
                prop_assert!(
                    u64::from(now.logical) <= max_remote_logical + events,
                    "logical unbounded: {now}, max remote logical {max_remote_logical}, {events} events"
                );
                prop_assert_eq!(c.snapshot(), now);
                prev = now;
            }
        }
    }
}
