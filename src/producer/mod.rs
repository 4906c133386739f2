//! The producer: a pure stamping core ([`Stamper`]), where a restart continues ([`resume`]) and
//! the Kafka shell ([`pipeline`], [`observe`]).
//!
//! The stamper turns content into the next [`Envelope`] of a node: seq + 1, one physical clock
//! reading, Lamport tick, vector send-stamp (own entry + 1), HLC send. What the node observes of
//! other nodes' messages is merged by [`Stamper::observe`]: Lamport `update` (a receive event),
//! vector `merge` (no event: entries count sends), HLC receive. So after node A sent Lamport
//! 1, 2, 3, an observing node B stamps 5 (three receives → 4, the send → 5) and vector
//! `{A: 3, B: 1}`. The node's own messages read back are ignored.
//!
//! The stamper reuses one envelope: [`Stamper::stamp`] overwrites it in place and returns a
//! reference, so stamping allocates nothing per message (the id is written into the same
//! string; the vector clock lives inside the envelope when it is sent).

pub mod observe;
pub mod pipeline;
pub mod resume;

use crate::clock::hybrid::HlcError;
use crate::clock::{ClockType, HybridClock, LamportClock, PhysicalClock, VectorTimestamp};
use crate::envelope::{Envelope, MessageTimestamp};
use crate::state::{ClockValues, PersistedClocks};
use crate::time::{nanos_to_secs, TimeSource};
use crate::NodeId;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// How a node stamps its messages.
#[derive(Debug, Clone)]
pub struct StamperConfig {
    /// The node's id (also the default message key).
    pub node_id: NodeId,
    /// The clock that orders the node's messages.
    pub clock_type: ClockType,
    /// Put `vector_time` on every message even when `clock_type` is not vector (the vector clock
    /// is always maintained; it is sent for clock type vector or when this is set).
    pub send_vector: bool,
    /// The HLC refuses observed timestamps further ahead of local physical time than this.
    pub max_hlc_offset_ms: u64,
    /// Seed of the message-id generator (`None`: from the OS). Ids are UUID v4.
    pub id_seed: Option<u64>,
}

impl StamperConfig {
    /// Defaults for `node_id` and `clock_type` (max HLC offset 500 ms).
    pub fn new(node_id: impl Into<NodeId>, clock_type: ClockType) -> Self {
        Self {
            node_id: node_id.into(),
            clock_type,
            send_vector: false,
            max_hlc_offset_ms: 500,
            id_seed: None,
        }
    }
}

/// What [`Stamper::observe`] did with a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// Merged into the clocks.
    Merged,
    /// The node's own message: ignored.
    Own,
    /// Lamport and vector merged, but the HLC refused the timestamp as too far ahead.
    HybridRefused(HlcError),
}

/// One node's stamping state. Not `Sync` by itself: share it behind a mutex.
#[derive(Debug)]
pub struct Stamper {
    node: NodeId,
    clock_type: ClockType,
    physical: Arc<PhysicalClock>,
    lamport: LamportClock,
    hybrid: HybridClock,
    uses_hybrid: bool,
    /// The reusable envelope; its `vector_time` is the live vector clock when vectors are sent.
    env: Envelope,
    /// The live vector clock when vectors are not sent.
    hidden_vector: VectorTimestamp,
    rng: SmallRng,
    observed: u64,
}

impl Stamper {
    /// A stamper for `cfg` reading `physical`, resuming from `resume` (a node's persisted state,
    /// or [`PersistedClocks::new`] for a fresh one).
    pub fn new(
        cfg: &StamperConfig,
        physical: Arc<PhysicalClock>,
        resume: &PersistedClocks,
    ) -> Self {
        let send_vector = cfg.send_vector || cfg.clock_type == ClockType::Vector;
        let pt: Arc<dyn TimeSource> = physical.clone();
        let hybrid =
            HybridClock::resume(pt, cfg.max_hlc_offset_ms, resume.hybrid.unwrap_or_default());
        let env = Envelope {
            id: String::with_capacity(36),
            content: String::new(),
            // The stamper writes every field: seq, physical and logical time are always `Some`.
            seq: Some(resume.seq),
            timestamp: MessageTimestamp {
                node_id: cfg.node_id.clone(),
                timestamp: 0.0,
                clock_type: cfg.clock_type,
                physical_time: Some(0.0),
                logical_time: Some(resume.lamport),
                vector_time: send_vector.then(|| resume.vector.clone()),
                hybrid_time: None,
                simulated_time: None,
                unmapped_vector_entries: None,
            },
            simulated_skew_ms: None,
        };
        let rng = match cfg.id_seed {
            Some(s) => SmallRng::seed_from_u64(s),
            None => SmallRng::from_entropy(),
        };
        Self {
            node: cfg.node_id.clone(),
            clock_type: cfg.clock_type,
            physical,
            lamport: LamportClock::starting_at(resume.lamport),
            hybrid,
            uses_hybrid: cfg.clock_type == ClockType::Hybrid || resume.hybrid.is_some(),
            env,
            hidden_vector: if send_vector {
                VectorTimestamp::new()
            } else {
                resume.vector.clone()
            },
            rng,
            observed: 0,
        }
    }

    /// The node id.
    pub fn node(&self) -> &NodeId {
        &self.node
    }

    /// The clock type stamped.
    pub fn clock_type(&self) -> ClockType {
        self.clock_type
    }

    /// The node's physical clock.
    pub fn physical(&self) -> &Arc<PhysicalClock> {
        &self.physical
    }

    /// Timestamps of other nodes merged so far.
    pub fn observed_count(&self) -> u64 {
        self.observed
    }

    /// HLC timestamps refused as too far ahead so far.
    pub fn hybrid_refused_count(&self) -> u64 {
        self.hybrid.refused_count()
    }

    fn vector_mut(&mut self) -> &mut VectorTimestamp {
        match self.env.timestamp.vector_time.as_mut() {
            Some(v) => v,
            None => &mut self.hidden_vector,
        }
    }

    fn vector(&self) -> &VectorTimestamp {
        self.env
            .timestamp
            .vector_time
            .as_ref()
            .unwrap_or(&self.hidden_vector)
    }

    /// Stamps the node's next message with `content` and returns it (valid until the next call).
    ///
    /// seq + 1, a physical reading (`timestamp` = system time, `physical_time` = the node's clock,
    /// `simulated_skew_ms` = injected error while simulating), Lamport tick, own vector entry + 1,
    /// HLC send (hybrid clock type only). Counters saturate at `u64::MAX` rather than wrap.
    pub fn stamp(&mut self, content: &str) -> &Envelope {
        let reading = self.physical.read();
        // Disjoint field borrows: the node id is not copied per message.
        let vector = match self.env.timestamp.vector_time.as_mut() {
            Some(v) => v,
            None => &mut self.hidden_vector,
        };
        vector.increment(&self.node);
        let hybrid = if self.clock_type == ClockType::Hybrid {
            self.uses_hybrid = true;
            Some(self.hybrid.send())
        } else {
            None
        };
        let bytes: [u8; 16] = self.rng.gen();
        let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
        let seq = self.seq().saturating_add(1);
        let env = &mut self.env;
        env.id.clear();
        env.id.push_str(
            id.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        );
        env.content.clear();
        env.content.push_str(content);
        env.seq = Some(seq);
        env.timestamp.timestamp = nanos_to_secs(reading.system_ns);
        env.timestamp.physical_time = Some(nanos_to_secs(reading.physical_ns));
        env.timestamp.logical_time = Some(self.lamport.tick());
        env.timestamp.hybrid_time = hybrid;
        env.simulated_skew_ms = reading.simulated_error_ns.map(|e| e as f64 / 1e6);
        &self.env
    }

    /// The seq of the last stamped message (the resumed one before the first stamp).
    pub fn seq(&self) -> u64 {
        self.env.seq.unwrap_or(0)
    }

    /// The last stamped envelope (seq 0 / empty before the first stamp).
    pub fn last(&self) -> &Envelope {
        &self.env
    }

    /// Merges a timestamp read from the topic: Lamport update, vector merge, HLC receive. The
    /// node's own timestamps are ignored.
    pub fn observe(&mut self, ts: &MessageTimestamp) -> Observed {
        if ts.node_id == self.node {
            return Observed::Own;
        }
        self.observed += 1;
        if let Some(l) = ts.logical_time {
            self.lamport.update(l);
        }
        if let Some(v) = &ts.vector_time {
            self.vector_mut().merge(v);
        }
        if let Some(h) = &ts.hybrid_time {
            self.uses_hybrid = true;
            if let Err(e) = self.hybrid.receive(h) {
                return Observed::HybridRefused(e);
            }
        }
        Observed::Merged
    }

    /// The clock values the last stamped message carries (for [`crate::state::StateStore::cover`]).
    pub fn values(&self) -> ClockValues<'_> {
        ClockValues {
            seq: self.seq(),
            lamport: self.lamport.value(),
            vector: Some(self.vector()),
            hybrid: self.uses_hybrid.then(|| self.hybrid.snapshot()),
        }
    }

    /// The node's current clocks, for a clean save.
    pub fn snapshot(&self) -> PersistedClocks {
        let mut s = PersistedClocks::new(&self.node);
        s.seq = self.seq();
        s.lamport = self.lamport.value();
        s.vector = self.vector().clone();
        s.hybrid = self.uses_hybrid.then(|| self.hybrid.snapshot());
        s
    }
}

#[cfg(test)]
mod tests;
