//! The analysis window: the latest `window − 1` messages with their vectors and the
//! registrations they made, and the indexes over them (by `(node, seq)`, by id, and each node's
//! window seqs).

use super::causality::{Arrival, End};
use super::nodes::NodeKey;
use super::Analyzer;
use crate::NodeId;
use std::sync::Arc;

/// A message in the window.
#[derive(Debug)]
pub(super) struct WindowEntry {
    pub(super) node: NodeKey,
    node_id: NodeId,
    seq: u64,
    pub(super) id: Arc<str>,
    physical: f64,
    logical: Option<u64>,
    /// Other nodes' vector entries by key, sorted by key; `None` without a usable vector.
    pub(super) vt: Option<Box<[(NodeKey, u64)]>>,
    /// Registrations `(node, c)` this message made in `pending`.
    regs: Vec<(NodeKey, u64)>,
}

impl WindowEntry {
    /// This message as one end of a causal pair.
    pub(super) fn end(&self) -> End<'_> {
        End {
            node: &self.node_id,
            seq: self.seq,
            id: &self.id,
            physical: self.physical,
            logical: self.logical,
        }
    }
}

impl Analyzer {
    /// The window message of arrival index `idx`, if still in the window.
    pub(super) fn in_window(&self, idx: u64) -> Option<&WindowEntry> {
        let off = idx.checked_sub(self.front)?;
        self.window.get(usize::try_from(off).ok()?)
    }

    /// Puts the analysed message `m` into the window with its vector `entries` (`None` without a
    /// usable vector) and registrations `regs`, then evicts down to the latest `window − 1`.
    pub(super) fn admit(
        &mut self,
        m: &Arrival<'_>,
        entries: Option<Vec<(NodeKey, u64)>>,
        regs: Vec<(NodeKey, u64)>,
    ) {
        let (key, seq, idx) = (m.key, m.end.seq, m.idx);
        let vt = entries.map(|mut entries| {
            entries.sort_unstable_by_key(|e| e.0);
            entries.into_boxed_slice()
        });
        if vt.is_some() {
            if let Some(st) = self.nodes.get_mut(key) {
                let pos = st.window_seqs.partition_point(|&(q, _)| q < seq);
                st.window_seqs.insert(pos, (seq, idx));
                self.vt_in_window += 1;
            }
        }
        let id: Arc<str> = Arc::from(m.end.id);
        *self.ids.entry(id.clone()).or_insert(0) += 1;
        self.by_seq.insert((key, seq), idx);
        self.window.push_back(WindowEntry {
            node: key,
            node_id: m.end.node.clone(),
            seq,
            id,
            physical: m.end.physical,
            logical: m.end.logical,
            vt,
            regs,
        });
        // Keep the `window − 1` latest: the next arrival is compared against exactly those.
        // Evicting here, not before the FIFO update, keeps the bookkeeping of registrations
        // (counted as "ahead" by comparing with the node's highest seq) exact.
        while self.window.len() >= self.window_cap {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        let Some(r) = self.window.pop_front() else {
            return;
        };
        let idx = self.front;
        self.front += 1;
        if self.by_seq.get(&(r.node, r.seq)) == Some(&idx) {
            self.by_seq.remove(&(r.node, r.seq));
        }
        if let Some(n) = self.ids.get_mut(&r.id) {
            *n -= 1;
            if *n == 0 {
                self.ids.remove(&r.id);
            }
        }
        if r.vt.is_some() {
            if let Some(st) = self.nodes.get_mut(r.node) {
                if let Ok(p) = st.window_seqs.binary_search_by_key(&r.seq, |e| e.0) {
                    st.window_seqs.remove(p);
                    self.vt_in_window = self.vt_in_window.saturating_sub(1);
                }
            }
        }
        for (k, c) in r.regs {
            let Some(st) = self.nodes.get_mut(k) else {
                continue;
            };
            let Some(list) = st.pending.get_mut(&c) else {
                continue;
            };
            let Some(p) = list.iter().position(|&x| x == idx) else {
                continue;
            };
            list.swap_remove(p);
            if list.is_empty() {
                st.pending.remove(&c);
            }
            if c > st.seqs.highest() {
                st.ahead = st.ahead.saturating_sub(1);
            }
        }
    }
}
