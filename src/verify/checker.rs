//! The checker: consumed records against the acknowledged set.

use super::acked::{AckedSet, IdKey, State};
use crate::violation::ViolationKind;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// One violation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Its kind.
    pub kind: ViolationKind,
    /// The node whose message is concerned (the acknowledged one where there are two).
    pub node: String,
    /// The message ids involved.
    pub ids: Vec<String>,
    /// The partition.
    pub partition: i32,
    /// The offsets involved.
    pub offsets: Vec<i64>,
    /// A sentence for people.
    pub detail: String,
}

/// What identifies a consumed message: its id, node and seq.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Observed<'a> {
    /// The message id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// The sending node.
    #[serde(borrow)]
    pub node: Cow<'a, str>,
    /// The sender's seq.
    pub seq: u64,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    timestamp: PayloadTimestamp<'a>,
}

#[derive(Deserialize)]
struct PayloadTimestamp<'a> {
    #[serde(borrow)]
    node_id: Cow<'a, str>,
}

impl<'a> Observed<'a> {
    /// The id, node and seq of a kafka-timesync record value (other fields are skipped, not
    /// validated); `None` when it is not one.
    pub fn from_payload(payload: &'a [u8]) -> Option<Self> {
        let p: Payload<'a> = serde_json::from_slice(payload).ok()?;
        Some(Observed {
            id: p.id,
            node: p.timestamp.node_id,
            seq: p.seq,
        })
    }

    /// The id, node and seq of a decoded stamp (a header-stamped record); `None` without a seq.
    pub fn from_envelope(env: &'a crate::envelope::Envelope) -> Option<Self> {
        Some(Observed {
            id: Cow::Borrowed(&env.id),
            node: Cow::Borrowed(&env.timestamp.node_id),
            seq: env.seq?,
        })
    }
}

/// The verification report. Accounting: `acknowledged = delivered + unseen + lost`, and
/// `lost = lost_write + inconsistent_offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Acknowledged writes in the logs.
    pub acknowledged: u64,
    /// Sends the logs report failed.
    pub failed_sends: u64,
    /// Acknowledged writes read at their acknowledged position.
    pub delivered: u64,
    /// Acknowledged writes the consumer has not reached (not a loss).
    pub unseen: u64,
    /// Acknowledged writes the consumer read past without finding them there.
    pub lost: u64,
    /// Violations by kind (every kind present).
    pub violations: BTreeMap<&'static str, u64>,
    /// Records read again at an offset already read (a redelivery, not a duplicate write).
    pub redelivered: u64,
    /// Unseen acknowledged writes per partition (partitions with none omitted).
    pub unseen_by_partition: BTreeMap<i32, u64>,
}

/// What a verification run concluded, from worst to best.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged writes are missing (`lost_write` or `inconsistent_offset`).
    Loss,
    /// Other violations (`duplicate_write`, `nonmonotonic_send`, `aborted_read`), no loss.
    Violations,
    /// No violation, but some acknowledged writes were not reached.
    Incomplete,
    /// Every acknowledged write read where it was acknowledged; no violation.
    Clean,
}

impl Report {
    /// Count of one kind.
    pub fn count(&self, kind: ViolationKind) -> u64 {
        self.violations.get(kind.as_str()).copied().unwrap_or(0)
    }

    /// The conclusion.
    pub fn outcome(&self) -> Outcome {
        if self.lost > 0 {
            Outcome::Loss
        } else if self.violations.values().any(|&n| n > 0) {
            Outcome::Violations
        } else if self.unseen > 0 {
            Outcome::Incomplete
        } else {
            Outcome::Clean
        }
    }
}

/// Checks consumed records against an [`AckedSet`]. Pure: feed it what was read, in each
/// partition's offset order, with [`observe`](Self::observe), and where the log starts with
/// [`read_up_to`](Self::read_up_to); findings are appended to the caller's vector as they are
/// made.
///
/// Invariants: every acknowledged write is in exactly one state (unseen, delivered, lost) and
/// only leaves "unseen", once; a finding is reported once, when it is made.
#[derive(Debug)]
pub struct Checker {
    acked: AckedSet,
    /// Per partition, one past the highest offset read.
    read_next: BTreeMap<i32, i64>,
    violations: [u64; ViolationKind::COUNT],
    delivered: u64,
    lost: u64,
    redelivered: u64,
    /// Ids read away from their acknowledged offset before it was reached: where.
    seen_elsewhere: HashMap<IdKey, (i32, i64)>,
    /// Findings about the logs themselves, returned by the first call.
    pending: Vec<Finding>,
}

impl Checker {
    /// A checker for `acked`. Violations visible in the logs alone (`nonmonotonic_send`, an id
    /// acknowledged at two positions) are found here and handed out by [`take_log_findings`].
    ///
    /// [`take_log_findings`]: Self::take_log_findings
    pub fn new(acked: AckedSet) -> Self {
        let mut c = Checker {
            acked,
            read_next: BTreeMap::new(),
            violations: [0; ViolationKind::COUNT],
            delivered: 0,
            lost: 0,
            redelivered: 0,
            seen_elsewhere: HashMap::new(),
            pending: Vec::new(),
        };
        c.check_logs();
        c
    }

    /// The findings about the logs themselves (once).
    pub fn take_log_findings(&mut self, out: &mut Vec<Finding>) {
        out.append(&mut self.pending);
    }

    /// The acknowledged set.
    pub fn acked(&self) -> &AckedSet {
        &self.acked
    }

    fn count(&mut self, kind: ViolationKind) {
        self.violations[kind.index()] += 1;
    }

    fn check_logs(&mut self) {
        let mut found = Vec::new();
        // nonmonotonic_send: per partition, in offset order, a seq below the highest seq the
        // same node already has at a lower offset.
        for p in &self.acked.partitions {
            // Per node, the highest seq at an offset below the current one, and its entry.
            let mut highest: HashMap<u32, (u64, usize)> = HashMap::new();
            let mut group_start = 0;
            for (i, e) in p.entries.iter().enumerate() {
                if e.offset != p.entries[group_start].offset {
                    for (j, g) in p.entries[group_start..i].iter().enumerate() {
                        let h = highest.entry(g.node).or_insert((g.seq, group_start + j));
                        if g.seq > h.0 {
                            *h = (g.seq, group_start + j);
                        }
                    }
                    group_start = i;
                }
                let Some(&(seq, at)) = highest.get(&e.node) else {
                    continue;
                };
                if seq <= e.seq {
                    continue;
                }
                let before = &p.entries[at];
                let names = &self.acked.names;
                found.push(Finding {
                    kind: ViolationKind::NonmonotonicSend,
                    node: names.node_name(e.node).to_string(),
                    ids: vec![names.id_text(before.id), names.id_text(e.id)],
                    partition: p.partition,
                    offsets: vec![before.offset, e.offset],
                    detail: format!(
                        "node {} seq {} was acknowledged at partition {} offset {}, above seq {} at offset {}",
                        names.node_name(e.node),
                        seq,
                        p.partition,
                        before.offset,
                        e.seq,
                        e.offset
                    ),
                });
            }
        }
        // duplicate_write in the logs: one id acknowledged at two positions.
        for group in self.acked.ids_acknowledged_twice() {
            let (s0, i0) = group[0];
            let first = self.acked.partitions[s0].entries[i0];
            let places: Vec<String> = group
                .iter()
                .map(|&(s, i)| {
                    format!(
                        "{}/{}",
                        self.acked.partitions[s].partition,
                        self.acked.partitions[s].entries[i].offset
                    )
                })
                .collect();
            found.push(Finding {
                kind: ViolationKind::DuplicateWrite,
                node: self.acked.names.node_name(first.node).to_string(),
                ids: vec![self.acked.names.id_text(first.id)],
                partition: self.acked.partitions[s0].partition,
                offsets: group
                    .iter()
                    .map(|&(s, i)| self.acked.partitions[s].entries[i].offset)
                    .collect(),
                detail: format!(
                    "message acknowledged at {} positions (partition/offset {})",
                    group.len(),
                    places.join(", ")
                ),
            });
        }
        for f in &found {
            self.count(f.kind);
        }
        self.pending = found;
    }

    /// One record read at `partition`/`offset`: `msg` is what it carries (`None`: not a
    /// kafka-timesync message). Records must come in offset order per partition; an offset
    /// already read counts as a redelivery and changes nothing else.
    pub fn observe(
        &mut self,
        partition: i32,
        offset: i64,
        msg: Option<&Observed<'_>>,
        out: &mut Vec<Finding>,
    ) {
        out.append(&mut self.pending);
        let next = self.read_next.entry(partition).or_insert(i64::MIN);
        if offset < *next {
            self.redelivered += 1;
            return;
        }
        *next = offset.saturating_add(1);
        let key = msg.map(|m| IdKey::of(&m.id).0);
        let mut matched = false;
        if let Some(slot) = self.acked.slot(partition) {
            self.pass_below(slot, offset, out);
            loop {
                let p = &mut self.acked.partitions[slot];
                let Some(e) = p.entries.get_mut(p.cursor) else {
                    break;
                };
                if e.offset != offset {
                    break;
                }
                p.cursor += 1;
                if key == Some(e.id) {
                    e.state = State::Delivered;
                    matched = true;
                    self.delivered += 1;
                    if e.elsewhere {
                        let first = self
                            .seen_elsewhere
                            .remove(&e.id)
                            .unwrap_or((partition, i64::MIN));
                        if let Some(m) = msg {
                            self.duplicate(&m.id, &m.node, m.seq, (partition, offset), first, out);
                        }
                    }
                    continue;
                }
                e.state = State::Lost;
                let e = *e;
                self.lost += 1;
                self.count(ViolationKind::InconsistentOffset);
                let names = &self.acked.names;
                let mut ids = vec![names.id_text(e.id)];
                let found = match msg {
                    Some(m) => {
                        ids.push(m.id.to_string());
                        format!("message {} (node {} seq {})", m.id, m.node, m.seq)
                    }
                    None => "a record that is not a kafka-timesync message".to_string(),
                };
                out.push(Finding {
                    kind: ViolationKind::InconsistentOffset,
                    node: names.node_name(e.node).to_string(),
                    ids,
                    partition,
                    offsets: vec![offset],
                    detail: format!(
                        "node {} seq {} was acknowledged at partition {partition} offset {offset}, which holds {found}",
                        names.node_name(e.node),
                        e.seq
                    ),
                });
            }
        }
        let (Some(m), Some(key)) = (msg, key) else {
            return;
        };
        if !matched {
            // One id at two offsets: read here, and read (now or later) where it was
            // acknowledged. Found here but never at its acknowledged offset, it is a misplaced
            // write (reported there as lost or inconsistent), not a duplicate.
            let places: Vec<(usize, usize)> = self.acked.find(key).collect();
            let delivered_at = places
                .iter()
                .find(|&&(s, i)| self.acked.partitions[s].entries[i].state == State::Delivered);
            if let Some(&(s, i)) = delivered_at {
                let (ap, ao) = (
                    self.acked.partitions[s].partition,
                    self.acked.partitions[s].entries[i].offset,
                );
                self.duplicate(&m.id, &m.node, m.seq, (ap, ao), (partition, offset), out);
            } else {
                for (s, i) in places {
                    let e = &mut self.acked.partitions[s].entries[i];
                    if e.state == State::Unseen {
                        e.elsewhere = true;
                    }
                }
                self.seen_elsewhere.insert(key, (partition, offset));
            }
        }
        if let Some(f) = self.acked.failed.get(&key).copied() {
            self.count(ViolationKind::AbortedRead);
            let seq = f.seq.map_or_else(|| "?".to_string(), |s| s.to_string());
            out.push(Finding {
                kind: ViolationKind::AbortedRead,
                node: m.node.to_string(),
                ids: vec![m.id.to_string()],
                partition,
                offsets: vec![offset],
                detail: format!(
                    "node {} seq {seq} was reported failed by its producer, yet is at partition {partition} offset {offset}",
                    self.acked.names.node_name(f.node)
                ),
            });
        }
    }

    /// The consumer's position in `partition` is at least `position`: nothing below it will be
    /// read (e.g. the log starts there). Unseen acknowledged writes below it are lost.
    pub fn read_up_to(&mut self, partition: i32, position: i64, out: &mut Vec<Finding>) {
        out.append(&mut self.pending);
        let next = self.read_next.entry(partition).or_insert(i64::MIN);
        *next = (*next).max(position);
        if let Some(slot) = self.acked.slot(partition) {
            self.pass_below(slot, position, out);
        }
    }

    fn duplicate(
        &mut self,
        id: &str,
        node: &str,
        seq: u64,
        (ap, ao): (i32, i64),
        (p, o): (i32, i64),
        out: &mut Vec<Finding>,
    ) {
        self.count(ViolationKind::DuplicateWrite);
        out.push(Finding {
            kind: ViolationKind::DuplicateWrite,
            node: node.to_string(),
            ids: vec![id.to_string()],
            partition: p,
            offsets: vec![ao, o],
            detail: format!(
                "node {node} seq {seq} was acknowledged at partition {ap} offset {ao} and is also at partition {p} offset {o}"
            ),
        });
    }

    /// Marks unseen entries of `slot` below `offset` lost.
    fn pass_below(&mut self, slot: usize, offset: i64, out: &mut Vec<Finding>) {
        loop {
            let p = &mut self.acked.partitions[slot];
            let partition = p.partition;
            let Some(e) = p.entries.get_mut(p.cursor) else {
                return;
            };
            if e.offset >= offset {
                return;
            }
            p.cursor += 1;
            e.state = State::Lost;
            let e = *e;
            self.lost += 1;
            self.count(ViolationKind::LostWrite);
            let names = &self.acked.names;
            out.push(Finding {
                kind: ViolationKind::LostWrite,
                node: names.node_name(e.node).to_string(),
                ids: vec![names.id_text(e.id)],
                partition,
                offsets: vec![e.offset],
                detail: format!(
                    "node {} seq {} was acknowledged at partition {partition} offset {}; the consumer read past it without finding it",
                    names.node_name(e.node),
                    e.seq,
                    e.offset
                ),
            });
        }
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        let mut unseen_by_partition = BTreeMap::new();
        let mut unseen = 0;
        for p in &self.acked.partitions {
            let n = (p.entries.len() - p.cursor) as u64;
            if n > 0 {
                unseen_by_partition.insert(p.partition, n);
                unseen += n;
            }
        }
        Report {
            acknowledged: self.acked.len() as u64,
            failed_sends: self.acked.failed_len() as u64,
            delivered: self.delivered,
            unseen,
            lost: self.lost,
            violations: ViolationKind::VERIFICATION
                .iter()
                .map(|k| (k.as_str(), self.violations[k.index()]))
                .collect(),
            redelivered: self.redelivered,
            unseen_by_partition,
        }
    }

    /// The state of every acknowledged write, as (partition, offset, id, state) (tests, tools).
    pub fn states(&self) -> Vec<(i32, i64, String, State)> {
        self.acked
            .partitions
            .iter()
            .flat_map(|p| {
                p.entries.iter().map(move |e| {
                    (
                        p.partition,
                        e.offset,
                        self.acked.names.id_text(e.id),
                        e.state,
                    )
                })
            })
            .collect()
    }
}
