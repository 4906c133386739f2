//! Shared harness of the `reliability_*` tests (issue 7): guards that always undo a fault (SIGCONT
//! a frozen broker), a TCP proxy that can cut and restore connections (in front of the broker's
//! proxied listener), a private chronyd, and counting of what a consumer delivered.
//!
//! Generic broker helpers (topic creation, reading a topic back, writing raw records, running a
//! binary with a timeout) are in `tests/common/mod.rs`, processes watched line by line (with
//! signals and peak-memory probes) in `tests/common/watched.rs`, re-exported here; each test file
//! declares both modules.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::common::watched::*;

/// The producer binary of this build.
pub const PRODUCER: &str = env!("CARGO_BIN_EXE_kafka-producer");
/// The consumer binary of this build.
pub const CONSUMER: &str = env!("CARGO_BIN_EXE_kafka-consumer");

/// Polls `cond` every 50 ms until it returns `Some`, panicking with `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut cond: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free TCP port on 127.0.0.1 (bound then released: good enough for a child to take it).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free TCP port")
        .port()
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
        .port()
}

// ---------------------------------------------------------------------------------------------
// Counting what was delivered.

/// What a consumer's JSON output says about delivery, by message id.
#[derive(Debug, Default, Clone)]
pub struct Deliveries {
    /// id → times delivered.
    pub by_id: HashMap<String, usize>,
    /// (node, seq) of every delivered message, in output order.
    pub order: Vec<(String, u64, String)>,
    /// Total `deliver` events.
    pub events: usize,
    /// `malformed` events.
    pub malformed: Vec<serde_json::Value>,
    /// `violation` events by kind.
    pub violations: BTreeMap<String, Vec<serde_json::Value>>,
    /// The `summary` event, if printed.
    pub summary: Option<serde_json::Value>,
}

impl Deliveries {
    /// Reads a consumer's `--format json` stdout.
    pub fn from_events(events: &[serde_json::Value]) -> Self {
        let mut d = Deliveries::default();
        for e in events {
            match e["event"].as_str() {
                Some("deliver") => {
                    d.events += 1;
                    let m = &e["message"];
                    let id = m["id"].as_str().unwrap_or_default().to_string();
                    let node = m["timestamp"]["node_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let seq = m["seq"].as_u64().unwrap_or(0);
                    *d.by_id.entry(id.clone()).or_default() += 1;
                    d.order.push((node, seq, id));
                }
                Some("malformed") => d.malformed.push(e.clone()),
                Some("violation") => d
                    .violations
                    .entry(e["kind"].as_str().unwrap_or("?").to_string())
                    .or_default()
                    .push(e.clone()),
                Some("summary") => d.summary = Some(e.clone()),
                _ => {}
            }
        }
        d
    }

    /// Messages delivered more than once: (distinct ids, extra deliveries).
    pub fn duplicates(&self) -> (usize, usize) {
        self.by_id
            .values()
            .filter(|&&n| n > 1)
            .fold((0, 0), |(ids, extra), &n| (ids + 1, extra + n - 1))
    }

    /// Ids of `expected` never delivered.
    pub fn missing<'a>(&self, expected: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        expected
            .into_iter()
            .filter(|id| !self.by_id.contains_key(*id))
            .cloned()
            .collect()
    }

    /// Number of violations of `kind`.
    pub fn violations_of(&self, kind: &str) -> usize {
        self.violations.get(kind).map_or(0, Vec::len)
    }
}

/// The ids a producer reported delivered (`{"event":"delivered","id":…}` lines), in order.
pub fn delivered_ids(producer_stdout: &[String]) -> Vec<String> {
    json_events(producer_stdout)
        .iter()
        .filter(|e| e["event"] == "delivered")
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Faults that must always be undone.

/// The shared broker of the test environment, frozen with SIGSTOP; SIGCONT on drop, so a failing
/// test never leaves it frozen for the other tests.
pub struct FrozenBroker {
    pid: u32,
    thawed: bool,
}

/// The broker's pid from `KTS_BROKER_PID`, or a panic telling how to run the tests.
pub fn broker_pid() -> u32 {
    std::env::var("KTS_BROKER_PID")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .expect("KTS_BROKER_PID not set: run tests through scripts/testenv.sh")
}

impl FrozenBroker {
    /// Sends SIGSTOP to the broker.
    pub fn freeze(pid: u32) -> Self {
        assert!(signal(pid, "STOP"), "cannot SIGSTOP the broker (pid {pid})");
        Self { pid, thawed: false }
    }

    /// Sends SIGCONT now.
    pub fn thaw(mut self) {
        self.thaw_inner();
    }

    fn thaw_inner(&mut self) {
        if !self.thawed {
            self.thawed = true;
            assert!(
                signal(self.pid, "CONT"),
                "cannot SIGCONT the broker (pid {})",
                self.pid
            );
        }
    }
}

impl Drop for FrozenBroker {
    fn drop(&mut self) {
        if !self.thawed {
            self.thawed = true;
            signal(self.pid, "CONT");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A TCP proxy that can cut and restore every connection.

/// Forwards 127.0.0.1:<port> to an upstream address. While cut, every live connection is shut
/// down and new ones are accepted and closed at once (the client sees a reset / EOF).
pub struct TcpProxy {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<Mutex<u64>>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Listens on 127.0.0.1:0; `upstream` may be set later (see [`TcpProxy::bind`]).
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind");
        Self::serve(listener, upstream)
    }

    /// A listener bound now (so its address can be given to the upstream broker as its advertised
    /// address) and served later with [`TcpProxy::serve`].
    pub fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").expect("proxy: bind")
    }

    /// Serves `listener`, forwarding to `upstream`.
    pub fn serve(listener: TcpListener, upstream: SocketAddr) -> Self {
        let addr = listener.local_addr().expect("proxy: local addr");
        listener
            .set_nonblocking(true)
            .expect("proxy: nonblocking listener");
        let open = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0u64));
        let acceptor = {
            let (open, stop, live, accepted) = (
                Arc::clone(&open),
                Arc::clone(&stop),
                Arc::clone(&live),
                Arc::clone(&accepted),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            if !open.load(Ordering::SeqCst) {
                                let _ = client.shutdown(Shutdown::Both);
                                continue;
                            }
                            let Ok(server) =
                                TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                            else {
                                let _ = client.shutdown(Shutdown::Both);
                                continue;
                            };
                            *accepted.lock().expect("accepted") += 1;
                            let _ = client.set_nodelay(true);
                            let _ = server.set_nodelay(true);
                            {
                                let mut l = live.lock().expect("live");
                                l.retain(|s| s.peer_addr().is_ok());
                                if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                                    l.push(a);
                                    l.push(b);
                                }
                            }
                            pipe(&client, &server);
                            pipe(&server, &client);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Self {
            addr,
            open,
            stop,
            live,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections forwarded so far.
    pub fn connections(&self) -> u64 {
        *self.accepted.lock().expect("accepted")
    }

    /// Cuts every live connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for s in self.live.lock().expect("live").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// Copies `from` → `to` on a thread until either side closes, then shuts both down.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

// ---------------------------------------------------------------------------------------------
// Private servers a test may kill and restart without hurting the other tests.

/// Waits until something accepts TCP connections at `addr`.
pub fn wait_tcp(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The broker's proxied listener (`KTS_PROXY_LISTEN` → `KTS_PROXY_UPSTREAM`, one-node test
/// environment): the broker listens on the upstream address and advertises the listen address, so
/// clients bootstrapping there reach the broker only through a [`TcpProxy`] serving it,
/// reconnections included. One proxy at a time can hold the address: the guard serialises the
/// tests of one binary that use it.
pub struct ProxiedBroker {
    /// The proxy in front of the broker.
    pub proxy: TcpProxy,
    /// The bootstrap address clients use (the proxy's).
    pub bootstrap: String,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl ProxiedBroker {
    /// Starts the proxy on `KTS_PROXY_LISTEN`, forwarding to `KTS_PROXY_UPSTREAM`.
    pub fn start() -> Self {
        static TURN: Mutex<()> = Mutex::new(());
        let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
        let var = |name: &str| -> SocketAddr {
            std::env::var(name)
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| {
                    panic!("{name} not set: run the tests through scripts/testenv.sh (one node)")
                })
                .parse()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let (listen, upstream) = (var("KTS_PROXY_LISTEN"), var("KTS_PROXY_UPSTREAM"));
        let listener = wait_for(
            "the proxied listener's address to be free",
            Duration::from_secs(30),
            || TcpListener::bind(listen).ok(),
        );
        Self {
            proxy: TcpProxy::serve(listener, upstream),
            bootstrap: listen.to_string(),
            _turn: turn,
        }
    }
}

/// A private chronyd serving this host's clock on 127.0.0.1:<port> (never touches the system
/// clock); it can be stopped and started again on the same port. Killed on drop.
pub struct OwnChrony {
    child: Option<Child>,
    /// The UDP port it serves on.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl OwnChrony {
    /// Starts chronyd on a free UDP port and waits until it serves time.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Self {
            child: None,
            port: free_udp_port(),
            dir,
        };
        c.resume();
        c
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn chronyd() -> PathBuf {
        ["/usr/sbin/chronyd", "/sbin/chronyd", "/usr/bin/chronyd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .expect("chronyd not found: run `scripts/testenv.sh install`")
    }

    /// (Re)starts chronyd on the same port and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "chronyd already running");
        let d = self.dir.path();
        let conf = d.join("chrony.conf");
        std::fs::write(
            &conf,
            format!(
                "port {}\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 8\ncmdport 0\npidfile {}\ndriftfile {}\n",
                self.port,
                d.join("chronyd.pid").display(),
                d.join("drift").display()
            ),
        )
        .expect("chrony.conf");
        let user = Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());
        let log = std::fs::File::create(d.join("chronyd.log")).expect("chronyd log");
        let child = Command::new(Self::chronyd())
            .args(["-x", "-d", "-u", &user, "-f"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start chronyd");
        self.child = Some(child);
        let answered = self.wait_answers(Duration::from_secs(30));
        assert!(
            answered,
            "private chronyd did not serve time on {} within 30 s; log:\n{}",
            self.addr(),
            std::fs::read_to_string(d.join("chronyd.log")).unwrap_or_default()
        );
    }

    /// Kills chronyd (the port stays ours to restart on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join("chronyd.pid"));
    }

    /// Sends one client-mode NTP packet until a synchronised reply comes back.
    fn wait_answers(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(s) = std::net::UdpSocket::bind("127.0.0.1:0") {
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut pkt = [0u8; 48];
                pkt[0] = (4 << 3) | 3;
                if s.send_to(&pkt, ("127.0.0.1", self.port)).is_ok() {
                    let mut buf = [0u8; 512];
                    if let Ok((n, _)) = s.recv_from(&mut buf) {
                        if n >= 48 && buf[0] >> 6 != 3 && (1..=15).contains(&buf[1]) {
                            return true;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }
}

impl Drop for OwnChrony {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A unique, not yet used node id.
pub fn unique_node(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

// ---------------------------------------------------------------------------------------------
// Envelopes and raw records.

/// A valid envelope of `node` with the given seq and vector (Lamport time = sum of the vector),
/// as the JSON bytes a producer would write.
pub fn envelope_bytes(node: &str, seq: u64, vector: &[(&str, u64)], content: &str) -> Vec<u8> {
    envelope(node, seq, vector, content).encode()
}

/// The envelope [`envelope_bytes`] encodes (stamped now, a fresh id).
pub fn envelope(
    node: &str,
    seq: u64,
    vector: &[(&str, u64)],
    content: &str,
) -> kafka_timesync::envelope::Envelope {
    let now = kafka_timesync::time::nanos_to_secs(kafka_timesync::time::TimeSource::now_ns(
        &kafka_timesync::time::SystemTimeSource,
    ));
    let mut e = crate::common::vector_envelope(node, seq, vector, now);
    e.id = uuid::Uuid::new_v4().to_string();
    e.content = content.to_string();
    e
}

/// The `id` of an envelope's JSON bytes.
pub fn id_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes).expect("envelope JSON")["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// Writes `(partition, key, payload)` records to `topic` at `bootstrap` with extra librdkafka
/// `props`, in order, waiting for every delivery; returns each record's (partition, offset) in
/// input order.
pub fn produce_at(
    bootstrap: &str,
    props: &[(&str, &str)],
    topic: &str,
    records: &[(i32, &str, Vec<u8>)],
) -> Vec<(i32, i64)> {
    use rdkafka::producer::Producer;
    use rdkafka::Message;
    let mut settings = kafka_timesync::kafka::ClientSettings::new(bootstrap);
    for (k, v) in props {
        settings.set(*k, *v);
    }
    let producer: rdkafka::producer::FutureProducer =
        settings.producer_config().create().expect("raw producer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut out = Vec::with_capacity(records.len());
    // One at a time: the offsets must follow the input order exactly.
    for (i, (partition, key, payload)) in records.iter().enumerate() {
        let rec = rdkafka::producer::FutureRecord::to(topic)
            .partition(*partition)
            .key(*key)
            .payload(payload.as_slice());
        let r = rt
            .block_on(producer.send(rec, Duration::from_secs(60)))
            .map_err(|(e, m)| format!("{e} ({} bytes)", m.payload().map_or(0, <[u8]>::len)))
            .unwrap_or_else(|e| panic!("raw record {i} not delivered: {e}"));
        out.push((r.partition, r.offset));
    }
    let _ = producer.flush(Duration::from_secs(30));
    out
}

/// Writes `(partition, key, payload)` records to `topic` at `bootstrap` as fast as the producer
/// pipelines them (idempotent: each partition keeps the input order), waiting for every delivery.
pub fn produce_many_at(bootstrap: &str, topic: &str, records: &[(i32, &str, Vec<u8>)]) {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    use std::sync::atomic::AtomicU64;
    /// Deliveries acknowledged.
    struct Count(Arc<AtomicU64>);
    impl rdkafka::ClientContext for Count {}
    impl rdkafka::producer::ProducerContext for Count {
        type DeliveryOpaque = ();
        fn delivery(&self, r: &rdkafka::message::DeliveryResult<'_>, _: ()) {
            if r.is_ok() {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let done = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Count> = kafka_timesync::kafka::ClientSettings::new(bootstrap)
        .producer_config()
        .create_with_context(Count(Arc::clone(&done)))
        .expect("producer");
    for (partition, key, payload) in records {
        let mut rec = BaseRecord::to(topic)
            .partition(*partition)
            .key(*key)
            .payload(payload.as_slice());
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    // Queue full: let deliveries drain it.
                    std::thread::sleep(Duration::from_millis(5));
                    rec = back;
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("flush the producer");
    assert_eq!(
        done.load(Ordering::Relaxed),
        records.len() as u64,
        "records acknowledged"
    );
}

/// The offsets committed by consumer group `group` on `topic`'s partitions (`-1` = none).
pub fn committed_offsets(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = kafka_timesync::kafka::ClientSettings::new(bootstrap)
        .consumer_config(Some(group))
        .create()
        .expect("offsets reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("reading committed offsets of group {group}: {e}"));
    (0..partitions)
        .map(|p| {
            match got
                .find_partition(topic, p)
                .map(|e| e.offset())
                .unwrap_or(Offset::Invalid)
            {
                Offset::Offset(o) => o,
                _ => -1,
            }
        })
        .collect()
}

/// Checks exactly-once delivery of the producer's reported ids by the consumer.
pub fn assert_exactly_once(what: &str, lines: usize, p: &Finished, c: &Finished, extra: &str) {
    assert_exactly_once_from(what, lines, &[p], c, extra);
}

/// [`assert_exactly_once`] for several producers: together they report `lines` distinct ids
/// delivered, and the consumer delivered each exactly once and nothing else.
pub fn assert_exactly_once_from(
    what: &str,
    lines: usize,
    producers: &[&Finished],
    c: &Finished,
    extra: &str,
) {
    for p in producers {
        p.assert_success();
    }
    c.assert_success();
    let sent: Vec<String> = producers
        .iter()
        .flat_map(|p| delivered_ids(&p.stdout))
        .collect();
    let sent_set: std::collections::HashSet<&String> = sent.iter().collect();
    let d = Deliveries::from_events(&c.events());
    let missing = d.missing(sent.iter());
    let (dup_ids, dup_extra) = d.duplicates();
    let foreign = d.by_id.keys().filter(|id| !sent_set.contains(id)).count();
    let figures = format!(
        "{what}: {lines} lines sent, producers reported {} delivered, consumer delivered {} \
         ({} distinct), duplicated {dup_ids} ({dup_extra} extra), lost {}, unknown {foreign}; {extra}",
        sent.len(),
        d.events,
        d.by_id.len(),
        missing.len()
    );
    assert_eq!(sent.len(), lines, "{figures}");
    assert_eq!(sent_set.len(), lines, "{figures}");
    assert!(missing.is_empty(), "{figures}");
    assert_eq!((dup_ids, foreign, d.events), (0, 0, lines), "{figures}");
    eprintln!("{figures}");
}
