//! Structural checks of `docker/docker-compose.kafka.yml`, the 3-node Apache Kafka cluster, and of
//! what the test environment derives from it.
//!
//! No Docker engine is available where the tests run, so the containers are never started here;
//! `scripts/testenv.sh run --brokers 3` boots the file's configuration from the Apache Kafka jars
//! (`scripts/kafka/compose_props.py`, checked below; `tests/cluster_kafka.rs` runs against it).
//! These tests catch the mistakes that make such a file silently wrong: environment variables the
//! `apache/kafka` image does not read (the prototype used Bitnami's `KAFKA_CFG_*` names, which
//! this image ignores), node ids / quorum voters / listeners that disagree, advertised addresses
//! that are not reachable from the host, replication settings that need more brokers than exist,
//! and an init service that races the cluster.

use std::collections::{BTreeMap, BTreeSet};

use yaml_rust2::{Yaml, YamlLoader};

const COMPOSE_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docker/docker-compose.kafka.yml"
);
const BROKERS: usize = 3;
const HOST_PORTS: [u16; 3] = [9092, 9094, 9096];

// ---------------------------------------------------------------------------------------------
// What the apache/kafka image reads
// ---------------------------------------------------------------------------------------------

/// Variables the image's scripts read themselves instead of turning them into server properties.
const IMAGE_SPECIALS: &[&str] = &[
    "CLUSTER_ID",
    "KAFKA_HEAP_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JMX_PORT",
    "KAFKA_JMX_HOSTNAME",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
];

/// Broker and KRaft controller configuration names (Kafka 3.9 / 4.x) a compose file like this one
/// may plausibly set. A variable must map to one of these to pass; extend the list (from the
/// Kafka configuration reference) when the compose file needs a new setting.
const BROKER_CONFIGS: &[&str] = &[
    "advertised.listeners",
    "auto.create.topics.enable",
    "auto.leader.rebalance.enable",
    "broker.id",
    "broker.rack",
    "compression.type",
    "controller.listener.names",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.election.timeout.ms",
    "controller.quorum.fetch.timeout.ms",
    "controller.quorum.voters",
    "default.replication.factor",
    "delete.topic.enable",
    "group.coordinator.rebalance.protocols",
    "group.initial.rebalance.delay.ms",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "listeners",
    "log.cleaner.enable",
    "log.dir",
    "log.dirs",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.message.timestamp.type",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.segment.bytes",
    "message.max.bytes",
    "metadata.log.dir",
    "min.insync.replicas",
    "node.id",
    "num.io.threads",
    "num.network.threads",
    "num.partitions",
    "num.recovery.threads.per.data.dir",
    "offsets.retention.minutes",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "process.roles",
    "replica.lag.time.max.ms",
    "share.coordinator.state.topic.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "socket.receive.buffer.bytes",
    "socket.request.max.bytes",
    "socket.send.buffer.bytes",
    "transaction.state.log.min.isr",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "unclean.leader.election.enable",
];

/// The image's rule for turning an environment variable into a server property: strip `KAFKA_`,
/// then `___` becomes `-`, `__` becomes `_`, a single `_` becomes `.`, and everything is
/// lower-cased. `None` for names outside the `KAFKA_` namespace.
fn env_var_to_property(name: &str) -> Option<String> {
    let rest = name.strip_prefix("KAFKA_")?;
    let mut out = String::with_capacity(rest.len());
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '_' {
            let run = chars[i..].iter().take_while(|&&c| c == '_').count();
            match run {
                1 => out.push('.'),
                2 => out.push('_'),
                3 => out.push('-'),
                _ => return None, // undefined in the image: treat as unreadable
            }
            i += run;
        } else {
            out.extend(chars[i].to_lowercase());
            i += 1;
        }
    }
    Some(out)
}

/// Whether the apache/kafka image reads `name`; `Err` says why not.
fn check_env_var(name: &str) -> Result<(), String> {
    if IMAGE_SPECIALS.contains(&name) {
        return Ok(());
    }
    if name.starts_with("KAFKA_CFG_") {
        return Err(format!(
            "{name}: KAFKA_CFG_* is the Bitnami image's convention; apache/kafka would set a \
             property named {:?}, which Kafka does not know",
            env_var_to_property(name).unwrap_or_default()
        ));
    }
    let Some(property) = env_var_to_property(name) else {
        return Err(format!(
            "{name}: not a KAFKA_* variable and not one the image reads itself"
        ));
    };
    if BROKER_CONFIGS.contains(&property.as_str()) {
        Ok(())
    } else {
        Err(format!(
            "{name}: maps to {property:?}, which is not a known broker/controller config"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the compose file
// ---------------------------------------------------------------------------------------------

fn load_compose() -> Yaml {
    let text = std::fs::read_to_string(COMPOSE_PATH)
        .unwrap_or_else(|e| panic!("cannot read {COMPOSE_PATH}: {e}"));
    let mut docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{COMPOSE_PATH} is not valid YAML: {e}"));
    assert_eq!(
        docs.len(),
        1,
        "compose file must hold exactly one YAML document"
    );
    docs.remove(0)
}

/// A scalar as compose sees it in an environment map or a port (strings and numbers alike).
fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn str_of(y: &Yaml, what: &str) -> String {
    scalar(y).unwrap_or_else(|| panic!("{what}: expected a scalar, found {y:?}"))
}

fn services(doc: &Yaml) -> BTreeMap<String, Yaml> {
    let hash = doc["services"]
        .as_hash()
        .expect("top-level `services` mapping");
    hash.iter()
        .map(|(k, v)| (str_of(k, "service name"), v.clone()))
        .collect()
}

/// The Kafka nodes: services running the apache/kafka image that are not one-shot jobs.
fn kafka_nodes(doc: &Yaml) -> BTreeMap<String, Yaml> {
    services(doc)
        .into_iter()
        .filter(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("apache/kafka:"))
                && !matches!(&s["environment"], Yaml::BadValue)
        })
        .collect()
}

/// A service's environment, whether written as a mapping or as a list of `KEY=VALUE`.
fn environment(service: &Yaml, name: &str) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(h) => h
            .iter()
            .map(|(k, v)| {
                (
                    str_of(k, "env name"),
                    str_of(v, &format!("{name} env value")),
                )
            })
            .collect(),
        Yaml::Array(items) => items
            .iter()
            .map(|item| {
                let s = str_of(item, "env entry");
                let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        other => panic!("{name}: environment must be a mapping or list, found {other:?}"),
    }
}

fn env_get<'a>(env: &'a BTreeMap<String, String>, key: &str, service: &str) -> &'a str {
    env.get(key)
        .unwrap_or_else(|| panic!("{service}: {key} is not set"))
        .as_str()
}

fn env_u32(env: &BTreeMap<String, String>, key: &str, service: &str) -> u32 {
    let v = env_get(env, key, service);
    v.parse()
        .unwrap_or_else(|_| panic!("{service}: {key}={v:?} is not a number"))
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Listener {
    name: String,
    host: String,
    port: u16,
}

/// Parses `NAME://host:port,...` (host may be empty: all interfaces).
fn listeners(value: &str, what: &str) -> Vec<Listener> {
    value
        .split(',')
        .map(|entry| {
            let (name, addr) = entry
                .trim()
                .split_once("://")
                .unwrap_or_else(|| panic!("{what}: {entry:?} is not NAME://host:port"));
            let (host, port) = addr
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("{what}: {entry:?} has no port"));
            let port = port
                .parse()
                .unwrap_or_else(|_| panic!("{what}: bad port in {entry:?}"));
            Listener {
                name: name.to_string(),
                host: host.to_string(),
                port,
            }
        })
        .collect()
}

fn by_name(ls: &[Listener]) -> BTreeMap<&str, &Listener> {
    ls.iter().map(|l| (l.name.as_str(), l)).collect()
}

fn hostname(service: &Yaml, name: &str) -> String {
    service["hostname"]
        .as_str()
        .map_or_else(|| name.to_string(), str::to_string)
}

// ---------------------------------------------------------------------------------------------
// The checker's own behaviour (so the compose checks below can fail)
// ---------------------------------------------------------------------------------------------

#[test]
fn image_convention_maps_names_like_the_apache_kafka_image() {
    assert_eq!(
        env_var_to_property("KAFKA_NODE_ID").as_deref(),
        Some("node.id")
    );
    assert_eq!(
        env_var_to_property("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP").as_deref(),
        Some("listener.security.protocol.map")
    );
    assert_eq!(
        env_var_to_property("KAFKA_FOO__BAR___BAZ").as_deref(),
        Some("foo_bar-baz")
    );
    assert_eq!(env_var_to_property("CLUSTER_ID"), None);
}

#[test]
fn checker_rejects_the_prototypes_bitnami_names_and_typos() {
    assert!(check_env_var("KAFKA_CFG_NODE_ID").is_err());
    assert!(check_env_var("KAFKA_CFG_PROCESS_ROLES").is_err());
    assert!(check_env_var("KAFKA_CFG_CONTROLLER_QUORUM_VOTERS").is_err());
    assert!(check_env_var("KAFKA_NODEID").is_err());
    assert!(check_env_var("KAFKA_BROKER_ID_X").is_err());
    assert!(check_env_var("ALLOW_PLAINTEXT_LISTENER").is_err());
    assert!(check_env_var("KAFKA_KRAFT_CLUSTER_ID").is_err());
    assert!(check_env_var("KAFKA_NODE_ID").is_ok());
    assert!(check_env_var("CLUSTER_ID").is_ok());
    assert!(check_env_var("KAFKA_HEAP_OPTS").is_ok());
}

// ---------------------------------------------------------------------------------------------
// The compose file
// ---------------------------------------------------------------------------------------------

#[test]
fn three_kafka_nodes_on_a_current_apache_kafka_image() {
    let doc = load_compose();
    let nodes = kafka_nodes(&doc);
    assert_eq!(
        nodes.len(),
        BROKERS,
        "expected {BROKERS} Kafka nodes, found {:?}",
        nodes.keys()
    );
    for (name, svc) in services(&doc) {
        let Some(image) = svc["image"].as_str() else {
            continue;
        };
        if !image.contains("kafka") {
            continue;
        }
        let tag = image
            .strip_prefix("apache/kafka:")
            .unwrap_or_else(|| panic!("{name}: image {image:?} is not the official apache/kafka"));
        let mut parts = tag.split('.').map(|p| p.parse::<u32>().ok());
        let (major, minor) = (parts.next().flatten(), parts.next().flatten());
        let current = matches!((major, minor), (Some(3), Some(9)) | (Some(4..), Some(_)));
        assert!(
            current,
            "{name}: apache/kafka:{tag} is not a pinned 3.9.x or 4.x release"
        );
    }
}

#[test]
fn every_kafka_environment_variable_is_read_by_the_image() {
    let doc = load_compose();
    let mut problems = Vec::new();
    for (name, svc) in kafka_nodes(&doc) {
        for key in environment(&svc, &name).keys() {
            if let Err(e) = check_env_var(key) {
                problems.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "unreadable environment variables:\n{}",
        problems.join("\n")
    );
}

#[test]
fn kraft_settings_are_complete_so_the_image_defaults_never_apply() {
    // The image fills in single-node defaults (replication factor 1, a localhost quorum) for any of
    // these left unset; in a 3-node cluster those defaults are wrong.
    const REQUIRED: &[&str] = &[
        "CLUSTER_ID",
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_INTER_BROKER_LISTENER_NAME",
        "KAFKA_LOG_DIRS",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS",
    ];
    let doc = load_compose();
    for (name, svc) in kafka_nodes(&doc) {
        let env = environment(&svc, &name);
        for key in REQUIRED {
            assert!(
                env.contains_key(*key),
                "{name}: {key} must be set explicitly"
            );
        }
        let roles: BTreeSet<&str> = env_get(&env, "KAFKA_PROCESS_ROLES", &name)
            .split(',')
            .collect();
        assert_eq!(
            roles,
            BTreeSet::from(["broker", "controller"]),
            "{name}: process roles"
        );
    }
}

#[test]
fn cluster_id_is_shared_and_a_valid_kafka_uuid() {
    let doc = load_compose();
    let ids: BTreeSet<String> = kafka_nodes(&doc)
        .iter()
        .map(|(name, svc)| env_get(&environment(svc, name), "CLUSTER_ID", name).to_string())
        .collect();
    assert_eq!(ids.len(), 1, "nodes disagree on CLUSTER_ID: {ids:?}");
    let id = ids.into_iter().next().unwrap_or_default();
    // Kafka cluster ids are 16-byte UUIDs in unpadded URL-safe base64: 22 characters.
    assert_eq!(
        id.len(),
        22,
        "CLUSTER_ID {id:?} must be 22 base64url characters"
    );
    let alphabet = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    assert!(
        id.chars().all(alphabet),
        "CLUSTER_ID {id:?} is not base64url"
    );
    let last = id.chars().last().unwrap_or('A');
    assert!(
        "AQgw".contains(last),
        "CLUSTER_ID {id:?} does not decode to exactly 16 bytes"
    );
}

#[test]
fn node_ids_quorum_voters_and_listeners_agree() {
    let doc = load_compose();
    let nodes = kafka_nodes(&doc);

    // Node ids: unique, and each node's voter entry points at its own host and controller port.
    let mut ids = BTreeSet::new();
    let mut expected_voters = BTreeSet::new();
    let mut voter_strings = BTreeSet::new();
    for (name, svc) in &nodes {
        let env = environment(svc, name);
        let id = env_u32(&env, "KAFKA_NODE_ID", name);
        assert!(ids.insert(id), "{name}: duplicate KAFKA_NODE_ID {id}");

        let ls = listeners(env_get(&env, "KAFKA_LISTENERS", name), name);
        let names = by_name(&ls);
        assert_eq!(names.len(), ls.len(), "{name}: duplicate listener names");
        let ports: BTreeSet<u16> = ls.iter().map(|l| l.port).collect();
        assert_eq!(ports.len(), ls.len(), "{name}: two listeners share a port");

        // Every listener has a security protocol.
        let protocol_map: BTreeMap<&str, &str> =
            env_get(&env, "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", name)
                .split(',')
                .filter_map(|kv| kv.split_once(':'))
                .collect();
        for l in &ls {
            assert!(
                protocol_map.contains_key(l.name.as_str()),
                "{name}: {} has no protocol",
                l.name
            );
        }

        let controller = env_get(&env, "KAFKA_CONTROLLER_LISTENER_NAMES", name);
        let controller_listener = names.get(controller).unwrap_or_else(|| {
            panic!("{name}: controller listener {controller} is not in KAFKA_LISTENERS")
        });
        expected_voters.insert(format!(
            "{id}@{}:{}",
            hostname(svc, name),
            controller_listener.port
        ));

        let inter = env_get(&env, "KAFKA_INTER_BROKER_LISTENER_NAME", name);
        assert_ne!(
            inter, controller,
            "{name}: brokers must not talk over the controller listener"
        );
        assert!(
            names.contains_key(inter),
            "{name}: inter-broker listener {inter} not in KAFKA_LISTENERS"
        );

        // Advertised listeners: every one is a real listener on the same port; the controller
        // listener is never advertised; the inter-broker one is advertised under the node's own
        // network name so the other nodes can reach it.
        let adv = listeners(env_get(&env, "KAFKA_ADVERTISED_LISTENERS", name), name);
        for a in &adv {
            let l = names
                .get(a.name.as_str())
                .unwrap_or_else(|| panic!("{name}: advertised {} is not a listener", a.name));
            assert_eq!(
                a.port, l.port,
                "{name}: {} advertised on another port than it listens",
                a.name
            );
            assert_ne!(
                a.name, controller,
                "{name}: the controller listener must not be advertised"
            );
            assert!(
                !a.host.is_empty(),
                "{name}: advertised {} has no host",
                a.name
            );
        }
        let adv_inter = adv
            .iter()
            .find(|a| a.name == inter)
            .unwrap_or_else(|| panic!("{name}: inter-broker listener {inter} is not advertised"));
        assert_eq!(
            adv_inter.host,
            hostname(svc, name),
            "{name}: inter-broker address"
        );

        voter_strings.insert(env_get(&env, "KAFKA_CONTROLLER_QUORUM_VOTERS", name).to_string());
    }
    assert_eq!(ids, (1..=BROKERS as u32).collect(), "node ids");

    assert_eq!(
        voter_strings.len(),
        1,
        "nodes disagree on the quorum voters: {voter_strings:?}"
    );
    let voters: BTreeSet<String> = voter_strings
        .iter()
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect();
    assert_eq!(
        voters, expected_voters,
        "quorum voters must be exactly the nodes' controller listeners"
    );
}

#[test]
fn host_listeners_are_advertised_on_9092_9094_9096_and_published() {
    let doc = load_compose();
    let mut host_ports = BTreeSet::new();
    for (name, svc) in kafka_nodes(&doc) {
        let env = environment(&svc, &name);
        let inter = env_get(&env, "KAFKA_INTER_BROKER_LISTENER_NAME", &name).to_string();
        let adv = listeners(env_get(&env, "KAFKA_ADVERTISED_LISTENERS", &name), &name);
        let external: Vec<&Listener> = adv.iter().filter(|a| a.name != inter).collect();
        assert_eq!(
            external.len(),
            1,
            "{name}: expected one host-facing advertised listener"
        );
        let ext = external[0];
        assert_eq!(
            ext.host, "localhost",
            "{name}: host listener must be advertised as localhost"
        );
        assert!(
            host_ports.insert(ext.port),
            "{name}: host port {} used twice",
            ext.port
        );

        // Published as HOST:CONTAINER with both equal to the advertised port.
        let published: BTreeSet<String> = svc["ports"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name}: no ports published"))
            .iter()
            .map(|p| str_of(p, "port"))
            .collect();
        let want = format!("{0}:{0}", ext.port);
        assert!(
            published.contains(&want) || published.contains(&format!("127.0.0.1:{want}")),
            "{name}: advertised localhost:{} but publishes {published:?}",
            ext.port
        );
    }
    assert_eq!(
        host_ports,
        HOST_PORTS.into_iter().collect(),
        "host listener ports"
    );
}

#[test]
fn replication_settings_fit_three_brokers() {
    let doc = load_compose();
    let n = BROKERS as u32;
    for (name, svc) in kafka_nodes(&doc) {
        let env = environment(&svc, &name);
        let offsets_rf = env_u32(&env, "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", &name);
        let txn_rf = env_u32(
            &env,
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
            &name,
        );
        let txn_isr = env_u32(&env, "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", &name);
        assert_eq!(
            offsets_rf, n,
            "{name}: consumer offsets should be on all {n} brokers"
        );
        assert_eq!(
            txn_rf, n,
            "{name}: transaction log should be on all {n} brokers"
        );
        assert!(
            (1..txn_rf).contains(&txn_isr),
            "{name}: transaction min ISR must be < RF"
        );
        if env.contains_key("KAFKA_DEFAULT_REPLICATION_FACTOR") {
            let rf = env_u32(&env, "KAFKA_DEFAULT_REPLICATION_FACTOR", &name);
            assert!(
                (1..=n).contains(&rf),
                "{name}: default RF {rf} needs more than {n} brokers"
            );
            if env.contains_key("KAFKA_MIN_INSYNC_REPLICAS") {
                let isr = env_u32(&env, "KAFKA_MIN_INSYNC_REPLICAS", &name);
                assert!(
                    (1..rf).contains(&isr) || rf == 1,
                    "{name}: min.insync.replicas {isr} must be below RF {rf}, or one lost broker stops writes"
                );
            }
        }
    }
}

#[test]
fn every_kafka_node_has_a_healthcheck_and_its_own_named_volume() {
    let doc = load_compose();
    let declared: BTreeSet<String> = doc["volumes"]
        .as_hash()
        .expect("top-level `volumes` mapping")
        .keys()
        .map(|k| str_of(k, "volume name"))
        .collect();
    let mut used = BTreeSet::new();
    for (name, svc) in kafka_nodes(&doc) {
        let env = environment(&svc, &name);
        let hc = &svc["healthcheck"];
        let test = hc["test"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name}: no healthcheck test"));
        let kind = test.first().and_then(Yaml::as_str).unwrap_or_default();
        assert!(
            matches!(kind, "CMD" | "CMD-SHELL"),
            "{name}: healthcheck test kind {kind:?}"
        );
        let cmd: String = test[1..]
            .iter()
            .filter_map(Yaml::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let ls = listeners(env_get(&env, "KAFKA_LISTENERS", &name), &name);
        assert!(
            ls.iter().any(|l| cmd.contains(&format!(":{}", l.port))),
            "{name}: healthcheck {cmd:?} probes none of the node's listeners"
        );
        for field in ["interval", "timeout", "retries", "start_period"] {
            assert!(
                !matches!(hc[field], Yaml::BadValue),
                "{name}: healthcheck.{field} missing"
            );
        }

        let log_dirs = env_get(&env, "KAFKA_LOG_DIRS", &name).to_string();
        let mounts: Vec<String> = svc["volumes"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name}: no volumes"))
            .iter()
            .map(|v| str_of(v, "volume"))
            .collect();
        let data = mounts
            .iter()
            .filter_map(|m| m.split_once(':'))
            .find(|(_, target)| target.trim_end_matches(":rw") == log_dirs)
            .unwrap_or_else(|| panic!("{name}: nothing mounted at KAFKA_LOG_DIRS {log_dirs}"));
        assert!(
            declared.contains(data.0),
            "{name}: {} is not a declared named volume",
            data.0
        );
        assert!(
            used.insert(data.0.to_string()),
            "{name}: volume {} shared between nodes",
            data.0
        );
    }
}

#[test]
fn init_service_waits_for_the_cluster_and_creates_time_sync() {
    let doc = load_compose();
    let nodes = kafka_nodes(&doc);
    let all = services(&doc);
    let (init_name, init) = all
        .iter()
        .find(|(name, _)| !nodes.contains_key(*name) && name.contains("init"))
        .expect("a one-shot init service");

    // Starts only after every node reports healthy.
    let deps = init["depends_on"]
        .as_hash()
        .unwrap_or_else(|| panic!("{init_name}: no depends_on"));
    for node in nodes.keys() {
        let cond = deps
            .get(&Yaml::String(node.clone()))
            .and_then(|d| d["condition"].as_str())
            .unwrap_or_default();
        assert_eq!(
            cond, "service_healthy",
            "{init_name}: must wait for {node} to be healthy"
        );
    }
    assert_eq!(
        init["restart"].as_str(),
        Some("no"),
        "{init_name}: one-shot, never restarted"
    );

    let script: String = match &init["command"] {
        Yaml::Array(parts) => parts
            .iter()
            .filter_map(Yaml::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        Yaml::String(s) => s.clone(),
        other => panic!("{init_name}: command {other:?}"),
    };
    // Compose interpolates `$x` in the file itself; shell variables must be written `$$x`.
    let unescaped = script.replace("$$", "").contains('$');
    assert!(
        !unescaped,
        "{init_name}: a single `$` would be eaten by compose interpolation"
    );
    let shell = script.replace("$$", "$");

    let tokens: Vec<&str> = shell
        .split_whitespace()
        .map(|t| t.trim_matches('"'))
        .collect();
    let create = tokens
        .iter()
        .position(|t| *t == "--create")
        .unwrap_or_else(|| panic!("{init_name}: no kafka-topics.sh --create"));
    // The arguments of the create invocation run to the end of that command.
    let end = tokens[create..]
        .iter()
        .position(|t| t.ends_with(';'))
        .map_or(tokens.len(), |p| create + p + 1);
    let args: Vec<&str> = tokens[create..end]
        .iter()
        .map(|t| t.trim_end_matches(';'))
        .collect();
    let before = &tokens[..create];
    let arg = |flag: &str| -> Option<&str> {
        let all_args = before.iter().chain(args.iter());
        let v: Vec<&&str> = all_args.collect();
        v.windows(2).rev().find(|w| *w[0] == flag).map(|w| *w[1])
    };
    assert_eq!(arg("--topic"), Some("time-sync"));
    assert_eq!(arg("--partitions"), Some("3"));
    assert_eq!(
        arg("--replication-factor"),
        Some(BROKERS.to_string().as_str())
    );

    // Bootstrap: the nodes' inter-broker addresses (directly or through a shell variable).
    let mut bootstrap = arg("--bootstrap-server")
        .expect("--bootstrap-server")
        .to_string();
    if let Some(var) = bootstrap.strip_prefix('$') {
        let var = var.trim_matches(|c| c == '{' || c == '}').to_string();
        bootstrap = tokens
            .iter()
            .find_map(|t| t.strip_prefix(&format!("{var}=")))
            .unwrap_or_else(|| panic!("{init_name}: ${var} is never assigned"))
            .to_string();
    }
    let got: BTreeSet<&str> = bootstrap.split(',').collect();
    let want: BTreeSet<String> = nodes
        .iter()
        .map(|(name, svc)| {
            let env = environment(svc, name);
            let inter = env_get(&env, "KAFKA_INTER_BROKER_LISTENER_NAME", name);
            let adv = listeners(env_get(&env, "KAFKA_ADVERTISED_LISTENERS", name), name);
            let a = adv
                .into_iter()
                .find(|a| a.name == inter)
                .expect("advertised inter-broker listener");
            format!("{}:{}", a.host, a.port)
        })
        .collect();
    let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(got, want, "{init_name}: bootstrap servers");

    // Creation is retried (brokers register some time after turning healthy) and idempotent, and
    // a permanent failure makes the container fail rather than exit 0.
    assert!(
        args.contains(&"--if-not-exists"),
        "{init_name}: re-running must not fail"
    );
    assert!(
        shell.contains("for ") && shell.contains("sleep"),
        "{init_name}: no retry loop"
    );
    assert!(
        shell.contains("exit 1"),
        "{init_name}: giving up must exit non-zero"
    );
}

// ---------------------------------------------------------------------------------------------
// What the test environment boots: scripts/kafka/compose_props.py
// ---------------------------------------------------------------------------------------------

/// Runs scripts/kafka/compose_props.py on the compose file for `nodes` nodes; returns its shell
/// assignments and each node's server.properties (node id → property → value).
fn derive_server_properties(
    nodes: usize,
) -> (
    BTreeMap<String, String>,
    BTreeMap<u32, BTreeMap<String, String>>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/kafka/compose_props.py"
    );
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(COMPOSE_PATH)
        .arg(dir.path())
        .arg(nodes.to_string())
        .output()
        .unwrap_or_else(|e| {
            panic!("running python3 {script} (the test environment needs python3): {e}")
        });
    assert!(
        out.status.success(),
        "compose_props.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let assignments = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect();
    let mut props = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path()).expect("read temp dir") {
        let path = entry.expect("dir entry").path().join("server.properties");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let map: BTreeMap<String, String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{l:?}"));
                (k.to_string(), v.to_string())
            })
            .collect();
        let id = map["node.id"].parse().expect("node.id");
        props.insert(id, map);
    }
    (assignments, props)
}

/// Properties whose values are addresses or paths, which the test environment maps to loopback
/// and its temp dir; every other property must be the compose file's value.
const MAPPED: &[&str] = &[
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "log.dirs",
];

#[test]
fn the_test_environment_boots_each_service_by_the_images_rule() {
    let doc = load_compose();
    let nodes = kafka_nodes(&doc);
    let (assignments, props) = derive_server_properties(BROKERS);
    assert_eq!(props.len(), BROKERS, "one server.properties per node");

    // Every node's controller port, from the derived listeners (checked against the voters below).
    let mut controller_port = BTreeMap::new();
    let mut external = BTreeMap::new();
    for (name, svc) in &nodes {
        let env = environment(svc, name);
        let id = env_u32(&env, "KAFKA_NODE_ID", name);
        let p = &props[&id];
        assert_eq!(
            assignments["CLUSTER_ID"],
            env_get(&env, "CLUSTER_ID", name),
            "the storage is formatted with the compose file's CLUSTER_ID"
        );
        // Exactly the image's rule: one property per KAFKA_* variable, the same value unless it
        // is an address, and nothing else.
        let mut want_keys = BTreeSet::new();
        for (var, value) in &env {
            let Some(key) = env_var_to_property(var) else {
                continue;
            };
            if !MAPPED.contains(&key.as_str()) {
                assert_eq!(
                    p.get(&key),
                    Some(value),
                    "{name}: {var} must boot as {key}={value}"
                );
            }
            want_keys.insert(key);
        }
        let got_keys: BTreeSet<String> = p.keys().cloned().collect();
        assert_eq!(
            got_keys, want_keys,
            "{name}: properties other than the compose file's"
        );

        // Addresses: the same listener names, all on 127.0.0.1, each advertised listener on the
        // port its listener binds.
        let compose_ls = listeners(env_get(&env, "KAFKA_LISTENERS", name), name);
        let ls = listeners(&p["listeners"], name);
        let adv = listeners(&p["advertised.listeners"], name);
        let names = |v: &[Listener]| v.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&ls), names(&compose_ls), "{name}: listener names");
        assert!(
            ls.iter().chain(&adv).all(|l| l.host == "127.0.0.1"),
            "{name}: an address beyond loopback: {ls:?} {adv:?}"
        );
        let bound = by_name(&ls);
        for a in &adv {
            assert_eq!(
                bound.get(a.name.as_str()).map(|l| l.port),
                Some(a.port),
                "{name}: {} advertised on a port it does not listen on",
                a.name
            );
        }
        let controller = env_get(&env, "KAFKA_CONTROLLER_LISTENER_NAMES", name);
        controller_port.insert(id, bound[controller].port);
        external.insert(id, format!("127.0.0.1:{}", bound["EXTERNAL"].port));
        assert!(
            p["log.dirs"].ends_with(&format!("node-{id}/data")),
            "{name}: log.dirs {}",
            p["log.dirs"]
        );
    }
    // The quorum: every node's voters name every node at that node's controller port.
    let voters: String = controller_port
        .iter()
        .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    for (id, p) in &props {
        assert_eq!(p["controller.quorum.voters"], voters, "node {id}: voters");
    }
    // KTS_BOOTSTRAP: the three client (EXTERNAL) listeners in node-id order.
    let bootstrap: Vec<String> = external.into_values().collect();
    assert_eq!(assignments["BOOTSTRAP"], bootstrap.join(","));
    assert_eq!(assignments["NODE_IDS"], "1 2 3");
}

#[test]
fn the_one_node_environment_is_the_first_service_cut_to_one_replica() {
    let doc = load_compose();
    let nodes = kafka_nodes(&doc);
    let (name, svc) = nodes
        .iter()
        .min_by_key(|(name, svc)| env_u32(&environment(svc, name), "KAFKA_NODE_ID", name))
        .expect("a Kafka node");
    let env = environment(svc, name);
    let (assignments, props) = derive_server_properties(1);
    assert_eq!(props.len(), 1);
    let (id, p) = props.iter().next().expect("one node");
    assert_eq!(*id, env_u32(&env, "KAFKA_NODE_ID", name));
    let controller = listeners(&p["listeners"], name)
        .into_iter()
        .find(|l| l.name == env_get(&env, "KAFKA_CONTROLLER_LISTENER_NAMES", name))
        .expect("controller listener");
    assert_eq!(
        p["controller.quorum.voters"],
        format!("{id}@127.0.0.1:{}", controller.port),
        "the quorum is the one node"
    );
    for (var, value) in &env {
        let Some(key) = env_var_to_property(var) else {
            continue;
        };
        let one_replica = key.ends_with("replication.factor")
            || key.ends_with("min.isr")
            || key == "min.insync.replicas";
        if one_replica {
            assert_eq!(p[&key], "1", "{key}: one node holds one replica");
        } else if !MAPPED.contains(&key.as_str()) {
            assert_eq!(&p[&key], value, "{key}");
        }
    }
    assert_eq!(assignments["NODE_IDS"], id.to_string());
}
