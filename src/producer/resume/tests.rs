use super::*;
use crate::state::{ClockValues, StateStore};
use proptest::prelude::*;

fn vt(pairs: &[(&str, u64)]) -> VectorTimestamp {
    VectorTimestamp::from_entries(pairs.iter().map(|(k, v)| (*k, *v)))
}

fn sent(seq: u64, lamport: u64, own: Option<u64>, wall_ms: Option<u64>) -> LastSent {
    LastSent {
        seq,
        lamport,
        vector: own.map(|o| vt(&[("N", o), ("peer", 7)])),
        hybrid: wall_ms.map(|w| HybridTimestamp::new(w, 0)),
        stamped_at: 1_000.0,
    }
}

fn exact_file(seq: u64) -> PersistedClocks {
    let mut f = PersistedClocks::new("N");
    f.seq = seq;
    f.lamport = seq;
    f.vector = vt(&[("N", seq)]);
    f
}

/// Floors of a run to topic `t` that started at `start` (seq = Lamport = own entry).
fn floors(start: u64) -> PersistedClocks {
    let mut f = exact_file(start + DEFAULT_RESERVATION + 300);
    f.exact = false;
    f.hybrid = Some(HybridTimestamp::new(5_100, 0));
    f.run = Some(RunRecord {
        topic: "t".into(),
        partition: Some(1),
        start_seq: start,
        start_lamport: start,
        start_own: start,
        start_hybrid: Some(HybridTimestamp::new(1_000, 3)),
    });
    f
}

fn clocks(s: &PersistedClocks) -> (u64, u64, u64) {
    (s.seq, s.lamport, s.vector.get("N"))
}

#[test]
fn a_killed_run_continues_exactly_from_its_last_record() {
    let r = resolve(
        "N",
        "t",
        &floors(10),
        &LogTail::Found(sent(310, 320, Some(310), Some(5_000))),
    );
    assert_eq!(r.source, Source::Log);
    assert_eq!(clocks(&r.state), (310, 320, 310));
    assert_eq!(r.state.vector.get("peer"), 7, "what the record knew");
    assert_eq!(r.state.hybrid, Some(HybridTimestamp::new(5_000, 0)));
    assert!(r.state.is_exact() && r.state.run.is_none());
    assert_eq!(r.warning(true), None);
}

#[test]
fn clocks_a_record_does_not_carry_continue_from_the_run_start() {
    // Lamport clock type: no vector, no HLC in the record. The own entry advanced with seq.
    let r = resolve(
        "N",
        "t",
        &floors(10),
        &LogTail::Found(sent(310, 320, None, None)),
    );
    assert_eq!(clocks(&r.state), (310, 320, 310));
    assert_eq!(r.state.hybrid, Some(HybridTimestamp::new(1_000, 3)));
}

#[test]
fn a_killed_run_with_nothing_in_the_topic_restarts_at_its_start() {
    let r = resolve("N", "t", &floors(10), &LogTail::NotFound { complete: true });
    assert_eq!(r.source, Source::RunStart);
    assert_eq!(clocks(&r.state), (10, 10, 10));
    // Its last record predates the run (the run's records never arrived): the run's start wins.
    let r = resolve(
        "N",
        "t",
        &floors(10),
        &LogTail::Found(sent(4, 4, Some(4), None)),
    );
    assert_eq!(clocks(&r.state), (10, 10, 10));
}

#[test]
fn the_reservation_is_the_fallback_only_when_the_topic_cannot_tell() {
    let f = floors(10);
    for log in [
        LogTail::Unreadable("not authorised to access the topic".into()),
        LogTail::NotFound { complete: false },
    ] {
        let r = resolve("N", "t", &f, &log);
        assert!(matches!(r.source, Source::Reservation(_)), "{log:?}");
        assert_eq!(clocks(&r.state), clocks(&f));
        let w = r.warning(true).expect("a warning");
        assert!(w.contains("reservation") && w.contains("gap"), "{w}");
    }
    let r = resolve(
        "N",
        "other",
        &f,
        &LogTail::Found(sent(310, 320, Some(310), None)),
    );
    assert!(
        matches!(&r.source, Source::Reservation(w) if w.contains("topic 't'")),
        "{r:?}"
    );
    let mut v1 = f.clone();
    v1.run = None;
    let r = resolve("N", "t", &v1, &LogTail::NotFound { complete: true });
    assert!(matches!(r.source, Source::Reservation(_)));
}

#[test]
fn an_exact_file_is_never_undercut_and_a_stale_one_yields_to_the_log() {
    let r = resolve(
        "N",
        "t",
        &exact_file(50),
        &LogTail::Found(sent(40, 40, Some(40), None)),
    );
    assert_eq!(
        (r.source.clone(), clocks(&r.state)),
        (Source::File, (50, 50, 50))
    );
    let r = resolve(
        "N",
        "t",
        &exact_file(50),
        &LogTail::Found(sent(60, 61, Some(60), None)),
    );
    assert_eq!(
        (r.source.clone(), clocks(&r.state)),
        (Source::Log, (60, 61, 60))
    );
    // A newer record without a vector (another clock type, e.g. a --no-state run): the own entry
    // advances with seq.
    let r = resolve(
        "N",
        "t",
        &exact_file(50),
        &LogTail::Found(sent(53, 58, None, None)),
    );
    assert_eq!(clocks(&r.state), (53, 58, 53));
    let r = resolve("N", "t", &exact_file(50), &LogTail::Unreadable("x".into()));
    assert_eq!(
        (r.source.clone(), clocks(&r.state)),
        (Source::File, (50, 50, 50))
    );
    assert_eq!(r.warning(true), None, "an exact file continues exactly");
    // Without a state file (--no-state): zero, and the user is told.
    let r = resolve(
        "N",
        "t",
        &PersistedClocks::new("N"),
        &LogTail::Unreadable("x".into()),
    );
    assert_eq!(clocks(&r.state), (0, 0, 0));
    assert!(r.warning(false).unwrap().contains("from seq 0"));
}

#[test]
fn only_a_killed_run_waits_for_records_still_in_flight() {
    assert!(must_settle(&floors(1), true), "killed run");
    assert!(!must_settle(&exact_file(5), true), "clean exit");
    assert!(
        !must_settle(&PersistedClocks::new("N"), false),
        "no state file: a kill cannot be told from a clean exit"
    );
}

/// One message: seq, Lamport, own entry and HLC advance; Lamport also by `observed` receives.
fn next(s: &PersistedClocks, observed: u64) -> PersistedClocks {
    let mut n = s.clone();
    n.seq += 1;
    n.lamport += 1 + observed;
    n.vector.increment(&"N".into());
    n.vector.merge(&vt(&[("peer", n.seq)]));
    let h = n.hybrid.unwrap_or_default();
    n.hybrid = Some(HybridTimestamp::new(h.wall_ms + 1, 0));
    n
}

fn newest_in(topic: &[PersistedClocks]) -> LogTail {
    match topic.last() {
        Some(l) => LogTail::Found(LastSent {
            seq: l.seq,
            lamport: l.lamport,
            vector: Some(l.vector.clone()),
            hybrid: l.hybrid,
            stamped_at: 0.0,
        }),
        None => LogTail::NotFound { complete: true },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// Runs of a node through the real state store, each sending `n` messages of which the first
    /// `k` reach the topic, then killed or (all delivered) exiting cleanly. At every start the
    /// clocks continue exactly from the topic's newest record of the node (zero before the
    /// first), and the fallback (topic unreadable) is never below a value in the topic or one
    /// the last run, if killed, may have sent.
    #[test]
    fn restarts_continue_exactly_from_the_topic(
        runs in proptest::collection::vec((0u64..40, 0u64..41, any::<bool>(), 0u64..3), 1..8),
        reservation in 4u64..32,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut topic: Vec<PersistedClocks> = Vec::new();
        // What the fallback must cover: the topic's newest record, the killed run's last stamp.
        let mut must_cover = (0u64, 0u64, 0u64);
        for (n, k, clean, observed) in runs {
            let (store, file) = StateStore::open(dir.path(), "N").unwrap();
            let mut store = store.with_reservation(reservation);
            let r = resolve("N", "t", &file, &newest_in(&topic));
            let want = topic.last().map_or((0, 0, 0), clocks);
            prop_assert_eq!(clocks(&r.state), want, "{:?}", r.source);
            prop_assert!(r.state.hybrid >= topic.last().and_then(|l| l.hybrid));
            let fallback = resolve("N", "t", &file, &LogTail::Unreadable("down".into()));
            let f = clocks(&fallback.state);
            prop_assert!(f.0 >= must_cover.0 && f.1 >= must_cover.1 && f.2 >= must_cover.2);

            store.begin("t", Some(0), &r.state).unwrap();
            let mut s = r.state.clone();
            let k = if clean { n } else { k.min(n) };
            for i in 0..n {
                s = next(&s, observed);
                store.cover(&ClockValues {
                    seq: s.seq,
                    lamport: s.lamport,
                    vector: Some(&s.vector),
                    hybrid: s.hybrid,
                }).unwrap();
                if !clean {
                    must_cover = clocks(&s);
                }
                if i < k {
                    topic.push(s.clone());
                }
            }
            if clean {
                store.save(&s).unwrap();
                must_cover = clocks(&s);
            }
        }
    }
}
