//! Time sources. Every component that needs "now" takes one of these, so the core is deterministic
//! under test ([`ManualTime`]) and real in the binaries ([`SystemTimeSource`]).
//!
//! Times are signed nanoseconds since the Unix epoch (`i64`, good until the year 2262).

use std::sync::atomic::{AtomicI64, Ordering};

/// Nanoseconds since the Unix epoch.
pub type UnixNanos = i64;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Converts nanoseconds since the epoch to floating-point seconds (the envelope's unit).
pub fn nanos_to_secs(ns: UnixNanos) -> f64 {
    ns as f64 / NANOS_PER_SEC as f64
}

/// Converts floating-point seconds since the epoch to nanoseconds (saturating; NaN maps to 0).
pub fn secs_to_nanos(secs: f64) -> UnixNanos {
    (secs * NANOS_PER_SEC as f64) as i64
}

/// A source of time-of-day. Implementations must be cheap and thread-safe.
pub trait TimeSource: Send + Sync + std::fmt::Debug {
    /// The current time in nanoseconds since the Unix epoch.
    fn now_ns(&self) -> UnixNanos;
}

/// The host's system clock (`SystemTime::now`). It may step; consumers that need monotonicity
/// (the physical clock) enforce it themselves.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTimeSource;

impl TimeSource for SystemTimeSource {
    fn now_ns(&self) -> UnixNanos {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i64,
            Err(e) => -(e.duration().as_nanos() as i64),
        }
    }
}

/// A manually driven clock for tests and simulations: time moves only when told to.
#[derive(Debug, Default)]
pub struct ManualTime {
    now: AtomicI64,
}

impl ManualTime {
    /// A manual clock reading `start` nanoseconds since the epoch.
    pub fn new(start: UnixNanos) -> Self {
        Self {
            now: AtomicI64::new(start),
        }
    }

    /// Sets the current time (may go backwards: use it to model a stepping system clock).
    pub fn set(&self, ns: UnixNanos) {
        self.now.store(ns, Ordering::SeqCst);
    }

    /// Moves time forward (or backward, if negative) by `delta` nanoseconds.
    pub fn advance(&self, delta: i64) {
        self.now.fetch_add(delta, Ordering::SeqCst);
    }

    /// Moves time forward by `ms` milliseconds.
    pub fn advance_ms(&self, ms: i64) {
        self.advance(ms * 1_000_000);
    }
}

impl TimeSource for ManualTime {
    fn now_ns(&self) -> UnixNanos {
        self.now.load(Ordering::SeqCst)
    }
}

impl<T: TimeSource + ?Sized> TimeSource for std::sync::Arc<T> {
    fn now_ns(&self) -> UnixNanos {
        (**self).now_ns()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_time_moves_only_when_told() {
        let t = ManualTime::new(1_000);
        assert_eq!(t.now_ns(), 1_000);
        t.advance_ms(2);
        assert_eq!(t.now_ns(), 2_001_000);
        t.set(5);
        assert_eq!(t.now_ns(), 5);
    }

    #[test]
    fn seconds_round_trip() {
        let ns = 1_790_000_000_123_000_000;
        assert!((nanos_to_secs(ns) - 1_790_000_000.123).abs() < 1e-6);
        assert_eq!(secs_to_nanos(1.5), 1_500_000_000);
    }
}
