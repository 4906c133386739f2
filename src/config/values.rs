//! The accepted range or syntax of values a user gives by flag or config key, checked the same way
//! in both places: the clock simulation's bounds ([`SKEW_MS`], [`DRIFT_MS_PER_S`],
//! [`RANDOM_VARIATION_MS`]) and the `host[:port]` form of an NTP server ([`check_ntp_server`]).
//!
//! Every check is pure and returns the reason as one line, without the flag, key or value (the
//! caller adds them as the user wrote them).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A closed range of finite numbers with its unit, for one simulation parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// Smallest accepted value.
    pub min: f64,
    /// Largest accepted value.
    pub max: f64,
    /// The unit, as printed after a value.
    pub unit: &'static str,
    /// Why this range, as printed in the error.
    pub why: &'static str,
}

/// Milliseconds in one day.
const DAY_MS: f64 = 86_400_000.0;

/// `--simulate-skew` / `simulation.skew_ms`: within ±1 day. Any real clock error is far smaller;
/// beyond it the simulated time would only test the i64-nanosecond limits of the envelope.
pub const SKEW_MS: Bound = Bound {
    min: -DAY_MS,
    max: DAY_MS,
    unit: "ms",
    why: "one day",
};

/// `--simulate-drift` / `simulation.drift_ms_per_s`: within ±500 ms/s (±500 000 ppm), so the
/// simulated clock always advances at least half as fast as real time and never stops or runs
/// backwards (the same limit as the fastest slew). Real oscillators drift by well under 1 ms/s.
pub const DRIFT_MS_PER_S: Bound = Bound {
    min: -500.0,
    max: 500.0,
    unit: "ms/s",
    why: "±500000 ppm: the simulated clock must keep running forwards",
};

/// `--random-variation` / `simulation.random_variation_ms`: from 0 (it is the half-width of a
/// ± range) up to 1 day, like the skew.
pub const RANDOM_VARIATION_MS: Bound = Bound {
    min: 0.0,
    max: DAY_MS,
    unit: "ms",
    why: "a ± half-width, at most one day",
};

impl Bound {
    /// `v` when it is finite and within the range; otherwise the reason.
    pub fn check(&self, v: f64) -> Result<f64, String> {
        if v.is_finite() && v >= self.min && v <= self.max {
            Ok(v)
        } else {
            // Huge values in scientific notation, not 300 digits.
            let v = if v.abs() < 1e15 {
                format!("{v}")
            } else {
                format!("{v:e}")
            };
            Err(format!(
                "{v} is outside {}..={} {} ({})",
                self.min, self.max, self.unit, self.why
            ))
        }
    }

    /// Parses a command-line number and [`check`](Self::check)s it (a clap `value_parser`).
    pub fn parse(&self, s: &str) -> Result<f64, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a number"))?;
        self.check(v)
    }
}

/// Checks the syntax of an NTP server, `host`, `host:port`, an IPv4 or IPv6 literal, or
/// `[IPv6]:port` (the default port is 123). The port must be 1..=65535; a dotted-decimal host
/// must be an IPv4 address; any other host must be a DNS name (labels of 1 to 63 letters, digits,
/// `-` or `_`, 253 bytes in all). Whether the server exists or answers is not checked here.
pub fn check_ntp_server(s: &str) -> Result<(), String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty server address".into());
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return check_port(&sa.port().to_string());
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let bad = || format!("'{s}' is not a bracketed IPv6 address");
        let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
        inner.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        return match after.strip_prefix(':') {
            Some(p) => check_port(p),
            None if after.is_empty() => Ok(()), // `[::1]`
            None => Err(bad()),
        };
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if let Some(p) = port {
        check_port(p)?;
    }
    check_host(host)
}

fn check_port(p: &str) -> Result<(), String> {
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(()),
        Ok(n) => Err(format!("port {n} is not in 1..=65535")),
        Err(_) => Err(format!("port '{p}' is not a number")),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("no host name".into());
    }
    let labels: Vec<&str> = host.strip_suffix('.').unwrap_or(host).split('.').collect();
    if labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("'{host}' is not an IPv4 address")),
        };
    }
    if host.len() > 253 {
        return Err(format!(
            "host name of {} bytes is longer than 253",
            host.len()
        ));
    }
    for l in labels {
        let ok = (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
            && !l.ends_with('-');
        if !ok {
            return Err(format!("'{host}' is not a valid host name"));
        }
    }
    Ok(())
}

/// [`check_ntp_server`] as a clap `value_parser`: the trimmed address, or the reason.
pub fn parse_ntp_server(s: &str) -> Result<String, String> {
    check_ntp_server(s).map(|()| s.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_bounds_accept_their_range_and_reject_beyond_it_and_non_numbers() {
        for (b, inside, outside) in [
            (
                SKEW_MS,
                [-DAY_MS, 0.0, DAY_MS],
                [-DAY_MS - 1.0, DAY_MS + 0.5, 1e308],
            ),
            (DRIFT_MS_PER_S, [-500.0, 0.1, 500.0], [-500.5, 501.0, -1e9]),
            (
                RANDOM_VARIATION_MS,
                [0.0, 5.0, DAY_MS],
                [-0.001, DAY_MS * 2.0, 1e300],
            ),
        ] {
            for v in inside {
                assert_eq!(b.check(v), Ok(v));
                assert_eq!(b.parse(&v.to_string()), Ok(v));
            }
            for v in outside
                .into_iter()
                .chain([f64::NAN, f64::INFINITY, f64::NEG_INFINITY])
            {
                let e = b.check(v).unwrap_err();
                assert!(e.contains("is outside") && e.contains(b.unit), "{e}");
            }
            for s in ["nan", "inf", "-inf", "1e999"] {
                assert!(b.parse(s).is_err(), "{s}");
            }
            assert_eq!(b.parse("ten").unwrap_err(), "'ten' is not a number");
        }
        assert_eq!(
            SKEW_MS.check(1e308).unwrap_err(),
            "1e308 is outside -86400000..=86400000 ms (one day)"
        );
    }

    #[test]
    fn well_formed_ntp_servers_pass() {
        for s in [
            "pool.ntp.org",
            "time.google.com:123",
            "127.0.0.1",
            "127.0.0.1:12300",
            "::1",
            "[::1]",
            "[::1]:123",
            "ntp_1.example.",
            "localhost:65535",
            " chrony:1 ",
        ] {
            assert_eq!(check_ntp_server(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn malformed_ntp_servers_are_refused_with_the_reason() {
        for (s, reason) in [
            ("999.1.1.1:99999", "port 99999 is not in 1..=65535"),
            ("999.1.1.1", "'999.1.1.1' is not an IPv4 address"),
            ("127.0.0.1:0", "port 0 is not in 1..=65535"),
            ("host:", "port '' is not a number"),
            ("host:ntp", "port 'ntp' is not a number"),
            (":123", "no host name"),
            ("", "empty server address"),
            ("bad host", "'bad host' is not a valid host name"),
            ("a..b", "'a..b' is not a valid host name"),
            ("-a.example", "'-a.example' is not a valid host name"),
            ("[::1", "'[::1' is not a bracketed IPv6 address"),
            ("[::1]x", "'[::1]x' is not a bracketed IPv6 address"),
            ("[::1]:99999", "port 99999 is not in 1..=65535"),
            ("[nope]:123", "'[nope]:123' is not a bracketed IPv6 address"),
        ] {
            let e = check_ntp_server(s).expect_err(s);
            assert!(e.ends_with(reason), "{s}: {e}");
        }
        assert_eq!(
            check_ntp_server(&format!("{}.com", "a".repeat(64))).unwrap_err(),
            format!("'{0}.com' is not a valid host name", "a".repeat(64))
        );
    }
}
