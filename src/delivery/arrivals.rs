//! A slab of waiting messages threaded on a list in arrival order, with per-entry deadlines.

const NIL: usize = usize::MAX;

struct Entry<S> {
    value: Option<S>,
    deadline: i64,
    prev: usize,
    next: usize,
}

/// Waiting entries with stable ids (reused after removal), O(1) insert/remove, and O(1) access to
/// the oldest. Deadlines are kept non-decreasing in arrival order (a deadline earlier than the
/// newest one is raised to it), so the oldest entry always has the earliest deadline even if the
/// caller's clock steps backwards.
pub(crate) struct Arrivals<S> {
    entries: Vec<Entry<S>>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
    len: usize,
}

impl<S> Arrivals<S> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `value` as the newest entry and returns its id.
    pub(crate) fn push(&mut self, value: S, deadline: i64) -> usize {
        let deadline = match self.entries.get(self.tail) {
            Some(t) => deadline.max(t.deadline),
            None => deadline,
        };
        let entry = Entry {
            value: Some(value),
            deadline,
            prev: self.tail,
            next: NIL,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id] = entry;
                id
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        };
        match self.entries.get_mut(self.tail) {
            Some(t) => t.next = id,
            None => self.head = id,
        }
        self.tail = id;
        self.len += 1;
        id
    }

    /// Removes the entry `id`, returning its value (None if `id` is not live).
    pub(crate) fn remove(&mut self, id: usize) -> Option<S> {
        let e = self.entries.get_mut(id)?;
        let value = e.value.take()?;
        let (prev, next) = (e.prev, e.next);
        match self.entries.get_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.entries.get_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        self.free.push(id);
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn get(&self, id: usize) -> Option<&S> {
        self.entries.get(id).and_then(|e| e.value.as_ref())
    }

    pub(crate) fn get_mut(&mut self, id: usize) -> Option<&mut S> {
        self.entries.get_mut(id).and_then(|e| e.value.as_mut())
    }

    /// The id and deadline of the oldest live entry.
    pub(crate) fn oldest(&self) -> Option<(usize, i64)> {
        self.entries.get(self.head).map(|e| (self.head, e.deadline))
    }

    /// Live values, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &S> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || {
            let e = self.entries.get(at)?;
            at = e.next;
            e.value.as_ref()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_arrival_order_through_removals_and_reuse() {
        let mut a = Arrivals::new();
        let x = a.push('x', 10);
        let y = a.push('y', 20);
        let z = a.push('z', 30);
        assert_eq!(a.oldest(), Some((x, 10)));
        assert_eq!(a.remove(y), Some('y'));
        assert_eq!(a.remove(y), None);
        assert_eq!(a.iter().copied().collect::<String>(), "xz");
        let w = a.push('w', 40);
        assert_eq!(w, y, "freed ids are reused");
        assert_eq!(a.iter().copied().collect::<String>(), "xzw");
        assert_eq!(a.remove(x), Some('x'));
        assert_eq!(a.oldest(), Some((z, 30)));
        assert_eq!(a.len(), 2);
        a.remove(z);
        a.remove(w);
        assert_eq!(a.oldest(), None);
        assert_eq!(a.iter().count(), 0);
    }

    #[test]
    fn deadlines_never_decrease_in_arrival_order() {
        let mut a = Arrivals::new();
        a.push(1, 100);
        let b = a.push(2, 50);
        let first = a.oldest().map(|(id, _)| id);
        a.remove(first.unwrap_or(usize::MAX));
        assert_eq!(a.oldest(), Some((b, 100)));
    }
}
