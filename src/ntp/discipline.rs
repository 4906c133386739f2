//! Clock discipline: what to do with a combined offset (slew, step or ignore — the course notes'
//! thresholds) and the drift estimate (least-squares slope of the uncorrected clock's error
//! against time, the linear-regression idea of reference broadcast synchronisation). I/O-free.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::time::UnixNanos;

/// Offsets below this (absolute) are slewed: 125 ms.
pub const DEFAULT_SLEW_BELOW_NS: i64 = 125_000_000;
/// Offsets below this (absolute, and not slewed) are stepped; above, ignored: 1000 s.
pub const DEFAULT_STEP_BELOW_NS: i64 = 1_000_000_000_000;

/// The slew/step/ignore thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    /// |θ| below this is slewed.
    pub slew_below_ns: i64,
    /// |θ| at least `slew_below_ns` and below this is stepped; at least this is ignored.
    pub step_below_ns: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            slew_below_ns: DEFAULT_SLEW_BELOW_NS,
            step_below_ns: DEFAULT_STEP_BELOW_NS,
        }
    }
}

/// What the discipline does with an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Spread the correction over time; the clock never steps.
    Slew,
    /// Apply the correction at once (a backward step holds the clock; it never runs backwards).
    Step,
    /// Too large to be believed: leave the clock alone and warn.
    Ignore,
}

impl Action {
    /// "slew", "step" or "ignore".
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Slew => "slew",
            Action::Step => "step",
            Action::Ignore => "ignore",
        }
    }
}

impl Thresholds {
    /// The action for offset `offset_ns`.
    pub fn decide(&self, offset_ns: i64) -> Action {
        let a = offset_ns.unsigned_abs();
        if a < self.slew_below_ns.unsigned_abs() {
            Action::Slew
        } else if a < self.step_below_ns.unsigned_abs() {
            Action::Step
        } else {
            Action::Ignore
        }
    }
}

/// Least-squares estimate of the uncorrected clock's frequency error from (time, raw error)
/// points. Keeps at most `capacity` recent points.
#[derive(Debug, Clone)]
pub struct DriftEstimator {
    points: VecDeque<(UnixNanos, i64)>,
    capacity: usize,
    min_points: usize,
    min_span_ns: i64,
}

impl DriftEstimator {
    /// An estimator keeping `capacity` points that reports a slope once it has `min_points`
    /// (at least 2) points spanning at least `min_span_ns`.
    pub fn new(capacity: usize, min_points: usize, min_span_ns: i64) -> Self {
        let min_points = min_points.max(2);
        DriftEstimator {
            points: VecDeque::with_capacity(capacity),
            capacity: capacity.max(min_points),
            min_points,
            min_span_ns: min_span_ns.max(1),
        }
    }

    /// Adds a point: at local time `t_ns` the uncorrected clock was `raw_error_ns` ahead.
    pub fn add(&mut self, t_ns: UnixNanos, raw_error_ns: i64) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back((t_ns, raw_error_ns));
    }

    /// Number of points held.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when no point is held.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Forgets all points.
    pub fn clear(&mut self) {
        self.points.clear();
    }

    /// The slope of raw error against time in ppm (positive = the uncorrected clock runs fast),
    /// or `None` until enough points over enough time are held.
    pub fn drift_ppm(&self) -> Option<f64> {
        let n = self.points.len();
        if n < self.min_points {
            return None;
        }
        let (t0, _) = *self.points.front()?;
        let (t_last, _) = *self.points.back()?;
        if t_last.saturating_sub(t0) < self.min_span_ns {
            return None;
        }
        // Centre on the first point so f64 keeps nanosecond resolution.
        let e0 = self.points.front()?.1;
        let xs = self
            .points
            .iter()
            .map(|&(t, _)| t.saturating_sub(t0) as f64);
        let ys = self
            .points
            .iter()
            .map(|&(_, e)| e.saturating_sub(e0) as f64);
        let nf = n as f64;
        let mx = xs.clone().sum::<f64>() / nf;
        let my = ys.clone().sum::<f64>() / nf;
        let (sxy, sxx) = xs.zip(ys).fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
            (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx))
        });
        if sxx <= 0.0 {
            return None;
        }
        let slope = sxy / sxx * 1e6;
        slope.is_finite().then_some(slope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;

    #[test]
    fn course_note_thresholds() {
        let t = Thresholds::default();
        assert_eq!(t.decide(50 * MS), Action::Slew);
        assert_eq!(t.decide(-50 * MS), Action::Slew);
        assert_eq!(t.decide(124_999_999), Action::Slew);
        assert_eq!(t.decide(125 * MS), Action::Step);
        assert_eq!(t.decide(500 * MS), Action::Step);
        assert_eq!(t.decide(-500 * MS), Action::Step);
        assert_eq!(t.decide(999 * S), Action::Step);
        assert_eq!(t.decide(1_000 * S), Action::Ignore);
        assert_eq!(t.decide(2_000 * S), Action::Ignore);
        assert_eq!(t.decide(-2_000 * S), Action::Ignore);
        assert_eq!(t.decide(i64::MIN), Action::Ignore);
    }

    #[test]
    fn thresholds_are_configurable() {
        let t = Thresholds {
            slew_below_ns: 10 * MS,
            step_below_ns: 100 * MS,
        };
        assert_eq!(t.decide(50 * MS), Action::Step);
        assert_eq!(t.decide(500 * MS), Action::Ignore);
    }

    #[test]
    fn needs_enough_points_and_span() {
        let mut d = DriftEstimator::new(16, 3, 2 * S);
        d.add(0, 0);
        d.add(S, 100_000);
        assert_eq!(d.drift_ppm(), None);
        d.add(S + 1, 100_000);
        assert_eq!(d.drift_ppm(), None, "span below 2 s");
        d.add(3 * S, 300_000);
        let ppm = d.drift_ppm().unwrap();
        assert!((ppm - 100.0).abs() < 1.0, "{ppm}");
    }

    #[test]
    fn capacity_keeps_recent_points() {
        let mut d = DriftEstimator::new(4, 2, 1);
        // Old regime: 0 ppm; new regime: −50 ppm.
        for k in 0..10 {
            d.add(k * S, 0);
        }
        for k in 10..14 {
            d.add(k * S, -50_000 * (k - 9));
        }
        assert!((d.drift_ppm().unwrap() + 50.0).abs() < 1e-6);
        assert_eq!(d.len(), 4);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// A clock with offset a and drift b ppm, sampled with bounded noise, is estimated to
        /// within noise/span; exact without noise.
        #[test]
        fn regression_recovers_drift(
            a in -1_000 * MS..1_000 * MS,
            b in -500.0f64..500.0,
            noise in proptest::collection::vec(-20_000i64..20_000, 10..40),
            t0 in 1_700_000_000 * S..1_800_000_000 * S,
        ) {
            let mut exact = DriftEstimator::new(64, 3, S);
            let mut noisy = DriftEstimator::new(64, 3, S);
            for (k, n) in noise.iter().enumerate() {
                let t = k as i64 * S;
                let e = a + (b * t as f64 / 1e6) as i64;
                exact.add(t0 + t, e);
                noisy.add(t0 + t, e + n);
            }
            prop_assert!((exact.drift_ppm().unwrap() - b).abs() < 0.01);
            // Noise ±20 µs over ≥ 9 s: slope error well below 20 ppm.
            prop_assert!((noisy.drift_ppm().unwrap() - b).abs() < 20.0);
        }
    }
}
