//! NTP wire format (RFC 5905 §7.3) for a server reply, and its validation. I/O-free.
//!
//! Validation order (the first failing rule names the rejection): length, mode = server (4),
//! stratum 0 = Kiss-o'-Death, leap indicator 3, stratum 1–15, version (1 up to the one we sent),
//! origin = our transmit timestamp, non-zero transmit and receive timestamps, root distance
//! (root delay / 2 + root dispersion) below 16 s.

use serde::{Deserialize, Serialize};

use crate::time::UnixNanos;

/// Length of an NTP header without extensions.
pub const PACKET_LEN: usize = 48;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub const NTP_UNIX_OFFSET_SECS: i64 = 2_208_988_800;

/// One NTP era: 2^32 seconds.
const ERA_SECS: i64 = 1 << 32;

/// Mode field value of a server reply.
pub const MODE_SERVER: u8 = 4;

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
    /// Parses the four reference-id bytes of a stratum-0 reply.
    pub fn from_bytes(code: [u8; 4]) -> Self {
        match &code {
            b"RATE" => KissCode::Rate,
            b"DENY" => KissCode::Deny,
            b"RSTR" => KissCode::Rstr,
            _ => KissCode::Other(
                code.iter()
                    .flat_map(|b| std::ascii::escape_default(*b))
                    .map(char::from)
                    .collect(),
            ),
        }
    }

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
    /// Mode is not "server".
    #[error("mode {0} is not server (4)")]
    BadMode(u8),
    /// Version 0 or newer than we asked for.
    #[error("bad version {0}")]
    BadVersion(u8),
    /// Stratum 0: Kiss-o'-Death with the given code.
    #[error("kiss-o'-death {}", .0.as_str())]
    KissOfDeath(KissCode),
    /// Leap indicator 3: the server's clock is not synchronised.
    #[error("server unsynchronised (leap indicator 3)")]
    Unsynchronized,
    /// Stratum 16 or above.
    #[error("bad stratum {0}")]
    BadStratum(u8),
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
            RejectReason::BadMode(_) => "bad-mode".into(),
            RejectReason::BadVersion(_) => "bad-version".into(),
            RejectReason::KissOfDeath(KissCode::Rate) => "kod-rate".into(),
            RejectReason::KissOfDeath(KissCode::Deny) => "kod-deny".into(),
            RejectReason::KissOfDeath(KissCode::Rstr) => "kod-rstr".into(),
            RejectReason::KissOfDeath(KissCode::Other(_)) => "kod-other".into(),
            RejectReason::Unsynchronized => "unsynchronized".into(),
            RejectReason::BadStratum(_) => "bad-stratum".into(),
            RejectReason::OriginMismatch => "origin-mismatch".into(),
            RejectReason::ZeroTransmit => "zero-transmit".into(),
            RejectReason::ZeroReceive => "zero-receive".into(),
            RejectReason::NegativeDelay(_) => "negative-delay".into(),
            RejectReason::AbsurdDelay(_) => "absurd-delay".into(),
            RejectReason::RootDistance => "root-distance".into(),
            RejectReason::Sntpc(_) => "sntpc".into(),
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
        // Fraction → ns, rounded to nearest.
        let frac_ns = (((self.0 & 0xffff_ffff) * 1_000_000_000 + (1 << 31)) >> 32) as i64;
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

/// A parsed NTP header.
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

    /// Serialises the header (used by test responders and for client requests).
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

    /// Validates a server reply to a request whose transmit timestamp was `sent_transmit` and
    /// whose version was `sent_version`. See the module docs for the order of the rules.
    pub fn validate_reply(
        &self,
        sent_transmit: NtpTimestamp,
        sent_version: u8,
    ) -> Result<(), RejectReason> {
        if self.mode != MODE_SERVER {
            return Err(RejectReason::BadMode(self.mode));
        }
        if self.stratum == 0 {
            return Err(RejectReason::KissOfDeath(KissCode::from_bytes(
                self.reference_id,
            )));
        }
        if self.leap == 3 {
            return Err(RejectReason::Unsynchronized);
        }
        if self.stratum >= 16 {
            return Err(RejectReason::BadStratum(self.stratum));
        }
        if self.version == 0 || self.version > sent_version {
            return Err(RejectReason::BadVersion(self.version));
        }
        if self.origin != sent_transmit {
            return Err(RejectReason::OriginMismatch);
        }
        if self.transmit.is_zero() {
            return Err(RejectReason::ZeroTransmit);
        }
        if self.receive.is_zero() {
            return Err(RejectReason::ZeroReceive);
        }
        if self.root_distance_ns() >= 16 * 1_000_000_000 {
            return Err(RejectReason::RootDistance);
        }
        Ok(())
    }

    /// Root delay / 2 + root dispersion, nanoseconds.
    pub fn root_distance_ns(&self) -> i64 {
        short_to_ns(self.root_delay) / 2 + short_to_ns(self.root_dispersion)
    }

    /// The server's precision, nanoseconds (2^precision s).
    pub fn precision_ns(&self) -> i64 {
        (2f64.powi(i32::from(self.precision)) * 1e9).min(1e18) as i64
    }
}

/// Converts an NTP short-format value (16.16 seconds) to nanoseconds.
pub fn short_to_ns(v: u32) -> i64 {
    ((u64::from(v) * 1_000_000_000) >> 16) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: i64 = 1_790_000_000_123_456_789;

    fn good_reply(origin: NtpTimestamp) -> Packet {
        Packet {
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
            origin,
            receive: NtpTimestamp::from_unix_ns(T + 1_000),
            transmit: NtpTimestamp::from_unix_ns(T + 2_000),
        }
    }

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
        let p = good_reply(NtpTimestamp(42));
        assert_eq!(Packet::parse(&p.to_bytes()), Ok(p));
        let mut long = p.to_bytes().to_vec();
        long.extend_from_slice(&[0; 20]);
        assert_eq!(Packet::parse(&long), Ok(p));
    }

    #[test]
    fn short_packet_is_rejected() {
        assert_eq!(
            Packet::parse(&[0u8; 47]),
            Err(RejectReason::ShortPacket(47))
        );
        assert_eq!(Packet::parse(&[]), Err(RejectReason::ShortPacket(0)));
    }

    #[test]
    fn a_good_reply_validates() {
        let origin = NtpTimestamp::from_unix_ns(T);
        assert_eq!(good_reply(origin).validate_reply(origin, 4), Ok(()));
    }

    #[test]
    fn each_bad_field_has_its_reason() {
        let origin = NtpTimestamp::from_unix_ns(T);
        let check = |f: &dyn Fn(&mut Packet), want: RejectReason| {
            let mut p = good_reply(origin);
            f(&mut p);
            assert_eq!(p.validate_reply(origin, 4), Err(want.clone()), "{want}");
        };
        check(&|p| p.mode = 3, RejectReason::BadMode(3));
        check(
            &|p| {
                p.stratum = 0;
                p.reference_id = *b"RATE";
            },
            RejectReason::KissOfDeath(KissCode::Rate),
        );
        check(
            &|p| {
                p.stratum = 0;
                p.reference_id = *b"DENY";
            },
            RejectReason::KissOfDeath(KissCode::Deny),
        );
        check(
            &|p| {
                p.stratum = 0;
                p.reference_id = *b"RSTR";
            },
            RejectReason::KissOfDeath(KissCode::Rstr),
        );
        check(
            &|p| {
                p.stratum = 0;
                p.reference_id = *b"XY\x01Z";
            },
            RejectReason::KissOfDeath(KissCode::Other("XY\\x01Z".into())),
        );
        check(&|p| p.leap = 3, RejectReason::Unsynchronized);
        check(&|p| p.stratum = 16, RejectReason::BadStratum(16));
        check(&|p| p.version = 0, RejectReason::BadVersion(0));
        check(&|p| p.version = 5, RejectReason::BadVersion(5));
        check(
            &|p| p.origin = NtpTimestamp(origin.0 + 1),
            RejectReason::OriginMismatch,
        );
        check(
            &|p| p.transmit = NtpTimestamp(0),
            RejectReason::ZeroTransmit,
        );
        check(&|p| p.receive = NtpTimestamp(0), RejectReason::ZeroReceive);
        check(
            &|p| p.root_dispersion = 16 << 16,
            RejectReason::RootDistance,
        );
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
    fn short_format_converts() {
        assert_eq!(short_to_ns(1 << 16), 1_000_000_000);
        assert_eq!(short_to_ns(1 << 15), 500_000_000);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let origin = NtpTimestamp(7);
            if let Ok(p) = Packet::parse(&bytes) {
                let _ = p.validate_reply(origin, 4);
                prop_assert_eq!(&p.to_bytes()[..], &bytes[..PACKET_LEN]);
            } else {
                prop_assert!(bytes.len() < PACKET_LEN);
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
