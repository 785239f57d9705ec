//! A bounded, expiring item cache in front of any `Catalog`, shared by concurrent requests, so a
//! warm function usually skips the catalog call. Ids the catalog lacks are remembered briefly too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{Catalog, Item};
use crate::upstream::UpstreamError;

/// How long "the catalog has no such id" is believed: short, so newly loaded items show up soon.
pub const MISSING_TTL: Duration = Duration::from_secs(30);

pub struct CachedCatalog<C> {
    inner: C,
    entries: Mutex<HashMap<String, Entry>>,
    capacity: usize,
    ttl: Duration,
}

struct Entry {
    /// `None`: the catalog has no item with this id.
    item: Option<Arc<Item>>,
    expires: Instant,
}

impl<C: Catalog> CachedCatalog<C> {
    pub fn new(inner: C, capacity: usize, ttl: Duration) -> Self {
        CachedCatalog {
            inner,
            entries: Mutex::new(HashMap::with_capacity(capacity.min(65_536))),
            capacity,
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written; keep serving.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<C: Catalog> Catalog for CachedCatalog<C> {
    async fn items(
        &self,
        ids: &[String],
        deadline: Instant,
    ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
        let now = Instant::now();
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let entries = self.lock();
            for id in ids {
                match entries.get(id) {
                    Some(entry) if entry.expires > now => {
                        if let Some(item) = &entry.item {
                            found.insert(id.clone(), item.clone());
                        }
                    }
                    _ => missing.push(id.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }

        let fetched = self.inner.items(&missing, deadline).await?;
        let now = Instant::now();
        {
            let mut entries = self.lock();
            if entries.len() + missing.len() > self.capacity {
                entries.retain(|_, entry| entry.expires > now);
            }
            // Still full of live entries: start over rather than track recency on every hit.
            if entries.len() + missing.len() > self.capacity {
                entries.clear();
            }
            for id in missing.into_iter().take(self.capacity) {
                let item = fetched.get(&id).cloned();
                let ttl = if item.is_some() {
                    self.ttl
                } else {
                    MISSING_TTL.min(self.ttl)
                };
                entries.insert(
                    id,
                    Entry {
                        item,
                        expires: now + ttl,
                    },
                );
            }
        }
        found.extend(fetched);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::UrlTemplates;

    /// Knows ids starting with `i`; counts calls and ids asked for.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        asked: Mutex<Vec<String>>,
    }

    impl Catalog for Arc<Counting> {
        async fn items(
            &self,
            ids: &[String],
            _: Instant,
        ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.asked.lock().unwrap().extend(ids.iter().cloned());
            Ok(ids
                .iter()
                .filter(|id| id.starts_with('i'))
                .map(|id| {
                    (
                        id.clone(),
                        Arc::new(Item::new(id.as_str(), [], &UrlTemplates::default())),
                    )
                })
                .collect())
        }
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_warm_request_makes_no_catalog_call_and_expired_entries_refetch() {
        let inner = Arc::new(Counting::default());
        let cache = CachedCatalog::new(inner.clone(), 100, Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);

        let first = cache
            .items(&ids(&["i1", "i2", "x1"]), deadline)
            .await
            .unwrap();
        assert_eq!(first.len(), 2);
        let again = cache
            .items(&ids(&["i2", "x1", "i1"]), deadline)
            .await
            .unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            1,
            "all cached, the missing id included"
        );

        // Only what is not cached is asked for.
        cache.items(&ids(&["i1", "i3"]), deadline).await.unwrap();
        assert_eq!(
            inner.asked.lock().unwrap().as_slice(),
            ["i1", "i2", "x1", "i3"]
        );

        // Missing ids are believed for 30 s, items for the TTL.
        tokio::time::advance(Duration::from_secs(31)).await;
        let deadline = Instant::now() + Duration::from_secs(1);
        cache.items(&ids(&["i1", "x1"]), deadline).await.unwrap();
        assert_eq!(
            inner.asked.lock().unwrap().last().map(String::as_str),
            Some("x1")
        );
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
        tokio::time::advance(Duration::from_secs(300)).await;
        let deadline = Instant::now() + Duration::from_secs(1);
        cache.items(&ids(&["i1"]), deadline).await.unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_never_holds_more_than_its_capacity() {
        let inner = Arc::new(Counting::default());
        let cache = CachedCatalog::new(inner.clone(), 3, Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);
        for batch in [["i1", "i2"], ["i3", "i4"], ["i5", "i6"]] {
            cache.items(&ids(&batch), deadline).await.unwrap();
            assert!(cache.lock().len() <= 3);
        }
        // Answers stay complete whatever was evicted.
        let all = cache
            .items(&ids(&["i1", "i2", "i3", "i4", "i5", "i6"]), deadline)
            .await
            .unwrap();
        assert_eq!(all.len(), 6);
    }
}
