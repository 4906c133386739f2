//! SNTP against the real chronyd of the test environment. chronyd serves this host's system
//! clock, so the system clock is the truth: a node's corrected physical clock must match it.

mod ntp_support;

use std::sync::Arc;
use std::time::Duration;

use kafka_timesync::clock::physical::{PhysicalClock, Simulation};
use kafka_timesync::ntp::client::{exchange, resolve, ExchangeOptions};
use kafka_timesync::ntp::{spawn, Action, SyncEvent, SyncOptions};
use kafka_timesync::time::{SystemTimeSource, TimeSource};
use ntp_support::{ntp_server, wait_for};

const MS: i64 = 1_000_000;

fn clock(sim: Simulation) -> Arc<PhysicalClock> {
    let src: Arc<dyn TimeSource> = Arc::new(SystemTimeSource);
    Arc::new(PhysicalClock::with_simulation(src, sim))
}

fn opts(drift_correction: bool) -> SyncOptions {
    SyncOptions {
        servers: vec![ntp_server()],
        interval: Duration::from_millis(500),
        drift_correction,
        ..Default::default()
    }
}

/// |physical − system| of one reading, ns.
fn error_ns(c: &PhysicalClock) -> i64 {
    let r = c.read();
    r.physical_ns - r.system_ns
}

#[tokio::test]
async fn one_exchange_gives_sane_offset_and_delay() {
    let addr = resolve(&ntp_server())
        .await
        .expect("resolve KTS_NTP_SERVER")[0];
    let c = clock(Simulation::default());
    let r = exchange(&c, addr, &ExchangeOptions::default()).await;
    let s = r.outcome.expect("chronyd answers with a valid reply");
    assert!(r.stratum.is_some_and(|st| (1..=15).contains(&st)));
    assert!(
        s.offset_ns.abs() < 5 * MS,
        "offset {} ns against our own host's clock",
        s.offset_ns
    );
    assert!(
        (0..100 * MS).contains(&s.delay_ns),
        "delay {} ns on loopback",
        s.delay_ns
    );
}

#[tokio::test]
async fn exchange_measures_the_nodes_own_skew() {
    let addr = resolve(&ntp_server())
        .await
        .expect("resolve KTS_NTP_SERVER")[0];
    let c = clock(Simulation {
        skew_ms: 250.0,
        ..Default::default()
    });
    let s = exchange(&c, addr, &ExchangeOptions::default())
        .await
        .outcome
        .expect("valid reply");
    assert!(
        (s.offset_ns + 250 * MS).abs() < 5 * MS,
        "offset {} ns, expected −250 ms",
        s.offset_ns
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_node_is_corrected_within_2ms() {
    let c = clock(Simulation {
        skew_ms: 250.0,
        ..Default::default()
    });
    assert!(error_ns(&c) > 249 * MS);
    let h = spawn(c.clone(), opts(true));
    wait_for(
        Duration::from_secs(30),
        "|corrected − system| < 2 ms",
        || async {
            let st = h.status();
            (st.good_rounds >= 2 && error_ns(&c).abs() < 2 * MS).then_some(())
        },
    )
    .await;
    let first = h.history().into_iter().find_map(|e| match e {
        SyncEvent::Round(r) if r.action.is_some() => Some(r),
        _ => None,
    });
    let first = first.expect("a round that acted");
    assert_eq!(first.action, Some(Action::Step));
    assert!(
        (first.offset_ns.unwrap_or(0) + 250 * MS).abs() < 5 * MS,
        "{first:?}"
    );
    let st = h.status();
    assert_eq!(st.server_in_use.as_deref(), Some(ntp_server().as_str()));
    assert!(st.samples_accepted >= 4, "the initial burst");
    assert!(st.since_last_good_sync_s.is_some());
    h.shutdown().await;
}

/// Waits until the drift estimate is within 10 ppm of 100 ppm after several syncs, stops
/// syncing, and returns the clock error then.
async fn sync_drifting_node(drift_correction: bool) -> (Arc<PhysicalClock>, i64) {
    let c = clock(Simulation {
        drift_ms_per_s: 0.1,
        ..Default::default()
    });
    let h = spawn(c.clone(), opts(drift_correction));
    let drift = wait_for(
        Duration::from_secs(90),
        "drift estimate within 10 ppm of 100 ppm",
        || async {
            let st = h.status();
            st.drift_ppm
                .filter(|d| st.good_rounds >= 8 && (d - 100.0).abs() < 10.0)
        },
    )
    .await;
    let st = h.status();
    if drift_correction {
        assert!(
            (st.frequency_correction_ppm + drift).abs() < 1e-6,
            "frequency follows the estimate: {st:?}"
        );
    } else {
        assert_eq!(st.frequency_correction_ppm, 0.0);
    }
    h.shutdown().await;
    // Let the last slew (at most a few hundred µs at 5 %) complete.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (c.clone(), error_ns(&c))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_correction_keeps_the_clock_right_between_syncs() {
    let (c, e0) = sync_drifting_node(true).await;
    assert!(e0.abs() < MS, "error at the last sync {e0} ns");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let e1 = error_ns(&c);
    assert!(e1.abs() < MS, "10 s after the last sync: {e1} ns");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_drift_correction_the_error_grows_at_the_drift_rate() {
    let (c, e0) = sync_drifting_node(false).await;
    let t0 = SystemTimeSource.now_ns();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let e1 = error_ns(&c);
    let elapsed_s = (SystemTimeSource.now_ns() - t0) as f64 / 1e9;
    let expected = 0.1 * MS as f64 * elapsed_s;
    let grown = (e1 - e0) as f64;
    assert!(
        (grown - expected).abs() < 0.05 * MS as f64,
        "grew {grown} ns, expected {expected} ns"
    );
    assert!(
        e1.abs() > 900_000,
        "after 10 s without correction the error is about 1 ms: {e1}"
    );
}
