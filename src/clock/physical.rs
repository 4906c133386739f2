//! A node's physical clock: a base [`TimeSource`] plus an optional simulated error (skew, drift,
//! random variation) plus the correction that time synchronization sets (offset, frequency, slew).
//!
//! # Time scales
//!
//! * **system** — the base time source (the host clock in production).
//! * **disciplined** — `system + simulated error + correction`. This is the scale SNTP measures
//!   and corrects ([`PhysicalClock::read_raw`]). It may go backwards (random variation, a negative step).
//! * **physical** — what [`PhysicalClock::now_ns`] returns: the disciplined scale passed through a
//!   monotonic guard.
//!
//! # Invariants
//!
//! * Simulated error at system time `t` = `skew + drift · (t − t_created)/1 s + U(−random_variation, +random_variation)`,
//!   where `t_created` is the base time when the clock was constructed (not the Unix epoch).
//! * Correction at system time `t` = `offset + frequency · (t − frequency anchor) + slew progress`,
//!   where slew progress moves toward the requested slew at no more than `max_slew_ppm`.
//!   Changing the frequency or starting a slew folds everything applied so far into `offset`, so
//!   the correction is continuous except at an explicit [`step`](PhysicalClock::step).
//! * **Monotonicity.** `now_ns` never decreases: each reading is `max(disciplined, last returned)`.
//!   When random variation or a backwards step puts the disciplined scale behind a value already handed out,
//!   the clock *holds* (returns that value again) until the disciplined scale catches up. A
//!   negative step of `x` therefore freezes the physical clock for about `x` of real time instead
//!   of running it backwards; slewing (bounded below 100 % of the tick rate) never holds by
//!   itself. [`CorrectionStatus::hold_ns`] reports how far behind the disciplined scale is.

use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::time::{SystemTimeSource, TimeSource, UnixNanos};

/// Default maximum slew rate, parts per million (5 %: chrony's generous `maxslewrate` order of
/// magnitude, so a 100 ms correction completes in 2 s).
pub const DEFAULT_MAX_SLEW_PPM: f64 = 50_000.0;

/// Largest allowed slew rate or frequency correction: below 100 % of the tick rate, so neither
/// can make the disciplined scale run backwards on its own.
pub const MAX_RATE_PPM: f64 = 500_000.0;

/// Injected clock error, as the prototype's `--simulate-skew`, `--simulate-drift`,
/// `--random-variation` flags describe it. All zero means no simulation.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Simulation {
    /// Constant offset, milliseconds (positive = the node's clock is ahead).
    pub skew_ms: f64,
    /// Rate error, milliseconds gained per second elapsed since the clock was created
    /// (0.1 ms/s = 100 ppm fast).
    pub drift_ms_per_s: f64,
    /// Half-width of a uniform random error added to each reading, milliseconds.
    pub random_variation_ms: f64,
    /// RNG seed for the random variation; `None` seeds from the OS.
    pub seed: Option<u64>,
}

impl Simulation {
    /// True when skew, drift and random variation are all zero (the seed alone simulates nothing).
    pub fn is_zero(&self) -> bool {
        self.skew_ms == 0.0 && self.drift_ms_per_s == 0.0 && self.random_variation_ms == 0.0
    }

    /// Replaces NaN/infinite parameters by zero and negative random variation by its absolute value, so a
    /// bad flag can never poison every reading.
    fn sanitized(mut self) -> Self {
        let fin = |v: f64| if v.is_finite() { v } else { 0.0 };
        self.skew_ms = fin(self.skew_ms);
        self.drift_ms_per_s = fin(self.drift_ms_per_s);
        self.random_variation_ms = fin(self.random_variation_ms).abs();
        self
    }
}

/// One consistent reading of a [`PhysicalClock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalReading {
    /// The base time source (host system time) at this reading.
    pub system_ns: UnixNanos,
    /// The node's physical clock: simulation and correction applied, monotonic.
    pub physical_ns: UnixNanos,
    /// The injected error (skew + drift + random variation) at this reading; `None` without simulation.
    /// This is the envelope's `simulated_skew_ms` (in nanoseconds).
    pub simulated_error_ns: Option<i64>,
}

/// A reading of the disciplined scale before the monotonic guard, for measurement (SNTP T1/T4)
/// and drift estimation. May go backwards; never stamp messages with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawReading {
    /// The base time source at this reading.
    pub system_ns: UnixNanos,
    /// `system + simulated error + correction`.
    pub disciplined_ns: UnixNanos,
    /// The total correction applied at this reading (offset + frequency term + slew progress).
    pub correction_ns: i64,
    /// The injected error at this reading (0 without simulation).
    pub simulated_error_ns: i64,
}

/// The correction state the discipline has set, evaluated at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CorrectionStatus {
    /// Total correction now: offset + frequency term + slew progress, nanoseconds.
    pub total_ns: i64,
    /// Frequency correction, ppm (positive speeds the clock up).
    pub frequency_ppm: f64,
    /// Part of the last requested slew not yet applied, nanoseconds.
    pub slew_remaining_ns: i64,
    /// Maximum slew rate, ppm.
    pub max_slew_ppm: f64,
    /// How far the disciplined scale is behind the last value handed out (the clock is holding
    /// while this is positive), nanoseconds.
    pub hold_ns: i64,
    /// Number of steps applied since creation.
    pub steps: u64,
}

#[derive(Debug)]
struct Inner {
    sim: Simulation,
    rng: SmallRng,
    /// Base time at creation: drift counts from here.
    created_ns: UnixNanos,
    /// Offset folded in from steps, finished slews and past frequency periods (ns, fractional).
    offset_ns: f64,
    frequency_ppm: f64,
    /// Base time from which the current frequency accumulates.
    freq_anchor_ns: UnixNanos,
    /// Requested slew (signed ns) and the base time it started.
    slew_target_ns: f64,
    slew_start_ns: UnixNanos,
    max_slew_ppm: f64,
    /// Last value returned by `now_ns` (monotonic guard).
    last_ns: Option<UnixNanos>,
    steps: u64,
}

impl Inner {
    fn simulated_error(&mut self, system_ns: UnixNanos) -> f64 {
        if self.sim.is_zero() {
            return 0.0;
        }
        let elapsed_s = (system_ns.saturating_sub(self.created_ns)) as f64 / 1e9;
        let mut err_ms = self.sim.skew_ms + self.sim.drift_ms_per_s * elapsed_s;
        if self.sim.random_variation_ms > 0.0 {
            err_ms += self
                .rng
                .gen_range(-self.sim.random_variation_ms..=self.sim.random_variation_ms);
        }
        err_ms * 1e6
    }

    fn slew_progress(&self, system_ns: UnixNanos) -> f64 {
        if self.slew_target_ns == 0.0 {
            return 0.0;
        }
        let elapsed = (system_ns.saturating_sub(self.slew_start_ns)).max(0) as f64;
        let done = (elapsed * self.max_slew_ppm / 1e6).min(self.slew_target_ns.abs());
        done.copysign(self.slew_target_ns)
    }

    fn freq_term(&self, system_ns: UnixNanos) -> f64 {
        (system_ns.saturating_sub(self.freq_anchor_ns)) as f64 * self.frequency_ppm / 1e6
    }

    fn correction(&self, system_ns: UnixNanos) -> f64 {
        self.offset_ns + self.freq_term(system_ns) + self.slew_progress(system_ns)
    }

    /// Folds the frequency term and slew progress into `offset` at `system_ns`; the remaining
    /// slew restarts from there. Leaves the correction at `system_ns` unchanged.
    fn fold(&mut self, system_ns: UnixNanos) {
        let progress = self.slew_progress(system_ns);
        self.offset_ns += self.freq_term(system_ns) + progress;
        self.slew_target_ns -= progress;
        self.slew_start_ns = system_ns;
        self.freq_anchor_ns = system_ns;
    }

    fn raw(&mut self, system_ns: UnixNanos) -> RawReading {
        let sim = self.simulated_error(system_ns);
        let corr = self.correction(system_ns);
        RawReading {
            system_ns,
            disciplined_ns: add_f64(system_ns, sim + corr),
            correction_ns: round_i64(corr),
            simulated_error_ns: round_i64(sim),
        }
    }
}

fn round_i64(v: f64) -> i64 {
    // `as` saturates and maps NaN to 0.
    v.round() as i64
}

fn add_f64(base: UnixNanos, delta: f64) -> UnixNanos {
    base.saturating_add(round_i64(delta))
}

/// A node's physical clock. `Send + Sync`; share one per node behind an `Arc`.
///
/// # Example
///
/// A clock 100 ms fast (simulated skew) on a manually driven time source, corrected by a step:
///
/// ```
/// use std::sync::Arc;
/// use kafka_timesync::clock::{PhysicalClock, Simulation};
/// use kafka_timesync::time::ManualTime;
///
/// const MS: i64 = 1_000_000;
/// let base = Arc::new(ManualTime::new(1_790_000_000_000 * MS));
/// let sim = Simulation { skew_ms: 100.0, seed: Some(7), ..Simulation::default() };
/// let clock = PhysicalClock::with_simulation(base.clone(), sim);
/// assert_eq!(clock.now_ns(), 1_790_000_000_100 * MS);
///
/// // Time synchronisation found the clock 100 ms ahead and steps it back. The physical clock
/// // never runs backwards: it holds its last reading until the corrected scale catches up.
/// clock.step(-100 * MS);
/// assert_eq!(clock.now_ns(), 1_790_000_000_100 * MS);
/// base.advance_ms(250);
/// assert_eq!(clock.now_ns(), 1_790_000_000_250 * MS);
/// ```
#[derive(Debug)]
pub struct PhysicalClock {
    source: Arc<dyn TimeSource>,
    inner: Mutex<Inner>,
}

impl PhysicalClock {
    /// A clock on `source` without simulation.
    pub fn new(source: Arc<dyn TimeSource>) -> Self {
        Self::with_simulation(source, Simulation::default())
    }

    /// A clock on `source` with the given injected error. Non-finite parameters count as zero.
    pub fn with_simulation(source: Arc<dyn TimeSource>, sim: Simulation) -> Self {
        let sim = sim.sanitized();
        let created_ns = source.now_ns();
        let rng = match sim.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_entropy(),
        };
        Self {
            source,
            inner: Mutex::new(Inner {
                sim,
                rng,
                created_ns,
                offset_ns: 0.0,
                frequency_ppm: 0.0,
                freq_anchor_ns: created_ns,
                slew_target_ns: 0.0,
                slew_start_ns: created_ns,
                max_slew_ppm: DEFAULT_MAX_SLEW_PPM,
                last_ns: None,
                steps: 0,
            }),
        }
    }

    /// The host's system clock, no simulation.
    pub fn system() -> Self {
        Self::new(Arc::new(SystemTimeSource))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated in a way that breaks
        // the invariants above (every field is written in one step), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The physical clock now (simulation and correction applied). Never decreases.
    pub fn now_ns(&self) -> UnixNanos {
        self.read().physical_ns
    }

    /// One consistent reading: system time, physical time and the injected error, all from the
    /// same instant.
    pub fn read(&self) -> PhysicalReading {
        let system_ns = self.source.now_ns();
        let mut inner = self.lock();
        let raw = inner.raw(system_ns);
        let physical_ns = match inner.last_ns {
            Some(last) if last > raw.disciplined_ns => last,
            _ => raw.disciplined_ns,
        };
        inner.last_ns = Some(physical_ns);
        PhysicalReading {
            system_ns,
            physical_ns,
            simulated_error_ns: (!inner.sim.is_zero()).then_some(raw.simulated_error_ns),
        }
    }

    /// A reading of the disciplined scale, without the monotonic guard (see the module docs).
    /// SNTP reads T1 and T4 here so that a holding clock does not distort its own measurement.
    pub fn read_raw(&self) -> RawReading {
        let system_ns = self.source.now_ns();
        self.lock().raw(system_ns)
    }

    /// The simulation in effect; `None` when skew, drift and random variation are all zero.
    pub fn simulation(&self) -> Option<Simulation> {
        let inner = self.lock();
        (!inner.sim.is_zero()).then_some(inner.sim)
    }

    /// Steps the correction by `delta_ns` at once and cancels any slew in progress. A negative
    /// step makes the clock hold (see the module docs); it never runs backwards.
    pub fn step(&self, delta_ns: i64) {
        let now = self.source.now_ns();
        let mut inner = self.lock();
        inner.fold(now);
        inner.slew_target_ns = 0.0;
        inner.offset_ns += delta_ns as f64;
        inner.steps += 1;
    }

    /// Spreads a correction of `delta_ns` over time at the maximum slew rate. It replaces any
    /// slew still in progress: an SNTP offset is measured against the clock as corrected so far,
    /// so the unapplied remainder of an older slew is already part of it.
    pub fn slew(&self, delta_ns: i64) {
        let now = self.source.now_ns();
        let mut inner = self.lock();
        inner.fold(now);
        inner.slew_target_ns = delta_ns as f64;
    }

    /// Sets the frequency correction in ppm (positive runs the clock faster), clamped to
    /// ±[`MAX_RATE_PPM`]; non-finite values are ignored. The correction stays continuous.
    pub fn set_frequency_ppm(&self, ppm: f64) {
        if !ppm.is_finite() {
            return;
        }
        let now = self.source.now_ns();
        let mut inner = self.lock();
        inner.fold(now);
        inner.frequency_ppm = ppm.clamp(-MAX_RATE_PPM, MAX_RATE_PPM);
    }

    /// The current frequency correction, ppm.
    pub fn frequency_ppm(&self) -> f64 {
        self.lock().frequency_ppm
    }

    /// Sets the maximum slew rate in ppm, clamped to `(0, MAX_RATE_PPM]`; non-finite or
    /// non-positive values are ignored. A slew in progress continues at the new rate.
    pub fn set_max_slew_ppm(&self, ppm: f64) {
        if !ppm.is_finite() || ppm <= 0.0 {
            return;
        }
        let now = self.source.now_ns();
        let mut inner = self.lock();
        inner.fold(now);
        inner.max_slew_ppm = ppm.min(MAX_RATE_PPM);
    }

    /// The correction state now.
    pub fn correction(&self) -> CorrectionStatus {
        let now = self.source.now_ns();
        let mut inner = self.lock();
        let raw = inner.raw(now);
        let progress = inner.slew_progress(now);
        CorrectionStatus {
            total_ns: raw.correction_ns,
            frequency_ppm: inner.frequency_ppm,
            slew_remaining_ns: round_i64(inner.slew_target_ns - progress),
            max_slew_ppm: inner.max_slew_ppm,
            hold_ns: inner
                .last_ns
                .map_or(0, |last| last.saturating_sub(raw.disciplined_ns).max(0)),
            steps: inner.steps,
        }
    }
}

impl TimeSource for PhysicalClock {
    fn now_ns(&self) -> UnixNanos {
        PhysicalClock::now_ns(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualTime;
    use proptest::prelude::*;

    const T0: i64 = 1_790_000_000_000_000_000;
    const MS: i64 = 1_000_000;

    fn manual() -> (Arc<ManualTime>, Arc<dyn TimeSource>) {
        let t = Arc::new(ManualTime::new(T0));
        (t.clone(), t)
    }

    #[test]
    fn without_simulation_reads_the_source() {
        let (t, src) = manual();
        let c = PhysicalClock::new(src);
        assert_eq!(c.now_ns(), T0);
        t.advance_ms(5);
        let r = c.read();
        assert_eq!(r.system_ns, T0 + 5 * MS);
        assert_eq!(r.physical_ns, T0 + 5 * MS);
        assert_eq!(r.simulated_error_ns, None);
        assert_eq!(c.simulation(), None);
    }

    #[test]
    fn skew_and_drift_count_from_creation_not_epoch() {
        let (t, src) = manual();
        let sim = Simulation {
            skew_ms: 100.0,
            drift_ms_per_s: 0.1,
            ..Default::default()
        };
        let c = PhysicalClock::with_simulation(src, sim);
        assert_eq!(c.read().simulated_error_ns, Some(100 * MS));
        t.advance_ms(10_000);
        let r = c.read();
        // 100 ms skew + 0.1 ms/s * 10 s = 101 ms.
        assert_eq!(r.simulated_error_ns, Some(101 * MS));
        assert_eq!(r.physical_ns - r.system_ns, 101 * MS);
        assert_eq!(c.simulation(), Some(sim));
    }

    #[test]
    fn seeded_random_variation_is_reproducible_and_bounded() {
        let sim = Simulation {
            random_variation_ms: 5.0,
            seed: Some(42),
            ..Default::default()
        };
        let run = || {
            let (t, src) = manual();
            let c = PhysicalClock::with_simulation(src, sim);
            (0..200)
                .map(|_| {
                    t.advance_ms(1);
                    c.read_raw().simulated_error_ns
                })
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().all(|e| e.abs() <= 5 * MS));
        assert!(
            a.iter().any(|e| *e != a[0]),
            "the random variation must vary"
        );
    }

    #[test]
    fn positive_step_applies_at_once() {
        let (_t, src) = manual();
        let c = PhysicalClock::new(src);
        c.step(300 * MS);
        assert_eq!(c.now_ns(), T0 + 300 * MS);
        assert_eq!(c.correction().steps, 1);
    }

    #[test]
    fn negative_step_holds_until_real_time_catches_up() {
        let (t, src) = manual();
        let c = PhysicalClock::new(src);
        t.advance_ms(1_000);
        let before = c.now_ns();
        c.step(-250 * MS);
        assert_eq!(c.now_ns(), before, "holds instead of running backwards");
        assert_eq!(c.correction().hold_ns, 250 * MS);
        // The disciplined scale already carries the step.
        assert_eq!(c.read_raw().disciplined_ns, before - 250 * MS);
        t.advance_ms(100);
        assert_eq!(c.now_ns(), before);
        t.advance_ms(200);
        assert_eq!(c.now_ns(), before + 50 * MS);
        assert_eq!(c.correction().hold_ns, 0);
    }

    #[test]
    fn slew_is_bounded_by_max_rate_and_completes() {
        let (t, src) = manual();
        let c = PhysicalClock::new(src);
        c.set_max_slew_ppm(50_000.0);
        c.slew(-100 * MS);
        t.advance_ms(1_000);
        // 5 % of 1 s = 50 ms applied so far.
        assert_eq!(c.correction().total_ns, -50 * MS);
        assert_eq!(c.correction().slew_remaining_ns, -50 * MS);
        t.advance_ms(5_000);
        assert_eq!(c.correction().total_ns, -100 * MS);
        assert_eq!(c.correction().slew_remaining_ns, 0);
    }

    #[test]
    fn new_slew_replaces_unapplied_remainder() {
        let (t, src) = manual();
        let c = PhysicalClock::new(src);
        c.slew(100 * MS);
        t.advance_ms(1_000); // 50 ms applied
        c.slew(10 * MS);
        t.advance_ms(10_000);
        assert_eq!(c.correction().total_ns, 60 * MS);
    }

    #[test]
    fn frequency_correction_accumulates_and_stays_continuous() {
        let (t, src) = manual();
        let c = PhysicalClock::new(src);
        c.set_frequency_ppm(-100.0);
        t.advance_ms(10_000);
        assert_eq!(c.correction().total_ns, -MS);
        c.set_frequency_ppm(50.0);
        assert_eq!(c.correction().total_ns, -MS);
        t.advance_ms(10_000);
        assert_eq!(c.correction().total_ns, -MS + MS / 2);
    }

    #[test]
    fn frequency_correction_cancels_simulated_drift() {
        let (t, src) = manual();
        let sim = Simulation {
            drift_ms_per_s: 0.1,
            ..Default::default()
        };
        let c = PhysicalClock::with_simulation(src, sim);
        c.set_frequency_ppm(-100.0);
        t.advance_ms(60_000);
        let r = c.read();
        assert_eq!(r.physical_ns, r.system_ns);
    }

    #[test]
    fn non_finite_inputs_are_harmless() {
        let (t, src) = manual();
        let sim = Simulation {
            skew_ms: f64::NAN,
            drift_ms_per_s: f64::INFINITY,
            random_variation_ms: -1.0,
            seed: Some(1),
        };
        let c = PhysicalClock::with_simulation(src, sim);
        c.set_frequency_ppm(f64::NAN);
        c.set_max_slew_ppm(-5.0);
        t.advance_ms(1);
        let r = c.read_raw();
        assert_eq!(r.system_ns, T0 + MS);
        assert!(r.simulated_error_ns.abs() <= MS);
    }

    #[test]
    fn is_send_sync_and_a_time_source() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PhysicalClock>();
        let c: Arc<dyn TimeSource> = Arc::new(PhysicalClock::system());
        assert!(c.now_ns() > 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Advance(i64),
        BackwardSource(i64),
        Step(i64),
        Slew(i64),
        Freq(f64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0i64..50 * MS).prop_map(Op::Advance),
            1 => (0i64..20 * MS).prop_map(Op::BackwardSource),
            1 => (-2_000 * MS..2_000 * MS).prop_map(Op::Step),
            2 => (-200 * MS..200 * MS).prop_map(Op::Slew),
            1 => (-1_000.0f64..1_000.0).prop_map(Op::Freq),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// Whatever random variation, steps, slews, frequency changes or a stepping source do, the physical
        /// clock never runs backwards.
        #[test]
        fn physical_clock_never_decreases(
            variation in 0.0f64..20.0,
            seed in any::<u64>(),
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let (t, src) = manual();
            let sim = Simulation { skew_ms: 3.0, drift_ms_per_s: -0.5, random_variation_ms: variation, seed: Some(seed) };
            let c = PhysicalClock::with_simulation(src, sim);
            let mut last = c.now_ns();
            for op in ops {
                match op {
                    Op::Advance(d) => t.advance(d),
                    Op::BackwardSource(d) => t.advance(-d),
                    Op::Step(d) => c.step(d),
                    Op::Slew(d) => c.slew(d),
                    Op::Freq(f) => c.set_frequency_ppm(f),
                }
                let now = c.now_ns();
                prop_assert!(now >= last, "went back from {last} to {now}");
                last = now;
            }
        }

        /// A slew alone (no random variation, source moving forward) never makes even the unguarded
        /// disciplined scale go backwards, and never overshoots its target.
        #[test]
        fn slewing_scale_is_monotonic_and_bounded(
            target in -500 * MS..500 * MS,
            steps in proptest::collection::vec(1i64..100 * MS, 1..80),
        ) {
            let (t, src) = manual();
            let c = PhysicalClock::new(src);
            c.slew(target);
            let mut last = c.read_raw().disciplined_ns;
            for d in steps {
                t.advance(d);
                let raw = c.read_raw();
                prop_assert!(raw.disciplined_ns >= last);
                prop_assert!(raw.correction_ns.abs() <= target.abs());
                last = raw.disciplined_ns;
            }
        }
    }
}
