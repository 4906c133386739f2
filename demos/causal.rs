//! The `causal` demo: causally ordered multicast over a reordering network, each process holding
//! back early messages in the library's `delivery::CausalBuffer`; and the slides' question.

use crate::exchange::vt_tuple;
use crate::plot::{self, Arrow};
use crate::report::{ms, Report, Table};
use crate::sim_net::{Event, NetConfig, SimNet, Wire, MS};
use anyhow::Result;
use kafka_timesync::clock::{CausalOrder, VectorClock, VectorTimestamp};
use kafka_timesync::delivery::{CausalBuffer, Delivered, DeliveryConfig, Release, SenderNumber};
use kafka_timesync::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

const PER_PROCESS: u32 = 3;

/// What a process's buffer holds: message id and timestamp.
type StampedId = (u32, VectorTimestamp);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Multicast {
    /// "m1", "m2", … in send order.
    id: u32,
    vt: VectorTimestamp,
}

/// What a message is waiting for, in words: which messages of which process are missing.
pub fn waits_for(
    from: &NodeId,
    vt: &VectorTimestamp,
    delivered: &VectorTimestamp,
    nodes: &[NodeId],
) -> Vec<String> {
    let mut out = vec![];
    for k in nodes {
        let have = delivered.get(k);
        let need = if k == from {
            vt.get(k).saturating_sub(1)
        } else {
            vt.get(k)
        };
        if need > have {
            let which = if need == have + 1 {
                format!("message #{need} from {k}")
            } else {
                format!("messages #{}..#{need} from {k}", have + 1)
            };
            out.push(which);
        }
    }
    out
}

#[derive(Debug, Clone, Serialize)]
struct LogLine {
    t_ns: i64,
    process: String,
    what: String,
    held: Vec<String>,
}

/// The `causal` demo.
pub fn demo(
    seed: u64,
    broken: bool,
    wire: &mut dyn Wire,
    plot_dir: Option<&Path>,
) -> Result<Report> {
    let mut r = Report::new("causal", "causally ordered multicast");
    r.para(
        "P1, P2 and P3 each multicast 3 messages; some are sent in reaction to a message just \
         delivered, so they causally depend on it. The network reorders (5–80 ms delays). The \
         slides' rule: Pi increments VC[i] only when it sends; ts(m) = VC after that increment; \
         Pj delivers m from Pi only when ts(m)[i] = VCj[i] + 1 and ts(m)[k] <= VCj[k] for every \
         other k, holding m back until then (kafka_timesync::delivery::CausalBuffer), and merges \
         ts(m) into VCj on delivery.",
    );
    let nodes: Vec<NodeId> = ["P1", "P2", "P3"]
        .iter()
        .map(|s| NodeId::from(*s))
        .collect();
    let n = nodes.len();
    let cfg = NetConfig {
        min_delay_ns: 5 * MS,
        max_delay_ns: 80 * MS,
        fifo: false,
    };
    let mut net: SimNet<Multicast> = SimNet::new(cfg, seed, wire);
    let clocks: Vec<VectorClock> = nodes
        .iter()
        .map(|id| VectorClock::new(id.clone()))
        .collect();
    let dcfg = DeliveryConfig::new(64, 600_000 * MS);
    let mut buffers: Vec<CausalBuffer<(u32, VectorTimestamp)>> =
        (0..n).map(|_| CausalBuffer::new(dcfg)).collect();
    let mut remaining = vec![PER_PROCESS; n];
    let mut next_id = 1u32;
    for i in 0..n {
        for _ in 0..PER_PROCESS {
            let at = net.random_range(0, 600 * MS);
            net.set_timer(i, at, 0);
        }
    }
    // Per process: delivery order (message ids); per message: sender, vt; arrows for the chart.
    let mut delivered_order: Vec<Vec<u32>> = vec![vec![]; n];
    let mut stamp_of: Vec<(usize, VectorTimestamp, i64)> = vec![(0, VectorTimestamp::new(), 0); 1];
    let mut arrows: Vec<Arrow> = vec![];
    let mut arrival: std::collections::HashMap<(u32, usize), usize> = Default::default();
    let mut log: Vec<LogLine> = vec![];
    let mut held_on_arrival = vec![0u32; n];
    let mut max_held = vec![0usize; n];
    let mut not_ready = 0u32;
    let mut out: Vec<Delivered<(u32, VectorTimestamp)>> = vec![];
    let held_list = |b: &CausalBuffer<(u32, VectorTimestamp)>| -> Vec<String> {
        b.iter_waiting()
            .map(|(id, vt)| format!("m{id} {}", vt_tuple(vt, &nodes)))
            .collect()
    };
    loop {
        let Some(ev) = net.next_event()? else { break };
        let now = net.now_ns();
        let mut to_deliver: Vec<(usize, Vec<Delivered<StampedId>>)> = vec![];
        match ev {
            Event::Timer { node, .. } => {
                if remaining[node] > 0 {
                    remaining[node] -= 1;
                    let vt = clocks[node].send_stamp();
                    let id = next_id;
                    next_id += 1;
                    stamp_of.push((node, vt.clone(), now));
                    net.multicast(node, 0..n, &Multicast { id, vt: vt.clone() })?;
                    out.clear();
                    buffers[node].offer(nodes[node].clone(), &vt, (id, vt.clone()), now, &mut out);
                    log.push(LogLine {
                        t_ns: now,
                        process: nodes[node].to_string(),
                        what: format!("sends m{id} {}", vt_tuple(&vt, &nodes)),
                        held: held_list(&buffers[node]),
                    });
                    to_deliver.push((node, std::mem::take(&mut out)));
                }
            }
            Event::Deliver(p) => {
                let me = p.to;
                let Multicast { id, vt } = p.msg;
                arrival.insert((id, me), arrows.len());
                arrows.push(Arrow {
                    from: p.from,
                    to: me,
                    sent_ms: p.sent_ns as f64 / 1e6,
                    recv_ms: now as f64 / 1e6,
                    delivered_ms: None,
                    label: String::new(),
                });
                out.clear();
                if broken {
                    // Fault injection: deliver on arrival, no buffer.
                    out.push(Delivered {
                        node: nodes[p.from].clone(),
                        number: SenderNumber::VectorEntry(vt.get(&nodes[p.from])),
                        release: Release::Ready,
                        item: (id, vt.clone()),
                        missing: vec![],
                        silent: vec![],
                    });
                } else {
                    buffers[me].offer(nodes[p.from].clone(), &vt, (id, vt.clone()), now, &mut out);
                }
                let held_now = !out.iter().any(|d| d.item.0 == id);
                let mut what = format!(
                    "receives m{id} {} from {}",
                    vt_tuple(&vt, &nodes),
                    nodes[p.from]
                );
                if held_now {
                    held_on_arrival[me] += 1;
                    let reasons = waits_for(&nodes[p.from], &vt, buffers[me].delivered(), &nodes);
                    what.push_str(&format!(" — held, waits for {}", reasons.join(" and ")));
                }
                max_held[me] = max_held[me].max(buffers[me].len());
                log.push(LogLine {
                    t_ns: now,
                    process: nodes[me].to_string(),
                    what,
                    held: held_list(&buffers[me]),
                });
                to_deliver.push((me, std::mem::take(&mut out)));
            }
        }
        for (me, ds) in to_deliver {
            for d in ds {
                let (id, vt) = d.item;
                if d.release != Release::Ready {
                    not_ready += 1;
                }
                delivered_order[me].push(id);
                if d.node != nodes[me] {
                    clocks[me].merge(&vt);
                    if let Some(a) = arrival.get(&(id, me)).and_then(|k| arrows.get_mut(*k)) {
                        a.delivered_ms = Some(now as f64 / 1e6);
                    }
                    let was_held = log
                        .last()
                        .is_some_and(|l| !l.what.contains(&format!("receives m{id} ")));
                    if was_held {
                        log.push(LogLine {
                            t_ns: now,
                            process: nodes[me].to_string(),
                            what: format!("delivers m{id} (its wait is over)"),
                            held: held_list(&buffers[me]),
                        });
                    }
                    // Some deliveries prompt a reaction: a message that depends on this one.
                    if remaining[me] > 0 && net.random_range(0, 2) == 0 {
                        net.set_timer(me, now, 0);
                    }
                }
            }
        }
    }
    let total = (next_id - 1) as usize;
    // Log of the process that had to hold the most.
    let busiest = (0..n)
        .max_by_key(|i| (held_on_arrival[*i], std::cmp::Reverse(*i)))
        .unwrap_or(0);
    let mut t = Table::new(&[">t (ms)", "event", "held in the buffer afterwards"]);
    for l in log.iter().filter(|l| l.process == nodes[busiest].as_ref()) {
        t.row(vec![
            ms(l.t_ns, 1),
            l.what.clone(),
            if l.held.is_empty() {
                "-".into()
            } else {
                l.held.join(", ")
            },
        ]);
    }
    r.para(format!(
        "{}'s buffer as it fills and drains:",
        nodes[busiest]
    ));
    r.table(&t);
    let mut s = Table::new(&[
        "process",
        ">messages delivered",
        ">held on arrival",
        ">most held at once",
        "delivery order",
    ]);
    for i in 0..n {
        s.row(vec![
            nodes[i].to_string(),
            delivered_order[i].len().to_string(),
            held_on_arrival[i].to_string(),
            max_held[i].to_string(),
            delivered_order[i]
                .iter()
                .map(|m| format!("m{m}"))
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    r.table(&s);
    // Invariants: everything delivered exactly once everywhere, in an order that extends
    // happened-before (vector order of the timestamps).
    let mut violations = vec![];
    let mut exactly_once = true;
    for (i, order) in delivered_order.iter().enumerate() {
        let mut seen = order.clone();
        seen.sort_unstable();
        exactly_once &= seen == (1..=total as u32).collect::<Vec<_>>();
        for (x, a) in order.iter().enumerate() {
            for b in &order[x + 1..] {
                if stamp_of[*b as usize].1.compare(&stamp_of[*a as usize].1) == CausalOrder::Before
                {
                    violations.push(format!(
                        "{} delivered m{a} before m{b}, but m{b} → m{a}",
                        nodes[i]
                    ));
                }
            }
        }
    }
    r.check(
        "every process delivers every message exactly once",
        exactly_once && total == n * PER_PROCESS as usize,
        format!(
            "{total} messages, {} deliveries",
            delivered_order.iter().map(Vec::len).sum::<usize>()
        ),
    );
    r.check(
        "delivery order respects causality at every process",
        violations.is_empty(),
        violations
            .first()
            .cloned()
            .unwrap_or_else(|| "no message delivered before one it depends on".into()),
    );
    r.check(
        "nothing released early (no timeouts, buffer never full)",
        not_ready == 0,
        format!("{not_ready} early releases"),
    );
    let held_total: u32 = held_on_arrival.iter().sum();
    if held_total == 0 && !broken {
        r.para("With this seed no message arrived before one it depends on; try another --seed.");
    }
    // The slides' question.
    let q = slides_question(&nodes);
    r.para(
        "The slides' question: P3 has VC3 = [0,2,2] and receives m from P1 with ts(m) = [1,3,0]. \
         What does P3 know, and what does it do?",
    );
    r.para(q.text.clone());
    r.check(
        "slides: m waits for P2's third message, then both are delivered",
        q.ok,
        q.detail.clone(),
    );
    if let Some(dir) = plot_dir {
        for (k, (node, vt, _)) in stamp_of.iter().enumerate().skip(1) {
            if let Some(a) = arrows.iter_mut().find(|a| {
                a.from == *node
                    && (a.sent_ms - stamp_of[k].2 as f64 / 1e6).abs() < 1e-9
                    && a.label.is_empty()
            }) {
                a.label = format!("m{k} {}", vt_tuple(vt, &nodes));
            }
        }
        let path = dir.join("causal_space_time.svg");
        let names: Vec<String> = nodes.iter().map(|x| x.to_string()).collect();
        plot::space_time_chart(&path, "Causal multicast: each message labelled with ts(m); orange = held in the buffer until ×", &names, &arrows)?;
        r.para(format!("Chart written: {}", path.display()));
    }
    r.data = json!({
        "messages": stamp_of.iter().enumerate().skip(1).map(|(k, (p, vt, t))| json!({"id": format!("m{k}"), "from": nodes[*p], "vt": vt, "sent_ns": t})).collect::<Vec<_>>(),
        "delivery_order": nodes.iter().zip(&delivered_order).map(|(p, o)| json!({"process": p, "order": o.iter().map(|m| format!("m{m}")).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        "held_on_arrival": held_on_arrival,
        "log": log,
        "slides_question": { "answer": q.text, "ok": q.ok },
    });
    Ok(r)
}

struct Answer {
    text: String,
    ok: bool,
    detail: String,
}

/// Replays the slides' situation in a `CausalBuffer` and explains it.
fn slides_question(nodes: &[NodeId]) -> Answer {
    let (p1, p2, p3) = (nodes[0].clone(), nodes[1].clone(), nodes[2].clone());
    let vt = |a: u64, b: u64, c: u64| {
        VectorTimestamp::from_entries([(p1.clone(), a), (p2.clone(), b), (p3.clone(), c)])
    };
    let mut buf: CausalBuffer<&'static str> =
        CausalBuffer::new(DeliveryConfig::new(16, 600_000 * MS));
    let mut out = vec![];
    // P3's history: P2's first two messages and its own two.
    buf.offer(p2.clone(), &vt(0, 1, 0), "P2#1", 0, &mut out);
    buf.offer(p2.clone(), &vt(0, 2, 0), "P2#2", 0, &mut out);
    buf.offer(p3.clone(), &vt(0, 2, 1), "P3#1", 0, &mut out);
    buf.offer(p3.clone(), &vt(0, 2, 2), "P3#2", 0, &mut out);
    let state = vt_tuple(buf.delivered(), nodes);
    let m = vt(1, 3, 0);
    out.clear();
    buf.offer(p1.clone(), &m, "m", 1, &mut out);
    let held = out.is_empty() && buf.len() == 1;
    let why = waits_for(&p1, &m, buf.delivered(), nodes);
    out.clear();
    buf.offer(p2.clone(), &vt(0, 3, 0), "P2#3", 2, &mut out);
    let after: Vec<&str> = out.iter().map(|d| d.item).collect();
    let final_state = vt_tuple(buf.delivered(), nodes);
    let ok = state == "(0,2,2)"
        && held
        && why == ["message #3 from P2"]
        && after == ["P2#3", "m"]
        && final_state == "(1,3,2)";
    let text = format!(
        "P3 has delivered 2 messages from P2 and sent 2 itself: VC3 = {state}. ts(m)[P1] = 1 = \
         VC3[P1] + 1, so m is the next message from P1 — but ts(m)[P2] = 3 > VC3[P2] = 2: P1 had \
         seen a third message from P2 that P3 has not. The buffer holds m ({}), waiting for {}. \
         When P2's third message (ts [0,3,0]) arrives, the buffer delivers it and then m: {}; \
         VC3 becomes {final_state}.",
        if held { "held" } else { "NOT held" },
        why.join(" and "),
        after.join(", then ")
    );
    let detail =
        format!("held={held}, waits for {why:?}, then delivered {after:?}, VC3={final_state}");
    Answer { text, ok, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim_net::MemoryWire;

    #[test]
    fn slides_answer_is_right() {
        let nodes: Vec<NodeId> = ["P1", "P2", "P3"]
            .iter()
            .map(|s| NodeId::from(*s))
            .collect();
        let a = slides_question(&nodes);
        assert!(a.ok, "{}", a.detail);
    }

    #[test]
    fn causal_order_holds_for_many_seeds_and_breaks_without_the_buffer() {
        let mut broke = 0;
        for seed in 0..25 {
            let r = demo(seed, false, &mut MemoryWire::default(), None).unwrap();
            assert!(r.ok, "seed {seed}: {}", r.render_text());
            let b = demo(seed, true, &mut MemoryWire::default(), None).unwrap();
            broke += (!b.ok) as u32;
        }
        assert!(
            broke >= 10,
            "delivering on arrival must violate causality for most seeds ({broke}/25)"
        );
    }
}
