//! Manual assignment of all partitions of a topic to a consumer (no group rebalancing), at a
//! logical position: used by the producer's `--observe`. (`kafka-consumer` resolves concrete
//! start offsets first: [`super::start`].)

use super::admin::topic_partitions;
use super::error::{describe, KafkaError};
use super::retry::{retry, Topic};
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// Where an assigned partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first available offset.
    Beginning,
    /// The current end (only records written from now on).
    End,
    /// The group's committed offset; partitions without one start at the beginning.
    CommittedOrBeginning,
    /// The group's committed offset; partitions without one start at the end.
    CommittedOrEnd,
}

/// Assigns every partition of `topic` to `consumer` (replacing any previous assignment), starting
/// as `start` says. Returns the assigned partition ids, sorted. The committed variants need a
/// `group.id`.
pub fn assign_all_partitions<C, K>(
    consumer: &K,
    topic: &str,
    start: StartAt,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    let partitions = topic_partitions(consumer.client(), topic, timeout)?;
    assign_partitions(consumer, topic, &partitions, start, timeout)?;
    Ok(partitions)
}

/// Assigns `partitions` of `topic` to `consumer` (replacing any previous assignment), starting
/// as `start` says: [`assign_all_partitions`] for a caller that already has the partition ids.
pub fn assign_partitions<C, K>(
    consumer: &K,
    topic: &str,
    partitions: &[i32],
    start: StartAt,
    timeout: Duration,
) -> Result<(), KafkaError>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    let fallback = match start {
        StartAt::Beginning | StartAt::CommittedOrBeginning => Offset::Beginning,
        StartAt::End | StartAt::CommittedOrEnd => Offset::End,
    };
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    let committed = match start {
        StartAt::CommittedOrBeginning | StartAt::CommittedOrEnd => Some(
            retry(timeout, Topic::MayBeNew, |left| {
                consumer.committed_offsets(tpl.clone(), left)
            })
            .map_err(|e| KafkaError::Operation {
                operation: format!("fetch committed offsets of '{topic}'"),
                message: describe(&e),
            })?,
        ),
        _ => None,
    };
    for &p in partitions {
        let offset = committed
            .as_ref()
            .and_then(|c| c.find_partition(topic, p))
            .map(|e| e.offset())
            .filter(|o| matches!(o, Offset::Offset(n) if *n >= 0))
            .unwrap_or(fallback);
        tpl.set_partition_offset(topic, p, offset)
            .map_err(|e| KafkaError::Operation {
                operation: format!("set start offset of {topic}/{p}"),
                message: describe(&e),
            })?;
    }
    consumer.assign(&tpl).map_err(|e| KafkaError::Operation {
        operation: format!("assign partitions of '{topic}'"),
        message: describe(&e),
    })
}
