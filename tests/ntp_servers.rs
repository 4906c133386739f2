//! Several servers: an unreachable one beside chronyd is survived, a falseticker is dropped, and
//! when every server fails the clock keeps its correction while the task backs off.

mod ntp_support;

use std::sync::Arc;
use std::time::Duration;

use kafka_timesync::clock::physical::{PhysicalClock, Simulation};
use kafka_timesync::ntp::{spawn, SyncEvent, SyncOptions};
use kafka_timesync::time::{SystemTimeSource, TimeSource};
use ntp_support::{ntp_server, responder, wait_for, Behaviour};

const MS: i64 = 1_000_000;

fn skewed(skew_ms: f64) -> Arc<PhysicalClock> {
    let src: Arc<dyn TimeSource> = Arc::new(SystemTimeSource);
    Arc::new(PhysicalClock::with_simulation(
        src,
        Simulation {
            skew_ms,
            ..Default::default()
        },
    ))
}

fn error_ns(c: &PhysicalClock) -> i64 {
    let r = c.read();
    r.physical_ns - r.system_ns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_beside_chronyd_is_survived() {
    let black_hole = responder(Behaviour::Silent).await.to_string();
    let c = skewed(80.0);
    let opts = SyncOptions {
        servers: vec![black_hole.clone(), ntp_server()],
        interval: Duration::from_millis(300),
        exchange: kafka_timesync::ntp::client::ExchangeOptions {
            timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..Default::default()
    };
    let h = spawn(c.clone(), opts);
    wait_for(
        Duration::from_secs(30),
        "synchronised despite the silent server",
        || async { (h.status().good_rounds >= 2 && error_ns(&c).abs() < 2 * MS).then_some(()) },
    )
    .await;
    let st = h.status();
    assert_eq!(st.server_in_use.as_deref(), Some(ntp_server().as_str()));
    assert!(
        st.rejected.get("timeout").copied().unwrap_or(0) >= 1,
        "{st:?}"
    );
    assert_eq!(st.consecutive_failed_rounds, 0);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falseticker_five_seconds_off_is_dropped() {
    let honest = responder(Behaviour::Offset(0)).await.to_string();
    let liar = responder(Behaviour::Offset(5_000 * MS)).await.to_string();
    let c = skewed(-40.0);
    let h = spawn(
        c.clone(),
        SyncOptions {
            servers: vec![ntp_server(), liar.clone(), honest.clone()],
            interval: Duration::from_millis(300),
            ..Default::default()
        },
    );
    let mut events = h.subscribe();
    let round = wait_for(Duration::from_secs(20), "a round with a selection", || {
        let r = loop {
            match events.try_recv() {
                Ok(SyncEvent::Round(r)) if r.action.is_some() => break Some(r),
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        async move { r }
    })
    .await;
    assert_eq!(round.falsetickers, vec![liar.clone()]);
    assert!(
        round.survivors.contains(&ntp_server()) && round.survivors.contains(&honest),
        "{round:?}"
    );
    assert!(
        (round.offset_ns.unwrap_or(0) - 40 * MS).abs() < 5 * MS,
        "{round:?}"
    );
    wait_for(Duration::from_secs(20), "clock within 2 ms", || async {
        (error_ns(&c).abs() < 2 * MS).then_some(())
    })
    .await;
    let st = h.status();
    let liar_st = st.servers.iter().find(|s| s.name == liar).expect("listed");
    assert_eq!(liar_st.truechimer, Some(false));
    assert!(
        error_ns(&c).abs() < 1_000 * MS,
        "never stepped toward the liar"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_failing_keeps_the_last_correction_and_backs_off() {
    let black_hole = responder(Behaviour::Silent).await.to_string();
    let c = skewed(30.0);
    c.set_frequency_ppm(-12.0);
    c.step(-30 * MS);
    let before = c.correction();
    let opts = SyncOptions {
        servers: vec![black_hole, "no-such-host.invalid".into()],
        interval: Duration::from_millis(50),
        retry_initial: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        exchange: kafka_timesync::ntp::client::ExchangeOptions {
            timeout: Duration::from_millis(100),
            ..Default::default()
        },
        ..Default::default()
    };
    let h = spawn(c.clone(), opts);
    let st = wait_for(Duration::from_secs(30), "several failed rounds", || async {
        let st = h.status();
        (st.consecutive_failed_rounds >= 4).then_some(st)
    })
    .await;
    assert_eq!(st.good_rounds, 0);
    assert!(st.rejected.get("timeout").copied().unwrap_or(0) >= 4);
    assert!(st.rejected.get("resolve").copied().unwrap_or(0) >= 4);
    // The backoff doubles: the retry delays are visible in the gaps between rounds, but the
    // observable contract is that the clock keeps working with its last correction.
    let after = c.correction();
    assert_eq!(after.frequency_ppm, before.frequency_ppm);
    assert_eq!(after.steps, before.steps);
    assert!(error_ns(&c).abs() < MS, "the last correction still applies");
    h.shutdown().await;
}
