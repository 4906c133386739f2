//! Where a starting producer's clocks continue: from its own last record in the topic (the log is
//! the truth), with the state file as a cache and, when the topic cannot tell, as the fallback.
//!
//! [`resolve`] is the decision, pure. Its invariant: the resumed seq, Lamport time, own vector
//! entry and HLC are ≥ every value of the node's records in the topic, and ≥ every value the
//! node used anywhere that the topic cannot vouch for; where the topic can vouch, they are
//! exactly its last record's, so the next message is `seq + 1` (no gap, no reuse):
//!
//! | state file | the node's newest record in the topic | resume from |
//! |---|---|---|
//! | exact (clean exit, or no file) | found: `L` | the larger of the file and `L`, per clock |
//! | exact | none, or the topic unreadable | the file (zero for a new node) |
//! | floors of a run to this topic | found: `L` | `L` (never below the run's start) |
//! | floors of a run to this topic | none in the whole partition | the run's start: nothing of it arrived |
//! | floors | not within the scan bound, topic unreadable, run to another topic, version-1 file | the floors (a gap of up to the reservation, with a warning) |
//!
//! A clock a record does not carry (the vector clock when it is not sent, the HLC when the
//! clock type is not hybrid) is continued from the file (a killed run's start, or the exact
//! values): the own vector entry advances with seq, one per message.
//!
//! [`read_last_sent`] is the Kafka shell: the node's key maps to one partition (the producer's
//! partitioner, [`crate::kafka::partitioner`]); that partition is read back from its end
//! ([`crate::kafka::tail`]) until the node's newest record is found. A killed run's own partition
//! (from its [`RunRecord`]) is read, so a changed `--key` or partition count does not hide it.
//!
//! A killed process's last produce requests are still appended by the broker after it died (they
//! were sent; the broker works through its backlog). So after a kill ([`must_settle`]) the
//! partition is followed until no record of the node has arrived for [`SETTLE_QUIET`], and the
//! newest record then is the one to continue from. Limit: a request the broker appends later
//! than that (a backlog of more than [`SETTLE_QUIET`] between two of them) is not seen, and its
//! seqs are used twice.

use crate::clock::{HybridTimestamp, VectorTimestamp};
use crate::envelope::{DecodeLimits, Envelope};
use crate::kafka::partitioner::Partitioner;
use crate::kafka::tail::{
    close_in_background, follow_until_quiet, newest_matching, tail_consumer, Tail, TailScan,
};
use crate::kafka::{topic_partitions, ClientSettings, KafkaError};
use crate::stamp_headers;
use crate::state::{PersistedClocks, RunRecord, DEFAULT_RESERVATION};
use crate::NodeId;
use rdkafka::consumer::Consumer as _;
use rdkafka::Message as _;

/// The clocks of a node's record in the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct LastSent {
    /// Its seq.
    pub seq: u64,
    /// Its Lamport time.
    pub lamport: u64,
    /// Its vector clock, if it carries one.
    pub vector: Option<VectorTimestamp>,
    /// Its HLC, if it carries one.
    pub hybrid: Option<HybridTimestamp>,
    /// When it was stamped (its `timestamp`: the sending host's system time, seconds).
    pub stamped_at: f64,
}

impl LastSent {
    /// The clocks `env` carries (a field it lacks, as the prototype's records may, counts as 0).
    pub fn of(env: &Envelope) -> Self {
        Self {
            seq: env.seq.unwrap_or(0),
            lamport: env.timestamp.logical_time.unwrap_or(0),
            vector: env.timestamp.vector_time.clone(),
            hybrid: env.timestamp.hybrid_time,
            stamped_at: env.timestamp.timestamp,
        }
    }
}

/// How long the partition must stay free of new records of the node before a restart after a
/// kill trusts its newest record (see [`must_settle`]).
pub const SETTLE_QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// Bound of the wait for [`SETTLE_QUIET`].
pub const SETTLE_BOUND: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether records of a killed run may still be arriving, so the partition must be followed
/// until quiet before its newest record is trusted. A killed process's last produce requests
/// are still appended by the broker after it died, up to its request backlog later (0.5 s with
/// 236 records was seen on a loaded test broker). True when the state file holds a killed run's
/// floors; false after a clean exit (it waited for every delivery report) and without a state
/// file (`--no-state`), which cannot tell a kill from a clean exit: waiting there would cost
/// every quick re-run of the same node [`SETTLE_QUIET`].
pub fn must_settle(file: &PersistedClocks, has_state_file: bool) -> bool {
    has_state_file && !file.is_exact()
}

/// What the topic says about the node.
#[derive(Debug, Clone, PartialEq)]
pub enum LogTail {
    /// Its newest record.
    Found(LastSent),
    /// No record of the node: `complete` when the whole partition was read, false when the scan
    /// stopped at its bound.
    NotFound {
        /// The whole partition was read.
        complete: bool,
    },
    /// The topic could not be read (the reason, one line).
    Unreadable(String),
}

/// Which source the resumed clocks come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The node's last record in the topic.
    Log,
    /// The state file's exact values (a clean exit; zero for a new node).
    File,
    /// The start of a killed run, none of whose records reached the topic.
    RunStart,
    /// The state file's floors: the topic could not tell (the reason). Seq and the own vector
    /// entry may jump by up to the reservation.
    Reservation(String),
}

/// The decision of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The clocks to continue from (the next message gets `seq + 1`).
    pub state: PersistedClocks,
    /// Where they come from.
    pub source: Source,
    /// Why the topic could not be read, if it could not.
    pub unreadable: Option<String>,
}

impl Resumed {
    /// A one-line warning when the clocks may not continue exactly (a gap or, without a state
    /// file, a restart from zero); `None` when they do.
    pub fn warning(&self, has_state_file: bool) -> Option<String> {
        match (&self.source, &self.unreadable) {
            (Source::Reservation(why), _) => Some(format!(
                "{why}: continuing from the state file's write-ahead reservation, seq {} \
                 (up to {DEFAULT_RESERVATION} seqs may be skipped; consumers see a gap)",
                self.state.seq
            )),
            (_, Some(why)) if !has_state_file => Some(format!(
                "cannot read back this node's last record ({why}); without a state file the \
                 clocks continue from seq {}",
                self.state.seq
            )),
            _ => None,
        }
    }
}

/// Decides which clocks a starting node continues from (see the module docs for the table).
/// `file` is what the state file holds ([`PersistedClocks::new`] without one), `topic` the topic of
/// this run, `log` what that topic says.
pub fn resolve(node: &str, topic: &str, file: &PersistedClocks, log: &LogTail) -> Resumed {
    let unreadable = match log {
        LogTail::Unreadable(e) => Some(e.clone()),
        _ => None,
    };
    let done = |state: PersistedClocks, source| Resumed {
        state: exact(state),
        source,
        unreadable: unreadable.clone(),
    };
    let own_id: NodeId = node.into();
    if file.is_exact() {
        return match log {
            LogTail::Found(l) => {
                let mut s = file.clone();
                let ahead = l.seq >= s.seq;
                let own = match &l.vector {
                    Some(v) => v.get(node).max(file.vector.get(node)),
                    None => file.vector.get(node) + l.seq.saturating_sub(file.seq),
                };
                s.seq = s.seq.max(l.seq);
                s.lamport = s.lamport.max(l.lamport);
                s.hybrid = s.hybrid.max(l.hybrid);
                if let Some(v) = &l.vector {
                    s.vector.merge(v);
                }
                s.vector.set(&own_id, own);
                done(s, if ahead { Source::Log } else { Source::File })
            }
            _ => done(file.clone(), Source::File),
        };
    }
    let floors = |why: String| done(file.clone(), Source::Reservation(why));
    if let Some(run) = file.run.as_ref().filter(|r| r.topic != topic) {
        return floors(format!(
            "the last run of node '{node}' did not exit cleanly and wrote to topic '{}'",
            run.topic
        ));
    }
    let run: Option<&RunRecord> = file.run.as_ref();
    match log {
        LogTail::Found(l) => {
            let mut s = file.clone();
            let start_seq = run.map_or(0, |r| r.start_seq);
            s.seq = l.seq.max(start_seq);
            s.lamport = l.lamport.max(run.map_or(0, |r| r.start_lamport));
            let own = match (l.vector.as_ref().map(|v| v.get(node)), run) {
                (Some(o), Some(r)) => o.max(r.start_own),
                (Some(o), None) => o,
                (None, Some(r)) => r.start_own + l.seq.saturating_sub(r.start_seq),
                (None, None) => file.vector.get(node),
            };
            s.hybrid = match (l.hybrid, run) {
                (Some(h), Some(r)) => Some(h).max(r.start_hybrid),
                (Some(h), None) => Some(h),
                (None, Some(r)) => r.start_hybrid,
                (None, None) => file.hybrid,
            };
            if let Some(v) = &l.vector {
                s.vector.merge(v);
            }
            s.vector.set(&own_id, own);
            done(s, Source::Log)
        }
        LogTail::NotFound { complete: true } => match run {
            Some(r) => {
                let mut s = file.clone();
                s.seq = r.start_seq;
                s.lamport = r.start_lamport;
                s.hybrid = r.start_hybrid;
                s.vector.set(&own_id, r.start_own);
                done(s, Source::RunStart)
            }
            None => floors(format!(
                "node '{node}' has no record in topic '{topic}' and its state file (an older \
                 format) does not say where its last run started"
            )),
        },
        LogTail::NotFound { complete: false } => floors(format!(
            "the last record of node '{node}' is not among the newest records of its partition"
        )),
        LogTail::Unreadable(e) => floors(format!(
            "cannot read back the last record of node '{node}' ({e})"
        )),
    }
}

/// `s` as exact values to continue from.
fn exact(mut s: PersistedClocks) -> PersistedClocks {
    s.exact = true;
    s.run = None;
    s
}

/// What [`read_last_sent`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovery {
    /// The node's newest record, or why there is none.
    pub log: LogTail,
    /// The partition this run's records go to (`key` under the producer's partitioner), `None`
    /// when the partitioner does not fix it.
    pub partition: Option<i32>,
}

/// Reads back `node`'s newest record in `topic` (see the module docs). `key` is this run's
/// message key, `file` the state file's contents ([`PersistedClocks::new`] and `has_state_file` false
/// without one; a killed run's partition is read). When [`must_settle`], the partition is then
/// followed until [`SETTLE_QUIET`] passes without a new record of the node. Errors (returned) are
/// those the run could not survive anyway: no such topic, no metadata; a topic that cannot be
/// read after that is [`LogTail::Unreadable`].
pub fn read_last_sent(
    settings: &ClientSettings,
    topic: &str,
    node: &str,
    key: &str,
    file: &PersistedClocks,
    has_state_file: bool,
    scan: &TailScan,
) -> Result<Recovery, KafkaError> {
    let consumer = tail_consumer(settings)?;
    let partitions = topic_partitions(consumer.client(), topic, scan.timeout)?;
    let partitioner = match settings.get("partitioner") {
        None => Some(Partitioner::DEFAULT),
        Some(name) => Partitioner::from_name(name),
    };
    let count = i32::try_from(partitions.len()).unwrap_or(i32::MAX);
    let partition = partitioner
        .and_then(|p| p.partition(key.as_bytes(), count))
        .filter(|p| partitions.contains(p));
    let killed_run = file
        .run
        .as_ref()
        .filter(|r| !file.is_exact() && r.topic == topic);
    let wanted = match killed_run {
        Some(r) => r.partition,
        None => partition,
    };
    let to_read: Vec<i32> = match wanted.filter(|p| partitions.contains(p)) {
        Some(p) => vec![p],
        None => partitions,
    };
    let mut marker = b"\"node_id\":".to_vec();
    crate::envelope::write_json_str(&mut marker, node);
    let finder = memchr::memmem::Finder::new(&marker);
    let limits = DecodeLimits::default();
    let pick = |m: &rdkafka::message::BorrowedMessage<'_>| {
        // A header-stamped record (`--envelope headers`) carries its stamp in headers; any other
        // is a JSON envelope, skipped unless it names the node (no decode of others' records).
        let headers = crate::kafka::headers_of(m);
        let env = if stamp_headers::is_stamped(&headers) {
            stamp_headers::decode(&headers, 0, &limits).ok()?
        } else {
            let payload = m.payload()?;
            finder.find(payload)?;
            Envelope::decode(payload).ok()?
        };
        (&*env.timestamp.node_id == node).then(|| LastSent::of(&env))
    };
    let unreadable = |e: KafkaError| Recovery {
        log: LogTail::Unreadable(settings.scrub(&e.to_string())),
        partition,
    };
    let mut newest: Option<LastSent> = None;
    let newer = |n: &Option<LastSent>, v: &LastSent| n.as_ref().map_or(true, |n| v.seq > n.seq);
    let mut complete = true;
    let mut ends = Vec::with_capacity(to_read.len());
    for &p in &to_read {
        match newest_matching(&consumer, topic, p, scan, pick) {
            Ok(Tail::Found { value, high, .. }) => {
                ends.push((p, high));
                if newer(&newest, &value) {
                    newest = Some(value);
                }
            }
            Ok(Tail::NotFound {
                complete: c, high, ..
            }) => {
                ends.push((p, high));
                complete &= c;
            }
            Err(e) => return Ok(unreadable(e)),
        }
    }
    if must_settle(file, has_state_file) {
        tracing::info!(
            "waiting until no record of node '{node}' arrives for {SETTLE_QUIET:?} (its last run \
             may have been killed with produce requests in flight)"
        );
        for (p, high) in ends {
            match follow_until_quiet(&consumer, topic, p, high, SETTLE_QUIET, SETTLE_BOUND, pick) {
                Ok(Some((_, value))) => {
                    tracing::info!(
                        "records of node '{node}' sent before it was killed were still being \
                         appended, up to seq {}",
                        value.seq
                    );
                    if newer(&newest, &value) {
                        newest = Some(value);
                    }
                }
                Ok(None) => {}
                Err(e) => return Ok(unreadable(e)),
            }
        }
    }
    let log = match newest {
        Some(l) => LogTail::Found(l),
        None => LogTail::NotFound { complete },
    };
    close_in_background(consumer);
    Ok(Recovery { log, partition })
}

/// The start-up of a run: [`read_last_sent`], then [`resolve`]; logs the warning (if any) and
/// where the clocks continue. Returns the clocks to continue from and the partition this run's
/// records go to (for [`crate::state::StateStore::begin`]).
pub fn recover(
    settings: &ClientSettings,
    topic: &str,
    node: &str,
    key: &str,
    file: &PersistedClocks,
    has_state_file: bool,
) -> Result<(PersistedClocks, Option<i32>), KafkaError> {
    let reading = std::time::Instant::now();
    let recovery = read_last_sent(
        settings,
        topic,
        node,
        key,
        file,
        has_state_file,
        &TailScan::default(),
    )?;
    let resumed = resolve(node, topic, file, &recovery.log);
    if let Some(w) = resumed.warning(has_state_file) {
        tracing::warn!("{w}");
    }
    tracing::info!(
        "node '{node}' continues after seq {} ({:?}; read back in {:.1} ms)",
        resumed.state.seq,
        resumed.source,
        reading.elapsed().as_secs_f64() * 1e3
    );
    Ok((resumed.state, recovery.partition))
}

#[cfg(test)]
mod tests;
