//! A bounded set of `u64` counts stored as disjoint inclusive ranges.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent inclusive ranges `start..=end`, keyed by start.
///
/// At most `max_ranges` ranges are kept; beyond that the lowest range is forgotten, which bounds
/// memory whatever the input.
#[derive(Debug, Clone)]
pub(crate) struct RangeSet {
    ranges: BTreeMap<u64, u64>,
    max_ranges: usize,
}

impl RangeSet {
    pub(crate) fn new(max_ranges: usize) -> Self {
        Self {
            ranges: BTreeMap::new(),
            max_ranges: max_ranges.max(1),
        }
    }

    /// The lowest value, if any.
    pub(crate) fn first(&self) -> Option<u64> {
        self.ranges.first_key_value().map(|(&s, _)| s)
    }

    pub(crate) fn contains(&self, v: u64) -> bool {
        matches!(self.ranges.range(..=v).next_back(), Some((_, &e)) if e >= v)
    }

    /// Adds `v`; false when it was already present.
    pub(crate) fn insert(&mut self, v: u64) -> bool {
        if self.contains(v) {
            return false;
        }
        self.insert_range(v, v);
        true
    }

    /// Adds every value of `first..=last` (nothing when `first > last`).
    pub(crate) fn insert_range(&mut self, first: u64, last: u64) {
        if first > last {
            return;
        }
        let (mut start, mut end) = (first, last);
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e.saturating_add(1) >= start {
                start = s;
                end = end.max(e);
                self.ranges.remove(&s);
            }
        }
        while let Some((&s, &e)) = self.ranges.range(start..).next() {
            if s > end.saturating_add(1) {
                break;
            }
            end = end.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, end);
        while self.ranges.len() > self.max_ranges {
            self.ranges.pop_first();
        }
    }

    /// Removes `v`; false when it was not present.
    pub(crate) fn remove(&mut self, v: u64) -> bool {
        let Some((&s, &e)) = self.ranges.range(..=v).next_back() else {
            return false;
        };
        if e < v {
            return false;
        }
        self.ranges.remove(&s);
        if s < v {
            self.ranges.insert(s, v - 1);
        }
        if v < e {
            self.ranges.insert(v + 1, e);
        }
        while self.ranges.len() > self.max_ranges {
            self.ranges.pop_first();
        }
        true
    }

    /// The ranges `(start, end)`, increasing.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(s, e)| (*s, *e))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_adjacent_and_overlapping_ranges() {
        let mut r = RangeSet::new(16);
        r.insert_range(1, 3);
        r.insert_range(7, 9);
        assert_eq!(r.len(), 2);
        r.insert_range(4, 6);
        assert_eq!(r.len(), 1);
        assert!((1..=9).all(|v| r.contains(v)));
        assert!(!r.contains(0) && !r.contains(10));
        r.insert_range(0, 20);
        assert_eq!(r.len(), 1);
        assert!(r.contains(20));
    }

    #[test]
    fn remove_splits_and_insert_reports_novelty() {
        let mut r = RangeSet::new(16);
        r.insert_range(1, 5);
        assert!(r.remove(3));
        assert!(!r.remove(3));
        assert_eq!(r.len(), 2);
        assert!(r.contains(2) && r.contains(4) && !r.contains(3));
        assert!(r.insert(3));
        assert!(!r.insert(3));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut r = RangeSet::new(16);
        r.insert_range(u64::MAX - 1, u64::MAX);
        r.insert_range(0, 0);
        assert!(r.remove(u64::MAX));
        assert!(r.remove(0));
        assert!(r.contains(u64::MAX - 1));
        r.insert_range(5, 4);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn bounded_by_forgetting_the_lowest_ranges() {
        let mut r = RangeSet::new(4);
        for v in 0..10 {
            r.insert(v * 2);
        }
        assert_eq!(r.len(), 4);
        assert!(!r.contains(0));
        assert!(r.contains(18));
    }
}
