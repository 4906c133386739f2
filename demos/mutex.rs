//! Mutual exclusion with logical clocks: Lamport's algorithm (request, ack, release; queue ordered
//! by (timestamp, process)) and Ricart–Agrawala (request, deferred reply) side by side on the same
//! seeded FIFO network, with a monitor that checks after every event that at most one process is
//! in the critical section.

use crate::report::{ms, Report, Table};
use crate::sim_net::{Event, NetConfig, NodeIx, SimNet, Wire, MS};
use anyhow::Result;
use kafka_timesync::clock::LamportClock;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;

/// Messages of both algorithms (each carries the sender's Lamport time).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum MutexMsg {
    /// "I want the resource" (both algorithms).
    Request { ts: u64 },
    /// Lamport: "I have queued your request".
    Ack { ts: u64 },
    /// Lamport: "I am done; drop my request".
    Release { ts: u64 },
    /// Ricart–Agrawala: permission to enter.
    Reply { ts: u64 },
}

impl MutexMsg {
    fn ts(self) -> u64 {
        match self {
            MutexMsg::Request { ts }
            | MutexMsg::Ack { ts }
            | MutexMsg::Release { ts }
            | MutexMsg::Reply { ts } => ts,
        }
    }
    fn kind(self) -> usize {
        match self {
            MutexMsg::Request { .. } => 0,
            MutexMsg::Ack { .. } | MutexMsg::Reply { .. } => 1,
            MutexMsg::Release { .. } => 2,
        }
    }
}

/// Which algorithm a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Lamport 1978: 3(N−1) messages per entry.
    Lamport,
    /// Ricart & Agrawala 1981: 2(N−1) messages per entry.
    RicartAgrawala,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Lamport => "Lamport",
            Algorithm::RicartAgrawala => "Ricart-Agrawala",
        }
    }
    fn per_entry(self, n: usize) -> u64 {
        let m = (n as u64).saturating_sub(1);
        match self {
            Algorithm::Lamport => 3 * m,
            Algorithm::RicartAgrawala => 2 * m,
        }
    }
}

trait Process {
    fn request(&mut self, net: &mut SimNet<'_, MutexMsg>) -> Result<()>;
    fn on_message(
        &mut self,
        from: NodeIx,
        msg: MutexMsg,
        net: &mut SimNet<'_, MutexMsg>,
    ) -> Result<()>;
    fn may_enter(&self) -> bool;
    fn enter(&mut self);
    fn exit(&mut self, net: &mut SimNet<'_, MutexMsg>) -> Result<()>;
    fn request_ts(&self) -> Option<u64>;
}

/// Lamport's algorithm at one process.
struct LamportProc {
    me: NodeIx,
    n: usize,
    clock: LamportClock,
    /// Pending requests, ordered by (timestamp, process): the total order all processes agree on.
    queue: BTreeSet<(u64, NodeIx)>,
    /// Timestamp of the latest message received from each process.
    latest_from: Vec<Option<u64>>,
    my_request: Option<u64>,
    in_cs: bool,
    /// Fault injection: enter without waiting for a later message from everyone.
    broken: bool,
}

impl Process for LamportProc {
    fn request(&mut self, net: &mut SimNet<'_, MutexMsg>) -> Result<()> {
        let ts = self.clock.tick();
        self.queue.insert((ts, self.me));
        self.my_request = Some(ts);
        net.multicast(self.me, 0..self.n, &MutexMsg::Request { ts })
    }
    fn on_message(
        &mut self,
        from: NodeIx,
        msg: MutexMsg,
        net: &mut SimNet<'_, MutexMsg>,
    ) -> Result<()> {
        self.clock.update(msg.ts());
        self.latest_from[from] = Some(msg.ts());
        match msg {
            MutexMsg::Request { ts } => {
                self.queue.insert((ts, from));
                let ack = self.clock.tick();
                net.send(self.me, from, &MutexMsg::Ack { ts: ack })?;
            }
            MutexMsg::Release { .. } => {
                if let Some(r) = self.queue.iter().find(|(_, p)| *p == from).copied() {
                    self.queue.remove(&r);
                }
            }
            MutexMsg::Ack { .. } | MutexMsg::Reply { .. } => {}
        }
        Ok(())
    }
    fn may_enter(&self) -> bool {
        let Some(ts) = self.my_request else {
            return false;
        };
        if self.in_cs || self.queue.first() != Some(&(ts, self.me)) {
            return false;
        }
        self.broken
            || (0..self.n)
                .filter(|j| *j != self.me)
                .all(|j| self.latest_from[j].is_some_and(|t| (t, j) > (ts, self.me)))
    }
    fn enter(&mut self) {
        self.in_cs = true;
    }
    fn exit(&mut self, net: &mut SimNet<'_, MutexMsg>) -> Result<()> {
        if let Some(ts) = self.my_request.take() {
            self.queue.remove(&(ts, self.me));
        }
        self.in_cs = false;
        let ts = self.clock.tick();
        net.multicast(self.me, 0..self.n, &MutexMsg::Release { ts })
    }
    fn request_ts(&self) -> Option<u64> {
        self.my_request
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RaState {
    Released,
    Wanted(u64),
    Held(u64),
}

/// Ricart–Agrawala at one process.
struct RaProc {
    me: NodeIx,
    n: usize,
    clock: LamportClock,
    state: RaState,
    replies: usize,
    deferred: Vec<NodeIx>,
    /// Fault injection: never defer a reply.
    broken: bool,
}

impl Process for RaProc {
    fn request(&mut self, net: &mut SimNet<'_, MutexMsg>) -> Result<()> {
        let ts = self.clock.tick();
        self.state = RaState::Wanted(ts);
        self.replies = 0;
        net.multicast(self.me, 0..self.n, &MutexMsg::Request { ts })
    }
    fn on_message(
        &mut self,
        from: NodeIx,
        msg: MutexMsg,
        net: &mut SimNet<'_, MutexMsg>,
    ) -> Result<()> {
        self.clock.update(msg.ts());
        match msg {
            MutexMsg::Request { ts } => {
                let defer = match self.state {
                    RaState::Held(_) => true,
                    RaState::Wanted(mine) => (mine, self.me) < (ts, from),
                    RaState::Released => false,
                };
                if defer && !self.broken {
                    self.deferred.push(from);
                } else {
                    let r = self.clock.tick();
                    net.send(self.me, from, &MutexMsg::Reply { ts: r })?;
                }
            }
            MutexMsg::Reply { .. } => self.replies += 1,
            MutexMsg::Ack { .. } | MutexMsg::Release { .. } => {}
        }
        Ok(())
    }
    fn may_enter(&self) -> bool {
        matches!(self.state, RaState::Wanted(_)) && self.replies == self.n - 1
    }
    fn enter(&mut self) {
        if let RaState::Wanted(ts) = self.state {
            self.state = RaState::Held(ts);
        }
    }
    fn exit(&mut self, net: &mut SimNet<'_, MutexMsg>) -> Result<()> {
        self.state = RaState::Released;
        for j in std::mem::take(&mut self.deferred) {
            let r = self.clock.tick();
            net.send(self.me, j, &MutexMsg::Reply { ts: r })?;
        }
        Ok(())
    }
    fn request_ts(&self) -> Option<u64> {
        match self.state {
            RaState::Wanted(t) | RaState::Held(t) => Some(t),
            RaState::Released => None,
        }
    }
}

/// One entry into the critical section.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Virtual time of entry (ns).
    pub t_ns: i64,
    /// Process index.
    pub process: NodeIx,
    /// Lamport timestamp of the request that was granted.
    pub request_ts: u64,
    /// Usage counts of all processes right after this entry.
    pub usage: Vec<u64>,
}

/// The outcome of one simulated run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Algorithm name.
    pub algorithm: &'static str,
    /// Number of processes.
    pub n: usize,
    /// Entries in order.
    pub entries: Vec<Entry>,
    /// Messages sent: requests, acks/replies, releases.
    pub messages: [u64; 3],
    /// Events after which the safety monitor looked.
    pub steps_checked: u64,
    /// Safety violations seen (time, who was inside).
    pub violations: Vec<String>,
}

impl Run {
    /// Total messages sent.
    pub fn total_messages(&self) -> u64 {
        self.messages.iter().sum()
    }
}

const TAG_REQUEST: u64 = 1;
const TAG_EXIT: u64 = 2;

/// Simulates `n` processes each entering the critical section `rounds` times.
pub fn simulate(
    alg: Algorithm,
    n: usize,
    rounds: u64,
    seed: u64,
    broken: bool,
    wire: &mut dyn Wire,
) -> Result<Run> {
    let cfg = NetConfig {
        min_delay_ns: MS,
        max_delay_ns: 20 * MS,
        fifo: true,
    };
    let mut net: SimNet<MutexMsg> = SimNet::new(cfg, seed, wire);
    let mut procs: Vec<Box<dyn Process>> = (0..n)
        .map(|me| -> Box<dyn Process> {
            match alg {
                Algorithm::Lamport => Box::new(LamportProc {
                    me,
                    n,
                    clock: LamportClock::new(),
                    queue: BTreeSet::new(),
                    latest_from: vec![None; n],
                    my_request: None,
                    in_cs: false,
                    broken,
                }),
                Algorithm::RicartAgrawala => Box::new(RaProc {
                    me,
                    n,
                    clock: LamportClock::new(),
                    state: RaState::Released,
                    replies: 0,
                    deferred: vec![],
                    broken,
                }),
            }
        })
        .collect();
    for i in 0..n {
        net.set_timer(i, 0, TAG_REQUEST);
    }
    let mut inside = vec![false; n];
    let mut usage = vec![0u64; n];
    let mut run = Run {
        algorithm: alg.name(),
        n,
        entries: vec![],
        messages: [0; 3],
        steps_checked: 0,
        violations: vec![],
    };
    let limit = 10_000 * n as u64 * rounds.max(1);
    while let Some(ev) = net.next_event()? {
        match ev {
            Event::Timer {
                node,
                tag: TAG_REQUEST,
            } => procs[node].request(&mut net)?,
            Event::Timer { node, tag } => {
                debug_assert_eq!(tag, TAG_EXIT);
                inside[node] = false;
                procs[node].exit(&mut net)?;
                if usage[node] < rounds {
                    net.set_timer(node, net.now_ns(), TAG_REQUEST);
                }
            }
            Event::Deliver(p) => {
                run.messages[p.msg.kind()] += 1;
                procs[p.to].on_message(p.from, p.msg, &mut net)?;
            }
        }
        for i in 0..n {
            if !inside[i] && procs[i].may_enter() {
                let request_ts = procs[i].request_ts().unwrap_or(0);
                procs[i].enter();
                inside[i] = true;
                usage[i] += 1;
                run.entries.push(Entry {
                    t_ns: net.now_ns(),
                    process: i,
                    request_ts,
                    usage: usage.clone(),
                });
                let hold = net.random_range(5 * MS, 15 * MS);
                net.set_timer(i, net.now_ns() + hold, TAG_EXIT);
            }
        }
        run.steps_checked += 1;
        let holders: Vec<String> = (0..n).filter(|i| inside[*i]).map(name).collect();
        if holders.len() > 1 {
            run.violations.push(format!(
                "t={} ms: {} inside together",
                ms(net.now_ns(), 1),
                holders.join(" and ")
            ));
        }
        if run.steps_checked > limit {
            run.violations.push("run did not finish (livelock?)".into());
            break;
        }
    }
    Ok(run)
}

/// Process name: A, B, C, …
pub fn name(i: NodeIx) -> String {
    if i < 26 {
        char::from(b'A' + i as u8).to_string()
    } else {
        format!("P{i}")
    }
}

fn usage_str(u: &[u64]) -> String {
    let parts: Vec<String> = u
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{}:{c}", name(i)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Checks a run: safety, everyone entered `rounds` times, turns taken in rotation, message count.
fn check_run(r: &mut Report, run: &Run, rounds: u64, alg: Algorithm) {
    let label = run.algorithm;
    r.check(
        format!(
            "{label}, N={}: never two processes in the critical section",
            run.n
        ),
        run.violations.is_empty(),
        if run.violations.is_empty() {
            format!("checked after each of {} events", run.steps_checked)
        } else {
            format!(
                "{} violation(s), first: {}",
                run.violations.len(),
                run.violations[0]
            )
        },
    );
    let want = rounds * run.n as u64;
    r.check(
        format!("{label}, N={}: every process entered {rounds} times", run.n),
        run.entries.len() as u64 == want,
        format!("{} entries of {want}", run.entries.len()),
    );
    let in_turn = run
        .entries
        .iter()
        .enumerate()
        .all(|(k, e)| e.process == k % run.n);
    r.check(
        format!(
            "{label}, N={}: usage counts rise in turn (A, B, C, A, …)",
            run.n
        ),
        in_turn,
        run.entries
            .iter()
            .map(|e| name(e.process))
            .collect::<Vec<_>>()
            .join(""),
    );
    let per = alg.per_entry(run.n);
    let entries = run.entries.len().max(1) as u64;
    r.check(
        format!(
            "{label}, N={}: messages per entry = {}",
            run.n,
            formula(alg)
        ),
        run.total_messages() == per * run.entries.len() as u64,
        format!(
            "{} messages / {entries} entries, expected {per} each",
            run.total_messages()
        ),
    );
}

fn formula(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Lamport => "3(N-1)",
        Algorithm::RicartAgrawala => "2(N-1)",
    }
}

/// The `mutex` demo.
pub fn demo(seed: u64, broken: bool, wire: &mut dyn Wire) -> Result<Report> {
    let rounds = 3;
    let mut r = Report::new("mutex", "mutual exclusion: Lamport vs Ricart–Agrawala");
    r.para(
        "Three processes A, B and C share one resource and each wants it 3 times. There is no \
         coordinator and no physical clock: only messages stamped with Lamport clocks over FIFO \
         links (1–20 ms delays).\n\
         Lamport: to enter, multicast REQUEST(ts); every receiver queues it, ordered by \
         (timestamp, process), and sends an ACK. A process enters when its own request heads its \
         queue and it has received a later-stamped message from every other process; on leaving it \
         multicasts RELEASE. Ties are broken by process name, so A goes first.\n\
         Ricart–Agrawala: no RELEASE. A receiver answers a REQUEST at once (REPLY) unless it holds \
         the resource, or wants it with an earlier (timestamp, process); then it defers the REPLY \
         until it leaves.",
    );
    let mut runs = vec![];
    for alg in [Algorithm::Lamport, Algorithm::RicartAgrawala] {
        let run = simulate(alg, 3, rounds, seed, broken, wire)?;
        let mut t = Table::new(&[
            ">#",
            ">t (ms)",
            "process",
            ">request ts",
            "resource usage counts",
        ]);
        for (k, e) in run.entries.iter().enumerate() {
            t.row(vec![
                (k + 1).to_string(),
                ms(e.t_ns, 1),
                name(e.process),
                e.request_ts.to_string(),
                usage_str(&e.usage),
            ]);
        }
        r.para(format!(
            "{} — entries into the critical section:",
            alg.name()
        ));
        r.table(&t);
        runs.push(run);
    }
    // The message-count formulas, at N = 3 and N = 5.
    let mut more = vec![];
    for alg in [Algorithm::Lamport, Algorithm::RicartAgrawala] {
        more.push(simulate(alg, 5, 2, seed, broken, wire)?);
    }
    let mut t = Table::new(&[
        "algorithm",
        ">N",
        ">entries",
        ">requests",
        ">acks/replies",
        ">releases",
        ">total",
        ">per entry",
        "expected",
    ]);
    for run in runs.iter().chain(more.iter()) {
        let alg = if run.algorithm == "Lamport" {
            Algorithm::Lamport
        } else {
            Algorithm::RicartAgrawala
        };
        let e = run.entries.len().max(1) as f64;
        t.row(vec![
            run.algorithm.to_string(),
            run.n.to_string(),
            run.entries.len().to_string(),
            run.messages[0].to_string(),
            run.messages[1].to_string(),
            run.messages[2].to_string(),
            run.total_messages().to_string(),
            format!("{:.1}", run.total_messages() as f64 / e),
            format!("{} = {}", formula(alg), alg.per_entry(run.n)),
        ]);
    }
    r.para("Messages per entry (the slides' comparison table):");
    r.table(&t);
    r.para(
        "Both grant the resource in the same (timestamp, process) order; Ricart–Agrawala saves the \
         N-1 RELEASE messages by folding them into deferred REPLYs.",
    );
    for run in &runs {
        let alg = if run.algorithm == "Lamport" {
            Algorithm::Lamport
        } else {
            Algorithm::RicartAgrawala
        };
        check_run(&mut r, run, rounds, alg);
    }
    for run in &more {
        let alg = if run.algorithm == "Lamport" {
            Algorithm::Lamport
        } else {
            Algorithm::RicartAgrawala
        };
        check_run(&mut r, run, 2, alg);
    }
    r.data = json!({ "runs": runs, "runs_n5": more });
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_net::MemoryWire;

    #[test]
    fn usage_counts_rise_in_turn_as_in_the_write_up() {
        let run = simulate(
            Algorithm::Lamport,
            3,
            2,
            42,
            false,
            &mut MemoryWire::default(),
        )
        .unwrap();
        let seen: Vec<String> = run.entries.iter().map(|e| usage_str(&e.usage)).collect();
        assert_eq!(
            seen,
            [
                "{A:1, B:0, C:0}",
                "{A:1, B:1, C:0}",
                "{A:1, B:1, C:1}",
                "{A:2, B:1, C:1}",
                "{A:2, B:2, C:1}",
                "{A:2, B:2, C:2}"
            ]
        );
        assert!(run.violations.is_empty());
    }

    #[test]
    fn message_counts_match_the_formulas_for_many_seeds_and_sizes() {
        for seed in 0..20 {
            for n in 2..=6 {
                for alg in [Algorithm::Lamport, Algorithm::RicartAgrawala] {
                    let run = simulate(alg, n, 2, seed, false, &mut MemoryWire::default()).unwrap();
                    assert!(
                        run.violations.is_empty(),
                        "{alg:?} n={n} seed={seed}: {:?}",
                        run.violations
                    );
                    assert_eq!(run.entries.len(), 2 * n);
                    assert_eq!(
                        run.total_messages(),
                        alg.per_entry(n) * 2 * n as u64,
                        "{alg:?} n={n}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_monitor_catches_a_broken_algorithm() {
        for alg in [Algorithm::Lamport, Algorithm::RicartAgrawala] {
            let run = simulate(alg, 3, 2, 42, true, &mut MemoryWire::default()).unwrap();
            assert!(
                !run.violations.is_empty(),
                "{alg:?} without waiting must overlap"
            );
        }
        let r = demo(42, true, &mut MemoryWire::default()).unwrap();
        assert!(!r.ok);
    }
}
