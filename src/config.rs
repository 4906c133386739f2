//! Configuration: [`TimeSyncConfig`], loadable from a TOML file (`--config FILE`); the CLIs
//! overlay their command-line flags on it (flag > file > default).
//!
//! Every key is optional (a missing key takes its default); unknown keys are rejected so a typo
//! does not silently fall back to a default. `kafka-timesync.example.toml` at the repository
//! root documents every key with its default value (a unit test keeps the two in sync).

use crate::clock::ClockType;
use crate::envelope::DecodeLimits;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A node's time-synchronization and client settings.
///
/// The first six fields are the Python prototype's `TimeSyncConfig`, with its names and units.
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
    /// Keep a Lamport clock and stamp `logical_time`. Default true. (Stamping with clock type
    /// `logical` uses the Lamport clock regardless.)
    pub logical_clock_enabled: bool,
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
    /// Constant offset, in ms (may be negative). Default 0.
    pub skew_ms: f64,
    /// Drift, in ms per second elapsed since the clock started (may be negative). Default 0.
    pub drift_ms_per_s: f64,
    /// Uniform random variation of ±this many ms (≥ 0). Default 0.
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
        self.skew_ms != 0.0 || self.drift_ms_per_s != 0.0 || self.random_variation_ms != 0.0
    }
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
            logical_clock_enabled: true,
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

/// Why a configuration could not be loaded. Every variant names the file (when there is one) and,
/// where it can, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{}{}: {message}", origin(path), position(*line, *column, key.as_deref()))]
    Parse {
        /// The file (`None` for a string).
        path: Option<PathBuf>,
        /// The offending key, when known.
        key: Option<String>,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A value is well-typed but out of range.
    #[error("{}: {key}: {reason}", origin(path))]
    Invalid {
        /// The file (`None` for a string or a config built in code).
        path: Option<PathBuf>,
        /// The offending key (dotted for nested tables, e.g. `simulation.random_variation_ms`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl ConfigError {
    /// The offending key, when known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { key, .. } => key.as_deref(),
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }

    fn with_path(self, p: &Path) -> Self {
        match self {
            ConfigError::Parse {
                key,
                line,
                column,
                message,
                ..
            } => ConfigError::Parse {
                path: Some(p.to_path_buf()),
                key,
                line,
                column,
                message,
            },
            ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
                path: Some(p.to_path_buf()),
                key,
                reason,
            },
            io @ ConfigError::Io { .. } => io,
        }
    }
}

fn origin(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "config".to_string(),
    }
}

fn position(line: Option<usize>, column: Option<usize>, key: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(l) = line {
        s.push_str(&format!(":{l}"));
        if let Some(c) = column {
            s.push_str(&format!(":{c}"));
        }
    }
    if let Some(k) = key {
        s.push_str(&format!(": key '{k}'"));
    }
    s
}

impl TimeSyncConfig {
    /// Parses and validates a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let cfg: TimeSyncConfig = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a TOML file; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text).map_err(|e| e.with_path(path))
    }

    /// The file's configuration, or the defaults when there is no file.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::from_file(p),
            None => Ok(Self::default()),
        }
    }

    /// Checks ranges and consistency. The CLIs call it again after overlaying their flags.
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
        if let Some(i) = self.ntp_servers.iter().position(|s| s.trim().is_empty()) {
            return bad("ntp_servers", format!("entry {} is empty", i + 1));
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
        for (key, v) in [
            ("simulation.skew_ms", sim.skew_ms),
            ("simulation.drift_ms_per_s", sim.drift_ms_per_s),
            ("simulation.random_variation_ms", sim.random_variation_ms),
        ] {
            if !v.is_finite() {
                return bad(key, format!("must be a finite number, got {v}"));
            }
        }
        if sim.random_variation_ms < 0.0 {
            return bad(
                "simulation.random_variation_ms",
                format!(
                    "must not be negative (it is a ± range), got {}",
                    sim.random_variation_ms
                ),
            );
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

    /// [`decode_limits`](Self::decode_limits) with the node order given on the command line
    /// (`--legacy-vector-nodes`), which replaces the config key's.
    pub fn decode_limits_with(
        &self,
        legacy: Option<&[String]>,
    ) -> Result<DecodeLimits, LegacyNodesError> {
        let mut limits = self.decode_limits();
        if let Some(nodes) = legacy {
            check_legacy_vector_nodes(nodes, self.max_vector_entries).map_err(LegacyNodesError)?;
            limits = limits.with_legacy_vector_nodes(nodes.iter().map(String::as_str));
        }
        Ok(limits)
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
            .field("logical_clock_enabled", &self.logical_clock_enabled)
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

/// A `--legacy-vector-nodes` value that is not a valid node order (the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--legacy-vector-nodes: {0}")]
pub struct LegacyNodesError(pub String);

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

/// Turns a toml error into a [`ConfigError::Parse`] with line, column and the key.
fn parse_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let (mut line, mut column, mut key) = (None, None, None);
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let before = &text[..start];
        let l = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        line = Some(l);
        column = Some(before[line_start..].chars().count() + 1);
        // The key is the left-hand side of the line the error points into.
        let line_text = text[line_start..].lines().next().unwrap_or("");
        if let Some((lhs, _)) = line_text.split_once('=') {
            let k = lhs.trim().trim_matches('"');
            if !k.is_empty() && !k.starts_with('[') && !k.starts_with('#') {
                key = Some(k.to_string());
            }
        }
    }
    // "unknown field `x`, expected …": the key is in the message.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            key = Some(rest[..end].to_string());
        }
    }
    ConfigError::Parse {
        path: None,
        key,
        line,
        column,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../kafka-timesync.example.toml");

    #[test]
    fn defaults_are_the_prototypes() {
        let c = TimeSyncConfig::default();
        assert_eq!(
            c.ntp_servers,
            ["pool.ntp.org", "time.google.com", "time.cloudflare.com"]
        );
        assert_eq!(c.sync_interval, 60.0);
        assert_eq!(c.max_skew_threshold, 100.0);
        assert!(c.drift_correction);
        assert!(c.logical_clock_enabled);
        assert!(!c.vector_clock_enabled);
        assert_eq!(c.causal_timeout_ms, 5000);
        assert_eq!(c.bootstrap, "localhost:9092");
        assert!(c.validate().is_ok());
        assert_eq!(TimeSyncConfig::from_toml_str("").unwrap(), c);
    }

    #[test]
    fn discipline_thresholds_reach_the_sync_task() {
        let c = TimeSyncConfig::default();
        let o = c.sync_options();
        assert_eq!(o.thresholds.slew_below_ns, 125_000_000);
        assert_eq!(o.thresholds.step_below_ns, 1_000_000_000_000);
        let c = TimeSyncConfig::from_toml_str(
            "slew_threshold_ms = 20.5\nstep_threshold_s = 2.0\nmax_slew_ppm = 1000.0\nsync_interval = 5.0\nntp_servers = [\"127.0.0.1:1234\"]",
        )
        .unwrap();
        c.validate().unwrap();
        let o = c.sync_options();
        assert_eq!(o.thresholds.slew_below_ns, 20_500_000);
        assert_eq!(o.thresholds.step_below_ns, 2_000_000_000);
        assert_eq!(o.max_slew_ppm, 1000.0);
        assert_eq!(o.interval, Duration::from_secs(5));
        assert_eq!(o.servers, ["127.0.0.1:1234"]);
        for bad in [
            "slew_threshold_ms = -1.0",
            "step_threshold_s = 0.01",
            "max_slew_ppm = 0.0",
            "max_slew_ppm = 600000.0",
        ] {
            let err = TimeSyncConfig::from_toml_str(bad).unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(err.to_string().contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn the_example_file_parses_to_the_defaults_and_documents_every_key() {
        let parsed =
            TimeSyncConfig::from_toml_str(EXAMPLE).unwrap_or_else(|e| panic!("example: {e}"));
        assert_eq!(parsed, TimeSyncConfig::default());
        // Every key, including the optional ones that have no default value, is documented.
        let full = TimeSyncConfig {
            node_id: Some("n".into()),
            state_dir: Some("/s".into()),
            legacy_vector_nodes: Some(vec!["A".into()]),
            simulation: SimulationConfig {
                seed: Some(1),
                ..SimulationConfig::default()
            },
            ..TimeSyncConfig::default()
        };
        let table: toml::Table = toml::from_str(&toml::to_string(&full).unwrap()).unwrap();
        let mut keys: Vec<String> = Vec::new();
        for (k, v) in &table {
            match v {
                toml::Value::Table(t) => keys.extend(t.keys().map(|s| s.to_string())),
                _ => keys.push(k.clone()),
            }
        }
        keys.push("kafka".into());
        for k in keys {
            let documented = EXAMPLE.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{k} =")) || l.starts_with(&format!("[{k}]"))
            });
            assert!(documented, "key {k} is not in kafka-timesync.example.toml");
        }
    }

    #[test]
    fn legacy_vector_nodes_map_array_vectors_and_are_checked() {
        let c = TimeSyncConfig::from_toml_str("legacy_vector_nodes = [\"A\", \"B\"]").unwrap();
        let limits = c.decode_limits();
        assert_eq!(
            limits.legacy_vector_nodes,
            Some(vec![crate::NodeId::from("A"), crate::NodeId::from("B")])
        );
        // The command line replaces the key, and is checked the same way.
        let cli = vec!["X".to_string(), "Y".into(), "Z".into()];
        let limits = c.decode_limits_with(Some(&cli)).unwrap();
        assert_eq!(limits.legacy_vector_nodes.map(|v| v.len()), Some(3));
        let dup = vec!["X".to_string(), "X".into()];
        assert_eq!(
            c.decode_limits_with(Some(&dup)).unwrap_err().to_string(),
            "--legacy-vector-nodes: node id \"X\" is listed twice"
        );
        for (toml, reason) in [
            ("legacy_vector_nodes = []", "needs at least one node id"),
            (
                "legacy_vector_nodes = [\"A\", \"\"]",
                "node ids must not be empty",
            ),
            (
                "max_vector_entries = 1\nlegacy_vector_nodes = [\"A\", \"B\"]",
                "2 node ids exceed max_vector_entries (1)",
            ),
        ] {
            let e = TimeSyncConfig::from_toml_str(toml).unwrap_err();
            assert_eq!(e.key(), Some("legacy_vector_nodes"), "{toml}");
            assert!(e.to_string().contains(reason), "{toml}: {e}");
        }
    }

    #[test]
    fn the_example_kafka_section_parses_when_uncommented() {
        // Uncomment the `"property" = value` lines of the [kafka] table.
        let (head, kafka) = EXAMPLE
            .split_once("\n[kafka]\n")
            .expect("example has a [kafka] table");
        let kafka = kafka.replace("\n# \"", "\n\"").replacen("# \"", "\"", 1);
        let uncommented = format!("{head}\n[kafka]\n{kafka}");
        let c = TimeSyncConfig::from_toml_str(&uncommented).unwrap();
        assert!(c.kafka.len() >= 3, "{:?}", c.kafka);
        assert!(c.kafka.contains_key("sasl.password"));
    }

    #[test]
    fn a_full_file_is_read() {
        let c = TimeSyncConfig::from_toml_str(
            r#"
            ntp_servers = ["127.0.0.1:11123"]
            sync_interval = 0.5
            max_skew_threshold = 20
            drift_correction = false
            vector_clock_enabled = true
            enable_ntp = true
            bootstrap = "broker:9092"
            node_id = "producer-1"
            clock_type = "hlc"
            max_hlc_offset_ms = 250
            causal_timeout_ms = 100
            buffer_size = 10
            state_dir = "/tmp/kts"

            [simulation]
            skew_ms = -50
            drift_ms_per_s = 0.1
            random_variation_ms = 5
            seed = 42

            [kafka]
            "linger.ms" = 5
            "enable.idempotence" = true
            "security.protocol" = "SASL_SSL"
            "#,
        )
        .unwrap();
        assert_eq!(c.ntp_servers, ["127.0.0.1:11123"]);
        assert_eq!(c.sync_interval_duration(), Duration::from_millis(500));
        assert_eq!(c.max_skew_threshold, 20.0);
        assert!(!c.drift_correction && c.vector_clock_enabled && c.enable_ntp);
        assert_eq!(c.clock_type, ClockType::Hybrid);
        assert_eq!(c.node_id.as_deref(), Some("producer-1"));
        assert_eq!(c.causal_timeout(), Duration::from_millis(100));
        assert_eq!(c.state_dir.as_deref(), Some(Path::new("/tmp/kts")));
        assert_eq!(
            c.simulation,
            SimulationConfig {
                skew_ms: -50.0,
                drift_ms_per_s: 0.1,
                random_variation_ms: 5.0,
                seed: Some(42)
            }
        );
        assert!(c.simulation.is_active());
        assert_eq!(c.kafka["linger.ms"], "5");
        assert_eq!(c.kafka["enable.idempotence"], "true");
        assert_eq!(c.decode_limits().max_vector_entries, 1024);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name_and_line() {
        let e =
            TimeSyncConfig::from_toml_str("sync_interval = 5\nsynch_interval = 10\n").unwrap_err();
        assert_eq!(e.key(), Some("synch_interval"));
        let msg = e.to_string();
        assert!(
            msg.starts_with("config:2:1: key 'synch_interval': unknown field `synch_interval`"),
            "{msg}"
        );
        let e = TimeSyncConfig::from_toml_str("[simulation]\nskew = 3\n").unwrap_err();
        assert_eq!(e.key(), Some("skew"));
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = TimeSyncConfig::from_toml_str("buffer_size = \"big\"\n").unwrap_err();
        assert_eq!(e.key(), Some("buffer_size"), "{e}");
        let e = TimeSyncConfig::from_toml_str("clock_type = \"sundial\"\n").unwrap_err();
        assert_eq!(e.key(), Some("clock_type"));
        assert!(
            e.to_string().contains("unknown clock type 'sundial'"),
            "{e}"
        );
        let e = TimeSyncConfig::from_toml_str("[kafka]\n\"a.b\" = [1]\n").unwrap_err();
        assert_eq!(e.key(), Some("a.b"), "{e}");
        let e = TimeSyncConfig::from_toml_str("buffer_size = -1\n").unwrap_err();
        assert_eq!(e.key(), Some("buffer_size"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_invalid() {
        for (toml, key) in [
            ("sync_interval = 0", "sync_interval"),
            ("sync_interval = -1.5", "sync_interval"),
            ("sync_interval = nan", "sync_interval"),
            ("max_skew_threshold = -1", "max_skew_threshold"),
            ("buffer_size = 0", "buffer_size"),
            ("causal_timeout_ms = 0", "causal_timeout_ms"),
            ("max_record_bytes = 0", "max_record_bytes"),
            ("max_vector_entries = 0", "max_vector_entries"),
            ("bootstrap = \"\"", "bootstrap"),
            ("node_id = \"\"", "node_id"),
            ("ntp_servers = [\"a\", \" \"]", "ntp_servers"),
            ("enable_ntp = true\nntp_servers = []", "ntp_servers"),
            (
                "[simulation]\nrandom_variation_ms = -1",
                "simulation.random_variation_ms",
            ),
            ("[simulation]\nskew_ms = inf", "simulation.skew_ms"),
        ] {
            match TimeSyncConfig::from_toml_str(toml) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{toml}"),
                other => panic!("{toml}: {other:?}"),
            }
        }
        let e = TimeSyncConfig::from_toml_str("sync_interval = 0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "config: sync_interval: must be a positive number of seconds, got 0"
        );
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = TimeSyncConfig::from_file(&missing).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }));
        assert!(
            e.to_string()
                .starts_with(&format!("{}: cannot read config file", missing.display())),
            "{e}"
        );

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "buffer_size = 10\nbuffer_sise = 3\n").unwrap();
        let e = TimeSyncConfig::from_file(&bad).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}:2:1: key 'buffer_sise'", bad.display())),
            "{e}"
        );

        let invalid = dir.path().join("invalid.toml");
        std::fs::write(&invalid, "buffer_size = 0\n").unwrap();
        let e = TimeSyncConfig::from_file(&invalid).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: buffer_size: must be greater than 0", invalid.display())
        );

        let good = dir.path().join("good.toml");
        std::fs::write(&good, "buffer_size = 7\n").unwrap();
        assert_eq!(TimeSyncConfig::load(Some(&good)).unwrap().buffer_size, 7);
        assert_eq!(
            TimeSyncConfig::load(None).unwrap(),
            TimeSyncConfig::default()
        );
    }

    #[test]
    fn debug_redacts_secret_kafka_properties() {
        let c = TimeSyncConfig::from_toml_str(
            "[kafka]\n\"sasl.password\" = \"hunter2\"\n\"ssl.key.password\" = \"k3y\"\n\"sasl.username\" = \"alice\"\n",
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("k3y"), "{dbg}");
        assert!(dbg.contains("alice") && dbg.contains("***"), "{dbg}");
    }
}
