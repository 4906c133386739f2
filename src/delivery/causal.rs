//! Causal delivery buffer (vector clocks whose entries count messages sent).
//!
//! A message `m` from node `i` with vector timestamp `vt` is delivered once
//! `vt[i] == delivered[i] + 1` and `vt[k] <= delivered[k]` for every `k != i` (Birman–Schiper–
//! Stephenson), where `delivered[k]` counts node `k`'s messages delivered (or given up on).
//!
//! # Invariants and costs
//!
//! * Every waiting message is indexed by exactly one unmet dependency: its own predecessor (it sits
//!   in its node's `pending` map and is looked at when that node's count advances), or the first
//!   unmet entry `(k, v)` of its vector (it sits in `waiters[k][v]` and is woken when
//!   `delivered[k]` reaches `v`). Dependencies already met are never re-checked (a per-message
//!   cursor), so each message costs O(entries of its vector) plus O(log w) per index operation
//!   (`w` = messages waiting on that node); an arrival never rescans the buffer. Messages that are
//!   ready on arrival are delivered without being stored.
//! * Timeouts use an arrival-ordered list: the oldest waiting message has the earliest deadline.
//! * Memory: at most `capacity` waiting messages, plus per node its counters and a bounded set of
//!   given-up ranges ([`MAX_SKIPPED_RANGES`]).
//!
//! # Early release
//!
//! A message released early (timeout, buffer full, drain) first forces out the waiting messages
//! it depends on, oldest causal predecessor first, and gives up on the ones that are absent:
//! `delivered[k]` is raised to what the message needs, the skipped counts are reported in
//! [`Delivered::missing`] (once, on the message whose release gave them up) and remembered, so a
//! skipped message that arrives later is delivered at once as [`Release::Late`] instead of being
//! taken for a duplicate. A message whose condition then holds, but one of whose causal
//! predecessors was given up on and has not arrived, is delivered as [`Release::AfterSkip`]
//! (whether the skip woke it or it arrived later): it follows everything present that it depends
//! on, but not its whole causal past. `Ready` means the whole causal past was delivered before it
//! (counts assumed delivered before the start, and given-up ranges forgotten beyond
//! [`MAX_SKIPPED_RANGES`], count as delivered).
//!
//! # Malformed input
//!
//! Nothing panics. A vector without the sender's own entry (own count 0) cannot be placed in the
//! order: it is delivered at once as `Late`. Counters up to `u64::MAX` are handled with checked
//! arithmetic. Vectors that are causally inconsistent (cycles) are resolved by early release.

use super::arrivals::Arrivals;
use super::ranges::RangeSet;
use super::{CausalNode, Delivered, DeliveryConfig, Gap, Offer, Release};
use crate::clock::VectorTimestamp;
use crate::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many disjoint given-up ranges are remembered per node. Beyond that the oldest are
/// forgotten, and a message from them that arrives even later is reported as a duplicate.
pub const MAX_SKIPPED_RANGES: usize = 1024;

const NIL: usize = usize::MAX;

/// Bookkeeping for one node (stable index into `CausalBuffer::nodes`).
struct NodeState {
    name: NodeId,
    /// Messages of this node delivered or given up on.
    delivered: u64,
    /// Waiting messages of this node by send count. All have counts above `delivered` (except
    /// after inconsistent input, which is tolerated).
    pending: BTreeMap<u64, usize>,
    /// Waiting messages of other nodes, by the count of this node they need.
    /// (Each key heads a doubly linked list threaded through `Waiting::{prev, next}`: no
    /// allocation per waiting message, O(1) unlinking.)
    waiters: BTreeMap<u64, usize>,
    /// Counts given up on and not yet arrived.
    skipped: RangeSet,
}

struct Waiting<T> {
    node: u32,
    seq: u64,
    /// (node index, count) for every other node in the vector.
    deps: Vec<(u32, u64)>,
    /// `deps[..cursor]` are known to be met.
    cursor: usize,
    /// On the early-release stack: normal processing leaves it alone.
    forcing: bool,
    /// The `waiters` entry this message is filed under.
    indexed: Option<(u32, u64)>,
    /// Neighbours in the `waiters` list it is filed under (`NIL` at the ends).
    prev: usize,
    next: usize,
    item: T,
}

enum Check {
    Ready,
    /// Waits for its own node's predecessor (found through `pending`).
    OwnWait,
    /// Waits for `delivered[node] >= count`.
    Wait(u32, u64),
}

/// A causal delivery buffer; see the [module documentation](self).
///
/// # Example
///
/// `b`'s reply to `a`'s first message arrives first: it is held until that message arrives, then
/// both are delivered, cause first.
///
/// ```
/// use kafka_timesync::clock::VectorTimestamp;
/// use kafka_timesync::delivery::{CausalBuffer, DeliveryConfig, Release};
///
/// let mut buffer = CausalBuffer::new(DeliveryConfig::new(1_000, 5_000_000_000)); // 5 s wait
/// let mut out = Vec::new();
/// let reply = VectorTimestamp::from_entries([("a", 1), ("b", 1)]);
/// buffer.offer("b".into(), &reply, "re: hello", 0, &mut out);
/// assert!(out.is_empty());
/// assert_eq!(buffer.len(), 1, "held: a's first message is missing");
///
/// let hello = VectorTimestamp::from_entries([("a", 1)]);
/// buffer.offer("a".into(), &hello, "hello", 1_000, &mut out);
/// let delivered: Vec<_> = out.iter().map(|d| (&*d.node, d.seq, d.item, d.release)).collect();
/// assert_eq!(delivered, [("a", 1, "hello", Release::Ready), ("b", 1, "re: hello", Release::Ready)]);
/// assert!(buffer.is_empty());
/// ```
pub struct CausalBuffer<T> {
    cfg: DeliveryConfig,
    /// Node names sorted, with their stable index.
    names: Vec<(NodeId, u32)>,
    nodes: Vec<NodeState>,
    delivered_vt: VectorTimestamp,
    waiting: Arrivals<Waiting<T>>,
    /// Messages to (re)check.
    work: Vec<usize>,
    scratch: Vec<(u32, u64)>,
    pool: Vec<Vec<(u32, u64)>>,
}

impl<T> CausalBuffer<T> {
    /// An empty buffer: nothing delivered yet from any node.
    pub fn new(cfg: DeliveryConfig) -> Self {
        Self {
            cfg,
            names: Vec::new(),
            nodes: Vec::new(),
            delivered_vt: VectorTimestamp::new(),
            waiting: Arrivals::new(),
            work: Vec::new(),
            scratch: Vec::new(),
            pool: Vec::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> DeliveryConfig {
        self.cfg
    }

    /// Offers a message from `node` stamped `vt`. Whatever became deliverable (this message and
    /// any it unblocked, and first any whose wait expired at `now_ns`) is appended to `out` in
    /// causal order.
    pub fn offer(
        &mut self,
        node: NodeId,
        vt: &VectorTimestamp,
        item: T,
        now_ns: i64,
        out: &mut Vec<Delivered<T>>,
    ) -> Offer<T> {
        self.expire(now_ns, out);
        let own = self.intern_one(&node);
        self.scratch.clear();
        let mut own_seq = 0;
        let mut hint = 0;
        for (k, v) in vt.iter() {
            let (idx, at) = self.intern_from(k, hint);
            hint = at + 1;
            if idx == own {
                own_seq = v;
            } else {
                self.scratch.push((idx, v));
            }
        }
        let st = &mut self.nodes[own as usize];
        if own_seq == 0 {
            // Not counted in its own vector: there is no place for it in the causal order.
            out.push(delivered(st.name.clone(), 0, Release::Late, item));
            return Offer::Accepted;
        }
        if own_seq <= st.delivered {
            if st.skipped.remove(own_seq) {
                out.push(delivered(st.name.clone(), own_seq, Release::Late, item));
                return Offer::Accepted;
            }
            return Offer::Duplicate(item);
        }
        if st.pending.contains_key(&own_seq) {
            return Offer::Duplicate(item);
        }
        let own_next = own_seq == st.delivered + 1; // delivered < own_seq: no overflow
        let nodes = &self.nodes;
        if own_next
            && self
                .scratch
                .iter()
                .all(|&(k, v)| nodes[k as usize].delivered >= v)
        {
            let release = self.ready_release(own, own_seq, &self.scratch);
            out.push(delivered(
                self.nodes[own as usize].name.clone(),
                own_seq,
                release,
                item,
            ));
            self.advance(own, own_seq);
            self.run(out);
            return Offer::Accepted;
        }
        let mut deps = self.pool.pop().unwrap_or_default();
        deps.extend_from_slice(&self.scratch);
        let w = Waiting {
            node: own,
            seq: own_seq,
            deps,
            cursor: 0,
            forcing: false,
            indexed: None,
            prev: NIL,
            next: NIL,
            item,
        };
        let id = self.waiting.push(w, self.cfg.deadline(now_ns));
        self.nodes[own as usize].pending.insert(own_seq, id);
        self.work.push(id);
        self.run(out);
        while self.waiting.len() > self.cfg.capacity {
            match self.waiting.oldest() {
                Some((oldest, _)) => self.force(oldest, Release::BufferFull, out),
                None => break,
            }
        }
        Offer::Accepted
    }

    /// Releases, with [`Release::Timeout`], every message whose wait has reached `now_ns`
    /// (together with the waiting messages it depends on).
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<Delivered<T>>) {
        while let Some((id, deadline)) = self.waiting.oldest() {
            if deadline > now_ns {
                break;
            }
            self.force(id, Release::Timeout, out);
        }
    }

    /// When the next timeout falls due (call [`expire`](Self::expire) then), if anything waits.
    pub fn next_deadline(&self) -> Option<i64> {
        self.waiting.oldest().map(|(_, d)| d)
    }

    /// Releases everything still waiting, with reason `release`, in causal order as far as the
    /// messages present allow (each one after the waiting messages it depends on).
    pub fn drain(&mut self, release: Release, out: &mut Vec<Delivered<T>>) {
        while let Some((id, _)) = self.waiting.oldest() {
            self.force(id, release, out);
        }
    }

    /// Number of waiting messages.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.len() == 0
    }

    /// Per node, how many of its messages have been delivered or given up on.
    pub fn delivered(&self) -> &VectorTimestamp {
        &self.delivered_vt
    }

    /// The waiting payloads, oldest arrival first.
    pub fn iter_waiting(&self) -> impl Iterator<Item = &T> + '_ {
        self.waiting.iter().map(|w| &w.item)
    }

    /// Counts `node`'s messages up to `count` as delivered without delivering or reporting them:
    /// they lie before where the consumer started reading (see the consumer's resume rules).
    /// Messages that were waiting only for them are released as [`Release::Ready`] into `out`.
    pub fn assume_delivered(&mut self, node: &NodeId, count: u64, out: &mut Vec<Delivered<T>>) {
        let idx = self.intern_one(node);
        self.advance(idx, count);
        self.run(out);
    }

    /// The nodes that waiting messages need more of, each with the highest count needed.
    pub fn awaited(&self) -> Vec<(NodeId, u64)> {
        self.names
            .iter()
            .filter_map(|(name, idx)| {
                let st = &self.nodes[*idx as usize];
                st.waiters
                    .last_key_value()
                    .map(|(&need, _)| (name.clone(), need))
            })
            .collect()
    }

    /// The state a restarted buffer needs: per node (sorted by id) the count delivered or given
    /// up on, and the given-up counts that have not arrived.
    pub fn checkpoint(&self) -> Vec<CausalNode> {
        self.names
            .iter()
            .map(|(_, idx)| &self.nodes[*idx as usize])
            .filter(|st| st.delivered > 0)
            .map(|st| CausalNode {
                node: st.name.clone(),
                delivered: st.delivered,
                skipped: st.skipped.iter().collect(),
            })
            .collect()
    }

    /// Restores a [`checkpoint`](Self::checkpoint) (call it before offering anything): what it
    /// counts is delivered, its given-up counts are delivered as [`Release::Late`] if they come.
    pub fn restore(&mut self, nodes: &[CausalNode], out: &mut Vec<Delivered<T>>) {
        for n in nodes {
            let idx = self.intern_one(&n.node);
            for &(first, last) in &n.skipped {
                self.nodes[idx as usize]
                    .skipped
                    .insert_range(first, last.min(n.delivered));
            }
            self.advance(idx, n.delivered);
        }
        self.run(out);
    }

    // ---- node table ----

    fn intern_one(&mut self, name: &NodeId) -> u32 {
        self.intern_from(name, 0).0
    }

    /// The stable index of `name`, searching `names[hint..]` first (callers walk sorted names).
    /// Returns the index and the position in `names`.
    fn intern_from(&mut self, name: &NodeId, hint: usize) -> (u32, usize) {
        if let Some((n, idx)) = self.names.get(hint) {
            if Arc::ptr_eq(n, name) || **n == **name {
                return (*idx, hint);
            }
        }
        let from = if matches!(self.names.get(hint), Some((n, _)) if **n < **name) {
            hint
        } else {
            0
        };
        match self.names[from..].binary_search_by(|(n, _)| (**n).cmp(&**name)) {
            Ok(p) => (self.names[from + p].1, from + p),
            Err(p) => {
                let idx = self.nodes.len() as u32;
                self.nodes.push(NodeState {
                    name: name.clone(),
                    delivered: 0,
                    pending: BTreeMap::new(),
                    waiters: BTreeMap::new(),
                    skipped: RangeSet::new(MAX_SKIPPED_RANGES),
                });
                self.names.insert(from + p, (name.clone(), idx));
                (idx, from + p)
            }
        }
    }

    // ---- core ----

    /// Raises `delivered[k]` to `to` (if higher) and queues what may have become ready.
    fn advance(&mut self, k: u32, to: u64) {
        let st = &mut self.nodes[k as usize];
        if to <= st.delivered {
            return;
        }
        st.delivered = to;
        self.delivered_vt.set(&st.name, to);
        if let Some((&s, &id)) = st.pending.first_key_value() {
            if s <= to.saturating_add(1) {
                self.work.push(id);
            }
        }
        while let Some(e) = st.waiters.first_entry() {
            if *e.key() > to {
                break;
            }
            let mut id = e.remove();
            while let Some(w) = self.waiting.get_mut(id) {
                w.indexed = None;
                w.prev = NIL;
                self.work.push(id);
                id = std::mem::replace(&mut w.next, NIL);
            }
        }
    }

    fn check(&mut self, id: usize) -> Option<Check> {
        let w = self.waiting.get_mut(id)?;
        if self.nodes[w.node as usize].delivered < w.seq - 1 {
            return Some(Check::OwnWait);
        }
        while let Some(&(k, v)) = w.deps.get(w.cursor) {
            if self.nodes[k as usize].delivered < v {
                return Some(Check::Wait(k, v));
            }
            w.cursor += 1;
        }
        Some(Check::Ready)
    }

    /// Processes the work stack until nothing more becomes deliverable.
    fn run(&mut self, out: &mut Vec<Delivered<T>>) {
        while let Some(id) = self.work.pop() {
            match self.waiting.get(id) {
                Some(w) if !w.forcing && w.indexed.is_none() => {}
                _ => continue,
            }
            match self.check(id) {
                Some(Check::Ready) => self.deliver(id, Release::Ready, Vec::new(), out),
                Some(Check::Wait(k, v)) => {
                    let head = self.nodes[k as usize].waiters.insert(v, id);
                    if let Some(h) = head.and_then(|h| self.waiting.get_mut(h)) {
                        h.prev = id;
                    }
                    if let Some(w) = self.waiting.get_mut(id) {
                        w.indexed = Some((k, v));
                        w.prev = NIL;
                        w.next = head.unwrap_or(NIL);
                    }
                }
                Some(Check::OwnWait) | None => {}
            }
        }
    }

    fn unindex(&mut self, id: usize) {
        let Some(w) = self.waiting.get_mut(id) else {
            return;
        };
        let Some((k, v)) = w.indexed.take() else {
            return;
        };
        let (prev, next) = (
            std::mem::replace(&mut w.prev, NIL),
            std::mem::replace(&mut w.next, NIL),
        );
        if let Some(n) = self.waiting.get_mut(next) {
            n.prev = prev;
        }
        match self.waiting.get_mut(prev) {
            Some(p) => p.next = next,
            None if next != NIL => {
                self.nodes[k as usize].waiters.insert(v, next);
            }
            None => {
                self.nodes[k as usize].waiters.remove(&v);
            }
        }
    }

    fn deliver(
        &mut self,
        id: usize,
        release: Release,
        missing: Vec<Gap>,
        out: &mut Vec<Delivered<T>>,
    ) {
        self.unindex(id);
        let Some(w) = self.waiting.remove(id) else {
            return;
        };
        let release = match release {
            Release::Ready => self.ready_release(w.node, w.seq, &w.deps),
            r => r,
        };
        let st = &mut self.nodes[w.node as usize];
        if st.pending.get(&w.seq) == Some(&id) {
            st.pending.remove(&w.seq);
        }
        out.push(Delivered {
            node: st.name.clone(),
            seq: w.seq,
            release,
            item: w.item,
            missing,
            silent: Vec::new(),
        });
        let mut deps = w.deps;
        if self.pool.len() < 64 {
            deps.clear();
            self.pool.push(deps);
        }
        self.advance(w.node, w.seq);
    }

    /// How a message whose condition holds is released: [`Release::AfterSkip`] when one of its
    /// causal predecessors (own counts below `seq`, `deps` counts up to their value) was given up
    /// on and has not arrived, [`Release::Ready`] otherwise.
    fn ready_release(&self, own: u32, seq: u64, deps: &[(u32, u64)]) -> Release {
        let skipped_up_to = |k: u32, v: u64| {
            self.nodes[k as usize]
                .skipped
                .first()
                .is_some_and(|f| f <= v)
        };
        if skipped_up_to(own, seq - 1) || deps.iter().any(|&(k, v)| skipped_up_to(k, v)) {
            Release::AfterSkip
        } else {
            Release::Ready
        }
    }

    /// The first unmet condition of a message under early release, as (node, count needed).
    fn first_unmet(&mut self, id: usize) -> Option<(u32, u64)> {
        let w = self.waiting.get_mut(id)?;
        if self.nodes[w.node as usize].delivered < w.seq - 1 {
            return Some((w.node, w.seq - 1));
        }
        while let Some(&(k, v)) = w.deps.get(w.cursor) {
            if self.nodes[k as usize].delivered < v {
                return Some((k, v));
            }
            w.cursor += 1;
        }
        None
    }

    fn begin_force(&mut self, id: usize) {
        self.unindex(id);
        if let Some(w) = self.waiting.get_mut(id) {
            w.forcing = true;
        }
    }

    /// Releases `root` early with `release`, after the waiting messages it depends on (released
    /// the same way), giving up on the absent ones.
    fn force(&mut self, root: usize, release: Release, out: &mut Vec<Delivered<T>>) {
        self.begin_force(root);
        let mut stack: Vec<(usize, Vec<Gap>)> = vec![(root, Vec::new())];
        while let Some((top, _)) = stack.last() {
            let top = *top;
            if self.waiting.get(top).is_none() {
                stack.pop();
                continue;
            }
            let Some((k, need)) = self.first_unmet(top) else {
                if let Some((id, gaps)) = stack.pop() {
                    self.deliver(id, release, gaps, out);
                    self.run(out);
                }
                continue;
            };
            let st = &self.nodes[k as usize];
            let next = st.delivered.saturating_add(1); // delivered < need, so no saturation
            let first = st.pending.first_key_value().map(|(&s, &id)| (s, id));
            match first {
                Some((s, dep)) if s <= need => {
                    let dep_forcing = self.waiting.get(dep).map_or(true, |w| w.forcing);
                    if dep_forcing {
                        // Inconsistent vectors (a dependency cycle): release the top as it is.
                        if let Some((id, gaps)) = stack.pop() {
                            self.deliver(id, release, gaps, out);
                            self.run(out);
                        }
                        continue;
                    }
                    // A present dependency goes first, itself released early (its own
                    // missing predecessors are reported on it).
                    self.begin_force(dep);
                    stack.push((dep, Vec::new()));
                    continue;
                }
                _ => {}
            }
            let st = &mut self.nodes[k as usize];
            let name = st.name.clone();
            st.skipped.insert_range(next, need);
            if let Some((_, gaps)) = stack.last_mut() {
                gaps.push(Gap {
                    node: name,
                    first: next,
                    last: need,
                });
            }
            self.advance(k, need);
            self.run(out);
        }
    }
}

fn delivered<T>(node: NodeId, seq: u64, release: Release, item: T) -> Delivered<T> {
    Delivered {
        node,
        seq,
        release,
        item,
        missing: Vec::new(),
        silent: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: i64 = 1_000;

    fn vt(pairs: &[(&str, u64)]) -> VectorTimestamp {
        VectorTimestamp::from_entries(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    fn buf(capacity: usize) -> CausalBuffer<&'static str> {
        CausalBuffer::new(DeliveryConfig::new(capacity, WAIT))
    }

    fn offer(
        b: &mut CausalBuffer<&'static str>,
        node: &str,
        pairs: &[(&str, u64)],
        item: &'static str,
        now: i64,
    ) -> (Offer<&'static str>, Vec<Delivered<&'static str>>) {
        let mut out = Vec::new();
        let r = b.offer(NodeId::from(node), &vt(pairs), item, now, &mut out);
        (r, out)
    }

    fn items(out: &[Delivered<&'static str>]) -> Vec<&'static str> {
        out.iter().map(|d| d.item).collect()
    }

    #[test]
    fn in_order_messages_are_delivered_at_once() {
        let mut b = buf(10);
        let (r, out) = offer(&mut b, "A", &[("A", 1)], "a1", 0);
        assert_eq!(r, Offer::Accepted);
        assert_eq!(items(&out), ["a1"]);
        assert_eq!(out[0].release, Release::Ready);
        assert_eq!((&*out[0].node, out[0].seq), ("A", 1));
        let (_, out) = offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
        assert_eq!(items(&out), ["b1"]);
        assert!(b.is_empty());
        assert_eq!(b.delivered(), &vt(&[("A", 1), ("B", 1)]));
    }

    #[test]
    fn slides_example_waits_for_p2s_third_message() {
        // P3 has delivered VC=[0,2,2]; m from P1 with ts(m)=[1,3,0] must wait for P2's 3rd.
        let mut b = buf(10);
        offer(&mut b, "P2", &[("P2", 1)], "p2-1", 0);
        offer(&mut b, "P2", &[("P2", 2)], "p2-2", 0);
        offer(&mut b, "P3", &[("P3", 1)], "p3-1", 0);
        offer(&mut b, "P3", &[("P3", 2)], "p3-2", 0);
        assert_eq!(b.delivered(), &vt(&[("P2", 2), ("P3", 2)]));
        let (_, out) = offer(&mut b, "P1", &[("P1", 1), ("P2", 3)], "m", 0);
        assert!(out.is_empty(), "m must wait");
        assert_eq!(b.len(), 1);
        assert_eq!(b.iter_waiting().copied().collect::<Vec<_>>(), ["m"]);
        let (_, out) = offer(&mut b, "P2", &[("P2", 3)], "p2-3", 0);
        assert_eq!(items(&out), ["p2-3", "m"]);
        assert!(out.iter().all(|d| d.release == Release::Ready));
        assert!(b.is_empty());
    }

    #[test]
    fn own_predecessor_is_awaited_fifo() {
        let mut b = buf(10);
        let (_, out) = offer(&mut b, "A", &[("A", 3)], "a3", 0);
        assert!(out.is_empty());
        let (_, out) = offer(&mut b, "A", &[("A", 2)], "a2", 0);
        assert!(out.is_empty());
        let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", 0);
        assert_eq!(items(&out), ["a1", "a2", "a3"]);
    }

    #[test]
    fn cascade_across_nodes() {
        // c1 needs b1 which needs a1; they arrive in reverse.
        let mut b = buf(10);
        offer(&mut b, "C", &[("A", 1), ("B", 1), ("C", 1)], "c1", 0);
        offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
        assert_eq!(b.len(), 2);
        let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", 0);
        assert_eq!(items(&out), ["a1", "b1", "c1"]);
    }

    #[test]
    fn message_waiting_on_two_nodes_is_woken_by_each_in_turn() {
        let mut b = buf(10);
        offer(&mut b, "C", &[("A", 2), ("B", 1), ("C", 1)], "c1", 0);
        let (_, out) = offer(&mut b, "B", &[("B", 1)], "b1", 0);
        assert_eq!(items(&out), ["b1"]);
        let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", 0);
        assert_eq!(items(&out), ["a1"]);
        let (_, out) = offer(&mut b, "A", &[("A", 2)], "a2", 0);
        assert_eq!(items(&out), ["a2", "c1"]);
    }

    #[test]
    fn duplicates_are_handed_back_whether_waiting_or_delivered() {
        let mut b = buf(10);
        offer(&mut b, "A", &[("A", 1)], "a1", 0);
        let (r, out) = offer(&mut b, "A", &[("A", 1)], "a1-again", 0);
        assert_eq!(r, Offer::Duplicate("a1-again"));
        assert!(out.is_empty());
        offer(&mut b, "A", &[("A", 3)], "a3", 0);
        let (r, _) = offer(&mut b, "A", &[("A", 3)], "a3-again", 0);
        assert_eq!(r, Offer::Duplicate("a3-again"));
        let (_, out) = offer(&mut b, "A", &[("A", 2)], "a2", 0);
        assert_eq!(items(&out), ["a2", "a3"]);
    }

    #[test]
    fn timeout_releases_and_reports_the_missing_predecessor() {
        let mut b = buf(10);
        let (_, out) = offer(&mut b, "B", &[("A", 2), ("B", 1)], "b1", 100);
        assert!(out.is_empty());
        assert_eq!(b.next_deadline(), Some(100 + WAIT));
        let mut out = Vec::new();
        b.expire(100 + WAIT - 1, &mut out);
        assert!(out.is_empty());
        b.expire(100 + WAIT, &mut out);
        assert_eq!(items(&out), ["b1"]);
        assert_eq!(out[0].release, Release::Timeout);
        assert_eq!(
            out[0].missing,
            vec![Gap {
                node: "A".into(),
                first: 1,
                last: 2
            }]
        );
        assert_eq!(b.next_deadline(), None);
        assert_eq!(b.delivered(), &vt(&[("A", 2), ("B", 1)]));
        // The given-up messages arrive later: delivered at once as Late, not duplicates.
        let (r, out) = offer(&mut b, "A", &[("A", 2)], "a2", 5_000);
        assert_eq!(r, Offer::Accepted);
        assert_eq!(out[0].release, Release::Late);
        let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", 5_000);
        assert_eq!(out[0].release, Release::Late);
        // ...but a second copy of a late one is a duplicate.
        let (r, _) = offer(&mut b, "A", &[("A", 1)], "a1-again", 5_000);
        assert!(r.is_duplicate());
        // And the stream goes on normally.
        let (_, out) = offer(&mut b, "A", &[("A", 3)], "a3", 5_000);
        assert_eq!(out[0].release, Release::Ready);
    }

    #[test]
    fn offer_applies_due_timeouts_first() {
        let mut b = buf(10);
        offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
        let (_, out) = offer(&mut b, "C", &[("C", 1)], "c1", WAIT);
        assert_eq!(items(&out), ["b1", "c1"]);
        assert_eq!(out[0].release, Release::Timeout);
    }

    #[test]
    fn early_release_forces_present_predecessors_first() {
        // b2 waits for b1 (present) which waits for a1 (absent): b1 comes first, with the gap.
        let mut b = buf(10);
        offer(&mut b, "B", &[("A", 1), ("B", 2)], "b2", 10);
        offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 20);
        let mut out = Vec::new();
        b.expire(10 + WAIT, &mut out);
        assert_eq!(items(&out), ["b1", "b2"]);
        assert!(out.iter().all(|d| d.release == Release::Timeout));
        assert_eq!(
            out[0].missing,
            vec![Gap {
                node: "A".into(),
                first: 1,
                last: 1
            }]
        );
        assert!(out[1].missing.is_empty());
    }

    #[test]
    fn early_release_wakes_others_waiting_on_the_skipped_messages() {
        let mut b = buf(10);
        offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
        offer(&mut b, "C", &[("A", 1), ("C", 1)], "c1", 5);
        let mut out = Vec::new();
        b.expire(WAIT, &mut out);
        assert_eq!(items(&out), ["c1", "b1"]);
        // c1 was woken by giving up a1 (concurrent with b1), b1 was the forced one. a1 is in
        // c1's causal past and was not delivered: c1 comes out after a skip, not ready.
        let b1 = &out[1];
        assert_eq!(b1.release, Release::Timeout);
        assert_eq!(b1.missing.len(), 1);
        assert_eq!(out[0].release, Release::AfterSkip);
        assert!(out[0].missing.is_empty());
        assert!(b.is_empty());
        // So is a later arrival that depends on a1, until a1 comes (late).
        let (_, out) = offer(&mut b, "C", &[("A", 1), ("C", 2)], "c2", WAIT);
        assert_eq!(out[0].release, Release::AfterSkip);
        let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", WAIT);
        assert_eq!(out[0].release, Release::Late);
        let (_, out) = offer(&mut b, "C", &[("A", 1), ("C", 3)], "c3", WAIT);
        assert_eq!(out[0].release, Release::Ready);
        // A message that does not depend on what was given up is ready.
        let (_, out) = offer(&mut b, "D", &[("D", 1)], "d1", WAIT);
        assert_eq!(out[0].release, Release::Ready);
    }

    #[test]
    fn skipping_stops_at_a_present_message() {
        // b1 needs A up to 3; a2 is present (waiting for a1). Give up a1 only, then a2, then a3.
        let mut b = buf(10);
        offer(&mut b, "B", &[("A", 3), ("B", 1)], "b1", 0);
        offer(&mut b, "A", &[("A", 2)], "a2", 1);
        let mut out = Vec::new();
        b.expire(WAIT, &mut out);
        assert_eq!(items(&out), ["a2", "b1"]);
        assert_eq!(
            out[0].missing,
            vec![Gap {
                node: "A".into(),
                first: 1,
                last: 1
            }]
        );
        assert_eq!(
            out[1].missing,
            vec![Gap {
                node: "A".into(),
                first: 3,
                last: 3
            }]
        );
    }

    #[test]
    fn buffer_full_releases_the_oldest() {
        let mut b = buf(2);
        offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
        offer(&mut b, "C", &[("A", 2), ("C", 1)], "c1", 0);
        let (_, out) = offer(&mut b, "D", &[("A", 3), ("D", 1)], "d1", 0);
        assert_eq!(items(&out), ["b1"]);
        assert_eq!(out[0].release, Release::BufferFull);
        assert_eq!(
            out[0].missing,
            vec![Gap {
                node: "A".into(),
                first: 1,
                last: 1
            }]
        );
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn zero_capacity_releases_every_waiting_message_at_once() {
        let mut b = buf(0);
        let (_, out) = offer(&mut b, "A", &[("A", 2)], "a2", 0);
        assert_eq!(out[0].release, Release::BufferFull);
        assert!(b.is_empty());
        let (_, out) = offer(&mut b, "A", &[("A", 3)], "a3", 0);
        assert_eq!(out[0].release, Release::AfterSkip, "a1 was given up");
    }

    #[test]
    fn drain_releases_in_causal_order() {
        let mut b = buf(10);
        offer(&mut b, "C", &[("B", 1), ("C", 1)], "c1", 0);
        offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 1);
        offer(&mut b, "D", &[("D", 2)], "d2", 2);
        let mut out = Vec::new();
        b.drain(Release::Timeout, &mut out);
        assert_eq!(items(&out), ["b1", "c1", "d2"]);
        assert!(b.is_empty());
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn malformed_vectors_never_panic_and_are_not_lost() {
        let mut b = buf(4);
        // Vector without its own node.
        let (r, out) = offer(&mut b, "A", &[("B", 1)], "no-own", 0);
        assert_eq!(r, Offer::Accepted);
        assert_eq!(out[0].release, Release::Late);
        // Empty vector.
        let (_, out) = offer(&mut b, "A", &[], "empty", 0);
        assert_eq!(out[0].release, Release::Late);
        // Huge counters.
        let (_, out) = offer(&mut b, "M", &[("M", u64::MAX), ("N", u64::MAX)], "max", 0);
        assert!(out.is_empty());
        let mut out = Vec::new();
        b.drain(Release::Timeout, &mut out);
        assert_eq!(items(&out), ["max"]);
        assert_eq!(b.delivered().get("M"), u64::MAX);
        let (r, _) = offer(&mut b, "M", &[("M", u64::MAX)], "max-again", 0);
        assert!(r.is_duplicate());
        // A dependency cycle: x (A:1) needs B:1, y (B:1) needs A:1.
        offer(&mut b, "A", &[("A", 1), ("B", 1)], "x", 0);
        offer(&mut b, "B", &[("A", 1), ("B", 1)], "y", 0);
        let mut out = Vec::new();
        b.drain(Release::Timeout, &mut out);
        let mut got = items(&out);
        got.sort();
        assert_eq!(got, ["x", "y"]);
        assert!(b.is_empty());
    }

    #[test]
    fn clock_stepping_back_does_not_hold_messages_forever() {
        let mut b = buf(10);
        offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 1_000_000);
        offer(&mut b, "C", &[("A", 1), ("C", 1)], "c1", 0);
        let mut out = Vec::new();
        b.expire(1_000_000 + WAIT, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn restored_checkpoint_releases_at_once_and_keeps_given_up_counts_late() {
        let mut b = buf(10);
        offer(&mut b, "A", &[("A", 1)], "a1", 0);
        offer(&mut b, "B", &[("A", 3), ("B", 1)], "b1", 0);
        let mut out = Vec::new();
        b.expire(WAIT, &mut out);
        assert_eq!(items(&out), ["b1"]);
        let cp = b.checkpoint();
        assert_eq!(cp[0].skipped, vec![(2, 3)]);

        let mut r = buf(10);
        let mut out = Vec::new();
        r.restore(&cp, &mut out);
        assert!(out.is_empty());
        assert_eq!(r.delivered(), b.delivered());
        assert_eq!(r.checkpoint(), cp);
        // A successor of everything delivered before: at once, but after a skip (a2, a3).
        let (_, out) = offer(&mut r, "B", &[("A", 3), ("B", 2)], "b2", 0);
        assert_eq!(out[0].release, Release::AfterSkip);
        // A given-up message arriving after the restart: late, not a duplicate.
        let (res, out) = offer(&mut r, "A", &[("A", 2)], "a2", 0);
        assert_eq!(res, Offer::Accepted);
        assert_eq!(out[0].release, Release::Late);
        // A delivered one read again: a duplicate.
        let (res, _) = offer(&mut r, "A", &[("A", 1)], "a1", 0);
        assert!(res.is_duplicate());
    }

    #[test]
    fn assumed_predecessors_release_waiting_messages_as_ready() {
        let mut b = buf(10);
        offer(&mut b, "B", &[("A", 7), ("B", 1)], "b1", 0);
        assert_eq!(b.awaited(), vec![(NodeId::from("A"), 7)]);
        let mut out = Vec::new();
        b.assume_delivered(&NodeId::from("A"), 7, &mut out);
        assert_eq!(items(&out), ["b1"]);
        assert_eq!(out[0].release, Release::Ready);
        assert!(out[0].missing.is_empty());
        assert!(b.awaited().is_empty());
    }

    #[test]
    fn nodes_first_seen_out_of_name_order_are_tracked_separately() {
        let mut b = buf(10);
        offer(&mut b, "z", &[("z", 1)], "z1", 0);
        offer(&mut b, "a", &[("a", 1)], "a1", 0);
        offer(&mut b, "m", &[("a", 1), ("m", 1), ("z", 1)], "m1", 0);
        assert_eq!(b.delivered(), &vt(&[("a", 1), ("m", 1), ("z", 1)]));
    }
}
