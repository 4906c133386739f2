//! Causal and total-order buffer throughput at 16 nodes with random network delays.
//!
//! A seeded simulation produces the stream: 16 nodes send in random turn; before sending, a node
//! usually merges the stamp of a recently sent message of another node (vector merge, Lamport
//! update), so the stream carries real cross-node dependencies; every message is delayed by a
//! random 0..64 send-steps, keeping per-node FIFO (one Kafka partition per node). The stream is
//! generated in chunks outside the timed region (memory stays flat whatever the length), and each
//! chunk is offered to the buffer inside it, so the figure is the buffer's own cost per message,
//! including the final drain. Stream lengths 10^4, 10^5, 10^6: time per message must stay flat.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_timesync::clock::VectorTimestamp;
use kafka_timesync::delivery::{
    CausalBuffer, Delivered, DeliveryConfig, Release, TotalOrderBuffer,
};
use kafka_timesync::NodeId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

const NODES: usize = 16;
const MAX_DELAY: u64 = 64;
const CHUNK: usize = 10_000;
const STEP_NS: i64 = 1_000;

struct Msg {
    node: NodeId,
    seq: u64,
    lamport: u64,
    vt: VectorTimestamp,
}

struct Stream {
    rng: SmallRng,
    names: Vec<NodeId>,
    vts: Vec<VectorTimestamp>,
    lamports: Vec<u64>,
    seqs: Vec<u64>,
    last_arrival: Vec<u64>,
    /// Recently sent (node, lamport, vt), for merges.
    recent: VecDeque<(usize, u64, VectorTimestamp)>,
    in_flight: BinaryHeap<Reverse<(u64, u64, usize)>>,
    flying: Vec<Option<Msg>>,
    free: Vec<usize>,
    step: u64,
    ready: VecDeque<(u64, Msg)>,
}

impl Stream {
    fn new(seed: u64) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            names: (0..NODES)
                .map(|i| NodeId::from(format!("producer-{i}")))
                .collect(),
            vts: vec![VectorTimestamp::new(); NODES],
            lamports: vec![0; NODES],
            seqs: vec![0; NODES],
            last_arrival: vec![0; NODES],
            recent: VecDeque::new(),
            in_flight: BinaryHeap::new(),
            flying: Vec::new(),
            free: Vec::new(),
            step: 0,
            ready: VecDeque::new(),
        }
    }

    /// Simulates one send and moves the messages that have arrived to `ready`.
    fn send_one(&mut self) {
        let i = self.rng.gen_range(0..NODES);
        if !self.recent.is_empty() && self.rng.gen_bool(0.7) {
            let (from, lamport, vt) = &self.recent[self.rng.gen_range(0..self.recent.len())];
            if *from != i {
                self.vts[i].merge(vt);
                self.lamports[i] = self.lamports[i].max(*lamport);
            }
        }
        self.seqs[i] += 1;
        self.lamports[i] += 1;
        self.vts[i].increment(&self.names[i]);
        let vt = self.vts[i].clone();
        self.recent.push_back((i, self.lamports[i], vt.clone()));
        if self.recent.len() > 32 {
            self.recent.pop_front();
        }
        let arrival = (self.step + self.rng.gen_range(0..MAX_DELAY)).max(self.last_arrival[i]);
        self.last_arrival[i] = arrival;
        let msg = Msg {
            node: self.names[i].clone(),
            seq: self.seqs[i],
            lamport: self.lamports[i],
            vt,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.flying[s] = Some(msg);
                s
            }
            None => {
                self.flying.push(Some(msg));
                self.flying.len() - 1
            }
        };
        self.in_flight.push(Reverse((arrival, self.step, slot)));
        self.step += 1;
        while let Some(Reverse((arrival, _, slot))) = self.in_flight.peek().copied() {
            if arrival >= self.step {
                break;
            }
            self.in_flight.pop();
            if let Some(m) = self.flying[slot].take() {
                self.free.push(slot);
                self.ready.push_back((arrival, m));
            }
        }
    }

    /// The next `n` arrivals, as (arrival time in ns, message).
    fn chunk(&mut self, n: usize) -> Vec<(i64, Msg)> {
        while self.ready.len() < n {
            self.send_one();
        }
        self.ready
            .drain(..n)
            .map(|(a, m)| (a as i64 * STEP_NS, m))
            .collect()
    }
}

fn cfg() -> DeliveryConfig {
    // Generous bounds: no early releases in a run, so the measured path is the ordering itself.
    DeliveryConfig::new(100_000, 3_600 * 1_000_000_000)
}

/// CPU time this thread has run, from /proc/thread-self/schedstat (Linux): on a shared machine
/// it shows the buffer's cost undistorted by waiting for a core.
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

struct RunTimes {
    wall: Duration,
    cpu: Option<Duration>,
    delivered: usize,
}

/// Runs `n` messages through `offer`, timing only the offers and the final `finish`.
fn timed_run<B>(
    n: usize,
    mut make: impl FnMut() -> B,
    mut offer: impl FnMut(&mut B, &(i64, Msg), &mut Vec<Delivered<u64>>),
    mut finish: impl FnMut(&mut B, &mut Vec<Delivered<u64>>),
) -> RunTimes {
    let mut stream = Stream::new(42);
    let mut buf = make();
    let mut out = Vec::with_capacity(1024);
    let mut delivered = 0;
    let mut elapsed = Duration::ZERO;
    let mut cpu = Some(Duration::ZERO);
    let mut left = n;
    while left > 0 {
        let chunk = stream.chunk(left.min(CHUNK));
        left -= chunk.len();
        let (start, cpu_start) = (Instant::now(), thread_cpu());
        for m in &chunk {
            offer(&mut buf, m, &mut out);
            delivered += out.len();
            out.clear();
        }
        elapsed += start.elapsed();
        cpu = add_cpu(cpu, cpu_start);
        drop(chunk);
    }
    let (start, cpu_start) = (Instant::now(), thread_cpu());
    finish(&mut buf, &mut out);
    elapsed += start.elapsed();
    cpu = add_cpu(cpu, cpu_start);
    delivered += out.len();
    RunTimes {
        wall: elapsed,
        cpu,
        delivered,
    }
}

fn add_cpu(total: Option<Duration>, start: Option<Duration>) -> Option<Duration> {
    Some(total? + thread_cpu()?.checked_sub(start?)?)
}

fn causal_run(n: usize) -> RunTimes {
    timed_run(
        n,
        || CausalBuffer::new(cfg()),
        |b, (now, m), out| {
            b.offer(m.node.clone(), &m.vt, m.seq, *now, out);
        },
        |b, out| b.drain(Release::Timeout, out),
    )
}

fn total_run(n: usize) -> RunTimes {
    let members: Vec<NodeId> = Stream::new(0).names;
    timed_run(
        n,
        || TotalOrderBuffer::new(cfg(), Some(members.clone())),
        |b, (now, m), out| {
            b.offer(m.node.clone(), m.seq, m.lamport, m.seq, *now, out);
        },
        |b, out| b.drain(Release::Timeout, out),
    )
}

fn bench(c: &mut Criterion) {
    for (name, run) in [
        ("causal", causal_run as fn(usize) -> RunTimes),
        ("total", total_run as fn(usize) -> RunTimes),
    ] {
        let mut g = c.benchmark_group(format!("delivery/{name}/16-nodes"));
        g.sample_size(10);
        for n in [10_000usize, 100_000, 1_000_000] {
            // Every message must come out exactly once.
            let t = run(n);
            assert_eq!(t.delivered, n, "{name}: delivered {} of {n}", t.delivered);
            let per = |d: Duration| d.as_nanos() as f64 / n as f64;
            let cpu = t.cpu.map_or("n/a".to_string(), |c| {
                format!("{:.0} ns/msg ({:.2} M msgs/s)", per(c), 1e3 / per(c))
            });
            eprintln!(
                "{name} {n}: one run: wall {:.0} ns/msg, thread CPU {cpu}",
                per(t.wall)
            );
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
                b.iter_custom(|iters| (0..iters).map(|_| run(n).wall).sum())
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
