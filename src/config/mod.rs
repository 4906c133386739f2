//! Configuration: [`TimeSyncConfig`], loadable from a TOML file (`--config FILE`), with the
//! environment and command-line flags laid over it by [`TimeSyncConfig::merge`] (flag >
//! environment > file > default, per key).
//!
//! Every key is optional (a missing key takes its default); unknown keys are rejected so a typo
//! does not silently fall back to a default. `kafka-timesync.example.toml` at the repository
//! root documents every key with its default value (a unit test keeps the two in sync).
//! [`values`] holds the ranges and syntax that flags and keys share.
//!
//! The prototype's `logical_clock_enabled` is no longer a key: every message carries a Lamport
//! time. A file that sets it to `true` (the prototype's default) loads with a warning
//! ([`Loaded::warnings`]); `false` is refused, since it cannot be honoured.

mod error;
mod merge;
pub mod values;

pub use error::ConfigError;
pub use merge::{Overrides, BOOTSTRAP_ENV};

use crate::clock::physical::Simulation;
use crate::clock::ClockType;
use crate::envelope::DecodeLimits;
use error::parse_error;
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A node's time-synchronization and client settings.
///
/// The first five fields are the Python prototype's `TimeSyncConfig`, with its names and units
/// (its sixth, `logical_clock_enabled`, is retired: see the [module docs](self)).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeSyncConfig {
    /// SNTP servers (`host` or `host:port`, default port 123), tried and combined by the sync
    /// task. Default: `pool.ntp.org`, `time.google.com`, `time.cloudflare.com`.
    pub ntp_servers: Vec<String>,
    /// Seconds between synchronizations (> 0). Default 60.
    pub sync_interval: f64,
    /// Clock offset, in milliseconds, above which the consumer's analysis warns about a node
    /// (`skew_threshold`; CLI `--max-skew-ms`). ≥ 0. Default 100.
    pub max_skew_threshold: f64,
    /// Estimate and correct the local clock's frequency error (drift), not only its offset.
    /// Default true.
    pub drift_correction: bool,
    /// Keep a vector clock and stamp `vector_time` on every message, whatever the clock type.
    /// Default false. (Clock type `vector` always keeps one.)
    pub vector_clock_enabled: bool,
    /// Synchronize the clock with SNTP (`--enable-ntp`). Default false.
    pub enable_ntp: bool,
    /// Measured offsets with |θ| below this many milliseconds are slewed (spread over time, the
    /// clock never steps). Default 125 (the course notes' NTP rule).
    pub slew_threshold_ms: f64,
    /// Offsets with |θ| from `slew_threshold_ms` up to this many seconds are stepped; larger
    /// ones are ignored with a warning. Default 1000.
    pub step_threshold_s: f64,
    /// Fastest slew, in ppm of elapsed time (< 500 000, so a slewing clock never stops or runs
    /// backwards). Default 50 000 (a 50 ms correction takes one second).
    pub max_slew_ppm: f64,
    /// Kafka bootstrap servers, `host:port[,host:port…]` (`--bootstrap`, env
    /// `KAFKA_BOOTSTRAP`). Default `localhost:9092`.
    pub bootstrap: String,
    /// This node's id (`--node-id`): the message key and the clocks' identity. Default: none,
    /// the CLI picks one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The clock that orders this node's messages: `physical`, `logical` (alias `lamport`),
    /// `vector` or `hybrid` (alias `hlc`). Default `physical`.
    #[serde(deserialize_with = "clock_type_from_str")]
    pub clock_type: ClockType,
    /// Where the producer puts the stamp: `json` (the envelope is the record value) or `headers`
    /// (record headers, the value untouched; CLI `--envelope`). Default `json`.
    pub envelope: crate::envelope::Form,
    /// Largest accepted distance, in ms, of a received hybrid timestamp ahead of local physical
    /// time; further ahead is refused and counted. Default 500.
    pub max_hlc_offset_ms: u64,
    /// Longest time, in ms, a message waits in the causal or total-order buffer for its
    /// predecessors before it is released with reason `timeout` (`--causal-timeout`, > 0).
    /// Default 5000.
    pub causal_timeout_ms: u64,
    /// Analysis window and causal/total buffer capacity, in messages (`--buffer-size`, > 0).
    /// Default 1000.
    pub buffer_size: usize,
    /// Largest record the consumer decodes, in bytes (> 0); larger ones are reported as
    /// malformed. Default 1 MiB.
    pub max_record_bytes: usize,
    /// Most `vector_time` entries a record may carry (> 0). Default 1024.
    pub max_vector_entries: usize,
    /// Node order of the Python prototype's array-form `vector_time` (`[1,2,3]`: entry *i* is
    /// node *i*'s counter; CLI `--legacy-vector-nodes A,B,C`). Non-empty, distinct, valid node
    /// ids. Default: none, such vectors are not mapped and their messages carry no vector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy_vector_nodes: Option<Vec<String>>,
    /// Where node state (seq and clocks) persists (`--state-dir`). Default: none, the CLI uses
    /// `$XDG_STATE_HOME/kafka-timesync` or `~/.local/state/kafka-timesync`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Clock simulation (`--simulate-skew`, `--simulate-drift`, `--random-variation`).
    pub simulation: SimulationConfig,
    /// librdkafka properties passed to every client (`-X key=value` overrides), e.g.
    /// `"security.protocol" = "SASL_SSL"`. Values may be strings, integers, floats or booleans.
    /// Values of secret-looking keys (password, secret, token, …) are redacted in `Debug`.
    #[serde(deserialize_with = "kafka_properties")]
    pub kafka: BTreeMap<String, String>,
}

/// Simulated clock error (all zero: no simulation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationConfig {
    /// Constant offset, in ms, within ±one day ([`values::SKEW_MS`]). Default 0.
    pub skew_ms: f64,
    /// Drift, in ms per second elapsed since the clock started, within ±500
    /// ([`values::DRIFT_MS_PER_S`]). Default 0.
    pub drift_ms_per_s: f64,
    /// Uniform random variation of ±this many ms (0 to one day). Default 0.
    pub random_variation_ms: f64,
    /// Seed for the random variation; default none (seeded from the OS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            skew_ms: 0.0,
            drift_ms_per_s: 0.0,
            random_variation_ms: 0.0,
            seed: None,
        }
    }
}

impl SimulationConfig {
    /// True when any simulated error is configured.
    pub fn is_active(&self) -> bool {
        !self.clock_simulation().is_zero()
    }

    /// The physical clock's simulation with these parameters.
    pub fn clock_simulation(&self) -> Simulation {
        Simulation {
            skew_ms: self.skew_ms,
            drift_ms_per_s: self.drift_ms_per_s,
            random_variation_ms: self.random_variation_ms,
            seed: self.seed,
        }
    }
}

/// A configuration as loaded, with the warnings its file deserves (deprecated keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The validated configuration.
    pub config: TimeSyncConfig,
    /// One line per deprecated key the file uses, naming the file and the key.
    pub warnings: Vec<String>,
}

impl Default for TimeSyncConfig {
    fn default() -> Self {
        Self {
            ntp_servers: vec![
                "pool.ntp.org".into(),
                "time.google.com".into(),
                "time.cloudflare.com".into(),
            ],
            sync_interval: 60.0,
            max_skew_threshold: 100.0,
            drift_correction: true,
            vector_clock_enabled: false,
            enable_ntp: false,
            slew_threshold_ms: 125.0,
            step_threshold_s: 1000.0,
            max_slew_ppm: crate::clock::physical::DEFAULT_MAX_SLEW_PPM,
            bootstrap: "localhost:9092".into(),
            node_id: None,
            clock_type: ClockType::Physical,
            envelope: crate::envelope::Form::Json,
            max_hlc_offset_ms: 500,
            causal_timeout_ms: 5000,
            buffer_size: 1000,
            max_record_bytes: 1024 * 1024,
            max_vector_entries: 1024,
            legacy_vector_nodes: None,
            state_dir: None,
            simulation: SimulationConfig::default(),
            kafka: BTreeMap::new(),
        }
    }
}

impl TimeSyncConfig {
    /// Parses and validates a TOML document, with the warnings it deserves.
    pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
        let (text, warnings) = retire_keys(text)?;
        let config: TimeSyncConfig = toml::from_str(&text).map_err(|e| parse_error(&text, &e))?;
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    /// Parses and validates a TOML document (any warnings are dropped: [`parse`](Self::parse)
    /// returns them).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text).map(|l| l.config)
    }

    /// Reads, parses and validates a TOML file; errors and warnings name the file.
    pub fn read_file(path: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut loaded = Self::parse(&text).map_err(|e| e.with_path(path))?;
        for w in &mut loaded.warnings {
            *w = format!("{}: {w}", path.display());
        }
        Ok(loaded)
    }

    /// Reads, parses and validates a TOML file; errors name the file (any warnings are
    /// dropped: [`read_file`](Self::read_file) returns them).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::read_file(path).map(|l| l.config)
    }

    /// The file's configuration and warnings, or the defaults when there is no file.
    pub fn load(path: Option<&Path>) -> Result<Loaded, ConfigError> {
        match path {
            Some(p) => Self::read_file(p),
            None => Ok(Loaded {
                config: Self::default(),
                warnings: Vec::new(),
            }),
        }
    }

    /// Checks ranges and consistency ([`merge`](Self::merge) runs it on the merged result).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                path: None,
                key: key.to_string(),
                reason,
            })
        };
        if !(self.sync_interval.is_finite() && self.sync_interval > 0.0) {
            return bad(
                "sync_interval",
                format!(
                    "must be a positive number of seconds, got {}",
                    self.sync_interval
                ),
            );
        }
        if !(self.max_skew_threshold.is_finite() && self.max_skew_threshold >= 0.0) {
            return bad(
                "max_skew_threshold",
                format!(
                    "must be a non-negative number of milliseconds, got {}",
                    self.max_skew_threshold
                ),
            );
        }
        if !(self.slew_threshold_ms.is_finite() && self.slew_threshold_ms >= 0.0) {
            return bad(
                "slew_threshold_ms",
                format!(
                    "must be a non-negative number of milliseconds, got {}",
                    self.slew_threshold_ms
                ),
            );
        }
        if !(self.step_threshold_s.is_finite()
            && self.step_threshold_s * 1000.0 >= self.slew_threshold_ms)
        {
            return bad(
                "step_threshold_s",
                format!(
                    "must be a number of seconds no smaller than slew_threshold_ms, got {}",
                    self.step_threshold_s
                ),
            );
        }
        let max_rate = crate::clock::physical::MAX_RATE_PPM;
        if !(self.max_slew_ppm.is_finite()
            && self.max_slew_ppm > 0.0
            && self.max_slew_ppm < max_rate)
        {
            return bad(
                "max_slew_ppm",
                format!(
                    "must be above 0 and below {max_rate}, got {}",
                    self.max_slew_ppm
                ),
            );
        }
        for (i, server) in self.ntp_servers.iter().enumerate() {
            values::check_ntp_server(server).or_else(|why| {
                bad(
                    "ntp_servers",
                    format!("entry {} ({server:?}): {why}", i + 1),
                )
            })?;
        }
        if self.enable_ntp && self.ntp_servers.is_empty() {
            return bad(
                "ntp_servers",
                "enable_ntp is set but no server is configured".into(),
            );
        }
        if self.bootstrap.trim().is_empty() {
            return bad("bootstrap", "must not be empty".into());
        }
        if let Some(id) = &self.node_id {
            if id.is_empty() {
                return bad("node_id", "must not be empty".into());
            }
            let max = DecodeLimits::default().max_node_id_len;
            if id.len() > max {
                return bad(
                    "node_id",
                    format!("{} bytes is longer than the {max}-byte limit", id.len()),
                );
            }
        }
        for (key, v) in [
            ("causal_timeout_ms", self.causal_timeout_ms as u128),
            ("buffer_size", self.buffer_size as u128),
            ("max_record_bytes", self.max_record_bytes as u128),
            ("max_vector_entries", self.max_vector_entries as u128),
        ] {
            if v == 0 {
                return bad(key, "must be greater than 0".into());
            }
        }
        if let Some(nodes) = &self.legacy_vector_nodes {
            check_legacy_vector_nodes(nodes, self.max_vector_entries)
                .or_else(|reason| bad("legacy_vector_nodes", reason))?;
        }
        let sim = &self.simulation;
        for (key, v, range) in [
            ("simulation.skew_ms", sim.skew_ms, values::SKEW_MS),
            (
                "simulation.drift_ms_per_s",
                sim.drift_ms_per_s,
                values::DRIFT_MS_PER_S,
            ),
            (
                "simulation.random_variation_ms",
                sim.random_variation_ms,
                values::RANDOM_VARIATION_MS,
            ),
        ] {
            range
                .check(v)
                .map(drop)
                .or_else(|reason| bad(key, reason))?;
        }
        if let Some(k) = self.kafka.keys().find(|k| k.trim().is_empty()) {
            return bad("kafka", format!("empty property name {k:?}"));
        }
        Ok(())
    }

    /// `sync_interval` as a [`Duration`] (call after [`validate`](Self::validate)).
    pub fn sync_interval_duration(&self) -> Duration {
        Duration::try_from_secs_f64(self.sync_interval).unwrap_or(Duration::from_secs(60))
    }

    /// The SNTP sync task's options for this configuration: servers, interval, drift correction,
    /// slew/step thresholds and slew rate; everything else at [`SyncOptions`]' defaults.
    ///
    /// [`SyncOptions`]: crate::ntp::SyncOptions
    pub fn sync_options(&self) -> crate::ntp::SyncOptions {
        crate::ntp::SyncOptions {
            servers: self.ntp_servers.clone(),
            interval: self.sync_interval_duration(),
            drift_correction: self.drift_correction,
            thresholds: crate::ntp::discipline::Thresholds {
                slew_below_ns: (self.slew_threshold_ms * 1e6) as i64,
                step_below_ns: (self.step_threshold_s * 1e9) as i64,
            },
            max_slew_ppm: self.max_slew_ppm,
            ..Default::default()
        }
    }

    /// `causal_timeout_ms` as a [`Duration`].
    pub fn causal_timeout(&self) -> Duration {
        Duration::from_millis(self.causal_timeout_ms)
    }

    /// The envelope decoder limits this configuration asks for.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_bytes: self.max_record_bytes,
            max_vector_entries: self.max_vector_entries,
            legacy_vector_nodes: self
                .legacy_vector_nodes
                .as_ref()
                .map(|v| v.iter().map(|n| crate::NodeId::from(n.as_str())).collect()),
            ..DecodeLimits::default()
        }
    }
}

impl fmt::Debug for TimeSyncConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Redacted<'a>(&'a BTreeMap<String, String>);
        impl fmt::Debug for Redacted<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(k, v)| {
                        (
                            k,
                            if crate::redact::is_sensitive(k) {
                                "***"
                            } else {
                                v.as_str()
                            },
                        )
                    }))
                    .finish()
            }
        }
        f.debug_struct("TimeSyncConfig")
            .field("ntp_servers", &self.ntp_servers)
            .field("sync_interval", &self.sync_interval)
            .field("max_skew_threshold", &self.max_skew_threshold)
            .field("drift_correction", &self.drift_correction)
            .field("vector_clock_enabled", &self.vector_clock_enabled)
            .field("enable_ntp", &self.enable_ntp)
            .field("bootstrap", &self.bootstrap)
            .field("node_id", &self.node_id)
            .field("clock_type", &self.clock_type)
            .field("envelope", &self.envelope)
            .field("max_hlc_offset_ms", &self.max_hlc_offset_ms)
            .field("causal_timeout_ms", &self.causal_timeout_ms)
            .field("buffer_size", &self.buffer_size)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("max_vector_entries", &self.max_vector_entries)
            .field("legacy_vector_nodes", &self.legacy_vector_nodes)
            .field("state_dir", &self.state_dir)
            .field("simulation", &self.simulation)
            .field("kafka", &Redacted(&self.kafka))
            .finish()
    }
}

/// Checks a node order for array-form vectors: at least one node, at most `max_entries`, every
/// id non-empty, within the node-id length limit and distinct.
fn check_legacy_vector_nodes(nodes: &[String], max_entries: usize) -> Result<(), String> {
    if nodes.is_empty() {
        return Err("needs at least one node id".into());
    }
    if nodes.len() > max_entries {
        return Err(format!(
            "{} node ids exceed max_vector_entries ({max_entries})",
            nodes.len()
        ));
    }
    let max_len = DecodeLimits::default().max_node_id_len;
    let mut seen = std::collections::HashSet::new();
    for n in nodes {
        if n.is_empty() {
            return Err("node ids must not be empty".into());
        }
        if n.len() > max_len {
            return Err(format!(
                "node id of {} bytes is longer than the {max_len}-byte limit",
                n.len()
            ));
        }
        if !seen.insert(n.as_str()) {
            return Err(format!("node id {n:?} is listed twice"));
        }
    }
    Ok(())
}

fn clock_type_from_str<'de, D: Deserializer<'de>>(d: D) -> Result<ClockType, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn kafka_properties<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "expected a librdkafka property value: a string, integer, float or boolean"
    )]
    enum Value {
        Str(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Value>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Str(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Float(x) => x.to_string(),
                Value::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// The text with retired keys taken out, and a warning for each. `logical_clock_enabled = true`
/// (a top-level line) becomes a blank line, so the parser's line numbers stay right; `false` is
/// refused. Any other spelling of the key is left to the parser, which rejects it as unknown.
fn retire_keys(text: &str) -> Result<(Cow<'_, str>, Vec<String>), ConfigError> {
    const KEY: &str = "logical_clock_enabled";
    let mut out = String::with_capacity(text.len());
    let (mut changed, mut in_tables) = (false, false);
    let mut warnings = Vec::new();
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        in_tables |= t.starts_with('[');
        let value = t
            .strip_prefix(KEY)
            .and_then(|r| r.trim_start().strip_prefix('='))
            .filter(|_| !in_tables)
            .map(|v| v.split('#').next().unwrap_or("").trim());
        match value {
            Some("true") => {
                // Keep the line break only.
                out.push_str(&line[line.trim_end_matches(['\n', '\r']).len()..]);
                changed = true;
                warnings.push(format!(
                    "{KEY} is deprecated and ignored: every message carries a Lamport time \
                     (logical_time); remove the key"
                ));
            }
            Some("false") => {
                return Err(ConfigError::Invalid {
                    path: None,
                    key: KEY.into(),
                    reason: "false is not supported: every message carries a Lamport time \
                             (logical_time), which total-order delivery needs; remove the key"
                        .into(),
                })
            }
            _ => out.push_str(line),
        }
    }
    let text = if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    };
    Ok((text, warnings))
}

#[cfg(test)]
mod tests;
