//! The engine's ordering state across restarts: the checkpoint committed with the offsets, its
//! restore, and, without one, the assumption that what a node sent before its first message read
//! was delivered. [`resume`](super::resume()) decides which applies.

use super::{ConsumerEngine, DeliveryMode, EventSink, Orderer};
use crate::delivery::Checkpoint;
use crate::envelope::Envelope;

impl ConsumerEngine {
    /// The ordering state to commit together with [`commit_positions`](Self::commit_positions)
    /// (`None` in arrival mode, which has none).
    ///
    /// After `max_messages`, what the order released but the engine withheld is not counted: a
    /// node's state stops below the first of its withheld messages.
    pub fn checkpoint(&self) -> Option<Checkpoint> {
        match &self.orderer {
            Orderer::Arrival => None,
            Orderer::Causal(buf) => {
                let mut nodes = buf.checkpoint();
                if !self.unsent.is_empty() {
                    for n in &mut nodes {
                        if let Some(&(c, _)) = self.unsent.get(&n.node) {
                            n.delivered = n.delivered.min(c.saturating_sub(1));
                            let cap = n.delivered;
                            n.skipped.retain(|&(first, _)| first <= cap);
                            if let Some(last) = n.skipped.last_mut() {
                                last.1 = last.1.min(cap);
                            }
                        }
                    }
                    nodes.retain(|n| n.delivered > 0);
                }
                Some(Checkpoint::Causal(nodes))
            }
            Orderer::Total(buf) => {
                let mut state = buf.checkpoint();
                if !self.unsent.is_empty() {
                    for n in &mut state.nodes {
                        if let Some(&(c, t)) = self.unsent.get(&n.node) {
                            n.delivered_seq = n.delivered_seq.min(c.saturating_sub(1));
                            // The withheld message is read again: the node's bound stays below it.
                            let below = t.and_then(|t| t.checked_sub(1));
                            n.max_time = n.max_time.min(below);
                        }
                    }
                    state.last = self.last_in_order.clone();
                }
                Some(Checkpoint::Total(state))
            }
        }
    }

    /// Continues from an earlier run's [`checkpoint`](Self::checkpoint). Call it before the first
    /// record. A checkpoint of another delivery mode is refused (nothing changes).
    pub fn restore(&mut self, cp: &Checkpoint) -> Result<(), ModeMismatch> {
        match (&mut self.orderer, cp) {
            (Orderer::Causal(buf), Checkpoint::Causal(nodes)) => {
                buf.restore(nodes, &mut self.released);
                for n in nodes {
                    self.restored.set(&n.node, n.delivered);
                }
            }
            (Orderer::Total(buf), Checkpoint::Total(state)) => {
                buf.restore(state);
                for n in &state.nodes {
                    self.restored.set(&n.node, n.delivered_seq);
                }
            }
            _ => {
                return Err(ModeMismatch {
                    engine: self.cfg.mode,
                    checkpoint: match cp {
                        Checkpoint::Causal(_) => DeliveryMode::Causal,
                        Checkpoint::Total(_) => DeliveryMode::Total,
                    },
                })
            }
        }
        // Restoring releases nothing (nothing waits yet); drop any bookkeeping it produced.
        self.released.clear();
        Ok(())
    }

    /// Without a checkpoint, at a start that is not the beginning of the log: in causal mode,
    /// everything a node sent before its first message read counts as delivered (see the module
    /// docs). Call it before the first record. No effect in the other modes: the total order
    /// waits for its members' next messages, not for predecessors.
    pub fn assume_delivered_before_start(&mut self) {
        self.assume_before_start = matches!(self.orderer, Orderer::Causal(_));
    }

    /// The shell has read every partition up to where it ended when reading started. With
    /// [`assume_delivered_before_start`](Self::assume_delivered_before_start), messages waiting
    /// for nodes of which nothing was read are released (`ready`): those nodes' messages all lie
    /// before the start.
    pub fn caught_up<S: EventSink + ?Sized>(&mut self, sink: &mut S) {
        if !self.assume_before_start {
            return;
        }
        if let Orderer::Causal(buf) = &mut self.orderer {
            for (node, need) in buf.awaited() {
                if !self.started.contains(&node) {
                    buf.assume_delivered(&node, need, &mut self.released);
                }
            }
        }
        self.emit_released(sink);
    }

    /// True when the restored state counts `env` as delivered by an earlier run: its own count
    /// (causal: its own vector entry, when it has a vector; total: its seq) is within it.
    pub(super) fn delivered_before_restart(&self, env: &Envelope) -> bool {
        let node = &env.timestamp.node_id;
        let own = match (&self.orderer, &env.timestamp.vector_time) {
            (Orderer::Causal(_), Some(vt)) => vt.get(node),
            // Without a seq a message is unordered: never held, so never counted by a checkpoint.
            _ => match env.seq {
                Some(seq) => seq,
                None => return false,
            },
        };
        own <= self.restored.get(node)
    }
}

/// A checkpoint of one delivery mode given to an engine of another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the stored ordering state is for {checkpoint} delivery, this consumer delivers in {engine} order")]
pub struct ModeMismatch {
    /// This engine's mode.
    pub engine: DeliveryMode,
    /// The checkpoint's mode.
    pub checkpoint: DeliveryMode,
}
