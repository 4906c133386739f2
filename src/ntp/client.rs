//! The SNTP exchange on `sntpc` over a tokio UDP socket — the I/O shell around [`super::packet`]
//! and [`super::sample`].
//!
//! sntpc builds and sends the request and receives the reply. T1 and T4 come from the node's own
//! clock through an [`NtpTimestampGenerator`] (its disciplined scale, see
//! [`PhysicalClock::read_raw`], at full nanosecond resolution). A socket wrapper captures the
//! bytes sent and received, so the reply is parsed and validated by the pure [`Packet`] code;
//! a packet sntpc rejects for a reason of its own is reported as [`RejectReason::Sntpc`].
//! Each exchange uses a fresh socket connected to the server, so stray datagrams from other
//! hosts never reach it, and is bounded by a timeout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sntpc::{NtpContext, NtpTimestampGenerator, NtpUdpSocket};
use tokio::net::UdpSocket;

use super::packet::{Packet, RejectReason};
use super::sample::{Exchange, Sample};
use crate::clock::PhysicalClock;
use crate::time::UnixNanos;

/// The default NTP port.
pub const NTP_PORT: u16 = 123;

/// Limits of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExchangeOptions {
    /// Upper bound on the whole exchange (send and receive).
    pub timeout: Duration,
    /// δ above this is rejected as absurd.
    pub max_delay: Duration,
    /// δ below minus this is rejected as negative (timestamp precision allowance).
    pub negative_delay_tolerance: Duration,
}

impl Default for ExchangeOptions {
    fn default() -> Self {
        ExchangeOptions {
            timeout: Duration::from_secs(1),
            max_delay: Duration::from_secs(1),
            negative_delay_tolerance: Duration::from_micros(1),
        }
    }
}

/// The outcome of one exchange, with whatever timestamps it got to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeResult {
    /// The server address used.
    pub addr: SocketAddr,
    /// T1, if the request was built.
    pub t1: Option<UnixNanos>,
    /// T2, if a reply was parsed.
    pub t2: Option<UnixNanos>,
    /// T3, if a reply was parsed.
    pub t3: Option<UnixNanos>,
    /// T4, if a reply was received.
    pub t4: Option<UnixNanos>,
    /// The reply's stratum, if parsed.
    pub stratum: Option<u8>,
    /// The accepted sample, or why there is none.
    pub outcome: Result<Sample, RejectReason>,
}

/// Resolves `host[:port]` (port defaults to 123; IPv6 literals as `[::1]:123` or bare `::1`).
pub async fn resolve(server: &str) -> Result<Vec<SocketAddr>, RejectReason> {
    let server = server.trim();
    if let Ok(sa) = server.parse::<SocketAddr>() {
        return Ok(vec![sa]);
    }
    if let Ok(ip) = server
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![SocketAddr::new(ip, NTP_PORT)]);
    }
    let target = match server.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => server.to_string(),
        _ => format!("{server}:{NTP_PORT}"),
    };
    match tokio::net::lookup_host(target).await {
        Ok(addrs) => {
            let v: Vec<_> = addrs.collect();
            if v.is_empty() {
                Err(RejectReason::Resolve)
            } else {
                Ok(v)
            }
        }
        Err(_) => Err(RejectReason::Resolve),
    }
}

/// Where the generator records the clock readings it hands to sntpc.
#[derive(Debug, Default)]
struct Slot {
    ns: AtomicI64,
    correction_ns: AtomicI64,
    set: std::sync::atomic::AtomicBool,
}

/// An sntpc timestamp generator reading the node's clock; `Copy` as sntpc requires, recording
/// each reading in a shared [`Slot`].
#[derive(Clone, Copy)]
struct ClockGen<'a> {
    clock: &'a PhysicalClock,
    slot: &'a Slot,
    ns: UnixNanos,
}

impl NtpTimestampGenerator for ClockGen<'_> {
    fn init(&mut self) {
        let r = self.clock.read_raw();
        self.ns = r.disciplined_ns;
        self.slot.ns.store(r.disciplined_ns, Ordering::SeqCst);
        self.slot
            .correction_ns
            .store(r.correction_ns, Ordering::SeqCst);
        self.slot.set.store(true, Ordering::SeqCst);
    }

    fn timestamp_sec(&self) -> u64 {
        self.ns.div_euclid(1_000_000_000).max(0) as u64
    }

    fn timestamp_subsec_micros(&self) -> u32 {
        (self.ns.rem_euclid(1_000_000_000) / 1_000) as u32
    }

    fn precision(&self) -> i8 {
        // Microseconds on the wire: 2^-20 s.
        -20
    }
}

/// A connected UDP socket that keeps a copy of the request sent and the reply received.
struct CapturingSocket {
    socket: UdpSocket,
    peer: SocketAddr,
    sent: Mutex<Option<Vec<u8>>>,
    reply: Mutex<Option<Vec<u8>>>,
}

impl NtpUdpSocket for CapturingSocket {
    async fn send_to(&self, buf: &[u8], _addr: SocketAddr) -> sntpc::Result<usize> {
        *self.sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(buf.to_vec());
        self.socket
            .send(buf)
            .await
            .map_err(|_| sntpc::Error::Network)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> sntpc::Result<(usize, SocketAddr)> {
        let mut tmp = [0u8; 1024];
        let n = self
            .socket
            .recv(&mut tmp)
            .await
            .map_err(|_| sntpc::Error::Network)?;
        let got = tmp.get(..n).unwrap_or(&[]);
        let k = n.min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..k), got.get(..k)) {
            dst.copy_from_slice(src);
        }
        *self.reply.lock().unwrap_or_else(|e| e.into_inner()) = Some(got.to_vec());
        Ok((k, self.peer))
    }
}

fn sntpc_reason(e: sntpc::Error) -> RejectReason {
    match e {
        sntpc::Error::Network => RejectReason::Network,
        sntpc::Error::AddressResolve => RejectReason::Resolve,
        sntpc::Error::IncorrectPayload => RejectReason::ShortPacket(0),
        sntpc::Error::IncorrectOriginTimestamp => RejectReason::OriginMismatch,
        sntpc::Error::UnsynchronizedClock => RejectReason::Unsynchronized,
        sntpc::Error::ExcessiveRootDistance => RejectReason::RootDistance,
        other => RejectReason::Sntpc(format!("{other:?}")),
    }
}

/// One SNTP exchange with `addr`, timestamps from `clock`. Never panics; every failure is an
/// `Err` outcome with its reason.
pub async fn exchange(
    clock: &PhysicalClock,
    addr: SocketAddr,
    opts: &ExchangeOptions,
) -> ExchangeResult {
    let mut result = ExchangeResult {
        addr,
        t1: None,
        t2: None,
        t3: None,
        t4: None,
        stratum: None,
        outcome: Err(RejectReason::Network),
    };
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(_) => return result,
    };
    if socket.connect(addr).await.is_err() {
        return result;
    }
    let sock = CapturingSocket {
        socket,
        peer: addr,
        sent: Mutex::new(None),
        reply: Mutex::new(None),
    };
    let (slot1, slot4) = (Slot::default(), Slot::default());
    let ctx1 = NtpContext::new(ClockGen {
        clock,
        slot: &slot1,
        ns: 0,
    });
    let ctx4 = NtpContext::new(ClockGen {
        clock,
        slot: &slot4,
        ns: 0,
    });
    let run = async {
        let req = sntpc::sntp_send_request(addr, &sock, ctx1).await?;
        sntpc::sntp_process_response(addr, &sock, ctx4, req).await
    };
    let sntpc_result = tokio::time::timeout(opts.timeout, run).await;

    let got = |s: &Slot| {
        s.set
            .load(Ordering::SeqCst)
            .then(|| s.ns.load(Ordering::SeqCst))
    };
    result.t1 = got(&slot1);
    result.t4 = got(&slot4);
    let sntpc_result = match sntpc_result {
        Err(_) => {
            result.outcome = Err(RejectReason::Timeout);
            return result;
        }
        Ok(r) => r,
    };
    let reply = sock.reply.lock().unwrap_or_else(|e| e.into_inner()).take();
    let sent = sock.sent.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (Some(reply), Some(sent), Some(t1), Some(t4)) = (reply, sent, result.t1, result.t4) else {
        result.outcome = Err(sntpc_result
            .err()
            .map_or(RejectReason::Network, sntpc_reason));
        return result;
    };
    let corrections = (
        slot1.correction_ns.load(Ordering::SeqCst),
        slot4.correction_ns.load(Ordering::SeqCst),
    );
    result = complete(addr, &sent, &reply, (t1, t4), corrections, opts);
    // Our checks passed but sntpc refused the packet for a reason we do not check ourselves.
    if result.outcome.is_ok() {
        if let Err(e) = sntpc_result {
            result.outcome = Err(sntpc_reason(e));
        }
    }
    result
}

/// The outcome of an exchange whose request `sent` left at `t1` and whose `reply` arrived at
/// `t4` (both read from the node's clock, which applied `corrections` = (at T1, at T4) of
/// correction then): T1..T4, the stratum, and the sample or why there is none. Pure: what
/// [`exchange`] does once the datagrams are captured, and what a simulated network calls.
pub fn complete(
    addr: SocketAddr,
    sent: &[u8],
    reply: &[u8],
    (t1, t4): (UnixNanos, UnixNanos),
    corrections: (i64, i64),
    opts: &ExchangeOptions,
) -> ExchangeResult {
    let mut result = ExchangeResult {
        addr,
        t1: Some(t1),
        t2: None,
        t3: None,
        t4: Some(t4),
        stratum: None,
        outcome: Err(RejectReason::Network),
    };
    result.outcome = evaluate(sent, reply, t1, t4, opts).map(|(ex, packet)| {
        result.t2 = Some(ex.t2);
        result.t3 = Some(ex.t3);
        let corr = (corrections.0 / 2).saturating_add(corrections.1 / 2);
        // Our own timestamp precision (1 µs on the wire) plus the server's and its root distance.
        let dispersion = 1_000i64
            .saturating_add(packet.precision_ns())
            .saturating_add(packet.root_distance_ns());
        Sample::new(ex, ex.delay_ns(), dispersion, corr)
    });
    if let Ok(p) = Packet::parse(reply) {
        result.stratum = Some(p.stratum);
        if !p.receive.is_zero() && !p.transmit.is_zero() {
            result.t2 = Some(p.receive.to_unix_ns(t1));
            result.t3 = Some(p.transmit.to_unix_ns(t1));
        }
    }
    result
}

/// Pure evaluation of a captured exchange: parse, validate against the request, build T1..T4,
/// check δ.
pub fn evaluate(
    sent: &[u8],
    reply: &[u8],
    t1: UnixNanos,
    t4: UnixNanos,
    opts: &ExchangeOptions,
) -> Result<(Exchange, Packet), RejectReason> {
    let request = Packet::parse(sent)?;
    let packet = Packet::parse(reply)?;
    packet.validate_reply(request.transmit, request.version)?;
    let ex = Exchange {
        t1,
        t2: packet.receive.to_unix_ns(t1),
        t3: packet.transmit.to_unix_ns(t1),
        t4,
    };
    ex.check_delay(
        duration_ns(opts.negative_delay_tolerance),
        duration_ns(opts.max_delay),
    )?;
    Ok((ex, packet))
}

/// A duration in nanoseconds, saturating.
pub(crate) fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntp::packet::{NtpTimestamp, MODE_SERVER};

    const T: i64 = 1_790_000_000_000_000_000;

    fn request(t1: i64) -> Vec<u8> {
        Packet {
            leap: 0,
            version: 4,
            mode: 3,
            stratum: 0,
            poll: 0,
            precision: 0,
            root_delay: 0,
            root_dispersion: 0,
            reference_id: [0; 4],
            reference: NtpTimestamp(0),
            origin: NtpTimestamp(0),
            receive: NtpTimestamp(0),
            transmit: NtpTimestamp::from_unix_ns(t1),
        }
        .to_bytes()
        .to_vec()
    }

    fn reply(origin: NtpTimestamp, t2: i64, t3: i64) -> Packet {
        Packet {
            leap: 0,
            version: 4,
            mode: MODE_SERVER,
            stratum: 3,
            poll: 0,
            precision: -20,
            root_delay: 0,
            root_dispersion: 0,
            reference_id: *b"LOCL",
            reference: NtpTimestamp::from_unix_ns(t2 - 1_000_000_000),
            origin,
            receive: NtpTimestamp::from_unix_ns(t2),
            transmit: NtpTimestamp::from_unix_ns(t3),
        }
    }

    #[test]
    fn evaluates_a_good_exchange_to_nanoseconds() {
        let sent = request(T);
        let origin = Packet::parse(&sent).unwrap().transmit;
        let r = reply(origin, T + 250_000_100, T + 250_000_300);
        let (ex, _) = evaluate(
            &sent,
            &r.to_bytes(),
            T,
            T + 400,
            &ExchangeOptions::default(),
        )
        .unwrap();
        assert!(
            (ex.offset_ns() - 250_000_000).abs() <= 1,
            "{}",
            ex.offset_ns()
        );
        assert!((ex.delay_ns() - 200).abs() <= 1);
    }

    #[test]
    fn evaluate_rejects_wrong_origin_and_bad_delay() {
        let sent = request(T);
        let origin = Packet::parse(&sent).unwrap().transmit;
        let opts = ExchangeOptions::default();
        let wrong = reply(NtpTimestamp(origin.0 ^ 1), T, T);
        assert_eq!(
            evaluate(&sent, &wrong.to_bytes(), T, T + 10, &opts).unwrap_err(),
            RejectReason::OriginMismatch
        );
        // Server claims it held the request 1 ms while our round trip took 10 µs.
        let neg = reply(origin, T, T + 1_000_000);
        assert!(matches!(
            evaluate(&sent, &neg.to_bytes(), T, T + 10_000, &opts),
            Err(RejectReason::NegativeDelay(_))
        ));
        let slow = reply(origin, T, T);
        assert!(matches!(
            evaluate(&sent, &slow.to_bytes(), T, T + 5_000_000_000, &opts),
            Err(RejectReason::AbsurdDelay(_))
        ));
    }

    #[tokio::test]
    async fn resolve_handles_ports_and_literals() {
        assert_eq!(
            resolve("127.0.0.1:1234").await.unwrap(),
            vec!["127.0.0.1:1234".parse().unwrap()]
        );
        assert_eq!(
            resolve("127.0.0.1").await.unwrap(),
            vec!["127.0.0.1:123".parse().unwrap()]
        );
        assert_eq!(
            resolve("::1").await.unwrap(),
            vec!["[::1]:123".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:99").await.unwrap(),
            vec!["[::1]:99".parse().unwrap()]
        );
        assert_eq!(
            resolve("localhost:77")
                .await
                .unwrap()
                .first()
                .map(|a| a.port()),
            Some(77)
        );
        assert_eq!(
            resolve("no-such-host.invalid").await,
            Err(RejectReason::Resolve)
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        // A bound socket that never answers.
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let clock = PhysicalClock::system();
        let opts = ExchangeOptions {
            timeout: Duration::from_millis(200),
            ..Default::default()
        };
        let r = exchange(&clock, silent.local_addr().unwrap(), &opts).await;
        assert_eq!(r.outcome, Err(RejectReason::Timeout));
        assert!(r.t1.is_some() && r.t4.is_none());
    }
}
