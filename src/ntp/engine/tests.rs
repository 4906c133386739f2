//! Unit tests of the engine in a simulated world: a manual reference time and synthesised
//! exchanges.

use std::sync::Arc;

use super::*;
use crate::clock::physical::Simulation;
use crate::ntp::sample::{Exchange, Sample};
use crate::time::{ManualTime, TimeSource};

const MS: i64 = 1_000_000;
const S: i64 = 1_000_000_000;
const T0: i64 = 1_790_000_000 * S;

/// A simulated world: `truth` is the reference time (what servers serve), the node's clock
/// runs on it with a simulation. Exchanges are synthesised with a symmetric `one_way` delay
/// and a server error `server_err`.
struct World {
    truth: Arc<ManualTime>,
    clock: Arc<PhysicalClock>,
}

impl World {
    fn new(sim: Simulation) -> Self {
        let truth = Arc::new(ManualTime::new(T0));
        let src: Arc<dyn TimeSource> = truth.clone();
        let clock = Arc::new(PhysicalClock::with_simulation(src, sim));
        World { truth, clock }
    }

    fn exchange(&self, server_err: i64, one_way: i64) -> ExchangeResult {
        let r1 = self.clock.read_raw();
        self.truth.advance(one_way);
        let t2 = self.truth.now_ns() + server_err;
        let t3 = t2 + 10_000;
        self.truth.advance(one_way + 10_000);
        let r4 = self.clock.read_raw();
        let ex = Exchange {
            t1: r1.disciplined_ns,
            t2,
            t3,
            t4: r4.disciplined_ns,
        };
        let corr = (r1.correction_ns + r4.correction_ns) / 2;
        ExchangeResult {
            addr: "127.0.0.1:123".parse().unwrap(),
            t1: Some(ex.t1),
            t2: Some(t2),
            t3: Some(t3),
            t4: Some(ex.t4),
            stratum: Some(2),
            outcome: Ok(Sample::new(ex, ex.delay_ns(), 1_000, corr)),
        }
    }

    fn error_ns(&self) -> i64 {
        self.clock.read_raw().disciplined_ns - self.truth.now_ns()
    }
}

fn opts(servers: usize) -> SyncOptions {
    SyncOptions {
        servers: (0..servers).map(|i| format!("s{i}")).collect(),
        interval: Duration::from_secs(1),
        ..Default::default()
    }
}

fn rejected(reason: RejectReason) -> ExchangeResult {
    ExchangeResult {
        addr: "127.0.0.1:123".parse().unwrap(),
        t1: Some(T0),
        t2: None,
        t3: None,
        t4: None,
        stratum: Some(0),
        outcome: Err(reason),
    }
}

fn round(engine: &mut SyncEngine, w: &World, errs: &[i64]) -> RoundRecord {
    let (plan, n) = engine.plan_round();
    for idx in plan {
        for _ in 0..n {
            let r = w.exchange(errs[idx], 100_000);
            engine.on_exchange(idx, &r);
        }
    }
    engine.finish_round(&w.clock)
}

#[test]
fn slew_step_ignore_chosen_by_offset() {
    for (skew_ms, want) in [
        (-50.0, Action::Slew),
        (-500.0, Action::Step),
        (-2_000_000.0, Action::Ignore),
    ] {
        let w = World::new(Simulation {
            skew_ms,
            ..Default::default()
        });
        let mut e = SyncEngine::new(opts(1));
        let rec = round(&mut e, &w, &[0]);
        assert_eq!(rec.action, Some(want), "skew {skew_ms} ms");
        let off = rec.offset_ns.unwrap();
        assert!(
            (off - (-skew_ms * 1e6) as i64).abs() < 10_000,
            "offset {off}"
        );
    }
}

#[test]
fn ignored_offset_leaves_the_clock_alone() {
    let w = World::new(Simulation {
        skew_ms: 2_000_000.0,
        ..Default::default()
    });
    let mut e = SyncEngine::new(opts(1));
    let before = w.clock.correction();
    round(&mut e, &w, &[0]);
    assert_eq!(w.clock.correction().total_ns, before.total_ns);
    assert_eq!(e.status(&w.clock).ignored, 1);
}

#[test]
fn step_then_slew_converges_and_clock_never_goes_back() {
    let w = World::new(Simulation {
        skew_ms: 250.0,
        ..Default::default()
    });
    let mut e = SyncEngine::new(opts(1));
    let mut last = w.clock.now_ns();
    let rec = round(&mut e, &w, &[0]);
    assert_eq!(rec.action, Some(Action::Step));
    for _ in 0..20 {
        w.truth.advance(S);
        let now = w.clock.now_ns();
        assert!(now >= last);
        last = now;
        round(&mut e, &w, &[0]);
    }
    w.truth.advance(S);
    assert!(w.error_ns().abs() < 20_000, "error {}", w.error_ns());
    assert_eq!(e.status(&w.clock).steps, 1);
}

#[test]
fn drift_is_estimated_and_corrected_between_syncs() {
    let w = World::new(Simulation {
        drift_ms_per_s: 0.1,
        ..Default::default()
    });
    let mut e = SyncEngine::new(opts(1));
    for _ in 0..10 {
        round(&mut e, &w, &[0]);
        w.truth.advance(S);
    }
    let st = e.status(&w.clock);
    let d = st.drift_ppm.unwrap();
    assert!((d - 100.0).abs() < 1.0, "drift {d}");
    assert!((st.frequency_correction_ppm + 100.0).abs() < 1.0);
    // No sync for 10 s: still within 1 ms (in fact within a few µs here).
    round(&mut e, &w, &[0]);
    w.truth.advance(2 * S); // let the last slew finish
    let e0 = w.error_ns();
    w.truth.advance(10 * S);
    assert!(
        (w.error_ns() - e0).abs() < 20_000,
        "drifted {}",
        w.error_ns() - e0
    );
}

#[test]
fn without_drift_correction_the_error_grows_at_the_drift_rate() {
    let w = World::new(Simulation {
        drift_ms_per_s: 0.1,
        ..Default::default()
    });
    let mut e = SyncEngine::new(SyncOptions {
        drift_correction: false,
        ..opts(1)
    });
    for _ in 0..10 {
        round(&mut e, &w, &[0]);
        w.truth.advance(S);
    }
    let st = e.status(&w.clock);
    assert_eq!(st.frequency_correction_ppm, 0.0);
    assert!(
        (st.drift_ppm.unwrap() - 100.0).abs() < 1.0,
        "still estimated"
    );
    round(&mut e, &w, &[0]);
    w.truth.advance(2 * S);
    let e0 = w.error_ns();
    w.truth.advance(10 * S);
    assert!(
        (w.error_ns() - e0 - MS).abs() < 10_000,
        "grew {}",
        w.error_ns() - e0
    );
}

#[test]
fn falseticker_is_dropped() {
    let w = World::new(Simulation {
        skew_ms: 20.0,
        ..Default::default()
    });
    let mut e = SyncEngine::new(opts(3));
    let rec = round(&mut e, &w, &[0, 5_000 * MS, 30_000]);
    assert_eq!(rec.falsetickers, vec!["s1".to_string()]);
    assert_eq!(rec.survivors, vec!["s0".to_string(), "s2".to_string()]);
    assert_eq!(rec.action, Some(Action::Slew));
    w.truth.advance(2 * S);
    assert!(w.error_ns().abs() < 100_000, "error {}", w.error_ns());
    let st = e.status(&w.clock);
    assert_eq!(st.servers[1].truechimer, Some(false));
}

#[test]
fn kod_rate_backs_off_and_deny_disables() {
    let w = World::new(Simulation::default());
    let mut e = SyncEngine::new(opts(3));
    let (plan, _) = e.plan_round();
    assert_eq!(plan, vec![0, 1, 2]);
    e.on_exchange(0, &rejected(RejectReason::KissOfDeath(KissCode::Rate)));
    e.on_exchange(1, &rejected(RejectReason::KissOfDeath(KissCode::Deny)));
    e.on_exchange(2, &w.exchange(0, 1_000));
    e.finish_round(&w.clock);
    let st = e.status(&w.clock);
    assert_eq!(st.servers[0].state, ServerState::Backoff);
    assert_eq!(st.servers[1].state, ServerState::Disabled);
    assert_eq!(st.rejected.get("kod-rate"), Some(&1));
    assert_eq!(st.rejected.get("kod-deny"), Some(&1));
    // RATE: skipped for two rounds; DENY: never again.
    assert_eq!(e.plan_round().0, vec![2]);
    assert_eq!(e.plan_round().0, vec![2]);
    assert_eq!(e.plan_round().0, vec![0, 2]);
}

#[test]
fn rate_backoff_holds_even_when_every_other_server_fails() {
    let w = World::new(Simulation::default());
    let mut e = SyncEngine::new(opts(2));
    e.plan_round();
    e.on_exchange(0, &rejected(RejectReason::KissOfDeath(KissCode::Rate)));
    e.on_exchange(1, &rejected(RejectReason::Timeout));
    e.finish_round(&w.clock);
    // Everything failed: the timed-out server is retried at once, the rate-limited one not.
    for _ in 0..2 {
        assert_eq!(e.plan_round().0, vec![1]);
        e.on_exchange(1, &rejected(RejectReason::Timeout));
        e.finish_round(&w.clock);
    }
    // Its two rounds of backoff are over.
    assert_eq!(e.plan_round().0, vec![0, 1]);
}

#[test]
fn all_servers_failing_keeps_correction_and_backs_off_exponentially() {
    let w = World::new(Simulation {
        skew_ms: 30.0,
        ..Default::default()
    });
    let mut e = SyncEngine::new(SyncOptions {
        max_backoff: Duration::from_secs(5),
        ..opts(2)
    });
    round(&mut e, &w, &[0, 0]);
    let corr = w.clock.correction().total_ns;
    assert_eq!(e.next_delay(), Duration::from_secs(1));
    let mut delays = Vec::new();
    for _ in 0..5 {
        let (plan, _) = e.plan_round();
        assert_eq!(plan, vec![0, 1], "every server is retried");
        for idx in plan {
            e.on_exchange(idx, &rejected(RejectReason::Timeout));
        }
        let rec = e.finish_round(&w.clock);
        assert!(rec.action.is_none());
        delays.push(e.next_delay().as_secs());
    }
    assert_eq!(delays, vec![1, 2, 4, 5, 5]);
    assert_eq!(w.clock.correction().total_ns, corr);
    assert_eq!(e.status(&w.clock).rejected.get("timeout"), Some(&10));
    // Recovery resets the backoff.
    round(&mut e, &w, &[0, 0]);
    assert_eq!(e.next_delay(), Duration::from_secs(1));
}

#[test]
fn history_is_bounded() {
    let w = World::new(Simulation::default());
    let mut e = SyncEngine::new(SyncOptions {
        history: 5,
        ..opts(1)
    });
    for _ in 0..10 {
        round(&mut e, &w, &[0]);
    }
    let h = e.history();
    assert_eq!(h.len(), 5);
    assert!(matches!(h.last(), Some(SyncEvent::Round(_))));
}
