//! One SNTP exchange: T1..T4 → offset θ and delay δ (RFC 4330 / RFC 5905), and the checks on δ.
//! I/O-free.
//!
//! Sign convention: θ is *server − client*. A positive θ means the local clock is behind and must
//! be advanced by θ.

use serde::{Deserialize, Serialize};

use super::packet::RejectReason;
use crate::time::UnixNanos;

/// The four timestamps of an exchange, Unix nanoseconds. T1 and T4 are read from the local
/// (disciplined) clock, T2 and T3 from the server's reply.
///
/// # Example
///
/// The local clock is 5 ms behind the server; the request takes 10 ms, the server holds it 1 ms,
/// the reply takes 10 ms:
///
/// ```
/// use kafka_timesync::ntp::Exchange;
///
/// const MS: i64 = 1_000_000;
/// let t1 = 1_790_000_000_000 * MS; // request sent, local clock
/// let x = Exchange { t1, t2: t1 + 15 * MS, t3: t1 + 16 * MS, t4: t1 + 21 * MS };
/// assert_eq!(x.offset_ns(), 5 * MS); // θ: advance the local clock by 5 ms
/// assert_eq!(x.delay_ns(), 20 * MS); // δ: the round trip without the server's 1 ms
/// assert_eq!(x.check_delay(MS / 1000, 1_000 * MS), Ok(20 * MS));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    /// Request sent (local clock).
    pub t1: UnixNanos,
    /// Request received (server clock).
    pub t2: UnixNanos,
    /// Reply sent (server clock).
    pub t3: UnixNanos,
    /// Reply received (local clock).
    pub t4: UnixNanos,
}

fn clamp_i128(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl Exchange {
    /// θ = ((T2 − T1) + (T3 − T4)) / 2, rounded toward zero. Never overflows.
    pub fn offset_ns(&self) -> i64 {
        let (t1, t2, t3, t4) = (
            self.t1 as i128,
            self.t2 as i128,
            self.t3 as i128,
            self.t4 as i128,
        );
        clamp_i128(((t2 - t1) + (t3 - t4)) / 2)
    }

    /// δ = (T4 − T1) − (T3 − T2). Never overflows.
    pub fn delay_ns(&self) -> i64 {
        let (t1, t2, t3, t4) = (
            self.t1 as i128,
            self.t2 as i128,
            self.t3 as i128,
            self.t4 as i128,
        );
        clamp_i128((t4 - t1) - (t3 - t2))
    }

    /// Midpoint of T1 and T4 on the local clock: the instant θ refers to.
    pub fn local_midpoint_ns(&self) -> UnixNanos {
        clamp_i128((self.t1 as i128 + self.t4 as i128) / 2)
    }

    /// Checks δ: below `-tolerance_ns` is [`RejectReason::NegativeDelay`] (a clock jumped or a
    /// timestamp is forged), above `max_delay_ns` is [`RejectReason::AbsurdDelay`].
    pub fn check_delay(&self, tolerance_ns: i64, max_delay_ns: i64) -> Result<i64, RejectReason> {
        let d = self.delay_ns();
        if d < -tolerance_ns.saturating_abs() {
            Err(RejectReason::NegativeDelay(d))
        } else if d > max_delay_ns {
            Err(RejectReason::AbsurdDelay(d))
        } else {
            Ok(d)
        }
    }
}

/// An accepted measurement of one server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The exchange's timestamps.
    pub exchange: Exchange,
    /// θ, nanoseconds.
    pub offset_ns: i64,
    /// δ, nanoseconds (clamped to ≥ 0).
    pub delay_ns: i64,
    /// Error bound beyond δ/2: both precisions plus the server's root distance, nanoseconds.
    pub dispersion_ns: i64,
    /// The clock's total correction at the exchange's midpoint, so the sample can be carried
    /// forward across later corrections: θ now = θ − (correction now − this).
    pub correction_ns: i64,
}

impl Sample {
    /// Builds a sample from a validated exchange; `delay_ns` must come from
    /// [`Exchange::check_delay`].
    pub fn new(exchange: Exchange, delay_ns: i64, dispersion_ns: i64, correction_ns: i64) -> Self {
        Sample {
            exchange,
            offset_ns: exchange.offset_ns(),
            delay_ns: delay_ns.max(0),
            dispersion_ns: dispersion_ns.max(0),
            correction_ns,
        }
    }

    /// Local time the sample refers to (midpoint of T1 and T4).
    pub fn at_ns(&self) -> UnixNanos {
        self.exchange.local_midpoint_ns()
    }

    /// The uncorrected clock's error at [`at_ns`](Self::at_ns): local − server with every
    /// correction removed (`−θ − correction`). Independent of later steps and slews, so it is what
    /// the drift regression fits.
    pub fn raw_error_ns(&self) -> i64 {
        self.offset_ns
            .saturating_neg()
            .saturating_sub(self.correction_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn hand_computed_symmetric_exchange() {
        // Client 100 ms behind, 10 ms each way, 2 ms in the server.
        // T1 = 0, T2 = 0 + 10 + 100 = 110, T3 = 112, T4 = 2 + 20 = 22 (client time).
        let e = Exchange {
            t1: 0,
            t2: 110 * MS,
            t3: 112 * MS,
            t4: 22 * MS,
        };
        assert_eq!(e.delay_ns(), 20 * MS);
        assert_eq!(e.offset_ns(), 100 * MS);
        assert_eq!(e.local_midpoint_ns(), 11 * MS);
    }

    #[test]
    fn hand_computed_client_ahead() {
        // Client 250 ms ahead, 1 ms each way, no server time.
        let e = Exchange {
            t1: 1_000 * MS,
            t2: 751 * MS,
            t3: 751 * MS,
            t4: 1_002 * MS,
        };
        assert_eq!(e.delay_ns(), 2 * MS);
        assert_eq!(e.offset_ns(), -250 * MS);
    }

    #[test]
    fn asymmetric_path_biases_offset_by_half_the_asymmetry() {
        // Synchronised clocks, 30 ms out and 10 ms back: θ = (30 − 10)/2 = 10 ms, δ = 40 ms.
        let e = Exchange {
            t1: 0,
            t2: 30 * MS,
            t3: 30 * MS,
            t4: 40 * MS,
        };
        assert_eq!(e.offset_ns(), 10 * MS);
        assert_eq!(e.delay_ns(), 40 * MS);
    }

    #[test]
    fn delay_checks() {
        let neg = Exchange {
            t1: 0,
            t2: 10 * MS,
            t3: 30 * MS,
            t4: 5 * MS,
        };
        assert_eq!(
            neg.check_delay(1_000, 1_000 * MS),
            Err(RejectReason::NegativeDelay(-15 * MS))
        );
        let slow = Exchange {
            t1: 0,
            t2: 0,
            t3: 0,
            t4: 3_000 * MS,
        };
        assert_eq!(
            slow.check_delay(1_000, 1_000 * MS),
            Err(RejectReason::AbsurdDelay(3_000 * MS))
        );
        let tiny_negative = Exchange {
            t1: 0,
            t2: 10,
            t3: 510,
            t4: 100,
        };
        assert_eq!(tiny_negative.check_delay(1_000, MS), Ok(-400));
    }

    #[test]
    fn raw_error_removes_the_correction() {
        let e = Exchange {
            t1: 0,
            t2: 110 * MS,
            t3: 112 * MS,
            t4: 22 * MS,
        };
        let s = Sample::new(e, e.delay_ns(), 0, 40 * MS);
        // The corrected clock is 100 ms behind and 40 ms of correction were already applied:
        // the raw clock is 140 ms behind.
        assert_eq!(s.raw_error_ns(), -140 * MS);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// For a symmetric path, θ recovers the true offset exactly (to rounding) and δ the
        /// true round trip, whatever the offset, path delay and server time.
        #[test]
        fn symmetric_paths_are_measured_exactly(
            t1 in 0i64..4_000_000_000_000_000_000,
            offset in -2_000_000 * MS..2_000_000 * MS,
            one_way in 0i64..500 * MS,
            server in 0i64..10 * MS,
        ) {
            let t2 = t1 + one_way + offset;
            let t3 = t2 + server;
            let t4 = t1 + 2 * one_way + server;
            let e = Exchange { t1, t2, t3, t4 };
            prop_assert_eq!(e.delay_ns(), 2 * one_way);
            prop_assert_eq!(e.offset_ns(), offset);
        }

        #[test]
        fn extreme_timestamps_saturate_without_changing_sign(
            t1 in any::<i64>(), t2 in any::<i64>(), t3 in any::<i64>(), t4 in any::<i64>(),
        ) {
            let e = Exchange { t1, t2, t3, t4 };
            let (t1, t2, t3, t4) = (i128::from(t1), i128::from(t2), i128::from(t3), i128::from(t4));
            let exact_offset = ((t2 - t1) + (t3 - t4)) / 2;
            let exact_delay = (t4 - t1) - (t3 - t2);
            // Saturation keeps the sign and never overstates the magnitude.
            prop_assert_eq!(i128::from(e.offset_ns()).signum(), exact_offset.signum());
            prop_assert!(i128::from(e.offset_ns()).abs() <= exact_offset.abs());
            prop_assert_eq!(i128::from(e.delay_ns()).signum(), exact_delay.signum());
            prop_assert!(i128::from(e.delay_ns()).abs() <= exact_delay.abs());
            // The midpoint is between T1 and T4.
            let mid = i128::from(e.local_midpoint_ns());
            prop_assert!(t1.min(t4) <= mid && mid <= t1.max(t4));
        }

        #[test]
        fn shifting_the_server_clock_shifts_only_the_offset(
            t1 in -(1i64 << 60)..(1i64 << 60), t2 in -(1i64 << 60)..(1i64 << 60),
            t3 in -(1i64 << 60)..(1i64 << 60), t4 in -(1i64 << 60)..(1i64 << 60),
            k in -(1i64 << 60)..(1i64 << 60),
        ) {
            let e = Exchange { t1, t2, t3, t4 };
            let shifted = Exchange { t2: t2 + k, t3: t3 + k, ..e };
            prop_assert_eq!(shifted.delay_ns(), e.delay_ns());
            // θ is halved with rounding toward zero, so the shift shows up within 1 ns.
            prop_assert!((shifted.offset_ns() - e.offset_ns() - k).abs() <= 1);
        }

        #[test]
        fn check_delay_accepts_exactly_the_bounded_delays(
            t1 in any::<i64>(), t2 in any::<i64>(), t3 in any::<i64>(), t4 in any::<i64>(),
            tolerance in any::<i64>(), max in any::<i64>(),
        ) {
            let e = Exchange { t1, t2, t3, t4 };
            let d = e.delay_ns();
            let floor = -tolerance.saturating_abs();
            match e.check_delay(tolerance, max) {
                Ok(got) => prop_assert!(got == d && floor <= d && d <= max),
                Err(RejectReason::NegativeDelay(got)) => prop_assert!(got == d && d < floor),
                Err(RejectReason::AbsurdDelay(got)) => prop_assert!(got == d && d >= floor && d > max),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
