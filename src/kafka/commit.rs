//! What the consumer commits, and reads back when it starts.
//!
//! # Commit policy
//!
//! This is the one place the consumer's commit policy is written down:
//!
//! * Offsets are committed by the application only: `enable.auto.commit` is `false`
//!   ([`CONSUMER_DEFAULTS`](super::config::CONSUMER_DEFAULTS)).
//! * The position committed for a partition is the consumer engine's
//!   ([`commit_positions`](crate::consumer::ConsumerEngine::commit_positions)): never past a
//!   message that has not been delivered, so a crash loses nothing that was buffered.
//! * The consumer commits synchronously every [`COMMIT_INTERVAL`] while something changed, and
//!   once more when it stops (signal, `--idle-timeout`, `--max-messages`, error). What was
//!   delivered after the last commit is delivered again after a crash (at-least-once), except
//!   in causal and total modes, where the checkpoint recognises it.
//! * In causal and total modes every commit covers every partition of the topic and carries, in
//!   each partition's metadata, the same [`Checkpoint`](crate::delivery::Checkpoint) text: the
//!   offsets and the ordering state are written in one request and cannot disagree. A text longer
//!   than [`METADATA_MAX_BYTES`] (the broker's default `offset.metadata.max.bytes`) is replaced by
//!   [`OMITTED`]; so is one the broker refuses as too large.
//! * At start the committed offsets and their metadata are read back ([`committed`]).
//!
//! [`Committer`] applies the policy.

use super::error::{describe, KafkaError};
use super::retry::{retry, Topic};
use crate::consumer::ConsumerEngine;
use crate::delivery::checkpoint::OMITTED;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeSet;
use std::time::Duration;

/// The longest metadata string written with a committed offset: Apache Kafka's default
/// `offset.metadata.max.bytes`.
pub const METADATA_MAX_BYTES: usize = 4096;

/// How often the consumer commits while it runs.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// How long a commit waits for the group coordinator to become available.
const COORDINATOR_WAIT: Duration = Duration::from_secs(10);

/// A partition's committed offset and the metadata stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The partition.
    pub partition: i32,
    /// The committed offset: the next record to read.
    pub offset: i64,
    /// The metadata string of the commit (empty when none was written).
    pub metadata: String,
}

/// The group's committed offsets of `partitions` of `topic`, with their metadata. Partitions
/// without a committed offset are left out. Needs a `group.id`.
///
/// (Apache Kafka decodes and re-encodes the metadata as UTF-8, so reading it back cannot fail on
/// invalid bytes.)
pub fn committed<C, K>(
    consumer: &K,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Result<Vec<Committed>, KafkaError>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    // A new group's first request, or a coordinator moving between brokers, waits.
    let got = retry(timeout, Topic::MayBeNew, |left| {
        consumer.committed_offsets(tpl.clone(), left)
    })
    .map_err(|e| KafkaError::Operation {
        operation: format!("fetch the committed offsets of '{topic}'"),
        message: describe(&e),
    })?;
    Ok(got
        .elements_for_topic(topic)
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(Committed {
                partition: e.partition(),
                offset: o,
                metadata: e.metadata().to_string(),
            }),
            _ => None,
        })
        .collect())
}

/// How a commit's metadata was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataStored {
    /// As given.
    AsGiven,
    /// The broker refused it as too large (`offset.metadata.max.bytes`): [`OMITTED`] was stored
    /// with the same offsets instead.
    Omitted,
}

/// Commits `positions` (partition, next offset) of `topic`, each with `metadata`, synchronously.
pub fn commit<C, K>(
    consumer: &K,
    topic: &str,
    positions: &[(i32, i64)],
    metadata: &str,
) -> Result<MetadataStored, KafkaError>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    if positions.is_empty() {
        return Ok(MetadataStored::AsGiven);
    }
    let attempt = |metadata: &str| -> Result<(), RdError> {
        let mut tpl = TopicPartitionList::with_capacity(positions.len());
        for &(p, o) in positions {
            tpl.add_partition_offset(topic, p, Offset::Offset(o))?;
            if !metadata.is_empty() {
                if let Some(mut e) = tpl.find_partition(topic, p) {
                    e.set_metadata(metadata);
                }
            }
        }
        // An unknown topic here is one deleted while it was read: final.
        retry(COORDINATOR_WAIT, Topic::MayBeGone, |_| {
            consumer.commit(&tpl, CommitMode::Sync)
        })
    };
    let failed = |e: RdError| KafkaError::Operation {
        operation: format!("commit offsets of '{topic}'"),
        message: describe(&e),
    };
    match attempt(metadata) {
        Ok(()) => Ok(MetadataStored::AsGiven),
        Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::OffsetMetadataTooLarge) => {
            attempt(OMITTED).map_err(failed)?;
            Ok(MetadataStored::Omitted)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Commits a consumer engine's progress as the [commit policy](self) says: its positions with
/// its checkpoint as every partition's metadata, only when something changed since the last
/// commit.
#[derive(Debug)]
pub struct Committer {
    manual: bool,
    last: Option<(Vec<(i32, i64)>, String)>,
    omitted_warned: bool,
}

impl Committer {
    /// `manual`: the consumer reads every partition itself (manual assignment); otherwise only
    /// the partitions its group currently assigns to it are committed.
    pub fn new(manual: bool) -> Self {
        Self {
            manual,
            last: None,
            omitted_warned: false,
        }
    }

    /// Commits `engine`'s positions and checkpoint for `topic` (synchronously), unless they are
    /// what was committed last.
    pub fn commit<C, K>(
        &mut self,
        consumer: &K,
        topic: &str,
        engine: &ConsumerEngine,
    ) -> Result<(), KafkaError>
    where
        C: ConsumerContext,
        K: Consumer<C>,
    {
        let mut positions = engine.commit_positions();
        if !self.manual {
            let assigned: BTreeSet<i32> = consumer
                .assignment()
                .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default();
            positions.retain(|(p, _)| assigned.contains(p));
        }
        let checkpoint = engine.checkpoint();
        let metadata = match &checkpoint {
            None => String::new(),
            Some(cp) => cp.encode_within(METADATA_MAX_BYTES).unwrap_or_else(|| {
                self.warn_omitted(cp.nodes());
                OMITTED.to_string()
            }),
        };
        let now = (positions, metadata);
        if self.last.as_ref() == Some(&now) {
            return Ok(());
        }
        if commit(consumer, topic, &now.0, &now.1)? == MetadataStored::Omitted {
            self.warn_omitted(checkpoint.map_or(0, |cp| cp.nodes()));
        }
        self.last = Some(now);
        Ok(())
    }

    fn warn_omitted(&mut self, nodes: usize) {
        if !std::mem::replace(&mut self.omitted_warned, true) {
            tracing::warn!(
                "the delivery state of {nodes} nodes does not fit in the commit metadata \
                 ({METADATA_MAX_BYTES} bytes): a restart will resume without it"
            );
        }
    }
}
