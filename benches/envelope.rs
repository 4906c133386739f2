//! Envelope encode/decode cost and size (issue 6) for representative messages: a 300-byte content
//! (the end-to-end benchmark's size) stamped with each clock type, vector clocks of 3, 16 and 128
//! nodes. The encoded size of each is printed before the measurements (and criterion reports
//! bytes/s). Times are the benchmark thread's CPU time (see `support/cpu_time.rs`).
//!
//! Group `headers` (issue 16): the same stamps in record headers ([`stamp_headers`]), encoded into
//! a reused set and decoded (the 300-byte value is never parsed), in the format's version 2 (`v2_`,
//! the whole stamp in `kts-stamp`, what kafka-producer writes) and version 1 (`v1_`, one header
//! per field), beside the JSON envelope's `encode_into` and `decode` of the same message.

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::ThreadCpuTime;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_timesync::clock::{ClockType, HybridTimestamp, VectorTimestamp};
use kafka_timesync::envelope::{DecodeLimits, Envelope, MessageTimestamp};
use kafka_timesync::stamp_headers::{self, EncodedHeaders, Header};
use kafka_timesync::NodeId;
use std::hint::black_box;

const CONTENT: usize = 300;

fn envelope(clock_type: ClockType, vector_nodes: usize) -> Envelope {
    let vector_time = (vector_nodes > 0).then(|| {
        VectorTimestamp::from_entries(
            (0..vector_nodes).map(|i| (format!("producer-{i}"), 1000 + 37 * i as u64)),
        )
    });
    Envelope {
        id: "6f1c2b7e-3d4a-4e5f-8a9b-0c1d2e3f4a5b".to_string(),
        // Printable ASCII, like the producer's synthetic --size payloads.
        content: (0..CONTENT)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect(),
        seq: Some(123_456),
        timestamp: MessageTimestamp {
            node_id: NodeId::from("producer-0"),
            timestamp: 1_790_000_000.123_456,
            clock_type,
            physical_time: Some(1_790_000_000.223_456),
            logical_time: Some(987_654),
            vector_time,
            hybrid_time: (clock_type == ClockType::Hybrid)
                .then_some(HybridTimestamp::new(1_790_000_000_223, 3)),
            simulated_time: None,
            unmapped_vector_entries: None,
        },
        simulated_skew_ms: Some(100.0),
    }
}

fn cases() -> Vec<(&'static str, Envelope)> {
    vec![
        ("physical", envelope(ClockType::Physical, 0)),
        ("logical", envelope(ClockType::Logical, 0)),
        ("vector-3", envelope(ClockType::Vector, 3)),
        ("vector-16", envelope(ClockType::Vector, 16)),
        ("vector-128", envelope(ClockType::Vector, 128)),
        ("hybrid", envelope(ClockType::Hybrid, 0)),
    ]
}

fn bench(c: &mut Criterion<ThreadCpuTime>) {
    let cases = cases();
    eprintln!("encoded envelope sizes (content {CONTENT} bytes):");
    for (name, env) in &cases {
        let bytes = env.encode();
        assert_eq!(
            Envelope::decode(&bytes).as_ref(),
            Ok(env),
            "{name} round trip"
        );
        eprintln!(
            "  {name:<11} {:>6} bytes ({} bytes of envelope overhead)",
            bytes.len(),
            bytes.len() - CONTENT
        );
    }

    let mut g = c.benchmark_group("envelope");
    for (name, env) in &cases {
        let bytes = env.encode();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", name), env, |b, e| {
            b.iter(|| black_box(black_box(e).encode()))
        });
        let mut buf = Vec::with_capacity(bytes.len());
        g.bench_with_input(BenchmarkId::new("encode_into", name), env, |b, e| {
            b.iter(|| {
                buf.clear();
                black_box(e).encode_into(&mut buf);
                black_box(buf.len())
            })
        });
        // The reference in the same run: serde_json's derived serializer, the same bytes.
        g.bench_with_input(BenchmarkId::new("serde_json_to_vec", name), env, |b, e| {
            b.iter(|| black_box(serde_json::to_vec(black_box(e)).expect("encodes")))
        });
        g.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
            b.iter(|| black_box(Envelope::decode(black_box(bytes))))
        });
    }
    g.finish();
    bench_headers(c, &cases);
}

fn bench_headers(c: &mut Criterion<ThreadCpuTime>, cases: &[(&'static str, Envelope)]) {
    let limits = DecodeLimits::default();
    eprintln!("header stamp sizes (names + values; the value is the {CONTENT}-byte content):");
    for (name, env) in cases {
        let mut stamp = env.clone();
        stamp.content.clear();
        for (version, h) in [("v2", encoded(env, 2)), ("v1", encoded(env, 1))] {
            let view: Vec<Header<'_>> = h.iter().map(|(n, v)| (n, Some(v))).collect();
            assert_eq!(
                stamp_headers::decode(&view, CONTENT, &limits).as_ref(),
                Ok(&stamp),
                "{name} {version} round trip"
            );
            let size: usize = h.iter().map(|(n, v)| n.len() + v.len()).sum();
            eprintln!(
                "  {name:<11} {version} {:>2} headers, {size:>5} bytes (JSON envelope overhead {} bytes)",
                h.len(),
                env.encode().len() - CONTENT
            );
        }
    }

    let mut g = c.benchmark_group("headers");
    for (name, env) in cases {
        for version in [2u8, 1] {
            let mut h = EncodedHeaders::new();
            let id = format!("v{version}_encode");
            g.bench_with_input(BenchmarkId::new(id, name), env, |b, e| {
                b.iter(|| {
                    match version {
                        1 => h.encode_v1(black_box(e)),
                        _ => h.encode(black_box(e)),
                    }
                    black_box(h.len())
                })
            });
            let h = encoded(env, version);
            let view: Vec<Header<'_>> = h.iter().map(|(n, v)| (n, Some(v))).collect();
            let id = format!("v{version}_decode");
            g.bench_with_input(BenchmarkId::new(id, name), &view, |b, view| {
                b.iter(|| black_box(stamp_headers::decode(black_box(view), CONTENT, &limits)))
            });
        }
        let mut buf = Vec::new();
        g.bench_with_input(BenchmarkId::new("json_encode_into", name), env, |b, e| {
            b.iter(|| {
                buf.clear();
                black_box(e).encode_into(&mut buf);
                black_box(buf.len())
            })
        });
        let bytes = env.encode();
        g.bench_with_input(BenchmarkId::new("json_decode", name), &bytes, |b, bytes| {
            b.iter(|| black_box(Envelope::decode(black_box(bytes))))
        });
    }
    g.finish();
}

/// The header set of `env` in format `version`.
fn encoded(env: &Envelope, version: u8) -> EncodedHeaders {
    let mut h = EncodedHeaders::new();
    match version {
        1 => h.encode_v1(env),
        _ => h.encode(env),
    }
    h
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = bench
}
criterion_main!(benches);
