//! NTP's clock filter for one server: keep the last few samples, use the one with the smallest
//! synchronisation distance (δ/2 + dispersion + PHI·age), carried forward to "now". I/O-free.

use std::collections::VecDeque;

use super::sample::Sample;
use crate::time::UnixNanos;

/// Frequency tolerance used to age samples (RFC 5905 PHI = 15 ppm).
pub const PHI_PPM: f64 = 15.0;

/// A sample chosen by the filter, evaluated at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Filtered {
    /// The sample chosen.
    pub sample: Sample,
    /// Its offset carried forward to now: θ − (correction now − correction then).
    pub offset_now_ns: i64,
    /// Its synchronisation distance now: δ/2 + dispersion + PHI·age, nanoseconds.
    pub distance_ns: i64,
    /// Age of the sample, nanoseconds.
    pub age_ns: i64,
}

/// The last `capacity` samples of one server.
#[derive(Debug, Clone)]
pub struct ClockFilter {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl ClockFilter {
    /// A filter keeping `capacity` samples (at least 1; NTP uses 8).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        ClockFilter {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds a sample, evicting the oldest when full.
    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Forgets every sample (after a server is disabled).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// The newest sample, if any.
    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// The sample with the smallest distance at local time `now_ns`, ignoring samples older than
    /// `max_age_ns`; `correction_now_ns` is the clock's total correction now.
    pub fn best(
        &self,
        now_ns: UnixNanos,
        correction_now_ns: i64,
        max_age_ns: i64,
    ) -> Option<Filtered> {
        self.samples
            .iter()
            .filter_map(|s| {
                let age_ns = now_ns.saturating_sub(s.at_ns()).max(0);
                (age_ns <= max_age_ns).then(|| {
                    let aging = (age_ns as f64 * PHI_PPM / 1e6) as i64;
                    Filtered {
                        sample: *s,
                        offset_now_ns: s
                            .offset_ns
                            .saturating_sub(correction_now_ns.saturating_sub(s.correction_ns)),
                        distance_ns: (s.delay_ns / 2)
                            .saturating_add(s.dispersion_ns)
                            .saturating_add(aging),
                        age_ns,
                    }
                })
            })
            .min_by_key(|f| (f.distance_ns, -f.sample.at_ns()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntp::sample::Exchange;

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;

    fn sample(at: i64, offset: i64, delay: i64, corr: i64) -> Sample {
        let t1 = at - delay / 2;
        let e = Exchange {
            t1,
            t2: t1 + delay / 2 + offset,
            t3: t1 + delay / 2 + offset,
            t4: t1 + delay,
        };
        Sample::new(e, e.delay_ns(), 0, corr)
    }

    #[test]
    fn picks_smallest_delay() {
        let mut f = ClockFilter::new(8);
        f.push(sample(10 * S, 5 * MS, 40 * MS, 0));
        f.push(sample(11 * S, MS, 2 * MS, 0));
        f.push(sample(12 * S, 9 * MS, 30 * MS, 0));
        let b = f.best(12 * S, 0, 100 * S).unwrap();
        assert_eq!(b.sample.offset_ns, MS);
        assert_eq!(b.age_ns, S);
    }

    #[test]
    fn capacity_evicts_oldest() {
        let mut f = ClockFilter::new(2);
        f.push(sample(S, 1, MS, 0));
        f.push(sample(2 * S, 2, 9 * MS, 0));
        f.push(sample(3 * S, 3, 8 * MS, 0));
        assert_eq!(f.len(), 2);
        assert_eq!(f.best(3 * S, 0, 100 * S).unwrap().sample.offset_ns, 3);
    }

    #[test]
    fn old_samples_lose_to_fresh_ones_and_expire() {
        let mut f = ClockFilter::new(8);
        f.push(sample(0, 7, 2 * MS, 0));
        f.push(sample(1_000 * S, 9, 4 * MS, 0));
        // 1000 s of aging at 15 ppm = 15 ms of distance: the fresher sample wins.
        assert_eq!(
            f.best(1_000 * S, 0, 10_000 * S).unwrap().sample.offset_ns,
            9
        );
        assert!(f.best(20_000 * S, 0, 10_000 * S).is_none());
    }

    #[test]
    fn offset_is_carried_across_later_corrections() {
        let mut f = ClockFilter::new(8);
        f.push(sample(S, 100 * MS, 2 * MS, 0));
        // The discipline has since applied 60 ms: 40 ms remain.
        assert_eq!(
            f.best(2 * S, 60 * MS, 100 * S).unwrap().offset_now_ns,
            40 * MS
        );
    }
}
