//! The pieces of NTP that sntpc does not give us: why an exchange is rejected ([`RejectReason`],
//! [`KissCode`], mapped from sntpc's errors), NTP timestamps with RFC 5905 era resolution
//! ([`NtpTimestamp`], for the receive timestamp T2, which sntpc's result does not carry), and the
//! short-format and precision conversions behind a sample's dispersion; and the header
//! ([`Packet`]) for the servers of the demo and the tests, which sntpc (a client) does not
//! provide. I/O-free.
//!
//! sntpc 0.11 itself checks a reply, in this order: origin timestamp = our transmit timestamp,
//! mode = server (4), stratum 0 = Kiss-o'-Death, leap indicator 3, version (1 up to the one we
//! sent), stratum at most 15, non-zero transmit timestamp, root distance (root delay / 2 + root
//! dispersion) below 16 s, reference timestamp not after the transmit timestamp.
//! [`crate::ntp::client`] adds a non-zero receive timestamp and the bounds on δ.

use serde::{Deserialize, Serialize};

use crate::time::UnixNanos;

/// Length of an NTP header without extensions.
pub const PACKET_LEN: usize = 48;

/// Mode field value of a server reply.
pub const MODE_SERVER: u8 = 4;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

/// One NTP era: 2^32 seconds.
const ERA_SECS: i64 = 1 << 32;

/// A Kiss-o'-Death code (RFC 5905 §7.4), the reference id of a stratum-0 reply.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KissCode {
    /// Rate exceeded: the client must reduce its polling rate.
    Rate,
    /// Access denied: the client must stop using this server.
    Deny,
    /// Access restricted: the client must stop using this server.
    Rstr,
    /// Any other code (printable ASCII kept, others escaped).
    Other(String),
}

impl KissCode {
    /// The code as on the wire ("RATE", "DENY", …).
    pub fn as_str(&self) -> &str {
        match self {
            KissCode::Rate => "RATE",
            KissCode::Deny => "DENY",
            KissCode::Rstr => "RSTR",
            KissCode::Other(s) => s,
        }
    }

    /// DENY and RSTR tell the client to stop using the server for good.
    pub fn is_fatal(&self) -> bool {
        matches!(self, KissCode::Deny | KissCode::Rstr)
    }
}

impl From<sntpc::KissOfDeathCode> for KissCode {
    /// RATE, DENY and RSTR keep their meaning; every other code is kept by name, an
    /// unregistered one with non-printable bytes escaped.
    fn from(code: sntpc::KissOfDeathCode) -> Self {
        use sntpc::KissOfDeathCode as K;
        match code {
            K::Rate => KissCode::Rate,
            K::Deny => KissCode::Deny,
            K::Rstr => KissCode::Rstr,
            K::Experimental(bytes) => KissCode::Other(
                bytes
                    .iter()
                    .flat_map(|b| std::ascii::escape_default(*b))
                    .map(char::from)
                    .collect(),
            ),
            other => KissCode::Other(other.as_str().to_string()),
        }
    }
}

/// Why an exchange produced no usable sample. Every variant is counted and logged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    /// No reply within the per-exchange timeout.
    #[error("timeout")]
    Timeout,
    /// Sending or receiving failed.
    #[error("network error")]
    Network,
    /// The server name did not resolve.
    #[error("cannot resolve server address")]
    Resolve,
    /// Reply shorter than 48 bytes.
    #[error("short packet ({0} bytes)")]
    ShortPacket(usize),
    /// Mode is not "server" (4).
    #[error("mode is not server (4)")]
    BadMode,
    /// Version 0 or newer than we asked for.
    #[error("bad version")]
    BadVersion,
    /// Stratum 0: Kiss-o'-Death with the given code.
    #[error("kiss-o'-death {}", .0.as_str())]
    KissOfDeath(KissCode),
    /// Leap indicator 3: the server's clock is not synchronised.
    #[error("server unsynchronised (leap indicator 3)")]
    Unsynchronized,
    /// Stratum 16 or above.
    #[error("bad stratum (16 or above)")]
    BadStratum,
    /// The origin timestamp is not our transmit timestamp (stale, duplicated or spoofed reply).
    #[error("origin timestamp does not match our transmit timestamp")]
    OriginMismatch,
    /// Transmit timestamp is zero.
    #[error("zero transmit timestamp")]
    ZeroTransmit,
    /// Receive timestamp is zero.
    #[error("zero receive timestamp")]
    ZeroReceive,
    /// Round-trip delay below zero (beyond measurement precision).
    #[error("negative delay {0} ns")]
    NegativeDelay(i64),
    /// Round-trip delay above the configured maximum.
    #[error("absurd delay {0} ns")]
    AbsurdDelay(i64),
    /// Root delay / 2 + root dispersion at least NTP's MAXDISP (16 s).
    #[error("excessive root distance")]
    RootDistance,
    /// The server's reference timestamp (when its clock was last set) is later than its
    /// transmit timestamp.
    #[error("reference timestamp after transmit timestamp")]
    BackwardReference,
    /// Any other rejection reported by the sntpc library.
    #[error("rejected by sntpc: {0}")]
    Sntpc(String),
}

impl RejectReason {
    /// A stable, short label for counters and metrics ("timeout", "kod-rate", "origin-mismatch").
    pub fn label(&self) -> String {
        match self {
            RejectReason::Timeout => "timeout".into(),
            RejectReason::Network => "network".into(),
            RejectReason::Resolve => "resolve".into(),
            RejectReason::ShortPacket(_) => "short-packet".into(),
            RejectReason::BadMode => "bad-mode".into(),
            RejectReason::BadVersion => "bad-version".into(),
            RejectReason::KissOfDeath(KissCode::Rate) => "kod-rate".into(),
            RejectReason::KissOfDeath(KissCode::Deny) => "kod-deny".into(),
            RejectReason::KissOfDeath(KissCode::Rstr) => "kod-rstr".into(),
            RejectReason::KissOfDeath(KissCode::Other(_)) => "kod-other".into(),
            RejectReason::Unsynchronized => "unsynchronized".into(),
            RejectReason::BadStratum => "bad-stratum".into(),
            RejectReason::OriginMismatch => "origin-mismatch".into(),
            RejectReason::ZeroTransmit => "zero-transmit".into(),
            RejectReason::ZeroReceive => "zero-receive".into(),
            RejectReason::NegativeDelay(_) => "negative-delay".into(),
            RejectReason::AbsurdDelay(_) => "absurd-delay".into(),
            RejectReason::RootDistance => "root-distance".into(),
            RejectReason::BackwardReference => "backward-reference".into(),
            RejectReason::Sntpc(_) => "sntpc".into(),
        }
    }
}

impl RejectReason {
    /// The reason for an exchange sntpc refused. `received` is the length of the datagram
    /// received, if one was (sntpc reports a short reply without its length).
    pub fn from_sntpc(e: sntpc::Error, received: Option<usize>) -> Self {
        use sntpc::Error as E;
        match e {
            E::Network => RejectReason::Network,
            E::AddressResolve => RejectReason::Resolve,
            E::IncorrectPayload => RejectReason::ShortPacket(received.unwrap_or(0)),
            E::IncorrectMode => RejectReason::BadMode,
            E::KissOfDeath(code) => RejectReason::KissOfDeath(code.into()),
            E::UnsynchronizedClock => RejectReason::Unsynchronized,
            E::IncorrectStratumHeaders => RejectReason::BadStratum,
            E::IncorrectResponseVersion => RejectReason::BadVersion,
            E::IncorrectOriginTimestamp => RejectReason::OriginMismatch,
            // sntpc's only invalid timestamp is a zero transmit timestamp (its era
            // reconstruction fails for nothing else).
            E::InvalidTimestamp => RejectReason::ZeroTransmit,
            E::ExcessiveRootDistance => RejectReason::RootDistance,
            E::BackwardReferenceTimestamp => RejectReason::BackwardReference,
            other => RejectReason::Sntpc(format!("{other:?}")),
        }
    }
}

/// A 64-bit NTP timestamp: seconds since 1900 (upper 32 bits, modulo eras) and a binary fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// Encodes Unix nanoseconds (any era; the era number is lost on the wire).
    pub fn from_unix_ns(ns: UnixNanos) -> Self {
        let secs = ns.div_euclid(1_000_000_000);
        let sub = ns.rem_euclid(1_000_000_000) as u64;
        let ntp_secs = (secs.wrapping_add(NTP_UNIX_OFFSET_SECS) as u64) & 0xffff_ffff;
        let frac = (sub << 32) / 1_000_000_000;
        NtpTimestamp((ntp_secs << 32) | frac)
    }

    /// Decodes to Unix nanoseconds, choosing the era that puts the result closest to `pivot_ns`
    /// (the local clock at the exchange), as RFC 5905 prescribes for era ambiguity.
    pub fn to_unix_ns(self, pivot_ns: UnixNanos) -> UnixNanos {
        let secs_in_era = (self.0 >> 32) as i64;
        let frac_ns = fraction_to_ns(self.0 as u32);
        let pivot_ntp_secs = pivot_ns
            .div_euclid(1_000_000_000)
            .saturating_add(NTP_UNIX_OFFSET_SECS);
        let pivot_era = pivot_ntp_secs.div_euclid(ERA_SECS);
        let best = [pivot_era - 1, pivot_era, pivot_era + 1]
            .into_iter()
            .map(|era| era.saturating_mul(ERA_SECS).saturating_add(secs_in_era))
            .min_by_key(|s| s.abs_diff(pivot_ntp_secs))
            .unwrap_or(secs_in_era);
        best.saturating_sub(NTP_UNIX_OFFSET_SECS)
            .saturating_mul(1_000_000_000)
            .saturating_add(frac_ns)
    }

    /// True for the all-zero timestamp ("unknown" on the wire).
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// An NTP header, as a server reads a request and writes its reply: the demo's simulated
/// server and the tests' responders use it. The client never parses a reply with it: sntpc does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Leap indicator (0–3).
    pub leap: u8,
    /// Protocol version (1–7).
    pub version: u8,
    /// Association mode (3 client, 4 server, …).
    pub mode: u8,
    /// Stratum (0 = Kiss-o'-Death, 1–15 valid, 16 unsynchronised).
    pub stratum: u8,
    /// Poll exponent (log2 s).
    pub poll: i8,
    /// Precision exponent (log2 s).
    pub precision: i8,
    /// Root delay, NTP short format (16.16 s).
    pub root_delay: u32,
    /// Root dispersion, NTP short format (16.16 s).
    pub root_dispersion: u32,
    /// Reference id (KoD code when stratum is 0).
    pub reference_id: [u8; 4],
    /// Reference timestamp.
    pub reference: NtpTimestamp,
    /// Origin timestamp (the client's transmit timestamp echoed back).
    pub origin: NtpTimestamp,
    /// Receive timestamp (T2).
    pub receive: NtpTimestamp,
    /// Transmit timestamp (T3).
    pub transmit: NtpTimestamp,
}

impl Packet {
    /// Parses the first 48 bytes of `buf`; extension fields and MACs beyond them are ignored.
    pub fn parse(buf: &[u8]) -> Result<Self, RejectReason> {
        let b: &[u8; PACKET_LEN] = buf
            .get(..PACKET_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RejectReason::ShortPacket(buf.len()))?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| (u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4));
        Ok(Packet {
            leap: b[0] >> 6,
            version: (b[0] >> 3) & 0x7,
            mode: b[0] & 0x7,
            stratum: b[1],
            poll: b[2] as i8,
            precision: b[3] as i8,
            root_delay: u32_at(4),
            root_dispersion: u32_at(8),
            reference_id: [b[12], b[13], b[14], b[15]],
            reference: NtpTimestamp(u64_at(16)),
            origin: NtpTimestamp(u64_at(24)),
            receive: NtpTimestamp(u64_at(32)),
            transmit: NtpTimestamp(u64_at(40)),
        })
    }

    /// Serialises the header.
    pub fn to_bytes(&self) -> [u8; PACKET_LEN] {
        let mut b = [0u8; PACKET_LEN];
        b[0] = (self.leap << 6) | ((self.version & 0x7) << 3) | (self.mode & 0x7);
        b[1] = self.stratum;
        b[2] = self.poll as u8;
        b[3] = self.precision as u8;
        b[4..8].copy_from_slice(&self.root_delay.to_be_bytes());
        b[8..12].copy_from_slice(&self.root_dispersion.to_be_bytes());
        b[12..16].copy_from_slice(&self.reference_id);
        b[16..24].copy_from_slice(&self.reference.0.to_be_bytes());
        b[24..32].copy_from_slice(&self.origin.0.to_be_bytes());
        b[32..40].copy_from_slice(&self.receive.0.to_be_bytes());
        b[40..48].copy_from_slice(&self.transmit.0.to_be_bytes());
        b
    }
}

/// Converts the 32-bit binary fraction of an NTP timestamp to nanoseconds, rounded to nearest.
pub fn fraction_to_ns(fraction: u32) -> i64 {
    ((u64::from(fraction) * 1_000_000_000 + (1 << 31)) >> 32) as i64
}

/// Converts an NTP short-format value (16.16 seconds) to nanoseconds.
pub fn short_to_ns(v: u32) -> i64 {
    ((u64::from(v) * 1_000_000_000) >> 16) as i64
}

/// A precision exponent (log2 seconds, as in the NTP header) in nanoseconds.
pub fn precision_to_ns(precision: i8) -> i64 {
    (2f64.powi(i32::from(precision)) * 1e9).min(1e18) as i64
}

/// Root delay / 2 + root dispersion (both NTP short format), nanoseconds.
pub fn root_distance_ns(root_delay: u32, root_dispersion: u32) -> i64 {
    short_to_ns(root_delay) / 2 + short_to_ns(root_dispersion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: i64 = 1_790_000_000_123_456_789;

    #[test]
    fn timestamp_round_trips_within_a_nanosecond() {
        for ns in [
            0,
            T,
            2_085_978_495_999_999_999,
            2_085_978_496_000_000_001,
            4_000_000_000_500_000_000,
        ] {
            let back = NtpTimestamp::from_unix_ns(ns).to_unix_ns(ns + 3_000_000_000);
            assert!((back - ns).abs() <= 1, "{ns} -> {back}");
        }
    }

    #[test]
    fn era_rollover_2036_is_resolved_by_the_pivot() {
        // 2036-02-07T06:28:16Z is NTP second 2^32: era 1 starts.
        let after = 2_085_978_496 * 1_000_000_000 + 5;
        let ts = NtpTimestamp::from_unix_ns(after);
        assert_eq!(ts.0 >> 32, 0);
        assert_eq!(ts.to_unix_ns(after - 2_000_000_000), after);
    }

    #[test]
    fn parse_and_serialise_round_trip() {
        let p = Packet {
            leap: 0,
            version: 4,
            mode: MODE_SERVER,
            stratum: 2,
            poll: 6,
            precision: -20,
            root_delay: 0x0000_0100,
            root_dispersion: 0x0000_0200,
            reference_id: *b"GPS\0",
            reference: NtpTimestamp::from_unix_ns(T - 1_000_000_000),
            origin: NtpTimestamp(42),
            receive: NtpTimestamp::from_unix_ns(T + 1_000),
            transmit: NtpTimestamp::from_unix_ns(T + 2_000),
        };
        assert_eq!(Packet::parse(&p.to_bytes()), Ok(p));
        let mut long = p.to_bytes().to_vec();
        long.extend_from_slice(&[0; 20]);
        assert_eq!(Packet::parse(&long), Ok(p));
        assert_eq!(
            Packet::parse(&[0u8; 47]),
            Err(RejectReason::ShortPacket(47))
        );
    }

    #[test]
    fn sntpc_errors_map_to_their_reasons() {
        use sntpc::{Error as E, KissOfDeathCode as K};
        let cases = [
            (E::IncorrectPayload, RejectReason::ShortPacket(20)),
            (E::IncorrectMode, RejectReason::BadMode),
            (
                E::KissOfDeath(K::Rate),
                RejectReason::KissOfDeath(KissCode::Rate),
            ),
            (
                E::KissOfDeath(K::Deny),
                RejectReason::KissOfDeath(KissCode::Deny),
            ),
            (
                E::KissOfDeath(K::Rstr),
                RejectReason::KissOfDeath(KissCode::Rstr),
            ),
            (
                E::KissOfDeath(K::Init),
                RejectReason::KissOfDeath(KissCode::Other("INIT".into())),
            ),
            (
                E::KissOfDeath(K::Experimental(*b"XY\x01Z")),
                RejectReason::KissOfDeath(KissCode::Other("XY\\x01Z".into())),
            ),
            (E::UnsynchronizedClock, RejectReason::Unsynchronized),
            (E::IncorrectStratumHeaders, RejectReason::BadStratum),
            (E::IncorrectResponseVersion, RejectReason::BadVersion),
            (E::IncorrectOriginTimestamp, RejectReason::OriginMismatch),
            (E::InvalidTimestamp, RejectReason::ZeroTransmit),
            (E::ExcessiveRootDistance, RejectReason::RootDistance),
            (
                E::BackwardReferenceTimestamp,
                RejectReason::BackwardReference,
            ),
            (E::Network, RejectReason::Network),
        ];
        for (e, want) in cases {
            assert_eq!(RejectReason::from_sntpc(e, Some(20)), want, "{e:?}");
        }
    }

    #[test]
    fn labels_are_distinct_per_kod_code() {
        let labels: std::collections::HashSet<_> = [
            KissCode::Rate,
            KissCode::Deny,
            KissCode::Rstr,
            KissCode::Other("X".into()),
        ]
        .into_iter()
        .map(|k| RejectReason::KissOfDeath(k).label())
        .collect();
        assert_eq!(labels.len(), 4);
        assert!(
            KissCode::Deny.is_fatal() && KissCode::Rstr.is_fatal() && !KissCode::Rate.is_fatal()
        );
    }

    #[test]
    fn short_format_and_precision_convert() {
        assert_eq!(short_to_ns(1 << 16), 1_000_000_000);
        assert_eq!(short_to_ns(1 << 15), 500_000_000);
        assert_eq!(root_distance_ns(2 << 16, 1 << 16), 2_000_000_000);
        assert_eq!(precision_to_ns(0), 1_000_000_000);
        assert_eq!(precision_to_ns(-20), 953);
        assert_eq!(fraction_to_ns(1 << 31), 500_000_000);
        assert_eq!(fraction_to_ns(u32::MAX), 1_000_000_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn parse_reads_exactly_the_first_48_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            match Packet::parse(&bytes) {
                Ok(p) => prop_assert_eq!(&p.to_bytes()[..], &bytes[..PACKET_LEN]),
                Err(e) => prop_assert_eq!(e, RejectReason::ShortPacket(bytes.len())),
            }
        }

        #[test]
        fn timestamp_round_trip_any_time(ns in 0i64..6_000_000_000_000_000_000, pivot_off in -1_000_000_000_000_000i64..1_000_000_000_000_000) {
            // Within ±68 years of the pivot the era is recovered exactly.
            let back = NtpTimestamp::from_unix_ns(ns).to_unix_ns(ns + pivot_off);
            prop_assert!((back - ns).abs() <= 1);
        }
    }
}
