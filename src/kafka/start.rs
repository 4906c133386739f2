//! Where a consumer that reads every partition itself (manual assignment) starts in each one.
//!
//! Every start is resolved to a concrete offset before the partitions are assigned, so the
//! consumer knows its position in each partition (and can commit it) before reading anything,
//! and knows where each partition ended when it started (to tell when it has caught up).

use super::admin::{partition_watermarks, Watermarks};
use super::commit::Committed;
use super::error::{describe, KafkaError};
use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use std::time::Duration;

/// Where to start reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The first retained record of every partition (`--from-beginning`).
    Beginning,
    /// The last `n` records of every partition (`--history N`).
    Last(u64),
    /// The group's committed offsets; a partition without one starts as `auto.offset.reset`
    /// says (`fallback`).
    Committed {
        /// Where a partition without a committed offset starts.
        fallback: Reset,
    },
}

/// `auto.offset.reset`, for partitions without a committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// The first retained record (`earliest`, the default).
    Earliest,
    /// The end: only what is written from now on (`latest`).
    Latest,
}

impl Reset {
    /// Parses an `auto.offset.reset` value (`earliest`/`smallest`/`beginning`,
    /// `latest`/`largest`/`end`); `None` for anything else (such as `error`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "earliest" | "smallest" | "beginning" => Some(Reset::Earliest),
            "latest" | "largest" | "end" => Some(Reset::Latest),
            _ => None,
        }
    }
}

/// A partition's resolved start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStart {
    /// The partition.
    pub partition: i32,
    /// The first offset to read.
    pub offset: i64,
    /// The partition's first retained offset when reading started.
    pub low: i64,
    /// One past its last offset when reading started.
    pub high: i64,
}

impl PartitionStart {
    /// True when the start is the first retained record (nothing retained lies before it).
    pub fn at_log_start(&self) -> bool {
        self.offset <= self.low
    }
}

/// Resolves where each partition of `partitions` starts (`committed`: the group's commits, used
/// by [`Start::Committed`]; a commit outside the retained range is moved into it) and assigns
/// them to `consumer` there.
pub fn assign_at<C, K>(
    consumer: &K,
    topic: &str,
    partitions: &[i32],
    start: Start,
    committed: &[Committed],
    timeout: Duration,
) -> Result<Vec<PartitionStart>, KafkaError>
where
    C: ConsumerContext,
    K: Consumer<C>,
{
    let mut starts = Vec::with_capacity(partitions.len());
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for &p in partitions {
        let Watermarks { low, high, .. } =
            partition_watermarks(consumer.client(), topic, p, timeout)?;
        let offset = match start {
            Start::Beginning => low,
            Start::Last(n) => high.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX)),
            Start::Committed { fallback } => match committed.iter().find(|c| c.partition == p) {
                Some(c) => c.offset,
                None if fallback == Reset::Earliest => low,
                None => high,
            },
        }
        .clamp(low, high.max(low));
        tpl.add_partition_offset(topic, p, Offset::Offset(offset))
            .map_err(|e| KafkaError::Operation {
                operation: format!("set the start offset of {topic}/{p}"),
                message: describe(&e),
            })?;
        starts.push(PartitionStart {
            partition: p,
            offset,
            low,
            high,
        });
    }
    consumer.assign(&tpl).map_err(|e| KafkaError::Operation {
        operation: format!("assign the partitions of '{topic}'"),
        message: describe(&e),
    })?;
    Ok(starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_values_are_librdkafkas() {
        for v in ["earliest", "smallest", "beginning"] {
            assert_eq!(Reset::parse(v), Some(Reset::Earliest));
        }
        for v in ["latest", "largest", "end"] {
            assert_eq!(Reset::parse(v), Some(Reset::Latest));
        }
        assert_eq!(Reset::parse("error"), None);
    }

    #[test]
    fn a_start_at_the_first_retained_record_is_the_log_start() {
        let at = |offset| PartitionStart {
            partition: 0,
            offset,
            low: 5,
            high: 9,
        };
        assert!(at(5).at_log_start());
        assert!(!at(6).at_log_start());
    }
}
