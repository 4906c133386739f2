//! The happened-before steps of the analysis: a message checked against its latest predecessors
//! (own node and vector), arrival before cause, and the count of concurrent pairs. The rules are
//! stated in the [module docs](super).

use super::nodes::NodeKey;
use super::{Analyzer, Violation, ViolationKind};
use crate::clock::vector::VectorTimestamp;
use crate::envelope::Envelope;
use crate::NodeId;
use std::fmt::Write as _;

/// One end of a happened-before pair being checked.
pub(super) struct End<'a> {
    pub(super) node: &'a NodeId,
    pub(super) seq: u64,
    pub(super) id: &'a str,
    pub(super) physical: f64,
    pub(super) logical: Option<u64>,
}

/// The message being analysed.
pub(super) struct Arrival<'a> {
    /// Its node.
    pub(super) key: NodeKey,
    /// Its arrival index.
    pub(super) idx: u64,
    /// It fills a gap: its seq is at or below the node's highest seq before it.
    pub(super) late: bool,
    pub(super) end: End<'a>,
}

/// What the vector step learned about the arriving message.
#[derive(Default)]
pub(super) struct Causes {
    /// Its vector entries naming tracked nodes other than its own, unsorted.
    pub(super) entries: Vec<(NodeKey, u64)>,
    /// The registrations `(node, c)` it made, waiting for a predecessor that had not arrived.
    pub(super) regs: Vec<(NodeKey, u64)>,
    /// Window messages of other nodes that happened before it.
    pub(super) preds: usize,
}

impl Analyzer {
    /// The message's vector when it is a send stamp (its own entry is its seq); any other
    /// vector is counted as unusable.
    pub(super) fn usable_vector<'e>(
        &mut self,
        env: &'e Envelope,
        seq: u64,
    ) -> Option<&'e VectorTimestamp> {
        let ts = &env.timestamp;
        match &ts.vector_time {
            Some(vt) if vt.get(&ts.node_id) == seq => Some(vt),
            Some(_) => {
                self.unusable_vectors += 1;
                None
            }
            None => None,
        }
    }

    /// Own-node order: `(i, seq − 1) → m`, and `m → (i, seq + 1)` when `m` fills a gap.
    pub(super) fn check_own_order(&mut self, m: &Arrival<'_>, out: &mut Vec<Violation>) {
        let seq = m.end.seq;
        if let Some(&p) = self.by_seq.get(&(m.key, seq - 1)) {
            if let Some(r) = self.in_window(p) {
                let found = pair_violations(&r.end(), &m.end);
                self.push_all(out, found);
            }
        }
        if m.late {
            if let Some(&s) = seq
                .checked_add(1)
                .and_then(|next| self.by_seq.get(&(m.key, next)))
            {
                if let Some(r) = self.in_window(s) {
                    let found = pair_violations(&m.end, &r.end());
                    self.push_all(out, found);
                }
            }
        }
    }

    /// The vector step: each latest predecessor `(k, vt[k])` of another node is checked against
    /// the message when it has arrived, and registered for the check when it arrives otherwise;
    /// missing ones make one arrival-before-cause violation. Counts the window messages that
    /// happened before the message (per node `k`, those with seq ≤ `vt[k]`, by binary search in
    /// `k`'s sorted window seqs).
    pub(super) fn check_causes(
        &mut self,
        m: &Arrival<'_>,
        vt: &VectorTimestamp,
        out: &mut Vec<Violation>,
    ) -> Causes {
        let node_id = m.end.node;
        let mut causes = Causes::default();
        causes.entries.reserve(vt.len().saturating_sub(1));
        let mut needed = String::new();
        for (pos, (k_id, c)) in vt.iter().enumerate() {
            if **k_id == **node_id {
                continue;
            }
            let found = self.resolve(pos, k_id);
            let (mut arrived, mut high, mut pred) = (false, 0, None);
            if let Some(st) = found.and_then(|k| self.nodes.get(k)) {
                arrived = st.seqs.arrived(c);
                high = st.seqs.highest();
                let n = st.window_seqs.partition_point(|&(q, _)| q <= c);
                causes.preds += n;
                pred = n
                    .checked_sub(1)
                    .and_then(|i| st.window_seqs.get(i))
                    .filter(|e| e.0 == c)
                    .map(|e| e.1);
            }
            if arrived {
                if let Some(kk) = found {
                    self.nodes.touch(kk);
                    causes.entries.push((kk, c));
                    // A predecessor without a vector is not in `window_seqs`.
                    let pred = pred.or_else(|| self.by_seq.get(&(kk, c)).copied());
                    if let Some(p) = pred {
                        if let Some(r) = self.in_window(p) {
                            let found = pair_violations(&r.end(), &m.end);
                            self.push_all(out, found);
                        }
                    }
                }
                continue;
            }
            if !needed.is_empty() {
                needed.push_str(", ");
            }
            let _ = write!(needed, "{k_id}:{c} (received up to {k_id}:{high})");
            // Register so the pair is checked when (k, c) arrives.
            if let Some(kk) = self.track(found, k_id) {
                if let Some(st) = self.nodes.get_mut(kk) {
                    st.pending.entry(c).or_default().push(m.idx);
                    if c > st.seqs.highest() {
                        st.ahead += 1;
                    }
                    causes.entries.push((kk, c));
                    causes.regs.push((kk, c));
                }
            }
        }
        if !needed.is_empty() {
            let seq = m.end.seq;
            let detail = format!("{node_id}:{seq} arrived before its causes: needs {needed}");
            self.report(
                out,
                ViolationKind::ArrivalBeforeCause,
                node_id,
                vec![m.end.id.to_owned()],
                detail,
            );
        }
        causes
    }

    /// Window messages that were waiting for `m`: their pairs with `m` are checked and their
    /// registrations resolved. Returns how many window messages `m` happened before (exact
    /// unless `m` fills a gap: see [`count_successors`](Self::count_successors)).
    pub(super) fn resolve_waiting(
        &mut self,
        m: &Arrival<'_>,
        old_high: u64,
        out: &mut Vec<Violation>,
    ) -> usize {
        let seq = m.end.seq;
        let mut before = 0usize;
        let waiting = match self.nodes.get_mut(m.key) {
            Some(st) => {
                if !m.late {
                    let moved: usize = st
                        .pending
                        .range(old_high.saturating_add(1)..seq)
                        .map(|(_, v)| v.len())
                        .sum();
                    st.ahead = st.ahead.saturating_sub(moved);
                    before = st.ahead;
                }
                let w = st.pending.remove(&seq).unwrap_or_default();
                if !m.late {
                    st.ahead = st.ahead.saturating_sub(w.len());
                }
                w
            }
            None => Vec::new(),
        };
        for x in waiting {
            if let Some(r) = self.in_window(x) {
                let found = pair_violations(&m.end, &r.end());
                self.push_all(out, found);
            }
        }
        before
    }

    /// Window messages of other nodes that `(key, seq)` happened before, by scanning the window:
    /// the fallback for the late fill of a gap.
    pub(super) fn count_successors(&self, key: NodeKey, seq: u64) -> usize {
        self.window
            .iter()
            .filter(|r| r.node != key)
            .filter_map(|r| r.vt.as_deref())
            .filter(|vt| matches!(vt.binary_search_by_key(&key, |e| e.0), Ok(p) if vt[p].1 >= seq))
            .count()
    }

    /// Adds the window messages with a usable vector that are concurrent with a message of node
    /// `key` to the total, given `ordered`, the number of those of other nodes ordered with it.
    /// Messages of its own node are all ordered with it.
    pub(super) fn count_concurrent(&mut self, key: NodeKey, ordered: usize) {
        let mut ordered = ordered;
        if let Some(st) = self.nodes.get(key) {
            ordered += st.window_seqs.len();
        }
        self.concurrent_pairs += self.vt_in_window.saturating_sub(ordered) as u64;
    }

    fn push_all(&mut self, out: &mut Vec<Violation>, found: [Option<Violation>; 2]) {
        for v in found.into_iter().flatten() {
            self.counts[v.kind.index()] += 1;
            out.push(v);
        }
    }
}

/// The violations of one happened-before pair `cause → effect`.
fn pair_violations(cause: &End, effect: &End) -> [Option<Violation>; 2] {
    let ids = || vec![cause.id.to_owned(), effect.id.to_owned()];
    let physical = (effect.physical < cause.physical).then(|| Violation {
        kind: ViolationKind::PhysicalVsCausal,
        node: effect.node.clone(),
        ids: ids(),
        detail: format!(
            "{}:{} → {}:{} but its physical time is {:.3} ms earlier",
            cause.node,
            cause.seq,
            effect.node,
            effect.seq,
            (cause.physical - effect.physical) * 1000.0
        ),
    });
    // A message without a Lamport time is not checked against Lamport order.
    let lamport = match (cause.logical, effect.logical) {
        (Some(c), Some(e)) if e <= c => Some(Violation {
            kind: ViolationKind::LamportVsCausal,
            node: effect.node.clone(),
            ids: ids(),
            detail: format!(
                "{}:{} → {}:{} but Lamport time {} ≤ {}",
                cause.node, cause.seq, effect.node, effect.seq, e, c
            ),
        }),
        _ => None,
    };
    [physical, lamport]
}
