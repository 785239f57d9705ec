//! A map that remembers which key was used least recently, and how much each entry weighs, so
//! its owner can keep it within a budget by dropping the least recently used first.
//!
//! Recency is a counter ticked on every use; an ordered index from tick to key finds the oldest
//! entry. Every operation is O(log n), with no unsafe code and no dependency.

use std::collections::{BTreeMap, HashMap};

pub struct Lru<V> {
    entries: HashMap<String, Slot<V>>,
    /// Tick of last use → key, least recently used first.
    recency: BTreeMap<u64, String>,
    tick: u64,
    weight: usize,
}

struct Slot<V> {
    value: V,
    used: u64,
    weight: usize,
}

impl<V> Default for Lru<V> {
    fn default() -> Self {
        Lru {
            entries: HashMap::new(),
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
        let owned = self.recency.remove(&slot.used)?;
        slot.used = self.tick;
        self.recency.insert(self.tick, owned);
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
                weight,
            },
        );
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let slot = self.entries.remove(key)?;
        self.recency.remove(&slot.used);
        self.weight -= slot.weight;
        Some(slot.value)
    }

    /// Takes out the least recently used entry.
    pub fn pop_oldest(&mut self) -> Option<(String, V)> {
        let (_, key) = self.recency.pop_first()?;
        let slot = self.entries.remove(&key)?;
        self.weight -= slot.weight;
        Some((key, slot.value))
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

    fn keys(lru: &Lru<u32>) -> Vec<&str> {
        lru.recency.values().map(String::as_str).collect()
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
}
