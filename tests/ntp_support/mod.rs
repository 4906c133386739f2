//! Shared helpers of the `ntp_*` integration tests: the chronyd address, small misbehaving NTP
//! responders, and bounded waiting.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use kafka_timesync::ntp::packet::{NtpTimestamp, Packet, MODE_SERVER};
use kafka_timesync::time::{SystemTimeSource, TimeSource};
use tokio::net::UdpSocket;

/// The chronyd started by the test environment.
pub fn ntp_server() -> String {
    match std::env::var("KTS_NTP_SERVER") {
        Ok(s) if !s.trim().is_empty() => s,
        _ => panic!("KTS_NTP_SERVER not set: run tests through scripts/testenv.sh"),
    }
}

/// How a test responder answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Behaviour {
    /// Serves the system time shifted by this many nanoseconds.
    Offset(i64),
    /// Stratum 0 with this reference id (Kiss-o'-Death code).
    Kiss([u8; 4]),
    /// Leap indicator 3.
    Unsynchronised,
    /// Stratum 16.
    Stratum16,
    /// Origin timestamp not the request's transmit timestamp.
    WrongOrigin,
    /// Transmit timestamp zero.
    ZeroTransmit,
    /// Mode 3 (client) instead of 4.
    ClientMode,
    /// Claims to have held the request for 10 s (δ hugely negative).
    NegativeDelay,
    /// Answers with 20 bytes.
    Short,
    /// Never answers.
    Silent,
}

/// Starts a responder on 127.0.0.1 on the current runtime; it lives as long as the runtime.
pub async fn responder(b: Behaviour) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind responder");
    let addr = sock.local_addr().expect("responder addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(req) = Packet::parse(&buf[..n]) else {
                continue;
            };
            if b == Behaviour::Silent {
                continue;
            }
            let now = SystemTimeSource.now_ns();
            let shift = if let Behaviour::Offset(o) = b { o } else { 0 };
            let mut p = Packet {
                leap: 0,
                version: 4,
                mode: MODE_SERVER,
                stratum: 2,
                poll: 4,
                precision: -20,
                root_delay: 0,
                root_dispersion: 1 << 4,
                reference_id: *b"TEST",
                reference: NtpTimestamp::from_unix_ns(now + shift - 1_000_000_000),
                origin: req.transmit,
                receive: NtpTimestamp::from_unix_ns(now + shift),
                transmit: NtpTimestamp::from_unix_ns(SystemTimeSource.now_ns() + shift),
            };
            match b {
                Behaviour::Kiss(code) => {
                    p.stratum = 0;
                    p.reference_id = code;
                }
                Behaviour::Unsynchronised => p.leap = 3,
                Behaviour::Stratum16 => p.stratum = 16,
                Behaviour::WrongOrigin => p.origin = NtpTimestamp(req.transmit.0 ^ 0xdead_beef),
                Behaviour::ZeroTransmit => p.transmit = NtpTimestamp(0),
                Behaviour::ClientMode => p.mode = 3,
                Behaviour::NegativeDelay => {
                    p.receive = NtpTimestamp::from_unix_ns(now - 5_000_000_000);
                    p.transmit = NtpTimestamp::from_unix_ns(now + 5_000_000_000);
                }
                _ => {}
            }
            let bytes = p.to_bytes();
            let out: &[u8] = if b == Behaviour::Short {
                &bytes[..20]
            } else {
                &bytes
            };
            let _ = sock.send_to(out, peer).await;
        }
    });
    addr
}

/// Polls `cond` every 50 ms until it returns `Some`, or panics after `limit` with `what`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
