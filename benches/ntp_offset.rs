//! Offset error of the SNTP discipline against chronyd on loopback: median and p99 of
//! |corrected − system| over ≥ 200 exchanges (chronyd serves this host's system clock, so the
//! system clock is the truth).
//!
//! `KTS_NTP_SERVER=host:port cargo bench --bench ntp_offset` (or through scripts/testenv.sh).
//! `KTS_BENCH_EXCHANGES` sets the number of measured exchanges per scenario (default 300).

use std::sync::Arc;
use std::time::Duration;

use kafka_timesync::clock::physical::{PhysicalClock, Simulation};
use kafka_timesync::ntp::{spawn, SyncEvent, SyncOptions};
use kafka_timesync::time::{SystemTimeSource, TimeSource};

const WARMUP_ROUNDS: usize = 20;

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn scenario(name: &str, server: &str, sim: Simulation, n: usize) {
    let src: Arc<dyn TimeSource> = Arc::new(SystemTimeSource);
    let clock = Arc::new(PhysicalClock::with_simulation(src, sim));
    let opts = SyncOptions {
        servers: vec![server.to_string()],
        interval: Duration::from_millis(50),
        ..Default::default()
    };
    let h = spawn(clock.clone(), opts);
    let mut events = h.subscribe();
    let mut errors = Vec::with_capacity(n);
    let mut thetas = Vec::with_capacity(n);
    let mut delays = Vec::with_capacity(n);
    let mut rounds = 0usize;
    while errors.len() < n {
        match events.recv().await {
            Ok(SyncEvent::Exchange(x)) if rounds >= WARMUP_ROUNDS => {
                if let (Some(o), Some(d)) = (x.offset_ns, x.delay_ns) {
                    if x.rejected.is_none() {
                        thetas.push(o.abs());
                        delays.push(d);
                        // |corrected − system| just after the exchange.
                        let r = clock.read();
                        errors.push((r.physical_ns - r.system_ns).abs());
                    }
                }
            }
            Ok(SyncEvent::Round(_)) => rounds += 1,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("sync task ended: {e}"),
        }
    }
    let st = h.status();
    h.shutdown().await;
    errors.sort_unstable();
    thetas.sort_unstable();
    delays.sort_unstable();
    println!("scenario: {name}");
    println!(
        "  exchanges measured:        {} (after {WARMUP_ROUNDS} warm-up rounds)",
        errors.len()
    );
    println!(
        "  |corrected - system|:      median {:>8.1} us   p99 {:>8.1} us   max {:>8.1} us",
        percentile(&errors, 0.5) as f64 / 1e3,
        percentile(&errors, 0.99) as f64 / 1e3,
        percentile(&errors, 1.0) as f64 / 1e3
    );
    println!(
        "  |theta| per exchange:      median {:>8.1} us   p99 {:>8.1} us",
        percentile(&thetas, 0.5) as f64 / 1e3,
        percentile(&thetas, 0.99) as f64 / 1e3
    );
    println!(
        "  delay per exchange:        median {:>8.1} us   p99 {:>8.1} us",
        percentile(&delays, 0.5) as f64 / 1e3,
        percentile(&delays, 0.99) as f64 / 1e3
    );
    println!(
        "  drift estimate: {:?} ppm, frequency correction {:.2} ppm, steps {}, slews {}, rejected {:?}",
        st.drift_ppm.map(|d| (d * 100.0).round() / 100.0),
        st.frequency_correction_ppm,
        st.steps,
        st.slews,
        st.rejected
    );
}

fn main() {
    let server = match std::env::var("KTS_NTP_SERVER") {
        Ok(s) if !s.trim().is_empty() => s,
        _ => panic!("KTS_NTP_SERVER not set: run the benchmark through scripts/testenv.sh"),
    };
    let n: usize = std::env::var("KTS_BENCH_EXCHANGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
        .max(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        println!("ntp_offset: server {server}, {n} exchanges per scenario, poll interval 50 ms");
        scenario("no simulation", &server, Simulation::default(), n).await;
        scenario(
            "simulated skew +250 ms, drift 0.1 ms/s",
            &server,
            Simulation {
                skew_ms: 250.0,
                drift_ms_per_s: 0.1,
                ..Default::default()
            },
            n,
        )
        .await;
    });
}
