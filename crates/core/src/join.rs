//! The join's rule, one copy for the endpoint (`service`) and the batch path (`braze-sync`):
//! a ranking is read in rank order, in windows no longer than the list still needs, and each id
//! counts once, at its first place. What the catalog lacks is dropped and counted; the list ends
//! at its count.

use std::collections::HashSet;
use std::ops::Range;

/// Rankings up to this long find repeats by scanning what was met; longer ones keep a set. (A
/// scan is quadratic: at 30 ids it cost the endpoint a microsecond a request.)
const SCAN_UP_TO: usize = 8;

/// The set's hash: fast on short ids, and already in the tree.
type Hasher = foldhash::fast::RandomState;

/// One ranking, read in order.
pub struct RankedIds<'a> {
    ids: &'a [String],
    next: usize,
    met: Met<'a>,
}

enum Met<'a> {
    Scan(Vec<&'a str>),
    Set(HashSet<&'a str, Hasher>),
}

impl<'a> RankedIds<'a> {
    pub fn new(ids: &'a [String]) -> RankedIds<'a> {
        let met = if ids.len() <= SCAN_UP_TO {
            Met::Scan(Vec::with_capacity(ids.len()))
        } else {
            Met::Set(HashSet::with_capacity_and_hasher(
                ids.len().min(1024),
                Hasher::default(),
            ))
        };
        RankedIds { ids, next: 0, met }
    }

    /// Where the next `len` ids are (fewer at the end), or `None` when every id has been read.
    pub fn window(&self, len: usize) -> Option<Range<usize>> {
        (self.next < self.ids.len() && len > 0)
            .then(|| self.next..self.ids.len().min(self.next + len))
    }

    /// The next `len` ids, read: the window after them comes next.
    pub fn read(&mut self, len: usize) -> Option<&'a [String]> {
        let window = self.window(len)?;
        self.next = window.end;
        Some(&self.ids[window])
    }

    /// The ids in `window` (from [`RankedIds::window`]), read.
    pub fn read_window(&mut self, window: Range<usize>) -> &'a [String] {
        self.next = self.next.max(window.end);
        &self.ids[window]
    }

    /// Ids not read yet.
    pub fn unread(&self) -> usize {
        self.ids.len() - self.next
    }

    /// True the first time `id` is met; a repeat (Personalize can rank an id twice when
    /// promotions or several seeds merge) is dropped.
    pub fn first_time(&mut self, id: &'a str) -> bool {
        match &mut self.met {
            Met::Scan(met) if met.contains(&id) => false,
            Met::Scan(met) => {
                met.push(id);
                true
            }
            Met::Set(met) => met.insert(id),
        }
    }
}

/// How many ids to read for a list that still lacks `lacking` items: those, and a margin for the
/// ids the catalog lacks (a fifth, at least 5).
pub fn window_len(lacking: usize) -> usize {
    lacking + (lacking / 5).max(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("i{}", i % 40)).collect()
    }

    #[test]
    fn windows_read_in_order_to_the_end() {
        let ids = ids(10);
        let mut ranking = RankedIds::new(&ids);
        assert_eq!(ranking.read(4).unwrap().len(), 4);
        assert_eq!(ranking.window(4), Some(4..8));
        assert_eq!(ranking.read_window(4..8)[0], "i4");
        assert_eq!(ranking.read(4).unwrap(), &ids[8..]);
        assert_eq!(ranking.unread(), 0);
        assert_eq!(ranking.read(4), None);
    }

    #[test]
    fn each_id_counts_once_in_short_and_long_rankings() {
        for n in [10, 100] {
            let ids = ids(n);
            let mut ranking = RankedIds::new(&ids);
            let firsts = ids.iter().filter(|id| ranking.first_time(id)).count();
            assert_eq!(firsts, n.min(40), "{n} ids");
        }
    }

    #[test]
    fn the_margin_is_a_fifth_and_at_least_five() {
        assert_eq!(window_len(1), 6);
        assert_eq!(window_len(100), 120);
    }
}
