//! A bounded, expiring item cache in front of any `Catalog`, shared by concurrent requests, so a
//! warm function usually skips the catalog call.
//!
//! It is bounded by bytes as well as by items (an item may weigh up to DynamoDB's 400 KB, and the
//! function may have 128 MB), and when full it drops the least recently used items. Ids the
//! catalog lacks are remembered briefly too, apart from the items and within their own bounds, so
//! a flood of unknown ids (a ranking of 500 of them) cannot push real items out.
//!
//! Concurrent misses for the same id make one fetch: the first request to miss an id owns a
//! *flight* for it; later requests wait for that flight's answer instead of asking again.
//!
//! Why the flights are worth their code: classic Lambda runs one invocation at a time per
//! environment, so there no two requests miss together and a flight is one uncontended lock and
//! an unused channel. But the same binary serves many requests at once on its local listener and
//! under Lambda Managed Instances (many invocations per environment), and there a cold or expired
//! cache meets a burst of requests for the same popular items: without flights each of them would
//! send its own BatchGetItem for the same keys, multiplying DynamoDB reads (and throttling) exactly
//! when the table is busiest. The tests below pin the cases that make it subtle: waiters sharing
//! an answer or an error, and a waiter taking over when the fetching request goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::lru::Lru;
use super::{CacheCounts, Catalog};
use crate::item::Item;
use crate::upstream::UpstreamError;

/// How long "the catalog has no such id" is believed: short, so newly loaded items show up soon.
pub const MISSING_TTL: Duration = Duration::from_secs(30);
/// What an entry costs beyond its item: its key twice (the map and the recency index), the
/// slot, the `Arc`.
const ENTRY_OVERHEAD: usize = 160;

/// How much the cache may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBudget {
    /// Items, and separately ids the catalog lacks.
    pub items: usize,
    /// Bytes of items; ids the catalog lacks get a quarter of this on top.
    pub bytes: usize,
}

pub struct CachedCatalog<C> {
    inner: C,
    state: Mutex<State>,
    budget: CacheBudget,
    ttl: Duration,
}

struct State {
    /// Items, with when they expire.
    items: Lru<Entry>,
    /// Ids the catalog lacks, with when that stops being believed.
    missing: Lru<Instant>,
    /// Ids some request is fetching right now, and where its answer will appear.
    in_flight: HashMap<String, Flight>,
}

struct Entry {
    item: Arc<Item>,
    expires: Instant,
}

/// What a cached lookup found for one id.
enum Cached {
    Item(Arc<Item>),
    Missing,
    Unknown,
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

impl State {
    /// What the cache knows of `id` at `now`; expired knowledge is dropped.
    fn lookup(&mut self, id: &str, now: Instant) -> Cached {
        match self
            .items
            .get(id)
            .map(|e| (e.expires > now, e.item.clone()))
        {
            Some((true, item)) => return Cached::Item(item),
            Some((false, _)) => {
                self.items.remove(id);
            }
            None => {}
        }
        match self.missing.get(id).copied() {
            Some(until) if until > now => Cached::Missing,
            Some(_) => {
                self.missing.remove(id);
                Cached::Unknown
            }
            None => Cached::Unknown,
        }
    }
}

impl<C: Catalog> CachedCatalog<C> {
    /// A TTL of zero turns caching off; concurrent misses still share one fetch.
    pub fn new(inner: C, budget: CacheBudget, ttl: Duration) -> Self {
        CachedCatalog {
            inner,
            state: Mutex::new(State {
                items: Lru::default(),
                missing: Lru::default(),
                in_flight: HashMap::new(),
            }),
            budget,
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
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        for id in ids {
            let key_weight = ENTRY_OVERHEAD + 2 * id.len();
            match fetched.get(id) {
                Some(item) => {
                    state.missing.remove(id);
                    let weight = key_weight + item.weight();
                    // One item bigger than the whole budget would only empty the cache.
                    if weight <= self.budget.bytes {
                        let entry = Entry {
                            item: item.clone(),
                            expires: now + self.ttl,
                        };
                        state.items.insert(id.clone(), entry, weight);
                    }
                }
                None => {
                    state.items.remove(id);
                    let until = now + MISSING_TTL.min(self.ttl);
                    state.missing.insert(id.clone(), until, key_weight);
                }
            }
        }
        state.items.shrink_to(self.budget.items, self.budget.bytes);
        state
            .missing
            .shrink_to(self.budget.items, self.budget.bytes / 4);
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
        self.items_counted(ids, deadline, &mut CacheCounts::default())
            .await
    }

    async fn items_counted(
        &self,
        ids: &[String],
        deadline: Instant,
        counts: &mut CacheCounts,
    ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
        let now = Instant::now();
        let mut found = HashMap::with_capacity(ids.len());
        let mut mine = Vec::new();
        let mut theirs: Vec<(String, Flight)> = Vec::new();
        let mut sender = None;
        {
            let mut state = self.lock();
            for id in ids {
                match state.lookup(id, now) {
                    Cached::Item(item) => {
                        counts.hits += 1;
                        found.insert(id.clone(), item);
                        continue;
                    }
                    Cached::Missing => {
                        counts.hits += 1;
                        continue;
                    }
                    Cached::Unknown => counts.misses += 1,
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
    use crate::item::{UrlTemplates, Value};

    /// Room for 100 items of any size.
    fn roomy() -> CacheBudget {
        CacheBudget {
            items: 100,
            bytes: 1 << 30,
        }
    }

    /// Knows ids starting with `i` (those ending in `big` carry 10 KB); counts calls and ids
    /// asked for. Each call takes `latency`; ids starting with `fail` make the call fail.
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
                    let text = if id.ends_with("big") {
                        "x".repeat(10_000)
                    } else {
                        String::new()
                    };
                    let attributes = [("text".to_owned(), Value::String(text))];
                    let item = Item::new(id.as_str(), attributes, &UrlTemplates::default());
                    (id.clone(), Arc::new(item))
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
        let cache = CachedCatalog::new(inner.clone(), roomy(), Duration::from_secs(300));
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

    /// What a request's metrics report: ids answered from the cache (known missing ones too)
    /// and ids fetched, including those another request was already fetching.
    #[tokio::test(start_paused = true)]
    async fn each_lookup_counts_its_hits_and_misses() {
        let inner = Arc::new(Counting {
            latency: Duration::from_millis(10),
            ..Counting::default()
        });
        let cache = CachedCatalog::new(inner.clone(), roomy(), Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);
        let lookup = |list: &'static [&'static str]| {
            let cache = &cache;
            async move {
                let mut counts = CacheCounts::default();
                cache
                    .items_counted(&ids(list), deadline, &mut counts)
                    .await
                    .unwrap();
                (counts.hits, counts.misses)
            }
        };

        assert_eq!(lookup(&["i1", "i2", "x1"]).await, (0, 3), "cold");
        assert_eq!(lookup(&["i1", "x1", "i3"]).await, (2, 1), "warm but for i3");
        // Two requests miss i4 together: one fetches it, the other waits; both missed it.
        let (a, b) = tokio::join!(lookup(&["i4", "i1"]), lookup(&["i4"]));
        assert_eq!((a, b), ((1, 1), (0, 1)));
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
    }

    fn cached_ids(cache: &CachedCatalog<Arc<Counting>>) -> Vec<String> {
        let mut state = cache.lock();
        let mut ids = Vec::new();
        while let Some((id, _)) = state.items.pop_oldest() {
            ids.push(id);
        }
        ids
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_the_least_recently_used_items() {
        let inner = Arc::new(Counting::default());
        let budget = CacheBudget {
            items: 3,
            bytes: 1 << 30,
        };
        let cache = CachedCatalog::new(inner.clone(), budget, Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);
        cache
            .items(&ids(&["i1", "i2", "i3"]), deadline)
            .await
            .unwrap();
        // i1 is used again, so i2 is now the least recently used.
        cache.items(&ids(&["i1"]), deadline).await.unwrap();
        cache.items(&ids(&["i4"]), deadline).await.unwrap();
        assert_eq!(cached_ids(&cache), ["i3", "i1", "i4"]);
        // Answers stay complete whatever was dropped.
        let all = cache
            .items(&ids(&["i1", "i2", "i3", "i4", "i5", "i6"]), deadline)
            .await
            .unwrap();
        assert_eq!(all.len(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_holds_at_most_its_bytes() {
        let inner = Arc::new(Counting::default());
        let budget = CacheBudget {
            items: 1000,
            bytes: 50_000,
        };
        let cache = CachedCatalog::new(inner.clone(), budget, Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);
        let big: Vec<String> = (0..10).map(|i| format!("i{i}-big")).collect();
        cache.items(&big, deadline).await.unwrap();
        let (weight, len) = {
            let state = cache.lock();
            (state.items.weight(), state.items.len())
        };
        assert!(weight <= 50_000, "{weight}");
        // Each weighs a little over 20 KB (its text twice: the attribute and the JSON): two fit.
        assert_eq!(len, 2);

        // An item bigger than the whole budget is served, not cached, and evicts nothing.
        let tiny = CacheBudget {
            items: 1000,
            bytes: 5_000,
        };
        let cache = CachedCatalog::new(inner.clone(), tiny, Duration::from_secs(300));
        cache.items(&ids(&["i1"]), deadline).await.unwrap();
        let found = cache.items(&ids(&["i2-big"]), deadline).await.unwrap();
        assert!(found.contains_key("i2-big"));
        assert_eq!(cached_ids(&cache), ["i1"]);
    }

    /// `/rankings` with 500 ids the table lacks, over and over: the items a warm function serves
    /// stay cached.
    #[tokio::test(start_paused = true)]
    async fn a_flood_of_unknown_ids_does_not_push_items_out() {
        let inner = Arc::new(Counting::default());
        let budget = CacheBudget {
            items: 1000,
            bytes: 1 << 20,
        };
        let cache = CachedCatalog::new(inner.clone(), budget, Duration::from_secs(300));
        let deadline = Instant::now() + Duration::from_secs(1);
        let warm: Vec<String> = (0..100).map(|i| format!("i{i}")).collect();
        cache.items(&warm, deadline).await.unwrap();
        for request in 0..40 {
            let unknown: Vec<String> = (0..500).map(|i| format!("x{request}-{i}")).collect();
            cache.items(&unknown, deadline).await.unwrap();
        }
        let calls = inner.calls.load(Ordering::SeqCst);
        assert_eq!(cache.items(&warm, deadline).await.unwrap().len(), 100);
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            calls,
            "all 100 items still cached"
        );
        assert!(cache.lock().missing.len() <= 1000);
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
        let cache = CachedCatalog::new(inner.clone(), roomy(), Duration::from_secs(300));
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
        let cache = CachedCatalog::new(inner.clone(), roomy(), Duration::from_secs(300));
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
        let cache = CachedCatalog::new(inner.clone(), roomy(), Duration::from_secs(300));
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
