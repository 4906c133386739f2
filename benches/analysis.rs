//! Ordering-analysis cost per message (issue 6): 16 nodes exchanging messages (vector send
//! stamps, merge on receive), analysed with the default window of 1000, delivered
//! (a) in causal order;
//! (b) with random cross-node delays, per-node FIFO kept (what Kafka does with one partition per
//!     node key: many messages arrive before their causes);
//! (c) with per-node FIFO broken too (shuffled within blocks of 64 arrivals; every late fill of
//!     a gap costs an O(window) scan — a stream Kafka does not produce for keyed messages);
//! (d) without vectors (FIFO, own-node order and offsets only).
//! Sizes 10^4 and 10^5: the time per message must not grow with the stream.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_timesync::analysis::{AnalysisConfig, Analyzer};
use kafka_timesync::clock::{ClockType, LamportClock, VectorClock};
use kafka_timesync::envelope::{Envelope, MessageTimestamp};
use kafka_timesync::NodeId;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

const NODES: usize = 16;
const T0: f64 = 1_790_000_000.0;

/// `count` messages of a random causal history: each step a random node receives one of the
/// last 64 messages (probability 1/2) and then sends.
fn history(count: usize, with_vectors: bool, seed: u64) -> Vec<Envelope> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let names: Vec<NodeId> = (0..NODES)
        .map(|i| NodeId::from(format!("producer-{i}")))
        .collect();
    let vcs: Vec<VectorClock> = names.iter().map(|n| VectorClock::new(n.clone())).collect();
    let lcs: Vec<LamportClock> = (0..NODES).map(|_| LamportClock::new()).collect();
    let mut seqs = [0u64; NODES];
    let mut out: Vec<Envelope> = Vec::with_capacity(count);
    for t in 0..count {
        let i = rng.gen_range(0..NODES);
        if !out.is_empty() && rng.gen_bool(0.5) {
            let lo = out.len().saturating_sub(64);
            let m = &out[rng.gen_range(lo..out.len())];
            if let Some(vt) = &m.timestamp.vector_time {
                vcs[i].merge(vt);
            }
            lcs[i].update(m.timestamp.logical_time.unwrap());
        }
        seqs[i] += 1;
        let host = T0 + t as f64 * 1e-4;
        out.push(Envelope {
            id: format!("{:032x}", rng.gen::<u128>()),
            content: String::new(),
            seq: Some(seqs[i]),
            timestamp: MessageTimestamp {
                node_id: names[i].clone(),
                timestamp: host,
                clock_type: if with_vectors {
                    ClockType::Vector
                } else {
                    ClockType::Logical
                },
                physical_time: Some(host + if i == 0 { 0.25 } else { 0.0 }),
                logical_time: Some(lcs[i].tick()),
                vector_time: with_vectors.then(|| vcs[i].send_stamp()),
                hybrid_time: None,
                simulated_time: None,
                unmapped_vector_entries: None,
            },
            simulated_skew_ms: None,
        });
    }
    out
}

fn node_index(m: &Envelope) -> usize {
    m.timestamp
        .node_id
        .trim_start_matches("producer-")
        .parse()
        .unwrap_or(0)
}

fn run(msgs: &[Envelope]) -> (u64, usize) {
    let mut a = Analyzer::new(AnalysisConfig::default());
    let mut out = Vec::new();
    let mut violations = 0;
    for m in msgs {
        a.observe(
            m,
            (m.timestamp.timestamp * 1e9) as i64 + 1_000_000,
            &mut out,
        );
        violations += out.len();
        out.clear();
    }
    (a.summary().concurrent_pairs, violations)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("analysis_per_message");
    g.sample_size(10);
    for &n in &[10_000usize, 100_000] {
        let causal = history(n, true, 1);
        let mut rng = SmallRng::seed_from_u64(2);
        // Each message becomes visible after a random delay of up to 200 sends, but never before
        // an earlier message of its own node.
        let mut ready = [0usize; NODES];
        let mut keyed: Vec<(usize, usize)> = Vec::with_capacity(n);
        for (t, m) in causal.iter().enumerate() {
            let i = node_index(m);
            ready[i] = ready[i].max(t + rng.gen_range(0..200));
            keyed.push((ready[i], t));
        }
        keyed.sort_unstable();
        let delayed: Vec<Envelope> = keyed.iter().map(|&(_, t)| causal[t].clone()).collect();
        let mut broken = causal.clone();
        for block in broken.chunks_mut(64) {
            block.shuffle(&mut rng);
        }
        let plain = history(n, false, 3);
        g.throughput(Throughput::Elements(n as u64));
        for (name, msgs) in [
            ("causal_order", &causal),
            ("cross_node_delays", &delayed),
            ("fifo_broken", &broken),
            ("no_vectors", &plain),
        ] {
            let (pairs, violations) = run(msgs);
            eprintln!("{name}/{n}: {violations} violations, {pairs} concurrent pairs");
            g.bench_with_input(BenchmarkId::new(name, n), msgs, |b, msgs| {
                b.iter(|| black_box(run(msgs)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
