//! A bounded table of per-node state with least-recently-seen eviction.
//!
//! Hostile input may carry a new node id in every message, so the table holds at most `cap`
//! nodes. Entries are addressed by a [`NodeKey`] (slot + generation): when a node is evicted its
//! slot's generation changes, so keys held elsewhere (window records, registrations) simply stop
//! resolving instead of pointing at another node's state.
//!
//! Recency is kept in a lazy queue of `(epoch, slot)` touches: a touch appends, stale entries are
//! skipped when looking for the victim, and the queue is rebuilt once it holds more than twice
//! the live nodes (plus a constant), so every operation is amortised `O(1)` (`O(log n)` for the
//! rebuild's sort). Nodes touched in the current epoch (the message being analysed) are never
//! evicted.

use crate::NodeId;
use std::collections::{HashMap, VecDeque};

/// Addresses one node's entry; stale once the node is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeKey {
    slot: u32,
    gen: u32,
}

#[derive(Debug)]
struct Slot<T> {
    gen: u32,
    last: u64,
    value: Option<(NodeId, T)>,
}

/// What an insertion displaced.
pub(crate) struct Evicted<T> {
    pub(crate) id: NodeId,
    pub(crate) value: T,
}

#[derive(Debug)]
pub(crate) struct NodeTable<T> {
    index: HashMap<NodeId, u32>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    lru: VecDeque<(u64, u32)>,
    epoch: u64,
    cap: usize,
}

impl<T> NodeTable<T> {
    /// A table holding at most `cap` (≥ 1) nodes.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            lru: VecDeque::new(),
            epoch: 0,
            cap: cap.max(1),
        }
    }

    /// Starts a new epoch: nodes touched from now on are protected until the next call.
    pub(crate) fn begin_epoch(&mut self) {
        self.epoch += 1;
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn lru_len(&self) -> usize {
        self.lru.len()
    }

    pub(crate) fn find(&self, id: &str) -> Option<NodeKey> {
        let &slot = self.index.get(id)?;
        let s = self.slots.get(slot as usize)?;
        Some(NodeKey { slot, gen: s.gen })
    }

    pub(crate) fn get(&self, k: NodeKey) -> Option<&T> {
        match self.slots.get(k.slot as usize) {
            Some(s) if s.gen == k.gen => s.value.as_ref().map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, k: NodeKey) -> Option<&mut T> {
        match self.slots.get_mut(k.slot as usize) {
            Some(s) if s.gen == k.gen => s.value.as_mut().map(|(_, v)| v),
            _ => None,
        }
    }

    /// Marks `k` as seen in the current epoch.
    pub(crate) fn touch(&mut self, k: NodeKey) {
        let epoch = self.epoch;
        let pushed = match self.slots.get_mut(k.slot as usize) {
            Some(s) if s.gen == k.gen && s.value.is_some() && s.last != epoch => {
                s.last = epoch;
                true
            }
            _ => false,
        };
        if pushed {
            self.lru.push_back((epoch, k.slot));
            if self.lru.len() > 2 * self.index.len() + 64 {
                self.rebuild_lru();
            }
        }
    }

    fn rebuild_lru(&mut self) {
        let mut live: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| (s.last, i as u32))
            .collect();
        live.sort_unstable();
        self.lru = live.into();
    }

    /// Inserts a node not yet in the table (touched), evicting the least recently seen node when
    /// full. Returns `None` when full and every node was touched in the current epoch.
    pub(crate) fn insert(
        &mut self,
        id: &NodeId,
        value: T,
    ) -> Option<(NodeKey, Option<Evicted<T>>)> {
        let mut evicted = None;
        if self.index.len() >= self.cap {
            evicted = Some(self.evict_lru()?);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    last: 0,
                    value: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.value = Some((id.clone(), value));
        s.last = self.epoch;
        let key = NodeKey { slot, gen: s.gen };
        self.index.insert(id.clone(), slot);
        self.lru.push_back((self.epoch, slot));
        if self.lru.len() > 2 * self.index.len() + 64 {
            self.rebuild_lru();
        }
        Some((key, evicted))
    }

    fn evict_lru(&mut self) -> Option<Evicted<T>> {
        while let Some(&(tick, slot)) = self.lru.front() {
            let s = &mut self.slots[slot as usize];
            if s.value.is_none() || s.last != tick {
                self.lru.pop_front();
                continue;
            }
            if tick == self.epoch {
                return None;
            }
            self.lru.pop_front();
            let (id, value) = s.value.take()?;
            s.gen = s.gen.wrapping_add(1);
            self.index.remove(&id);
            self.free.push(slot);
            return Some(Evicted { id, value });
        }
        None
    }

    /// Live nodes in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&NodeId, &T)> + '_ {
        self.slots
            .iter()
            .filter_map(|s| s.value.as_ref().map(|(id, v)| (id, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::from(s)
    }

    #[test]
    fn evicts_least_recently_seen_and_invalidates_its_key() {
        let mut t = NodeTable::new(2);
        t.begin_epoch();
        let (a, _) = t.insert(&id("a"), 1).unwrap();
        t.begin_epoch();
        let (b, _) = t.insert(&id("b"), 2).unwrap();
        t.begin_epoch();
        t.touch(a); // b is now the least recently seen
        t.begin_epoch();
        let (c, ev) = t.insert(&id("c"), 3).unwrap();
        let ev = ev.expect("table was full");
        assert_eq!(&*ev.id, "b");
        assert_eq!(ev.value, 2);
        assert_eq!(t.get(b), None, "the evicted key no longer resolves");
        assert_eq!(t.get(a), Some(&1));
        assert_eq!(t.get(c), Some(&3));
        assert_ne!(b, c, "a reused slot has a new generation");
        assert_eq!(t.find("b"), None);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn nodes_touched_in_the_current_epoch_are_protected() {
        let mut t = NodeTable::new(1);
        t.begin_epoch();
        t.insert(&id("a"), ()).unwrap();
        assert!(t.insert(&id("b"), ()).is_none());
        t.begin_epoch();
        assert!(t.insert(&id("b"), ()).is_some());
    }

    #[test]
    fn recency_queue_stays_bounded() {
        let mut t = NodeTable::new(4);
        let keys: Vec<_> = (0..4)
            .map(|i| {
                t.begin_epoch();
                t.insert(&id(&format!("n{i}")), i).unwrap().0
            })
            .collect();
        for _ in 0..10_000 {
            for k in &keys {
                t.begin_epoch();
                t.touch(*k);
            }
        }
        assert!(t.lru_len() <= 2 * 4 + 64 + 1);
        assert_eq!(t.len(), 4);
    }
}
