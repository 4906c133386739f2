//! Multi-server synchronisation: the pure [`SyncEngine`] (per-server state and filters,
//! selection, discipline, drift correction, status) and the background task that drives it
//! ([`spawn`]).
//!
//! A *round* polls every usable server (a burst of [`SyncOptions::burst`] exchanges at start,
//! [`SyncOptions::samples_per_poll`] afterwards), feeds each exchange to the engine, then
//! selects and combines and corrects the clock once. Rules:
//!
//! * KoD RATE: the server is skipped for 2, 4, 8 … rounds (capped by `max_backoff`).
//!   KoD DENY / RSTR: the server is disabled for good.
//! * Timeouts and other failures: the server is skipped for 0, 1, 3, 7 … rounds.
//! * A round where no server gave a sample keeps the last correction, warns, and the next round
//!   comes after `retry_initial · 2^(k−1)` (capped by `max_backoff`), trying every server that is
//!   not disabled.
//! * A round whose servers do not have a majority clique (Marzullo) changes nothing.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::client::{duration_ns, exchange, resolve, ExchangeOptions, ExchangeResult};
use super::discipline::{Action, DriftEstimator, Thresholds};
use super::filter::ClockFilter;
use super::packet::{KissCode, RejectReason};
use super::select::{combine, marzullo, Candidate};
use crate::clock::PhysicalClock;
use crate::time::UnixNanos;

/// Options of the sync task (the CLI maps `TimeSyncConfig` onto these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncOptions {
    /// Servers as `host[:port]` (port 123 by default).
    pub servers: Vec<String>,
    /// Time between rounds.
    pub interval: Duration,
    /// Estimate the frequency error and apply it between syncs.
    pub drift_correction: bool,
    /// Slew / step / ignore thresholds.
    pub thresholds: Thresholds,
    /// Exchanges per server in the first round (like chrony's iburst).
    pub burst: usize,
    /// Spacing of exchanges within a round.
    pub burst_spacing: Duration,
    /// Exchanges per server in later rounds.
    pub samples_per_poll: usize,
    /// Per-exchange limits.
    pub exchange: ExchangeOptions,
    /// Samples kept per server (the clock filter).
    pub filter_len: usize,
    /// Samples older than this are not used.
    pub max_sample_age: Duration,
    /// Lower bound of the half-width of a server's correctness interval in Marzullo's algorithm,
    /// so that honest servers whose tiny loopback intervals differ by microseconds still
    /// intersect.
    pub min_interval_half_width: Duration,
    /// Maximum slew rate of the clock, ppm.
    pub max_slew_ppm: f64,
    /// Largest frequency correction applied, ppm.
    pub max_frequency_ppm: f64,
    /// Points kept by the drift regression.
    pub drift_window: usize,
    /// Points needed before a drift estimate is used.
    pub drift_min_points: usize,
    /// Time the drift points must span before the estimate is used.
    pub drift_min_span: Duration,
    /// First retry delay after a round where every server failed.
    pub retry_initial: Duration,
    /// Cap of every backoff.
    pub max_backoff: Duration,
    /// Events kept in the history ring.
    pub history: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            servers: vec![
                "pool.ntp.org".into(),
                "time.google.com".into(),
                "time.cloudflare.com".into(),
            ],
            interval: Duration::from_secs(60),
            drift_correction: true,
            thresholds: Thresholds::default(),
            burst: 4,
            burst_spacing: Duration::from_millis(200),
            samples_per_poll: 1,
            exchange: ExchangeOptions::default(),
            filter_len: 8,
            max_sample_age: Duration::from_secs(1024),
            min_interval_half_width: Duration::from_millis(1),
            max_slew_ppm: crate::clock::physical::DEFAULT_MAX_SLEW_PPM,
            max_frequency_ppm: 10_000.0,
            drift_window: 32,
            drift_min_points: 4,
            drift_min_span: Duration::from_secs(2),
            retry_initial: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            history: 256,
        }
    }
}

/// Whether a server is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerState {
    /// Polled every round.
    Active,
    /// Skipped for some rounds (KoD RATE or repeated failures).
    Backoff,
    /// Never polled again (KoD DENY / RSTR).
    Disabled,
}

/// One server's state, as reported in [`SyncStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// As configured (`host[:port]`).
    pub name: String,
    /// Resolved address in use, if any.
    pub addr: Option<String>,
    /// Polling state.
    pub state: ServerState,
    /// Rounds still skipped.
    pub skip_rounds: u32,
    /// Accepted samples.
    pub accepted: u64,
    /// Rejections by reason label.
    pub rejected: BTreeMap<String, u64>,
    /// The latest rejection.
    pub last_reject: Option<RejectReason>,
    /// θ of the latest accepted sample, ns.
    pub last_offset_ns: Option<i64>,
    /// δ of the latest accepted sample, ns.
    pub last_delay_ns: Option<i64>,
    /// Outcome of the latest selection: `Some(true)` truechimer, `Some(false)` falseticker.
    pub truechimer: Option<bool>,
}

/// Status of the synchronisation, readable any time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// θ combined in the latest round that corrected the clock, ns.
    pub last_offset_ns: Option<i64>,
    /// δ of the server in use at that round, ns.
    pub last_delay_ns: Option<i64>,
    /// Estimated frequency error of the uncorrected clock, ppm (positive = fast).
    pub drift_ppm: Option<f64>,
    /// Frequency correction applied to the clock, ppm.
    pub frequency_correction_ppm: f64,
    /// The server whose sample had the smallest distance among the survivors.
    pub server_in_use: Option<String>,
    /// The action of the latest round that chose one.
    pub last_action: Option<Action>,
    /// Accepted samples, all servers.
    pub samples_accepted: u64,
    /// Rejected exchanges by reason label, all servers.
    pub rejected: BTreeMap<String, u64>,
    /// Rounds completed, and how many corrected the clock.
    pub rounds: u64,
    /// Rounds that corrected the clock.
    pub good_rounds: u64,
    /// Counts of slews, steps and ignored offsets.
    pub slews: u64,
    /// Steps applied.
    pub steps: u64,
    /// Offsets ignored as too large.
    pub ignored: u64,
    /// Consecutive rounds in which every server failed.
    pub consecutive_failed_rounds: u32,
    /// Seconds since the latest round that corrected the clock (by the clock's base time).
    pub since_last_good_sync_s: Option<f64>,
    /// Per-server state.
    pub servers: Vec<ServerStatus>,
}

/// One exchange as the demo prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeRecord {
    /// Configured server name.
    pub server: String,
    /// Address used.
    pub addr: Option<String>,
    /// T1 (local), ns.
    pub t1_ns: Option<UnixNanos>,
    /// T2 (server), ns.
    pub t2_ns: Option<UnixNanos>,
    /// T3 (server), ns.
    pub t3_ns: Option<UnixNanos>,
    /// T4 (local), ns.
    pub t4_ns: Option<UnixNanos>,
    /// θ, ns (when T1..T4 are all known).
    pub offset_ns: Option<i64>,
    /// δ, ns (when T1..T4 are all known).
    pub delay_ns: Option<i64>,
    /// Reply stratum.
    pub stratum: Option<u8>,
    /// Why the exchange was rejected, if it was.
    pub rejected: Option<RejectReason>,
}

/// The decision of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Combined θ carried to the end of the round, ns.
    pub offset_ns: Option<i64>,
    /// What was done with it (`None`: nothing to do, see `note`).
    pub action: Option<Action>,
    /// Servers that survived selection.
    pub survivors: Vec<String>,
    /// Servers dropped as falsetickers.
    pub falsetickers: Vec<String>,
    /// The server in use.
    pub server_in_use: Option<String>,
    /// Drift estimate after this round, ppm.
    pub drift_ppm: Option<f64>,
    /// Frequency correction after this round, ppm.
    pub frequency_ppm: f64,
    /// Why nothing was done, when so.
    pub note: Option<String>,
}

/// What the sync task reports, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum SyncEvent {
    /// One exchange finished.
    Exchange(ExchangeRecord),
    /// One round finished.
    Round(RoundRecord),
}

#[derive(Debug)]
struct Server {
    name: String,
    addr: Option<SocketAddr>,
    filter: ClockFilter,
    disabled: bool,
    skip_rounds: u32,
    rate_kisses: u32,
    failures: u32,
    accepted: u64,
    rejected: BTreeMap<String, u64>,
    last_reject: Option<RejectReason>,
    last_offset_ns: Option<i64>,
    last_delay_ns: Option<i64>,
    truechimer: Option<bool>,
    fresh: bool,
    /// This server's current failure streak has been warned about (cleared by a good sample).
    outage_warned: bool,
}

/// The pure synchronisation state machine. Feed it exchanges with
/// [`on_exchange`](Self::on_exchange), close each round with [`finish_round`](Self::finish_round);
/// it corrects the given clock and keeps the status. No I/O, no hidden time source.
#[derive(Debug)]
pub struct SyncEngine {
    opts: SyncOptions,
    servers: Vec<Server>,
    drift: DriftEstimator,
    last_drift_point_ns: Option<UnixNanos>,
    status: SyncStatus,
    last_good_sync_system_ns: Option<UnixNanos>,
    history: VecDeque<SyncEvent>,
    first_round_done: bool,
}

impl SyncEngine {
    /// An engine for `opts.servers` (duplicates are polled once).
    pub fn new(opts: SyncOptions) -> Self {
        let mut names: Vec<String> = Vec::new();
        for s in &opts.servers {
            let s = s.trim().to_string();
            if !s.is_empty() && !names.contains(&s) {
                names.push(s);
            }
        }
        let servers = names
            .into_iter()
            .map(|name| Server {
                name,
                addr: None,
                filter: ClockFilter::new(opts.filter_len),
                disabled: false,
                skip_rounds: 0,
                rate_kisses: 0,
                failures: 0,
                accepted: 0,
                rejected: BTreeMap::new(),
                last_reject: None,
                last_offset_ns: None,
                last_delay_ns: None,
                truechimer: None,
                fresh: false,
                outage_warned: false,
            })
            .collect();
        let drift = DriftEstimator::new(
            opts.drift_window,
            opts.drift_min_points,
            duration_ns(opts.drift_min_span),
        );
        SyncEngine {
            opts,
            servers,
            drift,
            last_drift_point_ns: None,
            status: SyncStatus {
                last_offset_ns: None,
                last_delay_ns: None,
                drift_ppm: None,
                frequency_correction_ppm: 0.0,
                server_in_use: None,
                last_action: None,
                samples_accepted: 0,
                rejected: BTreeMap::new(),
                rounds: 0,
                good_rounds: 0,
                slews: 0,
                steps: 0,
                ignored: 0,
                consecutive_failed_rounds: 0,
                since_last_good_sync_s: None,
                servers: Vec::new(),
            },
            last_good_sync_system_ns: None,
            history: VecDeque::new(),
            first_round_done: false,
        }
    }

    /// The options in use.
    pub fn options(&self) -> &SyncOptions {
        &self.opts
    }

    /// Configured server names, by index.
    pub fn server_names(&self) -> Vec<String> {
        self.servers.iter().map(|s| s.name.clone()).collect()
    }

    /// Records the resolved address of server `idx`.
    pub fn set_addr(&mut self, idx: usize, addr: SocketAddr) {
        if let Some(s) = self.servers.get_mut(idx) {
            s.addr = Some(addr);
        }
    }

    /// The resolved address of server `idx`, if any.
    pub fn addr(&self, idx: usize) -> Option<SocketAddr> {
        self.servers.get(idx).and_then(|s| s.addr)
    }

    /// Starts a round: the indices of the servers to poll and how many exchanges each.
    /// Servers in backoff have one skipped round consumed; after a round where every server
    /// failed, every server that is neither disabled nor rate-limited (KoD RATE) is polled.
    pub fn plan_round(&mut self) -> (Vec<usize>, usize) {
        let retry_all = self.status.consecutive_failed_rounds > 0;
        let mut out = Vec::new();
        for (i, s) in self.servers.iter_mut().enumerate() {
            s.fresh = false;
            if s.disabled {
                continue;
            }
            let rate_limited = matches!(
                s.last_reject,
                Some(RejectReason::KissOfDeath(KissCode::Rate))
            );
            if s.skip_rounds > 0 && (!retry_all || rate_limited) {
                s.skip_rounds -= 1;
                continue;
            }
            out.push(i);
        }
        let n = if self.first_round_done {
            self.opts.samples_per_poll
        } else {
            self.opts.burst
        };
        (out, n.max(1))
    }

    /// Records one exchange with server `idx`: counts and logs a rejection (with its effect on
    /// the server: KoD RATE backs off, DENY/RSTR disables), or stores the sample in the
    /// server's clock filter.
    pub fn on_exchange(&mut self, idx: usize, result: &ExchangeResult) -> ExchangeRecord {
        let max_skip = self.max_skip_rounds();
        let record = ExchangeRecord {
            server: self
                .servers
                .get(idx)
                .map(|s| s.name.clone())
                .unwrap_or_default(),
            addr: Some(result.addr.to_string()),
            t1_ns: result.t1,
            t2_ns: result.t2,
            t3_ns: result.t3,
            t4_ns: result.t4,
            offset_ns: None,
            delay_ns: None,
            stratum: result.stratum,
            rejected: result.outcome.as_ref().err().cloned(),
        };
        let record = match (result.t1, result.t2, result.t3, result.t4) {
            (Some(t1), Some(t2), Some(t3), Some(t4)) => {
                let e = super::sample::Exchange { t1, t2, t3, t4 };
                ExchangeRecord {
                    offset_ns: Some(e.offset_ns()),
                    delay_ns: Some(e.delay_ns()),
                    ..record
                }
            }
            _ => record,
        };
        let Some(server) = self.servers.get_mut(idx) else {
            return record;
        };
        match &result.outcome {
            Ok(sample) => {
                server.filter.push(*sample);
                server.accepted += 1;
                server.failures = 0;
                server.rate_kisses = 0;
                server.last_reject = None;
                server.fresh = true;
                server.outage_warned = false;
                server.last_offset_ns = Some(sample.offset_ns);
                server.last_delay_ns = Some(sample.delay_ns);
                self.status.samples_accepted += 1;
                debug!(server = %server.name, offset_ns = sample.offset_ns, delay_ns = sample.delay_ns, "ntp sample accepted");
            }
            Err(reason) => {
                let label = reason.label();
                *server.rejected.entry(label.clone()).or_default() += 1;
                *self.status.rejected.entry(label.clone()).or_default() += 1;
                server.last_reject = Some(reason.clone());
                match reason {
                    RejectReason::KissOfDeath(code) if code.is_fatal() => {
                        server.disabled = true;
                        server.filter.clear();
                        warn!(server = %server.name, code = code.as_str(), "ntp kiss-o'-death: server disabled");
                    }
                    RejectReason::KissOfDeath(KissCode::Rate) => {
                        server.rate_kisses = server.rate_kisses.saturating_add(1);
                        server.skip_rounds = 2u32
                            .saturating_pow(server.rate_kisses.min(31))
                            .min(max_skip);
                        warn!(server = %server.name, skip_rounds = server.skip_rounds, "ntp kiss-o'-death RATE: backing off");
                    }
                    _ => {
                        server.failures = server.failures.saturating_add(1);
                        let skip = 2u32.saturating_pow((server.failures - 1).min(31)) - 1;
                        server.skip_rounds = server.skip_rounds.max(skip.min(max_skip));
                        // Counted in the status; the round's outcome decides what is worth a
                        // warning (see `finish_round`), so an outage warns once, not per exchange.
                        debug!(server = %server.name, reason = %reason, label = %label, failures = server.failures, "ntp exchange rejected");
                    }
                }
            }
        }
        self.push_history(SyncEvent::Exchange(record.clone()));
        record
    }

    /// "server: last rejection" for every enabled server, for the one warning of an outage.
    fn failure_summary(&self) -> String {
        let parts: Vec<String> = self
            .servers
            .iter()
            .filter(|s| !s.disabled)
            .map(|s| match &s.last_reject {
                Some(r) => format!("{}: {r}", s.name),
                None => format!("{}: no reply", s.name),
            })
            .collect();
        if parts.is_empty() {
            "every server is disabled".into()
        } else {
            parts.join(", ")
        }
    }

    /// Records that server `idx` could not be resolved (counted like a failed exchange).
    pub fn on_resolve_failure(&mut self, idx: usize) -> ExchangeRecord {
        let addr: SocketAddr = ([0, 0, 0, 0], 0).into();
        let r = ExchangeResult {
            addr,
            t1: None,
            t2: None,
            t3: None,
            t4: None,
            stratum: None,
            outcome: Err(RejectReason::Resolve),
        };
        let mut rec = self.on_exchange(idx, &r);
        rec.addr = None;
        if let Some(SyncEvent::Exchange(last)) = self.history.back_mut() {
            last.addr = None;
        }
        rec
    }

    fn max_skip_rounds(&self) -> u32 {
        let interval = self.opts.interval.as_secs_f64().max(1e-3);
        (self.opts.max_backoff.as_secs_f64() / interval).clamp(1.0, 1e6) as u32
    }

    fn push_history(&mut self, e: SyncEvent) {
        if self.opts.history == 0 {
            return;
        }
        if self.history.len() >= self.opts.history {
            self.history.pop_front();
        }
        self.history.push_back(e);
    }

    /// Closes a round: selects among the servers' filtered samples, combines the survivors,
    /// and slews, steps or ignores on `clock`; updates the drift estimate and, when enabled,
    /// the clock's frequency correction.
    pub fn finish_round(&mut self, clock: &PhysicalClock) -> RoundRecord {
        self.first_round_done = true;
        self.status.rounds += 1;
        let now = clock.read_raw();
        let mut record = RoundRecord {
            offset_ns: None,
            action: None,
            survivors: Vec::new(),
            falsetickers: Vec::new(),
            server_in_use: None,
            drift_ppm: self.drift.drift_ppm(),
            frequency_ppm: clock.frequency_ppm(),
            note: None,
        };
        if !self.servers.iter().any(|s| s.fresh) {
            self.status.consecutive_failed_rounds =
                self.status.consecutive_failed_rounds.saturating_add(1);
            // Once per outage: every further failed round is in the status, not the log.
            if self.status.consecutive_failed_rounds == 1 {
                let why = self.failure_summary();
                warn!(
                    "ntp: no server answered ({why}); keeping the last correction until one does"
                );
                for s in self.servers.iter_mut() {
                    s.outage_warned = true;
                }
            } else {
                debug!(
                    failed_rounds = self.status.consecutive_failed_rounds,
                    "ntp: no server answered; keeping the last correction"
                );
            }
            record.note = Some("no server answered; keeping the last correction".into());
            return self.close(record);
        }
        for s in self.servers.iter_mut() {
            if !s.disabled && !s.fresh && s.failures > 0 && !s.outage_warned {
                s.outage_warned = true;
                if let Some(reason) = &s.last_reject {
                    warn!(server = %s.name, reason = %reason, "ntp: server not answering; using the others");
                }
            }
        }
        if self.status.consecutive_failed_rounds > 0 {
            info!(
                failed_rounds = self.status.consecutive_failed_rounds,
                "ntp: a server answers again; synchronising"
            );
        }
        self.status.consecutive_failed_rounds = 0;

        let max_age = duration_ns(self.opts.max_sample_age);
        let floor = duration_ns(self.opts.min_interval_half_width);
        let mut cands = Vec::new();
        let mut filtered = Vec::new();
        for (i, s) in self.servers.iter_mut().enumerate() {
            s.truechimer = None;
            if s.disabled {
                continue;
            }
            if let Some(f) = s
                .filter
                .best(now.disciplined_ns, now.correction_ns, max_age)
            {
                cands.push(Candidate {
                    id: i,
                    offset_ns: f.offset_now_ns,
                    half_width_ns: f.distance_ns.max(floor),
                });
                filtered.push((i, f));
            }
        }
        let Some(sel) = marzullo(&cands) else {
            warn!(
                candidates = cands.len(),
                "ntp: no majority of servers agree; clock left alone"
            );
            record.note = Some("no majority of servers agree".into());
            return self.close(record);
        };
        for &i in &sel.survivors {
            if let Some(s) = self.servers.get_mut(i) {
                s.truechimer = Some(true);
            }
        }
        for &i in &sel.falsetickers {
            if let Some(s) = self.servers.get_mut(i) {
                s.truechimer = Some(false);
                warn!(server = %s.name, "ntp: falseticker dropped");
            }
        }
        record.survivors = sel
            .survivors
            .iter()
            .filter_map(|&i| self.servers.get(i))
            .map(|s| s.name.clone())
            .collect();
        record.falsetickers = sel
            .falsetickers
            .iter()
            .filter_map(|&i| self.servers.get(i))
            .map(|s| s.name.clone())
            .collect();
        let surviving: Vec<Candidate> = cands
            .iter()
            .filter(|c| sel.survivors.contains(&c.id))
            .copied()
            .collect();
        // Weighted by the true distance (not the floor) so the best server dominates.
        let weighted: Vec<Candidate> = surviving
            .iter()
            .map(|c| Candidate {
                half_width_ns: filtered
                    .iter()
                    .find(|(i, _)| *i == c.id)
                    .map_or(c.half_width_ns, |(_, f)| f.distance_ns),
                ..*c
            })
            .collect();
        let Some(offset) = combine(&weighted) else {
            record.note = Some("no survivor".into());
            return self.close(record);
        };
        let peer = filtered
            .iter()
            .filter(|(i, _)| sel.survivors.contains(i))
            .min_by_key(|(_, f)| f.distance_ns)
            .map(|(i, f)| (*i, *f));

        let action = self.opts.thresholds.decide(offset);
        record.offset_ns = Some(offset);
        record.action = Some(action);
        match action {
            Action::Slew => {
                clock.slew(offset);
                self.status.slews += 1;
                debug!(offset_ns = offset, "ntp: slewing");
            }
            Action::Step => {
                clock.step(offset);
                self.status.steps += 1;
                // A step means the raw error jumped (or this is the first sync): earlier drift
                // points would bend the regression.
                self.drift.clear();
                self.last_drift_point_ns = None;
                info!(offset_ns = offset, "ntp: stepping the clock");
            }
            Action::Ignore => {
                self.status.ignored += 1;
                warn!(
                    offset_ns = offset,
                    "ntp: offset beyond the step threshold ignored"
                );
            }
        }
        if action != Action::Ignore {
            if let Some((i, f)) = peer {
                let t = f.sample.at_ns();
                if self.last_drift_point_ns.map_or(true, |last| t > last) {
                    self.drift.add(t, f.sample.raw_error_ns());
                    self.last_drift_point_ns = Some(t);
                }
                let name = self.servers.get(i).map(|s| s.name.clone());
                record.server_in_use = name.clone();
                self.status.server_in_use = name;
                self.status.last_delay_ns = Some(f.sample.delay_ns);
            }
            let drift = self.drift.drift_ppm();
            if self.opts.drift_correction {
                if let Some(d) = drift {
                    let cap = self.opts.max_frequency_ppm.abs();
                    clock.set_frequency_ppm((-d).clamp(-cap, cap));
                }
            }
            self.status.good_rounds += 1;
            self.status.last_offset_ns = Some(offset);
            self.last_good_sync_system_ns = Some(now.system_ns);
        }
        self.status.last_action = Some(action);
        record.drift_ppm = self.drift.drift_ppm();
        record.frequency_ppm = clock.frequency_ppm();
        self.close(record)
    }

    fn close(&mut self, record: RoundRecord) -> RoundRecord {
        self.status.drift_ppm = self.drift.drift_ppm();
        self.push_history(SyncEvent::Round(record.clone()));
        record
    }

    /// Delay before the next round: the interval, or the all-servers-failed backoff.
    pub fn next_delay(&self) -> Duration {
        match self.status.consecutive_failed_rounds {
            0 => self.opts.interval,
            k => {
                let factor = 2f64.powi((k - 1).min(30) as i32);
                let d = self.opts.retry_initial.as_secs_f64() * factor;
                Duration::from_secs_f64(d.min(self.opts.max_backoff.as_secs_f64()).max(0.0))
            }
        }
    }

    /// The status now (`clock` supplies the time for `since_last_good_sync_s` and the
    /// frequency correction in effect).
    pub fn status(&self, clock: &PhysicalClock) -> SyncStatus {
        let mut st = self.status.clone();
        let now = clock.read_raw();
        st.frequency_correction_ppm = clock.frequency_ppm();
        st.since_last_good_sync_s = self
            .last_good_sync_system_ns
            .map(|t| now.system_ns.saturating_sub(t) as f64 / 1e9);
        st.servers = self
            .servers
            .iter()
            .map(|s| ServerStatus {
                name: s.name.clone(),
                addr: s.addr.map(|a| a.to_string()),
                state: if s.disabled {
                    ServerState::Disabled
                } else if s.skip_rounds > 0 {
                    ServerState::Backoff
                } else {
                    ServerState::Active
                },
                skip_rounds: s.skip_rounds,
                accepted: s.accepted,
                rejected: s.rejected.clone(),
                last_reject: s.last_reject.clone(),
                last_offset_ns: s.last_offset_ns,
                last_delay_ns: s.last_delay_ns,
                truechimer: s.truechimer,
            })
            .collect();
        st
    }

    /// The most recent events, oldest first (at most `SyncOptions::history`).
    pub fn history(&self) -> Vec<SyncEvent> {
        self.history.iter().cloned().collect()
    }
}

/// Handle to a running sync task. Dropping it stops the task.
#[derive(Debug)]
pub struct SyncHandle {
    engine: Arc<Mutex<SyncEngine>>,
    clock: Arc<PhysicalClock>,
    events: broadcast::Sender<SyncEvent>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn lock(engine: &Mutex<SyncEngine>) -> MutexGuard<'_, SyncEngine> {
    engine.lock().unwrap_or_else(|e| e.into_inner())
}

impl SyncHandle {
    /// The status now.
    pub fn status(&self) -> SyncStatus {
        lock(&self.engine).status(&self.clock)
    }

    /// The most recent exchanges and round decisions, oldest first.
    pub fn history(&self) -> Vec<SyncEvent> {
        lock(&self.engine).history()
    }

    /// Every event from now on (a lagging receiver loses the oldest, see
    /// [`broadcast`](tokio::sync::broadcast)).
    pub fn subscribe(&self) -> broadcast::Receiver<SyncEvent> {
        self.events.subscribe()
    }

    /// The clock being disciplined.
    pub fn clock(&self) -> &Arc<PhysicalClock> {
        &self.clock
    }

    /// Stops the task after its current exchange and waits for it. The clock keeps its last
    /// correction (including the frequency correction).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the background sync task on the current tokio runtime: a burst round at once, then a
/// round every `opts.interval` (or the failure backoff). The clock's maximum slew rate is set
/// from the options.
pub fn spawn(clock: Arc<PhysicalClock>, opts: SyncOptions) -> SyncHandle {
    clock.set_max_slew_ppm(opts.max_slew_ppm);
    if opts.servers.is_empty() {
        warn!("ntp: no servers configured; the clock will not be synchronised");
    }
    let (events, _) = broadcast::channel(opts.history.max(16));
    let (stop, stop_rx) = watch::channel(false);
    let engine = Arc::new(Mutex::new(SyncEngine::new(opts)));
    let task = tokio::spawn(run(clock.clone(), engine.clone(), events.clone(), stop_rx));
    SyncHandle {
        engine,
        clock,
        events,
        stop,
        task: Some(task),
    }
}

async fn run(
    clock: Arc<PhysicalClock>,
    engine: Arc<Mutex<SyncEngine>>,
    events: broadcast::Sender<SyncEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let delay = {
            let round = one_round(&clock, &engine, &events);
            tokio::select! {
                _ = round => {}
                _ = stop.changed() => return,
            }
            lock(&engine).next_delay()
        };
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn one_round(
    clock: &Arc<PhysicalClock>,
    engine: &Arc<Mutex<SyncEngine>>,
    events: &broadcast::Sender<SyncEvent>,
) {
    let (plan, per_server, names, spacing, mut ex_opts) = {
        let mut e = lock(engine);
        let (plan, n) = e.plan_round();
        (
            plan,
            n,
            e.server_names(),
            e.options().burst_spacing,
            e.options().exchange,
        )
    };
    // Simulated random variation perturbs T1 and T4 independently, so δ can be negative by up
    // to twice its amplitude without anything being wrong with the reply.
    if let Some(sim) = clock.simulation() {
        let variation =
            Duration::from_secs_f64((2.0 * sim.random_variation_ms / 1e3).clamp(0.0, 1.0));
        ex_opts.negative_delay_tolerance = ex_opts.negative_delay_tolerance.max(variation);
    }
    let mut set = tokio::task::JoinSet::new();
    for idx in plan {
        let name = names.get(idx).cloned().unwrap_or_default();
        let known = lock(engine).addr(idx);
        let clock = clock.clone();
        let engine = engine.clone();
        let events = events.clone();
        set.spawn(async move {
            let addr = match known {
                Some(a) => a,
                None => match resolve(&name).await.ok().and_then(|v| v.first().copied()) {
                    Some(a) => {
                        lock(&engine).set_addr(idx, a);
                        a
                    }
                    None => {
                        let rec = lock(&engine).on_resolve_failure(idx);
                        let _ = events.send(SyncEvent::Exchange(rec));
                        return;
                    }
                },
            };
            for k in 0..per_server {
                if k > 0 {
                    tokio::time::sleep(spacing).await;
                }
                let result = exchange(&clock, addr, &ex_opts).await;
                let stop_burst = match &result.outcome {
                    Ok(_) => false,
                    // An unreachable or refusing server is not hammered within a burst.
                    Err(
                        RejectReason::KissOfDeath(_)
                        | RejectReason::Timeout
                        | RejectReason::Network,
                    ) => true,
                    Err(_) => false,
                };
                let rec = lock(&engine).on_exchange(idx, &result);
                let _ = events.send(SyncEvent::Exchange(rec));
                if stop_burst {
                    break;
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let rec = lock(engine).finish_round(clock);
    let _ = events.send(SyncEvent::Round(rec));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::physical::Simulation;
    use crate::ntp::sample::{Exchange, Sample};
    use crate::time::{ManualTime, TimeSource};

    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const T0: i64 = 1_790_000_000 * S;

    /// A simulated world: `truth` is the reference time (what servers serve), the node's clock
    /// runs on it with a simulation. Exchanges are synthesised with a symmetric `one_way` delay
    /// and a server error `server_err`.
    struct World {
        truth: Arc<ManualTime>,
        clock: Arc<PhysicalClock>,
    }

    impl World {
        fn new(sim: Simulation) -> Self {
            let truth = Arc::new(ManualTime::new(T0));
            let src: Arc<dyn TimeSource> = truth.clone();
            let clock = Arc::new(PhysicalClock::with_simulation(src, sim));
            World { truth, clock }
        }

        fn exchange(&self, server_err: i64, one_way: i64) -> ExchangeResult {
            let r1 = self.clock.read_raw();
            self.truth.advance(one_way);
            let t2 = self.truth.now_ns() + server_err;
            let t3 = t2 + 10_000;
            self.truth.advance(one_way + 10_000);
            let r4 = self.clock.read_raw();
            let ex = Exchange {
                t1: r1.disciplined_ns,
                t2,
                t3,
                t4: r4.disciplined_ns,
            };
            let corr = (r1.correction_ns + r4.correction_ns) / 2;
            ExchangeResult {
                addr: "127.0.0.1:123".parse().unwrap(),
                t1: Some(ex.t1),
                t2: Some(t2),
                t3: Some(t3),
                t4: Some(ex.t4),
                stratum: Some(2),
                outcome: Ok(Sample::new(ex, ex.delay_ns(), 1_000, corr)),
            }
        }

        fn error_ns(&self) -> i64 {
            self.clock.read_raw().disciplined_ns - self.truth.now_ns()
        }
    }

    fn opts(servers: usize) -> SyncOptions {
        SyncOptions {
            servers: (0..servers).map(|i| format!("s{i}")).collect(),
            interval: Duration::from_secs(1),
            ..Default::default()
        }
    }

    fn rejected(reason: RejectReason) -> ExchangeResult {
        ExchangeResult {
            addr: "127.0.0.1:123".parse().unwrap(),
            t1: Some(T0),
            t2: None,
            t3: None,
            t4: None,
            stratum: Some(0),
            outcome: Err(reason),
        }
    }

    fn round(engine: &mut SyncEngine, w: &World, errs: &[i64]) -> RoundRecord {
        let (plan, n) = engine.plan_round();
        for idx in plan {
            for _ in 0..n {
                let r = w.exchange(errs[idx], 100_000);
                engine.on_exchange(idx, &r);
            }
        }
        engine.finish_round(&w.clock)
    }

    #[test]
    fn slew_step_ignore_chosen_by_offset() {
        for (skew_ms, want) in [
            (-50.0, Action::Slew),
            (-500.0, Action::Step),
            (-2_000_000.0, Action::Ignore),
        ] {
            let w = World::new(Simulation {
                skew_ms,
                ..Default::default()
            });
            let mut e = SyncEngine::new(opts(1));
            let rec = round(&mut e, &w, &[0]);
            assert_eq!(rec.action, Some(want), "skew {skew_ms} ms");
            let off = rec.offset_ns.unwrap();
            assert!(
                (off - (-skew_ms * 1e6) as i64).abs() < 10_000,
                "offset {off}"
            );
        }
    }

    #[test]
    fn ignored_offset_leaves_the_clock_alone() {
        let w = World::new(Simulation {
            skew_ms: 2_000_000.0,
            ..Default::default()
        });
        let mut e = SyncEngine::new(opts(1));
        let before = w.clock.correction();
        round(&mut e, &w, &[0]);
        assert_eq!(w.clock.correction().total_ns, before.total_ns);
        assert_eq!(e.status(&w.clock).ignored, 1);
    }

    #[test]
    fn step_then_slew_converges_and_clock_never_goes_back() {
        let w = World::new(Simulation {
            skew_ms: 250.0,
            ..Default::default()
        });
        let mut e = SyncEngine::new(opts(1));
        let mut last = w.clock.now_ns();
        let rec = round(&mut e, &w, &[0]);
        assert_eq!(rec.action, Some(Action::Step));
        for _ in 0..20 {
            w.truth.advance(S);
            let now = w.clock.now_ns();
            assert!(now >= last);
            last = now;
            round(&mut e, &w, &[0]);
        }
        w.truth.advance(S);
        assert!(w.error_ns().abs() < 20_000, "error {}", w.error_ns());
        assert_eq!(e.status(&w.clock).steps, 1);
    }

    #[test]
    fn drift_is_estimated_and_corrected_between_syncs() {
        let w = World::new(Simulation {
            drift_ms_per_s: 0.1,
            ..Default::default()
        });
        let mut e = SyncEngine::new(opts(1));
        for _ in 0..10 {
            round(&mut e, &w, &[0]);
            w.truth.advance(S);
        }
        let st = e.status(&w.clock);
        let d = st.drift_ppm.unwrap();
        assert!((d - 100.0).abs() < 1.0, "drift {d}");
        assert!((st.frequency_correction_ppm + 100.0).abs() < 1.0);
        // No sync for 10 s: still within 1 ms (in fact within a few µs here).
        round(&mut e, &w, &[0]);
        w.truth.advance(2 * S); // let the last slew finish
        let e0 = w.error_ns();
        w.truth.advance(10 * S);
        assert!(
            (w.error_ns() - e0).abs() < 20_000,
            "drifted {}",
            w.error_ns() - e0
        );
    }

    #[test]
    fn without_drift_correction_the_error_grows_at_the_drift_rate() {
        let w = World::new(Simulation {
            drift_ms_per_s: 0.1,
            ..Default::default()
        });
        let mut e = SyncEngine::new(SyncOptions {
            drift_correction: false,
            ..opts(1)
        });
        for _ in 0..10 {
            round(&mut e, &w, &[0]);
            w.truth.advance(S);
        }
        let st = e.status(&w.clock);
        assert_eq!(st.frequency_correction_ppm, 0.0);
        assert!(
            (st.drift_ppm.unwrap() - 100.0).abs() < 1.0,
            "still estimated"
        );
        round(&mut e, &w, &[0]);
        w.truth.advance(2 * S);
        let e0 = w.error_ns();
        w.truth.advance(10 * S);
        assert!(
            (w.error_ns() - e0 - MS).abs() < 10_000,
            "grew {}",
            w.error_ns() - e0
        );
    }

    #[test]
    fn falseticker_is_dropped() {
        let w = World::new(Simulation {
            skew_ms: 20.0,
            ..Default::default()
        });
        let mut e = SyncEngine::new(opts(3));
        let rec = round(&mut e, &w, &[0, 5_000 * MS, 30_000]);
        assert_eq!(rec.falsetickers, vec!["s1".to_string()]);
        assert_eq!(rec.survivors, vec!["s0".to_string(), "s2".to_string()]);
        assert_eq!(rec.action, Some(Action::Slew));
        w.truth.advance(2 * S);
        assert!(w.error_ns().abs() < 100_000, "error {}", w.error_ns());
        let st = e.status(&w.clock);
        assert_eq!(st.servers[1].truechimer, Some(false));
    }

    #[test]
    fn kod_rate_backs_off_and_deny_disables() {
        let w = World::new(Simulation::default());
        let mut e = SyncEngine::new(opts(3));
        let (plan, _) = e.plan_round();
        assert_eq!(plan, vec![0, 1, 2]);
        e.on_exchange(0, &rejected(RejectReason::KissOfDeath(KissCode::Rate)));
        e.on_exchange(1, &rejected(RejectReason::KissOfDeath(KissCode::Deny)));
        e.on_exchange(2, &w.exchange(0, 1_000));
        e.finish_round(&w.clock);
        let st = e.status(&w.clock);
        assert_eq!(st.servers[0].state, ServerState::Backoff);
        assert_eq!(st.servers[1].state, ServerState::Disabled);
        assert_eq!(st.rejected.get("kod-rate"), Some(&1));
        assert_eq!(st.rejected.get("kod-deny"), Some(&1));
        // RATE: skipped for two rounds; DENY: never again.
        assert_eq!(e.plan_round().0, vec![2]);
        assert_eq!(e.plan_round().0, vec![2]);
        assert_eq!(e.plan_round().0, vec![0, 2]);
    }

    #[test]
    fn rate_backoff_holds_even_when_every_other_server_fails() {
        let w = World::new(Simulation::default());
        let mut e = SyncEngine::new(opts(2));
        e.plan_round();
        e.on_exchange(0, &rejected(RejectReason::KissOfDeath(KissCode::Rate)));
        e.on_exchange(1, &rejected(RejectReason::Timeout));
        e.finish_round(&w.clock);
        // Everything failed: the timed-out server is retried at once, the rate-limited one not.
        for _ in 0..2 {
            assert_eq!(e.plan_round().0, vec![1]);
            e.on_exchange(1, &rejected(RejectReason::Timeout));
            e.finish_round(&w.clock);
        }
        // Its two rounds of backoff are over.
        assert_eq!(e.plan_round().0, vec![0, 1]);
    }

    #[test]
    fn all_servers_failing_keeps_correction_and_backs_off_exponentially() {
        let w = World::new(Simulation {
            skew_ms: 30.0,
            ..Default::default()
        });
        let mut e = SyncEngine::new(SyncOptions {
            max_backoff: Duration::from_secs(5),
            ..opts(2)
        });
        round(&mut e, &w, &[0, 0]);
        let corr = w.clock.correction().total_ns;
        assert_eq!(e.next_delay(), Duration::from_secs(1));
        let mut delays = Vec::new();
        for _ in 0..5 {
            let (plan, _) = e.plan_round();
            assert_eq!(plan, vec![0, 1], "every server is retried");
            for idx in plan {
                e.on_exchange(idx, &rejected(RejectReason::Timeout));
            }
            let rec = e.finish_round(&w.clock);
            assert!(rec.action.is_none());
            delays.push(e.next_delay().as_secs());
        }
        assert_eq!(delays, vec![1, 2, 4, 5, 5]);
        assert_eq!(w.clock.correction().total_ns, corr);
        assert_eq!(e.status(&w.clock).rejected.get("timeout"), Some(&10));
        // Recovery resets the backoff.
        round(&mut e, &w, &[0, 0]);
        assert_eq!(e.next_delay(), Duration::from_secs(1));
    }

    #[test]
    fn history_is_bounded() {
        let w = World::new(Simulation::default());
        let mut e = SyncEngine::new(SyncOptions {
            history: 5,
            ..opts(1)
        });
        for _ in 0..10 {
            round(&mut e, &w, &[0]);
        }
        let h = e.history();
        assert_eq!(h.len(), 5);
        assert!(matches!(h.last(), Some(SyncEvent::Round(_))));
    }
}
