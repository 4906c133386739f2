//! One SNTP exchange on `sntpc`. sntpc builds the request, and reads and validates the reply
//! (its checks are listed in [`super::packet`]); its errors become [`RejectReason`]s. The core
//! is sans-IO: [`Request::new`] gives the datagram to send, [`Request::complete`] takes the
//! datagram received (sntpc runs over an in-memory socket), so the demo's simulated network and
//! the unit tests drive it without sockets. `exchange` (feature `kafka`) is the I/O shell: a
//! fresh tokio UDP socket connected to the server (stray datagrams from other hosts never reach
//! it), bounded by a timeout.
//!
//! What sntpc 0.11 does not give, and this module adds:
//!
//! * **T1 and T4 in nanoseconds.** sntpc reads the local clock through an
//!   [`NtpTimestampGenerator`] in whole microseconds; ours reads the node's disciplined scale
//!   ([`PhysicalClock::read_raw`]) and keeps each reading at full resolution, with the clock's
//!   correction at that moment.
//! * **T2.** sntpc's `NtpResult` carries the server's transmit timestamp (T3) but not its receive
//!   timestamp, and reports θ and δ only in whole microseconds, with δ clamped to at least the
//!   client's precision, so a negative δ is invisible. We keep the eight receive-timestamp bytes
//!   of the datagram handed to sntpc (and its length, for [`RejectReason::ShortPacket`]); nothing
//!   else of the reply is read by us.
//! * **Checks on T2 and δ:** a zero receive timestamp, and δ outside
//!   [−`negative_delay_tolerance`, `max_delay`] (see [`Exchange::check_delay`]).

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
#[cfg(feature = "kafka")]
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sntpc::{NtpContext, NtpResult, NtpTimestampGenerator, NtpUdpSocket, SendRequestResult};
#[cfg(feature = "kafka")]
use tokio::net::UdpSocket;

use super::packet::{
    fraction_to_ns, precision_to_ns, root_distance_ns, NtpTimestamp, RejectReason, PACKET_LEN,
};
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
    /// T2, if sntpc accepted the reply and its receive timestamp is not zero.
    pub t2: Option<UnixNanos>,
    /// T3, if sntpc accepted the reply.
    pub t3: Option<UnixNanos>,
    /// T4, if a reply was received.
    pub t4: Option<UnixNanos>,
    /// The reply's stratum, if sntpc accepted the reply.
    pub stratum: Option<u8>,
    /// The accepted sample, or why there is none.
    pub outcome: Result<Sample, RejectReason>,
}

impl ExchangeResult {
    /// An exchange with `addr` that failed before any timestamp was taken.
    pub fn failed(addr: SocketAddr, reason: RejectReason) -> Self {
        Self {
            addr,
            t1: None,
            t2: None,
            t3: None,
            t4: None,
            stratum: None,
            outcome: Err(reason),
        }
    }
}

/// Resolves `host[:port]` (port defaults to 123; IPv6 literals as `[::1]:123` or bare `::1`).
#[cfg(feature = "kafka")]
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

/// A clock reading handed to sntpc: the disciplined time and the correction in it, ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reading {
    ns: UnixNanos,
    correction_ns: i64,
}

/// An sntpc timestamp generator reading the node's clock; `Copy` as sntpc requires, it keeps
/// its reading in a shared cell.
#[derive(Clone, Copy)]
struct ClockGen<'a> {
    clock: &'a PhysicalClock,
    taken: &'a Cell<Option<Reading>>,
    ns: UnixNanos,
}

impl<'a> ClockGen<'a> {
    fn context(clock: &'a PhysicalClock, taken: &'a Cell<Option<Reading>>) -> NtpContext<Self> {
        NtpContext::new(ClockGen {
            clock,
            taken,
            ns: 0,
        })
    }
}

impl NtpTimestampGenerator for ClockGen<'_> {
    fn init(&mut self) {
        let r = self.clock.read_raw();
        self.ns = r.disciplined_ns;
        self.taken.set(Some(Reading {
            ns: r.disciplined_ns,
            correction_ns: r.correction_ns,
        }));
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

/// An in-memory socket between sntpc and the caller: keeps the datagram sntpc sends, hands it
/// the datagram received.
struct Memory<'a> {
    peer: SocketAddr,
    sent: Cell<Option<[u8; PACKET_LEN]>>,
    received: &'a [u8],
}

impl NtpUdpSocket for Memory<'_> {
    async fn send_to(&self, buf: &[u8], _addr: SocketAddr) -> sntpc::Result<usize> {
        let datagram = <[u8; PACKET_LEN]>::try_from(buf).map_err(|_| sntpc::Error::Network)?;
        self.sent.set(Some(datagram));
        Ok(buf.len())
    }

    async fn recv_from(&self, buf: &mut [u8]) -> sntpc::Result<(usize, SocketAddr)> {
        let n = self.received.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.received.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok((self.received.len(), self.peer))
    }
}

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// Runs an sntpc future over a [`Memory`] socket, which never waits: it completes at its first
/// poll (`None` if it did not).
fn at_once<F: Future>(f: F) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// An SNTP request built by sntpc and not yet answered.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    sntpc: SendRequestResult,
    sent: Reading,
    /// The transmit timestamp on the wire, which a genuine reply echoes as its origin.
    pub transmit: NtpTimestamp,
}

impl Request {
    /// Builds a request, T1 read from `clock` now; returns it with the datagram to send.
    pub fn new(clock: &PhysicalClock) -> Result<(Request, [u8; PACKET_LEN]), RejectReason> {
        let taken = Cell::new(None);
        let socket = Memory {
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            sent: Cell::new(None),
            received: &[],
        };
        let sntpc = at_once(sntpc::sntp_send_request(
            socket.peer,
            &socket,
            ClockGen::context(clock, &taken),
        ))
        .ok_or(RejectReason::Network)?
        .map_err(|e| RejectReason::from_sntpc(e, None))?;
        let (Some(sent), Some(datagram)) = (taken.get(), socket.sent.get()) else {
            return Err(RejectReason::Network);
        };
        let transmit = datagram
            .get(40..48)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(NtpTimestamp(0), |b| NtpTimestamp(u64::from_be_bytes(b)));
        Ok((
            Request {
                sntpc,
                sent,
                transmit,
            },
            datagram,
        ))
    }

    /// T1: the node's clock when the request was built, ns.
    pub fn t1(&self) -> UnixNanos {
        self.sent.ns
    }

    /// The outcome of this request when no reply came from `addr`, for `reason`.
    pub fn unanswered(&self, addr: SocketAddr, reason: RejectReason) -> ExchangeResult {
        ExchangeResult {
            addr,
            t1: Some(self.sent.ns),
            t2: None,
            t3: None,
            t4: None,
            stratum: None,
            outcome: Err(reason),
        }
    }

    /// Processes `datagram`, the reply from `addr` received just now (T4 is read from `clock`):
    /// sntpc validates it, then T2 and δ are checked. T1..T4, the stratum, and the sample or why
    /// there is none.
    pub fn complete(
        &self,
        clock: &PhysicalClock,
        addr: SocketAddr,
        datagram: &[u8],
        opts: &ExchangeOptions,
    ) -> ExchangeResult {
        let taken = Cell::new(None);
        let socket = Memory {
            peer: addr,
            sent: Cell::new(None),
            received: datagram,
        };
        let reply = at_once(sntpc::sntp_process_response(
            addr,
            &socket,
            ClockGen::context(clock, &taken),
            self.sntpc,
        ));
        let mut result = self.unanswered(addr, RejectReason::Network);
        result.t4 = taken.get().map(|r| r.ns);
        let reply = match reply {
            Some(Ok(reply)) => reply,
            Some(Err(e)) => {
                result.outcome = Err(RejectReason::from_sntpc(e, Some(datagram.len())));
                return result;
            }
            None => return result,
        };
        let Some(received) = taken.get() else {
            return result;
        };
        self.assess(result, &reply, datagram, received, opts)
    }

    /// Our part, once sntpc accepted `reply`: T3 as sntpc resolved it, T2 from the datagram,
    /// the checks on them and the sample.
    fn assess(
        &self,
        mut result: ExchangeResult,
        reply: &NtpResult,
        datagram: &[u8],
        received: Reading,
        opts: &ExchangeOptions,
    ) -> ExchangeResult {
        let (t1, t4) = (self.sent.ns, received.ns);
        result.stratum = Some(reply.stratum);
        // sntpc chose T3's era around T4.
        let t3 = i64::try_from(reply.seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000)
            .saturating_add(fraction_to_ns(reply.seconds_fraction));
        result.t3 = Some(t3);
        let receive = datagram
            .get(RECEIVE_AT..RECEIVE_AT + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(|b| NtpTimestamp(u64::from_be_bytes(b)))
            .filter(|ts| !ts.is_zero());
        let Some(receive) = receive else {
            result.outcome = Err(RejectReason::ZeroReceive);
            return result;
        };
        let t2 = receive.to_unix_ns(t1);
        result.t2 = Some(t2);
        let ex = Exchange { t1, t2, t3, t4 };
        result.outcome = ex
            .check_delay(
                duration_ns(opts.negative_delay_tolerance),
                duration_ns(opts.max_delay),
            )
            .map(|delay| {
                // Our timestamp precision (1 µs on the wire) plus the server's and its root
                // distance.
                let dispersion = 1_000i64
                    .saturating_add(precision_to_ns(reply.precision))
                    .saturating_add(root_distance_ns(reply.root_delay, reply.root_dispersion));
                let correction =
                    (self.sent.correction_ns / 2).saturating_add(received.correction_ns / 2);
                Sample::new(ex, delay, dispersion, correction)
            });
        result
    }
}

/// Offset of the receive timestamp (T2) in an NTP header.
const RECEIVE_AT: usize = 32;

/// One SNTP exchange with `addr`, timestamps from `clock`. Never panics; every failure is an
/// `Err` outcome with its reason.
#[cfg(feature = "kafka")]
pub async fn exchange(
    clock: &PhysicalClock,
    addr: SocketAddr,
    opts: &ExchangeOptions,
) -> ExchangeResult {
    let failed = |reason| ExchangeResult::failed(addr, reason);
    let bind: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) if s.connect(addr).await.is_ok() => s,
        _ => return failed(RejectReason::Network),
    };
    let (request, datagram) = match Request::new(clock) {
        Ok(r) => r,
        Err(reason) => return failed(reason),
    };
    // Room for extension fields and a MAC; only the header is used.
    let mut buf = [0u8; 1024];
    let round_trip = async {
        socket.send(&datagram).await?;
        socket.recv(&mut buf).await
    };
    match tokio::time::timeout(opts.timeout, round_trip).await {
        Err(_) => request.unanswered(addr, RejectReason::Timeout),
        Ok(Err(_)) => request.unanswered(addr, RejectReason::Network),
        Ok(Ok(n)) => request.complete(clock, addr, buf.get(..n).unwrap_or(&[]), opts),
    }
}

/// A duration in nanoseconds, saturating.
pub(crate) fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::physical::Simulation;
    use crate::ntp::packet::KissCode;
    use crate::time::{ManualTime, TimeSource};

    const T: i64 = 1_790_000_000_000_000_000;
    const MS: i64 = 1_000_000;

    fn addr() -> SocketAddr {
        "192.0.2.1:123".parse().unwrap()
    }

    /// A stratum-2 server reply to `request` with receive and transmit timestamps `t2`, `t3`.
    fn reply(request: &[u8; PACKET_LEN], t2: i64, t3: i64) -> Vec<u8> {
        let mut b = vec![0u8; PACKET_LEN];
        b[0] = (4 << 3) | 4; // leap 0, version 4, mode server
        b[1] = 2;
        b[3] = (-20i8) as u8;
        b[8..12].copy_from_slice(&16u32.to_be_bytes()); // root dispersion
        b[12..16].copy_from_slice(b"TEST");
        b[24..32].copy_from_slice(&request[40..48]); // origin = our transmit
        b[32..40].copy_from_slice(&NtpTimestamp::from_unix_ns(t2).0.to_be_bytes());
        b[40..48].copy_from_slice(&NtpTimestamp::from_unix_ns(t3).0.to_be_bytes());
        b
    }

    /// One exchange of a clock reading `T` with a server answering `answer(request)`, the
    /// reply arriving `round_trip_ns` later.
    fn run(round_trip_ns: i64, answer: impl Fn(&[u8; PACKET_LEN]) -> Vec<u8>) -> ExchangeResult {
        let time = Arc::new(ManualTime::new(T));
        let src: Arc<dyn TimeSource> = time.clone();
        let clock = PhysicalClock::with_simulation(src, Simulation::default());
        let (request, datagram) = Request::new(&clock).expect("request");
        assert_eq!(request.t1(), T);
        assert_eq!(request.transmit.0.to_be_bytes(), datagram[40..48]);
        time.advance(round_trip_ns);
        request.complete(
            &clock,
            addr(),
            &answer(&datagram),
            &ExchangeOptions::default(),
        )
    }

    #[test]
    fn a_good_exchange_gives_nanosecond_timestamps() {
        // Server 250 ms ahead, 400 ns round trip, 200 ns in the server.
        let r = run(400, |req| {
            reply(req, T + 250 * MS + 100, T + 250 * MS + 300)
        });
        let s = r.outcome.expect("accepted");
        assert_eq!((r.t1, r.t4), (Some(T), Some(T + 400)));
        assert!((r.t2.unwrap() - (T + 250 * MS + 100)).abs() <= 1);
        assert!((r.t3.unwrap() - (T + 250 * MS + 300)).abs() <= 1);
        assert_eq!(r.stratum, Some(2));
        assert!((s.offset_ns - 250 * MS).abs() <= 1, "{}", s.offset_ns);
        assert!((s.delay_ns - 200).abs() <= 1, "{}", s.delay_ns);
        // 1 µs (ours) + 2^-20 s (the server's) + root dispersion 16/65536 s.
        assert_eq!(s.dispersion_ns, 1_000 + 953 + 244_140);
    }

    #[test]
    fn sntpc_rejections_keep_their_reasons() {
        type Spoil = fn(&mut Vec<u8>);
        let with = |f: Spoil| {
            move |req: &[u8; PACKET_LEN]| {
                let mut b = reply(req, T, T);
                f(&mut b);
                b
            }
        };
        let cases: [(Spoil, RejectReason); 7] = [
            (
                |b| {
                    b[1] = 0;
                    b[12..16].copy_from_slice(b"DENY");
                },
                RejectReason::KissOfDeath(KissCode::Deny),
            ),
            (
                |b| {
                    b[1] = 0;
                    b[12..16].copy_from_slice(b"RATE");
                },
                RejectReason::KissOfDeath(KissCode::Rate),
            ),
            (|b| b.truncate(20), RejectReason::ShortPacket(20)),
            (|b| b[31] ^= 1, RejectReason::OriginMismatch),
            (|b| b[1] = 16, RejectReason::BadStratum),
            (|b| b[0] |= 3 << 6, RejectReason::Unsynchronized),
            (|b| b[40..48].fill(0), RejectReason::ZeroTransmit),
        ];
        for (f, want) in cases {
            let r = run(100, with(f));
            assert_eq!(r.outcome, Err(want));
            assert!(r.t1.is_some() && r.t4.is_some() && r.t2.is_none());
        }
    }

    #[test]
    fn what_sntpc_does_not_check_is_rejected_here() {
        let r = run(100, |req| {
            let mut b = reply(req, T, T);
            b[32..40].fill(0);
            b
        });
        assert_eq!(r.outcome, Err(RejectReason::ZeroReceive));
        assert!(r.t3.is_some(), "T3 is reported all the same");
        // The server claims it held the request 1 ms while our round trip took 10 µs: sntpc
        // clamps that round trip to its precision; δ is negative.
        let r = run(10_000, |req| reply(req, T, T + MS));
        assert!(
            matches!(r.outcome, Err(RejectReason::NegativeDelay(d)) if (d - (10_000 - MS)).abs() <= 1),
            "{:?}",
            r.outcome
        );
        let r = run(5_000 * MS, |req| reply(req, T, T));
        assert!(
            matches!(r.outcome, Err(RejectReason::AbsurdDelay(d)) if (d - 5_000 * MS).abs() <= 1),
            "{:?}",
            r.outcome
        );
    }

    #[cfg(feature = "kafka")]
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

    #[cfg(feature = "kafka")]
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
