//! Per-node FIFO bookkeeping by sequence number.
//!
//! A node's messages carry `seq` = 1, 2, 3, … in send order. [`SeqTracker`] remembers the highest
//! seq seen and the ranges of lower seqs that are still missing (*gaps*). With that it classifies
//! every arrival as in order, a jump ahead (a new gap), the late fill of a gap (a reorder), or a
//! duplicate, in `O(log g)` for `g` tracked gap ranges.
//!
//! Memory is bounded: at most `cap` gap ranges are kept (a range is two integers however many
//! seqs it spans). When a new gap would exceed the cap, the lowest range is forgotten and the
//! *floor* is raised to its end: seqs at or below the floor are no longer tracked exactly, and a
//! later arrival there is reported as [`SeqVerdict::Untracked`] rather than guessed.
//!
//! A jump of more than [`MAX_PLAUSIBLE_JUMP`] seqs ahead (e.g. a hostile or corrupt `seq` near
//! 2^64) is [`SeqVerdict::Implausible`] and leaves the state untouched, so one bad record does not
//! make every later honest message of the node look out of order.
//!
//! The analyzer's FIFO step reports those verdicts, the reuse of a message id still in the
//! window, and the Kafka-offset order of messages without seq.

use std::collections::BTreeMap;

use super::nodes::NodeKey;
use super::{Analyzer, Violation, ViolationKind, MAX_GAP_RANGES_PER_NODE};
use crate::envelope::Envelope;
use crate::NodeId;

/// The largest forward jump adopted as a gap: 2^32 messages never sent is not a crash, it is a
/// corrupt or hostile seq.
pub(crate) const MAX_PLAUSIBLE_JUMP: u64 = 1 << 32;

/// What one arriving seq means for its node's FIFO order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqVerdict {
    /// The next seq, or a first message of seq 1.
    InOrder,
    /// Jumped ahead: seqs `from..=to` are missing and now tracked as a gap.
    Gap { from: u64, to: u64 },
    /// Fills a tracked gap; `highest` had already arrived.
    LateFill { highest: u64 },
    /// Already received.
    Duplicate,
    /// At or below the floor: a late arrival or a duplicate, no longer distinguishable.
    Untracked { highest: u64 },
    /// More than [`MAX_PLAUSIBLE_JUMP`] ahead of `highest`: reported, not adopted.
    Implausible { highest: u64 },
}

/// One node's FIFO state.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqTracker {
    /// The highest seq received (0: none yet).
    highest: u64,
    /// Missing seq ranges, start → end (inclusive); disjoint, all within `(floor, highest)`.
    gaps: BTreeMap<u64, u64>,
    /// Seqs `<= floor` are not tracked exactly any more (0: everything is tracked).
    floor: u64,
}

impl SeqTracker {
    /// The highest seq received so far (0 when none).
    pub(crate) fn highest(&self) -> u64 {
        self.highest
    }

    /// Number of tracked gap ranges.
    pub(crate) fn gap_ranges(&self) -> usize {
        self.gaps.len()
    }

    /// Number of seqs currently known to be missing (saturating).
    pub(crate) fn missing(&self) -> u64 {
        self.gaps
            .iter()
            .fold(0u64, |acc, (s, e)| acc.saturating_add(e - s + 1))
    }

    /// True when `seq` is known to have arrived (seqs at or below the floor count as arrived:
    /// their status is unknown and claiming them missing would repeat stale reports).
    pub(crate) fn arrived(&self, seq: u64) -> bool {
        if seq > self.highest {
            return false;
        }
        if seq <= self.floor {
            return true;
        }
        !self.in_gap(seq)
    }

    fn in_gap(&self, seq: u64) -> bool {
        matches!(self.gaps.range(..=seq).next_back(), Some((_, &end)) if end >= seq)
    }

    /// Records the arrival of `seq` (≥ 1) and classifies it. `cap` bounds the gap ranges kept.
    pub(crate) fn observe(&mut self, seq: u64, cap: usize) -> SeqVerdict {
        if seq - self.highest.min(seq) > MAX_PLAUSIBLE_JUMP {
            return SeqVerdict::Implausible {
                highest: self.highest,
            };
        }
        if seq > self.highest {
            let verdict = if seq > self.highest + 1 {
                let (from, to) = (self.highest + 1, seq - 1);
                self.gaps.insert(from, to);
                while self.gaps.len() > cap.max(1) {
                    if let Some((_, end)) = self.gaps.pop_first() {
                        self.floor = end;
                    }
                }
                SeqVerdict::Gap { from, to }
            } else {
                SeqVerdict::InOrder
            };
            self.highest = seq;
            return verdict;
        }
        if seq <= self.floor {
            return SeqVerdict::Untracked {
                highest: self.highest,
            };
        }
        let containing = self.gaps.range(..=seq).next_back().map(|(&s, &e)| (s, e));
        match containing {
            Some((start, end)) if end >= seq => {
                self.gaps.remove(&start);
                if start < seq {
                    self.gaps.insert(start, seq - 1);
                }
                if seq < end {
                    self.gaps.insert(seq + 1, end);
                }
                SeqVerdict::LateFill {
                    highest: self.highest,
                }
            }
            _ => SeqVerdict::Duplicate,
        }
    }
}

impl Analyzer {
    /// The FIFO step for message `seq` of node `key`: reports a gap, a reorder or a duplicate.
    /// Returns the node's highest seq before this message, or `None` when the message is not
    /// analysed further (a duplicate, or an implausible seq).
    pub(super) fn check_fifo(
        &mut self,
        key: NodeKey,
        env: &Envelope,
        seq: u64,
        out: &mut Vec<Violation>,
    ) -> Option<u64> {
        let node_id = &env.timestamp.node_id;
        let st = self.nodes.get_mut(key)?;
        let (old_high, verdict) = (
            st.seqs.highest(),
            st.seqs.observe(seq, MAX_GAP_RANGES_PER_NODE),
        );
        let id = env.id.as_str();
        match verdict {
            SeqVerdict::InOrder => {}
            SeqVerdict::Gap { from, to } => {
                let n = to - from + 1;
                let detail = if from == to {
                    format!("{node_id}: seq {from} missing (received seq {seq})")
                } else {
                    format!(
                        "{node_id}: seqs {from}..={to} missing ({n} messages; received seq {seq})"
                    )
                };
                self.report(
                    out,
                    ViolationKind::FifoGap,
                    node_id,
                    vec![id.to_owned()],
                    detail,
                );
            }
            SeqVerdict::LateFill { highest } => {
                let detail = format!("{node_id}: seq {seq} arrived after seq {highest}");
                self.report(
                    out,
                    ViolationKind::FifoReorder,
                    node_id,
                    vec![id.to_owned()],
                    detail,
                );
            }
            SeqVerdict::Duplicate => {
                self.report_duplicate(out, key, node_id, seq, id);
                return None;
            }
            SeqVerdict::Implausible { highest } => {
                let detail = format!(
                    "{node_id}: seq {seq} jumps more than 2^32 past seq {highest}: a corrupt or \
                     hostile seq, not used for FIFO tracking or causality"
                );
                self.report(
                    out,
                    ViolationKind::FifoGap,
                    node_id,
                    vec![id.to_owned()],
                    detail,
                );
                return None;
            }
            SeqVerdict::Untracked { highest } => {
                if self.by_seq.contains_key(&(key, seq)) {
                    self.report_duplicate(out, key, node_id, seq, id);
                    return None;
                }
                let detail = format!(
                    "{node_id}: seq {seq} arrived after seq {highest} (older than the tracked gaps: a late \
                     arrival or a duplicate of a message outside the window)"
                );
                self.report(
                    out,
                    ViolationKind::FifoReorder,
                    node_id,
                    vec![id.to_owned()],
                    detail,
                );
            }
        }
        Some(old_high)
    }

    /// A new `(node, seq)` that reuses the id of a message still in the window is a duplicate.
    pub(super) fn check_id_reuse(&mut self, env: &Envelope, seq: u64, out: &mut Vec<Violation>) {
        let (node_id, id) = (&env.timestamp.node_id, env.id.as_str());
        if self.ids.contains_key(id) {
            let detail =
                format!("{node_id}:{seq} reuses message id {id} of another message in the window");
            self.report(
                out,
                ViolationKind::Duplicate,
                node_id,
                vec![id.to_owned()],
                detail,
            );
        }
    }

    /// The analysis of a message without `seq` (see [`observe_at`](Self::observe_at)).
    pub(super) fn observe_without_seq(
        &mut self,
        key: NodeKey,
        env: &Envelope,
        position: Option<(i32, i64)>,
        received_ns: i64,
        out: &mut Vec<Violation>,
    ) {
        let node_id = &env.timestamp.node_id;
        let id = env.id.as_str();
        self.seq_absent += 1;
        if env.timestamp.vector_time.is_some() {
            // Without a seq the vector cannot be checked to be a send stamp.
            self.unusable_vectors += 1;
        }
        let Some(st) = self.nodes.get_mut(key) else {
            return;
        };
        let mut finding = None;
        if let Some((partition, offset)) = position {
            match st.offsets.insert(partition, offset) {
                Some(last) if offset < last => {
                    st.offsets.insert(partition, last);
                    finding = Some((
                        ViolationKind::FifoReorder,
                        format!(
                            "{node_id}: message without seq at partition {partition} offset \
                             {offset} arrived after offset {last}"
                        ),
                    ));
                }
                Some(last) if offset == last => {
                    finding = Some((
                        ViolationKind::Duplicate,
                        format!(
                            "{node_id}: partition {partition} offset {offset} already received"
                        ),
                    ));
                }
                _ => {}
            }
        }
        if let Some((kind, detail)) = finding {
            let duplicate = kind == ViolationKind::Duplicate;
            self.report(out, kind, node_id, vec![id.to_owned()], detail);
            if duplicate {
                return;
            }
        }
        if let Some(st) = self.nodes.get_mut(key) {
            st.messages += 1;
        }
        self.messages += 1;
        self.offset_sample(key, env, received_ns, out);
    }

    fn report_duplicate(
        &mut self,
        out: &mut Vec<Violation>,
        key: NodeKey,
        node_id: &NodeId,
        seq: u64,
        id: &str,
    ) {
        let mut ids = vec![id.to_owned()];
        if let Some(r) = self
            .by_seq
            .get(&(key, seq))
            .and_then(|&i| self.in_window(i))
        {
            if &*r.id != id {
                ids.push(r.id.to_string());
            }
        }
        let detail = format!("{node_id}:{seq} already received");
        self.report(out, ViolationKind::Duplicate, node_id, ids, detail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_has_no_gaps() {
        let mut t = SeqTracker::default();
        for s in 1..=5 {
            assert_eq!(t.observe(s, 8), SeqVerdict::InOrder);
        }
        assert_eq!(t.highest(), 5);
        assert_eq!(t.missing(), 0);
        assert!(t.arrived(3));
        assert!(!t.arrived(6));
    }

    #[test]
    fn jump_reports_the_missing_seqs_and_fills_are_reorders() {
        let mut t = SeqTracker::default();
        t.observe(1, 8);
        assert_eq!(t.observe(5, 8), SeqVerdict::Gap { from: 2, to: 4 });
        assert_eq!(t.missing(), 3);
        assert!(!t.arrived(3));
        assert_eq!(t.observe(3, 8), SeqVerdict::LateFill { highest: 5 });
        assert!(t.arrived(3));
        assert_eq!(t.missing(), 2);
        assert_eq!(t.gap_ranges(), 2, "the range 2..=4 split around 3");
        assert_eq!(t.observe(3, 8), SeqVerdict::Duplicate);
        assert_eq!(t.observe(2, 8), SeqVerdict::LateFill { highest: 5 });
        assert_eq!(t.observe(4, 8), SeqVerdict::LateFill { highest: 5 });
        assert_eq!(t.missing(), 0);
        assert_eq!(t.observe(5, 8), SeqVerdict::Duplicate);
    }

    #[test]
    fn first_message_above_one_is_a_gap_from_one() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(4, 8), SeqVerdict::Gap { from: 1, to: 3 });
    }

    #[test]
    fn gap_ranges_are_capped_and_the_floor_rises() {
        let mut t = SeqTracker::default();
        // Every other seq: 2, 4, 6, … leaves single-seq gaps 1, 3, 5, …
        for s in (2..=40).step_by(2) {
            t.observe(s, 4);
        }
        assert_eq!(t.gap_ranges(), 4);
        assert!(t.arrived(1), "below the floor counts as arrived");
        assert_eq!(t.observe(1, 4), SeqVerdict::Untracked { highest: 40 });
        assert_eq!(t.observe(39, 4), SeqVerdict::LateFill { highest: 40 });
    }

    #[test]
    fn implausible_jump_is_reported_and_not_adopted() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(1, 8), SeqVerdict::InOrder);
        assert_eq!(
            t.observe(u64::MAX, 8),
            SeqVerdict::Implausible { highest: 1 }
        );
        assert_eq!(t.highest(), 1);
        assert_eq!(t.observe(2, 8), SeqVerdict::InOrder);
        // A crash gap (a write-ahead reservation skips a few thousand seqs) is still a gap.
        assert_eq!(t.observe(4098, 8), SeqVerdict::Gap { from: 3, to: 4097 });
        assert_eq!(t.observe(4099, 8), SeqVerdict::InOrder);
    }

    #[test]
    fn huge_jump_is_one_range() {
        let mut t = SeqTracker::default();
        t.observe(1, 2);
        let far = 1 + MAX_PLAUSIBLE_JUMP;
        assert_eq!(
            t.observe(far, 2),
            SeqVerdict::Gap {
                from: 2,
                to: far - 1
            }
        );
        assert_eq!(t.missing(), far - 2);
        assert_eq!(t.gap_ranges(), 1);
    }
}
