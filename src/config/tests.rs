//! Unit tests of the configuration file: defaults, the example file, parsing and range errors.

use super::*;

const EXAMPLE: &str = include_str!("../../kafka-timesync.example.toml");

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
    let parsed = TimeSyncConfig::from_toml_str(EXAMPLE).unwrap_or_else(|e| panic!("example: {e}"));
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
    let flags = |nodes: &[&str]| Overrides {
        legacy_vector_nodes: Some(nodes.iter().map(|n| n.to_string()).collect()),
        ..Overrides::default()
    };
    let merged = c.clone().merge(no_env, &flags(&["X", "Y", "Z"])).unwrap();
    assert_eq!(
        merged.decode_limits().legacy_vector_nodes.map(|v| v.len()),
        Some(3)
    );
    assert_eq!(
        c.merge(no_env, &flags(&["X", "X"]))
            .unwrap_err()
            .to_string(),
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
    let e = TimeSyncConfig::from_toml_str("sync_interval = 5\nsynch_interval = 10\n").unwrap_err();
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
        ("ntp_servers = [\"999.1.1.1:99999\"]", "ntp_servers"),
        ("[simulation]\nskew_ms = 1e308", "simulation.skew_ms"),
        (
            "[simulation]\ndrift_ms_per_s = -501",
            "simulation.drift_ms_per_s",
        ),
        (
            "[simulation]\nrandom_variation_ms = 86400001",
            "simulation.random_variation_ms",
        ),
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
    let e =
        TimeSyncConfig::from_toml_str("ntp_servers = [\"ok\", \"999.1.1.1:99999\"]").unwrap_err();
    assert_eq!(
        e.to_string(),
        "config: ntp_servers: entry 2 (\"999.1.1.1:99999\"): port 99999 is not in 1..=65535"
    );
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
    assert_eq!(
        TimeSyncConfig::load(Some(&good))
            .unwrap()
            .config
            .buffer_size,
        7
    );
    assert_eq!(
        TimeSyncConfig::load(None).unwrap().config,
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

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn the_retired_logical_clock_key_warns_when_true_and_is_refused_when_false() {
    // Line numbers of later errors are unchanged by the removal.
    let e = TimeSyncConfig::parse(
        "sync_interval = 5\nlogical_clock_enabled = true # old\nbuffer_sise = 1\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("config:3:1: key 'buffer_sise'"),
        "{e}"
    );
    let loaded =
        TimeSyncConfig::parse("logical_clock_enabled=true\r\nsync_interval = 5\n").unwrap();
    assert_eq!(loaded.config.sync_interval, 5.0);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].starts_with("logical_clock_enabled is deprecated and ignored"));
    let e = TimeSyncConfig::parse("logical_clock_enabled = false\n").unwrap_err();
    assert_eq!(e.key(), Some("logical_clock_enabled"));
    assert!(e.to_string().contains("false is not supported"), "{e}");
    // Inside a table it is just an unknown key.
    let e = TimeSyncConfig::parse("[simulation]\nlogical_clock_enabled = true\n").unwrap_err();
    assert_eq!(e.key(), Some("logical_clock_enabled"));
    assert!(TimeSyncConfig::parse("sync_interval = 5\n")
        .unwrap()
        .warnings
        .is_empty());

    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("prototype.toml");
    std::fs::write(&old, "logical_clock_enabled = true\n").unwrap();
    let loaded = TimeSyncConfig::load(Some(&old)).unwrap();
    assert_eq!(loaded.config, TimeSyncConfig::default());
    assert_eq!(
        loaded.warnings,
        [format!(
            "{}: logical_clock_enabled is deprecated and ignored: every message carries a \
             Lamport time (logical_time); remove the key",
            old.display()
        )]
    );
}

/// Every key the merge sets, with a file value, an environment value where there is one, and a
/// flag value, all different from each other and from the default.
#[test]
fn a_flag_beats_the_environment_beats_the_file_beats_the_default_per_key() {
    let file = TimeSyncConfig::from_toml_str(
        r#"
        bootstrap = "file:9092"
        node_id = "file-node"
        clock_type = "vector"
        envelope = "headers"
        ntp_servers = ["file.ntp"]
        sync_interval = 7.0
        max_skew_threshold = 7.0
        max_hlc_offset_ms = 7
        causal_timeout_ms = 7
        buffer_size = 7
        legacy_vector_nodes = ["F"]
        state_dir = "/file"
        [simulation]
        skew_ms = 7.0
        drift_ms_per_s = 7.0
        random_variation_ms = 7.0
        seed = 7
        "#,
    )
    .unwrap();
    let env = |k: &str| (k == BOOTSTRAP_ENV).then(|| "env:9092".to_string());
    let flags = Overrides {
        bootstrap: Some("flag:9092".into()),
        node_id: Some("flag-node".into()),
        clock_type: Some(ClockType::Hybrid),
        envelope: Some(crate::envelope::Form::Json),
        enable_ntp: true,
        ntp_servers: vec!["flag.ntp:1230".into()],
        sync_interval: Some(9.0),
        max_skew_ms: Some(9.0),
        max_hlc_offset_ms: Some(9),
        causal_timeout_ms: Some(9),
        buffer_size: Some(9),
        legacy_vector_nodes: Some(vec!["L".into()]),
        state_dir: Some("/flag".into()),
        simulate_skew: Some(9.0),
        simulate_drift: Some(-9.0),
        random_variation: Some(9.0),
        simulation_seed: Some(9),
    };
    let flagged = file.clone().merge(env, &flags).unwrap();
    let expect_flags = TimeSyncConfig {
        bootstrap: "flag:9092".into(),
        node_id: Some("flag-node".into()),
        clock_type: ClockType::Hybrid,
        envelope: crate::envelope::Form::Json,
        enable_ntp: true,
        ntp_servers: vec!["flag.ntp:1230".into()],
        sync_interval: 9.0,
        max_skew_threshold: 9.0,
        max_hlc_offset_ms: 9,
        causal_timeout_ms: 9,
        buffer_size: 9,
        legacy_vector_nodes: Some(vec!["L".into()]),
        state_dir: Some("/flag".into()),
        simulation: SimulationConfig {
            skew_ms: 9.0,
            drift_ms_per_s: -9.0,
            random_variation_ms: 9.0,
            seed: Some(9),
        },
        ..file.clone()
    };
    assert_eq!(flagged, expect_flags);
    // Without flags: the environment's bootstrap, the file for everything else.
    let unflagged = file.clone().merge(env, &Overrides::default()).unwrap();
    assert_eq!(
        unflagged,
        TimeSyncConfig {
            bootstrap: "env:9092".into(),
            ..file.clone()
        }
    );
    // An empty variable is unset.
    let empty = |_: &str| Some(String::new());
    assert_eq!(
        file.clone().merge(empty, &Overrides::default()).unwrap(),
        file
    );
    // Without file, environment or flags: the defaults; the environment over the defaults.
    let defaults = TimeSyncConfig::default();
    assert_eq!(
        defaults
            .clone()
            .merge(no_env, &Overrides::default())
            .unwrap(),
        defaults
    );
    assert_eq!(
        defaults.clone().merge(env, &Overrides::default()).unwrap(),
        TimeSyncConfig {
            bootstrap: "env:9092".into(),
            ..defaults.clone()
        }
    );
    // One flag over the defaults changes its own key only: a producer's, a consumer's.
    for (flags, changed) in [
        (
            Overrides {
                clock_type: Some(ClockType::Logical),
                ..Overrides::default()
            },
            TimeSyncConfig {
                clock_type: ClockType::Logical,
                ..defaults.clone()
            },
        ),
        (
            Overrides {
                causal_timeout_ms: Some(1),
                ..Overrides::default()
            },
            TimeSyncConfig {
                causal_timeout_ms: 1,
                ..defaults.clone()
            },
        ),
    ] {
        assert_eq!(defaults.clone().merge(no_env, &flags).unwrap(), changed);
    }
    // --enable-ntp only switches on: without it, the file's `enable_ntp = true` stays.
    let on = TimeSyncConfig::from_toml_str("enable_ntp = true").unwrap();
    assert!(on.merge(no_env, &Overrides::default()).unwrap().enable_ntp);
}

#[test]
fn merged_values_out_of_range_name_the_flag_or_variable_that_gave_them() {
    let merge = |file: &str, env: Option<&str>, flags: Overrides| {
        let env = env.map(str::to_string);
        TimeSyncConfig::from_toml_str(file)
            .unwrap()
            .merge(|_| env.clone(), &flags)
            .map_err(|e| e.to_string())
    };
    let none = Overrides::default;
    for (file, env, flags, error) in [
        (
            "",
            None,
            Overrides {
                simulate_skew: Some(1e308),
                ..none()
            },
            "--simulate-skew: 1e308 is outside -86400000..=86400000 ms (one day)",
        ),
        (
            "",
            None,
            Overrides {
                simulate_drift: Some(f64::NAN),
                ..none()
            },
            "--simulate-drift: NaN is outside -500..=500 ms/s",
        ),
        (
            "",
            None,
            Overrides {
                random_variation: Some(-1.0),
                ..none()
            },
            "--random-variation: -1 is outside 0..=86400000 ms",
        ),
        (
            "",
            None,
            Overrides {
                causal_timeout_ms: Some(0),
                ..none()
            },
            "--causal-timeout: must be greater than 0",
        ),
        (
            "",
            None,
            Overrides {
                max_skew_ms: Some(-1.0),
                ..none()
            },
            "--max-skew-ms: must be a non-negative number of milliseconds, got -1",
        ),
        (
            "",
            None,
            Overrides {
                ntp_servers: vec!["999.1.1.1:99999".into()],
                ..none()
            },
            "--ntp-server: entry 1 (\"999.1.1.1:99999\"): port 99999 is not in 1..=65535",
        ),
        ("", Some(" "), none(), "KAFKA_BOOTSTRAP: must not be empty"),
        (
            "bootstrap = \"file:1\"",
            Some("env:1"),
            Overrides {
                bootstrap: Some("".into()),
                ..none()
            },
            "--bootstrap: must not be empty",
        ),
        // Not set by a flag: the key is named.
        (
            "ntp_servers = []",
            None,
            Overrides {
                enable_ntp: true,
                ..none()
            },
            "config: ntp_servers: enable_ntp is set but no server is configured",
        ),
    ] {
        let got = merge(file, env, flags).unwrap_err();
        assert!(got.starts_with(error), "{got} should start with {error}");
    }
    // A file value that a flag replaces no longer matters.
    let skewed = "[simulation]\nskew_ms = 5.0";
    let flags = Overrides {
        simulate_skew: Some(-86_400_000.0),
        ..none()
    };
    assert!(merge(skewed, None, flags).is_ok());
}
