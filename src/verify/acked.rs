//! The acknowledged set: every write the producers' logs say the broker acknowledged, held
//! compactly per partition and sorted by offset, plus the sends that failed.
//!
//! Layout (after [`AckedSetBuilder::finish`]):
//! * per partition, one [`Entry`] of 40 bytes per acknowledged write, sorted by offset (ties by
//!   id): the consumer reads a partition in offset order, so a cursor finds the entry of the
//!   next record in amortised O(1);
//! * an id index of 16 bytes per write (a 64-bit fingerprint and the entry's position), sorted,
//!   for "is this id acknowledged somewhere else?" (binary search, only for records that do not
//!   match their own offset);
//! * message ids as 128 bits: a canonical UUID (what kafka-producer writes) is stored as its
//!   value, any other id as a 128-bit hash whose version nibble is 0, with its text kept aside
//!   for reports (so no UUID id can collide with a hashed one).
//!
//! Identical acknowledgements (same id at the same partition and offset, e.g. one log given
//! twice) are one acknowledged write.

use crate::NodeId;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// A message id as 128 bits (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdKey([u64; 2]);

/// Bits of the UUID version nibble in the 128-bit value.
const VERSION_MASK: u128 = 0xF << 76;

impl IdKey {
    /// The key of `id`, and whether `id` is a canonical UUID (lower-case, hyphenated, non-zero
    /// version), whose text can be rebuilt from the key.
    pub fn of(id: &str) -> (IdKey, bool) {
        if id.len() == 36 {
            if let Ok(u) = uuid::Uuid::parse_str(id) {
                let v = u.as_u128();
                let mut buf = uuid::Uuid::encode_buffer();
                if v & VERSION_MASK != 0 && u.hyphenated().encode_lower(&mut buf) == id {
                    return (Self::from_u128(v), true);
                }
            }
        }
        let half = |salt: u8| {
            // `DefaultHasher::new()` has fixed keys: deterministic within a build, which is all
            // that is needed (keys never leave the process).
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write_u8(salt);
            id.hash(&mut h);
            h.finish()
        };
        let v = (u128::from(half(1)) << 64 | u128::from(half(2))) & !VERSION_MASK;
        (Self::from_u128(v), false)
    }

    fn from_u128(v: u128) -> Self {
        IdKey([(v >> 64) as u64, v as u64])
    }

    fn as_u128(self) -> u128 {
        u128::from(self.0[0]) << 64 | u128::from(self.0[1])
    }

    /// 64 bits for the id index.
    fn fingerprint(self) -> u64 {
        self.0[0] ^ self.0[1].rotate_left(17)
    }
}

/// What became of an acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// The consumer has not reached its offset yet.
    Unseen,
    /// Its record was read at its acknowledged offset.
    Delivered,
    /// The consumer read past its offset and did not find it there.
    Lost,
}

/// One acknowledged write (40 bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) id: IdKey,
    pub(crate) offset: i64,
    pub(crate) seq: u64,
    pub(crate) node: u32,
    pub(crate) state: State,
    /// Its id was read at another offset before this one was reached.
    pub(crate) elsewhere: bool,
}

/// The acknowledged writes of one partition, sorted by offset.
#[derive(Debug, Default)]
pub(crate) struct PartitionAcks {
    pub(crate) partition: i32,
    pub(crate) entries: Vec<Entry>,
    /// Entries before this index lie below the consumer's position.
    pub(crate) cursor: usize,
}

/// One send whose delivery failed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failed {
    pub(crate) node: u32,
    pub(crate) seq: Option<u64>,
}

/// Node names and non-UUID id texts.
#[derive(Debug, Default)]
pub(crate) struct Names {
    nodes: Vec<NodeId>,
    node_index: HashMap<NodeId, u32>,
    other_ids: HashMap<IdKey, Box<str>>,
}

impl Names {
    fn node(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.node_index.get(name) {
            return i;
        }
        let i = u32::try_from(self.nodes.len()).unwrap_or(u32::MAX);
        let n: NodeId = NodeId::from(name);
        self.nodes.push(n.clone());
        self.node_index.insert(n, i);
        i
    }

    fn id(&mut self, id: &str) -> IdKey {
        let (key, canonical) = IdKey::of(id);
        if !canonical {
            self.other_ids.entry(key).or_insert_with(|| id.into());
        }
        key
    }

    /// The node's name.
    pub(crate) fn node_name(&self, node: u32) -> &str {
        self.nodes.get(node as usize).map_or("?", |n| n)
    }

    /// The id's text.
    pub(crate) fn id_text(&self, key: IdKey) -> String {
        match self.other_ids.get(&key) {
            Some(s) => s.to_string(),
            None => uuid::Uuid::from_u128(key.as_u128())
                .hyphenated()
                .to_string(),
        }
    }

    fn heap_bytes(&self) -> usize {
        let node_bytes: usize = self.nodes.iter().map(|n| n.len() + 16).sum();
        let id_bytes: usize = self.other_ids.values().map(|s| s.len() + 40).sum();
        node_bytes * 2 + id_bytes
    }
}

/// Collects acknowledged writes and failed sends (the ack-log parser feeds it).
#[derive(Debug, Default)]
pub struct AckedSetBuilder {
    partitions: HashMap<i32, Vec<Entry>>,
    failed: HashMap<IdKey, Failed>,
    names: Names,
}

impl AckedSetBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an acknowledged write: `id`, sent by `node` with `seq`, at `partition`/`offset`.
    pub fn delivered(&mut self, id: &str, node: &str, seq: u64, partition: i32, offset: i64) {
        let entry = Entry {
            id: self.names.id(id),
            offset,
            seq,
            node: self.names.node(node),
            state: State::Unseen,
            elsewhere: false,
        };
        self.partitions.entry(partition).or_default().push(entry);
    }

    /// Records a send whose delivery failed.
    pub fn failed(&mut self, id: &str, node: Option<&str>, seq: Option<u64>) {
        let key = self.names.id(id);
        let node = self.names.node(node.unwrap_or(""));
        self.failed.insert(key, Failed { node, seq });
    }

    /// The finished set.
    pub fn finish(self) -> AckedSet {
        let mut partitions: Vec<PartitionAcks> = self
            .partitions
            .into_iter()
            .map(|(partition, mut entries)| {
                entries.sort_unstable_by_key(|e| (e.offset, e.id));
                entries.dedup_by_key(|e| (e.offset, e.id));
                entries.shrink_to_fit();
                PartitionAcks {
                    partition,
                    entries,
                    cursor: 0,
                }
            })
            .collect();
        partitions.sort_unstable_by_key(|p| p.partition);
        let total: usize = partitions.iter().map(|p| p.entries.len()).sum();
        let mut index = Vec::with_capacity(total);
        for (slot, p) in partitions.iter().enumerate() {
            for (i, e) in p.entries.iter().enumerate() {
                index.push(IndexEntry {
                    fingerprint: e.id.fingerprint(),
                    slot: slot as u32,
                    entry: i as u32,
                });
            }
        }
        index.sort_unstable_by_key(|x| (x.fingerprint, x.slot, x.entry));
        AckedSet {
            partitions,
            index,
            failed: self.failed,
            names: self.names,
        }
    }
}

/// A position in the id index (16 bytes).
#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    fingerprint: u64,
    slot: u32,
    entry: u32,
}

/// The acknowledged set; see the module documentation.
#[derive(Debug)]
pub struct AckedSet {
    pub(crate) partitions: Vec<PartitionAcks>,
    index: Vec<IndexEntry>,
    pub(crate) failed: HashMap<IdKey, Failed>,
    pub(crate) names: Names,
}

impl AckedSet {
    /// Number of acknowledged writes.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Number of failed sends.
    pub fn failed_len(&self) -> usize {
        self.failed.len()
    }

    /// Bytes of heap memory held (entries, id index, failed sends, names).
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self
            .partitions
            .iter()
            .map(|p| p.entries.capacity() * std::mem::size_of::<Entry>())
            .sum();
        entries
            + self.partitions.capacity() * std::mem::size_of::<PartitionAcks>()
            + self.index.capacity() * std::mem::size_of::<IndexEntry>()
            + self.failed.capacity() * (std::mem::size_of::<(IdKey, Failed)>() + 1)
            + self.names.heap_bytes()
    }

    /// The slot of `partition` in `partitions`.
    pub(crate) fn slot(&self, partition: i32) -> Option<usize> {
        self.partitions
            .binary_search_by_key(&partition, |p| p.partition)
            .ok()
    }

    /// Every acknowledged (slot, entry index) whose id is `key`.
    pub(crate) fn find(&self, key: IdKey) -> impl Iterator<Item = (usize, usize)> + '_ {
        let fp = key.fingerprint();
        let start = self.index.partition_point(|x| x.fingerprint < fp);
        self.index[start..]
            .iter()
            .take_while(move |x| x.fingerprint == fp)
            .map(|x| (x.slot as usize, x.entry as usize))
            .filter(move |&(s, i)| self.partitions[s].entries[i].id == key)
    }

    /// Groups of index positions sharing one id (an id acknowledged at two places).
    pub(crate) fn ids_acknowledged_twice(&self) -> Vec<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.index.len() {
            let fp = self.index[i].fingerprint;
            let mut j = i + 1;
            while j < self.index.len() && self.index[j].fingerprint == fp {
                j += 1;
            }
            if j - i > 1 {
                // Same fingerprint: group by the full id.
                let mut group: Vec<(IdKey, (usize, usize))> = self.index[i..j]
                    .iter()
                    .map(|x| {
                        let (s, e) = (x.slot as usize, x.entry as usize);
                        (self.partitions[s].entries[e].id, (s, e))
                    })
                    .collect();
                group.sort_unstable_by_key(|g| g.0);
                for same in group.chunk_by(|a, b| a.0 == b.0) {
                    if same.len() > 1 {
                        out.push(same.iter().map(|g| g.1).collect());
                    }
                }
            }
            i = j;
        }
        out
    }
}
