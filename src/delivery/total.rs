//! Total-order delivery buffer: Lamport time, ties broken by node id.
//!
//! Messages are delivered in increasing `(lamport_time, node_id)` order (then `seq`, which only
//! matters for malformed input). The smallest held message `m = (t, n)` is delivered as soon as
//! no member can still send anything ordered before it. A node's Lamport times strictly increase
//! and its messages arrive in send order (one Kafka partition per node), so everything member `k`
//! can still send has a time of at least `max_time[k] + 1` (at least 0 before its first message):
//! `m` is safe once `(max_time[k] + 1, k) > (t, n)` for every member `k`, i.e. `max_time[k] >= t`,
//! or `max_time[k] == t - 1` and `k > n`. For `n` itself `m` is enough. This is the earliest
//! point: a member below that bound may still send a message with time `max_time[k] + 1`, which
//! would precede `m`. Each member is represented by that lower bound on its next time; the buffer
//! keeps those in an ordered set so the check is O(log members) and a delivery is O(log held).
//!
//! # Members
//!
//! * Configured (`Some(list)`, non-empty): exactly those nodes are waited for, from the start.
//!   Every replica that reads the same partitions with the same list delivers the same sequence
//!   (as long as nothing is released early). Messages from a non-member are ordered too, but
//!   nobody waits for it.
//! * Dynamic (`None` or an empty list): the nodes seen so far. A node is only waited for after
//!   its first message arrived, so messages it sends later may already have been overtaken; they
//!   are then delivered as [`Release::Late`]. Replicas that see nodes join at different points can
//!   therefore disagree on the order; configure the member list when they must agree.
//!
//! # Early release
//!
//! A silent member blocks no longer than the maximum wait: when the oldest held message has
//! waited that long it is released with [`Release::Timeout`], together with every held message
//! ordered before it (in order), each naming the members it stopped waiting for in
//! [`Delivered::silent`]. When the buffer is over capacity the smallest held message is released
//! with [`Release::BufferFull`]. A message that arrives ordered before the last delivered one is
//! delivered at once as [`Release::Late`]. Early releases are the one way two replicas can
//! disagree: they depend on arrival timing.
//!
//! Duplicates are detected by (node, seq), in bounded memory (ranges of seen seqs per node).

use super::arrivals::Arrivals;
use super::ranges::RangeSet;
use super::{Delivered, DeliveryConfig, Offer, Release, SenderNumber, TotalNode, TotalState};
use crate::clock::VectorTimestamp;
use crate::NodeId;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

/// How many disjoint ranges of seen seqs are remembered per node (per-node FIFO keeps this at
/// one in normal operation); beyond that the lowest are forgotten.
pub const MAX_SEEN_RANGES: usize = 1024;

/// The order key of a message: (Lamport time, node, seq).
type Key = (u64, NodeId, u64);

/// What the total order knows of one sender (a member, or a node it orders without awaiting).
struct TotalSender {
    /// Largest Lamport time received from this node (None: nothing yet).
    max_time: Option<u64>,
    /// Largest Lamport time of this node's messages delivered (None: none yet).
    delivered_time: Option<u64>,
    /// The order waits for this node's messages.
    member: bool,
    /// Seqs received (held or delivered).
    seen: RangeSet,
}

/// A total-order delivery buffer; see the [module documentation](self).
///
/// # Example
///
/// Two members, `a` and `b`. A message is delivered once neither can still send anything ordered
/// before it, in `(Lamport time, node id)` order whatever the arrival order:
///
/// ```
/// use kafka_timesync::delivery::{DeliveryConfig, TotalOrderBuffer};
///
/// let members = Some(vec!["a".into(), "b".into()]);
/// let mut buffer = TotalOrderBuffer::new(DeliveryConfig::new(1_000, 5_000_000_000), members);
/// let mut out = Vec::new();
/// // (node, seq, Lamport time): b's message at time 2 arrives first.
/// buffer.offer("b".into(), 1, 2, "b1@2", 0, &mut out);
/// assert!(out.is_empty(), "a may still send something at time 1");
/// // a1@1 is delivered at once: b's next message has a time of at least 3.
/// buffer.offer("a".into(), 1, 1, "a1@1", 0, &mut out);
/// assert_eq!(out.len(), 1);
/// // a's next time is now at least 4: b1@2 is safe, and so is a2@3 (a tie at 3 with b's next
/// // message would be ordered a before b).
/// buffer.offer("a".into(), 2, 3, "a2@3", 0, &mut out);
/// let order: Vec<&str> = out.iter().map(|d| d.item).collect();
/// assert_eq!(order, ["a1@1", "b1@2", "a2@3"]);
/// assert!(buffer.is_empty());
/// ```
pub struct TotalOrderBuffer<T> {
    cfg: DeliveryConfig,
    /// The member list was configured (not learned from the stream).
    fixed: bool,
    nodes: HashMap<NodeId, TotalSender>,
    /// For each member: (lowest time it can still send, node), see [`next_time`]. The first
    /// element bounds what may go.
    frontier: BTreeSet<(u128, NodeId)>,
    /// Held messages by order key, with their id in `waiting`.
    heap: BinaryHeap<Reverse<(Key, usize)>>,
    waiting: Arrivals<T>,
    last: Option<Key>,
    delivered_vt: VectorTimestamp,
}

impl<T> TotalOrderBuffer<T> {
    /// An empty buffer. `members`: the nodes to wait for (`None` or empty: the nodes seen so far).
    pub fn new(cfg: DeliveryConfig, members: Option<Vec<NodeId>>) -> Self {
        let members = members.unwrap_or_default();
        let mut b = Self {
            cfg,
            fixed: !members.is_empty(),
            nodes: HashMap::new(),
            frontier: BTreeSet::new(),
            heap: BinaryHeap::new(),
            waiting: Arrivals::new(),
            last: None,
            delivered_vt: VectorTimestamp::new(),
        };
        for m in members {
            if !b.nodes.contains_key(&*m) {
                b.frontier.insert((next_time(None), m.clone()));
                b.nodes.insert(m, TotalSender::new(true));
            }
        }
        b
    }

    /// The configuration in force.
    pub fn config(&self) -> DeliveryConfig {
        self.cfg
    }

    /// True when the member list was configured (not learned from the stream).
    pub fn has_fixed_members(&self) -> bool {
        self.fixed
    }

    /// Offers message `seq` of `node` with Lamport time `lamport_time`. Whatever became
    /// deliverable (first any whose wait expired at `now_ns`) is appended to `out` in order.
    pub fn offer(
        &mut self,
        node: NodeId,
        seq: u64,
        lamport_time: u64,
        item: T,
        now_ns: i64,
        out: &mut Vec<Delivered<T>>,
    ) -> Offer<T> {
        self.expire(now_ns, out);
        let fixed = self.fixed;
        let st = self
            .nodes
            .entry(node.clone())
            .or_insert_with(|| TotalSender::new(!fixed));
        if !st.seen.insert(seq) {
            return Offer::Duplicate(item);
        }
        if st.member {
            let old = st.max_time;
            if old.map_or(true, |o| lamport_time > o) {
                st.max_time = Some(lamport_time);
                // Re-key this member's frontier entry.
                self.frontier.remove(&(next_time(old), node.clone()));
                self.frontier
                    .insert((next_time(Some(lamport_time)), node.clone()));
            }
        } else {
            st.max_time = Some(st.max_time.map_or(lamport_time, |o| o.max(lamport_time)));
        }
        let key: Key = (lamport_time, node, seq);
        if self.last.as_ref().is_some_and(|l| key <= *l) {
            self.emit(key, Release::Late, item, Vec::new(), out);
            return Offer::Accepted;
        }
        let id = self.waiting.push(item, self.cfg.deadline(now_ns));
        self.heap.push(Reverse((key, id)));
        self.deliver_ready(out);
        while self.waiting.len() > self.cfg.capacity {
            if !self.pop(Release::BufferFull, out) {
                break;
            }
        }
        Offer::Accepted
    }

    /// Releases, with [`Release::Timeout`], every held message that has waited `max_wait_ns` by
    /// `now_ns`, together with the messages ordered before it.
    pub fn expire(&mut self, now_ns: i64, out: &mut Vec<Delivered<T>>) {
        while let Some((oldest, deadline)) = self.waiting.oldest() {
            if deadline > now_ns {
                break;
            }
            while self.waiting.get(oldest).is_some() {
                if !self.pop(Release::Timeout, out) {
                    break;
                }
            }
            self.deliver_ready(out);
        }
    }

    /// When the next timeout falls due, if anything is held.
    pub fn next_deadline(&self) -> Option<i64> {
        self.waiting.oldest().map(|(_, d)| d)
    }

    /// Releases everything held, in order, with reason `release`.
    pub fn drain(&mut self, release: Release, out: &mut Vec<Delivered<T>>) {
        while self.pop(release, out) {}
    }

    /// Number of held messages.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.waiting.len() == 0
    }

    /// Per node, the highest seq delivered.
    pub fn delivered(&self) -> &VectorTimestamp {
        &self.delivered_vt
    }

    /// The (Lamport time, node, seq) of the last message delivered in order (not counting
    /// `Late` ones).
    pub fn last_delivered(&self) -> Option<(u64, &NodeId, u64)> {
        self.last.as_ref().map(|(t, n, s)| (*t, n, *s))
    }

    /// The members currently waited for, by name.
    pub fn members(&self) -> impl Iterator<Item = &NodeId> + '_ {
        let mut v: Vec<&NodeId> = self
            .nodes
            .iter()
            .filter(|(_, s)| s.member)
            .map(|(n, _)| n)
            .collect();
        v.sort();
        v.into_iter()
    }

    /// The held payloads, oldest arrival first.
    pub fn iter_waiting(&self) -> impl Iterator<Item = &T> + '_ {
        self.waiting.iter()
    }

    /// The state a restarted buffer needs (see [`TotalState`]): the last key delivered, and per
    /// node the highest seq and the largest Lamport time delivered; nodes sorted by id.
    pub fn checkpoint(&self) -> TotalState {
        let mut nodes: Vec<TotalNode> = self
            .nodes
            .iter()
            .map(|(n, st)| TotalNode {
                node: n.clone(),
                delivered_seq: self.delivered_vt.get(n),
                max_time: st.delivered_time,
            })
            .collect();
        nodes.sort_by(|a, b| a.node.as_bytes().cmp(b.node.as_bytes()));
        TotalState {
            last: self.last.clone(),
            nodes,
        }
    }

    /// Restores a [`checkpoint`](Self::checkpoint) (call it before offering anything): the order
    /// continues after its last key, each node's seqs up to its delivered one count as received
    /// (offered again: [`Offer::Duplicate`]), and each member's largest delivered time bounds
    /// what it can still send. Only delivered times are kept: the messages held at the checkpoint
    /// are read again after a restart and may come after another member's, so a bound taken from
    /// them would let those others overtake them.
    /// Nodes that are not configured members stay non-members when the list is fixed.
    pub fn restore(&mut self, state: &TotalState) {
        if state.last > self.last {
            self.last = state.last.clone();
        }
        let fixed = self.fixed;
        for n in &state.nodes {
            let st = self
                .nodes
                .entry(n.node.clone())
                .or_insert_with(|| TotalSender::new(!fixed));
            if n.delivered_seq > 0 {
                st.seen.insert_range(1, n.delivered_seq);
            }
            let old = st.max_time;
            let max_time = old.max(n.max_time);
            st.max_time = max_time;
            st.delivered_time = st.delivered_time.max(n.max_time);
            if st.member {
                self.frontier.remove(&(next_time(old), n.node.clone()));
                self.frontier.insert((next_time(max_time), n.node.clone()));
            }
            if n.delivered_seq > self.delivered_vt.get(&n.node) {
                self.delivered_vt.set(&n.node, n.delivered_seq);
            }
        }
    }

    /// True when no member can still send anything ordered before `key`.
    fn is_ready(&self, key: &Key) -> bool {
        match self.frontier.first() {
            None => true,
            Some((t, n)) => (*t, n) > (u128::from(key.0), &key.1),
        }
    }

    fn deliver_ready(&mut self, out: &mut Vec<Delivered<T>>) {
        while let Some(Reverse((key, _))) = self.heap.peek() {
            if !self.is_ready(key) {
                break;
            }
            self.pop(Release::Ready, out);
        }
    }

    /// Releases the smallest held message with `release` (naming the silent members unless it
    /// is `Ready`); false when nothing is held.
    fn pop(&mut self, release: Release, out: &mut Vec<Delivered<T>>) -> bool {
        let Some(Reverse((key, id))) = self.heap.pop() else {
            return false;
        };
        let silent = if release == Release::Ready {
            Vec::new()
        } else {
            self.frontier
                .iter()
                .take_while(|(t, n)| (*t, n) < (u128::from(key.0), &key.1))
                .map(|(_, n)| n.clone())
                .collect()
        };
        let Some(item) = self.waiting.remove(id) else {
            return true;
        };
        self.last = Some(key.clone());
        self.emit(key, release, item, silent, out);
        true
    }

    fn emit(
        &mut self,
        (time, node, seq): Key,
        release: Release,
        item: T,
        silent: Vec<NodeId>,
        out: &mut Vec<Delivered<T>>,
    ) {
        if seq > self.delivered_vt.get(&node) {
            self.delivered_vt.set(&node, seq);
        }
        if let Some(st) = self.nodes.get_mut(&node) {
            st.delivered_time = st.delivered_time.max(Some(time));
        }
        out.push(Delivered {
            node,
            number: SenderNumber::Seq(seq),
            release,
            item,
            missing: Vec::new(),
            silent,
        });
    }
}

/// The lowest Lamport time a member whose largest time received is `max_time` can still send:
/// its times strictly increase, and nothing is known before its first message.
fn next_time(max_time: Option<u64>) -> u128 {
    max_time.map_or(0, |t| u128::from(t) + 1)
}

impl TotalSender {
    fn new(member: bool) -> Self {
        Self {
            max_time: None,
            delivered_time: None,
            member,
            seen: RangeSet::new(MAX_SEEN_RANGES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: i64 = 1_000;

    type Buf = TotalOrderBuffer<&'static str>;

    fn buf(capacity: usize, members: Option<&[&str]>) -> Buf {
        let members = members.map(|m| m.iter().map(|n| NodeId::from(*n)).collect());
        TotalOrderBuffer::new(DeliveryConfig::new(capacity, WAIT), members)
    }

    fn offer(
        b: &mut Buf,
        node: &str,
        seq: u64,
        time: u64,
        item: &'static str,
        now: i64,
    ) -> (Offer<&'static str>, Vec<Delivered<&'static str>>) {
        let mut out = Vec::new();
        let r = b.offer(NodeId::from(node), seq, time, item, now, &mut out);
        (r, out)
    }

    fn items(out: &[Delivered<&'static str>]) -> Vec<&'static str> {
        out.iter().map(|d| d.item).collect()
    }

    #[test]
    fn waits_until_no_member_can_send_anything_before() {
        let mut b = buf(10, Some(&["A", "B", "C"]));
        let (_, out) = offer(&mut b, "A", 1, 1, "a1", 0);
        assert!(out.is_empty());
        let (_, out) = offer(&mut b, "B", 1, 3, "b1", 0);
        assert!(out.is_empty(), "C has not spoken yet");
        let (_, out) = offer(&mut b, "C", 1, 2, "c1", 0);
        // Next possible times A:2, B:4, C:3. a1 (1, A) can go; c1 (2, C) waits: A may still
        // send (2, A).
        assert_eq!(items(&out), ["a1"]);
        let (_, out) = offer(&mut b, "A", 2, 4, "a2", 0);
        // A:5, B:4, C:3. c1 goes, and so does b1 (3, B): whatever C sends next is at least
        // (3, C). a2 (4, A) waits: C may still send (3, C).
        assert_eq!(items(&out), ["c1", "b1"]);
        let (_, out) = offer(&mut b, "C", 2, 5, "c2", 0);
        // A:5, B:4, C:6: a2 goes; c2 (5, C) waits for B.
        assert_eq!(items(&out), ["a2"]);
        assert!(out.iter().all(|d| d.release == Release::Ready));
        assert_eq!(b.len(), 1);
        assert_eq!(
            b.last_delivered().map(|(t, n, s)| (t, &**n, s)),
            Some((4, "A", 2))
        );
    }

    #[test]
    fn a_restored_buffer_continues_the_same_sequence() {
        // One run: everything up to a2 delivered, c2 held.
        let mut b = buf(10, Some(&["A", "B", "C"]));
        for (n, s, t, i) in [
            ("A", 1, 1, "a1"),
            ("B", 1, 3, "b1"),
            ("C", 1, 2, "c1"),
            ("A", 2, 4, "a2"),
            ("C", 2, 5, "c2"),
        ] {
            offer(&mut b, n, s, t, i, 0);
        }
        assert_eq!(b.len(), 1);
        let cp = b.checkpoint();
        assert_eq!(cp.last, Some((4, "A".into(), 2)));
        // Restarted: the held message is read again, then the others speak.
        let mut r = buf(10, Some(&["A", "B", "C"]));
        r.restore(&cp);
        assert_eq!(r.checkpoint(), cp);
        let (_, out) = offer(&mut r, "C", 2, 5, "c2", 0);
        assert!(out.is_empty(), "B may still send (4, B)");
        for (n, s, t, i) in [("A", 2, 4, "a2"), ("B", 1, 3, "b1")] {
            let (res, _) = offer(&mut r, n, s, t, i, 0);
            assert!(res.is_duplicate(), "{i} delivered before the restart");
        }
        let (_, out) = offer(&mut r, "B", 2, 6, "b2", 0);
        assert!(out.is_empty(), "A may still send (5, A)");
        let (_, out) = offer(&mut r, "A", 3, 7, "a3", 0);
        assert_eq!(items(&out), ["c2", "b2"], "a3 (7, A) waits for C and B");
        assert!(out.iter().all(|d| d.release == Release::Ready));
        // Something ordered before the restored last key is late.
        let (_, out) = offer(&mut r, "C", 9, 0, "c-old", 0);
        assert_eq!(out[0].release, Release::Late);
    }

    #[test]
    fn after_a_restart_held_messages_read_again_are_not_overtaken() {
        let mut b = buf(10, Some(&["A", "B"]));
        offer(&mut b, "A", 1, 5, "a1", 0);
        let (_, out) = offer(&mut b, "B", 1, 1, "b1", 0);
        assert_eq!(items(&out), ["b1"]);
        assert_eq!(b.len(), 1, "a1 (5, A) waits for B");
        let cp = b.checkpoint();
        // Only delivered times are saved: a1 is held, so A's bound is not 5.
        assert_eq!(
            cp.nodes.iter().map(|n| n.max_time).collect::<Vec<_>>(),
            [None, Some(1)]
        );
        // Restarted: B's (5, B) is read before a1 is read again; it must not go first.
        let mut r = buf(10, Some(&["A", "B"]));
        r.restore(&cp);
        let (_, out) = offer(&mut r, "B", 2, 5, "b2", 0);
        assert!(
            out.is_empty(),
            "A may still send (5, A): its held a1 is read again"
        );
        let (_, out) = offer(&mut r, "A", 1, 5, "a1", 0);
        assert_eq!(items(&out), ["a1", "b2"]);
        assert!(out.iter().all(|d| d.release == Release::Ready));
    }

    #[test]
    fn ties_on_time_are_broken_by_node_id() {
        let mut b = buf(10, Some(&["A", "B"]));
        let (_, out) = offer(&mut b, "B", 1, 5, "b", 0);
        assert!(out.is_empty());
        // A's next time is at least 5 after (4, A), and (5, A) < (5, B): b must wait.
        let (_, out) = offer(&mut b, "A", 1, 4, "a", 0);
        assert_eq!(items(&out), ["a"]);
        let (_, out) = offer(&mut b, "A", 2, 5, "a2", 0);
        assert_eq!(items(&out), ["a2", "b"]);
        // The other way round: B's next time is at least 5 after (4, B), and (5, B) > (5, A),
        // so (5, A) need not wait for B to reach time 5.
        let mut b = buf(10, Some(&["A", "B"]));
        let (_, out) = offer(&mut b, "A", 1, 5, "a", 0);
        assert!(out.is_empty());
        let (_, out) = offer(&mut b, "B", 1, 4, "b", 0);
        assert_eq!(items(&out), ["b", "a"]);
    }

    #[test]
    fn bank_account_replicas_agree() {
        // The slides' two replicas: both must apply "+100" and "+1%" in the same order whatever
        // the arrival order.
        let run = |first: bool| {
            let mut b = buf(10, Some(&["P1", "P2"]));
            let mut out = Vec::new();
            let msgs = [
                ("P1", 1, 1, "+100"),
                ("P2", 1, 1, "+1%"),
                ("P1", 2, 3, "ack1"),
                ("P2", 2, 3, "ack2"),
            ];
            let order: Vec<usize> = if first {
                vec![0, 1, 2, 3]
            } else {
                vec![1, 0, 3, 2]
            };
            for i in order {
                let (n, s, t, m) = msgs[i];
                b.offer(NodeId::from(n), s, t, m, 0, &mut out);
            }
            b.drain(Release::Timeout, &mut out);
            items(&out)
        };
        assert_eq!(run(true), run(false));
        assert_eq!(run(true)[..2], ["+100", "+1%"]);
    }

    #[test]
    fn silent_member_blocks_only_until_the_timeout_and_is_named() {
        let mut b = buf(10, Some(&["A", "B", "C"]));
        offer(&mut b, "A", 1, 1, "a1", 100);
        offer(&mut b, "B", 1, 2, "b1", 200);
        offer(&mut b, "A", 2, 3, "a2", 300);
        assert_eq!(b.next_deadline(), Some(100 + WAIT));
        let mut out = Vec::new();
        b.expire(100 + WAIT - 1, &mut out);
        assert!(out.is_empty());
        b.expire(100 + WAIT, &mut out);
        assert_eq!(items(&out), ["a1"]);
        assert_eq!(out[0].release, Release::Timeout);
        assert_eq!(out[0].silent, vec![NodeId::from("C")]);
        // The next deadline is b1's.
        assert_eq!(b.next_deadline(), Some(200 + WAIT));
        let mut out = Vec::new();
        b.expire(300 + WAIT, &mut out);
        assert_eq!(items(&out), ["b1", "a2"]);
        // a2 (3, A): only C could still precede it; B's next is at least (3, B).
        assert_eq!(out[1].silent, vec![NodeId::from("C")]);
    }

    #[test]
    fn timeout_of_a_later_arrival_releases_what_is_ordered_before_it() {
        let mut b = buf(10, Some(&["A", "B", "C"]));
        offer(&mut b, "A", 1, 9, "a1", 0);
        // b1 arrives later but is ordered first; both wait for C.
        let (_, out) = offer(&mut b, "B", 1, 1, "b1", 10);
        assert!(out.is_empty());
        let mut out = Vec::new();
        b.expire(WAIT, &mut out);
        assert_eq!(items(&out), ["b1", "a1"]);
        assert!(out.iter().all(|d| d.release == Release::Timeout));
        assert!(b.is_empty());
    }

    #[test]
    fn late_arrivals_are_delivered_at_once_and_reported_as_late() {
        let mut b = buf(10, Some(&["A", "B"]));
        offer(&mut b, "A", 1, 5, "a1", 0);
        let mut out = Vec::new();
        b.expire(WAIT, &mut out);
        assert_eq!(items(&out), ["a1"]);
        let (r, out) = offer(&mut b, "B", 1, 2, "b1", WAIT);
        assert_eq!(r, Offer::Accepted);
        assert_eq!(items(&out), ["b1"]);
        assert_eq!(out[0].release, Release::Late);
    }

    #[test]
    fn duplicates_by_node_and_seq() {
        let mut b = buf(10, Some(&["A", "B"]));
        offer(&mut b, "A", 1, 1, "a1", 0);
        let (r, _) = offer(&mut b, "A", 1, 1, "a1-held-copy", 0);
        assert_eq!(r, Offer::Duplicate("a1-held-copy"));
        offer(&mut b, "B", 1, 2, "b1", 0);
        let (r, _) = offer(&mut b, "A", 1, 1, "a1-delivered-copy", 0);
        assert!(r.is_duplicate());
        assert_eq!(b.delivered().get("A"), 1);
    }

    #[test]
    fn buffer_full_releases_the_smallest() {
        let mut b = buf(2, Some(&["A", "B"]));
        offer(&mut b, "A", 1, 3, "a1", 0);
        offer(&mut b, "A", 2, 4, "a2", 0);
        let (_, out) = offer(&mut b, "A", 3, 5, "a3", 0);
        assert_eq!(items(&out), ["a1"]);
        assert_eq!(out[0].release, Release::BufferFull);
        assert_eq!(out[0].silent, vec![NodeId::from("B")]);
        assert_eq!(b.len(), 2);
        assert_eq!(b.iter_waiting().copied().collect::<Vec<_>>(), ["a2", "a3"]);
    }

    #[test]
    fn dynamic_membership_waits_for_nodes_seen_so_far() {
        let mut b = buf(10, None);
        assert!(!b.has_fixed_members());
        // Alone, A is its own frontier: delivered at once.
        let (_, out) = offer(&mut b, "A", 1, 1, "a1", 0);
        assert_eq!(items(&out), ["a1"]);
        let (_, out) = offer(&mut b, "B", 1, 3, "b1", 0);
        assert!(out.is_empty(), "A may still send (2, A)");
        let (_, out) = offer(&mut b, "A", 2, 4, "a2", 0);
        assert_eq!(items(&out), ["b1", "a2"]);
        assert_eq!(b.members().map(|n| &**n).collect::<Vec<_>>(), ["A", "B"]);
        // A node joining after its place passed: late.
        let (_, out) = offer(&mut b, "C", 1, 2, "c1", 0);
        assert_eq!(out[0].release, Release::Late);
    }

    #[test]
    fn non_members_are_ordered_but_not_awaited() {
        let mut b = buf(10, Some(&["A"]));
        assert!(b.has_fixed_members());
        let (_, out) = offer(&mut b, "X", 1, 1, "x1", 0);
        assert!(out.is_empty(), "A has not spoken");
        let (_, out) = offer(&mut b, "A", 1, 2, "a1", 0);
        assert_eq!(items(&out), ["x1", "a1"]);
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let mut b = buf(1, Some(&["A", "B"]));
        let mut out = Vec::new();
        let mut offer = |n: &str, seq, t, m, now| {
            assert!(!b
                .offer(NodeId::from(n), seq, t, m, now, &mut out)
                .is_duplicate());
        };
        offer("A", 0, u64::MAX, "max", 0);
        offer("B", u64::MAX, 0, "zero", i64::MAX);
        offer("A", u64::MAX, u64::MAX, "max2", i64::MIN);
        b.expire(i64::MAX, &mut out);
        b.drain(Release::Timeout, &mut out);
        let mut got = items(&out);
        got.sort();
        assert_eq!(got, ["max", "max2", "zero"]);
        assert!(b.is_empty());
    }
}
