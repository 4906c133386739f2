//! State-file persistence per message (issue 13): [`StateStore::cover`] before every send, for a
//! node that only sends (`own-only`) and for an `--observe` node whose peer's vector entry
//! advances between every two of its messages (`peer-advances`), default reservation.
//!
//! Wall time per message (file writes and fsyncs are the cost measured, so waiting on the disk
//! counts). Each benchmark also prints the state-file writes and fsyncs per 1000 messages.

use criterion::{criterion_group, criterion_main, Criterion};
use kafka_timesync::clock::VectorTimestamp;
use kafka_timesync::state::{ClockValues, StateStore};
use kafka_timesync::NodeId;
use std::hint::black_box;

fn cover(c: &mut Criterion) {
    let mut g = c.benchmark_group("state_cover_per_message");
    for (name, peer_advances) in [("own-only", false), ("peer-advances", true)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut store, _) = StateStore::open(dir.path(), "B").expect("state store");
        let (me, peer): (NodeId, NodeId) = ("B".into(), "A".into());
        let mut vector = VectorTimestamp::new();
        let (mut seq, mut lamport, mut messages) = (0u64, 0u64, 0u64);
        g.bench_function(name, |b| {
            b.iter(|| {
                if peer_advances {
                    let p = vector.get(&peer) + 1;
                    vector.set(&peer, p);
                    lamport = lamport.max(p) + 1;
                }
                seq += 1;
                lamport += 1;
                vector.increment(&me);
                messages += 1;
                store
                    .cover(black_box(&ClockValues {
                        seq,
                        lamport,
                        vector: Some(&vector),
                        hybrid: None,
                    }))
                    .expect("cover")
            })
        });
        let (writes, fsyncs) = store.write_counts();
        eprintln!(
            "state_cover_per_message/{name}: {:.2} writes, {:.3} fsyncs per 1000 messages ({messages} messages)",
            writes as f64 * 1000.0 / messages as f64,
            fsyncs as f64 * 1000.0 / messages as f64,
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    targets = cover
}
criterion_main!(benches);
