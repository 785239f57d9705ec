//! A map that remembers which key was used least recently, and how much each entry weighs, so
//! its owner can keep it within a budget by dropping the least recently used first.
//!
//! Recency is a counter ticked on every use; an ordered index from tick to key finds the oldest
//! entry. A hit, the operation every request makes for each item, only notes its tick in the
//! entry: the index is brought up to date lazily, when an entry that looks oldest turns out to
//! have been used since and is moved to its real place. So a hit is one hash lookup, and
//! eviction stays O(log n) amortized, with no unsafe code.

use std::collections::{BTreeMap, HashMap};

/// Keys are item ids, some of them a caller's (`/rankings`): a hash with a per-process random
/// seed, quicker than the standard library's SipHash on short keys.
type Hasher = foldhash::fast::RandomState;

pub struct Lru<V> {
    entries: HashMap<String, Slot<V>, Hasher>,
    /// Tick → key, oldest first: each key once, at its `indexed` tick, which may be older than
    /// its last use.
    recency: BTreeMap<u64, String>,
    tick: u64,
    weight: usize,
}

struct Slot<V> {
    value: V,
    /// The tick of the last use.
    used: u64,
    /// The tick the key is filed under in `recency`.
    indexed: u64,
    weight: usize,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Lru {
            entries: HashMap::default(),
            recency: BTreeMap::new(),
            tick: 0,
            weight: 0,
        }
    }
}

impl<V> Lru<V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The weights of all entries together.
    #[cfg(test)]
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// The value, now the most recently used.
    pub fn get(&mut self, key: &str) -> Option<&V> {
        let slot = self.entries.get_mut(key)?;
        self.tick += 1;
        slot.used = self.tick;
        Some(&slot.value)
    }

    /// Adds or replaces the entry, as the most recently used.
    pub fn insert(&mut self, key: String, value: V, weight: usize) {
        self.remove(&key);
        self.tick += 1;
        self.recency.insert(self.tick, key.clone());
        self.weight += weight;
        self.entries.insert(
            key,
            Slot {
                value,
                used: self.tick,
                indexed: self.tick,
                weight,
            },
        );
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let slot = self.entries.remove(key)?;
        self.recency.remove(&slot.indexed);
        self.weight -= slot.weight;
        Some(slot.value)
    }

    /// Takes out the least recently used entry.
    pub fn pop_oldest(&mut self) -> Option<(String, V)> {
        loop {
            let (tick, key) = self.recency.pop_first()?;
            let slot = self.entries.get_mut(&key)?;
            if slot.used == tick {
                let slot = self.entries.remove(&key)?;
                self.weight -= slot.weight;
                return Some((key, slot.value));
            }
            // Used since it was filed: file it under its last use, and look again.
            slot.indexed = slot.used;
            self.recency.insert(slot.used, key);
        }
    }

    /// Drops least recently used entries until at most `len` entries weighing at most `weight`
    /// are left.
    pub fn shrink_to(&mut self, len: usize, weight: usize) {
        while self.len() > len || self.weight > weight {
            if self.pop_oldest().is_none() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys, least recently used first.
    fn keys(lru: &Lru<u32>) -> Vec<&str> {
        let mut keys: Vec<_> = lru
            .entries
            .iter()
            .map(|(k, s)| (s.used, k.as_str()))
            .collect();
        keys.sort();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    #[test]
    fn use_order_decides_what_goes_first() {
        let mut lru = Lru::default();
        lru.insert("a".into(), 1, 10);
        lru.insert("b".into(), 2, 20);
        lru.insert("c".into(), 3, 30);
        assert_eq!(lru.get("a"), Some(&1));
        assert_eq!(keys(&lru), ["b", "c", "a"]);
        assert_eq!(lru.weight(), 60);

        lru.shrink_to(10, 15);
        assert_eq!(keys(&lru), ["a"], "b then c went, the least recently used");
        assert_eq!(lru.weight(), 10);
        assert_eq!(lru.get("b"), None);
    }

    #[test]
    fn replacing_an_entry_keeps_the_weights_right() {
        let mut lru = Lru::default();
        lru.insert("a".into(), 1, 10);
        lru.insert("a".into(), 2, 5);
        assert_eq!((lru.len(), lru.weight()), (1, 5));
        assert_eq!(lru.remove("a"), Some(2));
        assert_eq!((lru.len(), lru.weight()), (0, 0));
        assert!(lru.entries.is_empty() && lru.recency.is_empty());
        lru.shrink_to(0, 0);
        assert_eq!(lru.pop_oldest(), None);
    }

    #[test]
    fn entries_used_again_and_again_outlive_the_others() {
        let mut lru = Lru::default();
        for k in 0..100u32 {
            lru.insert(k.to_string(), k, 1);
            // Every even key is used again after each insert, so only odd keys grow old.
            for even in (0..=k).step_by(2) {
                assert_eq!(lru.get(&even.to_string()), Some(&even));
            }
        }
        let popped: Vec<u32> = (0..50).map(|_| lru.pop_oldest().unwrap().1).collect();
        assert_eq!(popped, (1..100).step_by(2).collect::<Vec<_>>());
        assert_eq!(lru.len(), 50);
        assert_eq!(lru.recency.len(), 50, "one index entry per key");
        lru.insert("0".into(), 7, 1);
        assert_eq!((lru.len(), lru.recency.len(), lru.weight()), (50, 50, 50));
        lru.shrink_to(0, 0);
        assert!(lru.entries.is_empty() && lru.recency.is_empty());
    }
}
