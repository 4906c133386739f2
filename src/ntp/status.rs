//! What synchronisation reports: the status readable at any time ([`SyncStatus`], one
//! [`ServerStatus`] per server) and the events of each exchange and round ([`SyncEvent`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::discipline::Action;
use super::packet::RejectReason;
use crate::time::UnixNanos;

/// Whether a server is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerState {
    /// Polled every round.
    Active,
    /// Skipped for some rounds (KoD RATE or repeated failures).
    Backoff,
    /// Never polled again (KoD DENY / RSTR).
    Disabled,
}

/// One server's state, as reported in [`SyncStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// As configured (`host[:port]`).
    pub name: String,
    /// Resolved address in use, if any.
    pub addr: Option<String>,
    /// Polling state.
    pub state: ServerState,
    /// Rounds still skipped.
    pub skip_rounds: u32,
    /// Accepted samples.
    pub accepted: u64,
    /// Rejections by reason label.
    pub rejected: BTreeMap<String, u64>,
    /// The latest rejection.
    pub last_reject: Option<RejectReason>,
    /// θ of the latest accepted sample, ns.
    pub last_offset_ns: Option<i64>,
    /// δ of the latest accepted sample, ns.
    pub last_delay_ns: Option<i64>,
    /// Outcome of the latest selection: `Some(true)` truechimer, `Some(false)` falseticker.
    pub truechimer: Option<bool>,
}

/// Status of the synchronisation, readable any time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// θ combined in the latest round that corrected the clock, ns.
    pub last_offset_ns: Option<i64>,
    /// δ of the server in use at that round, ns.
    pub last_delay_ns: Option<i64>,
    /// Estimated frequency error of the uncorrected clock, ppm (positive = fast).
    pub drift_ppm: Option<f64>,
    /// Frequency correction applied to the clock, ppm.
    pub frequency_correction_ppm: f64,
    /// The server whose sample had the smallest distance among the survivors.
    pub server_in_use: Option<String>,
    /// The action of the latest round that chose one.
    pub last_action: Option<Action>,
    /// Accepted samples, all servers.
    pub samples_accepted: u64,
    /// Rejected exchanges by reason label, all servers.
    pub rejected: BTreeMap<String, u64>,
    /// Rounds completed.
    pub rounds: u64,
    /// Rounds that corrected the clock.
    pub good_rounds: u64,
    /// Slews applied.
    pub slews: u64,
    /// Steps applied.
    pub steps: u64,
    /// Offsets ignored as too large.
    pub ignored: u64,
    /// Consecutive rounds in which every server failed.
    pub consecutive_failed_rounds: u32,
    /// Seconds since the latest round that corrected the clock (by the clock's base time).
    pub since_last_good_sync_s: Option<f64>,
    /// Per-server state.
    pub servers: Vec<ServerStatus>,
}

/// One exchange, as reported in [`SyncEvent::Exchange`]: its timestamps, θ and δ, or why it was
/// rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    /// Configured server name.
    pub server: String,
    /// Address used.
    pub addr: Option<String>,
    /// T1 (local), ns.
    pub t1_ns: Option<UnixNanos>,
    /// T2 (server), ns.
    pub t2_ns: Option<UnixNanos>,
    /// T3 (server), ns.
    pub t3_ns: Option<UnixNanos>,
    /// T4 (local), ns.
    pub t4_ns: Option<UnixNanos>,
    /// θ, ns (when T1..T4 are all known).
    pub offset_ns: Option<i64>,
    /// δ, ns (when T1..T4 are all known).
    pub delay_ns: Option<i64>,
    /// Reply stratum.
    pub stratum: Option<u8>,
    /// Why the exchange was rejected, if it was.
    pub rejected: Option<RejectReason>,
}

/// The decision of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Combined θ carried to the end of the round, ns.
    pub offset_ns: Option<i64>,
    /// What was done with it (`None`: nothing to do, see `note`).
    pub action: Option<Action>,
    /// Servers that survived selection.
    pub survivors: Vec<String>,
    /// Servers dropped as falsetickers.
    pub falsetickers: Vec<String>,
    /// The server in use.
    pub server_in_use: Option<String>,
    /// Drift estimate after this round, ppm.
    pub drift_ppm: Option<f64>,
    /// Frequency correction after this round, ppm.
    pub frequency_ppm: f64,
    /// Why nothing was done, when so.
    pub note: Option<String>,
}

/// What the engine records, in order: every exchange, then the round it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum SyncEvent {
    /// One exchange finished.
    Exchange(ExchangeRecord),
    /// One round finished.
    Round(RoundRecord),
}
