//! Did Kafka keep every acknowledged write? Checks what a consumer read against what the
//! producers were told was acknowledged, in the spirit of Jepsen's Kafka checker and Kafka's own
//! VerifiableProducer / VerifiableConsumer (see docs/verify.md). Pure and sans-IO.
//!
//! * [`read_ack_log`] parses the producers' acknowledgement logs (`kafka-producer --format
//!   json`) into an [`AckedSetBuilder`];
//! * [`AckedSet`] holds the acknowledged writes compactly, per partition, sorted by offset;
//! * [`Checker`] consumes observations — (partition, offset, id, node, seq) of every record
//!   read, in offset order per partition, and where a partition's log starts — and reports
//!   [`Finding`]s as it goes, and a [`Report`] at any time;
//! * `Verifier` (feature `kafka`) wires a checker to the consumer's event sink and metrics.
//!
//! Definitions (P/O = partition/offset):
//! * `lost_write`: acknowledged at P/O, and the consumer read P past O without seeing it;
//! * unseen: acknowledged, but the consumer has not reached O (not a loss);
//! * `inconsistent_offset`: the record read at an acknowledged P/O carries another id;
//! * `duplicate_write`: one id at two offsets (an offset read twice is a redelivery instead);
//! * `nonmonotonic_send`: within one node and partition, a later seq at a lower offset;
//! * `aborted_read`: a message whose send was reported failed is in the log.
//!
//! Invariant: every acknowledged write is exactly one of delivered, unseen and lost, and
//! `lost = lost_write + inconsistent_offset`.

mod acked;
mod acklog;
mod checker;
#[cfg(feature = "kafka")]
mod session;

pub use acked::{AckedSet, AckedSetBuilder, IdKey, State};
pub use acklog::{load_ack_logs, read_ack_log, AckLogError, AckLogStats};
pub use checker::{Checker, Finding, Observed, Outcome, Report};
#[cfg(feature = "kafka")]
pub use session::Verifier;

#[cfg(test)]
mod tests;
