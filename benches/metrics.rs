//! Cost of the Prometheus metrics on the per-message path (issue 17): each update the producer
//! and consumer make per message or per batch, on one shared registry, and one scrape's render
//! (not per message; shown for scale).
//!
//! Times are the benchmark thread's CPU time per operation (see `support/cpu_time.rs`).

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::ThreadCpuTime;
use criterion::{criterion_group, criterion_main, Criterion};
use kafka_timesync::metrics::Metrics;
use kafka_timesync::time::ManualTime;
use kafka_timesync::violation::ViolationKind;
use std::hint::black_box;
use std::sync::Arc;

fn registry() -> Arc<Metrics> {
    Arc::new(Metrics::with_time_source(Arc::new(ManualTime::new(0))))
}

fn updates(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("metrics_update");
    let m = registry();
    g.bench_function("add_produced", |b| b.iter(|| m.add_produced(black_box(1))));
    g.bench_function("add_delivered", |b| {
        b.iter(|| m.add_delivered(black_box(1)))
    });
    g.bench_function("inc_violation", |b| {
        b.iter(|| m.inc_violation(black_box(ViolationKind::FifoGap)))
    });
    g.bench_function("add_released_by_timeout", |b| {
        b.iter(|| m.add_released_by_timeout(black_box(1)))
    });
    g.bench_function("set_causal_buffer_depth", |b| {
        b.iter(|| m.set_causal_buffer_depth(black_box(17)))
    });
    g.bench_function("record_sync", |b| {
        b.iter(|| m.record_sync(black_box(-2_500_000), black_box(12_000_000)))
    });
    // What the consumer's housekeeping adds for one record that was received, delivered and
    // left the buffer at some depth.
    g.bench_function("consumer_record", |b| {
        b.iter(|| {
            m.add_consumed(black_box(1));
            m.add_delivered(black_box(1));
            m.add_violations(black_box(ViolationKind::FifoGap), black_box(0));
            m.set_causal_buffer_depth(black_box(3));
        })
    });
    g.finish();
}

fn render(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("metrics_render");
    let m = registry();
    m.record_sync(-2_500_000, 12_000_000);
    m.add_produced(123_456);
    let mut out = String::with_capacity(8192);
    g.bench_function("render_into", |b| {
        b.iter(|| {
            out.clear();
            m.render_into(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = updates, render
}
criterion_main!(benches);
