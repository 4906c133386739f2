//! One consumer run against Kafka, from connecting to the final commit: what `kafka-consumer` does
//! once its flags are merged, as a library.
//!
//! [`Session::open`] creates the consumer and places it: with manual assignment (causal and total
//! delivery, `--from-beginning`, `--history`, `--verify`) it assigns every partition at its
//! [`Start`] and restores the delivery order from the committed offsets' metadata; otherwise it
//! subscribes as a member of the group. [`Session::run`] reads until stopped, commits what was
//! delivered whatever ended the loop, and returns the summary.
//!
//! Invariants: a commit never passes a message that was not delivered ([`Committer`]); the summary
//! is returned on every path, errors included.

use super::{
    assign_at, committed, describe, partition_watermarks, read, topic_partitions, ClientSettings,
    Committer, FlushSink, KafkaError, LogContext, PartitionStart, ReadError, ReadOptions, Start,
};
use crate::consumer::{resume, ConsumerEngine, ConsumerSummary, EngineConfig, Resumed};
use crate::metrics::Metrics;
use crate::time::TimeSource;
use crate::verify::{self, Verifier};
use crate::violation::ViolationKind;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// How long a single broker request may take (metadata, watermarks, committed offsets).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What a session reads and how.
#[derive(Debug)]
pub struct SessionOptions<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The consumer group: its committed offsets (and, with manual assignment, nothing else).
    pub group: &'a str,
    /// Bootstrap and librdkafka properties.
    pub kafka: &'a ClientSettings,
    /// The delivery engine's configuration.
    pub engine: EngineConfig,
    /// Read every partition itself (manual assignment) rather than as a group member.
    pub manual: bool,
    /// Where each partition starts, with manual assignment.
    pub start: Start,
}

/// Why a session failed. Every `Display` is one line naming what was being done and where.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The consumer could not be created.
    #[error(transparent)]
    Client(KafkaError),
    /// The topic's partitions could not be read.
    #[error("reading topic '{topic}' from Kafka at {bootstrap}: {error}")]
    Topic {
        /// The topic.
        topic: String,
        /// Where.
        bootstrap: String,
        /// Why.
        error: KafkaError,
    },
    /// The group's committed offsets could not be read.
    #[error("group '{group}' on Kafka at {bootstrap}: {error}")]
    Committed {
        /// The group.
        group: String,
        /// Where.
        bootstrap: String,
        /// Why.
        error: KafkaError,
    },
    /// Assigning, subscribing or committing failed.
    #[error("Kafka at {bootstrap}: {error}")]
    Kafka {
        /// Where.
        bootstrap: String,
        /// Why.
        error: KafkaError,
    },
    /// The read loop stopped on an error.
    #[error("Kafka at {bootstrap}: {error}")]
    Read {
        /// Where.
        bootstrap: String,
        /// Why.
        error: ReadError,
    },
}

/// A consumer placed on its topic, with its delivery engine ready for the first record.
pub struct Session {
    consumer: Arc<BaseConsumer<LogContext>>,
    topic: String,
    bootstrap: String,
    manual: bool,
    partitions: Vec<i32>,
    starts: Vec<PartitionStart>,
    engine: ConsumerEngine,
}

impl Session {
    /// Connects and places the consumer (see the module docs). With manual assignment, also says
    /// how the delivery order resumed (a warning for the user in [`Resumed::Assumed`]).
    pub fn open(opts: SessionOptions<'_>) -> Result<(Self, Option<Resumed>), SessionError> {
        let kafka = opts.kafka;
        let bootstrap = kafka.bootstrap().to_owned();
        let config = if opts.manual {
            kafka.manual_consumer_config(Some(opts.group))
        } else {
            kafka.consumer_config(Some(opts.group))
        };
        // An Arc: librdkafka's per-partition queues are split off a shared consumer.
        let consumer: Arc<BaseConsumer<LogContext>> = Arc::new(
            config
                .create_with_context(LogContext::new(kafka))
                .map_err(|e| SessionError::Client(kafka.client_error("consumer", &e)))?,
        );
        let partitions =
            topic_partitions(consumer.client(), opts.topic, REQUEST_TIMEOUT).map_err(|error| {
                SessionError::Topic {
                    topic: opts.topic.to_owned(),
                    bootstrap: bootstrap.clone(),
                    error,
                }
            })?;
        let mut engine = ConsumerEngine::new(opts.engine);
        let mut starts = Vec::new();
        let mut resumed = None;
        if opts.manual {
            let committed = if matches!(opts.start, Start::Committed { .. }) {
                committed(consumer.as_ref(), opts.topic, &partitions, REQUEST_TIMEOUT).map_err(
                    |error| SessionError::Committed {
                        group: opts.group.to_owned(),
                        bootstrap: bootstrap.clone(),
                        error,
                    },
                )?
            } else {
                Vec::new()
            };
            starts = assign_at(
                consumer.as_ref(),
                opts.topic,
                &partitions,
                opts.start,
                &committed,
                REQUEST_TIMEOUT,
            )
            .map_err(|error| SessionError::Kafka {
                bootstrap: bootstrap.clone(),
                error,
            })?;
            for st in &starts {
                engine.start_partition(st.partition, st.offset);
            }
            let metadata: Vec<&str> = committed.iter().map(|c| c.metadata.as_str()).collect();
            let from_log_start = starts.iter().all(|st| st.at_log_start());
            resumed = Some(resume(&mut engine, &metadata, from_log_start));
        } else {
            consumer
                .subscribe(&[opts.topic])
                .map_err(|e| SessionError::Kafka {
                    bootstrap: bootstrap.clone(),
                    error: KafkaError::Operation {
                        operation: format!("subscribing to '{}'", opts.topic),
                        message: describe(&e),
                    },
                })?;
        }
        let session = Session {
            consumer,
            topic: opts.topic.to_owned(),
            bootstrap,
            manual: opts.manual,
            partitions,
            starts,
            engine,
        };
        Ok((session, resumed))
    }

    /// Reads until `stop` is set, nothing new arrived for `idle`, the engine's `max_messages` is
    /// reached, or a fatal error; then commits what was delivered and returns the summary with
    /// how the loop ended. With `acked`, checks what was read against the producers'
    /// acknowledgements (the report is in the summary's `verify`). `metrics` is fed at
    /// housekeeping, not per record.
    pub fn run(
        mut self,
        idle: Option<Duration>,
        stop: &AtomicBool,
        clock: &dyn TimeSource,
        out: &mut dyn FlushSink,
        acked: Option<verify::AckedSet>,
        metrics: Option<Arc<Metrics>>,
    ) -> (ConsumerSummary, Result<(), SessionError>) {
        let mut verifier = acked.map(|a| Verifier::new(verify::Checker::new(a), metrics.clone()));
        if let Some(v) = verifier.as_mut() {
            v.start(out);
        }
        let mut gauges = Gauges {
            metrics,
            last: ConsumerEngine::new(EngineConfig::default()).summary(),
        };
        let mut committer = Committer::new(self.manual);
        let opts = ReadOptions {
            topic: &self.topic,
            starts: &self.starts,
            idle,
            stop,
        };
        let result = read(
            &self.consumer,
            &opts,
            &mut self.engine,
            clock,
            out,
            &mut committer,
            &mut |e| gauges.update(e),
            verifier.as_mut(),
        );
        // Stop, commit what was delivered, report — whatever ended the loop.
        let committed = committer.commit(self.consumer.as_ref(), &self.topic, &self.engine);
        gauges.update(&self.engine);
        let mut report = self.engine.summary();
        if let Some(v) = verifier.as_mut() {
            // Where each log starts now: acknowledged writes below it can no longer be read. A
            // broker that cannot say for one partition is not asked about the others.
            for &p in &self.partitions {
                match partition_watermarks(self.consumer.client(), &self.topic, p, REQUEST_TIMEOUT)
                {
                    Ok(w) => v.read_up_to(p, w.low, out),
                    Err(_) => break,
                }
            }
            report.verify = Some(v.report());
        }
        let bootstrap = self.bootstrap;
        let result = result
            .map_err(|error| SessionError::Read {
                bootstrap: bootstrap.clone(),
                error,
            })
            .and_then(|()| committed.map_err(|error| SessionError::Kafka { bootstrap, error }));
        (report, result)
    }
}

/// Prometheus metrics fed from the engine's counters (at housekeeping, not per record).
struct Gauges {
    metrics: Option<Arc<Metrics>>,
    /// The counters at the last update (all zero before the first).
    last: ConsumerSummary,
}

impl Gauges {
    fn update(&mut self, engine: &ConsumerEngine) {
        let Some(m) = &self.metrics else { return };
        let now = engine.summary();
        let last = &self.last;
        m.add_consumed(now.received.saturating_sub(last.received));
        m.add_delivered(now.delivered.saturating_sub(last.delivered));
        m.add_malformed(now.malformed.saturating_sub(last.malformed));
        for kind in ViolationKind::CONSUMER {
            let count = |s: &ConsumerSummary| s.violations.get(kind.as_str()).copied().unwrap_or(0);
            m.add_violations(kind, count(&now).saturating_sub(count(last)));
        }
        let (early, before) = (now.released_early, last.released_early);
        m.add_released_by_timeout(early.timeout.saturating_sub(before.timeout));
        m.add_released_buffer_full(early.buffer_full.saturating_sub(before.buffer_full));
        m.set_causal_buffer_depth(usize::try_from(now.buffered).unwrap_or(usize::MAX));
        self.last = now;
    }
}
