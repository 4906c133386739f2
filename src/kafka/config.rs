//! Client configuration shared by both binaries: bootstrap address, librdkafka properties from
//! `--config FILE`'s `[kafka]` table and from `-X key=value`, and per-role defaults.
//!
//! Precedence, lowest first: role defaults ([`PRODUCER_DEFAULTS`], [`CONSUMER_DEFAULTS`]),
//! `bootstrap.servers` from [`ClientSettings::new`], then properties in the order they were added
//! (callers add the config file's table first, then `-X`, so the command line wins).
//!
//! `ClientSettings`'s `Debug` and [`ClientSettings::redacted`] hide secret values
//! (see [`super::redact`]); `rdkafka::ClientConfig` is never printed by this crate.

use super::error::KafkaError;
use super::redact;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;

/// The bootstrap address used when none is given (flag, `KAFKA_BOOTSTRAP`, config file).
pub const DEFAULT_BOOTSTRAP: &str = "localhost:9092";

/// Producer defaults: idempotent, acks from all in-sync replicas, a short linger for batching, and
/// a bounded delivery timeout so an unreachable broker fails in bounded time.
///
/// The local queue holds at most 20 000 messages (librdkafka's default is 100 000): about 11 MB
/// of 300-byte-content envelopes, more than the five 1 MB batches an idempotent producer keeps in
/// flight, and small enough to stay warm in the CPU caches. With 200 000 the queue filled to
/// 150 MB during a `--count` run and cost 20 % more CPU per message (BENCHMARKS.md).
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("message.timeout.ms", "20000"),
    ("socket.connection.setup.timeout.ms", "10000"),
    ("queue.buffering.max.messages", "20000"),
    ("queue.buffering.max.kbytes", "1048576"),
];

/// Consumer defaults: offsets are committed explicitly by the application, never automatically;
/// a consumer without committed offsets starts at the beginning.
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("auto.offset.reset", "earliest"),
    ("socket.connection.setup.timeout.ms", "10000"),
];

/// Further defaults of a consumer that reads every partition itself (manual assignment, one
/// librdkafka queue per partition):
///
/// * end-of-partition events tell it when it has caught up;
/// * librdkafka's prefetch is bounded per partition (its default, 64 MiB each, is far more than a
///   reader taking one record per partition in turn needs);
/// * the ordering buffer pauses partitions and a full partition queue holds its fetches back, so
///   at times every partition with data is paused or held while the others are at their end. The
///   one fetch request librdkafka keeps in flight per broker then waits `fetch.wait.max.ms` for
///   data that is not coming, and a held partition waits `fetch.queue.backoff.ms` before its
///   next fetch; librdkafka's defaults (500 ms and 1 s) stalled a causal read of 200 000 messages
///   on Apache Kafka for 2–3 s in all. 50 ms and 10 ms: 0.9 s instead of 3.7 s for that read
///   (BENCHMARKS.md), at the cost of up to 20 empty fetch requests a second per broker while
///   caught up.
pub const MANUAL_CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.partition.eof", "true"),
    ("queued.max.messages.kbytes", "16384"),
    ("fetch.wait.max.ms", "50"),
    ("fetch.queue.backoff.ms", "10"),
];

/// Admin-client defaults.
pub const ADMIN_DEFAULTS: &[(&str, &str)] = &[("socket.connection.setup.timeout.ms", "10000")];

/// Bootstrap address plus librdkafka properties; builds the `ClientConfig` of each role.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSettings {
    bootstrap: String,
    /// In insertion order; a later entry for the same key wins.
    properties: Vec<(String, String)>,
}

impl ClientSettings {
    /// Settings for the cluster at `bootstrap` (host:port[,host:port…]).
    pub fn new(bootstrap: impl Into<String>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            properties: Vec::new(),
        }
    }

    /// The bootstrap address in effect (a `bootstrap.servers` property overrides the constructor's).
    pub fn bootstrap(&self) -> &str {
        self.get("bootstrap.servers").unwrap_or(&self.bootstrap)
    }

    /// Sets one property (overrides an earlier value of the same key).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Adds properties in order (each overrides earlier values of its key).
    pub fn extend<K: Into<String>, V: Into<String>>(
        &mut self,
        props: impl IntoIterator<Item = (K, V)>,
    ) -> &mut Self {
        for (k, v) in props {
            self.set(k, v);
        }
        self
    }

    /// The effective value of a user-set property (not the role defaults).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The values of all sensitive properties, for scrubbing messages.
    pub fn secrets(&self) -> impl Iterator<Item = &str> + '_ {
        self.properties
            .iter()
            .filter(|(k, _)| redact::is_sensitive(k))
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every secret value occurring in `text` by `***`.
    pub fn scrub(&self, text: &str) -> String {
        redact::scrub(text, self.secrets())
    }

    /// The effective user properties with secret values shown as `***` (for logs and `--verbose`).
    pub fn redacted(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert("bootstrap.servers".to_string(), self.bootstrap.clone());
        for (k, v) in &self.properties {
            out.insert(k.clone(), redact::display_value(k, v).to_string());
        }
        out
    }

    fn build(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        self.build_layers(&[defaults])
    }

    fn build_layers(&self, layers: &[&[(&str, &str)]]) -> ClientConfig {
        let mut cfg = ClientConfig::new();
        for (k, v) in layers.iter().copied().flatten() {
            cfg.set(*k, *v);
        }
        cfg.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.properties {
            cfg.set(k, v);
        }
        cfg
    }

    /// A producer configuration ([`PRODUCER_DEFAULTS`] under the user's properties).
    pub fn producer_config(&self) -> ClientConfig {
        self.build(PRODUCER_DEFAULTS)
    }

    /// A consumer configuration ([`CONSUMER_DEFAULTS`] under the user's properties); `group`
    /// sets `group.id` unless the user set it. `None` sets a throwaway unique group id:
    /// librdkafka needs one even for manual assignment, and with auto-commit off nothing is ever
    /// stored under it.
    pub fn consumer_config(&self, group: Option<&str>) -> ClientConfig {
        self.consumer_config_with(group, &[])
    }

    /// A consumer configuration that reads every partition itself:
    /// [`consumer_config`](Self::consumer_config) with [`MANUAL_CONSUMER_DEFAULTS`] added under
    /// the user's properties.
    pub fn manual_consumer_config(&self, group: Option<&str>) -> ClientConfig {
        self.consumer_config_with(group, MANUAL_CONSUMER_DEFAULTS)
    }

    fn consumer_config_with(&self, group: Option<&str>, extra: &[(&str, &str)]) -> ClientConfig {
        let mut cfg = self.build_layers(&[CONSUMER_DEFAULTS, extra]);
        if self.get("group.id").is_none() {
            match group {
                Some(g) => cfg.set("group.id", g),
                None => cfg.set(
                    "group.id",
                    format!("kafka-timesync-unused-{}", uuid::Uuid::new_v4().simple()),
                ),
            };
        }
        cfg
    }

    /// An admin-client configuration.
    pub fn admin_config(&self) -> ClientConfig {
        self.build(ADMIN_DEFAULTS)
    }

    /// Maps an rdkafka error from creating a client of `role` to a one-line, scrubbed error.
    pub fn client_error(&self, role: &'static str, err: &rdkafka::error::KafkaError) -> KafkaError {
        let message = self.scrub(&super::error::describe(err));
        match err {
            rdkafka::error::KafkaError::ClientConfig(..) => {
                KafkaError::RefusedProperty { role, message }
            }
            _ => KafkaError::Client { role, message },
        }
    }
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("properties", &self.redacted())
            .finish()
    }
}

/// Parses one `-X key=value` argument. The key is trimmed and must be non-empty; the value may
/// contain `=`. The error never echoes the argument (it may be a secret typed without its key).
pub fn parse_property(arg: &str) -> Result<(String, String), KafkaError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() && !k.trim().contains(char::is_whitespace) => {
            Ok((k.trim().to_string(), v.to_string()))
        }
        Some(_) => Err(KafkaError::InvalidProperty(
            "(expected KEY=VALUE with a non-empty librdkafka property name)".into(),
        )),
        None => Err(KafkaError::InvalidProperty(
            "(expected KEY=VALUE, no '=' found)".into(),
        )),
    }
}

/// Converts a TOML `[kafka]` table (librdkafka property → string, integer, float or boolean) to
/// properties in key order. Arrays and tables are rejected, naming the key.
pub fn properties_from_toml(table: &toml::Table) -> Result<Vec<(String, String)>, KafkaError> {
    table
        .iter()
        .map(|(k, v)| {
            let value = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                _ => {
                    return Err(KafkaError::InvalidProperty(format!(
                        "[kafka] {k}: expected a string, number or boolean"
                    )))
                }
            };
            Ok((k.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_defaults_are_idempotent_acks_all_and_user_overrides_win() {
        let mut s = ClientSettings::new("127.0.0.1:9");
        s.extend([("linger.ms", "50"), ("linger.ms", "20")]);
        let cfg = s.producer_config();
        assert_eq!(cfg.get("enable.idempotence"), Some("true"));
        assert_eq!(cfg.get("acks"), Some("all"));
        assert_eq!(cfg.get("linger.ms"), Some("20"));
        assert_eq!(cfg.get("bootstrap.servers"), Some("127.0.0.1:9"));
        assert!(cfg.get("message.timeout.ms").is_some());
    }

    #[test]
    fn bootstrap_property_overrides_constructor() {
        let mut s = ClientSettings::new("a:1");
        s.set("bootstrap.servers", "b:2");
        assert_eq!(s.bootstrap(), "b:2");
        assert_eq!(
            s.consumer_config(None).get("bootstrap.servers"),
            Some("b:2")
        );
    }

    #[test]
    fn consumer_group_is_set_unless_user_set_it() {
        let s = ClientSettings::new("a:1");
        assert_eq!(s.consumer_config(Some("g")).get("group.id"), Some("g"));
        let throwaway = s.consumer_config(None);
        assert!(throwaway
            .get("group.id")
            .unwrap()
            .starts_with("kafka-timesync-unused-"));
        let mut s = ClientSettings::new("a:1");
        s.set("group.id", "mine");
        assert_eq!(s.consumer_config(Some("g")).get("group.id"), Some("mine"));
        assert_eq!(
            s.consumer_config(Some("g")).get("enable.auto.commit"),
            Some("false")
        );
    }

    #[test]
    fn manual_consumer_asks_for_eof_and_never_auto_commits_unless_told() {
        let mut s = ClientSettings::new("a:1");
        let cfg = s.manual_consumer_config(Some("g"));
        assert_eq!(cfg.get("enable.partition.eof"), Some("true"));
        assert_eq!(cfg.get("enable.auto.commit"), Some("false"));
        assert_eq!(cfg.get("group.id"), Some("g"));
        s.set("queued.max.messages.kbytes", "1024");
        let cfg = s.manual_consumer_config(Some("g"));
        assert_eq!(cfg.get("queued.max.messages.kbytes"), Some("1024"));
    }

    #[test]
    fn debug_and_redacted_hide_secrets() {
        let mut s = ClientSettings::new("a:1");
        s.set("sasl.password", "hunter2")
            .set("sasl.mechanism", "PLAIN");
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("PLAIN"));
        assert_eq!(s.redacted()["sasl.password"], "***");
        assert_eq!(s.scrub("oops hunter2"), "oops ***");
    }

    #[test]
    fn parse_property_accepts_key_value_and_rejects_garbage_without_echo() {
        assert_eq!(
            parse_property("acks=all").unwrap(),
            ("acks".into(), "all".into())
        );
        assert_eq!(
            parse_property("sasl.jaas=a=b").unwrap(),
            ("sasl.jaas".into(), "a=b".into())
        );
        for bad in ["hunter2", "=x", " =x"] {
            let e = parse_property(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("KEY=VALUE"), "{e}");
        }
    }

    #[test]
    fn toml_table_values_become_strings() {
        let t: toml::Table =
            toml::from_str("acks = \"all\"\n\"linger.ms\" = 7\n\"enable.idempotence\" = true\n")
                .unwrap();
        let props = properties_from_toml(&t).unwrap();
        assert!(props.contains(&("linger.ms".into(), "7".into())));
        assert!(props.contains(&("enable.idempotence".into(), "true".into())));
        let bad: toml::Table = toml::from_str("x = [1]").unwrap();
        assert!(properties_from_toml(&bad)
            .unwrap_err()
            .to_string()
            .contains("[kafka] x"));
    }
}
