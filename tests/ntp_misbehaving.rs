//! Misbehaving NTP responders (small UDP servers inside the test): every bad reply is rejected
//! with the right reason, counted, and Kiss-o'-Death codes change how the server is used.

mod ntp_support;

use std::sync::Arc;
use std::time::Duration;

use kafka_timesync::clock::physical::PhysicalClock;
use kafka_timesync::ntp::client::{exchange, ExchangeOptions};
use kafka_timesync::ntp::ServerState;
use kafka_timesync::ntp::{spawn, KissCode, RejectReason, SyncOptions};
use ntp_support::{responder, wait_for, Behaviour};

async fn reject_reason(b: Behaviour) -> RejectReason {
    let addr = responder(b).await;
    let clock = PhysicalClock::system();
    let opts = ExchangeOptions {
        timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let r = exchange(&clock, addr, &opts).await;
    match r.outcome {
        Ok(s) => panic!("{b:?} was accepted: {s:?}"),
        Err(reason) => reason,
    }
}

#[tokio::test]
async fn each_bad_reply_is_rejected_with_its_reason() {
    let cases = [
        (
            Behaviour::Kiss(*b"RATE"),
            RejectReason::KissOfDeath(KissCode::Rate),
        ),
        (
            Behaviour::Kiss(*b"DENY"),
            RejectReason::KissOfDeath(KissCode::Deny),
        ),
        (
            Behaviour::Kiss(*b"RSTR"),
            RejectReason::KissOfDeath(KissCode::Rstr),
        ),
        (
            Behaviour::Kiss([0; 4]),
            RejectReason::KissOfDeath(KissCode::Other("\\x00\\x00\\x00\\x00".into())),
        ),
        (Behaviour::Unsynchronised, RejectReason::Unsynchronized),
        (Behaviour::Stratum16, RejectReason::BadStratum),
        (Behaviour::WrongOrigin, RejectReason::OriginMismatch),
        (Behaviour::ZeroTransmit, RejectReason::ZeroTransmit),
        (Behaviour::ClientMode, RejectReason::BadMode),
        (Behaviour::Short, RejectReason::ShortPacket(20)),
        (Behaviour::Silent, RejectReason::Timeout),
    ];
    for (b, want) in cases {
        assert_eq!(reject_reason(b).await, want, "{b:?}");
    }
    assert!(matches!(
        reject_reason(Behaviour::NegativeDelay).await,
        RejectReason::NegativeDelay(_)
    ));
}

#[tokio::test]
async fn an_honest_responder_is_accepted() {
    let addr = responder(Behaviour::Offset(40_000_000)).await;
    let clock = PhysicalClock::system();
    let s = exchange(&clock, addr, &ExchangeOptions::default())
        .await
        .outcome
        .expect("accepted");
    assert!((s.offset_ns - 40_000_000).abs() < 2_000_000, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kod_deny_disables_rate_backs_off_and_rejections_are_counted() {
    let deny = responder(Behaviour::Kiss(*b"DENY")).await;
    let rate = responder(Behaviour::Kiss(*b"RATE")).await;
    let unsync = responder(Behaviour::Unsynchronised).await;
    let good = responder(Behaviour::Offset(0)).await;
    let names: Vec<String> = [deny, rate, unsync, good]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let clock = Arc::new(PhysicalClock::system());
    let h = spawn(
        clock,
        SyncOptions {
            servers: names.clone(),
            interval: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let st = wait_for(Duration::from_secs(20), "several rounds", || async {
        let st = h.status();
        (st.rounds >= 6).then_some(st)
    })
    .await;
    h.shutdown().await;
    let server = |n: &str| {
        st.servers
            .iter()
            .find(|s| s.name == n)
            .expect("server listed")
            .clone()
    };
    let deny_st = server(&names[0]);
    assert_eq!(deny_st.state, ServerState::Disabled);
    assert_eq!(
        deny_st.rejected.get("kod-deny"),
        Some(&1),
        "DENY: asked once, never again"
    );
    let rate_st = server(&names[1]);
    let kisses = rate_st.rejected.get("kod-rate").copied().unwrap_or(0);
    assert!(
        kisses >= 1 && kisses < st.rounds,
        "RATE backs off: {kisses} kisses in {} rounds",
        st.rounds
    );
    assert!(
        server(&names[2])
            .rejected
            .get("unsynchronized")
            .copied()
            .unwrap_or(0)
            >= 1
    );
    assert!(server(&names[3]).accepted >= 4);
    assert_eq!(st.server_in_use.as_deref(), Some(names[3].as_str()));
    assert!(st.rejected.get("kod-deny") == Some(&1) && st.rejected.contains_key("kod-rate"));
}
