//! Reading a partition backwards: the newest record that matches, scanning windows of records
//! from the high watermark down (each twice the size of the one before, up to a limit), bounded
//! in records and time.
//!
//! Used by the producer at start-up to find its own last record (see
//! [`crate::producer::resume`]). Each window `[start, end)` is read forwards (Kafka has no
//! backwards fetch); the newest match of the newest window that has one wins.

use super::admin::{partition_watermarks, Watermarks};
use super::error::{describe, KafkaError};
use super::{ClientSettings, LogContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

/// Bounds of a tail scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailScan {
    /// Records read per partition at most before giving up.
    pub max_records: u64,
    /// Records of the first (newest) backwards step; each further step doubles, up to 16 times
    /// this (every step costs a fetch round trip).
    pub window: u64,
    /// Bound of the whole scan (metadata, watermarks, fetches).
    pub timeout: Duration,
}

impl Default for TailScan {
    /// 100 000 records per partition, a first window of 2 000, 10 s.
    fn default() -> Self {
        Self {
            max_records: 100_000,
            window: 2_000,
            timeout: Duration::from_secs(10),
        }
    }
}

/// The outcome of a tail scan of one partition; `high` is the high watermark it read up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail<T> {
    /// The newest matching record's offset and what the matcher made of it.
    Found {
        /// Its offset.
        offset: i64,
        /// The matcher's value.
        value: T,
        /// The high watermark when the scan started.
        high: i64,
    },
    /// No record matched.
    NotFound {
        /// True when the scan reached the partition's first readable offset (nothing matches
        /// anywhere in the partition); false when it stopped at [`TailScan::max_records`].
        complete: bool,
        /// Records read.
        scanned: u64,
        /// The high watermark when the scan started.
        high: i64,
    },
}

/// A consumer for tail scans (manual assignment, a throwaway group id under which nothing is
/// committed, partition EOF reported). Its
/// librdkafka log stops at errors: the producer's `-X` properties, which it is built from, would
/// otherwise each raise a "producer property ignored by this consumer" warning. Its failures
/// come back as errors.
pub fn tail_consumer(settings: &ClientSettings) -> Result<BaseConsumer<LogContext>, KafkaError> {
    let mut cfg = settings.consumer_config(None);
    cfg.set("enable.partition.eof", "true");
    cfg.set("log_level", "3");
    cfg.create_with_context(LogContext::new(settings))
        .map_err(|e| settings.client_error("consumer", &e))
}

/// Drops `consumer` on a thread of its own: closing a librdkafka client takes about 100 ms
/// (its broker threads wind down), which no caller needs to wait for.
pub fn close_in_background(consumer: BaseConsumer<LogContext>) {
    let closing = std::thread::Builder::new()
        .name("tail-close".into())
        .spawn(move || drop(consumer));
    if let Err(e) = closing {
        tracing::debug!("closing the tail reader in the foreground: {e}");
    }
}

/// Scans `topic`/`partition` from its end backwards for the newest record for which `pick`
/// returns a value. Errors: watermarks or fetches failing, or `scan.timeout` passing.
pub fn newest_matching<T>(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    partition: i32,
    scan: &TailScan,
    mut pick: impl FnMut(&BorrowedMessage<'_>) -> Option<T>,
) -> Result<Tail<T>, KafkaError> {
    let deadline = Instant::now() + scan.timeout;
    let op = |what: &str| format!("read back {what} of {topic}/{partition}");
    let Watermarks { low, high, .. } =
        partition_watermarks(consumer.client(), topic, partition, scan.timeout)?;
    let mut window = scan.window.max(1);
    let widest = window.saturating_mul(16);
    let mut end = high;
    let mut scanned = 0u64;
    while end > low && scanned < scan.max_records {
        let step = window.min(scan.max_records - scanned) as i64;
        window = window.saturating_mul(2).min(widest);
        let start = (end - step).max(low);
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition_offset(topic, partition, Offset::Offset(start))
            .and_then(|()| consumer.assign(&tpl))
            .map_err(|e| KafkaError::Operation {
                operation: op("records"),
                message: describe(&e),
            })?;
        let mut best: Option<(i64, T)> = None;
        loop {
            if Instant::now() >= deadline {
                return Err(KafkaError::Timeout(format!(
                    "could not read back {topic}/{partition} within {:?}",
                    scan.timeout
                )));
            }
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    use rdkafka::Message as _;
                    let o = m.offset();
                    if o >= end {
                        break;
                    }
                    if o < start {
                        continue;
                    }
                    scanned += 1;
                    if let Some(v) = pick(&m) {
                        best = Some((o, v));
                    }
                    if o >= end - 1 {
                        break;
                    }
                }
                Some(Err(RdError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    return Err(KafkaError::Operation {
                        operation: op("records"),
                        message: describe(&e),
                    })
                }
                None => {}
            }
        }
        if let Some((offset, value)) = best {
            return Ok(Tail::Found {
                offset,
                value,
                high,
            });
        }
        end = start;
    }
    Ok(Tail::NotFound {
        complete: end <= low,
        scanned,
        high,
    })
}

/// Follows `topic`/`partition` forwards from offset `from` until no record has matched for
/// `quiet` (or `bound` has passed), and returns the newest match, if any: records still being
/// appended, e.g. produce requests a killed client had sent that the broker has not yet
/// processed.
pub fn follow_until_quiet<T>(
    consumer: &BaseConsumer<LogContext>,
    topic: &str,
    partition: i32,
    from: i64,
    quiet: Duration,
    bound: Duration,
    mut pick: impl FnMut(&BorrowedMessage<'_>) -> Option<T>,
) -> Result<Option<(i64, T)>, KafkaError> {
    let started = Instant::now();
    let mut tpl = TopicPartitionList::with_capacity(1);
    tpl.add_partition_offset(topic, partition, Offset::Offset(from))
        .and_then(|()| consumer.assign(&tpl))
        .map_err(|e| KafkaError::Operation {
            operation: format!("follow {topic}/{partition}"),
            message: describe(&e),
        })?;
    let mut newest = None;
    let mut last_match = Instant::now();
    while last_match.elapsed() < quiet && started.elapsed() < bound {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                use rdkafka::Message as _;
                if m.offset() < from {
                    continue;
                }
                if let Some(v) = pick(&m) {
                    newest = Some((m.offset(), v));
                    last_match = Instant::now();
                }
            }
            Some(Err(RdError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => {
                return Err(KafkaError::Operation {
                    operation: format!("follow {topic}/{partition}"),
                    message: describe(&e),
                })
            }
        }
    }
    Ok(newest)
}
