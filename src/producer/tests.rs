use super::*;
use crate::clock::HybridTimestamp;
use crate::time::ManualTime;
use proptest::prelude::*;

const T0: i64 = 1_790_000_000_000_000_000;

fn physical() -> (Arc<ManualTime>, Arc<PhysicalClock>) {
    let t = Arc::new(ManualTime::new(T0));
    let src: Arc<dyn TimeSource> = t.clone();
    (t, Arc::new(PhysicalClock::new(src)))
}

fn stamper(node: &str, ct: ClockType) -> (Arc<ManualTime>, Stamper) {
    let (t, pc) = physical();
    let cfg = StamperConfig {
        id_seed: Some(7),
        ..StamperConfig::new(node, ct)
    };
    (t, Stamper::new(&cfg, pc, &PersistedClocks::new(node)))
}

fn vt(pairs: &[(&str, u64)]) -> VectorTimestamp {
    VectorTimestamp::from_entries(pairs.iter().map(|(k, v)| (*k, *v)))
}

#[test]
fn fresh_node_stamps_seq_and_lamport_from_one() {
    let (_, mut s) = stamper("A", ClockType::Logical);
    let e = s.stamp("hello").clone();
    assert_eq!((e.seq, e.timestamp.logical_time), (Some(1), Some(1)));
    assert_eq!(e.content, "hello");
    assert_eq!(&*e.timestamp.node_id, "A");
    assert_eq!(e.timestamp.clock_type, ClockType::Logical);
    assert!(
        e.timestamp.vector_time.is_none(),
        "logical messages carry no vector"
    );
    assert!(e.timestamp.hybrid_time.is_none());
    assert!(e.simulated_skew_ms.is_none());
    assert!((e.timestamp.physical_time.unwrap() - 1_790_000_000.0).abs() < 1e-3);
    let e2 = s.stamp("again");
    assert_eq!((e2.seq, e2.timestamp.logical_time), (Some(2), Some(2)));
}

#[test]
fn ids_are_distinct_uuid_v4() {
    let (_, mut s) = stamper("A", ClockType::Physical);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..1000 {
        let id = s.stamp("x").id.clone();
        let u = uuid::Uuid::parse_str(&id).expect("uuid");
        assert_eq!(u.get_version_num(), 4);
        assert!(ids.insert(id));
    }
}

#[test]
fn observe_gives_the_issue_example_values() {
    // Node A sent logical 1, 2, 3 (vector {A:1..3}); B observes them, then sends.
    let (_, mut a) = stamper("A", ClockType::Vector);
    let sent: Vec<Envelope> = (0..3).map(|i| a.stamp(&format!("m{i}")).clone()).collect();
    assert_eq!(sent[2].timestamp.logical_time, Some(3));
    let (_, mut b) = stamper("B", ClockType::Vector);
    for m in &sent {
        assert_eq!(b.observe(&m.timestamp), Observed::Merged);
    }
    let e = b.stamp("x");
    assert_eq!(e.timestamp.logical_time, Some(5));
    assert_eq!(e.timestamp.vector_time, Some(vt(&[("A", 3), ("B", 1)])));
    assert_eq!(e.seq, Some(1));
}

#[test]
fn own_messages_read_back_are_ignored() {
    let (_, mut a) = stamper("A", ClockType::Vector);
    let m = a.stamp("m").clone();
    assert_eq!(a.observe(&m.timestamp), Observed::Own);
    let e = a.stamp("n");
    assert_eq!(e.timestamp.logical_time, Some(2));
    assert_eq!(e.timestamp.vector_time, Some(vt(&[("A", 2)])));
}

#[test]
fn vector_is_maintained_even_when_not_sent() {
    let (_, mut a) = stamper("A", ClockType::Logical);
    a.stamp("1");
    let mut ts = a.last().timestamp.clone();
    ts.node_id = "C".into();
    ts.vector_time = Some(vt(&[("C", 4)]));
    a.observe(&ts);
    a.stamp("2");
    assert_eq!(a.snapshot().vector, vt(&[("A", 2), ("C", 4)]));
    assert!(a.last().timestamp.vector_time.is_none());
}

#[test]
fn hybrid_stamps_follow_physical_time_and_receive_rule() {
    let (t, mut s) = stamper("H", ClockType::Hybrid);
    let h1 = s.stamp("a").timestamp.hybrid_time.unwrap();
    assert_eq!(
        h1,
        HybridTimestamp {
            wall_ms: (T0 / 1_000_000) as u64,
            logical: 0
        }
    );
    let h2 = s.stamp("b").timestamp.hybrid_time.unwrap();
    assert_eq!(
        h2,
        HybridTimestamp {
            wall_ms: h1.wall_ms,
            logical: 1
        }
    );
    // A remote HLC 100 ms ahead (within the 500 ms bound) pulls the clock forward.
    let mut ts = s.last().timestamp.clone();
    ts.node_id = "R".into();
    ts.hybrid_time = Some(HybridTimestamp {
        wall_ms: h1.wall_ms + 100,
        logical: 3,
    });
    assert_eq!(s.observe(&ts), Observed::Merged);
    let h3 = s.stamp("c").timestamp.hybrid_time.unwrap();
    assert_eq!(
        h3,
        HybridTimestamp {
            wall_ms: h1.wall_ms + 100,
            logical: 5
        }
    );
    // One far ahead is refused, counted, and the Lamport part is still merged.
    ts.hybrid_time = Some(HybridTimestamp {
        wall_ms: h1.wall_ms + 10_000,
        logical: 0,
    });
    ts.logical_time = Some(100);
    assert!(matches!(s.observe(&ts), Observed::HybridRefused(_)));
    assert_eq!(s.hybrid_refused_count(), 1);
    t.advance_ms(1000);
    let e = s.stamp("d");
    assert_eq!(e.timestamp.logical_time, Some(102));
    assert_eq!(e.timestamp.hybrid_time.unwrap().wall_ms, h1.wall_ms + 1000);
}

#[test]
fn simulation_is_reported_per_message() {
    let t = Arc::new(ManualTime::new(T0));
    let src: Arc<dyn TimeSource> = t.clone();
    let sim = crate::clock::physical::Simulation {
        skew_ms: 250.0,
        drift_ms_per_s: 0.0,
        random_variation_ms: 0.0,
        seed: Some(1),
    };
    let pc = Arc::new(PhysicalClock::with_simulation(src, sim));
    let mut s = Stamper::new(
        &StamperConfig::new("S", ClockType::Physical),
        pc,
        &PersistedClocks::new("S"),
    );
    let e = s.stamp("x");
    assert_eq!(e.simulated_skew_ms, Some(250.0));
    let ahead_ms = (e.timestamp.physical_time.unwrap() - e.timestamp.timestamp) * 1e3;
    assert!((ahead_ms - 250.0).abs() < 0.01, "{ahead_ms}");
}

#[test]
fn resumes_from_persisted_state() {
    let (_, pc) = physical();
    let mut st = PersistedClocks::new("A");
    st.seq = 4096;
    st.lamport = 5000;
    st.vector = vt(&[("A", 4096), ("B", 7)]);
    let mut s = Stamper::new(&StamperConfig::new("A", ClockType::Vector), pc, &st);
    let e = s.stamp("x");
    assert_eq!((e.seq, e.timestamp.logical_time), (Some(4097), Some(5001)));
    assert_eq!(e.timestamp.vector_time, Some(vt(&[("A", 4097), ("B", 7)])));
    let v = s.values();
    assert_eq!((v.seq, v.lamport), (4097, 5001));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    /// Whatever a node observes, its stamps strictly increase in seq and Lamport time, its
    /// vector stamps strictly increase and dominate everything it observed before, and its
    /// Lamport time exceeds every observed Lamport time.
    #[test]
    fn stamps_dominate_everything_observed(
        ops in proptest::collection::vec(
            prop_oneof![
                Just(None),
                (0usize..3, 0u64..50, 0u64..50).prop_map(Some),
            ],
            1..60,
        )
    ) {
        let (t, mut s) = stamper("N", ClockType::Vector);
        let mut seen = VectorTimestamp::new();
        let mut max_lamport = 0u64;
        let (mut last_seq, mut last_l) = (0u64, 0u64);
        let mut last_v = VectorTimestamp::new();
        for op in ops {
            t.advance_ms(1);
            match op {
                Some((who, l, c)) => {
                    let node = ["P", "Q", "N"][who];
                    let mut ts = s.last().timestamp.clone();
                    ts.node_id = node.into();
                    ts.logical_time = Some(l);
                    ts.vector_time = Some(vt(&[(node, c)]));
                    if node != "N" {
                        seen.merge(ts.vector_time.as_ref().unwrap());
                        max_lamport = max_lamport.max(l);
                    }
                    s.observe(&ts);
                }
                None => {
                    let e = s.stamp("x");
                    let v = e.timestamp.vector_time.clone().unwrap();
                    prop_assert!(e.seq.unwrap() > last_seq);
                    prop_assert!(e.timestamp.logical_time.unwrap() > last_l);
                    prop_assert!(e.timestamp.logical_time.unwrap() > max_lamport);
                    prop_assert!(last_v.happened_before(&v));
                    for (k, c) in seen.iter() {
                        prop_assert!(v.get(k) >= c);
                    }
                    prop_assert_eq!(v.get("N"), e.seq.unwrap());
                    last_seq = e.seq.unwrap();
                    last_l = e.timestamp.logical_time.unwrap();
                    last_v = v;
                }
            }
        }
    }
}
