//! Vector clocks keyed by node id.
//!
//! A [`VectorTimestamp`] is a map from node id to counter, stored as a vector sorted by node id
//! with no zero entries: a missing entry *is* zero, so `{A:1}` and `{A:1, B:0}` are the same
//! timestamp. Membership is dynamic; there is no fixed node count and no hashing of ids to slots.
//!
//! A [`VectorClock`] is one node's clock with two named operations:
//!
//! * [`VectorClock::send_stamp`] increments the node's own entry: entries then count the messages
//!   each node has sent, which is what causal delivery needs (`vt[i] == delivered[i] + 1`).
//! * [`VectorClock::receive_event`] merges (element-wise max) and then increments the node's own
//!   entry: the Fidge/Mattern event clock.
//!
//! [`VectorClock::merge`] alone (no increment) is what a producer that observes the topic does
//! before stamping its next message, so its stamp counts only sends.

use crate::NodeId;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::sync::{Arc, Mutex};

/// Byte-wise lexicographic order of node ids — exactly `str`'s `Ord` — compared eight bytes at a
/// time as big-endian words, inline. Node ids are short (`producer-12`), where this beats a
/// `memcmp` call per comparison; merge and compare do one comparison per entry.
#[inline]
fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let (mut ac, mut bc) = (a[..n].chunks_exact(8), b[..n].chunks_exact(8));
    for (x, y) in (&mut ac).zip(&mut bc) {
        let (mut xw, mut yw) = ([0u8; 8], [0u8; 8]);
        xw.copy_from_slice(x);
        yw.copy_from_slice(y);
        let (x, y) = (u64::from_be_bytes(xw), u64::from_be_bytes(yw));
        if x != y {
            return x.cmp(&y);
        }
    }
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Equality of short byte strings without a `memcmp` call: ids of 8 to 16 bytes are two
/// (overlapping) word compares.
#[inline]
fn eq_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        let word = |s: &[u8], at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&s[at..at + 8]);
            u64::from_ne_bytes(w)
        };
        (word(a, 0) == word(b, 0)) & (word(a, n - 8) == word(b, n - 8))
    } else {
        a == b
    }
}

/// Id order ([`cmp_bytes`]) with fast paths for the common case of equal ids: pointer equality
/// (ids shared, e.g. the local node's own id) and a word-wise equality test (ids decoded from
/// different messages). Merge and compare mostly meet equal ids, one per entry.
#[inline]
fn cmp_ids(a: &NodeId, b: &NodeId) -> Ordering {
    if Arc::ptr_eq(a, b) || eq_bytes(a.as_bytes(), b.as_bytes()) {
        Ordering::Equal
    } else {
        cmp_bytes(a.as_bytes(), b.as_bytes())
    }
}

/// How two vector timestamps relate under happened-before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CausalOrder {
    /// Every entry ≤ the other's and at least one <: the left happened before the right.
    Before,
    /// The right happened before the left.
    After,
    /// Identical timestamps.
    Equal,
    /// Neither happened before the other.
    Concurrent,
}

impl CausalOrder {
    /// A short lowercase name ("before", "after", "equal", "concurrent").
    pub fn as_str(self) -> &'static str {
        match self {
            CausalOrder::Before => "before",
            CausalOrder::After => "after",
            CausalOrder::Equal => "equal",
            CausalOrder::Concurrent => "concurrent",
        }
    }
}

/// A vector timestamp: node id → counter, missing entries are zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VectorTimestamp {
    /// Sorted by node id, unique ids, no zero counters.
    entries: Vec<(NodeId, u64)>,
}

impl VectorTimestamp {
    /// The all-zero timestamp.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a timestamp from (node, counter) pairs in any order. Zero counters are dropped; a
    /// repeated node keeps its largest counter.
    pub fn from_entries<I, S>(entries: I) -> Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: Into<NodeId>,
    {
        let mut v: Vec<(NodeId, u64)> = entries
            .into_iter()
            .map(|(k, c)| (k.into(), c))
            .filter(|(_, c)| *c > 0)
            .collect();
        v.sort_by(|a, b| cmp_ids(&a.0, &b.0).then(b.1.cmp(&a.1)));
        v.dedup_by(|later, earlier| cmp_ids(&later.0, &earlier.0) == Ordering::Equal);
        Self { entries: v }
    }

    /// The counter for `node` (0 if absent).
    pub fn get(&self, node: &str) -> u64 {
        match self
            .entries
            .binary_search_by(|(k, _)| cmp_bytes(k.as_bytes(), node.as_bytes()))
        {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Sets the counter for `node` (0 removes the entry).
    pub fn set(&mut self, node: &NodeId, value: u64) {
        match self.entries.binary_search_by(|(k, _)| cmp_ids(k, node)) {
            Ok(i) if value == 0 => {
                self.entries.remove(i);
            }
            Ok(i) => self.entries[i].1 = value,
            Err(_) if value == 0 => {}
            Err(i) => self.entries.insert(i, (node.clone(), value)),
        }
    }

    /// Increments `node`'s counter (saturating) and returns the new value.
    pub fn increment(&mut self, node: &NodeId) -> u64 {
        match self.entries.binary_search_by(|(k, _)| cmp_ids(k, node)) {
            Ok(i) => {
                let e = &mut self.entries[i].1;
                *e = e.saturating_add(1);
                *e
            }
            Err(i) => {
                self.entries.insert(i, (node.clone(), 1));
                1
            }
        }
    }

    /// Element-wise maximum with `other`, in place.
    pub fn merge(&mut self, other: &VectorTimestamp) {
        // Fast path: every node of `other` is already present — update in place, no allocation.
        // One id comparison per entry of `self` up to the last node of `other`.
        let entries = &mut self.entries[..];
        let mut i = 0;
        let mut all_present = true;
        'outer: for (k, v) in &other.entries {
            while let Some(e) = entries.get_mut(i) {
                i += 1;
                match cmp_ids(&e.0, k) {
                    Ordering::Less => continue,
                    Ordering::Equal => {
                        e.1 = e.1.max(*v);
                        continue 'outer;
                    }
                    Ordering::Greater => break,
                }
            }
            all_present = false;
            break;
        }
        if all_present {
            return;
        }
        let mut out = Vec::with_capacity(self.entries.len() + other.entries.len());
        let (mut a, mut b) = (self.entries.iter(), other.entries.iter());
        let (mut x, mut y) = (a.next(), b.next());
        loop {
            match (x, y) {
                (Some(p), Some(q)) => match cmp_ids(&p.0, &q.0) {
                    Ordering::Less => {
                        out.push(p.clone());
                        x = a.next();
                    }
                    Ordering::Greater => {
                        out.push(q.clone());
                        y = b.next();
                    }
                    Ordering::Equal => {
                        out.push((p.0.clone(), p.1.max(q.1)));
                        x = a.next();
                        y = b.next();
                    }
                },
                (Some(p), None) => {
                    out.push(p.clone());
                    out.extend(a.by_ref().cloned());
                    break;
                }
                (None, Some(q)) => {
                    out.push(q.clone());
                    out.extend(b.by_ref().cloned());
                    break;
                }
                (None, None) => break,
            }
        }
        self.entries = out;
    }

    /// How `self` relates to `other` under happened-before (missing entries count as 0).
    pub fn compare(&self, other: &VectorTimestamp) -> CausalOrder {
        let (mut less, mut greater) = (false, false);
        let (a, b) = (&self.entries[..], &other.entries[..]);
        let (mut i, mut j) = (0, 0);
        while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
            match cmp_ids(&x.0, &y.0) {
                // Present only on the left (right has 0): left is greater there.
                Ordering::Less => {
                    greater = true;
                    i += 1;
                }
                Ordering::Greater => {
                    less = true;
                    j += 1;
                }
                Ordering::Equal => {
                    less |= x.1 < y.1;
                    greater |= x.1 > y.1;
                    i += 1;
                    j += 1;
                }
            }
            if less && greater {
                return CausalOrder::Concurrent;
            }
        }
        // Entries left on one side only are non-zero, so that side is greater there.
        greater |= i < a.len();
        less |= j < b.len();
        match (less, greater) {
            (false, false) => CausalOrder::Equal,
            (true, false) => CausalOrder::Before,
            (false, true) => CausalOrder::After,
            (true, true) => CausalOrder::Concurrent,
        }
    }

    /// True when `self` happened before `other`.
    pub fn happened_before(&self, other: &VectorTimestamp) -> bool {
        self.compare(other) == CausalOrder::Before
    }

    /// Non-zero entries, sorted by node id.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, u64)> + '_ {
        self.entries.iter().map(|(k, v)| (k, *v))
    }

    /// Number of non-zero entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for the all-zero timestamp.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Serialize for VectorTimestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            m.serialize_entry(&**k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for VectorTimestamp {
    /// Accepts a JSON object of node → non-negative integer. Bounds (entry caps) are enforced by
    /// the envelope decoder, which is the only place untrusted input is parsed.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VectorTimestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object mapping node ids to counters")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut v: Vec<(NodeId, u64)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some((k, c)) = map.next_entry::<String, u64>()? {
                    v.push((NodeId::from(k), c));
                }
                Ok(VectorTimestamp::from_entries(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// One node's thread-safe vector clock.
///
/// # Example
///
/// Node `b` reads `a`'s message before sending its own: `a`'s message happened before `b`'s,
/// and `c`'s, sent without reading either, is concurrent with both.
///
/// ```
/// use kafka_timesync::clock::{CausalOrder, VectorClock, VectorTimestamp};
///
/// let (a, b, c) = (VectorClock::new("a"), VectorClock::new("b"), VectorClock::new("c"));
/// let m1 = a.send_stamp();
/// b.merge(&m1); // b observes m1, counts no event
/// let m2 = b.send_stamp();
/// let m3 = c.send_stamp();
/// assert_eq!(m2, VectorTimestamp::from_entries([("a", 1), ("b", 1)]));
/// assert!(m1.happened_before(&m2));
/// assert_eq!(m2.compare(&m1), CausalOrder::After);
/// assert_eq!(m3.compare(&m2), CausalOrder::Concurrent);
/// ```
#[derive(Debug)]
pub struct VectorClock {
    node: NodeId,
    state: Mutex<VectorTimestamp>,
}

impl VectorClock {
    /// An all-zero clock for `node`.
    pub fn new(node: impl Into<NodeId>) -> Self {
        Self::resume(node, VectorTimestamp::new())
    }

    /// A clock for `node` resuming from a persisted timestamp.
    pub fn resume(node: impl Into<NodeId>, ts: VectorTimestamp) -> Self {
        Self {
            node: node.into(),
            state: Mutex::new(ts),
        }
    }

    /// The node this clock belongs to.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// A copy of the current timestamp.
    pub fn snapshot(&self) -> VectorTimestamp {
        self.lock().clone()
    }

    /// Send: increments the node's own entry and returns the message's timestamp.
    pub fn send_stamp(&self) -> VectorTimestamp {
        let mut s = self.lock();
        s.increment(&self.node);
        s.clone()
    }

    /// Event receive (Fidge/Mattern): merge element-wise max, then increment the own entry.
    pub fn receive_event(&self, received: &VectorTimestamp) -> VectorTimestamp {
        let mut s = self.lock();
        s.merge(received);
        s.increment(&self.node);
        s.clone()
    }

    /// Merge only (no event counted): what an observing producer does with what it reads.
    pub fn merge(&self, received: &VectorTimestamp) {
        self.lock().merge(received);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VectorTimestamp> {
        // Nothing done under the lock can panic (merge and increment only compare, assign and
        // saturate), so a poisoned lock still guards a valid timestamp: poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vt(pairs: &[(&str, u64)]) -> VectorTimestamp {
        VectorTimestamp::from_entries(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn event_receive_matches_fidge_mattern() {
        let c = VectorClock::resume("C", vt(&[("A", 1)]));
        let got = c.receive_event(&vt(&[("A", 2), ("B", 1)]));
        assert_eq!(got, vt(&[("A", 2), ("B", 1), ("C", 1)]));
    }

    #[test]
    fn send_stamp_counts_sends() {
        let c = VectorClock::new("producer-1");
        assert_eq!(c.send_stamp().get("producer-1"), 1);
        c.merge(&vt(&[("producer-2", 3)]));
        let s = c.send_stamp();
        assert_eq!(s, vt(&[("producer-1", 2), ("producer-2", 3)]));
    }

    #[test]
    fn missing_entries_count_as_zero() {
        assert_eq!(vt(&[("A", 1), ("B", 0)]), vt(&[("A", 1)]));
        assert_eq!(
            vt(&[("A", 1)]).compare(&vt(&[("A", 1), ("B", 0)])),
            CausalOrder::Equal
        );
        assert_eq!(
            vt(&[("A", 1)]).compare(&vt(&[("A", 1), ("B", 1)])),
            CausalOrder::Before
        );
        assert_eq!(
            vt(&[("B", 1)]).compare(&vt(&[("A", 1)])),
            CausalOrder::Concurrent
        );
    }

    #[test]
    fn slides_worked_examples() {
        // ts(m2)=(2,1,0) vs ts(m4)=(4,3,0): m2 may causally precede m4.
        let m2 = vt(&[("P1", 2), ("P2", 1)]);
        let m4 = vt(&[("P1", 4), ("P2", 3)]);
        assert_eq!(m2.compare(&m4), CausalOrder::Before);
        assert_eq!(m4.compare(&m2), CausalOrder::After);
        // (4,1,0) vs (2,3,0): may conflict.
        let a = vt(&[("P1", 4), ("P2", 1)]);
        let b = vt(&[("P1", 2), ("P2", 3)]);
        assert_eq!(a.compare(&b), CausalOrder::Concurrent);
    }

    #[test]
    fn ids_that_would_collide_under_hashing_stay_distinct() {
        let mut t = VectorTimestamp::new();
        for i in 0..100 {
            t.increment(&NodeId::from(format!("node-{i}")));
        }
        assert_eq!(t.len(), 100);
        assert!(t.iter().all(|(_, v)| v == 1));
    }

    #[test]
    fn json_is_an_object() {
        let t = vt(&[("producer-2", 3), ("producer-1", 17)]);
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, r#"{"producer-1":17,"producer-2":3}"#);
        let back: VectorTimestamp = serde_json::from_str(&s).unwrap();
        assert_eq!(back, t);
    }

    fn arb_vt() -> impl Strategy<Value = VectorTimestamp> {
        proptest::collection::vec((0u8..6, 0u64..5), 0..6).prop_map(|v| {
            VectorTimestamp::from_entries(v.into_iter().map(|(k, c)| (format!("n{k}"), c)))
        })
    }

    fn naive_get(t: &VectorTimestamp, k: &str) -> u64 {
        t.iter()
            .find(|(n, _)| &***n == k)
            .map(|(_, v)| v)
            .unwrap_or(0)
    }

    /// Ids with long shared prefixes (so the eight-byte word compare and the byte tail both
    /// decide), differing lengths, and non-ASCII bytes.
    fn arb_id() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["", "p", "producer-", "producer-node-", "nœud-"]),
            "[0-9a-zé]{0,12}",
        )
            .prop_map(|(p, s)| format!("{p}{s}"))
    }

    fn arb_long_vt() -> impl Strategy<Value = VectorTimestamp> {
        proptest::collection::vec((arb_id(), 0u64..4), 0..10)
            .prop_map(VectorTimestamp::from_entries)
    }

    fn naive_max(
        a: &VectorTimestamp,
        b: &VectorTimestamp,
    ) -> std::collections::BTreeMap<String, u64> {
        let mut m = std::collections::BTreeMap::new();
        for (k, v) in a.iter().chain(b.iter()) {
            let e = m.entry(k.to_string()).or_insert(0);
            *e = (*e).max(v);
        }
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn merge_is_elementwise_max(a in arb_vt(), b in arb_vt()) {
            let mut m = a.clone();
            m.merge(&b);
            for k in 0..6 {
                let k = format!("n{k}");
                prop_assert_eq!(m.get(&k), naive_get(&a, &k).max(naive_get(&b, &k)));
            }
            // The merge dominates both inputs.
            prop_assert!(matches!(a.compare(&m), CausalOrder::Before | CausalOrder::Equal));
            prop_assert!(matches!(b.compare(&m), CausalOrder::Before | CausalOrder::Equal));
        }

        #[test]
        fn id_order_is_str_order(a in arb_id(), b in arb_id()) {
            prop_assert_eq!(cmp_bytes(a.as_bytes(), b.as_bytes()), a.cmp(&b));
            let (x, y) = (NodeId::from(a.as_str()), NodeId::from(b.as_str()));
            prop_assert_eq!(cmp_ids(&x, &y), a.cmp(&b));
            prop_assert_eq!(cmp_ids(&x, &x.clone()), Ordering::Equal);
        }

        #[test]
        fn long_ids_merge_and_compare_match_the_definition(
            a in arb_long_vt(),
            b in arb_long_vt(),
        ) {
            // Entries stay sorted by str order and unique.
            for t in [&a, &b] {
                let ids: Vec<&str> = t.iter().map(|(k, _)| &**k).collect();
                prop_assert!(ids.windows(2).all(|w| w[0] < w[1]));
            }
            let mut m = a.clone();
            m.merge(&b);
            let expected = naive_max(&a, &b);
            let got: std::collections::BTreeMap<String, u64> =
                m.iter().map(|(k, v)| (k.to_string(), v)).collect();
            prop_assert_eq!(&got, &expected);
            // Sharing the same Arcs (the pointer fast path) gives the same result.
            let mut shared = a.clone();
            let b_shared = VectorTimestamp::from_entries(b.iter().map(|(k, v)| {
                let same = a.iter().find(|(ak, _)| ak == &k).map(|(ak, _)| ak.clone());
                (same.unwrap_or_else(|| k.clone()), v)
            }));
            shared.merge(&b_shared);
            prop_assert_eq!(&shared, &m);
            prop_assert_eq!(a.compare(&b_shared), a.compare(&b));
            let (mut le, mut ge) = (true, true);
            for k in expected.keys() {
                let (x, y) = (a.get(k), b.get(k));
                le &= x <= y;
                ge &= x >= y;
            }
            let order = match (le, ge) {
                (true, true) => CausalOrder::Equal,
                (true, false) => CausalOrder::Before,
                (false, true) => CausalOrder::After,
                (false, false) => CausalOrder::Concurrent,
            };
            prop_assert_eq!(a.compare(&b), order);
            // `get` reads each entry, and 0 for ids only the other side holds.
            for k in expected.keys() {
                prop_assert_eq!(a.get(k), naive_get(&a, k));
            }
        }

        #[test]
        fn compare_agrees_with_definition(a in arb_vt(), b in arb_vt()) {
            let (mut le, mut ge) = (true, true);
            for k in 0..6 {
                let k = format!("n{k}");
                let (x, y) = (a.get(&k), b.get(&k));
                le &= x <= y;
                ge &= x >= y;
            }
            let expected = match (le, ge) {
                (true, true) => CausalOrder::Equal,
                (true, false) => CausalOrder::Before,
                (false, true) => CausalOrder::After,
                (false, false) => CausalOrder::Concurrent,
            };
            prop_assert_eq!(a.compare(&b), expected);
        }
    }
}
