//! The thin Kafka shell (rdkafka/librdkafka): the clients of the [`producer`](crate::producer)
//! pipeline, the consumer's read loop, and the demos' Kafka wire.
//!
//! * [`config`] — [`ClientSettings`]: bootstrap, `-X key=value`, the config file's `[kafka]`
//!   table, per-role defaults (idempotent `acks=all` producers, manual-commit consumers).
//! * [`redact`] — secret property values are shown as `***` everywhere.
//! * [`admin`] — create / wait for / delete / list topics, partitions, watermarks.
//! * [`consumer`] — manual assignment of all partitions of a topic.
//! * [`start`] — where a manually assigned consumer starts in each partition.
//! * [`commit`] — the consumer's commit policy: committed offsets and their metadata.
//! * [`reader`] — the consumer's read loop (round-robin partitions, pause/resume, commits).
//! * [`batch`] — a partition's queue read a batch at a time, handed out one record at a time.
//! * [`session`] — one consumer run: connect, place, resume, read, commit, report.
//! * [`error`] — rdkafka errors mapped to clear one-line messages.
//! * [`retry`] — broker requests repeated through the broker's passing states (no leader yet).
//! * [`partitioner`] — librdkafka's key partitioners (which partition a key goes to).
//! * [`tail`] — the newest matching record of a partition, read backwards.
//!
//! [`LogContext`] routes librdkafka's log and error callbacks to `tracing`, scrubbed of secrets
//! and with repeated errors of one kind logged once at `warn` (then at `debug`).

pub mod admin;
pub mod batch;
pub mod commit;
pub mod config;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod reader;
pub use crate::redact;
pub mod retry;
pub mod session;
pub mod start;
pub mod tail;

pub use admin::{partition_watermarks, topic_partitions, topic_watermarks, Admin, Watermarks};
pub use commit::{
    committed, Committed, Committer, MetadataStored, COMMIT_INTERVAL, METADATA_MAX_BYTES,
};
pub use config::{parse_property, properties_from_toml, ClientSettings, DEFAULT_BOOTSTRAP};
pub use consumer::{assign_all_partitions, assign_partitions, StartAt};
pub use error::{describe, is_fatal_consume_error, KafkaError};
pub use reader::{read, FlushSink, ReadError, ReadOptions};
pub use session::{Session, SessionError, SessionOptions};
pub use start::{assign_at, PartitionStart, Reset, Start};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The headers of a record as the stamp decoder takes them
/// ([`crate::stamp_headers::decode_record`]), borrowed from librdkafka; no allocation for a
/// record with at most [`RecordHeaders::INLINE`] headers (a version-2 stamp is two).
pub fn headers_of<'a>(msg: &'a impl rdkafka::Message) -> RecordHeaders<'a> {
    use rdkafka::message::Headers as _;
    let Some(hs) = msg.headers() else {
        return RecordHeaders::collect(0, std::iter::empty());
    };
    // librdkafka's header iterator has no size hint: count once, then fill.
    RecordHeaders::collect(hs.count(), hs.iter().map(|h| (h.key, h.value)))
}

/// A record's headers in order ([`headers_of`]): a slice of [`crate::stamp_headers::Header`]
/// through `Deref`, held inline up to [`Self::INLINE`] headers and on the heap beyond.
#[derive(Debug)]
pub struct RecordHeaders<'a> {
    inline: [crate::stamp_headers::Header<'a>; INLINE_HEADERS],
    len: usize,
    spilled: Vec<crate::stamp_headers::Header<'a>>,
}

/// Headers a [`RecordHeaders`] holds without an allocation.
const INLINE_HEADERS: usize = 4;

impl<'a> RecordHeaders<'a> {
    /// Headers held without an allocation.
    pub const INLINE: usize = INLINE_HEADERS;

    /// The `count` headers `headers` yields (inline when they fit; a shorter iterator leaves
    /// out what it does not yield).
    fn collect(
        count: usize,
        headers: impl Iterator<Item = crate::stamp_headers::Header<'a>>,
    ) -> Self {
        let mut out = RecordHeaders {
            inline: [("", None); RecordHeaders::INLINE],
            len: 0,
            spilled: Vec::new(),
        };
        if count <= RecordHeaders::INLINE {
            for (slot, h) in out.inline.iter_mut().zip(headers) {
                *slot = h;
                out.len += 1;
            }
        } else {
            out.spilled.reserve_exact(count);
            out.spilled.extend(headers);
        }
        out
    }
}

impl<'a> std::ops::Deref for RecordHeaders<'a> {
    type Target = [crate::stamp_headers::Header<'a>];

    fn deref(&self) -> &Self::Target {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

/// Distinct error lines remembered for de-duplication (bounded memory).
const MAX_REMEMBERED_ERRORS: usize = 256;

/// A client context that forwards librdkafka logs and errors to `tracing`, secrets scrubbed.
#[derive(Clone, Default)]
pub struct LogContext {
    secrets: Arc<Vec<String>>,
    seen: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for LogContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogContext").finish_non_exhaustive()
    }
}

impl LogContext {
    /// A context scrubbing the secret values of `settings`.
    pub fn new(settings: &ClientSettings) -> Self {
        Self {
            secrets: Arc::new(settings.secrets().map(str::to_string).collect()),
            seen: Arc::default(),
        }
    }

    /// `text` with every secret value replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        redact::scrub(text, self.secrets.iter().map(String::as_str))
    }

    /// Logs an error line: the first line of each `kind` at `warn`, repeats at `debug`.
    pub fn report_error(&self, kind: &str, line: &str) {
        let line = error::one_line(&self.scrub(line));
        let first = match self.seen.lock() {
            Ok(mut seen) if seen.len() < MAX_REMEMBERED_ERRORS => seen.insert(kind.to_string()),
            Ok(seen) => !seen.contains(kind),
            Err(_) => true,
        };
        if first {
            tracing::warn!(target: "librdkafka", "{line}");
        } else {
            tracing::debug!(target: "librdkafka", "{line}");
        }
    }
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let msg = self.scrub(log_message);
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(target: "librdkafka", "{fac}: {msg}")
            }
            // Errors also reach `error()` below, which de-duplicates them.
            RDKafkaLogLevel::Error => tracing::debug!(target: "librdkafka", "{fac}: {msg}"),
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(target: "librdkafka", "{fac}: {msg}")
            }
            RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", "{fac}: {msg}"),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // End of partition is information (we ask for it with enable.partition.eof), not a fault.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(target: "librdkafka", "{reason}");
            return;
        }
        let kind = describe(&error);
        self.report_error(&kind, &format!("{kind}: {reason}"));
    }
}

impl ConsumerContext for LogContext {}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

    fn message(n: usize) -> OwnedMessage {
        let names: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
        let headers = names
            .iter()
            .enumerate()
            .fold(OwnedHeaders::new(), |hs, (i, key)| {
                let value = (i % 2 == 0).then_some(key.as_bytes());
                hs.insert(Header { key, value })
            });
        let headers = (n > 0).then_some(headers);
        OwnedMessage::new(
            None,
            None,
            "t".into(),
            Timestamp::NotAvailable,
            0,
            0,
            headers,
        )
    }

    #[test]
    fn headers_of_keeps_every_header_in_order_inline_or_spilled() {
        for n in [
            0,
            1,
            2,
            RecordHeaders::INLINE,
            RecordHeaders::INLINE + 1,
            40,
        ] {
            let msg = message(n);
            let got: Vec<(String, Option<Vec<u8>>)> = headers_of(&msg)
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect();
            let want: Vec<(String, Option<Vec<u8>>)> = (0..n)
                .map(|i| {
                    let k = format!("h{i}");
                    let v = (i % 2 == 0).then(|| k.clone().into_bytes());
                    (k, v)
                })
                .collect();
            assert_eq!(got, want, "{n} headers");
        }
    }
}
