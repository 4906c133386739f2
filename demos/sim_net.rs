//! A deterministic simulated network for the demos.
//!
//! The nodes of a demo are actors: plain state machines that react to two kinds of events, a
//! message delivered to them or a timer they set. [`SimNet`] is the event loop that drives them.
//! It keeps one virtual clock (nanoseconds since the start of the run) and a priority queue of
//! pending events ordered by (due time, sequence number), so the order of everything that happens
//! is a function of the seed alone: OS threads would make the interleaving — and therefore the
//! printed tables — differ from run to run.
//!
//! Each message gets a delay drawn uniformly from `[min_delay, max_delay]` with a seeded RNG.
//! With `fifo = false` two messages on the same link can overtake each other (reordering); with
//! `fifo = true` a message is never delivered before an earlier one on the same (from, to) link,
//! which is the channel model Lamport's mutual exclusion and the totally ordered multicast assume.
//!
//! Payloads do not travel inside the event queue: they are serialised and handed to a [`Wire`]
//! when sent, and fetched back (and deserialised) when the scheduler delivers them. The offline
//! wire is an in-memory map; `--bootstrap` swaps in a wire that carries every payload through a
//! Kafka topic. The schedule stays the seeded one either way, so both transports print the same.

use anyhow::{anyhow, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

/// Index of a node in a demo (0-based).
pub type NodeIx = usize;

/// Nanoseconds per millisecond (the unit most tables print).
pub const MS: i64 = 1_000_000;

/// Delay model of a [`SimNet`].
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// Smallest one-way delay (ns).
    pub min_delay_ns: i64,
    /// Largest one-way delay (ns), inclusive.
    pub max_delay_ns: i64,
    /// Keep each (from, to) link first-in first-out.
    pub fifo: bool,
}

/// A message as the receiver sees it.
#[derive(Debug, Clone)]
pub struct Packet<M> {
    /// Sender.
    pub from: NodeIx,
    /// Receiver.
    pub to: NodeIx,
    /// Virtual time of the send (ns since the start of the run).
    pub sent_ns: i64,
    /// The payload, after a round trip through the wire.
    pub msg: M,
}

/// What the event loop hands to the demo next.
#[derive(Debug)]
pub enum Event<M> {
    /// A message arrives at `packet.to`.
    Deliver(Packet<M>),
    /// A timer set by `node` with [`SimNet::set_timer`] fires.
    Timer {
        /// The node that set it.
        node: NodeIx,
        /// Caller-chosen meaning.
        tag: u64,
    },
}

/// Carries serialised payloads from sender to receiver.
pub trait Wire {
    /// Takes a payload on the wire.
    fn carry(&mut self, id: u64, from: NodeIx, to: NodeIx, bytes: Vec<u8>) -> Result<()>;
    /// Hands back the payload of message `id` (carried earlier).
    fn fetch(&mut self, id: u64, from: NodeIx, to: NodeIx) -> Result<Vec<u8>>;
    /// What carried the messages, for `--format json`.
    fn describe(&self) -> serde_json::Value;
    /// The same in one line for people.
    fn summary(&self) -> String;
}

/// The offline wire: payloads wait in memory.
#[derive(Debug, Default)]
pub struct MemoryWire {
    held: HashMap<u64, Vec<u8>>,
}

impl Wire for MemoryWire {
    fn carry(&mut self, id: u64, _from: NodeIx, _to: NodeIx, bytes: Vec<u8>) -> Result<()> {
        self.held.insert(id, bytes);
        Ok(())
    }
    fn fetch(&mut self, id: u64, _from: NodeIx, _to: NodeIx) -> Result<Vec<u8>> {
        self.held
            .remove(&id)
            .ok_or_else(|| anyhow!("message {id} was never carried"))
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "kind": "simulated" })
    }
    fn summary(&self) -> String {
        "simulated network, in-process".to_string()
    }
}

#[derive(Debug)]
enum Pending {
    Message {
        id: u64,
        from: NodeIx,
        to: NodeIx,
        sent_ns: i64,
    },
    Timer {
        node: NodeIx,
        tag: u64,
    },
}

/// The event loop: a virtual clock, seeded delays and a queue of pending events.
pub struct SimNet<'w, M> {
    cfg: NetConfig,
    rng: StdRng,
    now_ns: i64,
    next_seq: u64,
    next_id: u64,
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    pending: HashMap<u64, Pending>,
    last_on_link: HashMap<(NodeIx, NodeIx), i64>,
    wire: &'w mut dyn Wire,
    sent: u64,
    _msg: std::marker::PhantomData<fn() -> M>,
}

impl<'w, M: Serialize + DeserializeOwned> SimNet<'w, M> {
    /// A network at virtual time 0 whose delays come from `seed`.
    pub fn new(cfg: NetConfig, seed: u64, wire: &'w mut dyn Wire) -> Self {
        Self {
            cfg,
            rng: StdRng::seed_from_u64(seed),
            now_ns: 0,
            next_seq: 0,
            next_id: 0,
            heap: BinaryHeap::new(),
            pending: HashMap::new(),
            last_on_link: HashMap::new(),
            wire,
            sent: 0,
            _msg: std::marker::PhantomData,
        }
    }

    /// Current virtual time (ns since the start of the run).
    pub fn now_ns(&self) -> i64 {
        self.now_ns
    }

    /// Messages sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// A seeded random number in `[lo, hi]` for the demo's own choices (think times, jitter…),
    /// drawn from the same stream as the delays so one seed fixes the whole run.
    pub fn random_range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.rng.gen_range(lo..=hi)
        }
    }

    /// Sends `msg` from `from` to `to`; returns the message id.
    pub fn send(&mut self, from: NodeIx, to: NodeIx, msg: &M) -> Result<u64> {
        let delay = self.random_range(self.cfg.min_delay_ns, self.cfg.max_delay_ns);
        let mut due = self.now_ns + delay.max(0);
        if self.cfg.fifo {
            let last = self.last_on_link.entry((from, to)).or_insert(i64::MIN);
            due = due.max(*last);
            *last = due;
        }
        let id = self.next_id;
        self.next_id += 1;
        let bytes = serde_json::to_vec(msg).context("encoding a demo message")?;
        self.wire.carry(id, from, to, bytes)?;
        self.push(
            due,
            Pending::Message {
                id,
                from,
                to,
                sent_ns: self.now_ns,
            },
        );
        self.sent += 1;
        Ok(id)
    }

    /// Sends `msg` from `from` to every node in `to` except `from` itself.
    pub fn multicast(
        &mut self,
        from: NodeIx,
        to: impl IntoIterator<Item = NodeIx>,
        msg: &M,
    ) -> Result<()> {
        for t in to {
            if t != from {
                self.send(from, t, msg)?;
            }
        }
        Ok(())
    }

    /// Fires `Event::Timer { node, tag }` at virtual time `at_ns` (not before now).
    pub fn set_timer(&mut self, node: NodeIx, at_ns: i64, tag: u64) {
        let at = at_ns.max(self.now_ns);
        self.push(at, Pending::Timer { node, tag });
    }

    fn push(&mut self, due: i64, p: Pending) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((due, seq)));
        self.pending.insert(seq, p);
    }

    /// The next event in (time, sequence) order, advancing the virtual clock; `None` when idle.
    pub fn next_event(&mut self) -> Result<Option<Event<M>>> {
        let Some(Reverse((due, seq))) = self.heap.pop() else {
            return Ok(None);
        };
        self.now_ns = self.now_ns.max(due);
        match self.pending.remove(&seq) {
            Some(Pending::Timer { node, tag }) => Ok(Some(Event::Timer { node, tag })),
            Some(Pending::Message {
                id,
                from,
                to,
                sent_ns,
            }) => {
                let bytes = self.wire.fetch(id, from, to)?;
                let msg = serde_json::from_slice(&bytes)
                    .with_context(|| format!("decoding demo message {id} ({from}→{to})"))?;
                Ok(Some(Event::Deliver(Packet {
                    from,
                    to,
                    sent_ns,
                    msg,
                })))
            }
            None => Err(anyhow!("event queue out of step (seq {seq})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, fifo: bool) -> Vec<(u64, NodeIx, NodeIx, i64)> {
        let mut wire = MemoryWire::default();
        let cfg = NetConfig {
            min_delay_ns: MS,
            max_delay_ns: 50 * MS,
            fifo,
        };
        let mut net: SimNet<u32> = SimNet::new(cfg, seed, &mut wire);
        for i in 0..40u32 {
            net.send((i % 3) as usize, ((i + 1) % 3) as usize, &i)
                .unwrap();
        }
        let mut out = vec![];
        while let Some(ev) = net.next_event().unwrap() {
            if let Event::Deliver(p) = ev {
                // Message i went from i % 3 to (i + 1) % 3: the payload survived the wire.
                assert_eq!(
                    (p.from, p.to),
                    ((p.msg % 3) as usize, ((p.msg + 1) % 3) as usize)
                );
                out.push((p.msg as u64, p.from, p.to, net.now_ns()));
            }
        }
        out
    }

    #[test]
    fn same_seed_same_schedule_and_different_seed_differs() {
        assert_eq!(run(7, false), run(7, false));
        assert_ne!(run(7, false), run(8, false));
    }

    #[test]
    fn non_fifo_reorders_and_fifo_keeps_link_order() {
        let reordered = run(1, false);
        assert_eq!(reordered.len(), 40);
        let inverted = |v: &[(u64, NodeIx, NodeIx, i64)]| {
            v.iter().enumerate().any(|(i, a)| {
                v[i + 1..]
                    .iter()
                    .any(|b| a.1 == b.1 && a.2 == b.2 && a.0 > b.0)
            })
        };
        assert!(
            inverted(&reordered),
            "40 messages over 3 links with 1–50 ms delays reorder"
        );
        let fifo = run(1, true);
        assert!(!inverted(&fifo));
        // Time never runs backwards.
        assert!(fifo.windows(2).all(|w| w[0].3 <= w[1].3));
    }

    #[test]
    fn timers_interleave_with_messages_by_time() {
        let mut wire = MemoryWire::default();
        let cfg = NetConfig {
            min_delay_ns: 10 * MS,
            max_delay_ns: 10 * MS,
            fifo: true,
        };
        let mut net: SimNet<u8> = SimNet::new(cfg, 0, &mut wire);
        net.set_timer(0, 20 * MS, 9);
        net.send(0, 1, &5).unwrap();
        assert!(matches!(net.next_event().unwrap(), Some(Event::Deliver(p)) if p.msg == 5));
        assert_eq!(net.now_ns(), 10 * MS);
        assert!(matches!(
            net.next_event().unwrap(),
            Some(Event::Timer { node: 0, tag: 9 })
        ));
        assert_eq!(net.now_ns(), 20 * MS);
        assert!(net.next_event().unwrap().is_none());
    }
}
