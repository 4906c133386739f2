//! Property tests for the causal and total-order delivery buffers.
//!
//! Histories are simulated: 2–8 nodes send (vector `send_stamp`, Lamport `tick`) and receive
//! earlier messages (vector `merge`, Lamport `update`), so happened-before between messages is
//! real. The messages are then offered in random interleavings, with random duplicates (and, for
//! the loss property, random losses and small bounds).

use kafka_timesync::clock::{CausalOrder, LamportClock, VectorClock, VectorTimestamp};
use kafka_timesync::delivery::{
    CausalBuffer, Delivered, DeliveryConfig, Offer, Release, TotalOrderBuffer,
};
use kafka_timesync::NodeId;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Msg {
    node: NodeId,
    seq: u64,
    vt: VectorTimestamp,
    lamport: u64,
}

/// A history: `ops` drive which node acts and whether it sends or receives a random earlier
/// message of another node.
fn history(nodes: usize, ops: &[(u8, bool, u16)]) -> (Vec<NodeId>, Vec<Msg>) {
    let names: Vec<NodeId> = (0..nodes)
        .map(|i| NodeId::from(format!("node-{i}")))
        .collect();
    let vcs: Vec<VectorClock> = names.iter().map(|n| VectorClock::new(n.clone())).collect();
    let lcs: Vec<LamportClock> = names.iter().map(|_| LamportClock::new()).collect();
    let mut seqs = vec![0u64; nodes];
    let mut msgs: Vec<Msg> = Vec::new();
    for &(who, send, pick) in ops {
        let i = who as usize % nodes;
        if send || msgs.is_empty() {
            seqs[i] += 1;
            let vt = vcs[i].send_stamp();
            let lamport = lcs[i].tick();
            msgs.push(Msg {
                node: names[i].clone(),
                seq: seqs[i],
                vt,
                lamport,
            });
        } else {
            let m = &msgs[pick as usize % msgs.len()];
            if m.node != names[i] {
                vcs[i].merge(&m.vt);
                lcs[i].update(m.lamport);
            }
        }
    }
    (names, msgs)
}

/// Indices into `msgs` in a random order; per-node FIFO when `fifo`.
fn interleave(msgs: &[Msg], rng: &mut SmallRng, fifo: bool) -> Vec<usize> {
    if !fifo {
        let mut v: Vec<usize> = (0..msgs.len()).collect();
        for i in (1..v.len()).rev() {
            v.swap(i, rng.gen_range(0..=i));
        }
        return v;
    }
    let mut queues: Vec<(NodeId, std::collections::VecDeque<usize>)> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        match queues.iter_mut().find(|(n, _)| *n == m.node) {
            Some((_, q)) => q.push_back(i),
            None => queues.push((m.node.clone(), [i].into())),
        }
    }
    let mut out = Vec::with_capacity(msgs.len());
    while !queues.is_empty() {
        let q = rng.gen_range(0..queues.len());
        if let Some(i) = queues[q].1.pop_front() {
            out.push(i);
        }
        if queues[q].1.is_empty() {
            queues.swap_remove(q);
        }
    }
    out
}

/// Inserts a copy of each message, with probability `p`, somewhere after its first occurrence.
fn with_duplicates(order: Vec<usize>, rng: &mut SmallRng, p: f64) -> Vec<usize> {
    let mut out = order.clone();
    for &i in &order {
        if rng.gen_bool(p) {
            let first = out.iter().position(|&x| x == i).unwrap_or(0);
            let at = rng.gen_range(first + 1..=out.len());
            out.insert(at, i);
        }
    }
    out
}

fn key(d: &Delivered<usize>) -> (NodeId, u64) {
    (d.node.clone(), d.number.get())
}

/// Offers `order` to a causal buffer with no effective bounds and checks the guarantees.
fn check_causal_unbounded(msgs: &[Msg], order: &[usize]) -> Result<(), TestCaseError> {
    let mut b = CausalBuffer::new(DeliveryConfig::new(usize::MAX, i64::MAX));
    let mut out = Vec::new();
    let mut offered = vec![false; msgs.len()];
    for (now, &i) in order.iter().enumerate() {
        let m = &msgs[i];
        let r = b.offer(m.node.clone(), &m.vt, i, now as i64, &mut out);
        match r {
            Offer::Accepted => prop_assert!(!offered[i], "copy of {:?} accepted", key_of(m)),
            Offer::Duplicate(x) => {
                prop_assert_eq!(x, i);
                prop_assert!(
                    offered[i],
                    "first copy of {:?} called a duplicate",
                    key_of(m)
                );
            }
        }
        offered[i] = true;
    }
    prop_assert!(
        b.is_empty(),
        "{} messages still waiting although all arrived",
        b.len()
    );
    prop_assert_eq!(b.next_deadline(), None);
    // Exactly once, all ready, and the delivered counts are the senders' counts.
    prop_assert_eq!(out.len(), msgs.len());
    let mut seen = vec![false; msgs.len()];
    for d in &out {
        prop_assert!(!seen[d.item], "{:?} delivered twice", key(d));
        seen[d.item] = true;
        prop_assert_eq!(d.release, Release::Ready);
        prop_assert_eq!(key(d), key_of(&msgs[d.item]));
        prop_assert!(d.missing.is_empty());
    }
    let mut counts = VectorTimestamp::new();
    for m in msgs {
        counts.set(&m.node, counts.get(&m.node).max(m.seq));
    }
    prop_assert_eq!(b.delivered(), &counts);
    // A linear extension of happened-before.
    for (x, a) in out.iter().enumerate() {
        for b in &out[x + 1..] {
            prop_assert!(
                msgs[b.item].vt.compare(&msgs[a.item].vt) != CausalOrder::Before,
                "{:?} delivered after its successor {:?}",
                key(b),
                key(a)
            );
        }
    }
    Ok(())
}

fn key_of(m: &Msg) -> (NodeId, u64) {
    (m.node.clone(), m.seq)
}

fn ops() -> impl Strategy<Value = (usize, Vec<(u8, bool, u16)>, u64)> {
    (
        2usize..=8,
        proptest::collection::vec((any::<u8>(), any::<bool>(), any::<u16>()), 1..80),
        any::<u64>(),
    )
}

/// The brute-force oracle for total order: the step (index into `order`) from which `m` is safe,
/// i.e. it has arrived and no member can still send anything ordered before it. Each member's
/// Lamport times strictly increase and arrive in order, so after receiving time `t` from member
/// `k` its next message is at least `(t + 1, k)` (at least `(0, k)` before the first). `None`:
/// never, with the messages in `order`.
fn total_safe_step(names: &[NodeId], msgs: &[Msg], order: &[usize], m: &Msg) -> Option<usize> {
    let key = (u128::from(m.lamport), &m.node);
    let mut arrived = false;
    let mut next: HashMap<&NodeId, u128> = names.iter().map(|n| (n, 0)).collect();
    for (step, &i) in order.iter().enumerate() {
        let x = &msgs[i];
        arrived |= x.node == m.node && x.seq == m.seq;
        if let Some(t) = next.get_mut(&x.node) {
            *t = (*t).max(u128::from(x.lamport) + 1);
        }
        if arrived && next.iter().all(|(k, t)| (*t, *k) > key) {
            return Some(step);
        }
    }
    None
}

fn total_order_run(
    names: &[NodeId],
    msgs: &[Msg],
    order: &[usize],
) -> Result<Vec<(NodeId, u64)>, TestCaseError> {
    let mut b = TotalOrderBuffer::new(
        DeliveryConfig::new(usize::MAX, i64::MAX),
        Some(names.to_vec()),
    );
    let mut out = Vec::new();
    let mut offered = vec![false; msgs.len()];
    // The step at which each message came out (None: not before the drain).
    let mut at: Vec<Option<usize>> = vec![None; msgs.len()];
    for (step, &i) in order.iter().enumerate() {
        let m = &msgs[i];
        let before = out.len();
        let r = b.offer(m.node.clone(), m.seq, m.lamport, i, step as i64, &mut out);
        prop_assert_eq!(r.is_duplicate(), offered[i]);
        offered[i] = true;
        for d in &out[before..] {
            at[d.item] = Some(step);
        }
    }
    prop_assert!(out.iter().all(|d| d.release == Release::Ready));
    // Latency: each message comes out exactly at the step the oracle says it became safe (not
    // later: no needless wait; not earlier: something could still have preceded it).
    for (i, m) in msgs.iter().enumerate() {
        prop_assert_eq!(
            at[i],
            total_safe_step(names, msgs, order, m),
            "{:?} (time {}) delivered at a different step than it became safe",
            key_of(m),
            m.lamport
        );
    }
    b.drain(Release::Timeout, &mut out);
    prop_assert!(b.is_empty());
    Ok(out.iter().map(key).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Per-node FIFO interleavings with duplicates: the causal output is a linear extension of
    /// happened-before, each message delivered exactly once, duplicates handed back.
    #[test]
    fn causal_fifo_interleavings_respect_happened_before((n, ops, seed) in ops()) {
        let (_, msgs) = history(n, &ops);
        let mut rng = SmallRng::seed_from_u64(seed);
        let order = interleave(&msgs, &mut rng, true);
        let order = with_duplicates(order, &mut rng, 0.2);
        check_causal_unbounded(&msgs, &order)?;
    }

    /// The same without per-node FIFO: the buffer also restores each node's own order.
    #[test]
    fn causal_arbitrary_interleavings_respect_happened_before((n, ops, seed) in ops()) {
        let (_, msgs) = history(n, &ops);
        let mut rng = SmallRng::seed_from_u64(seed);
        let order = interleave(&msgs, &mut rng, false);
        let order = with_duplicates(order, &mut rng, 0.2);
        check_causal_unbounded(&msgs, &order)?;
    }

    /// Two interleavings of one history (configured members, large wait, drain at the end) give
    /// the same sequence: the history sorted by (Lamport time, node id); and in each, every
    /// message is delivered at the earliest step at which it is safe (the oracle above).
    #[test]
    fn total_order_is_the_same_for_every_interleaving((n, ops, seed) in ops()) {
        let (names, msgs) = history(n, &ops);
        let mut rng = SmallRng::seed_from_u64(seed);
        let first = with_duplicates(interleave(&msgs, &mut rng, true), &mut rng, 0.2);
        let second = with_duplicates(interleave(&msgs, &mut rng, true), &mut rng, 0.2);
        let a = total_order_run(&names, &msgs, &first)?;
        let b = total_order_run(&names, &msgs, &second)?;
        prop_assert_eq!(&a, &b);
        let mut expected: Vec<&Msg> = msgs.iter().collect();
        expected.sort_by(|x, y| (x.lamport, &x.node).cmp(&(y.lamport, &y.node)));
        let expected: Vec<(NodeId, u64)> = expected.into_iter().map(key_of).collect();
        prop_assert_eq!(a, expected);
    }

    /// With losses, duplicates, tiny capacities and waits, and a clock that advances: every
    /// offered message comes out exactly once whatever the reason, copies are reported as
    /// duplicates, and ordering still holds where it can (causal: a message delivered after one
    /// of its successors was given up on and is `Late`; `ready` exactly when its whole causal
    /// past came out before it, `after-skip` when not; total: the non-late output is increasing).
    #[test]
    fn nothing_is_ever_lost(
        (n, ops, seed) in ops(),
        capacity in 0usize..8,
        max_wait in 0i64..40,
        fifo in any::<bool>(),
        members in any::<bool>(),
    ) {
        let (names, msgs) = history(n, &ops);
        let mut rng = SmallRng::seed_from_u64(seed);
        let order: Vec<usize> = interleave(&msgs, &mut rng, fifo)
            .into_iter()
            .filter(|_| !rng.gen_bool(0.15))
            .collect();
        let order = with_duplicates(order, &mut rng, 0.2);
        let cfg = DeliveryConfig::new(capacity, max_wait);
        let mut causal = CausalBuffer::new(cfg);
        let mut total = TotalOrderBuffer::new(cfg, members.then(|| names.clone()));
        let (mut c_out, mut t_out) = (Vec::new(), Vec::new());
        let mut offered = vec![false; msgs.len()];
        let mut now = 0i64;
        for &i in &order {
            now += rng.gen_range(0..20);
            let m = &msgs[i];
            let c = causal.offer(m.node.clone(), &m.vt, i, now, &mut c_out);
            let t = total.offer(m.node.clone(), m.seq, m.lamport, i, now, &mut t_out);
            prop_assert_eq!(c.is_duplicate(), offered[i], "causal duplicate verdict for {:?}", key_of(m));
            prop_assert_eq!(t.is_duplicate(), offered[i], "total duplicate verdict for {:?}", key_of(m));
            offered[i] = true;
            prop_assert!(causal.len() <= capacity && total.len() <= capacity);
            if rng.gen_bool(0.3) {
                now += rng.gen_range(0..60);
                causal.expire(now, &mut c_out);
                total.expire(now, &mut t_out);
                prop_assert!(causal.next_deadline().map_or(true, |d| d > now));
                prop_assert!(total.next_deadline().map_or(true, |d| d > now));
            }
        }
        causal.drain(Release::Timeout, &mut c_out);
        total.drain(Release::Timeout, &mut t_out);
        prop_assert!(causal.is_empty() && total.is_empty());
        for out in [&c_out, &t_out] {
            let mut times: HashMap<usize, usize> = HashMap::new();
            for d in out.iter() {
                *times.entry(d.item).or_default() += 1;
                prop_assert_eq!(key(d), key_of(&msgs[d.item]));
            }
            for (i, was) in offered.iter().enumerate() {
                prop_assert_eq!(times.get(&i).copied().unwrap_or(0), usize::from(*was),
                    "{:?} offered={} but delivered a different number of times", key_of(&msgs[i]), was);
            }
        }
        // Causal: if a happened before b and came out after b, a had been given up on.
        for (x, a) in c_out.iter().enumerate() {
            for b in &c_out[x + 1..] {
                if msgs[b.item].vt.compare(&msgs[a.item].vt) == CausalOrder::Before {
                    prop_assert_eq!(b.release, Release::Late, "{:?} after its successor {:?}", key(b), key(a));
                }
            }
        }
        // Ready: the whole causal past came out before it. After-skip: some of it did not (it
        // was given up on: lost, or still to come late).
        let mut pos = vec![usize::MAX; msgs.len()];
        for (x, d) in c_out.iter().enumerate() {
            pos[d.item] = x;
        }
        for (x, d) in c_out.iter().enumerate() {
            let past_missing = msgs.iter().enumerate().any(|(p, m)| {
                m.vt.compare(&msgs[d.item].vt) == CausalOrder::Before && pos[p] > x
            });
            match d.release {
                Release::Ready => prop_assert!(!past_missing, "{:?} ready before its whole causal past", key(d)),
                Release::AfterSkip => prop_assert!(past_missing, "{:?} after-skip with its whole causal past delivered", key(d)),
                _ => {}
            }
        }
        prop_assert!(t_out.iter().all(|d| d.release != Release::AfterSkip));
        // Early releases say what they gave up on; ready ones do not.
        for d in &c_out {
            if d.release != Release::Timeout && d.release != Release::BufferFull {
                prop_assert!(d.missing.is_empty());
            }
        }
        // Total: the non-late output is strictly increasing in (time, node).
        let keys: Vec<(u64, NodeId)> = t_out
            .iter()
            .filter(|d| d.release != Release::Late)
            .map(|d| (msgs[d.item].lamport, d.node.clone()))
            .collect();
        prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "total order not increasing: {:?}", keys);
    }
}
