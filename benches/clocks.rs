//! Clock operation costs (issue 6): Lamport tick/update; vector send-stamp, merge and compare at
//! 4, 16, 128 and 1024 nodes; hybrid logical clock send/receive.
//!
//! Vector timestamps are built the way they meet in practice: the local clock and the received
//! timestamp hold equal node ids in *separate* allocations (a received timestamp is decoded from
//! JSON, so its `Arc<str>` keys never share the local clock's), named `producer-<i>` like the
//! producer's default node ids. The `shared-ids` variants give both sides the same `Arc`s (ids
//! interned by the caller), which shows what id comparison itself costs.
//!
//! Times are the benchmark thread's CPU time per operation (see `support/cpu_time.rs`).
//!
//! Target: vector merge at 16 nodes ≤ 100 ns.

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::ThreadCpuTime;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kafka_timesync::clock::{
    CausalOrder, HybridClock, HybridTimestamp, LamportClock, VectorClock, VectorTimestamp,
};
use kafka_timesync::time::{ManualTime, SystemTimeSource, TimeSource};
use kafka_timesync::NodeId;
use std::hint::black_box;
use std::sync::Arc;

const SIZES: [usize; 4] = [4, 16, 128, 1024];

fn names(n: usize) -> Vec<NodeId> {
    (0..n)
        .map(|i| NodeId::from(format!("producer-{i}")))
        .collect()
}

/// A timestamp over `ids` with counter `base + i` for the i-th id.
fn stamp(ids: &[NodeId], base: u64) -> VectorTimestamp {
    VectorTimestamp::from_entries(
        ids.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), base + i as u64)),
    )
}

fn lamport(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("lamport");
    let clock = LamportClock::new();
    g.bench_function("tick", |b| b.iter(|| black_box(clock.tick())));
    let clock = LamportClock::new();
    let mut r = 0u64;
    g.bench_function("update", |b| {
        b.iter(|| {
            // Alternate a received value ahead of and behind the local clock.
            r = r.wrapping_add(3);
            black_box(clock.update(black_box(r)))
        })
    });
    g.finish();
}

fn vector(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("vector");
    for &n in &SIZES {
        let local_ids = names(n);
        // Separate allocations with the same text: what a decoded message carries.
        let remote_ids = names(n);
        let me = local_ids[0].clone();

        // send_stamp: increment own entry, return a copy of the clock (what goes into the message).
        let clock = VectorClock::resume(me.clone(), stamp(&local_ids, 1));
        g.bench_with_input(BenchmarkId::new("send_stamp", n), &n, |b, _| {
            b.iter(|| black_box(clock.send_stamp()))
        });

        // merge: the local clock absorbs a received timestamp over the same nodes, where about
        // half the entries are ahead. Repeated merges keep doing the full comparison work.
        let remote = VectorTimestamp::from_entries(
            remote_ids
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), if i % 2 == 0 { 10 + i as u64 } else { 1 })),
        );
        let mut local = stamp(&local_ids, 5);
        g.bench_with_input(BenchmarkId::new("merge", n), &n, |b, _| {
            b.iter(|| local.merge(black_box(&remote)))
        });
        let remote_shared = VectorTimestamp::from_entries(
            local_ids
                .iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), if i % 2 == 0 { 10 + i as u64 } else { 1 })),
        );
        let mut local = stamp(&local_ids, 5);
        g.bench_with_input(BenchmarkId::new("merge/shared-ids", n), &n, |b, _| {
            b.iter(|| local.merge(black_box(&remote_shared)))
        });

        // merge where the received timestamp names one node the local clock has not seen
        // (membership grows: the slow path that rebuilds the entries).
        let mut extra_ids = remote_ids.clone();
        extra_ids.push(NodeId::from("producer-new"));
        let remote_new = stamp(&extra_ids, 1);
        let base = stamp(&local_ids, 5);
        g.bench_with_input(BenchmarkId::new("merge/new-node", n), &n, |b, _| {
            b.iter_batched_ref(
                || base.clone(),
                |l| l.merge(black_box(&remote_new)),
                criterion::BatchSize::SmallInput,
            )
        });

        // receive_event on the clock: merge + increment + copy.
        let clock = VectorClock::resume(me.clone(), stamp(&local_ids, 5));
        g.bench_with_input(BenchmarkId::new("receive_event", n), &n, |b, _| {
            b.iter(|| black_box(clock.receive_event(black_box(&remote))))
        });

        // compare: `a` happened before `b` differing only in the last entry — a full scan, the
        // worst case (a concurrent pair can stop at the first disagreement).
        let a = stamp(&local_ids, 1);
        let mut b_ts = stamp(&remote_ids, 1);
        b_ts.increment(&remote_ids[n - 1]);
        assert_eq!(a.compare(&b_ts), CausalOrder::Before);
        g.bench_with_input(BenchmarkId::new("compare/before", n), &n, |bch, _| {
            bch.iter(|| black_box(black_box(&a).compare(black_box(&b_ts))))
        });
        let eq = stamp(&remote_ids, 1);
        g.bench_with_input(BenchmarkId::new("compare/equal", n), &n, |bch, _| {
            bch.iter(|| black_box(black_box(&a).compare(black_box(&eq))))
        });
        // Concurrent, detected at the last entry (also a full scan).
        let mut conc = stamp(&remote_ids, 1);
        conc.increment(&remote_ids[n - 1]);
        conc.set(&remote_ids[0], 0);
        let mut a2 = a.clone();
        a2.increment(&local_ids[0]);
        assert_eq!(a2.compare(&conc), CausalOrder::Concurrent);
        g.bench_with_input(BenchmarkId::new("compare/concurrent", n), &n, |bch, _| {
            bch.iter(|| black_box(black_box(&a2).compare(black_box(&conc))))
        });
    }
    g.finish();
}

fn hybrid(c: &mut Criterion<ThreadCpuTime>) {
    let mut g = c.benchmark_group("hybrid");
    // With the real system clock (includes reading it): what a producer pays per message.
    let sys: Arc<dyn TimeSource> = Arc::new(SystemTimeSource);
    let clock = HybridClock::new(sys.clone(), 500);
    g.bench_function("send/system-time", |b| b.iter(|| black_box(clock.send())));
    let clock = HybridClock::new(sys.clone(), 500);
    let remote = HybridTimestamp::new((sys.now_ns() / 1_000_000) as u64, 7);
    g.bench_function("receive/system-time", |b| {
        b.iter(|| black_box(clock.receive(black_box(&remote))))
    });
    // With a manual time source: the clock logic alone.
    let manual: Arc<dyn TimeSource> = Arc::new(ManualTime::new(1_790_000_000_000_000_000));
    let clock = HybridClock::new(manual.clone(), 500);
    g.bench_function("send/manual-time", |b| b.iter(|| black_box(clock.send())));
    let clock = HybridClock::new(manual, 500);
    let remote = HybridTimestamp::new(1_790_000_000_000, 7);
    g.bench_function("receive/manual-time", |b| {
        b.iter(|| black_box(clock.receive(black_box(&remote))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = lamport, vector, hybrid
}
criterion_main!(benches);
