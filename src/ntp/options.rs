//! The options of SNTP synchronisation: servers, polling, limits and thresholds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::client::ExchangeOptions;
use super::discipline::Thresholds;

/// Options of the sync task (the CLI maps `TimeSyncConfig` onto these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncOptions {
    /// Servers as `host[:port]` (port 123 by default).
    pub servers: Vec<String>,
    /// Time between rounds.
    pub interval: Duration,
    /// Estimate the frequency error and apply it between syncs.
    pub drift_correction: bool,
    /// Slew / step / ignore thresholds.
    pub thresholds: Thresholds,
    /// Exchanges per server in the first round (like chrony's iburst).
    pub burst: usize,
    /// Spacing of exchanges within a round.
    pub burst_spacing: Duration,
    /// Exchanges per server in later rounds.
    pub samples_per_poll: usize,
    /// Per-exchange limits.
    pub exchange: ExchangeOptions,
    /// Samples kept per server (the clock filter).
    pub filter_len: usize,
    /// Samples older than this are not used.
    pub max_sample_age: Duration,
    /// Lower bound of the half-width of a server's correctness interval in Marzullo's algorithm,
    /// so that honest servers whose tiny loopback intervals differ by microseconds still
    /// intersect.
    pub min_interval_half_width: Duration,
    /// Maximum slew rate of the clock, ppm.
    pub max_slew_ppm: f64,
    /// Largest frequency correction applied, ppm.
    pub max_frequency_ppm: f64,
    /// Points kept by the drift regression.
    pub drift_window: usize,
    /// Points needed before a drift estimate is used.
    pub drift_min_points: usize,
    /// Time the drift points must span before the estimate is used.
    pub drift_min_span: Duration,
    /// First retry delay after a round where every server failed.
    pub retry_initial: Duration,
    /// Cap of every backoff.
    pub max_backoff: Duration,
    /// Events kept in the history ring.
    pub history: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            servers: vec![
                "pool.ntp.org".into(),
                "time.google.com".into(),
                "time.cloudflare.com".into(),
            ],
            interval: Duration::from_secs(60),
            drift_correction: true,
            thresholds: Thresholds::default(),
            burst: 4,
            burst_spacing: Duration::from_millis(200),
            samples_per_poll: 1,
            exchange: ExchangeOptions::default(),
            filter_len: 8,
            max_sample_age: Duration::from_secs(1024),
            min_interval_half_width: Duration::from_millis(1),
            max_slew_ppm: crate::clock::physical::DEFAULT_MAX_SLEW_PPM,
            max_frequency_ppm: 10_000.0,
            drift_window: 32,
            drift_min_points: 4,
            drift_min_span: Duration::from_secs(2),
            retry_initial: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            history: 256,
        }
    }
}
