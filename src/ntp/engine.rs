//! The pure synchronisation state machine, [`SyncEngine`]: per-server state and clock filters,
//! selection, discipline, drift correction and status. No I/O and no hidden time source: the
//! clock it corrects is passed in, exchanges are fed to it.
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
use std::time::Duration;

use tracing::{debug, info, warn};

use super::client::{duration_ns, ExchangeResult};
use super::discipline::{Action, DriftEstimator};
use super::filter::ClockFilter;
use super::options::SyncOptions;
use super::packet::{KissCode, RejectReason};
use super::select::{combine, marzullo, Candidate};
use super::status::{
    ExchangeRecord, RoundRecord, ServerState, ServerStatus, SyncEvent, SyncStatus,
};
use crate::clock::PhysicalClock;
use crate::time::UnixNanos;

/// One configured server: its address once resolved, its clock filter, its backoff and
/// counters.
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

#[cfg(test)]
mod tests;
