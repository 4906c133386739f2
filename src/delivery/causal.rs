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
use super::{CausalNode, Delivered, DeliveryConfig, Gap, Offer, Release, SenderNumber};
use crate::clock::VectorTimestamp;
use crate::NodeId;
use std::collections::BTreeMap;
use std::sync::Arc;

/// How many disjoint given-up ranges are remembered per node. Beyond that the oldest are
/// forgotten, and a message from them that arrives even later is reported as a duplicate.
pub const MAX_SKIPPED_RANGES: usize = 1024;

const NIL: usize = usize::MAX;

/// One sender as the causal buffer tracks it (stable index into `CausalBuffer::nodes`).
struct CausalSource {
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
    /// The sender's own vector entry.
    count: u64,
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
/// let delivered: Vec<_> = out.iter().map(|d| (&*d.node, d.number.get(), d.item, d.release)).collect();
/// assert_eq!(delivered, [("a", 1, "hello", Release::Ready), ("b", 1, "re: hello", Release::Ready)]);
/// assert!(buffer.is_empty());
/// ```
pub struct CausalBuffer<T> {
    cfg: DeliveryConfig,
    /// Node names sorted, with their stable index.
    names: Vec<(NodeId, u32)>,
    nodes: Vec<CausalSource>,
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
        let (own, own_count) = self.stage(&node, Some(vt), 0);
        self.place(own, own_count, item, |_| {}, now_ns, out)
    }

    /// [`offer`](Self::offer) for a message that carries its own stamp: `stamp` reads it from
    /// the message (before the buffer takes the message, so the stamp is not copied). A message
    /// without a vector (`stamp` gives `None`) is placed by its own count alone, as if stamped
    /// `{node: own_count}`: it waits for its node's earlier messages and nothing else. `keep` is
    /// applied to the message if, and only if, the buffer keeps it to wait (a message delivered
    /// at once or refused as a duplicate is handed back as it came).
    #[allow(clippy::too_many_arguments)]
    pub fn offer_with<F, K>(
        &mut self,
        node: NodeId,
        item: T,
        stamp: F,
        keep: K,
        own_count: u64,
        now_ns: i64,
        out: &mut Vec<Delivered<T>>,
    ) -> Offer<T>
    where
        F: FnOnce(&T) -> Option<&VectorTimestamp>,
        K: FnOnce(&mut T),
    {
        self.expire(now_ns, out);
        let (own, own_count) = self.stage(&node, stamp(&item), own_count);
        self.place(own, own_count, item, keep, now_ns, out)
    }

    /// Interns the sender and the entries of its stamp (`None`: `{node: own_count}`): returns
    /// the sender's index and own count, and leaves the other entries in `scratch` for
    /// [`place`](Self::place).
    fn stage(&mut self, node: &NodeId, vt: Option<&VectorTimestamp>, own_count: u64) -> (u32, u64) {
        let own = self.intern_one(node);
        self.scratch.clear();
        let Some(vt) = vt else {
            return (own, own_count);
        };
        let mut own_count = 0;
        let mut hint = 0;
        for (k, v) in vt.iter() {
            let (idx, at) = self.intern_from(k, hint);
            hint = at + 1;
            if idx == own {
                own_count = v;
            } else {
                self.scratch.push((idx, v));
            }
        }
        (own, own_count)
    }

    /// Places a message whose stamp [`stage`](Self::stage) has just read; `keep` is applied to
    /// it if it is stored to wait.
    fn place(
        &mut self,
        own: u32,
        own_count: u64,
        mut item: T,
        keep: impl FnOnce(&mut T),
        now_ns: i64,
        out: &mut Vec<Delivered<T>>,
    ) -> Offer<T> {
        let st = &mut self.nodes[own as usize];
        if own_count == 0 {
            // Not counted in its own vector: there is no place for it in the causal order.
            out.push(delivered(st.name.clone(), 0, Release::Late, item));
            return Offer::Accepted;
        }
        if own_count <= st.delivered {
            if st.skipped.remove(own_count) {
                out.push(delivered(st.name.clone(), own_count, Release::Late, item));
                return Offer::Accepted;
            }
            return Offer::Duplicate(item);
        }
        if st.pending.contains_key(&own_count) {
            return Offer::Duplicate(item);
        }
        let own_next = own_count == st.delivered + 1; // delivered < own_count: no overflow
        let nodes = &self.nodes;
        if own_next
            && self
                .scratch
                .iter()
                .all(|&(k, v)| nodes[k as usize].delivered >= v)
        {
            let release = self.ready_release(own, own_count, &self.scratch);
            out.push(delivered(
                self.nodes[own as usize].name.clone(),
                own_count,
                release,
                item,
            ));
            self.advance(own, own_count);
            self.run(out);
            return Offer::Accepted;
        }
        keep(&mut item);
        let mut deps = self.pool.pop().unwrap_or_default();
        deps.extend_from_slice(&self.scratch);
        let w = Waiting {
            node: own,
            count: own_count,
            deps,
            cursor: 0,
            forcing: false,
            indexed: None,
            prev: NIL,
            next: NIL,
            item,
        };
        let id = self.waiting.push(w, self.cfg.deadline(now_ns));
        self.nodes[own as usize].pending.insert(own_count, id);
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
                self.nodes.push(CausalSource {
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
        if self.nodes[w.node as usize].delivered < w.count - 1 {
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
            Release::Ready => self.ready_release(w.node, w.count, &w.deps),
            r => r,
        };
        let st = &mut self.nodes[w.node as usize];
        if st.pending.get(&w.count) == Some(&id) {
            st.pending.remove(&w.count);
        }
        out.push(Delivered {
            node: st.name.clone(),
            number: SenderNumber::VectorEntry(w.count),
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
        self.advance(w.node, w.count);
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
        if self.nodes[w.node as usize].delivered < w.count - 1 {
            return Some((w.node, w.count - 1));
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

fn delivered<T>(node: NodeId, count: u64, release: Release, item: T) -> Delivered<T> {
    Delivered {
        node,
        number: SenderNumber::VectorEntry(count),
        release,
        item,
        missing: Vec::new(),
        silent: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
