//! `--observe`: a consumer on all partitions of the topic that merges every timestamp it reads
//! into the node's clocks ([`Stamper::observe`]), on its own thread. Records of either form
//! (JSON envelope or header-stamped, [`decode_record`]) are merged.
//!
//! It starts at the beginning of every partition and notes where each one ends at that moment
//! (its high watermark); [`Observer::wait_caught_up`] returns once, in every partition, a record
//! at or past that end has been merged or librdkafka has reported end-of-partition (the fetch
//! reached the high watermark of its response). So the first message stamped afterwards has seen
//! everything written before the observer started. A partition that was empty needs nothing.
//! It keeps merging until stopped.

use super::{Observed, Stamper};
use crate::envelope::DecodeLimits;
use crate::kafka::{
    assign_partitions, describe, topic_watermarks, ClientSettings, KafkaError, LogContext, StartAt,
};
use crate::stamp_headers::decode_record;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::Message;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest the observer thread waits for a record before checking whether it is stopped:
/// the bound of [`Observer::stop`]'s wait.
const POLL_WAIT: Duration = Duration::from_millis(10);

/// Counters of an observer.
#[derive(Debug, Default)]
pub struct ObserveStats {
    /// Records read.
    pub records: AtomicU64,
    /// Records that were not valid envelopes (skipped).
    pub malformed: AtomicU64,
    /// Hybrid timestamps refused as too far ahead.
    pub hybrid_refused: AtomicU64,
}

/// A running observer thread.
#[derive(Debug)]
pub struct Observer {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    caught_up: Receiver<()>,
    stats: Arc<ObserveStats>,
    topic: String,
}

impl Observer {
    /// Creates the consumer, assigns every partition of `topic` from the beginning and starts
    /// merging into `stamper`. Errors (no such topic, unreachable broker) are returned here.
    pub fn start(
        settings: &ClientSettings,
        topic: &str,
        stamper: Arc<Mutex<Stamper>>,
        timeout: Duration,
    ) -> Result<Self, KafkaError> {
        // It reads every partition itself (end-of-partition events on, short fetch waits).
        let consumer: BaseConsumer<LogContext> = settings
            .manual_consumer_config(None)
            .create_with_context(LogContext::new(settings))
            .map_err(|e| settings.client_error("consumer", &e))?;
        // Where each partition ends now: caught up once a record at or past it is read, or its
        // end-of-partition event arrives. An empty partition has nothing to catch up on. Asked
        // before anything is assigned: the broker answers one request per connection at a
        // time, so once the consumer fetches, a watermark query would wait behind its
        // long-poll fetch (`fetch.wait.max.ms`) on a partition with nothing new.
        let ends = topic_watermarks(consumer.client(), topic, timeout)?;
        let partitions: Vec<i32> = ends.iter().map(|w| w.partition).collect();
        let mut pending: HashMap<i32, i64> = ends
            .iter()
            .filter(|w| w.high > w.low)
            .map(|w| (w.partition, w.high))
            .collect();
        assign_partitions(&consumer, topic, &partitions, StartAt::Beginning, timeout)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ObserveStats::default());
        let (tx, rx) = mpsc::channel();
        if pending.is_empty() {
            let _ = tx.send(());
        }
        let limits = DecodeLimits::default();
        let (stop2, stats2) = (Arc::clone(&stop), Arc::clone(&stats));
        let handle = std::thread::Builder::new()
            .name("observe".into())
            .spawn(move || {
                let mut signalled = pending.is_empty();
                while !stop2.load(Ordering::Relaxed) {
                    match consumer.poll(POLL_WAIT) {
                        Some(Ok(m)) => {
                            stats2.records.fetch_add(1, Ordering::Relaxed);
                            if pending
                                .get(&m.partition())
                                .is_some_and(|end| m.offset() + 1 >= *end)
                            {
                                pending.remove(&m.partition());
                            }
                            let headers = crate::kafka::headers_of(&m);
                            match decode_record(m.payload(), &headers, &limits) {
                                Ok((_, env)) => {
                                    let outcome = match stamper.lock() {
                                        Ok(mut s) => s.observe(&env.timestamp),
                                        Err(p) => p.into_inner().observe(&env.timestamp),
                                    };
                                    if let Observed::HybridRefused(e) = outcome {
                                        if stats2.hybrid_refused.fetch_add(1, Ordering::Relaxed)
                                            == 0
                                        {
                                            tracing::warn!(
                                                "observe: {e} (further refusals counted)"
                                            );
                                        }
                                    }
                                }
                                Err(e) => {
                                    stats2.malformed.fetch_add(1, Ordering::Relaxed);
                                    tracing::debug!(
                                        "observe: skipping malformed record {}/{}: {e}",
                                        m.partition(),
                                        m.offset()
                                    );
                                }
                            }
                        }
                        Some(Err(RdError::PartitionEOF(p))) => {
                            pending.remove(&p);
                        }
                        Some(Err(e)) => tracing::warn!("observe: {}", describe(&e)),
                        None => {}
                    }
                    if !signalled && pending.is_empty() {
                        signalled = true;
                        let _ = tx.send(());
                    }
                }
                // Closing the client takes tens of milliseconds (librdkafka's threads wind
                // down); nothing waits for it, so `stop` returns as soon as merging has ended.
                let _ = std::thread::Builder::new()
                    .name("observe-close".into())
                    .spawn(move || drop(consumer));
            })
            .map_err(|e| KafkaError::Operation {
                operation: "start the observer thread".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            handle: Some(handle),
            stop,
            caught_up: rx,
            stats,
            topic: topic.to_string(),
        })
    }

    /// Blocks until everything written before [`Observer::start`] has been merged.
    pub fn wait_caught_up(&self, timeout: Duration) -> Result<(), KafkaError> {
        match self.caught_up.recv_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(RecvTimeoutError::Timeout) => Err(KafkaError::Timeout(format!(
                "--observe: could not read topic '{}' up to its end within {timeout:?}",
                self.topic
            ))),
            Err(RecvTimeoutError::Disconnected) => Err(KafkaError::Timeout(format!(
                "--observe: the observer of topic '{}' stopped before catching up",
                self.topic
            ))),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &ObserveStats {
        &self.stats
    }

    /// Stops merging and waits for the thread (at most about 10 ms, one poll, after the merge in
    /// progress); its consumer is closed in the background.
    pub fn stop(mut self) -> Arc<ObserveStats> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        Arc::clone(&self.stats)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
