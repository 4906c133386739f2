//! One seeded message exchange between three nodes, stamped with every kind of clock at once:
//! physical (each node's own, possibly skewed, clock), Lamport and vector. The skew, logical
//! and vector demos all look at the same exchange.
//!
//! Happened-before is computed independently of any clock, from the structure of the run
//! (program order on each node plus send → receive edges), so the demos can check each clock
//! against the truth.

use crate::sim_net::{Event, NetConfig, NodeIx, SimNet, Wire, MS};
use anyhow::Result;
use kafka_timesync::clock::{LamportClock, VectorClock, VectorTimestamp};
use kafka_timesync::NodeId;
use serde::{Deserialize, Serialize};

/// What happened at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Kind {
    /// Sent message `msg` to `to`.
    Send { msg: u32, to: NodeIx },
    /// Received message `msg` from `from`.
    Recv { msg: u32, from: NodeIx },
}

/// One event of the exchange with all its timestamps.
#[derive(Debug, Clone, Serialize)]
pub struct ExEvent {
    /// Position in true-time order.
    pub idx: usize,
    /// Node index.
    pub node: NodeIx,
    /// Send or receive.
    #[serde(flatten)]
    pub kind: Kind,
    /// True (simulated) time, ns since the start of the run.
    pub true_ns: i64,
    /// The node's physical clock reading, ns since the start of the run.
    pub physical_ns: i64,
    /// Lamport time.
    pub lamport: u64,
    /// Vector time (Fidge/Mattern: every event increments the own entry).
    pub vector: VectorTimestamp,
}

/// A finished exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Node names.
    pub nodes: Vec<NodeId>,
    /// Events in true-time order.
    pub events: Vec<ExEvent>,
    /// `before[b][a]`: event a happened before event b (transitive, from the run's structure).
    before: Vec<Vec<bool>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ExMsg {
    id: u32,
    lamport: u64,
    vector: VectorTimestamp,
    physical_ns: i64,
}

impl Exchange {
    /// True when event `a` happened before event `b`.
    pub fn happened_before(&self, a: usize, b: usize) -> bool {
        self.before[b][a]
    }

    /// True when neither happened before the other (and they differ).
    pub fn concurrent(&self, a: usize, b: usize) -> bool {
        a != b && !self.happened_before(a, b) && !self.happened_before(b, a)
    }

    /// "B:send m3→C"-style label.
    pub fn label(&self, e: &ExEvent) -> String {
        match e.kind {
            Kind::Send { msg, to } => {
                format!("{} sends m{msg} to {}", self.nodes[e.node], self.nodes[to])
            }
            Kind::Recv { msg, from } => format!(
                "{} receives m{msg} from {}",
                self.nodes[e.node], self.nodes[from]
            ),
        }
    }

    /// Pairs (send event, receive event) of every message.
    pub fn messages(&self) -> Vec<(usize, usize)> {
        let mut out = vec![];
        for r in &self.events {
            if let Kind::Recv { msg, .. } = r.kind {
                if let Some(s) = self
                    .events
                    .iter()
                    .find(|s| matches!(s.kind, Kind::Send { msg: m, .. } if m == msg))
                {
                    out.push((s.idx, r.idx));
                }
            }
        }
        out
    }
}

/// Runs the exchange: `n_msgs` messages sent at random times in the first second, cycling over
/// every ordered pair of nodes, 1–40 ms delays with reordering. `physical(node, true_ns)` reads node's clock.
pub fn run(
    names: &[&str],
    n_msgs: u32,
    seed: u64,
    wire: &mut dyn Wire,
    physical: &mut dyn FnMut(NodeIx, i64) -> i64,
) -> Result<Exchange> {
    let n = names.len();
    let nodes: Vec<NodeId> = names.iter().map(|s| NodeId::from(*s)).collect();
    let cfg = NetConfig {
        min_delay_ns: MS,
        max_delay_ns: 40 * MS,
        fifo: false,
    };
    let mut net: SimNet<ExMsg> = SimNet::new(cfg, seed, wire);
    let lamport: Vec<LamportClock> = (0..n).map(|_| LamportClock::new()).collect();
    let vector: Vec<VectorClock> = nodes
        .iter()
        .map(|id| VectorClock::new(id.clone()))
        .collect();
    // Message k goes over ordered pair k mod n(n-1), so every pair of nodes talks both ways.
    let pair = |k: u32| {
        let p = k as usize % (n * (n - 1));
        let (from, mut to) = (p / (n - 1), p % (n - 1));
        if to >= from {
            to += 1;
        }
        (from, to)
    };
    for k in 0..n_msgs {
        let node = pair(k).0;
        let at = net.random_range(0, 1000 * MS);
        net.set_timer(node, at, k as u64 + 1);
    }
    let mut events: Vec<ExEvent> = vec![];
    let mut before: Vec<Vec<bool>> = vec![];
    let mut last_on_node: Vec<Option<usize>> = vec![None; n];
    let mut send_of: std::collections::HashMap<u32, usize> = Default::default();
    // Messages are named m1, m2, … in the order they are sent.
    let mut next_msg = 0u32;
    while let Some(ev) = net.next_event()? {
        let now = net.now_ns();
        let (node, kind, lam, vt, cause, physical_ns) = match ev {
            Event::Timer { node, tag } => {
                let to = pair(tag as u32 - 1).1;
                next_msg += 1;
                let msg = next_msg;
                let lam = lamport[node].tick();
                let vt = vector[node].send_stamp();
                let phys = physical(node, now);
                let m = ExMsg {
                    id: msg,
                    lamport: lam,
                    vector: vt.clone(),
                    physical_ns: phys,
                };
                net.send(node, to, &m)?;
                (node, Kind::Send { msg, to }, lam, vt, None, phys)
            }
            Event::Deliver(p) => {
                let lam = lamport[p.to].update(p.msg.lamport);
                let vt = vector[p.to].receive_event(&p.msg.vector);
                let phys = physical(p.to, now);
                (
                    p.to,
                    Kind::Recv {
                        msg: p.msg.id,
                        from: p.from,
                    },
                    lam,
                    vt,
                    send_of.get(&p.msg.id).copied(),
                    phys,
                )
            }
        };
        let idx = events.len();
        let mut b = vec![false; idx + 1];
        for pred in [last_on_node[node], cause].into_iter().flatten() {
            b[pred] = true;
            for (i, v) in before[pred].iter().enumerate() {
                b[i] |= *v;
            }
        }
        for row in before.iter_mut() {
            row.push(false);
        }
        before.push(b);
        last_on_node[node] = Some(idx);
        if let Kind::Send { msg, .. } = kind {
            send_of.insert(msg, idx);
        }
        events.push(ExEvent {
            idx,
            node,
            kind,
            true_ns: now,
            physical_ns,
            lamport: lam,
            vector: vt,
        });
    }
    Ok(Exchange {
        nodes,
        events,
        before,
    })
}

/// Formats a vector timestamp as "(a,b,c)" in the order of `nodes`.
pub fn vt_tuple(vt: &VectorTimestamp, nodes: &[NodeId]) -> String {
    let parts: Vec<String> = nodes.iter().map(|n| vt.get(n).to_string()).collect();
    format!("({})", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_net::MemoryWire;
    use kafka_timesync::clock::CausalOrder;

    #[test]
    fn vector_clocks_characterise_happened_before_exactly() {
        for seed in 0..30 {
            let ex = run(
                &["A", "B", "C"],
                15,
                seed,
                &mut MemoryWire::default(),
                &mut |_, t| t,
            )
            .unwrap();
            assert_eq!(ex.events.len(), 30);
            for a in &ex.events {
                for b in &ex.events {
                    let hb = ex.happened_before(a.idx, b.idx);
                    assert_eq!(
                        hb,
                        a.vector.compare(&b.vector) == CausalOrder::Before,
                        "seed {seed}"
                    );
                    if hb {
                        assert!(a.lamport < b.lamport, "clock condition");
                        assert!(a.true_ns <= b.true_ns);
                    }
                }
            }
        }
    }
}
