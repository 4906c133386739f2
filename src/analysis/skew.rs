//! Per-node clock-offset estimation, and the analyzer's skew step that feeds it and reports
//! [`SkewThreshold`](super::ViolationKind::SkewThreshold) crossings.
//!
//! # Method
//!
//! Every envelope carries two readings taken at the same stamping instant on the sending host:
//! `timestamp.timestamp`, the host's system time, and `timestamp.physical_time`, the node's
//! physical clock (simulated skew/drift/random variation and NTP correction applied). Their difference
//! `e = physical_time − timestamp` is the node clock's error relative to its host clock at that
//! instant — exactly what skew simulation injects and NTP correction removes — and it does not
//! depend on when or how late the consumer reads the message.
//!
//! The estimate is the **median of `e` over the node's last `n` messages** (`n` ≤ the analysis
//! window and ≤ [`MAX_OFFSET_SAMPLES`](super::MAX_OFFSET_SAMPLES)); for an even `n`, the mean of
//! the two middle samples. The median ignores a minority of outliers (random variation, a step
//! correction in progress).
//!
//! # Error bound
//!
//! `error_ms = max(max(e) − median, median − min(e)) + 0.001 ms`: every one of those `n` messages
//! was stamped with a clock error within `offset_ms ± error_ms` (the 1 µs covers f64 rounding of
//! seconds since the epoch, about 0.24 µs today, on both readings). It bounds the node clock
//! against its *host* clock: a host whose own system clock is wrong is invisible to this method.
//!
//! # Cross-check
//!
//! `receive_bound_ms = max(physical_time − received)` over the same messages, with `received` the
//! consumer's clock at arrival. Since `physical_time = true_send + off_node` and
//! `received = true_send + delay + off_consumer` with `delay ≥ 0`, it is a **lower bound** on
//! `off_node − off_consumer`, valid always and tight only for live arrivals (small delay); reading
//! a backlog makes it very negative, hence useless but never wrong. If it exceeds
//! `offset_ms + error_ms`, the sending host's own clock is ahead of the consumer's.
//!
//! # Threshold warning
//!
//! The node is *beyond* the threshold `T` when a strict majority of its samples are above `T`
//! (or below `−T`) — equivalently when the median (both middle samples for even `n`) is. A
//! warning fires once on entering that state; it re-arms only once the median is back within
//! `±0.9 T` (10 % hysteresis, so a median hovering at `T` does not warn per message). Counting
//! samples against fixed bounds makes each update `O(1)`; the median itself is only computed for
//! a warning or a summary (`O(n log n)`, `n` ≤ 64).

use super::nodes::NodeKey;
use super::{Analyzer, Violation, ViolationKind};
use crate::envelope::Envelope;
use std::collections::VecDeque;

/// Rounding allowance for f64 seconds since the epoch, both readings (ms).
const ROUNDING_MS: f64 = 0.001;
/// Re-arm once the median is back within this fraction of the threshold.
const REARM_FRACTION: f64 = 0.9;

/// One node's offset estimate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct OffsetEstimate {
    /// Median of `physical_time − timestamp` over the samples (ms).
    pub offset_ms: f64,
    /// Every sample lies within `offset_ms ± error_ms`.
    pub error_ms: f64,
    /// Lower bound on (node clock − consumer clock), from arrival times (ms).
    pub receive_bound_ms: f64,
    /// Number of samples used.
    pub samples: usize,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    stamp_ms: f64,
    recv_ms: f64,
}

/// Counts of samples beyond fixed bounds (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    above: usize,
    below: usize,
    above_rearm: usize,
    below_rearm: usize,
}

/// Sliding per-node samples and the threshold state.
#[derive(Debug, Clone)]
pub(crate) struct OffsetEstimator {
    samples: VecDeque<Sample>,
    cap: usize,
    tally: Tally,
    beyond: bool,
}

impl OffsetEstimator {
    /// Keeps at most `cap` (≥ 1) samples.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            samples: VecDeque::new(),
            cap: cap.max(1),
            tally: Tally::default(),
            beyond: false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    fn adjust(&mut self, x: f64, threshold: f64, add: bool) {
        let t = &mut self.tally;
        let lo = threshold * REARM_FRACTION;
        for (hit, counter) in [
            (x > threshold, &mut t.above),
            (x < -threshold, &mut t.below),
            (x > lo, &mut t.above_rearm),
            (x < -lo, &mut t.below_rearm),
        ] {
            if hit {
                if add {
                    *counter += 1;
                } else {
                    *counter = counter.saturating_sub(1);
                }
            }
        }
    }

    /// Adds one message's readings (ms). Returns the estimate when this sample takes the node
    /// beyond `threshold` (≥ 0) from a re-armed state; samples that are not finite are ignored.
    pub(crate) fn push(
        &mut self,
        stamp_ms: f64,
        recv_ms: f64,
        threshold: f64,
    ) -> Option<OffsetEstimate> {
        if !stamp_ms.is_finite() {
            return None;
        }
        if self.samples.len() >= self.cap {
            if let Some(old) = self.samples.pop_front() {
                self.adjust(old.stamp_ms, threshold, false);
            }
        }
        self.samples.push_back(Sample { stamp_ms, recv_ms });
        self.adjust(stamp_ms, threshold, true);
        let n = self.samples.len();
        let t = self.tally;
        if self.beyond {
            if 2 * t.above_rearm <= n && 2 * t.below_rearm <= n {
                self.beyond = false;
            }
            None
        } else if 2 * t.above > n || 2 * t.below > n {
            self.beyond = true;
            self.estimate()
        } else {
            None
        }
    }

    /// The current estimate, `None` without samples.
    pub(crate) fn estimate(&self) -> Option<OffsetEstimate> {
        let n = self.samples.len();
        if n == 0 {
            return None;
        }
        let mut v: Vec<f64> = self.samples.iter().map(|s| s.stamp_ms).collect();
        v.sort_unstable_by(f64::total_cmp);
        let median = (v[(n - 1) / 2] + v[n / 2]) / 2.0;
        let spread = (v[n - 1] - median).max(median - v[0]);
        let receive_bound_ms = self
            .samples
            .iter()
            .map(|s| s.recv_ms)
            .fold(f64::NEG_INFINITY, f64::max);
        Some(OffsetEstimate {
            offset_ms: median,
            error_ms: spread + ROUNDING_MS,
            receive_bound_ms,
            samples: n,
        })
    }
}

impl Analyzer {
    /// Feeds the node's clock-offset estimate with this message's clock error at stamping
    /// (its [clock reading](crate::envelope::MessageTimestamp::clock_reading) − `timestamp`),
    /// reporting a threshold crossing.
    pub(super) fn offset_sample(
        &mut self,
        key: NodeKey,
        env: &Envelope,
        received_ns: i64,
        out: &mut Vec<Violation>,
    ) {
        let ts = &env.timestamp;
        let reading = ts.clock_reading();
        let stamp_ms = (reading - ts.timestamp) * 1000.0;
        let recv_ms = reading * 1000.0 - received_ns as f64 / 1e6;
        let threshold = self.threshold_ms;
        let crossing = self
            .nodes
            .get_mut(key)
            .and_then(|st| st.offset.push(stamp_ms, recv_ms, threshold));
        if let Some(e) = crossing {
            let node_id = &ts.node_id;
            let detail = format!(
                "{node_id}: clock offset {:+.3} ms (±{:.3} ms; median of clock reading − timestamp over its last {} \
                 messages) exceeds the {} ms threshold",
                e.offset_ms, e.error_ms, e.samples, threshold
            );
            self.report(
                out,
                ViolationKind::SkewThreshold,
                node_id,
                vec![env.id.clone()],
                detail,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_bound() {
        let mut e = OffsetEstimator::new(8);
        for x in [10.0, 12.0, 11.0, 50.0, 9.0] {
            e.push(x, -5.0, 100.0);
        }
        let est = e.estimate().unwrap();
        assert_eq!(
            est.offset_ms, 11.0,
            "the outlier 50 does not move the median"
        );
        assert!((est.error_ms - (39.0 + ROUNDING_MS)).abs() < 1e-9);
        assert_eq!(est.samples, 5);
        assert_eq!(est.receive_bound_ms, -5.0);
    }

    #[test]
    fn even_count_median_is_mean_of_middles() {
        let mut e = OffsetEstimator::new(8);
        for x in [1.0, 3.0, 5.0, 7.0] {
            e.push(x, 0.0, 100.0);
        }
        assert_eq!(e.estimate().unwrap().offset_ms, 4.0);
    }

    #[test]
    fn warns_once_per_crossing_with_hysteresis() {
        let mut e = OffsetEstimator::new(3);
        let warnings = |e: &mut OffsetEstimator, xs: &[f64]| {
            xs.iter()
                .filter(|&&x| e.push(x, 0.0, 100.0).is_some())
                .count()
        };
        assert_eq!(warnings(&mut e, &[0.0, 0.0, 0.0]), 0);
        // Needs a majority beyond: the second sample above makes it.
        assert_eq!(warnings(&mut e, &[250.0]), 0);
        assert_eq!(warnings(&mut e, &[250.0, 250.0, 250.0, 250.0]), 1);
        // Median at 95: within T but not within 0.9 T — still the same crossing.
        assert_eq!(warnings(&mut e, &[95.0, 95.0, 95.0, 250.0, 250.0]), 0);
        // Back to 0, then beyond again: a second crossing.
        assert_eq!(warnings(&mut e, &[0.0, 0.0, 0.0]), 0);
        assert_eq!(warnings(&mut e, &[-300.0, -300.0]), 1);
    }

    #[test]
    fn window_slides() {
        let mut e = OffsetEstimator::new(2);
        for x in [500.0, 1.0, 2.0] {
            e.push(x, 0.0, 100.0);
        }
        assert_eq!(e.len(), 2);
        assert_eq!(e.estimate().unwrap().offset_ms, 1.5);
    }

    #[test]
    fn non_finite_samples_are_ignored() {
        let mut e = OffsetEstimator::new(4);
        assert!(e.push(f64::NAN, 0.0, 100.0).is_none());
        assert!(e.estimate().is_none());
    }
}
