//! A bounded, expiring item cache in front of any `Catalog`, shared by concurrent requests, so a
//! warm function usually skips the catalog call. Ids the catalog lacks are remembered briefly too.
//!
//! Concurrent misses for the same id make one fetch: the first request to miss an id owns a
//! *flight* for it; later requests wait for that flight's answer instead of asking again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{Catalog, Item};
use crate::upstream::UpstreamError;

/// How long "the catalog has no such id" is believed: short, so newly loaded items show up soon.
pub const MISSING_TTL: Duration = Duration::from_secs(30);

pub struct CachedCatalog<C> {
    inner: C,
    state: Mutex<State>,
    capacity: usize,
    ttl: Duration,
}

struct State {
    entries: HashMap<String, Entry>,
    /// Ids some request is fetching right now, and where its answer will appear.
    in_flight: HashMap<String, Flight>,
}

struct Entry {
    /// `None`: the catalog has no item with this id.
    item: Option<Arc<Item>>,
    expires: Instant,
}

type Fetched = Result<Arc<HashMap<String, Arc<Item>>>, UpstreamError>;

/// The receiving end of one catalog call: `None` until the call ends. If the fetching request
/// is dropped (its caller went away) the sender goes with it and waiters fetch for themselves.
type Flight = watch::Receiver<Option<Fetched>>;

impl<C> CachedCatalog<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave an entry half-written; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<C: Catalog> CachedCatalog<C> {
    pub fn new(inner: C, capacity: usize, ttl: Duration) -> Self {
        CachedCatalog {
            inner,
            state: Mutex::new(State {
                entries: HashMap::with_capacity(capacity.min(65_536)),
                in_flight: HashMap::new(),
            }),
            capacity,
            ttl,
        }
    }

    /// Fetches `ids` for everyone waiting on them, caches the answer and publishes it.
    async fn fetch(
        &self,
        ids: &[String],
        sender: watch::Sender<Option<Fetched>>,
        deadline: Instant,
    ) -> Fetched {
        // Whatever happens (answer, error, or this future dropped), the ids stop being in flight.
        let landing = Landing {
            cache: self,
            ids,
            flight: sender.subscribe(),
        };
        let fetched = self.inner.items(ids, deadline).await.map(Arc::new);
        if let Ok(items) = &fetched {
            self.remember(ids, items, &mut self.lock());
        }
        drop(landing);
        sender.send_replace(Some(fetched.clone()));
        fetched
    }

    fn remember(&self, ids: &[String], fetched: &HashMap<String, Arc<Item>>, state: &mut State) {
        let now = Instant::now();
        let entries = &mut state.entries;
        if entries.len() + ids.len() > self.capacity {
            entries.retain(|_, entry| entry.expires > now);
        }
        // Still full of live entries: start over rather than track recency on every hit.
        if entries.len() + ids.len() > self.capacity {
            entries.clear();
        }
        for id in ids.iter().take(self.capacity) {
            let item = fetched.get(id).cloned();
            let ttl = if item.is_some() {
                self.ttl
            } else {
                MISSING_TTL.min(self.ttl)
            };
            entries.insert(
                id.clone(),
                Entry {
                    item,
                    expires: now + ttl,
                },
            );
        }
    }
}

/// Takes a finished (or abandoned) flight's ids out of `in_flight`, unless a newer flight
/// already replaced them.
struct Landing<'a, C> {
    cache: &'a CachedCatalog<C>,
    ids: &'a [String],
    flight: Flight,
}

impl<C> Drop for Landing<'_, C> {
    fn drop(&mut self) {
        let mut state = self.cache.lock();
        for id in self.ids {
            if state
                .in_flight
                .get(id)
                .is_some_and(|flight| flight.same_channel(&self.flight))
            {
                state.in_flight.remove(id);
            }
        }
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
        let mut mine = Vec::new();
        let mut theirs: Vec<(String, Flight)> = Vec::new();
        let mut sender = None;
        {
            let mut state = self.lock();
            for id in ids {
                match state.entries.get(id) {
                    Some(entry) if entry.expires > now => {
                        if let Some(item) = &entry.item {
                            found.insert(id.clone(), item.clone());
                        }
                        continue;
                    }
                    _ => {}
                }
                if let Some(flight) = state.in_flight.get(id) {
                    theirs.push((id.clone(), flight.clone()));
                    continue;
                }
                let sender = sender.get_or_insert_with(|| watch::channel(None).0);
                state.in_flight.insert(id.clone(), sender.subscribe());
                mine.push(id.clone());
            }
        }
        // Our own fetch and the waits for other requests' fetches run side by side.
        let own = async {
            match sender {
                Some(sender) => self.fetch(&mine, sender, deadline).await.map(Some),
                None => Ok(None),
            }
        };
        let (own, waited) = tokio::join!(own, wait_for_flights(theirs));
        if let Some(fetched) = own? {
            found.extend(fetched.iter().map(|(id, item)| (id.clone(), item.clone())));
        }
        let Waited { items, orphans } = waited?;
        found.extend(items);
        // Ids whose fetching request went away before its answer came: fetch them ourselves.
        if !orphans.is_empty() {
            let (sender, _) = watch::channel(None);
            {
                let mut state = self.lock();
                for id in &orphans {
                    state.in_flight.insert(id.clone(), sender.subscribe());
                }
            }
            let fetched = self.fetch(&orphans, sender, deadline).await?;
            found.extend(fetched.iter().map(|(id, item)| (id.clone(), item.clone())));
        }
        Ok(found)
    }
}

struct Waited {
    items: Vec<(String, Arc<Item>)>,
    /// Ids whose flight ended without an answer.
    orphans: Vec<String>,
}

async fn wait_for_flights(flights: Vec<(String, Flight)>) -> Result<Waited, UpstreamError> {
    let mut waited = Waited {
        items: Vec::new(),
        orphans: Vec::new(),
    };
    for (id, mut flight) in flights {
        let Ok(answer) = flight.wait_for(Option::is_some).await else {
            waited.orphans.push(id);
            continue;
        };
        match &*answer {
            Some(Ok(fetched)) => {
                if let Some(item) = fetched.get(&id) {
                    waited.items.push((id, item.clone()));
                }
            }
            Some(Err(e)) => return Err(e.clone()),
            None => waited.orphans.push(id),
        }
    }
    Ok(waited)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::config::UrlTemplates;

    /// Knows ids starting with `i`; counts calls and ids asked for. Each call takes `latency`;
    /// ids starting with `fail` make the call fail.
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        asked: Mutex<Vec<String>>,
        latency: Duration,
    }

    impl Catalog for Arc<Counting> {
        async fn items(
            &self,
            ids: &[String],
            _: Instant,
        ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.asked.lock().unwrap().extend(ids.iter().cloned());
            tokio::time::sleep(self.latency).await;
            if ids.iter().any(|id| id.starts_with("fail")) {
                return Err(UpstreamError::Unavailable("503 from the test".into()));
            }
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
            assert!(cache.lock().entries.len() <= 3);
        }
        // Answers stay complete whatever was evicted.
        let all = cache
            .items(&ids(&["i1", "i2", "i3", "i4", "i5", "i6"]), deadline)
            .await
            .unwrap();
        assert_eq!(all.len(), 6);
    }

    fn slow() -> Arc<Counting> {
        Arc::new(Counting {
            latency: Duration::from_millis(50),
            ..Counting::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_misses_for_the_same_ids_make_one_fetch() {
        let inner = slow();
        let cache = CachedCatalog::new(inner.clone(), 100, Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);
        let a = ids(&["i1", "i2", "x1"]);
        let b = ids(&["x1", "i2", "i1"]);
        let c = ids(&["i2", "i3"]);
        let (a, b, c) = tokio::join!(
            cache.items(&a, deadline),
            cache.items(&b, deadline),
            cache.items(&c, deadline)
        );
        assert_eq!(a.unwrap().len(), 2);
        assert_eq!(
            b.unwrap().len(),
            2,
            "the waiter got the answer, x1 still missing"
        );
        let c = c.unwrap();
        assert!(c.contains_key("i2") && c.contains_key("i3"));
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            2,
            "one fetch, plus one for i3"
        );
        assert_eq!(
            inner.asked.lock().unwrap().as_slice(),
            ["i1", "i2", "x1", "i3"],
            "no id asked for twice"
        );
        assert!(cache.lock().in_flight.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_the_fetch_error_and_the_next_request_tries_again() {
        let inner = slow();
        let cache = CachedCatalog::new(inner.clone(), 100, Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);
        let list = ids(&["fail1", "i1"]);
        let (a, b) = tokio::join!(cache.items(&list, deadline), cache.items(&list, deadline));
        assert!(matches!(a, Err(UpstreamError::Unavailable(_))));
        assert!(matches!(b, Err(UpstreamError::Unavailable(_))));
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        // Errors are not cached.
        assert!(cache.items(&list, deadline).await.is_err());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
        assert!(cache.lock().in_flight.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_fetches_for_itself_when_the_fetching_request_goes_away() {
        let inner = slow();
        let cache = CachedCatalog::new(inner.clone(), 100, Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);
        let list = ids(&["i1"]);
        // The first request is abandoned mid-fetch (its caller timed out).
        let abandoned =
            tokio::time::timeout(Duration::from_millis(10), cache.items(&list, deadline));
        let waiter = async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            cache.items(&list, deadline).await
        };
        let (abandoned, waited) = tokio::join!(abandoned, waiter);
        assert!(abandoned.is_err(), "the first request timed out");
        assert_eq!(waited.unwrap().len(), 1);
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
        assert!(cache.lock().in_flight.is_empty());
        // And its answer is cached.
        cache.items(&list, deadline).await.unwrap();
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2);
    }
}
