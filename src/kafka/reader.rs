//! The consumer's read loop: records from Kafka into a [`ConsumerEngine`], events out to a sink,
//! commits as [`super::commit`] says.
//!
//! With manual assignment every partition gets its own librdkafka queue, read round-robin one
//! record at a time: librdkafka prefetches each partition independently and, from a single queue,
//! would hand over tens of thousands of records of one partition before the next — which a causal
//! or total-order buffer can only absorb by releasing messages early. Round-robin keeps the nodes
//! (one partition each, by key) in step, so the buffer holds only what is really out of order.
//! Records are taken from each partition's queue a batch at a time ([`super::batch`]) and handed
//! to the engine one at a time; the records of one pass over the partitions share one clock
//! reading as their arrival time.
//!
//! When the ordering buffer is half full, the partitions holding more than their share of it are
//! paused (librdkafka `pause`) until it is down to a quarter: their messages wait for causes in
//! the other partitions, and reading on would only overflow the buffer and force early releases.
//! Pausing also stops librdkafka from fetching more of them, so what the consumer holds is the
//! ordering buffer (at most `--buffer-size` messages) plus librdkafka's prefetch, which is capped
//! per partition by `queued.max.messages.kbytes` (16 MiB in
//! [`MANUAL_CONSUMER_DEFAULTS`](super::config::MANUAL_CONSUMER_DEFAULTS)) plus one batch
//! ([`BATCH`](super::batch::BATCH) records), however far a partition runs ahead of its causes. A
//! resumed partition continues with the rest of its batch, then at the record after it: nothing
//! is skipped or read twice.

use super::batch::BatchQueue;
use super::commit::{Committer, COMMIT_INTERVAL};
use super::error::{describe, is_fatal_consume_error, KafkaError};
use super::start::PartitionStart;
use super::LogContext;
use crate::consumer::{
    ConsumedRecord, ConsumerEngine, DeliveryMode, EventSink, JsonSink, TextSink,
};
use crate::stamp_headers::Header;
use crate::time::TimeSource;
use crate::verify::Verifier;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::TopicPartitionList;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An event sink whose output can be flushed (in quiet moments, so people and pipes see it).
pub trait FlushSink: EventSink {
    /// Flushes buffered output.
    fn flush_output(&mut self) -> io::Result<()>;
}

impl<W: Write> FlushSink for JsonSink<W> {
    fn flush_output(&mut self) -> io::Result<()> {
        self.flush()
    }
}

impl<W: Write, E: Write> FlushSink for TextSink<W, E> {
    fn flush_output(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// Why the read loop stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A consume error that retrying cannot fix.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The output could not be written.
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
}

/// What the loop reads and when it stops.
#[derive(Debug)]
pub struct ReadOptions<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partitions assigned by [`assign_at`](super::assign_at) (empty: the consumer is
    /// subscribed and its group assigns partitions).
    pub starts: &'a [PartitionStart],
    /// Stop once nothing new has arrived for this long.
    pub idle: Option<Duration>,
    /// Stop when set (signals).
    pub stop: &'a AtomicBool,
}

/// How often gauges are updated and commits considered.
const HOUSEKEEPING: Duration = Duration::from_millis(200);
/// The longest wait for records in one poll.
const POLL: Duration = Duration::from_millis(100);
/// While records keep coming, librdkafka's main queue (errors, events; with partition queues no
/// records) is served once every this many passes over the partition queues (each pass takes up
/// to one record per partition, a few microseconds), and whenever they are all empty: every poll
/// costs librdkafka and rdkafka several clock reads.
const MAIN_QUEUE_PASSES: u32 = 16;

/// Reads until stopped (`stop`, `idle`, the engine's `--max-messages`, or a fatal error), feeding
/// `engine` and committing every [`COMMIT_INTERVAL`]; `housekeeping` is called about every
/// 200 ms (metrics). The final commit is the caller's ([`Committer::commit`]). Transient errors
/// are logged and left to librdkafka's retries.
#[allow(clippy::too_many_arguments)]
pub fn read<S: FlushSink + ?Sized>(
    consumer: &Arc<BaseConsumer<LogContext>>,
    opts: &ReadOptions<'_>,
    engine: &mut ConsumerEngine,
    clock: &dyn TimeSource,
    sink: &mut S,
    committer: &mut Committer,
    housekeeping: &mut dyn FnMut(&ConsumerEngine),
    verify: Option<&mut Verifier>,
) -> Result<(), ReadError> {
    let manual = !opts.starts.is_empty();
    // Per partition, its queue split off the main queue, read in batches; librdkafka wakes this
    // thread when an empty one gets records.
    let me = std::thread::current();
    let mut queues: Vec<(i32, BatchQueue)> = opts
        .starts
        .iter()
        .filter_map(|st| {
            BatchQueue::new(consumer, opts.topic, st.partition, me.clone())
                .map(|q| (st.partition, q))
        })
        .collect();
    let ordering = manual && engine.config().mode != DeliveryMode::Arrival;
    let cap = engine.config().buffer_size.max(1) as u64;
    // Flow control: partitions paused for now, and partitions known to be caught up.
    let mut paused: BTreeSet<i32> = BTreeSet::new();
    let mut at_eof: BTreeSet<i32> = BTreeSet::new();
    let mut since_check = 0u32;
    let mut r = Reader {
        engine,
        sink,
        catching_up: opts
            .starts
            .iter()
            .filter(|st| st.offset < st.high)
            .map(|st| (st.partition, st.high))
            .collect(),
        last_record: Instant::now(),
        transient_errors: 0,
        verify,
    };
    if !queues.is_empty() {
        // Records fetched between the assignment and the split above wait on the main queue,
        // ahead of everything the partition queues will hold: they are taken first, or they
        // would come after later offsets of their partition. (`kafka-consumer --verify` found
        // them arriving late on the three-node cluster.)
        while let Some(res) = consumer.poll(Duration::ZERO) {
            match res {
                Ok(msg) => r.message(&msg, clock.now_ns()),
                Err(RdError::PartitionEOF(p)) => r.caught_up(p),
                Err(e) => r.error(&e)?,
            }
        }
    }
    if manual && r.catching_up.is_empty() {
        r.engine.caught_up(r.sink);
    }
    let mut last_housekeeping = Instant::now();
    let mut last_commit = last_housekeeping;
    let mut busy_passes = 0u32;
    let mut got = false;
    while !opts.stop.load(Ordering::Relaxed) && !r.engine.is_done() {
        if ordering {
            since_check += 1;
            let b4 = r.engine.buffered().saturating_mul(4);
            let mut want = paused.clone();
            if b4 <= cap {
                want.clear();
            } else if b4 >= 2 * cap && (paused.is_empty() || since_check >= 64) {
                since_check = 0;
                want = to_pause(r.engine, queues.len(), cap);
            }
            if !want.is_empty()
                && queues
                    .iter()
                    .all(|(p, _)| want.contains(p) || at_eof.contains(p))
            {
                // Everything else is caught up: the held messages' causes are not coming now.
                want.clear();
            }
            set_paused(consumer, opts.topic, &mut paused, want);
        }
        // One pass takes at most one record from each partition queue without waiting. The
        // clock is read once per pass, at its first record: the records of a pass arrive
        // together (microseconds apart), and the engine is ticked to that time by each of them.
        // Queues found empty are asked again when librdkafka says they have records, or after
        // a pass that found nothing anywhere.
        let mut arrival: Option<i64> = None;
        let force = !got;
        for (p, q) in &mut queues {
            if paused.contains(p) {
                continue;
            }
            match q.poll(force) {
                Some(Ok(rec)) => {
                    at_eof.remove(p);
                    let now = *arrival.get_or_insert_with(|| clock.now_ns());
                    let headers = rec.headers();
                    r.record(rec.partition(), rec.offset(), rec.payload(), &headers, now);
                }
                Some(Err(RdError::PartitionEOF(_))) => {
                    at_eof.insert(*p);
                    r.caught_up(*p);
                }
                Some(Err(e)) => r.error(&e)?,
                None => {}
            }
        }
        got = if let Some(now) = arrival {
            // Serve librdkafka's main queue (errors, events) without waiting every
            // MAIN_QUEUE_PASSES passes, and go on. No tick: every record of the pass moved the
            // engine's time to `now` already.
            busy_passes += 1;
            if busy_passes % MAIN_QUEUE_PASSES == 0 {
                match consumer.poll(Duration::ZERO) {
                    Some(Ok(msg)) => r.message(&msg, now),
                    Some(Err(RdError::PartitionEOF(_))) | None => {}
                    Some(Err(e)) => r.error(&e)?,
                }
            }
            true
        } else {
            // Nothing in the partition queues: wait on the main queue (group mode: the records
            // themselves) or, with partition queues, until one of them wakes us; at most until
            // the engine's next deadline.
            let wait = match r.engine.next_deadline() {
                None => POLL,
                Some(d) => {
                    let now = clock.now_ns();
                    if d <= now {
                        Duration::ZERO
                    } else {
                        POLL.min(Duration::from_nanos(d.abs_diff(now)))
                    }
                }
            };
            let main_wait = if queues.is_empty() {
                wait
            } else {
                Duration::ZERO
            };
            match consumer.poll(main_wait) {
                // `on_record` ticks the engine to the arrival time.
                Some(Ok(msg)) => {
                    r.message(&msg, clock.now_ns());
                    true
                }
                other => {
                    match other {
                        Some(Err(RdError::PartitionEOF(_))) => {}
                        Some(Err(e)) => r.error(&e)?,
                        _ => {
                            // Quiet moment: make output visible to people and pipes.
                            r.sink.flush_output().map_err(ReadError::Output)?;
                            if !queues.is_empty() {
                                std::thread::park_timeout(wait.min(Duration::from_millis(1)));
                            }
                        }
                    }
                    r.engine.tick(clock.now_ns(), r.sink);
                    false
                }
            }
        };
        let now = Instant::now();
        // Paused partitions still have records: the idle clock does not run.
        if got || !paused.is_empty() {
            r.last_record = now;
        } else if opts
            .idle
            .is_some_and(|d| now.saturating_duration_since(r.last_record) >= d)
        {
            break;
        }
        if now.saturating_duration_since(last_housekeeping) >= HOUSEKEEPING {
            last_housekeeping = now;
            housekeeping(r.engine);
            if now.saturating_duration_since(last_commit) >= COMMIT_INTERVAL {
                last_commit = now;
                // What is committed has been written: a run killed after this commit does not
                // leave deliveries behind that the next run will not repeat.
                r.sink.flush_output().map_err(ReadError::Output)?;
                // A failed commit is tried again at the next interval (and at exit, where it
                // counts).
                if let Err(e) = committer.commit(consumer.as_ref(), opts.topic, r.engine) {
                    tracing::warn!("{e} (retrying)");
                }
            }
        }
    }
    Ok(())
}

/// Per-run reading state shared by the main queue and the partition queues.
struct Reader<'a, S: ?Sized> {
    engine: &'a mut ConsumerEngine,
    sink: &'a mut S,
    /// Partitions not yet read up to where they ended at the start: (partition, end offset).
    catching_up: BTreeMap<i32, i64>,
    last_record: Instant,
    transient_errors: u64,
    /// `--verify`: sees every record taken from Kafka until the engine is done.
    verify: Option<&'a mut Verifier>,
}

impl<S: FlushSink + ?Sized> Reader<'_, S> {
    /// [`record`](Self::record) for a message from rdkafka's own queues.
    fn message(&mut self, msg: &BorrowedMessage<'_>, arrival_ns: i64) {
        let headers = super::headers_of(msg);
        self.record(
            msg.partition(),
            msg.offset(),
            msg.payload(),
            &headers,
            arrival_ns,
        );
    }

    /// Feeds one record of partition `p` at offset `o`, read at `arrival_ns`, to the engine
    /// (and the verifier).
    fn record(
        &mut self,
        p: i32,
        o: i64,
        payload: Option<&[u8]>,
        headers: &[Header<'_>],
        arrival_ns: i64,
    ) {
        // Records taken after `--max-messages` was reached are not delivered: for verification
        // they were not read either (the run stopped before them).
        if let Some(v) = self
            .verify
            .as_deref_mut()
            .filter(|_| !self.engine.is_done())
        {
            v.record(p, o, payload, headers, self.sink);
        }
        let rec = ConsumedRecord {
            partition: p,
            offset: o,
            payload,
            headers,
            arrival_ns,
        };
        self.engine.on_record(&rec, self.sink);
        if self.catching_up.get(&p).is_some_and(|end| o + 1 >= *end) {
            self.caught_up(p);
        }
    }

    /// Partition `p` is read up to where it ended at the start (or to its end).
    fn caught_up(&mut self, p: i32) {
        if self.catching_up.remove(&p).is_some() && self.catching_up.is_empty() {
            self.engine.caught_up(self.sink);
        }
    }

    /// Fatal errors end the run; transient ones are logged (sparsely) and retried by librdkafka.
    fn error(&mut self, e: &RdError) -> Result<(), ReadError> {
        if is_fatal_consume_error(e) {
            return Err(ReadError::Kafka(KafkaError::Operation {
                operation: "consume".into(),
                message: describe(e),
            }));
        }
        self.transient_errors += 1;
        if self.transient_errors.is_power_of_two() {
            tracing::warn!(
                "{} (retrying; {} so far)",
                describe(e),
                self.transient_errors
            );
        }
        Ok(())
    }
}

/// The partitions to pause while the ordering buffer is at least half full: those holding more
/// than their share of the waiting messages. Never all of them.
fn to_pause(engine: &ConsumerEngine, partitions: usize, cap: u64) -> BTreeSet<i32> {
    let share = cap / (2 * partitions.max(1) as u64);
    let set: BTreeSet<i32> = engine
        .held_by_partition()
        .filter(|(_, n)| *n > share)
        .map(|(p, _)| p)
        .collect();
    if set.len() >= partitions {
        BTreeSet::new()
    } else {
        set
    }
}

/// Pauses and resumes partitions so that exactly `want` are paused.
fn set_paused(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    paused: &mut BTreeSet<i32>,
    want: BTreeSet<i32>,
) {
    if *paused == want {
        return;
    }
    let list = |ps: &mut dyn Iterator<Item = &i32>| {
        let mut tpl = TopicPartitionList::new();
        for &p in ps {
            tpl.add_partition(topic, p);
        }
        tpl
    };
    let resume = list(&mut paused.difference(&want));
    let pause = list(&mut want.difference(paused));
    if resume.count() > 0 {
        if let Err(e) = consumer.resume(&resume) {
            tracing::debug!("resume: {}", describe(&e));
        }
    }
    if pause.count() > 0 {
        if let Err(e) = consumer.pause(&pause) {
            tracing::debug!("pause: {}", describe(&e));
        }
    }
    *paused = want;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::{CollectSink, EngineConfig};

    fn vmsg(node: &str, seq: u64, vt: &[(&str, u64)]) -> Vec<u8> {
        use crate::clock::{ClockType, VectorTimestamp};
        use crate::envelope::{Envelope, MessageTimestamp};
        Envelope {
            id: format!("{node}-{seq}"),
            content: String::new(),
            seq: Some(seq),
            timestamp: MessageTimestamp {
                node_id: node.into(),
                timestamp: 1.0,
                clock_type: ClockType::Vector,
                physical_time: Some(1.0),
                logical_time: Some(seq),
                vector_time: Some(VectorTimestamp::from_entries(vt.iter().copied())),
                hybrid_time: None,
                simulated_time: None,
                unmapped_vector_entries: None,
            },
            simulated_skew_ms: None,
        }
        .encode()
    }

    #[test]
    fn pauses_the_partitions_holding_more_than_their_share_never_all() {
        let mut e = ConsumerEngine::new(EngineConfig {
            mode: DeliveryMode::Causal,
            buffer_size: 8,
            ..EngineConfig::default()
        });
        let mut sink = CollectSink::default();
        // Partition 1: B's messages waiting for A (partition 0, not read yet).
        for i in 1..=4u64 {
            let rec = vmsg("B", i, &[("A", i), ("B", i)]);
            e.on_record(
                &ConsumedRecord {
                    partition: 1,
                    offset: i as i64,
                    payload: Some(&rec),
                    headers: &[],
                    arrival_ns: 0,
                },
                &mut sink,
            );
        }
        // Share of 3 partitions with capacity 8: 8 / 6 = 1 message each.
        assert_eq!(to_pause(&e, 3, 8), BTreeSet::from([1]));
        // With a single partition nothing is paused: its own records are the only way on.
        assert!(to_pause(&e, 1, 8).is_empty());
    }
}
