//! SNTP time synchronisation of a node's [`PhysicalClock`](crate::clock::PhysicalClock).
//!
//! The pure core — [`packet`] (wire format, validation), [`sample`] (θ and δ), [`filter`]
//! (per-server clock filter), [`select`] (Marzullo + combine), [`discipline`] (slew/step/ignore,
//! drift regression) and the [`sync::SyncEngine`] that ties them together — is deterministic and
//! tested without sockets. [`client`] (sntpc over tokio UDP) and the background task in [`sync`]
//! are the thin I/O shell.

pub mod client;
pub mod discipline;
pub mod filter;
pub mod packet;
pub mod sample;
pub mod select;
pub mod sync;

pub use client::{exchange, ExchangeResult};
pub use discipline::{Action, Thresholds};
pub use packet::{KissCode, RejectReason};
pub use sample::{Exchange, Sample};
pub use sync::{spawn, SyncEngine, SyncEvent, SyncHandle, SyncOptions, SyncStatus};
