//! The one merge of a node's settings, for both binaries: per key, a command-line flag beats the
//! environment, which beats the config file, which beats the default.
//!
//! The environment is read through an injected lookup, so the merge is pure. Only the bootstrap
//! servers have an environment variable ([`BOOTSTRAP_ENV`]). A value that is out of range after
//! the merge is reported under the name the user gave it: the flag, the variable, or the key.

use super::{ConfigError, TimeSyncConfig};
use crate::clock::ClockType;
use crate::envelope::Form;
use std::path::PathBuf;

/// The environment variable that gives the bootstrap servers when `--bootstrap` does not.
pub const BOOTSTRAP_ENV: &str = "KAFKA_BOOTSTRAP";

/// The settings given on a command line; `None` (or empty, or false) leaves the key to the
/// environment, the file and the default. Each field names its flag and the key it overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--bootstrap` → `bootstrap`.
    pub bootstrap: Option<String>,
    /// `--node-id` → `node_id`.
    pub node_id: Option<String>,
    /// `--clock-type` → `clock_type`.
    pub clock_type: Option<ClockType>,
    /// `--envelope` → `envelope`.
    pub envelope: Option<Form>,
    /// `--enable-ntp` → `enable_ntp` (a switch: it can only turn synchronisation on).
    pub enable_ntp: bool,
    /// `--ntp-server` (repeatable) → `ntp_servers`, replacing the whole list when not empty.
    pub ntp_servers: Vec<String>,
    /// `--sync-interval` → `sync_interval`.
    pub sync_interval: Option<f64>,
    /// `--max-skew-ms` → `max_skew_threshold`.
    pub max_skew_ms: Option<f64>,
    /// `--max-hlc-offset-ms` → `max_hlc_offset_ms`.
    pub max_hlc_offset_ms: Option<u64>,
    /// `--causal-timeout` → `causal_timeout_ms`.
    pub causal_timeout_ms: Option<u64>,
    /// `--buffer-size` → `buffer_size`.
    pub buffer_size: Option<usize>,
    /// `--legacy-vector-nodes` → `legacy_vector_nodes`.
    pub legacy_vector_nodes: Option<Vec<String>>,
    /// `--state-dir` → `state_dir`.
    pub state_dir: Option<PathBuf>,
    /// `--simulate-skew` → `simulation.skew_ms`.
    pub simulate_skew: Option<f64>,
    /// `--simulate-drift` → `simulation.drift_ms_per_s`.
    pub simulate_drift: Option<f64>,
    /// `--random-variation` → `simulation.random_variation_ms`.
    pub random_variation: Option<f64>,
    /// `--simulation-seed` → `simulation.seed`.
    pub simulation_seed: Option<u64>,
}

impl TimeSyncConfig {
    /// This configuration (the file's, or the defaults) with the environment (`env`, e.g.
    /// `|k| std::env::var(k).ok()`; an empty value counts as unset) and then the flags laid over
    /// it, key by key, and validated. A value out of range is reported as
    /// [`ConfigError::Override`] naming the flag or variable that set it.
    pub fn merge(
        mut self,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> Result<TimeSyncConfig, ConfigError> {
        // (config key, the name the user gave it) for every key set here.
        let mut given: Vec<(&str, &str)> = Vec::new();
        if let Some(b) = env(BOOTSTRAP_ENV).filter(|b| !b.is_empty()) {
            self.bootstrap = b;
            given.push(("bootstrap", BOOTSTRAP_ENV));
        }
        let mut set = |key: &'static str, flag: &'static str, applied: bool| {
            if applied {
                given.retain(|(k, _)| *k != key);
                given.push((key, flag));
            }
        };
        // `flag!(field, key, --flag, target)`: a given flag replaces the key's value;
        // `flag!(field, key, --flag, target, Some)` for an optional key.
        macro_rules! flag {
            ($field:ident, $key:literal, $flag:literal, $target:expr $(, $wrap:ident)?) => {
                set($key, $flag, flags.$field.is_some());
                if let Some(v) = flags.$field.clone() {
                    $target = $($wrap)?(v);
                }
            };
        }
        flag!(bootstrap, "bootstrap", "--bootstrap", self.bootstrap);
        flag!(node_id, "node_id", "--node-id", self.node_id, Some);
        flag!(clock_type, "clock_type", "--clock-type", self.clock_type);
        flag!(envelope, "envelope", "--envelope", self.envelope);
        set("enable_ntp", "--enable-ntp", flags.enable_ntp);
        self.enable_ntp |= flags.enable_ntp;
        set("ntp_servers", "--ntp-server", !flags.ntp_servers.is_empty());
        if !flags.ntp_servers.is_empty() {
            self.ntp_servers = flags.ntp_servers.clone();
        }
        flag!(
            sync_interval,
            "sync_interval",
            "--sync-interval",
            self.sync_interval
        );
        flag!(
            max_skew_ms,
            "max_skew_threshold",
            "--max-skew-ms",
            self.max_skew_threshold
        );
        flag!(
            max_hlc_offset_ms,
            "max_hlc_offset_ms",
            "--max-hlc-offset-ms",
            self.max_hlc_offset_ms
        );
        flag!(
            causal_timeout_ms,
            "causal_timeout_ms",
            "--causal-timeout",
            self.causal_timeout_ms
        );
        flag!(
            buffer_size,
            "buffer_size",
            "--buffer-size",
            self.buffer_size
        );
        flag!(
            legacy_vector_nodes,
            "legacy_vector_nodes",
            "--legacy-vector-nodes",
            self.legacy_vector_nodes,
            Some
        );
        flag!(state_dir, "state_dir", "--state-dir", self.state_dir, Some);
        let sim = &mut self.simulation;
        flag!(
            simulate_skew,
            "simulation.skew_ms",
            "--simulate-skew",
            sim.skew_ms
        );
        flag!(
            simulate_drift,
            "simulation.drift_ms_per_s",
            "--simulate-drift",
            sim.drift_ms_per_s
        );
        flag!(
            random_variation,
            "simulation.random_variation_ms",
            "--random-variation",
            sim.random_variation_ms
        );
        flag!(
            simulation_seed,
            "simulation.seed",
            "--simulation-seed",
            sim.seed,
            Some
        );
        match self.validate() {
            Ok(()) => Ok(self),
            Err(ConfigError::Invalid { key, reason, path }) => {
                match given.iter().find(|(k, _)| *k == key) {
                    Some((_, name)) => Err(ConfigError::Override {
                        name: (*name).to_string(),
                        reason,
                    }),
                    None => Err(ConfigError::Invalid { key, reason, path }),
                }
            }
            Err(e) => Err(e),
        }
    }
}
