//! A [`Checker`] wired to the consumer's [`EventSink`] and metrics: what `kafka-consumer
//! --verify` feeds from its record path.

use super::checker::{Checker, Finding, Observed, Report};
use crate::consumer::{EventSink, ViolationReport};
use crate::envelope::DecodeLimits;
use crate::metrics::Metrics;
use crate::stamp_headers::{self, Header};
use std::sync::Arc;

/// Feeds records to a [`Checker`] and reports every finding as a violation event (and a metric)
/// the moment it is made.
#[derive(Debug)]
pub struct Verifier {
    checker: Checker,
    findings: Vec<Finding>,
    metrics: Option<Arc<Metrics>>,
}

impl Verifier {
    /// A verifier; `metrics` counts findings in `kafka_timesync_violations_total{kind}`.
    pub fn new(checker: Checker, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            checker,
            findings: Vec::new(),
            metrics,
        }
    }

    /// Reports what the acknowledgement logs alone reveal; call once, before reading.
    pub fn start<S: EventSink + ?Sized>(&mut self, sink: &mut S) {
        self.checker.take_log_findings(&mut self.findings);
        self.emit(sink);
    }

    /// One record read (every record, in offset order per partition, before any filtering).
    pub fn record<S: EventSink + ?Sized>(
        &mut self,
        partition: i32,
        offset: i64,
        payload: Option<&[u8]>,
        headers: &[Header<'_>],
        sink: &mut S,
    ) {
        // A header-stamped record carries id, node and seq in its headers (bounded decode).
        let stamped;
        let msg = if stamp_headers::is_stamped(headers) {
            stamped = stamp_headers::decode(headers, 0, &DecodeLimits::default()).ok();
            stamped.as_ref().and_then(Observed::from_envelope)
        } else {
            payload.and_then(Observed::from_payload)
        };
        self.checker
            .observe(partition, offset, msg.as_ref(), &mut self.findings);
        self.emit(sink);
    }

    /// Nothing below `position` will be read from `partition` (e.g. its log starts there).
    pub fn read_up_to<S: EventSink + ?Sized>(
        &mut self,
        partition: i32,
        position: i64,
        sink: &mut S,
    ) {
        self.checker
            .read_up_to(partition, position, &mut self.findings);
        self.emit(sink);
    }

    /// The report so far.
    pub fn report(&self) -> Report {
        self.checker.report()
    }

    fn emit<S: EventSink + ?Sized>(&mut self, sink: &mut S) {
        for f in self.findings.drain(..) {
            sink.violation(&ViolationReport {
                kind: f.kind,
                node: &f.node,
                ids: &f.ids,
                detail: &f.detail,
                partition: Some(f.partition),
                offsets: &f.offsets,
            });
            if let Some(m) = &self.metrics {
                m.inc_violation(f.kind);
            }
        }
    }
}
