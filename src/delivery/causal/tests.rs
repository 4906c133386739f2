use super::*;

const WAIT: i64 = 1_000;

fn vt(pairs: &[(&str, u64)]) -> VectorTimestamp {
    VectorTimestamp::from_entries(pairs.iter().map(|(k, v)| (*k, *v)))
}

fn buf(capacity: usize) -> CausalBuffer<&'static str> {
    CausalBuffer::new(DeliveryConfig::new(capacity, WAIT))
}

fn offer(
    b: &mut CausalBuffer<&'static str>,
    node: &str,
    pairs: &[(&str, u64)],
    item: &'static str,
    now: i64,
) -> (Offer<&'static str>, Vec<Delivered<&'static str>>) {
    let mut out = Vec::new();
    let r = b.offer(NodeId::from(node), &vt(pairs), item, now, &mut out);
    (r, out)
}

fn items(out: &[Delivered<&'static str>]) -> Vec<&'static str> {
    out.iter().map(|d| d.item).collect()
}

#[test]
fn in_order_messages_are_delivered_at_once() {
    let mut b = buf(10);
    let (r, out) = offer(&mut b, "A", &[("A", 1)], "a1", 0);
    assert_eq!(r, Offer::Accepted);
    assert_eq!(items(&out), ["a1"]);
    assert_eq!(out[0].release, Release::Ready);
    assert_eq!(
        (&*out[0].node, out[0].number),
        ("A", SenderNumber::VectorEntry(1))
    );
    let (_, out) = offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
    assert_eq!(items(&out), ["b1"]);
    assert!(b.is_empty());
    assert_eq!(b.delivered(), &vt(&[("A", 1), ("B", 1)]));
}

#[test]
fn slides_example_waits_for_p2s_third_message() {
    // P3 has delivered VC=[0,2,2]; m from P1 with ts(m)=[1,3,0] must wait for P2's 3rd.
    let mut b = buf(10);
    offer(&mut b, "P2", &[("P2", 1)], "p2-1", 0);
    offer(&mut b, "P2", &[("P2", 2)], "p2-2", 0);
    offer(&mut b, "P3", &[("P3", 1)], "p3-1", 0);
    offer(&mut b, "P3", &[("P3", 2)], "p3-2", 0);
    assert_eq!(b.delivered(), &vt(&[("P2", 2), ("P3", 2)]));
    let (_, out) = offer(&mut b, "P1", &[("P1", 1), ("P2", 3)], "m", 0);
    assert!(out.is_empty(), "m must wait");
    assert_eq!(b.len(), 1);
    assert_eq!(b.iter_waiting().copied().collect::<Vec<_>>(), ["m"]);
    let (_, out) = offer(&mut b, "P2", &[("P2", 3)], "p2-3", 0);
    assert_eq!(items(&out), ["p2-3", "m"]);
    assert!(out.iter().all(|d| d.release == Release::Ready));
    assert!(b.is_empty());
}

#[test]
fn own_predecessor_is_awaited_fifo() {
    let mut b = buf(10);
    let (_, out) = offer(&mut b, "A", &[("A", 3)], "a3", 0);
    assert!(out.is_empty());
    let (_, out) = offer(&mut b, "A", &[("A", 2)], "a2", 0);
    assert!(out.is_empty());
    let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", 0);
    assert_eq!(items(&out), ["a1", "a2", "a3"]);
}

#[test]
fn cascade_across_nodes() {
    // c1 needs b1 which needs a1; they arrive in reverse.
    let mut b = buf(10);
    offer(&mut b, "C", &[("A", 1), ("B", 1), ("C", 1)], "c1", 0);
    offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
    assert_eq!(b.len(), 2);
    let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", 0);
    assert_eq!(items(&out), ["a1", "b1", "c1"]);
}

#[test]
fn message_waiting_on_two_nodes_is_woken_by_each_in_turn() {
    let mut b = buf(10);
    offer(&mut b, "C", &[("A", 2), ("B", 1), ("C", 1)], "c1", 0);
    let (_, out) = offer(&mut b, "B", &[("B", 1)], "b1", 0);
    assert_eq!(items(&out), ["b1"]);
    let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", 0);
    assert_eq!(items(&out), ["a1"]);
    let (_, out) = offer(&mut b, "A", &[("A", 2)], "a2", 0);
    assert_eq!(items(&out), ["a2", "c1"]);
}

#[test]
fn duplicates_are_handed_back_whether_waiting_or_delivered() {
    let mut b = buf(10);
    offer(&mut b, "A", &[("A", 1)], "a1", 0);
    let (r, out) = offer(&mut b, "A", &[("A", 1)], "a1-again", 0);
    assert_eq!(r, Offer::Duplicate("a1-again"));
    assert!(out.is_empty());
    offer(&mut b, "A", &[("A", 3)], "a3", 0);
    let (r, _) = offer(&mut b, "A", &[("A", 3)], "a3-again", 0);
    assert_eq!(r, Offer::Duplicate("a3-again"));
    let (_, out) = offer(&mut b, "A", &[("A", 2)], "a2", 0);
    assert_eq!(items(&out), ["a2", "a3"]);
}

#[test]
fn timeout_releases_and_reports_the_missing_predecessor() {
    let mut b = buf(10);
    let (_, out) = offer(&mut b, "B", &[("A", 2), ("B", 1)], "b1", 100);
    assert!(out.is_empty());
    assert_eq!(b.next_deadline(), Some(100 + WAIT));
    let mut out = Vec::new();
    b.expire(100 + WAIT - 1, &mut out);
    assert!(out.is_empty());
    b.expire(100 + WAIT, &mut out);
    assert_eq!(items(&out), ["b1"]);
    assert_eq!(out[0].release, Release::Timeout);
    assert_eq!(
        out[0].missing,
        vec![Gap {
            node: "A".into(),
            first: 1,
            last: 2
        }]
    );
    assert_eq!(b.next_deadline(), None);
    assert_eq!(b.delivered(), &vt(&[("A", 2), ("B", 1)]));
    // The given-up messages arrive later: delivered at once as Late, not duplicates.
    let (r, out) = offer(&mut b, "A", &[("A", 2)], "a2", 5_000);
    assert_eq!(r, Offer::Accepted);
    assert_eq!(out[0].release, Release::Late);
    let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", 5_000);
    assert_eq!(out[0].release, Release::Late);
    // ...but a second copy of a late one is a duplicate.
    let (r, _) = offer(&mut b, "A", &[("A", 1)], "a1-again", 5_000);
    assert!(r.is_duplicate());
    // And the stream goes on normally.
    let (_, out) = offer(&mut b, "A", &[("A", 3)], "a3", 5_000);
    assert_eq!(out[0].release, Release::Ready);
}

#[test]
fn offer_applies_due_timeouts_first() {
    let mut b = buf(10);
    offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
    let (_, out) = offer(&mut b, "C", &[("C", 1)], "c1", WAIT);
    assert_eq!(items(&out), ["b1", "c1"]);
    assert_eq!(out[0].release, Release::Timeout);
}

#[test]
fn early_release_forces_present_predecessors_first() {
    // b2 waits for b1 (present) which waits for a1 (absent): b1 comes first, with the gap.
    let mut b = buf(10);
    offer(&mut b, "B", &[("A", 1), ("B", 2)], "b2", 10);
    offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 20);
    let mut out = Vec::new();
    b.expire(10 + WAIT, &mut out);
    assert_eq!(items(&out), ["b1", "b2"]);
    assert!(out.iter().all(|d| d.release == Release::Timeout));
    assert_eq!(
        out[0].missing,
        vec![Gap {
            node: "A".into(),
            first: 1,
            last: 1
        }]
    );
    assert!(out[1].missing.is_empty());
}

#[test]
fn early_release_wakes_others_waiting_on_the_skipped_messages() {
    let mut b = buf(10);
    offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
    offer(&mut b, "C", &[("A", 1), ("C", 1)], "c1", 5);
    let mut out = Vec::new();
    b.expire(WAIT, &mut out);
    assert_eq!(items(&out), ["c1", "b1"]);
    // c1 was woken by giving up a1 (concurrent with b1), b1 was the forced one. a1 is in
    // c1's causal past and was not delivered: c1 comes out after a skip, not ready.
    let b1 = &out[1];
    assert_eq!(b1.release, Release::Timeout);
    assert_eq!(b1.missing.len(), 1);
    assert_eq!(out[0].release, Release::AfterSkip);
    assert!(out[0].missing.is_empty());
    assert!(b.is_empty());
    // So is a later arrival that depends on a1, until a1 comes (late).
    let (_, out) = offer(&mut b, "C", &[("A", 1), ("C", 2)], "c2", WAIT);
    assert_eq!(out[0].release, Release::AfterSkip);
    let (_, out) = offer(&mut b, "A", &[("A", 1)], "a1", WAIT);
    assert_eq!(out[0].release, Release::Late);
    let (_, out) = offer(&mut b, "C", &[("A", 1), ("C", 3)], "c3", WAIT);
    assert_eq!(out[0].release, Release::Ready);
    // A message that does not depend on what was given up is ready.
    let (_, out) = offer(&mut b, "D", &[("D", 1)], "d1", WAIT);
    assert_eq!(out[0].release, Release::Ready);
}

#[test]
fn skipping_stops_at_a_present_message() {
    // b1 needs A up to 3; a2 is present (waiting for a1). Give up a1 only, then a2, then a3.
    let mut b = buf(10);
    offer(&mut b, "B", &[("A", 3), ("B", 1)], "b1", 0);
    offer(&mut b, "A", &[("A", 2)], "a2", 1);
    let mut out = Vec::new();
    b.expire(WAIT, &mut out);
    assert_eq!(items(&out), ["a2", "b1"]);
    assert_eq!(
        out[0].missing,
        vec![Gap {
            node: "A".into(),
            first: 1,
            last: 1
        }]
    );
    assert_eq!(
        out[1].missing,
        vec![Gap {
            node: "A".into(),
            first: 3,
            last: 3
        }]
    );
}

#[test]
fn buffer_full_releases_the_oldest() {
    let mut b = buf(2);
    offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 0);
    offer(&mut b, "C", &[("A", 2), ("C", 1)], "c1", 0);
    let (_, out) = offer(&mut b, "D", &[("A", 3), ("D", 1)], "d1", 0);
    assert_eq!(items(&out), ["b1"]);
    assert_eq!(out[0].release, Release::BufferFull);
    assert_eq!(
        out[0].missing,
        vec![Gap {
            node: "A".into(),
            first: 1,
            last: 1
        }]
    );
    assert_eq!(b.len(), 2);
}

#[test]
fn zero_capacity_releases_every_waiting_message_at_once() {
    let mut b = buf(0);
    let (_, out) = offer(&mut b, "A", &[("A", 2)], "a2", 0);
    assert_eq!(out[0].release, Release::BufferFull);
    assert!(b.is_empty());
    let (_, out) = offer(&mut b, "A", &[("A", 3)], "a3", 0);
    assert_eq!(out[0].release, Release::AfterSkip, "a1 was given up");
}

#[test]
fn drain_releases_in_causal_order() {
    let mut b = buf(10);
    offer(&mut b, "C", &[("B", 1), ("C", 1)], "c1", 0);
    offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 1);
    offer(&mut b, "D", &[("D", 2)], "d2", 2);
    let mut out = Vec::new();
    b.drain(Release::Timeout, &mut out);
    assert_eq!(items(&out), ["b1", "c1", "d2"]);
    assert!(b.is_empty());
    assert_eq!(b.next_deadline(), None);
}

#[test]
fn malformed_vectors_never_panic_and_are_not_lost() {
    let mut b = buf(4);
    // Vector without its own node.
    let (r, out) = offer(&mut b, "A", &[("B", 1)], "no-own", 0);
    assert_eq!(r, Offer::Accepted);
    assert_eq!(out[0].release, Release::Late);
    // Empty vector.
    let (_, out) = offer(&mut b, "A", &[], "empty", 0);
    assert_eq!(out[0].release, Release::Late);
    // Huge counters.
    let (_, out) = offer(&mut b, "M", &[("M", u64::MAX), ("N", u64::MAX)], "max", 0);
    assert!(out.is_empty());
    let mut out = Vec::new();
    b.drain(Release::Timeout, &mut out);
    assert_eq!(items(&out), ["max"]);
    assert_eq!(b.delivered().get("M"), u64::MAX);
    let (r, _) = offer(&mut b, "M", &[("M", u64::MAX)], "max-again", 0);
    assert!(r.is_duplicate());
    // A dependency cycle: x (A:1) needs B:1, y (B:1) needs A:1.
    offer(&mut b, "A", &[("A", 1), ("B", 1)], "x", 0);
    offer(&mut b, "B", &[("A", 1), ("B", 1)], "y", 0);
    let mut out = Vec::new();
    b.drain(Release::Timeout, &mut out);
    let mut got = items(&out);
    got.sort();
    assert_eq!(got, ["x", "y"]);
    assert!(b.is_empty());
}

#[test]
fn clock_stepping_back_does_not_hold_messages_forever() {
    let mut b = buf(10);
    offer(&mut b, "B", &[("A", 1), ("B", 1)], "b1", 1_000_000);
    offer(&mut b, "C", &[("A", 1), ("C", 1)], "c1", 0);
    let mut out = Vec::new();
    b.expire(1_000_000 + WAIT, &mut out);
    assert_eq!(out.len(), 2);
}

#[test]
fn restored_checkpoint_releases_at_once_and_keeps_given_up_counts_late() {
    let mut b = buf(10);
    offer(&mut b, "A", &[("A", 1)], "a1", 0);
    offer(&mut b, "B", &[("A", 3), ("B", 1)], "b1", 0);
    let mut out = Vec::new();
    b.expire(WAIT, &mut out);
    assert_eq!(items(&out), ["b1"]);
    let cp = b.checkpoint();
    assert_eq!(cp[0].skipped, vec![(2, 3)]);

    let mut r = buf(10);
    let mut out = Vec::new();
    r.restore(&cp, &mut out);
    assert!(out.is_empty());
    assert_eq!(r.delivered(), b.delivered());
    assert_eq!(r.checkpoint(), cp);
    // A successor of everything delivered before: at once, but after a skip (a2, a3).
    let (_, out) = offer(&mut r, "B", &[("A", 3), ("B", 2)], "b2", 0);
    assert_eq!(out[0].release, Release::AfterSkip);
    // A given-up message arriving after the restart: late, not a duplicate.
    let (res, out) = offer(&mut r, "A", &[("A", 2)], "a2", 0);
    assert_eq!(res, Offer::Accepted);
    assert_eq!(out[0].release, Release::Late);
    // A delivered one read again: a duplicate.
    let (res, _) = offer(&mut r, "A", &[("A", 1)], "a1", 0);
    assert!(res.is_duplicate());
}

#[test]
fn assumed_predecessors_release_waiting_messages_as_ready() {
    let mut b = buf(10);
    offer(&mut b, "B", &[("A", 7), ("B", 1)], "b1", 0);
    assert_eq!(b.awaited(), vec![(NodeId::from("A"), 7)]);
    let mut out = Vec::new();
    b.assume_delivered(&NodeId::from("A"), 7, &mut out);
    assert_eq!(items(&out), ["b1"]);
    assert_eq!(out[0].release, Release::Ready);
    assert!(out[0].missing.is_empty());
    assert!(b.awaited().is_empty());
}

#[test]
fn nodes_first_seen_out_of_name_order_are_tracked_separately() {
    let mut b = buf(10);
    offer(&mut b, "z", &[("z", 1)], "z1", 0);
    offer(&mut b, "a", &[("a", 1)], "a1", 0);
    offer(&mut b, "m", &[("a", 1), ("m", 1), ("z", 1)], "m1", 0);
    assert_eq!(b.delivered(), &vt(&[("a", 1), ("m", 1), ("z", 1)]));
}

mod offer_with {
    use super::*;
    use proptest::prelude::*;

    /// A message as a test offers it: sender, optional vector, own count when there is none.
    type Msg = (u8, Option<Vec<(u8, u64)>>, u64);

    fn node(i: u8) -> NodeId {
        NodeId::from(format!("n{i}"))
    }

    fn stamp(m: &Msg) -> Option<VectorTimestamp> {
        m.1.as_ref()
            .map(|v| VectorTimestamp::from_entries(v.iter().map(|&(k, c)| (node(k), c))))
    }

    /// What a buffer delivers, in order: (node, number, item, release, missing).
    fn run(
        msgs: &[Msg],
        capacity: usize,
        with: bool,
    ) -> Vec<(String, u64, usize, Release, String)> {
        let mut b: CausalBuffer<(usize, Option<VectorTimestamp>)> =
            CausalBuffer::new(DeliveryConfig::new(capacity, WAIT));
        let mut out = Vec::new();
        let mut verdicts = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let now = i as i64 * 300;
            let vt = stamp(m);
            let r = if with {
                b.offer_with(
                    node(m.0),
                    (i, vt),
                    |t| t.1.as_ref(),
                    |_| {},
                    m.2,
                    now,
                    &mut out,
                )
            } else {
                // The stamp `offer_with` stands for: the vector, or `{node: count}`.
                let fifo = VectorTimestamp::from_entries([(node(m.0), m.2)]);
                let by = vt.clone().unwrap_or(fifo);
                b.offer(node(m.0), &by, (i, vt), now, &mut out)
            };
            verdicts.push(r.is_duplicate());
        }
        b.drain(Release::Timeout, &mut out);
        let mut seen: Vec<_> = out
            .into_iter()
            .map(|d| {
                let missing = format!("{:?}", d.missing);
                (
                    d.node.to_string(),
                    d.number.get(),
                    d.item.0,
                    d.release,
                    missing,
                )
            })
            .collect();
        seen.extend(
            verdicts
                .iter()
                .enumerate()
                .filter(|(_, dup)| **dup)
                .map(|(i, _)| (String::new(), 0, i, Release::Late, "duplicate".into())),
        );
        seen
    }

    proptest! {
        /// Reading the stamp from the message changes nothing: every delivery, release and
        /// duplicate verdict is what `offer` with the same stamp gives.
        #[test]
        fn matches_offer_with_the_same_stamp(
            msgs in proptest::collection::vec(
                (
                    0u8..3,
                    proptest::option::of(proptest::collection::vec((0u8..3, 0u64..4), 0..4)),
                    0u64..4,
                ),
                0..24,
            ),
            capacity in 0usize..6,
        ) {
            prop_assert_eq!(run(&msgs, capacity, true), run(&msgs, capacity, false));
        }
    }
}

#[test]
fn offer_with_keeps_only_what_waits() {
    // (name, kept?)
    let mut b: CausalBuffer<(&str, bool)> = CausalBuffer::new(DeliveryConfig::new(10, WAIT));
    let mut out = Vec::new();
    let (b1, a1) = (vt(&[("A", 1), ("B", 1)]), vt(&[("A", 1)]));
    let keep = |m: &mut (&str, bool)| m.1 = true;
    b.offer_with(
        "B".into(),
        ("b1", false),
        |_| Some(&b1),
        keep,
        0,
        0,
        &mut out,
    );
    assert!(out.is_empty(), "b1 waits for a1");
    b.offer_with(
        "A".into(),
        ("a1", false),
        |_| Some(&a1),
        keep,
        0,
        1,
        &mut out,
    );
    let got: Vec<_> = out.iter().map(|d| d.item).collect();
    assert_eq!(
        got,
        [("a1", false), ("b1", true)],
        "only the waiting message was kept"
    );
    // A duplicate is handed back as it came.
    let dup = b.offer_with(
        "A".into(),
        ("a1 again", false),
        |_| Some(&a1),
        keep,
        0,
        2,
        &mut out,
    );
    assert!(matches!(dup, Offer::Duplicate(("a1 again", false))));
}
