//! Proves the test environment is real: the broker answers metadata requests and creates topics,
//! and chronyd answers SNTP with a sane offset and delay. Run through `scripts/testenv.sh`.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use std::time::{Duration, Instant};

fn env_addr(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} not set: run the tests through scripts/testenv.sh (see README)")
    })
}

#[tokio::test]
async fn broker_answers_metadata_and_creates_topics() {
    let bootstrap = env_addr("KTS_BOOTSTRAP");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let topic = format!("smoke-{}", uuid::Uuid::new_v4());
    let results = admin
        .create_topics(
            &[NewTopic::new(&topic, 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics request");
    assert!(
        results.iter().all(|r| r.is_ok()),
        "create failed: {results:?}"
    );

    // Metadata lists the topic with its three partitions (bounded wait: creation may propagate).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .expect("metadata request");
        assert!(!md.brokers().is_empty(), "metadata lists no broker");
        if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
            if t.error().is_none() && t.partitions().len() == 3 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "topic {topic} not listed with 3 partitions within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata");
    assert!(
        all.topics().iter().any(|t| t.name() == topic),
        "topic missing from the full listing"
    );
}

#[tokio::test]
async fn chronyd_answers_sntp_with_sane_offset_and_delay() {
    let server: std::net::SocketAddr = env_addr("KTS_NTP_SERVER").parse().expect("host:port");
    let clock = kafka_timesync::clock::PhysicalClock::system();
    let opts = kafka_timesync::ntp::client::ExchangeOptions {
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let r = kafka_timesync::ntp::exchange(&clock, server, &opts).await;
    let s = r
        .outcome
        .unwrap_or_else(|e| panic!("no valid SNTP answer from chronyd within 5 s: {e}"));
    // chronyd serves this host's own clock over loopback: offset and delay are tiny.
    assert!(
        s.offset_ns.abs() < 50_000_000,
        "offset {} ns is not sane for loopback",
        s.offset_ns
    );
    assert!(
        s.delay_ns < 500_000_000,
        "delay {} ns is not sane for loopback",
        s.delay_ns
    );
    assert!(
        r.stratum.is_some_and(|st| (1..=15).contains(&st)),
        "stratum {:?}",
        r.stratum
    );
}
