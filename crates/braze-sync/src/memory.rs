//! The run's memory of the catalog, and each user's list joined from it.
//!
//! A batch file names the same popular items again and again, so the run remembers what the
//! catalog said of each id (its item shaped for Braze, or that the catalog lacks it) and asks the
//! catalog only for ids it has not seen. The memory is bounded: two generations, the older dropped
//! whole when the newer fills, so the ids in use stay and the rest go. Forgetting an id only means
//! asking the catalog again: a batch joins its users' lists from the answers it gathered itself,
//! never from what the memory happens to hold by then.
//!
//! Each user's ids are read in rank order only as far as the list needs: the first `count` and a
//! margin, then more only for lists still short.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;

use super::fields::{Fields, Shaped, shape};
use super::reader::User;
use personalize_braze_core::catalog::Catalog;
use personalize_braze_core::join::{RankedIds, window_len};
use personalize_braze_core::upstream::UpstreamError;

/// What the run learned of one id.
#[derive(Debug, Clone)]
pub enum Known {
    Item(Arc<Shaped>),
    /// The catalog has no such item.
    Missing,
    /// The catalog has it, but Braze cannot take it (why).
    Unsendable(&'static str),
}

/// Ids the run remembers at most (both generations together).
pub const MEMORY_IDS: usize = 200_000;

/// The maps of one run: ids are hashed millions of times, by a fast hash (a batch file is no
/// adversary's input to the run's own memory).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

pub struct Memory {
    newer: Map<String, Known>,
    older: Map<String, Known>,
    generation: usize,
}

impl Memory {
    pub fn new(limit: usize) -> Memory {
        Memory {
            newer: Map::default(),
            older: Map::default(),
            generation: (limit / 2).max(1),
        }
    }

    /// What the run knows of `id`; an id of the older generation moves to the newer.
    pub fn get(&mut self, id: &str) -> Option<Known> {
        if let Some(known) = self.newer.get(id) {
            return Some(known.clone());
        }
        let (id, known) = self.older.remove_entry(id)?;
        self.insert(id, known.clone());
        Some(known)
    }

    pub fn insert(&mut self, id: String, known: Known) {
        if self.newer.len() >= self.generation {
            self.older = std::mem::take(&mut self.newer);
        }
        self.newer.insert(id, known);
    }

    pub fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How lists are built.
pub struct Join<'a, C> {
    pub catalog: &'a C,
    pub memory: &'a Mutex<Memory>,
    pub fields: &'a Fields,
    pub count: usize,
    /// The most bytes one user's array may take.
    pub max_array_bytes: usize,
    pub deadline: Instant,
}

/// One user's list, and what was left out of it.
#[derive(Debug, Default)]
pub struct List {
    pub items: Vec<Arc<Shaped>>,
    /// The array's bytes: `[`, the items, their commas, `]`.
    pub bytes: usize,
    /// Items left out, by reason.
    pub left_out: BTreeMap<&'static str, u64>,
    /// Ids the catalog had (whether or not they made the list).
    pub found: usize,
}

pub const NOT_IN_CATALOG: &str = "not in the catalog";
pub const PAST_SIZE_LIMIT: &str = "past Braze's size limit for an array of objects";

impl<C: Catalog> Join<'_, C> {
    /// The lists of `users`, in their order.
    pub async fn lists(&self, users: &[User]) -> Result<Vec<List>, UpstreamError> {
        let mut lists: Vec<Builder<'_>> = users.iter().map(Builder::new).collect();
        loop {
            let windows: Vec<(usize, std::ops::Range<usize>)> = lists
                .iter()
                .enumerate()
                .filter_map(|(i, b)| Some((i, b.window(self.count)?)))
                .collect();
            if windows.is_empty() {
                break;
            }
            let answers = self.answers(users, &windows).await?;
            for (i, window) in windows {
                lists[i].take(window, &answers, self.count, self.max_array_bytes);
            }
        }
        Ok(lists.into_iter().map(|b| b.list).collect())
    }

    /// What the memory or, for the rest, the catalog says of every id in `windows`.
    async fn answers<'u>(
        &self,
        users: &'u [User],
        windows: &[(usize, std::ops::Range<usize>)],
    ) -> Result<Map<&'u str, Known>, UpstreamError> {
        let mut answers: Map<&'u str, Known> = Map::default();
        let mut unknown: Vec<&'u str> = Vec::new();
        {
            let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
            let mut asked: HashSet<&str, foldhash::fast::RandomState> = HashSet::default();
            for (i, window) in windows {
                for id in &users[*i].item_ids[window.clone()] {
                    if answers.contains_key(id.as_str()) {
                        continue;
                    }
                    match memory.get(id) {
                        Some(known) => {
                            answers.insert(id, known);
                        }
                        None if asked.insert(id) => unknown.push(id),
                        None => {}
                    }
                }
            }
        }
        if unknown.is_empty() {
            return Ok(answers);
        }
        let ids: Vec<String> = unknown.iter().map(|id| id.to_string()).collect();
        let mut found = self.catalog.items(&ids, self.deadline).await?;
        let learned: Vec<(&'u str, Known)> = unknown
            .into_iter()
            .map(|id| {
                let known = match found.remove(id) {
                    None => Known::Missing,
                    Some(item) => match shape(&item, self.fields) {
                        Ok(shaped) => Known::Item(Arc::new(shaped)),
                        Err(why) => Known::Unsendable(why),
                    },
                };
                (id, known)
            })
            .collect();
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        for (id, known) in learned {
            memory.insert(id.to_owned(), known.clone());
            answers.insert(id, known);
        }
        Ok(answers)
    }
}

/// A list being filled, in rank order, by the join's rule (`personalize_braze_core::join`).
struct Builder<'u> {
    list: List,
    ranking: RankedIds<'u>,
    full: bool,
}

impl<'u> Builder<'u> {
    fn new(user: &'u User) -> Builder<'u> {
        Builder {
            list: List {
                bytes: 2,
                ..List::default()
            },
            ranking: RankedIds::new(&user.item_ids),
            full: false,
        }
    }

    /// The ids to look at next, or `None` when the list is done.
    fn window(&self, count: usize) -> Option<std::ops::Range<usize>> {
        let lacking = count.saturating_sub(self.list.items.len());
        if self.full || lacking == 0 {
            return None;
        }
        self.ranking.window(window_len(lacking))
    }

    /// The list's next items from the ids in `window`, as `answers` has them.
    fn take(
        &mut self,
        window: std::ops::Range<usize>,
        answers: &Map<&str, Known>,
        count: usize,
        max_bytes: usize,
    ) {
        let ids = self.ranking.read_window(window);
        for (at, id) in ids.iter().enumerate() {
            if self.full || self.list.items.len() == count {
                return;
            }
            if !self.ranking.first_time(id) {
                continue;
            }
            let shaped = match answers.get(id.as_str()) {
                Some(Known::Item(shaped)) => shaped,
                Some(Known::Unsendable(why)) => {
                    self.list.found += 1;
                    *self.list.left_out.entry(why).or_default() += 1;
                    continue;
                }
                Some(Known::Missing) | None => {
                    *self.list.left_out.entry(NOT_IN_CATALOG).or_default() += 1;
                    continue;
                }
            };
            self.list.found += 1;
            let comma = usize::from(!self.list.items.is_empty());
            if self.list.bytes + comma + shaped.json.len() > max_bytes {
                // The list ends with the items that fit; the rest it would have held are counted.
                self.full = true;
                let rest =
                    (ids.len() - at + self.ranking.unread()).min(count - self.list.items.len());
                *self.list.left_out.entry(PAST_SIZE_LIMIT).or_default() += rest as u64;
                return;
            }
            self.list.bytes += comma + shaped.json.len();
            self.list.items.push(shaped.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use personalize_braze_core::dataset::ItemRecord;
    use personalize_braze_core::item::{Item, UrlTemplates};
    use personalize_braze_local::file_catalog::FileCatalog;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A catalog that counts the ids it is asked for.
    struct Counting {
        inner: FileCatalog,
        asked: AtomicUsize,
    }

    impl Catalog for Counting {
        async fn items(
            &self,
            ids: &[String],
            deadline: Instant,
        ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
            self.asked.fetch_add(ids.len(), Ordering::Relaxed);
            self.inner.items(ids, deadline).await
        }
    }

    fn catalog(ids: impl IntoIterator<Item = String>) -> Counting {
        let records: Vec<ItemRecord> = ids
            .into_iter()
            .map(|id| ItemRecord {
                fields: vec![("NAME".to_owned(), format!("item {id}"))],
                id,
            })
            .collect();
        Counting {
            inner: FileCatalog::new(&records, &UrlTemplates::default()),
            asked: AtomicUsize::new(0),
        }
    }

    /// A join as a run makes one, over `catalog` and `memory`.
    fn join<'a>(
        catalog: &'a Counting,
        memory: &'a Mutex<Memory>,
        count: usize,
        max_array_bytes: usize,
    ) -> Join<'a, Counting> {
        Join {
            catalog,
            memory,
            fields: &Fields::All,
            count,
            max_array_bytes,
            deadline: Instant::now() + std::time::Duration::from_secs(5),
        }
    }

    fn user(key: &str, ids: &[String]) -> User {
        User {
            line: 1,
            key: key.into(),
            item_ids: ids.to_vec(),
        }
    }

    fn ids(list: &List) -> Vec<String> {
        list.items
            .iter()
            .map(|s| {
                serde_json::from_str::<serde_json::Value>(&s.json).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[tokio::test]
    async fn lists_keep_rank_order_and_skip_unknown_and_repeated_ids() {
        let catalog = catalog(["a", "b", "c"].map(String::from));
        let memory = Mutex::new(Memory::new(MEMORY_IDS));
        let join = join(&catalog, &memory, 2, 50_000);
        let ranked = ["c", "zz", "c", "a", "b"].map(String::from);
        let lists = join.lists(&[user("u1", &ranked)]).await.unwrap();
        assert_eq!(ids(&lists[0]), vec!["c", "a"]);
        assert_eq!(lists[0].left_out.get(NOT_IN_CATALOG), Some(&1));
    }

    #[tokio::test]
    async fn the_catalog_is_read_only_as_far_as_the_list_needs() {
        let all: Vec<String> = (0..500).map(|i| format!("i{i}")).collect();
        let catalog = catalog(all.clone());
        let memory = Mutex::new(Memory::new(MEMORY_IDS));
        let join = join(&catalog, &memory, 10, 50_000);
        let lists = join.lists(&[user("u1", &all)]).await.unwrap();
        assert_eq!(lists[0].items.len(), 10);
        assert_eq!(
            catalog.asked.load(Ordering::Relaxed),
            15,
            "count and a margin"
        );

        // Ids the catalog lacks make the list read further, and only as far as it must.
        let mut ranked: Vec<String> = (0..40).map(|i| format!("gone-{i}")).collect();
        ranked.extend(all.iter().rev().cloned());
        catalog.asked.store(0, Ordering::Relaxed);
        let lists = join.lists(&[user("u2", &ranked)]).await.unwrap();
        assert_eq!(lists[0].items.len(), 10);
        assert!(catalog.asked.load(Ordering::Relaxed) <= 40 + 20);
    }

    #[tokio::test]
    async fn forgetting_never_turns_a_known_item_into_a_missing_one() {
        // Each line: one catalog item and 99 ids nobody has, many more than the memory holds.
        let items: Vec<String> = (0..3000).map(|i| format!("item-{i}")).collect();
        let catalog = catalog(items.clone());
        let memory = Mutex::new(Memory::new(1000));
        let join = join(&catalog, &memory, 100, 50_000);
        let users: Vec<User> = items
            .iter()
            .enumerate()
            .map(|(u, item)| {
                let mut ranked: Vec<String> = (0..99).map(|j| format!("unknown-{u}-{j}")).collect();
                ranked.insert(u % 100, item.clone());
                user(&format!("u{u}"), &ranked)
            })
            .collect();
        // Batches of 75 in flight together, as a run sends them.
        let batches = users.chunks(75).map(|batch| join.lists(batch));
        let results = futures_util::future::join_all(batches).await;
        for (b, lists) in results.into_iter().enumerate() {
            for (i, list) in lists.unwrap().iter().enumerate() {
                assert_eq!(ids(list), vec![items[b * 75 + i].clone()]);
            }
        }
        assert!(memory.lock().unwrap().len() <= 1000);
    }

    #[tokio::test]
    async fn a_list_ends_with_the_items_that_fit_the_size_limit() {
        let all: Vec<String> = (0..30).map(|i| format!("i{i}")).collect();
        let catalog = catalog(all.clone());
        let memory = Mutex::new(Memory::new(MEMORY_IDS));
        // Each item is `{"id":"iN","name":"item iN"}`: 26 or 28 bytes.
        let join = join(&catalog, &memory, 25, 100);
        let lists = join.lists(&[user("u1", &all)]).await.unwrap();
        assert_eq!(lists[0].items.len(), 3);
        assert!(lists[0].bytes <= 100);
        assert_eq!(lists[0].left_out.get(PAST_SIZE_LIMIT), Some(&22));
    }
}
