//! The delivery order's state at a commit, as a compact text that fits in Kafka's offset-commit
//! metadata (one string per committed partition, `offset.metadata.max.bytes`, 4096 by default).
//!
//! A consumer that resumes at its committed offsets needs to know what the delivery order had
//! delivered before them, or the first new messages would wait for predecessors that are never
//! read again. A [`Checkpoint`] is that knowledge:
//!
//! * **causal** — the frontier: per node, how many of its messages were delivered or given up on
//!   (the causal buffer's [`delivered`](super::CausalBuffer::delivered) vector), and the counts
//!   given up on that have not arrived (so that one arriving after the restart is still delivered,
//!   as `late`);
//! * **total** — the last key delivered in order `(Lamport time, node, seq)`, and per node the
//!   highest seq delivered and the largest Lamport time delivered (everything the node can still
//!   send, including its held messages that are read again, has a larger time).
//!
//! # Format, version 1
//!
//! ASCII, fields separated by `;`, nodes in increasing byte order, each once:
//!
//! ```text
//! kts1c;A=300;B=299/5-7/9             causal: node=delivered count (> 0), then given-up ranges
//! kts1t;41:B:7;A=9:40;B=7:41;C=0:-     total: last (time:node:seq, or -); node=seq:max time (or -)
//! kts1-                                omitted: the state did not fit (see OMITTED)
//! ```
//!
//! Numbers are decimal without leading zeros. Node ids keep `A-Z a-z 0-9 . _ -` as they are and
//! write every other byte as `%XX` (upper-case hex). The decoder is strict: anything else is a
//! [`CheckpointError`], never a panic, so a foreign or corrupt metadata string is recognised as
//! such. [`Checkpoint::decode`] ∘ [`Checkpoint::encode`] is the identity.

use crate::NodeId;
use std::fmt::Write;

/// The prefix of every version-1 checkpoint.
const V1: &str = "kts1";

/// The metadata written when the state did not fit in the limit: the next run knows the state was
/// omitted (not lost to corruption) and falls back as documented in the consumer.
pub const OMITTED: &str = "kts1-";

/// Why a metadata string is not a usable checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Empty metadata: nothing was stored with the offsets.
    #[error("no ordering state stored with the committed offsets")]
    Empty,
    /// Not written by this program.
    #[error("the commit metadata is not a kafka-timesync checkpoint")]
    Foreign,
    /// Written by another version of this program.
    #[error("unsupported checkpoint version '{0}'")]
    UnsupportedVersion(String),
    /// The writer's state did not fit in the metadata limit.
    #[error("the previous run's ordering state did not fit in the commit metadata")]
    Omitted,
    /// A checkpoint of this version that does not parse.
    #[error("corrupt checkpoint at byte {at}: {what}")]
    Corrupt {
        /// Byte position in the metadata string.
        at: usize,
        /// What was wrong there.
        what: &'static str,
    },
    /// The partitions' metadata strings differ (they are written identically in one commit).
    #[error("the partitions' commit metadata disagree")]
    Inconsistent,
}

/// One node's total-order state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalNode {
    /// The node.
    pub node: NodeId,
    /// The highest seq of this node delivered (0: none).
    pub delivered_seq: u64,
    /// The largest Lamport time of its messages delivered (`None`: none yet, e.g. a silent
    /// member). Its held messages, read again after a restart, and its later ones have larger
    /// times (a node's Lamport times strictly increase).
    pub max_time: Option<u64>,
}

/// The total-order buffer's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TotalState {
    /// The last key delivered in order: (Lamport time, node, seq).
    pub last: Option<(u64, NodeId, u64)>,
    /// Per node, sorted by node id, each once.
    pub nodes: Vec<TotalNode>,
}

/// One node's causal-delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CausalNode {
    /// The node.
    pub node: NodeId,
    /// How many of its messages were delivered or given up on (> 0).
    pub delivered: u64,
    /// The counts given up on and not arrived since: increasing, disjoint, non-adjacent inclusive
    /// ranges within `1..=delivered`.
    pub skipped: Vec<(u64, u64)>,
}

/// What a delivery order needs to continue after a restart. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Causal delivery, per node sorted by node id, each once.
    Causal(Vec<CausalNode>),
    /// Total-order delivery.
    Total(TotalState),
}

impl Checkpoint {
    /// The version-1 text (see the module docs).
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(64);
        match self {
            Checkpoint::Causal(nodes) => {
                s.push_str(V1);
                s.push('c');
                for n in nodes {
                    s.push(';');
                    escape(&n.node, &mut s);
                    let _ = write!(s, "={}", n.delivered);
                    for &(first, last) in &n.skipped {
                        if first == last {
                            let _ = write!(s, "/{first}");
                        } else {
                            let _ = write!(s, "/{first}-{last}");
                        }
                    }
                }
            }
            Checkpoint::Total(t) => {
                s.push_str(V1);
                s.push_str("t;");
                match &t.last {
                    Some((time, node, seq)) => {
                        let _ = write!(s, "{time}:");
                        escape(node, &mut s);
                        let _ = write!(s, ":{seq}");
                    }
                    None => s.push('-'),
                }
                for n in &t.nodes {
                    s.push(';');
                    escape(&n.node, &mut s);
                    let _ = write!(s, "={}:", n.delivered_seq);
                    match n.max_time {
                        Some(m) => {
                            let _ = write!(s, "{m}");
                        }
                        None => s.push('-'),
                    }
                }
            }
        }
        s
    }

    /// The text if it is at most `limit` bytes (else the caller stores [`OMITTED`]).
    pub fn encode_within(&self, limit: usize) -> Option<String> {
        let s = self.encode();
        (s.len() <= limit).then_some(s)
    }

    /// Parses a metadata string written by [`encode`](Self::encode).
    pub fn decode(text: &str) -> Result<Self, CheckpointError> {
        if text.is_empty() {
            return Err(CheckpointError::Empty);
        }
        let Some(rest) = text.strip_prefix("kts") else {
            return Err(CheckpointError::Foreign);
        };
        let version: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if version != "1" {
            return Err(CheckpointError::UnsupportedVersion(version));
        }
        let body = &text[V1.len()..];
        let mut p = Parser {
            s: text.as_bytes(),
            at: V1.len(),
        };
        match body.as_bytes().first() {
            Some(b'-') if body.len() == 1 => Err(CheckpointError::Omitted),
            Some(b'c') => {
                p.at += 1;
                let mut nodes: Vec<CausalNode> = Vec::new();
                while !p.done() {
                    p.expect(b';')?;
                    let node = p.node(b'=')?;
                    p.expect(b'=')?;
                    let delivered = p.number()?;
                    if delivered == 0 {
                        return Err(p.corrupt("zero count"));
                    }
                    if nodes
                        .last()
                        .is_some_and(|l| l.node.as_bytes() >= node.as_bytes())
                    {
                        return Err(p.corrupt("nodes not in increasing order"));
                    }
                    let mut skipped: Vec<(u64, u64)> = Vec::new();
                    while p.peek() == Some(b'/') {
                        p.at += 1;
                        let first = p.number()?;
                        let last = if p.peek() == Some(b'-') {
                            p.at += 1;
                            let last = p.number()?;
                            if last <= first {
                                return Err(p.corrupt("empty or single range written as a-b"));
                            }
                            last
                        } else {
                            first
                        };
                        let after_previous = skipped
                            .last()
                            .map_or(1, |&(_, l): &(u64, u64)| l.saturating_add(2));
                        if first < after_previous || last > delivered {
                            return Err(p.corrupt("given-up ranges out of order or out of range"));
                        }
                        skipped.push((first, last));
                    }
                    nodes.push(CausalNode {
                        node,
                        delivered,
                        skipped,
                    });
                }
                Ok(Checkpoint::Causal(nodes))
            }
            Some(b't') => {
                p.at += 1;
                p.expect(b';')?;
                let last = if p.peek() == Some(b'-') {
                    p.at += 1;
                    None
                } else {
                    let time = p.number()?;
                    p.expect(b':')?;
                    let node = p.node(b':')?;
                    p.expect(b':')?;
                    let seq = p.number()?;
                    Some((time, node, seq))
                };
                let mut nodes: Vec<TotalNode> = Vec::new();
                while !p.done() {
                    p.expect(b';')?;
                    let node = p.node(b'=')?;
                    p.expect(b'=')?;
                    let delivered_seq = p.number()?;
                    p.expect(b':')?;
                    let max_time = if p.peek() == Some(b'-') {
                        p.at += 1;
                        None
                    } else {
                        Some(p.number()?)
                    };
                    if nodes
                        .last()
                        .is_some_and(|l| l.node.as_bytes() >= node.as_bytes())
                    {
                        return Err(p.corrupt("nodes not in increasing order"));
                    }
                    nodes.push(TotalNode {
                        node,
                        delivered_seq,
                        max_time,
                    });
                }
                Ok(Checkpoint::Total(TotalState { last, nodes }))
            }
            _ => Err(p.corrupt("expected 'c', 't' or '-' after the version")),
        }
    }

    /// The checkpoint stored with a set of committed partitions, from their metadata strings
    /// (one per partition that has a committed offset). One commit writes the same string to
    /// every partition, so they must agree. `Ok(None)`: no partition has a commit.
    pub fn from_partitions<'a>(
        metadata: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Self>, CheckpointError> {
        let mut first: Option<&str> = None;
        for m in metadata {
            match first {
                None => first = Some(m),
                Some(f) if f != m => return Err(CheckpointError::Inconsistent),
                Some(_) => {}
            }
        }
        first.map(Self::decode).transpose()
    }

    /// Number of nodes described.
    pub fn nodes(&self) -> usize {
        match self {
            Checkpoint::Causal(n) => n.len(),
            Checkpoint::Total(t) => t.nodes.len(),
        }
    }
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn escape(node: &str, out: &mut String) {
    for &b in node.as_bytes() {
        if is_plain(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.at >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn corrupt(&self, what: &'static str) -> CheckpointError {
        CheckpointError::Corrupt { at: self.at, what }
    }

    fn expect(&mut self, b: u8) -> Result<(), CheckpointError> {
        if self.peek() == Some(b) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.corrupt(match b {
                b';' => "expected ';'",
                b'=' => "expected '='",
                _ => "expected ':'",
            }))
        }
    }

    /// A decimal u64 without leading zeros.
    fn number(&mut self) -> Result<u64, CheckpointError> {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.s[start..self.at];
        if digits.is_empty() {
            return Err(self.corrupt("expected a number"));
        }
        if digits.len() > 1 && digits[0] == b'0' {
            return Err(CheckpointError::Corrupt {
                at: start,
                what: "leading zero",
            });
        }
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
            .ok_or(CheckpointError::Corrupt {
                at: start,
                what: "number out of range",
            })
    }

    /// An escaped node id, up to (not including) `end`.
    fn node(&mut self, end: u8) -> Result<NodeId, CheckpointError> {
        let start = self.at;
        let mut bytes = Vec::new();
        while let Some(b) = self.peek() {
            if b == end {
                break;
            }
            if b == b'%' {
                let hex = self
                    .s
                    .get(self.at + 1..self.at + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .filter(|h| {
                        h.bytes()
                            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
                    })
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| self.corrupt("bad %XX escape"))?;
                if is_plain(hex) {
                    return Err(self.corrupt("needless escape"));
                }
                bytes.push(hex);
                self.at += 3;
            } else if is_plain(b) {
                bytes.push(b);
                self.at += 1;
            } else {
                return Err(self.corrupt("unexpected character in a node id"));
            }
        }
        if bytes.is_empty() {
            return Err(CheckpointError::Corrupt {
                at: start,
                what: "empty node id",
            });
        }
        String::from_utf8(bytes)
            .map(NodeId::from)
            .map_err(|_| CheckpointError::Corrupt {
                at: start,
                what: "node id is not UTF-8",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn causal(pairs: &[(&str, u64)]) -> Checkpoint {
        Checkpoint::Causal(
            pairs
                .iter()
                .map(|(n, d)| CausalNode {
                    node: (*n).into(),
                    delivered: *d,
                    skipped: Vec::new(),
                })
                .collect(),
        )
    }

    #[test]
    fn causal_text_is_compact_and_readable() {
        let mut c = causal(&[("A", 300), ("B", 299), ("host:1", 2)]);
        if let Checkpoint::Causal(nodes) = &mut c {
            nodes[1].skipped = vec![(5, 7), (9, 9)];
        }
        assert_eq!(c.encode(), "kts1c;A=300;B=299/5-7/9;host%3A1=2");
        assert_eq!(Checkpoint::decode(&c.encode()), Ok(c));
        assert_eq!(causal(&[]).encode(), "kts1c");
    }

    #[test]
    fn total_text_round_trips() {
        let t = Checkpoint::Total(TotalState {
            last: Some((41, "B".into(), 7)),
            nodes: vec![
                TotalNode {
                    node: "A".into(),
                    delivered_seq: 9,
                    max_time: Some(40),
                },
                TotalNode {
                    node: "C".into(),
                    delivered_seq: 0,
                    max_time: None,
                },
            ],
        });
        assert_eq!(t.encode(), "kts1t;41:B:7;A=9:40;C=0:-");
        assert_eq!(Checkpoint::decode(&t.encode()), Ok(t));
    }

    #[test]
    fn foreign_corrupt_and_omitted_texts_are_typed_errors() {
        use CheckpointError::*;
        assert_eq!(Checkpoint::decode(""), Err(Empty));
        assert_eq!(Checkpoint::decode("{\"offset\":3}"), Err(Foreign));
        assert_eq!(
            Checkpoint::decode("kts2c;A=1"),
            Err(UnsupportedVersion("2".into()))
        );
        assert_eq!(Checkpoint::decode(OMITTED), Err(Omitted));
        for bad in [
            "kts1c;A=0",
            "kts1c;A=01",
            "kts1c;B=1;A=1",
            "kts1c;A=1;A=2",
            "kts1c;=1",
            "kts1c;A=",
            "kts1c;A=18446744073709551616",
            "kts1c;A%3a=1",
            "kts1c;A%41=1",
            "kts1c;A%3=1",
            "kts1c;A:=1",
            "kts1c;%FF=1",
            "kts1c;A=1;",
            "kts1c;A=9/3-3",
            "kts1c;A=9/5-4",
            "kts1c;A=9/3/4",
            "kts1c;A=9/5/3",
            "kts1c;A=9/0",
            "kts1c;A=9/8-10",
            "kts1cA=1",
            "kts1x",
            "kts1t",
            "kts1t;1:A",
            "kts1t;-;A=1",
            "kts1t;-;A=1:",
        ] {
            assert!(
                matches!(Checkpoint::decode(bad), Err(Corrupt { .. })),
                "{bad}: {:?}",
                Checkpoint::decode(bad)
            );
        }
    }

    #[test]
    fn partitions_must_agree() {
        let a = causal(&[("A", 1)]).encode();
        let b = causal(&[("A", 2)]).encode();
        assert_eq!(Checkpoint::from_partitions([]), Ok(None));
        assert_eq!(
            Checkpoint::from_partitions([a.as_str(), a.as_str()]),
            Ok(Some(causal(&[("A", 1)])))
        );
        assert_eq!(
            Checkpoint::from_partitions([a.as_str(), b.as_str()]),
            Err(CheckpointError::Inconsistent)
        );
        assert_eq!(
            Checkpoint::from_partitions(["", ""]),
            Err(CheckpointError::Empty)
        );
    }

    #[test]
    fn oversized_state_is_omitted() {
        let names: Vec<String> = (0..400).map(|i| format!("node-{i:04}")).collect();
        let many: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1_000_000)).collect();
        let c = causal(&many);
        assert!(c.encode().len() > 4096);
        assert_eq!(c.encode_within(4096), None);
        let small = causal(&[("A", 1)]);
        assert_eq!(small.encode_within(4096), Some("kts1c;A=1".to_string()));
    }

    fn node_id() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9._-]{1,12}",
            "\\PC{1,8}",
            proptest::collection::vec(any::<char>(), 1..6).prop_map(|v| v.into_iter().collect()),
        ]
    }

    fn checkpoint() -> impl Strategy<Value = Checkpoint> {
        let causal = proptest::collection::btree_map(
            node_id(),
            (
                1..u64::MAX,
                proptest::collection::btree_set(1..u64::MAX, 0..6),
            ),
            0..12,
        )
        .prop_map(|nodes| {
            let mut nodes: Vec<CausalNode> = nodes
                .into_iter()
                .map(|(node, (delivered, counts))| {
                    // Counts within 1..=delivered, merged into maximal ranges.
                    let counts: std::collections::BTreeSet<u64> =
                        counts.into_iter().map(|c| 1 + c % delivered).collect();
                    let mut skipped: Vec<(u64, u64)> = Vec::new();
                    for c in counts {
                        match skipped.last_mut() {
                            Some((_, l)) if *l + 1 >= c => *l = (*l).max(c),
                            _ => skipped.push((c, c)),
                        }
                    }
                    CausalNode {
                        node: node.into(),
                        delivered,
                        skipped,
                    }
                })
                .collect();
            nodes.sort_by(|a, b| a.node.as_bytes().cmp(b.node.as_bytes()));
            Checkpoint::Causal(nodes)
        });
        let total = (
            proptest::option::of((any::<u64>(), node_id(), any::<u64>())),
            proptest::collection::btree_map(
                node_id(),
                (any::<u64>(), proptest::option::of(any::<u64>())),
                0..12,
            ),
        )
            .prop_map(|(last, nodes)| {
                let mut nodes: Vec<TotalNode> = nodes
                    .into_iter()
                    .map(|(n, (delivered_seq, max_time))| TotalNode {
                        node: n.into(),
                        delivered_seq,
                        max_time,
                    })
                    .collect();
                nodes.sort_by(|a, b| a.node.as_bytes().cmp(b.node.as_bytes()));
                Checkpoint::Total(TotalState {
                    last: last.map(|(t, n, s)| (t, n.into(), s)),
                    nodes,
                })
            });
        prop_oneof![causal, total]
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(c in checkpoint()) {
            let text = c.encode();
            prop_assert!(text.is_ascii());
            prop_assert_eq!(Checkpoint::decode(&text), Ok(c));
        }

        #[test]
        fn arbitrary_text_never_panics_and_accepted_text_is_canonical(s in "\\PC{0,40}", b in "kts1[ct;:=%A-F0-9a-c.-]{0,30}") {
            for text in [s, b] {
                if let Ok(c) = Checkpoint::decode(&text) {
                    prop_assert_eq!(c.encode(), text);
                }
            }
        }
    }
}
