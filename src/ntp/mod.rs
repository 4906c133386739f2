//! SNTP time synchronisation of a node's [`PhysicalClock`](crate::clock::PhysicalClock).
//!
//! The pure core — [`packet`] (rejection reasons, NTP timestamps), [`sample`] (θ and δ),
//! [`filter`] (per-server clock filter), [`select`] (Marzullo + combine), [`discipline`]
//! (slew/step/ignore, drift regression) and the [`engine::SyncEngine`] that ties them together,
//! configured by [`options`] and reporting through [`status`] — is deterministic and tested
//! without sockets. [`client`] (one exchange with sntpc: the datagrams without a socket, and
//! over tokio UDP) and the background `task` are the thin I/O shell; the socket and the task
//! need the `kafka` feature (tokio).

pub mod client;
pub mod discipline;
pub mod engine;
pub mod filter;
pub mod options;
pub mod packet;
pub mod sample;
pub mod select;
pub mod status;
#[cfg(feature = "kafka")]
pub mod task;

#[cfg(feature = "kafka")]
pub use client::exchange;
pub use client::ExchangeResult;
pub use discipline::{Action, Thresholds};
pub use engine::SyncEngine;
pub use options::SyncOptions;
pub use packet::{KissCode, RejectReason};
pub use sample::{Exchange, Sample};
pub use status::{ExchangeRecord, RoundRecord, ServerState, ServerStatus, SyncEvent, SyncStatus};
#[cfg(feature = "kafka")]
pub use task::{spawn, SyncHandle};
