//! The `total` demo: totally ordered multicast with Lamport timestamps and acknowledgements, on
//! the slides' example of two replicas of a bank account.

use crate::report::{Report, Table};
use crate::sim_net::{Event, NetConfig, SimNet, Wire, MS};
use anyhow::Result;
use kafka_timesync::clock::LamportClock;
use kafka_timesync::delivery::{Delivered, DeliveryConfig, Release, TotalOrderBuffer};
use kafka_timesync::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// An update of the replicated account (balances in cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// Add this many cents.
    Deposit(i64),
    /// Add this many percent interest (rounded to the cent).
    Interest(i64),
}

impl Update {
    fn apply(self, cents: i64) -> i64 {
        match self {
            Update::Deposit(c) => cents + c,
            Update::Interest(p) => cents + (cents * p + 50) / 100,
        }
    }
    fn describe(self) -> String {
        match self {
            Update::Deposit(c) => format!("add ${}", dollars(c)),
            Update::Interest(p) => format!("add {p}% interest"),
        }
    }
}

fn dollars(cents: i64) -> String {
    if cents % 100 == 0 {
        format!("{}", cents / 100)
    } else {
        format!("{}.{:02}", cents / 100, (cents % 100).abs())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Msg {
    Update {
        id: u32,
        seq: u64,
        ts: u64,
        update: Update,
    },
    Ack {
        seq: u64,
        ts: u64,
    },
}

#[derive(Debug, Clone)]
struct Item {
    /// `Some` for an update, `None` for an acknowledgement.
    update: Option<(u32, Update)>,
}

/// The result of one replicated run.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Per replica: update ids in the order applied.
    pub applied: Vec<Vec<u32>>,
    /// Per replica: final balance in cents.
    pub balance: Vec<i64>,
    /// Messages sent (updates + acks).
    pub messages: u64,
    /// Deliveries that did not wait for their ordering condition.
    pub early: u64,
}

/// Runs `updates` (issuer, update, issue time) on `n` replicas starting from `start` cents.
/// `ordered = false` applies every update on arrival (own updates at once).
pub fn simulate(
    n: usize,
    start: i64,
    updates: &[(usize, Update, i64)],
    ordered: bool,
    seed: u64,
    wire: &mut dyn Wire,
) -> Result<Outcome> {
    let names: Vec<NodeId> = (1..=n).map(|i| NodeId::from(format!("P{i}"))).collect();
    let cfg = NetConfig {
        min_delay_ns: MS,
        max_delay_ns: 30 * MS,
        fifo: true,
    };
    let mut net: SimNet<Msg> = SimNet::new(cfg, seed, wire);
    let clocks: Vec<LamportClock> = (0..n).map(|_| LamportClock::new()).collect();
    let dcfg = DeliveryConfig::new(1024, 600_000 * MS);
    let mut bufs: Vec<TotalOrderBuffer<Item>> = (0..n)
        .map(|_| TotalOrderBuffer::new(dcfg, Some(names.clone())))
        .collect();
    let mut seq = vec![0u64; n];
    let mut balance = vec![start; n];
    let mut applied: Vec<Vec<u32>> = vec![vec![]; n];
    let mut early = 0u64;
    for (k, (who, _, at)) in updates.iter().enumerate() {
        net.set_timer(*who, *at, k as u64);
    }
    let mut out: Vec<Delivered<Item>> = vec![];
    while let Some(ev) = net.next_event()? {
        let now = net.now_ns();
        out.clear();
        let me = match ev {
            Event::Timer { node, tag } => {
                let (_, update, _) = updates[tag as usize];
                let id = tag as u32 + 1;
                let ts = clocks[node].tick();
                seq[node] += 1;
                net.multicast(
                    node,
                    0..n,
                    &Msg::Update {
                        id,
                        seq: seq[node],
                        ts,
                        update,
                    },
                )?;
                if ordered {
                    // The sender queues its own message too.
                    let item = Item {
                        update: Some((id, update)),
                    };
                    bufs[node].offer(names[node].clone(), seq[node], ts, item, now, &mut out);
                } else {
                    balance[node] = update.apply(balance[node]);
                    applied[node].push(id);
                }
                node
            }
            Event::Deliver(p) => {
                let me = p.to;
                match p.msg {
                    Msg::Update {
                        id,
                        seq: s,
                        ts,
                        update,
                    } => {
                        clocks[me].update(ts);
                        if ordered {
                            let item = Item {
                                update: Some((id, update)),
                            };
                            bufs[me].offer(names[p.from].clone(), s, ts, item, now, &mut out);
                            // Acknowledge to everyone (and queue the ack locally: it is a later
                            // message from this process).
                            let ack = clocks[me].tick();
                            seq[me] += 1;
                            net.multicast(
                                me,
                                0..n,
                                &Msg::Ack {
                                    seq: seq[me],
                                    ts: ack,
                                },
                            )?;
                            bufs[me].offer(
                                names[me].clone(),
                                seq[me],
                                ack,
                                Item { update: None },
                                now,
                                &mut out,
                            );
                        } else {
                            balance[me] = update.apply(balance[me]);
                            applied[me].push(id);
                        }
                    }
                    Msg::Ack { seq: s, ts } => {
                        clocks[me].update(ts);
                        bufs[me].offer(
                            names[p.from].clone(),
                            s,
                            ts,
                            Item { update: None },
                            now,
                            &mut out,
                        );
                    }
                }
                me
            }
        };
        for d in out.drain(..) {
            if d.release != Release::Ready {
                early += 1;
            }
            if let Some((id, u)) = d.item.update {
                balance[me] = u.apply(balance[me]);
                applied[me].push(id);
            }
        }
    }
    Ok(Outcome {
        applied,
        balance,
        messages: net.sent(),
        early,
    })
}

/// The `total` demo.
pub fn demo(seed: u64, broken: bool, wire: &mut dyn Wire) -> Result<Report> {
    let mut r = Report::new(
        "total",
        "totally ordered multicast: two replicas of a bank account",
    );
    r.para(
        "An account holds $1000 and is replicated at P1 and P2. At the same moment P1 adds $100 \
         and P2 adds 1% interest; each multicasts its update to both replicas.",
    );
    let bank = [(0, Update::Deposit(10_000), 0), (1, Update::Interest(1), 0)];
    let naive = simulate(2, 100_000, &bank, false, seed, wire)?;
    let total = simulate(2, 100_000, &bank, !broken, seed, wire)?;
    let names = ["$100 deposit (P1)", "1% interest (P2)"];
    let mut t = Table::new(&[
        "",
        "replica #1 (P1) applies",
        ">balance",
        "replica #2 (P2) applies",
        ">balance",
    ]);
    for (label, o) in [("without ordering", &naive), ("totally ordered", &total)] {
        let order = |i: usize| {
            o.applied[i]
                .iter()
                .map(|id| names[*id as usize - 1])
                .collect::<Vec<_>>()
                .join(", then ")
        };
        t.row(vec![
            label.into(),
            order(0),
            format!("${}", dollars(o.balance[0])),
            order(1),
            format!("${}", dollars(o.balance[1])),
        ]);
    }
    r.table(&t);
    r.para(
        "Without ordering each replica applies its own update first: $1000 + $100 = $1100, \
         + 1% = $1111 at P1, but $1000 + 1% = $1010, + $100 = $1110 at P2. With totally ordered \
         multicast each process stamps its update with its Lamport clock and queues it; every \
         receiver queues it by (timestamp, process) and acknowledges it to everyone. A process \
         applies the head of its queue only once it has, from every process, a message with a \
         larger timestamp (kafka_timesync::delivery::TotalOrderBuffer with members P1, P2) — so \
         both apply P1's update (1, P1) before P2's (1, P2).",
    );
    r.check(
        "without ordering the replicas diverge: $1111 vs $1110 (the slides' numbers)",
        naive.balance == [111_100, 111_000],
        format!(
            "${} vs ${}",
            dollars(naive.balance[0]),
            dollars(naive.balance[1])
        ),
    );
    r.check(
        "with totally ordered multicast both replicas apply the same sequence and agree",
        total.applied[0] == total.applied[1]
            && total.balance[0] == total.balance[1]
            && total.applied[0].len() == 2,
        format!(
            "${} and ${}",
            dollars(total.balance[0]),
            dollars(total.balance[1])
        ),
    );
    // A busier run: three replicas, 12 concurrent updates.
    let mut many = vec![];
    let mut rng_seed = seed;
    for k in 0..12u64 {
        rng_seed = rng_seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let who = (k % 3) as usize;
        let u = if (rng_seed >> 33) % 2 == 0 {
            Update::Deposit(((rng_seed >> 40) % 500) as i64 * 100 + 100)
        } else {
            Update::Interest(((rng_seed >> 45) % 5) as i64 + 1)
        };
        many.push((who, u, ((rng_seed >> 20) % 50) as i64 * MS));
    }
    let naive3 = simulate(3, 100_000, &many, false, seed, wire)?;
    let total3 = simulate(3, 100_000, &many, !broken, seed, wire)?;
    let mut t = Table::new(&["", ">P1", ">P2", ">P3", ">messages"]);
    for (label, o) in [("without ordering", &naive3), ("totally ordered", &total3)] {
        t.row(vec![
            label.into(),
            format!("${}", dollars(o.balance[0])),
            format!("${}", dollars(o.balance[1])),
            format!("${}", dollars(o.balance[2])),
            o.messages.to_string(),
        ]);
    }
    r.para(format!(
        "A busier run: three replicas, 12 updates issued within 50 ms ({}). Final balances:",
        many.iter()
            .map(|(w, u, _)| format!("P{} {}", w + 1, u.describe()))
            .collect::<Vec<_>>()
            .join("; ")
    ));
    r.table(&t);
    let same = total3.applied.iter().all(|a| *a == total3.applied[0])
        && total3.applied[0].len() == many.len();
    r.check(
        "three replicas, 12 concurrent updates: identical order everywhere",
        same && total3.balance.iter().all(|b| *b == total3.balance[0]),
        format!(
            "orders identical: {same}; balances {:?}",
            total3
                .balance
                .iter()
                .map(|c| dollars(*c))
                .collect::<Vec<_>>()
        ),
    );
    r.check(
        "nothing released early (every delivery waited for its condition)",
        total.early + total3.early == 0,
        format!("{} early", total.early + total3.early),
    );
    r.data = json!({
        "bank": { "without_ordering": naive, "totally_ordered": total },
        "three_replicas": { "updates": many.iter().map(|(w, u, t)| json!({"from": format!("P{}", w + 1), "update": u, "at_ns": t})).collect::<Vec<_>>(), "without_ordering": naive3, "totally_ordered": total3 },
    });
    Ok(r)
}
