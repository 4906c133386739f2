//! Selection across servers: Marzullo's intersection of the correctness intervals
//! [θ − λ, θ + λ] drops falsetickers, then the survivors' offsets are combined, weighted by
//! 1/λ (RFC 5905 §11.2.3). I/O-free.

/// One server's offer: its offset and the half-width λ of its correctness interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Caller's identifier (e.g. the server index).
    pub id: usize,
    /// θ, nanoseconds.
    pub offset_ns: i64,
    /// λ ≥ 0: δ/2 + dispersion (+ any floor), nanoseconds.
    pub half_width_ns: i64,
}

impl Candidate {
    fn lo(&self) -> i64 {
        self.offset_ns.saturating_sub(self.half_width_ns.max(0))
    }
    fn hi(&self) -> i64 {
        self.offset_ns.saturating_add(self.half_width_ns.max(0))
    }
}

/// The outcome of Marzullo's algorithm.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Ids of the candidates whose intervals all contain the best intersection (truechimers).
    pub survivors: Vec<usize>,
    /// Ids of the others (falsetickers).
    pub falsetickers: Vec<usize>,
    /// The intersection `[lo, hi]` covered by the most intervals.
    pub intersection: (i64, i64),
}

/// Marzullo's algorithm: finds the interval covered by the largest number of candidates.
/// Returns `None` for no candidates, or when that number is not a strict majority (then no
/// clique can be trusted over the others).
///
/// Invariant: every survivor's interval contains `intersection`, no point is covered by more
/// intervals than there are survivors, and survivors are more than half of the candidates.
pub fn marzullo(cands: &[Candidate]) -> Option<Selection> {
    if cands.is_empty() {
        return None;
    }
    // (value, kind): kind 0 = interval opens, 1 = closes. Sorting opens before closes at the same
    // value makes intervals closed (touching intervals intersect).
    let mut edges: Vec<(i64, u8)> = cands
        .iter()
        .flat_map(|c| [(c.lo(), 0u8), (c.hi(), 1u8)])
        .collect();
    edges.sort_unstable();
    let (mut count, mut best, mut best_lo, mut best_hi) = (0usize, 0usize, 0i64, 0i64);
    for (i, &(v, kind)) in edges.iter().enumerate() {
        if kind == 0 {
            count += 1;
            if count > best {
                best = count;
                best_lo = v;
                // The region ends at the next edge (necessarily a close, or an open that only
                // raises the count further and is handled then).
                best_hi = edges.get(i + 1).map_or(v, |e| e.0);
            }
        } else {
            count = count.saturating_sub(1);
        }
    }
    if best * 2 <= cands.len() {
        return None;
    }
    let (survivors, falsetickers): (Vec<&Candidate>, Vec<&Candidate>) = cands
        .iter()
        .partition(|c| c.lo() <= best_lo && c.hi() >= best_hi);
    Some(Selection {
        survivors: survivors.iter().map(|c| c.id).collect(),
        falsetickers: falsetickers.iter().map(|c| c.id).collect(),
        intersection: (best_lo, best_hi),
    })
}

/// Weighted mean of the candidates' offsets with weights 1/max(λ, 1 ns). `None` when empty.
pub fn combine(cands: &[Candidate]) -> Option<i64> {
    let (num, den) = cands.iter().fold((0f64, 0f64), |(n, d), c| {
        let w = 1.0 / (c.half_width_ns.max(1) as f64);
        (n + w * c.offset_ns as f64, d + w)
    });
    (den > 0.0).then(|| (num / den).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: i64 = 1_000_000;

    fn c(id: usize, offset_ms: i64, half_ms: i64) -> Candidate {
        Candidate {
            id,
            offset_ns: offset_ms * MS,
            half_width_ns: half_ms * MS,
        }
    }

    #[test]
    fn falseticker_five_seconds_off_is_dropped() {
        let s = marzullo(&[c(0, 1, 2), c(1, 5_000, 2), c(2, 2, 2)]).unwrap();
        assert_eq!(s.survivors, vec![0, 2]);
        assert_eq!(s.falsetickers, vec![1]);
        assert_eq!(s.intersection, (0, 3 * MS));
    }

    #[test]
    fn single_server_survives_alone() {
        let s = marzullo(&[c(7, 40, 1)]).unwrap();
        assert_eq!(s.survivors, vec![7]);
        assert!(s.falsetickers.is_empty());
    }

    #[test]
    fn no_majority_means_no_selection() {
        assert_eq!(marzullo(&[c(0, 0, 1), c(1, 100, 1)]), None);
        assert_eq!(marzullo(&[]), None);
    }

    #[test]
    fn touching_intervals_intersect() {
        let s = marzullo(&[c(0, 0, 1), c(1, 2, 1)]).unwrap();
        assert_eq!(s.survivors, vec![0, 1]);
        assert_eq!(s.intersection, (MS, MS));
    }

    #[test]
    fn combine_weights_by_inverse_width() {
        // Weights 1/1 and 1/3: (0·1 + 4·⅓)/(4/3) = 1 ms.
        assert_eq!(combine(&[c(0, 0, 1), c(1, 4, 3)]), Some(MS));
        assert_eq!(combine(&[]), None);
    }

    fn cand() -> impl Strategy<Value = (i64, i64)> {
        (-1_000i64..1_000, 0i64..300)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// The intersection found is covered by exactly the survivors, no point is covered by
        /// more intervals (brute force over all edges), and survivors are a majority.
        #[test]
        fn marzullo_finds_the_maximum_clique(raw in proptest::collection::vec(cand(), 1..9)) {
            let cands: Vec<_> = raw.iter().enumerate()
                .map(|(id, &(o, h))| Candidate { id, offset_ns: o, half_width_ns: h }).collect();
            let cover = |x: i64| cands.iter().filter(|c| c.lo() <= x && x <= c.hi()).count();
            let max_cover = cands.iter().flat_map(|c| [c.lo(), c.hi()]).map(cover).max().unwrap_or(0);
            match marzullo(&cands) {
                Some(s) => {
                    prop_assert_eq!(s.survivors.len(), max_cover);
                    prop_assert!(s.survivors.len() * 2 > cands.len());
                    prop_assert!(s.intersection.0 <= s.intersection.1);
                    prop_assert_eq!(cover(s.intersection.0), max_cover);
                    prop_assert_eq!(s.survivors.len() + s.falsetickers.len(), cands.len());
                }
                None => prop_assert!(max_cover * 2 <= cands.len()),
            }
        }

        /// Truechimers (intervals containing the true offset 0) that are a majority always
        /// survive when falsetickers are disjoint from them.
        #[test]
        fn majority_of_truechimers_survives(
            trues in proptest::collection::vec((-100i64..100, 100i64..300), 2..6),
            falses in proptest::collection::vec(5_000i64..10_000, 0..2),
        ) {
            prop_assume!(falses.len() < trues.len());
            let mut cands: Vec<_> = trues.iter().enumerate()
                .map(|(id, &(o, h))| Candidate { id, offset_ns: o, half_width_ns: h }).collect();
            for (k, &o) in falses.iter().enumerate() {
                cands.push(Candidate { id: 100 + k, offset_ns: o * (if k % 2 == 0 { 1 } else { -1 }), half_width_ns: 100 });
            }
            let s = marzullo(&cands).unwrap();
            let mut want: Vec<_> = (0..trues.len()).collect();
            want.sort_unstable();
            prop_assert_eq!(s.survivors, want);
            let combined = combine(&cands.iter().filter(|c| c.id < 100).copied().collect::<Vec<_>>()).unwrap();
            prop_assert!(combined.abs() <= 100);
        }
    }
}
