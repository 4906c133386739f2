//! Slew vs step vs ignore over real UDP: a responder serving the system time shifted by 50 ms,
//! 500 ms and 2000 s makes the node slew, step and ignore; a slewing clock never goes backwards.

mod ntp_support;

use std::sync::Arc;
use std::time::Duration;

use kafka_timesync::clock::physical::PhysicalClock;
use kafka_timesync::ntp::{spawn, Action, SyncEvent, SyncOptions};
use ntp_support::{responder, wait_for, Behaviour};

const MS: i64 = 1_000_000;

/// Runs the sync task against one responder `offset_ns` away and returns the first round's
/// action and offset, and the clock.
async fn first_round(offset_ns: i64) -> (Action, i64, Arc<PhysicalClock>) {
    let addr = responder(Behaviour::Offset(offset_ns)).await;
    let clock = Arc::new(PhysicalClock::system());
    let h = spawn(
        clock.clone(),
        SyncOptions {
            servers: vec![addr.to_string()],
            ..Default::default()
        },
    );
    let r = wait_for(Duration::from_secs(20), "the first round", || {
        let r = h.history().into_iter().find_map(|e| match e {
            SyncEvent::Round(r) => Some(r),
            _ => None,
        });
        async move { r }
    })
    .await;
    h.shutdown().await;
    (
        r.action.expect("an action"),
        r.offset_ns.expect("an offset"),
        clock,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_ms_is_slewed() {
    let (a, off, c) = first_round(50 * MS).await;
    assert_eq!(a, Action::Slew);
    assert!((off - 50 * MS).abs() < 2 * MS, "{off}");
    assert_eq!(c.correction().steps, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_ms_is_stepped() {
    let (a, off, c) = first_round(-500 * MS).await;
    assert_eq!(a, Action::Step);
    assert!((off + 500 * MS).abs() < 2 * MS, "{off}");
    assert_eq!(c.correction().steps, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_seconds_is_ignored() {
    let (a, off, c) = first_round(2_000_000 * MS).await;
    assert_eq!(a, Action::Ignore);
    assert!((off - 2_000_000 * MS).abs() < 2 * MS, "{off}");
    assert_eq!(c.correction().total_ns, 0, "the clock is left alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slewing_clock_never_goes_backwards() {
    // −100 ms: the clock must lose 100 ms by running slow (2 s at 5 %), never by stepping back.
    let addr = responder(Behaviour::Offset(-100 * MS)).await;
    let clock = Arc::new(PhysicalClock::system());
    let h = spawn(
        clock.clone(),
        SyncOptions {
            servers: vec![addr.to_string()],
            ..Default::default()
        },
    );
    let reader = {
        let clock = clock.clone();
        tokio::task::spawn_blocking(move || {
            let start = std::time::Instant::now();
            let mut last = clock.now_ns();
            let mut reads = 0u64;
            let mut min_correction = 0i64;
            while start.elapsed() < Duration::from_secs(4) {
                let now = clock.now_ns();
                assert!(now >= last, "clock went back by {} ns", last - now);
                last = now;
                reads += 1;
                min_correction = min_correction.min(clock.correction().total_ns);
            }
            (reads, min_correction)
        })
    };
    let (reads, min_correction) = reader.await.expect("reader");
    let st = h.status();
    h.shutdown().await;
    assert!(reads > 1_000);
    assert!(st.slews >= 1 && st.steps == 0, "{st:?}");
    assert!(
        min_correction < -90 * MS,
        "the slew went through: {min_correction}"
    );
}
