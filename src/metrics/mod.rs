//! Prometheus metrics shared by the producer and consumer: what is counted, and the calls that
//! count it. The HTTP endpoint that serves them, [`serve`], is in `metrics/http.rs`.
//!
//! [`Metrics`] holds a `prometheus-client` [`Registry`] and a handle on each metric in it. Every
//! update is a single relaxed atomic operation on a handle (an add for a counter, a store for
//! the buffer depth), with no lock, no lookup and no allocation, so it can sit on the per-message hot path: the labelled families are created
//! with every label set up front and each series' counter is kept, so counting a violation or
//! an early release never touches the family's map. Values are read only when rendered
//! ([`Metrics::render`]) in the Prometheus text exposition format, version 0.0.4
//! ([`CONTENT_TYPE`]). All names carry the `kafka_timesync_` prefix and their unit (`_seconds`,
//! `_ppm`, `_total`).
//!
//! Invariants:
//! * Counters (`_total`) never decrease.
//! * Before the first successful sync, offset and delay render as `NaN` and the time since the
//!   last sync as `+Inf` (never synced is maximally stale); the drift is `NaN` until set.
//! * Every series is always present (violation kinds, release reasons and sync results start
//!   at zero), so rates and alerts work from the first scrape.

mod http;

pub use http::{serve, serve_with_options, MetricsError, ServeOptions};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::time::{SystemTimeSource, TimeSource, NANOS_PER_SEC};
use crate::violation::ViolationKind;

/// Prefix of every metric name.
pub const PREFIX: &str = "kafka_timesync_";

/// `Content-Type` of the rendered metrics (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

const NEVER: i64 = i64::MIN;

/// Label of `syncs_total`: the result of a sync attempt.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SyncResult {
    result: &'static str,
}

/// Label of `violations_total`: the violation kind's wire name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

/// Label of `released_early_total`: why a message left a delivery buffer early.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The last successful clock sync, read at render time (the age depends on when it is read).
#[derive(Debug)]
struct LastSync {
    time: Arc<dyn TimeSource>,
    offset_ns: AtomicI64,
    delay_ns: AtomicI64,
    /// [`NEVER`] until the first successful sync.
    at_ns: AtomicI64,
}

impl LastSync {
    /// The value of `read` in seconds, or `never` before the first sync.
    fn seconds(&self, read: fn(&Self, i64) -> i64, never: f64) -> f64 {
        let at = self.at_ns.load(Ordering::Relaxed);
        if at == NEVER {
            never
        } else {
            read(self, at) as f64 / NANOS_PER_SEC as f64
        }
    }
    fn offset(&self) -> f64 {
        self.seconds(|s, _| s.offset_ns.load(Ordering::Relaxed), f64::NAN)
    }
    fn delay(&self) -> f64 {
        self.seconds(|s, _| s.delay_ns.load(Ordering::Relaxed), f64::NAN)
    }
    /// Never negative: a clock stepped back since the sync reads as 0.
    fn age(&self) -> f64 {
        self.seconds(
            |s, at| s.time.now_ns().saturating_sub(at).max(0),
            f64::INFINITY,
        )
    }
    fn at(&self) -> f64 {
        self.seconds(|_, at| at, f64::NAN)
    }
}

/// A gauge computed from [`LastSync`] when the registry is rendered.
#[derive(Debug)]
struct SyncGauge {
    last: Arc<LastSync>,
    read: fn(&LastSync) -> f64,
}

impl EncodeMetric for SyncGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&(self.read)(&self.last))
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// The metrics registry of one producer or consumer process. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    // Clock discipline.
    last_sync: Arc<LastSync>,
    drift_ppm: Gauge<f64, AtomicU64>,
    syncs_ok: Counter,
    syncs_failed: Counter,
    // Messages.
    produced: Counter,
    consumed: Counter,
    delivered: Counter,
    malformed: Counter,
    // Ordering.
    violations: [Counter; ViolationKind::COUNT],
    causal_buffer_depth: Gauge<u64, AtomicU64>,
    released_timeout: Counter,
    released_buffer_full: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A counter registered under `name` (the registry adds `_total`).
fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let c = Counter::default();
    registry.register(name, help, c.clone());
    c
}

impl Metrics {
    /// A registry whose "time since last sync" is measured with the system clock.
    pub fn new() -> Self {
        Self::with_time_source(Arc::new(SystemTimeSource))
    }

    /// A registry measuring "time since last sync" with `time` (tests use a manual clock).
    pub fn with_time_source(time: Arc<dyn TimeSource>) -> Self {
        // Help texts are registered without their final full stop: the registry appends it.
        let mut r = Registry::with_prefix(PREFIX.trim_end_matches('_'));
        r.register(
            "build",
            "Always 1; labelled with the kafka-timesync version",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );

        let last_sync = Arc::new(LastSync {
            time,
            offset_ns: AtomicI64::new(0),
            delay_ns: AtomicI64::new(0),
            at_ns: AtomicI64::new(NEVER),
        });
        let sync_gauge = |read| SyncGauge {
            last: Arc::clone(&last_sync),
            read,
        };
        r.register(
            "clock_offset_seconds",
            "Clock offset (reference minus local) measured by the last successful sync; NaN before the first",
            sync_gauge(LastSync::offset),
        );
        r.register(
            "clock_delay_seconds",
            "Round-trip delay of the last successful sync; NaN before the first",
            sync_gauge(LastSync::delay),
        );
        let drift_ppm = Gauge::<f64, AtomicU64>::default();
        drift_ppm.set(f64::NAN);
        r.register(
            "clock_drift_ppm",
            "Estimated drift of the local clock in parts per million (positive: runs fast); NaN until estimated",
            drift_ppm.clone(),
        );
        r.register(
            "time_since_last_sync_seconds",
            "Seconds since the last successful clock sync; +Inf if there has been none",
            sync_gauge(LastSync::age),
        );
        r.register(
            "last_sync_timestamp_seconds",
            "Unix time of the last successful clock sync; NaN if there has been none",
            sync_gauge(LastSync::at),
        );
        let syncs = Family::<SyncResult, Counter>::default();
        r.register("syncs", "Clock sync attempts by result", syncs.clone());
        let sync_result = |result| syncs.get_or_create(&SyncResult { result }).clone();

        let produced = counter(
            &mut r,
            "messages_produced",
            "Messages the broker acknowledged to the producer",
        );
        let consumed = counter(
            &mut r,
            "messages_consumed",
            "Records the consumer received from Kafka",
        );
        let delivered = counter(
            &mut r,
            "messages_delivered",
            "Messages the consumer delivered to the application after ordering",
        );
        let malformed = counter(
            &mut r,
            "messages_malformed",
            "Records the consumer could not decode as a kafka-timesync envelope",
        );

        let violations = Family::<Kind, Counter>::default();
        r.register(
            "violations",
            "Violations detected, by kind: ordering, and with --verify acknowledged writes",
            violations.clone(),
        );
        let causal_buffer_depth = Gauge::<u64, AtomicU64>::default();
        r.register(
            "causal_buffer_depth",
            "Messages currently waiting in the causal delivery buffer",
            causal_buffer_depth.clone(),
        );
        let released = Family::<Reason, Counter>::default();
        r.register(
            "released_early",
            "Messages released from the causal or total-order buffer before their ordering condition held, by reason",
            released.clone(),
        );
        let reason = |reason| released.get_or_create(&Reason { reason }).clone();

        Self {
            last_sync,
            drift_ppm,
            syncs_ok: sync_result("ok"),
            syncs_failed: sync_result("failed"),
            produced,
            consumed,
            delivered,
            malformed,
            violations: ViolationKind::ALL
                .map(|k| violations.get_or_create(&Kind { kind: k.as_str() }).clone()),
            causal_buffer_depth,
            released_timeout: reason("timeout"),
            released_buffer_full: reason("buffer_full"),
            registry: r,
        }
    }

    /// Messages produced (delivered to the broker) so far.
    pub fn produced(&self) -> u64 {
        self.produced.get()
    }

    /// Messages delivered to the consumer's output so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.get()
    }

    /// Records a successful clock sync: the measured offset (reference minus local) and
    /// round-trip delay, in nanoseconds. Marks now as the time of the last good sync.
    pub fn record_sync(&self, offset_ns: i64, delay_ns: i64) {
        let last = &self.last_sync;
        last.offset_ns.store(offset_ns, Ordering::Relaxed);
        last.delay_ns.store(delay_ns, Ordering::Relaxed);
        last.at_ns.store(last.time.now_ns(), Ordering::Relaxed);
        self.syncs_ok.inc();
    }

    /// Records a sync attempt that produced no usable sample (timeout, bad reply, rejected).
    pub fn record_sync_failure(&self) {
        self.syncs_failed.inc();
    }

    /// Sets the estimated clock drift in parts per million (positive: local clock runs fast).
    pub fn set_drift_ppm(&self, ppm: f64) {
        self.drift_ppm.set(ppm);
    }

    /// Counts `n` messages the broker acknowledged to the producer.
    pub fn add_produced(&self, n: u64) {
        self.produced.inc_by(n);
    }

    /// Counts `n` records the consumer received from Kafka (before ordering/buffering).
    pub fn add_consumed(&self, n: u64) {
        self.consumed.inc_by(n);
    }

    /// Counts `n` messages the consumer delivered to the application (after ordering).
    pub fn add_delivered(&self, n: u64) {
        self.delivered.inc_by(n);
    }

    /// Counts `n` records the consumer could not decode.
    pub fn add_malformed(&self, n: u64) {
        self.malformed.inc_by(n);
    }

    /// Counts one violation of `kind`.
    pub fn inc_violation(&self, kind: ViolationKind) {
        self.add_violations(kind, 1);
    }

    /// Counts `n` violations of `kind`.
    pub fn add_violations(&self, kind: ViolationKind, n: u64) {
        self.violations[kind.index()].inc_by(n);
    }

    /// Sets the number of messages currently held in the causal delivery buffer.
    pub fn set_causal_buffer_depth(&self, depth: usize) {
        // A plain store: `Gauge::set` swaps (a locked read-modify-write) to return the old value.
        self.causal_buffer_depth
            .inner()
            .store(u64::try_from(depth).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Counts one message released from a delivery buffer because it waited the maximum time.
    pub fn inc_released_by_timeout(&self) {
        self.add_released_by_timeout(1);
    }

    /// Counts `n` messages released from a delivery buffer because they waited the maximum time.
    pub fn add_released_by_timeout(&self, n: u64) {
        self.released_timeout.inc_by(n);
    }

    /// Counts one message released from a delivery buffer because the buffer was full.
    pub fn inc_released_buffer_full(&self) {
        self.add_released_buffer_full(1);
    }

    /// Counts `n` messages released from a delivery buffer because the buffer was full.
    pub fn add_released_buffer_full(&self, n: u64) {
        self.released_buffer_full.inc_by(n);
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render_into(&mut out);
        out
    }

    /// Appends every metric to `out` in the Prometheus text exposition format.
    pub fn render_into(&self, out: &mut String) {
        // Writing to a `String` cannot fail, and no metric here fails to encode.
        let _ = prometheus_client::encoding::prometheus_text::encode(out, &self.registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualTime;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Parses exposition text into `series -> value` and checks its grammar on the way: every
    /// sample belongs to a family announced by HELP and TYPE lines just before it.
    fn parse(text: &str) -> BTreeMap<String, f64> {
        let mut samples = BTreeMap::new();
        let mut current: Option<(String, String)> = None; // (name, type)
        let mut help_for: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                help_for = Some(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let (name, kind) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
                assert_eq!(help_for.as_deref(), Some(name), "TYPE without HELP: {line}");
                assert!(matches!(kind, "gauge" | "counter"), "{line}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter without _total: {name}");
                }
                current = Some((name.to_string(), kind.to_string()));
            } else {
                let (series, value) = line.rsplit_once(' ').expect("sample line");
                let name = series.split('{').next().unwrap_or_default();
                let (family, _) = current.as_ref().expect("sample before TYPE");
                assert_eq!(name, family, "sample outside its family");
                assert!(name.starts_with(PREFIX), "{name} lacks prefix");
                let v = match value {
                    "NaN" => f64::NAN,
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    v => v.parse().expect("numeric value"),
                };
                assert!(
                    samples.insert(series.to_string(), v).is_none(),
                    "duplicate {series}"
                );
            }
        }
        samples
    }

    #[test]
    fn fresh_registry_reports_no_sync_and_zero_counters() {
        let m = Metrics::with_time_source(Arc::new(ManualTime::new(0)));
        let s = parse(&m.render());
        assert!(s["kafka_timesync_clock_offset_seconds"].is_nan());
        assert!(s["kafka_timesync_clock_delay_seconds"].is_nan());
        assert!(s["kafka_timesync_clock_drift_ppm"].is_nan());
        assert_eq!(
            s["kafka_timesync_time_since_last_sync_seconds"],
            f64::INFINITY
        );
        assert_eq!(s["kafka_timesync_messages_produced_total"], 0.0);
        for kind in ViolationKind::ALL {
            let key = format!("kafka_timesync_violations_total{{kind=\"{kind}\"}}");
            assert_eq!(s[&key], 0.0, "{key}");
        }
        assert_eq!(
            s["kafka_timesync_released_early_total{reason=\"timeout\"}"],
            0.0
        );
    }

    #[test]
    fn sync_age_follows_the_time_source_and_never_goes_negative() {
        let t = Arc::new(ManualTime::new(1_700_000_000 * NANOS_PER_SEC));
        let m = Metrics::with_time_source(t.clone());
        m.record_sync(-2_500_000, 12_000_000);
        t.advance_ms(7_500);
        let s = parse(&m.render());
        assert_eq!(s["kafka_timesync_clock_offset_seconds"], -0.0025);
        assert_eq!(s["kafka_timesync_clock_delay_seconds"], 0.012);
        assert_eq!(s["kafka_timesync_time_since_last_sync_seconds"], 7.5);
        assert_eq!(
            s["kafka_timesync_last_sync_timestamp_seconds"],
            1_700_000_000.0
        );
        assert_eq!(s["kafka_timesync_syncs_total{result=\"ok\"}"], 1.0);
        // The system clock stepping back must not produce a negative age.
        t.advance_ms(-60_000);
        let s = parse(&m.render());
        assert_eq!(s["kafka_timesync_time_since_last_sync_seconds"], 0.0);
    }

    #[test]
    fn each_update_lands_in_its_own_series() {
        let m = Metrics::with_time_source(Arc::new(ManualTime::new(0)));
        m.add_produced(3);
        m.add_consumed(5);
        m.add_delivered(4);
        m.add_malformed(1);
        m.set_drift_ppm(-12.25);
        m.set_causal_buffer_depth(9);
        m.inc_released_by_timeout();
        m.inc_released_buffer_full();
        m.inc_released_buffer_full();
        m.record_sync_failure();
        for (i, kind) in ViolationKind::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                m.inc_violation(kind);
            }
        }
        let s = parse(&m.render());
        assert_eq!(s["kafka_timesync_messages_produced_total"], 3.0);
        assert_eq!(s["kafka_timesync_messages_consumed_total"], 5.0);
        assert_eq!(s["kafka_timesync_messages_delivered_total"], 4.0);
        assert_eq!(s["kafka_timesync_messages_malformed_total"], 1.0);
        assert_eq!(s["kafka_timesync_clock_drift_ppm"], -12.25);
        assert_eq!(s["kafka_timesync_causal_buffer_depth"], 9.0);
        assert_eq!(
            s["kafka_timesync_released_early_total{reason=\"timeout\"}"],
            1.0
        );
        assert_eq!(
            s["kafka_timesync_released_early_total{reason=\"buffer_full\"}"],
            2.0
        );
        assert_eq!(s["kafka_timesync_syncs_total{result=\"failed\"}"], 1.0);
        for (i, kind) in ViolationKind::ALL.into_iter().enumerate() {
            let key = format!("kafka_timesync_violations_total{{kind=\"{kind}\"}}");
            assert_eq!(s[&key], (i + 1) as f64, "{key}");
        }
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        m.add_produced(1);
                        m.inc_violation(ViolationKind::Duplicate);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("updater thread");
        }
        let s = parse(&m.render());
        assert_eq!(s["kafka_timesync_messages_produced_total"], 40_000.0);
        assert_eq!(
            s["kafka_timesync_violations_total{kind=\"duplicate\"}"],
            40_000.0
        );
    }

    /// The families users scrape, with their types and HELP texts, exactly as dashboards and
    /// alerts know them.
    #[test]
    fn families_keep_their_names_types_and_help() {
        let text = Metrics::with_time_source(Arc::new(ManualTime::new(0))).render();
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE kafka_timesync_"))
            .collect();
        assert_eq!(
            types,
            [
                "build_info gauge",
                "clock_offset_seconds gauge",
                "clock_delay_seconds gauge",
                "clock_drift_ppm gauge",
                "time_since_last_sync_seconds gauge",
                "last_sync_timestamp_seconds gauge",
                "syncs_total counter",
                "messages_produced_total counter",
                "messages_consumed_total counter",
                "messages_delivered_total counter",
                "messages_malformed_total counter",
                "violations_total counter",
                "causal_buffer_depth gauge",
                "released_early_total counter",
            ]
        );
        assert!(text.contains(
            "# HELP kafka_timesync_build_info Always 1; labelled with the kafka-timesync version.\n"
        ));
        assert!(text.contains("# HELP kafka_timesync_syncs_total Clock sync attempts by result.\n"));
        assert!(!text.contains(".."), "a help text ends in two full stops");
        let version = format!(
            "kafka_timesync_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&version), "{text}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every f64 a gauge holds renders to text Prometheus parses back to the same value.
        #[test]
        fn floats_round_trip_through_the_text_format(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            let m = Metrics::with_time_source(Arc::new(ManualTime::new(0)));
            m.set_drift_ppm(v);
            let back = parse(&m.render())["kafka_timesync_clock_drift_ppm"];
            if v.is_nan() {
                prop_assert!(back.is_nan());
            } else {
                prop_assert_eq!(back.to_bits(), v.to_bits());
            }
        }
    }
}
