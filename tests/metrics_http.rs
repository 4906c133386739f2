//! The Prometheus endpoint over real TCP: a plain client scrapes `/metrics` and reads back the
//! values it set; bad, oversized and stalled requests get an answer (or are dropped) without
//! taking the endpoint down, and connections beyond the limit wait for a slot. Also checks that
//! updating the registry does not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_timesync::metrics::{serve, serve_with_options, Metrics, ServeOptions, CONTENT_TYPE};
use kafka_timesync::time::ManualTime;
use kafka_timesync::violation::ViolationKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous bound for anything that should happen "soon"; never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Allocation counting (per thread, so tests running in parallel do not disturb each other)
// ---------------------------------------------------------------------------------------------

struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------
// A plain HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `request` verbatim and reads the reply until the server closes the connection.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let run = async {
        let mut s = TcpStream::connect(addr)
            .await
            .expect("connect to metrics endpoint");
        s.write_all(request).await.expect("send request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read reply");
        raw
    };
    let raw = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("reply within the time bound");
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8(raw.to_vec()).expect("UTF-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("reply has a head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(
        parts.next(),
        Some("HTTP/1.1"),
        "status line {status_line:?}"
    );
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let reply = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(reply.status, 200, "body: {}", reply.body);
    assert_eq!(
        reply.headers.get("content-type").map(String::as_str),
        Some(CONTENT_TYPE)
    );
    assert_eq!(
        reply
            .headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok()),
        Some(reply.body.len()),
        "content-length must match the body"
    );
    samples(&reply.body)
}

/// `series -> value` for every sample line; also checks each family is announced by HELP/TYPE.
fn samples(body: &str) -> BTreeMap<String, f64> {
    let mut announced = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            announced.insert(rest.split(' ').next().unwrap_or_default().to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let name = series.split('{').next().unwrap_or_default();
        assert!(announced.contains(name), "{name} has no TYPE line");
        assert!(
            name.starts_with("kafka_timesync_"),
            "{name} lacks the prefix"
        );
        let v = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        out.insert(series.to_string(), v);
    }
    out
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn scrape_reports_the_values_that_were_set() {
    let clock = Arc::new(ManualTime::new(1_750_000_000_000_000_000));
    let metrics = Arc::new(Metrics::with_time_source(clock.clone()));
    let (addr, server) = serve(loopback(), Arc::clone(&metrics))
        .await
        .expect("serve");
    assert_ne!(addr.port(), 0, "serve reports the bound port");

    let before = scrape(addr).await;
    assert!(
        before["kafka_timesync_clock_offset_seconds"].is_nan(),
        "no sync yet"
    );
    assert_eq!(
        before["kafka_timesync_time_since_last_sync_seconds"],
        f64::INFINITY
    );
    assert_eq!(before["kafka_timesync_messages_produced_total"], 0.0);

    metrics.record_sync(1_250_000, 4_000_000);
    metrics.set_drift_ppm(35.5);
    clock.advance_ms(3_000);
    metrics.add_produced(42);
    metrics.add_consumed(40);
    metrics.add_delivered(38);
    metrics.add_malformed(2);
    metrics.inc_violation(ViolationKind::FifoGap);
    metrics.inc_violation(ViolationKind::ArrivalBeforeCause);
    metrics.inc_violation(ViolationKind::ArrivalBeforeCause);
    metrics.inc_violation(ViolationKind::ReleasedEarly);
    metrics.set_causal_buffer_depth(7);
    metrics.inc_released_by_timeout();

    let s = scrape(addr).await;
    assert_eq!(s["kafka_timesync_clock_offset_seconds"], 0.00125);
    assert_eq!(s["kafka_timesync_clock_delay_seconds"], 0.004);
    assert_eq!(s["kafka_timesync_clock_drift_ppm"], 35.5);
    assert_eq!(s["kafka_timesync_time_since_last_sync_seconds"], 3.0);
    assert_eq!(s["kafka_timesync_syncs_total{result=\"ok\"}"], 1.0);
    assert_eq!(s["kafka_timesync_messages_produced_total"], 42.0);
    assert_eq!(s["kafka_timesync_messages_consumed_total"], 40.0);
    assert_eq!(s["kafka_timesync_messages_delivered_total"], 38.0);
    assert_eq!(s["kafka_timesync_messages_malformed_total"], 2.0);
    assert_eq!(s["kafka_timesync_violations_total{kind=\"fifo_gap\"}"], 1.0);
    assert_eq!(
        s["kafka_timesync_violations_total{kind=\"arrival_before_cause\"}"],
        2.0
    );
    assert_eq!(
        s["kafka_timesync_violations_total{kind=\"released_early\"}"],
        1.0
    );
    assert_eq!(
        s["kafka_timesync_violations_total{kind=\"lamport_vs_causal\"}"],
        0.0
    );
    assert_eq!(s["kafka_timesync_causal_buffer_depth"], 7.0);
    assert_eq!(
        s["kafka_timesync_released_early_total{reason=\"timeout\"}"],
        1.0
    );
    for kind in ViolationKind::ALL {
        let key = format!("kafka_timesync_violations_total{{kind=\"{kind}\"}}");
        assert!(s.contains_key(&key), "{key} missing");
    }
    server.abort();
}

#[tokio::test]
async fn other_paths_methods_and_garbage_get_proper_errors() {
    let (addr, server) = serve(loopback(), Arc::new(Metrics::new()))
        .await
        .expect("serve");

    assert_eq!(exchange(addr, b"GET / HTTP/1.1\r\n\r\n").await.status, 404);
    assert_eq!(
        exchange(addr, b"GET /favicon.ico HTTP/1.1\r\n\r\n")
            .await
            .status,
        404
    );
    let post = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(post.status, 405);
    assert_eq!(
        post.headers.get("allow").map(String::as_str),
        Some("GET, HEAD")
    );
    assert_eq!(exchange(addr, b"hello\r\n\r\n").await.status, 400);
    assert_eq!(
        exchange(addr, b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n")
            .await
            .status,
        400
    );

    let head = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD has no body");

    // After all of that the endpoint still serves.
    let s = scrape(addr).await;
    assert!(s.contains_key("kafka_timesync_messages_delivered_total"));
    server.abort();
}

#[tokio::test]
async fn oversized_request_is_refused_without_reading_it_all() {
    let options = ServeOptions {
        max_request_bytes: 1024,
        ..ServeOptions::default()
    };
    let (addr, server) = serve_with_options(loopback(), Arc::new(Metrics::new()), options)
        .await
        .expect("serve");

    // A head far larger than the limit, never terminated: the server must answer 431 once the
    // limit is crossed instead of buffering forever.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Junk: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let run = async {
        // The server may close before everything is written; that is fine.
        let _ = s.write_all(&request).await;
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        raw
    };
    let raw = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("answered within the bound");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 431 "), "got {text:?}");

    let s = scrape(addr).await;
    assert!(s.contains_key("kafka_timesync_causal_buffer_depth"));
    server.abort();
}

#[tokio::test]
async fn complete_head_over_the_limit_is_refused() {
    let options = ServeOptions {
        max_request_bytes: 1024,
        ..ServeOptions::default()
    };
    let (addr, server) = serve_with_options(loopback(), Arc::new(Metrics::new()), options)
        .await
        .expect("serve");
    // Well-formed and complete, but 2 KiB: over the limit though under hyper's 8 KiB buffer.
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Junk: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 2048));
    request.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exchange(addr, &request).await.status, 431);
    // Just under the limit is served.
    let mut request = b"GET /metrics HTTP/1.1\r\nX-Junk: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 900));
    request.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exchange(addr, &request).await.status, 200);
    server.abort();
}

/// Connects and sends the start of a request, never its end.
async fn stall(addr: SocketAddr) -> TcpStream {
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(b"GET /metr")
        .await
        .expect("partial request");
    stalled
}

/// Reads until the server closes `stream` (bounded); returns what it sent.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    // A reset is as good as a close here: only the end and what came before it matter.
    let _closed_or_reset = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut raw))
        .await
        .expect("connection closed within the bound");
    raw
}

#[tokio::test]
async fn stalled_client_is_timed_out_and_does_not_block_others() {
    let options = ServeOptions {
        read_timeout: Duration::from_millis(300),
        ..ServeOptions::default()
    };
    let (addr, server) = serve_with_options(loopback(), Arc::new(Metrics::new()), options)
        .await
        .expect("serve");

    // A client that sends half a request and goes quiet.
    let mut stalled = stall(addr).await;

    // Others are served meanwhile.
    let s = scrape(addr).await;
    assert!(s.contains_key("kafka_timesync_messages_produced_total"));

    // The stalled one is eventually disconnected, without a response.
    let raw = until_closed(&mut stalled).await;
    assert!(raw.is_empty(), "got {:?}", String::from_utf8_lossy(&raw));
    server.abort();
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_free_slot() {
    let read_timeout = Duration::from_millis(1000);
    let options = ServeOptions {
        read_timeout,
        max_connections: 1,
        ..ServeOptions::default()
    };
    let (addr, server) = serve_with_options(loopback(), Arc::new(Metrics::new()), options)
        .await
        .expect("serve");

    // The one slot goes to a stalled client (first in the accept queue).
    let start = std::time::Instant::now();
    let mut stalled = stall(addr).await;

    // A second client is answered, but only once the stalled one has been timed out.
    let s = scrape(addr).await;
    assert!(s.contains_key("kafka_timesync_messages_produced_total"));
    assert!(
        start.elapsed() >= read_timeout,
        "served after {:?}, while the only slot was held",
        start.elapsed()
    );
    assert!(until_closed(&mut stalled).await.is_empty());
    server.abort();
}

#[tokio::test]
async fn binding_an_address_in_use_is_a_typed_error() {
    let (addr, server) = serve(loopback(), Arc::new(Metrics::new()))
        .await
        .expect("serve");
    let err = serve(addr, Arc::new(Metrics::new()))
        .await
        .expect_err("port is taken");
    assert!(
        err.to_string().contains(&addr.to_string()),
        "error names the address: {err}"
    );
    server.abort();
}

#[test]
fn updates_do_not_allocate() {
    let metrics = Metrics::with_time_source(Arc::new(ManualTime::new(0)));
    // Warm up anything lazily initialised.
    metrics.record_sync(1, 1);
    let before = allocations();
    for i in 0..10_000u64 {
        metrics.add_produced(1);
        metrics.add_consumed(1);
        metrics.add_delivered(1);
        metrics.add_malformed(1);
        metrics.inc_violation(ViolationKind::ALL[(i % 8) as usize]);
        metrics.set_causal_buffer_depth(i as usize);
        metrics.inc_released_by_timeout();
        metrics.inc_released_buffer_full();
        metrics.set_drift_ppm(i as f64);
        metrics.record_sync(i as i64, 2 * i as i64);
        metrics.record_sync_failure();
    }
    let after = allocations();
    assert_eq!(
        after - before,
        0,
        "updates allocated {} times",
        after - before
    );
    // Rendering does allocate; make sure the counter would have noticed.
    let _ = metrics.render();
    assert!(
        allocations() > after,
        "the allocation counter is not counting"
    );
}
