//! The `vector` demo: the slides' worked example of vector clocks, replayed with the library's
//! `VectorClock`, and a check that vector order is exactly happened-before on a seeded exchange.

use crate::exchange;
use crate::report::{Report, Table};
use crate::sim_net::Wire;
use anyhow::{anyhow, Result};
use kafka_timesync::clock::{CausalOrder, VectorClock, VectorTimestamp};
use kafka_timesync::NodeId;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy)]
enum Step {
    Send {
        msg: &'static str,
        from: usize,
        to: usize,
    },
    Recv {
        msg: &'static str,
    },
    Local {
        at: usize,
    },
}

struct Replay {
    /// (process, description, timestamp after the event)
    events: Vec<(usize, String, VectorTimestamp)>,
    /// message → its timestamp ts(m)
    stamps: BTreeMap<&'static str, VectorTimestamp>,
}

fn replay(steps: &[Step], nodes: &[NodeId]) -> Result<Replay> {
    let clocks: Vec<VectorClock> = nodes.iter().map(|n| VectorClock::new(n.clone())).collect();
    let mut in_flight: BTreeMap<&str, (usize, usize, VectorTimestamp)> = BTreeMap::new();
    let mut out = Replay {
        events: vec![],
        stamps: BTreeMap::new(),
    };
    for s in steps {
        match *s {
            Step::Send { msg, from, to } => {
                let ts = clocks[from].send_stamp();
                out.events
                    .push((from, format!("send {msg} to {}", nodes[to]), ts.clone()));
                out.stamps.insert(msg, ts.clone());
                in_flight.insert(msg, (from, to, ts));
            }
            Step::Recv { msg } => {
                let (from, to, ts) = in_flight
                    .remove(msg)
                    .ok_or_else(|| anyhow!("{msg} not in flight"))?;
                let after = clocks[to].receive_event(&ts);
                out.events
                    .push((to, format!("receive {msg} from {}", nodes[from]), after));
            }
            Step::Local { at } => {
                // A local event counts like a send: the own entry goes up by one.
                let ts = clocks[at].send_stamp();
                out.events.push((at, "local event".to_string(), ts));
            }
        }
    }
    Ok(out)
}

fn relation_words(o: CausalOrder) -> &'static str {
    match o {
        CausalOrder::Before => "may causally precede",
        CausalOrder::After => "may causally follow",
        CausalOrder::Equal => "are the same event",
        CausalOrder::Concurrent => "may conflict (concurrent)",
    }
}

fn yes(b: bool) -> String {
    if b { "Yes" } else { "No" }.to_string()
}

/// The `vector` demo.
pub fn demo(seed: u64, wire: &mut dyn Wire) -> Result<Report> {
    let mut r = Report::new("vector", "vector clocks: the slides' worked example");
    let nodes: Vec<NodeId> = ["P1", "P2", "P3"]
        .iter()
        .map(|s| NodeId::from(*s))
        .collect();
    r.para(
        "Each process Pi keeps a vector VCi. Before every event Pi increments VCi[i]; a message \
         carries ts(m) = VCi after that increment; the receiver takes the element-wise maximum and \
         then increments its own entry. ts(a) < ts(b) (every entry <=, one entry <) means a may \
         causally precede b; if neither is smaller the two may conflict.",
    );
    use Step::*;
    let a = [
        Send {
            msg: "m1",
            from: 1,
            to: 0,
        },
        Recv { msg: "m1" },
        Send {
            msg: "m2",
            from: 0,
            to: 1,
        },
        Recv { msg: "m2" },
        Send {
            msg: "m3",
            from: 1,
            to: 0,
        },
        Recv { msg: "m3" },
        Send {
            msg: "m4",
            from: 0,
            to: 2,
        },
        Recv { msg: "m4" },
    ];
    let b = [
        Send {
            msg: "m1",
            from: 1,
            to: 0,
        },
        Recv { msg: "m1" },
        Send {
            msg: "m3",
            from: 0,
            to: 1,
        },
        Local { at: 0 },
        Send {
            msg: "m2",
            from: 0,
            to: 2,
        },
        Recv { msg: "m3" },
        Send {
            msg: "m4",
            from: 1,
            to: 2,
        },
        Recv { msg: "m4" },
        Recv { msg: "m2" },
    ];
    let mut analysis = Table::new(&[
        "situation",
        "ts(m2)",
        "ts(m4)",
        "ts(m2) < ts(m4)",
        "ts(m2) > ts(m4)",
        "conclusion",
    ]);
    let mut data = vec![];
    let expected = [
        ("a", "(2,1,0)", "(4,3,0)", CausalOrder::Before),
        ("b", "(4,1,0)", "(2,3,0)", CausalOrder::Concurrent),
    ];
    for ((label, steps), (_, want2, want4, want_rel)) in
        [("a", &a[..]), ("b", &b[..])].into_iter().zip(expected)
    {
        let rep = replay(steps, &nodes)?;
        let mut t = Table::new(&["process", "event", "vector clock after"]);
        for (p, what, ts) in &rep.events {
            t.row(vec![
                nodes[*p].to_string(),
                what.clone(),
                exchange::vt_tuple(ts, &nodes),
            ]);
        }
        r.para(format!(
            "Situation ({label}), events in the order they happen:"
        ));
        r.table(&t);
        let m2 = rep.stamps.get("m2").cloned().unwrap_or_default();
        let m4 = rep.stamps.get("m4").cloned().unwrap_or_default();
        let rel = m2.compare(&m4);
        let (s2, s4) = (
            exchange::vt_tuple(&m2, &nodes),
            exchange::vt_tuple(&m4, &nodes),
        );
        analysis.row(vec![
            format!("({label})"),
            s2.clone(),
            s4.clone(),
            yes(rel == CausalOrder::Before),
            yes(rel == CausalOrder::After),
            format!("m2 and m4 {}", relation_words(rel)).replace(
                "m2 and m4 may causally precede",
                "m2 may causally precede m4",
            ),
        ]);
        r.check(
            format!(
                "situation ({label}): ts(m2)={want2}, ts(m4)={want4}, {}",
                want_rel.as_str()
            ),
            s2 == want2 && s4 == want4 && rel == want_rel,
            format!("got ts(m2)={s2}, ts(m4)={s4}: {}", rel.as_str()),
        );
        // Every pair of messages of this situation.
        let mut pairs = Table::new(&["m", "ts(m)", "m'", "ts(m')", "relation"]);
        let msgs: Vec<_> = rep.stamps.iter().collect();
        for (i, (ma, ta)) in msgs.iter().enumerate() {
            for (mb, tb) in &msgs[i + 1..] {
                pairs.row(vec![
                    ma.to_string(),
                    exchange::vt_tuple(ta, &nodes),
                    mb.to_string(),
                    exchange::vt_tuple(tb, &nodes),
                    ta.compare(tb).as_str().to_string(),
                ]);
            }
        }
        r.para(format!(
            "Situation ({label}), every pair of messages (before / after / concurrent):"
        ));
        r.table(&pairs);
        data.push(json!({
            "situation": label,
            "events": rep.events.iter().map(|(p, w, ts)| json!({"process": nodes[*p], "event": w, "vector": ts})).collect::<Vec<_>>(),
            "messages": rep.stamps,
            "m2_vs_m4": rel.as_str(),
        }));
    }
    r.para("The slides' analysis table:");
    r.table(&analysis);

    // Vector order is exactly happened-before, on a seeded random exchange.
    let ex = exchange::run(&["P1", "P2", "P3"], 12, seed, wire, &mut |_, t| t)?;
    let (mut pairs, mut hb, mut agree, mut conc) = (0u64, 0u64, 0u64, 0u64);
    for x in &ex.events {
        for y in &ex.events {
            if x.idx == y.idx {
                continue;
            }
            pairs += 1;
            let truth = ex.happened_before(x.idx, y.idx);
            hb += truth as u64;
            conc += ex.concurrent(x.idx, y.idx) as u64;
            agree += (truth == (x.vector.compare(&y.vector) == CausalOrder::Before)) as u64;
        }
    }
    r.para(format!(
        "On a seeded exchange of 12 messages between P1, P2, P3 ({} events, {pairs} ordered pairs: \
         {hb} related by happened-before, {conc} concurrent), ts(a) < ts(b) held exactly when a \
         happened before b for {agree} of {pairs} pairs.",
        ex.events.len()
    ));
    r.check(
        "vector order = happened-before on every pair of the seeded exchange",
        agree == pairs,
        format!("{agree}/{pairs} pairs agree"),
    );
    r.data = json!({ "situations": data, "exchange": { "events": ex.events.len(), "pairs": pairs, "happened_before": hb, "concurrent": conc, "agree": agree } });
    Ok(r)
}
