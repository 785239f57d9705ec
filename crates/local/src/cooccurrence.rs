//! The embedded recommender's model: item-to-item similarity from co-occurrence in user histories,
//! with matrix factors blended in when they predict the data better ([`crate::tuning`] decides).
//!
//! - Training sees all of history at once, old and new alike: a user's weight for an item is
//!   `sqrt(their events on it) · ln(1 + items / their distinct items)`, TF-IDF style, so a user who
//!   touched everything says less about any two items than one with a few.
//! - Similarity is an asymmetric cosine of two items' weighted user vectors: co-occurrence divided
//!   by `norm_i^(2α) · norm_j^(2(1-α))` with `α = ASYMMETRY`, so popular items do not swamp
//!   everything yet are not pushed away either. Each item keeps its `NEIGHBOURS` most similar items.
//! - A user's co-occurrence score for an unseen item is `Σ recency(recent item) · similarity(recent
//!   item, item)` over their `RECENT_HISTORY` most recent items, recency being `0.5^(age / 120
//!   days)` with the age counted from *the user's own* latest event: a history of years keeps its
//!   weight, and what the user did last counts most.
//! - Blended ([`Model::blend_factors`]): every item scores `(1 − w) · co-occurrence + w · factors`
//!   ([`crate::factors`]), each kind divided by the user's largest score of that kind. Related
//!   items stay the co-occurrence neighbours.
//! - Ties go to the more popular item, then the smaller id. Items the user already interacted
//!   with are never recommended. When the scores rank fewer items than asked for, and for unknown
//!   users, the most popular items fill in. Live events join the user's history, and re-solve
//!   their factor vector from their items.

use std::cmp::Ordering;
use std::collections::HashMap;

use personalize_braze_core::dataset::Interaction;

use crate::factors::{Config, Factors};

/// How fast a user's older items count less when scoring, relative to their latest event.
const HALF_LIFE_SECONDS: f64 = 120.0 * 24.0 * 3600.0;
/// The similarity's asymmetry: above 0.5 the source item's norm weighs more than the candidate's.
const ASYMMETRY: f32 = 0.6;
/// Similar items kept per item.
const NEIGHBOURS: usize = 100;
/// The most recent distinct items of each user that training looks at (bounds the quadratic cost).
const TRAINING_HISTORY: usize = 200;
/// The most recent distinct items a recommendation is scored from.
const RECENT_HISTORY: usize = 20;
/// Tuning ranks a blend among this many best unseen items of each kind of score.
const TUNING_POOL: usize = 50;

pub type ItemIndex = u32;
/// Index into the model's event types: as wide as an item index, so no number of types aliases.
type EventIndex = u32;

/// What `/events` may add to a model, beyond what it was trained on: memory stays bounded.
pub const MAX_LIVE_USERS: usize = 100_000;
pub const MAX_LIVE_EVENT_TYPES: usize = 10_000;

/// An event `record` did not take, because the model holds all it may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error(
        "local mode keeps at most {MAX_LIVE_USERS} users beyond those it was trained on; restart it to forget them"
    )]
    Users,
    #[error(
        "local mode keeps at most {MAX_LIVE_EVENT_TYPES} event types beyond those it was trained on; restart it to forget them"
    )]
    EventTypes,
}

/// Hashes an item index with one multiplication (Fibonacci hashing): scoring is a hash-map
/// accumulation over up to 2,000 candidates per request, where SipHash dominated the time.
/// Indices are ours, not caller input, so flooding is not a concern.
type IndexHash = std::hash::BuildHasherDefault<IndexHasher>;

#[derive(Default)]
struct IndexHasher(u64);

impl std::hash::Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, index: u32) {
        self.0 = u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub struct Model {
    item_ids: Vec<String>,
    item_index: HashMap<String, ItemIndex>,
    /// Σ of each item's user weights (`sqrt(events) · idf` of each user): its popularity.
    popularity: Vec<f32>,
    /// Item indices, most popular first.
    popular: Vec<ItemIndex>,
    neighbours: Vec<Box<[(ItemIndex, f32)]>>,
    users: HashMap<String, User>,
    event_types: Vec<String>,
    /// How many users and event types training saw; `record` may add a bounded number more.
    trained: Trained,
    /// Matrix factors blended into the score, when tuning found they help.
    blend: Option<Blend>,
}

/// The factor model's share of a recommendation's score.
struct Blend {
    factors: Factors,
    config: Config,
    /// `(1 − weight) · co-occurrence + weight · factors`, each scaled to the user's largest score.
    weight: f32,
}

/// What the model was built with: for the start-up line and `evaluate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    CoOccurrence,
    Blended { config: Config, weight: f32 },
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kind::CoOccurrence => write!(f, "item co-occurrence"),
            Kind::Blended { config, weight } => write!(
                f,
                "item co-occurrence blended with {} matrix factors (alpha {}, weight {weight})",
                config.factors, config.alpha
            ),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Trained {
    users: usize,
    event_types: usize,
}

struct User {
    /// Distinct items, most recently touched first, with their recency (1 for the latest).
    history: Vec<(ItemIndex, f32)>,
    /// Every (item, event type) pair, for filters on `Interactions.EVENT_TYPE`.
    events: Vec<(ItemIndex, EventIndex)>,
    /// The same items sorted, each with the user's number of events on it: for "already seen"
    /// checks, and what factors are solved from.
    counts: Vec<(ItemIndex, f32)>,
    /// The user's factor vector, when the model blends factors.
    vector: Option<Box<[f32]>>,
}

/// What training saw, for the start-up line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub users: usize,
    pub items: usize,
    pub interactions: usize,
}

impl Model {
    /// The co-occurrence model alone.
    pub fn co_occurrence<'a>(interactions: impl IntoIterator<Item = &'a Interaction>) -> Model {
        let mut item_ids = Vec::new();
        let mut item_index = HashMap::new();
        let mut event_types: Vec<String> = Vec::new();
        let mut per_user: HashMap<&str, Vec<(ItemIndex, i64, EventIndex)>> = HashMap::new();

        for interaction in interactions {
            let item = *item_index
                .entry(interaction.item_id.clone())
                .or_insert_with(|| {
                    item_ids.push(interaction.item_id.clone());
                    (item_ids.len() - 1) as ItemIndex
                });
            let event = match event_types
                .iter()
                .position(|e| *e == interaction.event_type)
            {
                Some(e) => e as EventIndex,
                None => {
                    event_types.push(interaction.event_type.clone());
                    (event_types.len() - 1) as EventIndex
                }
            };
            per_user.entry(&interaction.user_id).or_default().push((
                item,
                interaction.timestamp,
                event,
            ));
        }

        let mut users = HashMap::with_capacity(per_user.len());
        let mut item_users: Vec<Vec<(u32, f32)>> = vec![Vec::new(); item_ids.len()];
        let mut user_vectors: Vec<Vec<(ItemIndex, f32)>> = Vec::with_capacity(per_user.len());
        let catalog = item_ids.len() as f64;
        for (user_id, mut events) in per_user {
            // Newest first: each item's first appearance is its latest event.
            events.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let latest = events.first().map_or(0, |e| e.1);
            // Item → (its latest event's time, how many events the user had on it).
            let mut seen_at: HashMap<ItemIndex, (i64, u32)> = HashMap::with_capacity(events.len());
            let mut order = Vec::new();
            for &(item, time, _) in &events {
                seen_at
                    .entry(item)
                    .or_insert_with(|| {
                        order.push(item);
                        (time, 0)
                    })
                    .1 += 1;
            }
            let history: Vec<(ItemIndex, f32)> = order
                .iter()
                .map(|item| (*item, recency(latest - seen_at[item].0)))
                .collect();
            let idf = (1.0 + catalog / order.len() as f64).ln() as f32;
            let mut pairs: Vec<(ItemIndex, EventIndex)> =
                events.iter().map(|e| (e.0, e.2)).collect();
            pairs.sort_unstable();
            pairs.dedup();

            let u = user_vectors.len() as u32;
            let vector: Vec<(ItemIndex, f32)> = history
                .iter()
                .take(TRAINING_HISTORY)
                .map(|(item, _)| (*item, (seen_at[item].1 as f32).sqrt() * idf))
                .collect();
            for &(item, weight) in &vector {
                item_users[item as usize].push((u, weight));
            }
            user_vectors.push(vector);
            let mut counts: Vec<(ItemIndex, f32)> = seen_at
                .iter()
                .map(|(item, (_, events))| (*item, *events as f32))
                .collect();
            counts.sort_unstable_by_key(|c| c.0);
            users.insert(
                user_id.to_owned(),
                User {
                    history,
                    events: pairs,
                    counts,
                    vector: None,
                },
            );
        }

        let popularity: Vec<f32> = item_users
            .iter()
            .map(|us| us.iter().map(|(_, w)| w).sum())
            .collect();
        let norms: Vec<f32> = item_users
            .iter()
            .map(|us| us.iter().map(|(_, w)| w * w).sum::<f32>().sqrt())
            .collect();
        let neighbours = similar_items(&item_users, &user_vectors, &norms, &popularity, &item_ids);

        let mut popular: Vec<ItemIndex> = (0..item_ids.len() as ItemIndex).collect();
        popular.sort_by(|&a, &b| rank_order(&popularity, &item_ids, a, b, 0.0, 0.0));

        let trained = Trained {
            users: users.len(),
            event_types: event_types.len(),
        };
        Model {
            item_ids,
            item_index,
            popularity,
            popular,
            neighbours,
            users,
            event_types,
            trained,
            blend: None,
        }
    }

    /// Trains matrix factors on the users' item counts and blends them into every score.
    pub fn blend_factors(&mut self, config: Config, weight: f32) {
        // In user-id order: each user's random start is then the same in every run.
        let mut users: Vec<(&String, &mut User)> = self.users.iter_mut().collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let rows: Vec<Vec<(ItemIndex, f32)>> = users.iter().map(|u| u.1.counts.clone()).collect();
        let (factors, vectors) = Factors::train(&rows, self.item_ids.len(), &config);
        for ((_, user), vector) in users.iter_mut().zip(vectors) {
            user.vector = Some(vector);
        }
        self.blend = Some(Blend {
            factors,
            config,
            weight,
        });
    }

    pub fn kind(&self) -> Kind {
        match &self.blend {
            Some(blend) => Kind::Blended {
                config: blend.config,
                weight: blend.weight,
            },
            None => Kind::CoOccurrence,
        }
    }

    pub fn stats(&self, interactions: usize) -> Stats {
        Stats {
            users: self.users.len(),
            items: self.item_ids.len(),
            interactions,
        }
    }

    pub fn item_id(&self, item: ItemIndex) -> &str {
        &self.item_ids[item as usize]
    }

    pub fn item_ids(&self) -> &[String] {
        &self.item_ids
    }

    pub fn index_of(&self, item_id: &str) -> Option<ItemIndex> {
        self.item_index.get(item_id).copied()
    }

    /// Some user id from the data, for the start-up hint.
    pub fn example_user(&self) -> Option<&str> {
        self.users.keys().min().map(String::as_str)
    }

    /// Items the user had any of these event types with.
    pub fn items_with_events(&self, user_id: &str, event_types: &[&str]) -> Vec<ItemIndex> {
        let wanted: Vec<EventIndex> = self
            .event_types
            .iter()
            .enumerate()
            .filter(|(_, e)| event_types.contains(&e.as_str()))
            .map(|(i, _)| i as EventIndex)
            .collect();
        let mut items: Vec<ItemIndex> = self
            .users
            .get(user_id)
            .map(|u| {
                u.events
                    .iter()
                    .filter(|(_, e)| wanted.contains(e))
                    .map(|(i, _)| *i)
                    .collect()
            })
            .unwrap_or_default();
        items.dedup();
        items
    }

    /// Up to `count` items for the user, best first, each passing `allowed`.
    pub fn recommend(
        &self,
        user_id: &str,
        count: usize,
        allowed: impl Fn(ItemIndex) -> bool,
    ) -> Vec<ItemIndex> {
        let user = self.users.get(user_id);
        let scored = user.map_or(Scored::Sparse(HashMap::default()), |u| self.scored(u));
        self.best(user, &scored, count, allowed)
    }

    /// Tuning's view of `recommend` (nothing filtered): the top `count` for each blend weight,
    /// from one scoring of the user. Each list is ranked among the `TUNING_POOL` best unseen
    /// items of each kind of score, which holds the blend's top few but for rare exceptions.
    /// Without factors, every weight gets co-occurrence's list.
    pub fn recommend_blends(
        &self,
        user_id: &str,
        count: usize,
        weights: &[f32],
    ) -> Vec<Vec<ItemIndex>> {
        let user = self.users.get(user_id);
        let (Some(user), Some(blend)) = (user, &self.blend) else {
            return vec![self.recommend(user_id, count, |_| true); weights.len()];
        };
        let Some(vector) = &user.vector else {
            return vec![self.recommend(user_id, count, |_| true); weights.len()];
        };
        let co_occurrence = self.dense_scores(user);
        let mut factors = Vec::with_capacity(self.item_ids.len());
        blend.factors.score_all(vector, &mut factors);
        let (co_scale, factor_scale) = (inverse_largest(&co_occurrence), inverse_largest(&factors));
        let unseen = unseen_by(Some(user));
        let mut pool = best_unseen(&co_occurrence, TUNING_POOL, &unseen);
        pool.extend(best_unseen(&factors, TUNING_POOL, &unseen));
        pool.sort_unstable();
        pool.dedup();
        weights
            .iter()
            .map(|&weight| {
                let scored: Vec<(ItemIndex, f32)> = pool
                    .iter()
                    .map(|&i| {
                        let (co, factor) = (co_occurrence[i as usize], factors[i as usize]);
                        let score = (1.0 - weight) * co_scale * co + weight * factor_scale * factor;
                        (i, score)
                    })
                    .collect();
                self.top(scored, count, &unseen)
            })
            .collect()
    }

    /// The `count` best-scored items the user has not seen and `allowed` lets through, popular
    /// items filling in.
    fn best(
        &self,
        user: Option<&User>,
        scored: &Scored,
        count: usize,
        allowed: impl Fn(ItemIndex) -> bool,
    ) -> Vec<ItemIndex> {
        let unseen = unseen_by(user);
        let wanted = |candidates: Vec<(ItemIndex, f32)>| -> Vec<(ItemIndex, f32)> {
            candidates
                .into_iter()
                .filter(|&(item, _)| unseen(item) && allowed(item))
                .collect()
        };
        // Enough for the user's seen items and a margin for filters; everything scored only
        // when too few of those pass.
        let keep = 4 * count + user.map_or(0, |u| u.counts.len()) + 50;
        let scored = match wanted(scored.shortlist(keep)) {
            passed if passed.len() < count && scored.longer_than(keep) => wanted(scored.all()),
            passed => passed,
        };
        self.top(scored, count, |item| unseen(item) && allowed(item))
    }

    /// The best `count` of the scored items in rank order, then popular items `fill` lets
    /// through until there are `count`.
    fn top(
        &self,
        mut scored: Vec<(ItemIndex, f32)>,
        count: usize,
        fill: impl Fn(ItemIndex) -> bool,
    ) -> Vec<ItemIndex> {
        let order = |a: &(ItemIndex, f32), b: &(ItemIndex, f32)| {
            rank_order(&self.popularity, &self.item_ids, a.0, b.0, a.1, b.1)
        };
        // Only the best `count` need ordering.
        if scored.len() > count && count > 0 {
            scored.select_nth_unstable_by(count - 1, order);
            scored.truncate(count);
        }
        scored.sort_by(order);
        let mut picked: Vec<ItemIndex> = Vec::with_capacity(count);
        picked.extend(scored.iter().take(count).map(|(item, _)| *item));
        self.fill_popular(&mut picked, count, fill);
        picked
    }

    /// Up to `count` of the most popular items the user has not seen, each passing `allowed`: the
    /// same list for everyone, less their own history.
    pub fn popular_for(
        &self,
        user_id: &str,
        count: usize,
        allowed: impl Fn(ItemIndex) -> bool,
    ) -> Vec<ItemIndex> {
        let unseen = unseen_by(self.users.get(user_id));
        let mut picked = Vec::with_capacity(count);
        self.fill_popular(&mut picked, count, |item| unseen(item) && allowed(item));
        picked
    }

    /// Adds popular items that `allowed` lets through to `picked`, until it holds `count`.
    fn fill_popular(
        &self,
        picked: &mut Vec<ItemIndex>,
        count: usize,
        allowed: impl Fn(ItemIndex) -> bool,
    ) {
        for &item in &self.popular {
            if picked.len() >= count {
                break;
            }
            if allowed(item) && !picked.contains(&item) {
                picked.push(item);
            }
        }
    }
}

impl Model {
    /// A user's scores. Co-occurrence alone: the neighbours of the recent history (at most
    /// RECENT_HISTORY × NEIGHBOURS). Blended: every item, `(1 − w) · co-occurrence / its largest
    /// + w · factors / their largest`.
    fn scored(&self, user: &User) -> Scored {
        let (Some(blend), Some(vector)) = (&self.blend, &user.vector) else {
            return Scored::Sparse(self.scores(user));
        };
        let mut factors = Vec::with_capacity(self.item_ids.len());
        blend.factors.score_all(vector, &mut factors);
        Scored::Dense(blended(&self.dense_scores(user), factors, blend.weight))
    }

    /// A user's score for each candidate: `Σ weight · similarity` over their recent history.
    fn scores(&self, user: &User) -> HashMap<ItemIndex, f32, IndexHash> {
        let mut scores: HashMap<ItemIndex, f32, IndexHash> = HashMap::with_capacity_and_hasher(
            user.history.len().min(RECENT_HISTORY) * NEIGHBOURS,
            IndexHash::default(),
        );
        for &(item, weight) in user.history.iter().take(RECENT_HISTORY) {
            for &(other, similarity) in self.neighbours[item as usize].iter() {
                *scores.entry(other).or_default() += weight * similarity;
            }
        }
        scores
    }

    /// The same scores, one per item (0 for an item no recent item neighbours).
    fn dense_scores(&self, user: &User) -> Vec<f32> {
        let mut scores = vec![0.0f32; self.item_ids.len()];
        for &(item, weight) in user.history.iter().take(RECENT_HISTORY) {
            for &(other, similarity) in self.neighbours[item as usize].iter() {
                scores[other as usize] += weight * similarity;
            }
        }
        scores
    }

    /// Up to `count` items like `item_id`, most similar first, each passing `allowed`; popular
    /// items fill in, as for an item the data never saw. The item itself is never among them.
    pub fn related(
        &self,
        item_id: &str,
        count: usize,
        allowed: impl Fn(ItemIndex) -> bool,
    ) -> Vec<ItemIndex> {
        let source = self.index_of(item_id);
        let candidates = source
            .map(|item| {
                self.neighbours[item as usize]
                    .iter()
                    .map(|(other, _)| *other)
            })
            .into_iter()
            .flatten()
            .chain(self.popular.iter().copied());
        let mut picked: Vec<ItemIndex> = Vec::with_capacity(count);
        for item in candidates {
            if picked.len() >= count {
                break;
            }
            if Some(item) != source && allowed(item) && !picked.contains(&item) {
                picked.push(item);
            }
        }
        picked
    }

    /// Positions into `item_ids`, in the user's order: by score, then popularity, then as given.
    /// Ids the model does not know go last, as given. Seen items are ranked like any other.
    pub fn rank(&self, user_id: &str, item_ids: &[String]) -> Vec<usize> {
        let scored = self.users.get(user_id).map(|user| self.scored(user));
        let keys: Vec<(f32, f32)> = item_ids
            .iter()
            .map(|id| {
                let item = self.index_of(id);
                let score = item
                    .zip(scored.as_ref())
                    .and_then(|(i, scored)| scored.get(i))
                    .unwrap_or(f32::MIN);
                let popularity = item.map_or(-1.0, |i| self.popularity[i as usize]);
                (score, popularity)
            })
            .collect();
        let mut order: Vec<usize> = (0..item_ids.len()).collect();
        // A stable sort keeps the given order among equals.
        order.sort_by(|&a, &b| {
            let ((score_a, pop_a), (score_b, pop_b)) = (keys[a], keys[b]);
            score_b
                .partial_cmp(&score_a)
                .unwrap_or(Ordering::Equal)
                .then(pop_b.partial_cmp(&pop_a).unwrap_or(Ordering::Equal))
        });
        order
    }

    /// Adds a live interaction to the user's history as their newest, at full weight, so their
    /// next recommendations score from it and leave the item out. Similarities and popularity
    /// stay as trained. `Ok(false)` for an item the model does not know (nothing to score);
    /// `Err` when the event would need a new user or event type past the live limits.
    pub fn record(&mut self, user_id: &str, item_id: &str, event_type: &str) -> Result<bool, Full> {
        let Some(item) = self.index_of(item_id) else {
            return Ok(false);
        };
        let known_type = self.event_types.iter().position(|e| e == event_type);
        if known_type.is_none()
            && self.event_types.len() >= self.trained.event_types + MAX_LIVE_EVENT_TYPES
        {
            return Err(Full::EventTypes);
        }
        if !self.users.contains_key(user_id)
            && self.users.len() >= self.trained.users + MAX_LIVE_USERS
        {
            return Err(Full::Users);
        }
        let event = match known_type {
            Some(e) => e as EventIndex,
            None => {
                self.event_types.push(event_type.to_owned());
                (self.event_types.len() - 1) as EventIndex
            }
        };
        let user = self
            .users
            .entry(user_id.to_owned())
            .or_insert_with(|| User {
                history: Vec::new(),
                events: Vec::new(),
                counts: Vec::new(),
                vector: None,
            });
        user.history.retain(|(i, _)| *i != item);
        user.history.insert(0, (item, 1.0));
        if let Err(at) = user.events.binary_search(&(item, event)) {
            user.events.insert(at, (item, event));
        }
        match user.counts.binary_search_by_key(&item, |c| c.0) {
            Ok(at) => user.counts[at].1 += 1.0,
            Err(at) => user.counts.insert(at, (item, 1.0)),
        }
        // The factors stay as trained; the user's own vector is solved again from their items.
        if let Some(blend) = &self.blend {
            user.vector = Some(blend.factors.fold_in(&user.counts));
        }
        Ok(true)
    }
}

/// Every item's `(1 − weight) · co-occurrence + weight · factors`, each kind of score divided by
/// the user's largest of that kind, so neither scale decides the blend.
fn blended(co_occurrence: &[f32], mut factors: Vec<f32>, weight: f32) -> Vec<f32> {
    let co_scale = (1.0 - weight) * inverse_largest(co_occurrence);
    let factor_scale = weight * inverse_largest(&factors);
    for (f, co) in factors.iter_mut().zip(co_occurrence) {
        *f = *f * factor_scale + co * co_scale;
    }
    factors
}

/// 1 / the largest magnitude among the scores (0 when all are 0).
fn inverse_largest(scores: &[f32]) -> f32 {
    let largest = scores.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    if largest > 0.0 { 1.0 / largest } else { 0.0 }
}

/// The `n` best-scored unseen items (fewer if there are not as many), in no order; of items
/// tied at the edge, the first by index.
fn best_unseen(scores: &[f32], n: usize, unseen: impl Fn(ItemIndex) -> bool) -> Vec<ItemIndex> {
    let mut scratch: Vec<f32> = scores.to_vec();
    // With the user's seen items among the best, the edge moves down until n unseen pass.
    let mut edge = n.min(scratch.len());
    loop {
        if edge == 0 {
            return Vec::new();
        }
        let (_, threshold, _) = scratch.select_nth_unstable_by(edge - 1, |a, b| b.total_cmp(a));
        let threshold = *threshold;
        let mut picked: Vec<ItemIndex> = (0..scores.len() as ItemIndex)
            .filter(|&i| scores[i as usize] > threshold && unseen(i))
            .collect();
        let ties = (0..scores.len() as ItemIndex)
            .filter(|&i| scores[i as usize] == threshold && unseen(i))
            .take(n.saturating_sub(picked.len()));
        picked.extend(ties);
        if picked.len() >= n || edge >= scratch.len() {
            return picked;
        }
        edge = (edge * 2).min(scratch.len());
    }
}

/// A user's scores: co-occurrence's few candidates, or a blend's score for every item.
enum Scored {
    Sparse(HashMap<ItemIndex, f32, IndexHash>),
    Dense(Vec<f32>),
}

impl Scored {
    fn get(&self, item: ItemIndex) -> Option<f32> {
        match self {
            Scored::Sparse(scores) => scores.get(&item).copied(),
            Scored::Dense(scores) => scores.get(item as usize).copied(),
        }
    }

    /// Every scored item (with a positive score, for co-occurrence).
    fn all(&self) -> Vec<(ItemIndex, f32)> {
        match self {
            Scored::Sparse(scores) => scores
                .iter()
                .filter(|(_, score)| **score > 0.0)
                .map(|(item, score)| (*item, *score))
                .collect(),
            Scored::Dense(scores) => scores
                .iter()
                .enumerate()
                .filter(|(_, score)| score.is_finite())
                .map(|(item, score)| (item as ItemIndex, *score))
                .collect(),
        }
    }

    fn longer_than(&self, keep: usize) -> bool {
        matches!(self, Scored::Dense(scores) if scores.len() > keep)
    }

    /// The items to rank for a short list: all of co-occurrence's; of a blend's, those scored
    /// at least the `keep`-th best (ties at the edge included, so the order is the full one's).
    fn shortlist(&self, keep: usize) -> Vec<(ItemIndex, f32)> {
        let Scored::Dense(scores) = self else {
            return self.all();
        };
        if scores.len() <= keep || keep == 0 {
            return self.all();
        }
        let mut scratch: Vec<f32> = scores.iter().copied().filter(|s| s.is_finite()).collect();
        if scratch.len() <= keep {
            return self.all();
        }
        let (_, threshold, _) = scratch.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
        let threshold = *threshold;
        scores
            .iter()
            .enumerate()
            .filter(|(_, score)| **score >= threshold)
            .map(|(item, score)| (item as ItemIndex, *score))
            .collect()
    }
}

/// How much an item `age` seconds older than the user's latest event counts when scoring.
fn recency(age: i64) -> f32 {
    0.5f64.powf(age.max(0) as f64 / HALF_LIFE_SECONDS) as f32
}

/// Whether an item is new to the user (any item, for a user the model does not know).
fn unseen_by(user: Option<&User>) -> impl Fn(ItemIndex) -> bool + '_ {
    move |item| user.is_none_or(|u| u.counts.binary_search_by_key(&item, |c| c.0).is_err())
}

/// Higher score first, then more popular, then the smaller id: a total, stable order.
fn rank_order(
    popularity: &[f32],
    ids: &[String],
    a: ItemIndex,
    b: ItemIndex,
    score_a: f32,
    score_b: f32,
) -> Ordering {
    score_b
        .partial_cmp(&score_a)
        .unwrap_or(Ordering::Equal)
        .then(
            popularity[b as usize]
                .partial_cmp(&popularity[a as usize])
                .unwrap_or(Ordering::Equal),
        )
        .then_with(|| ids[a as usize].cmp(&ids[b as usize]))
}

/// For each item, accumulate co-occurrence over the histories of its users into one dense
/// scratch row, turn it into (asymmetric) cosine similarity and keep the best `NEIGHBOURS`.
/// Memory stays O(items × NEIGHBOURS) instead of O(item pairs).
fn similar_items(
    item_users: &[Vec<(u32, f32)>],
    user_vectors: &[Vec<(ItemIndex, f32)>],
    norms: &[f32],
    popularity: &[f32],
    ids: &[String],
) -> Vec<Box<[(ItemIndex, f32)]>> {
    let mut scratch = vec![0f32; item_users.len()];
    let mut touched: Vec<ItemIndex> = Vec::new();
    let mut neighbours = Vec::with_capacity(item_users.len());
    for (item, users) in item_users.iter().enumerate() {
        for &(user, weight) in users {
            for &(other, other_weight) in &user_vectors[user as usize] {
                if other as usize != item {
                    if scratch[other as usize] == 0.0 {
                        touched.push(other);
                    }
                    scratch[other as usize] += weight * other_weight;
                }
            }
        }
        // `norm^(2α)` is `(norm²)^α`.
        let source = norms[item].powf(2.0 * ASYMMETRY);
        let mut row: Vec<(ItemIndex, f32)> = touched
            .drain(..)
            .map(|other| {
                let co = std::mem::take(&mut scratch[other as usize]);
                let candidate = norms[other as usize].powf(2.0 * (1.0 - ASYMMETRY));
                (other, co / (source * candidate))
            })
            .filter(|(_, similarity)| similarity.is_finite() && *similarity > 0.0)
            .collect();
        let order = |a: &(ItemIndex, f32), b: &(ItemIndex, f32)| {
            rank_order(popularity, ids, a.0, b.0, a.1, b.1)
        };
        if row.len() > NEIGHBOURS {
            row.select_nth_unstable_by(NEIGHBOURS, order);
            row.truncate(NEIGHBOURS);
        }
        row.sort_by(order);
        neighbours.push(row.into_boxed_slice());
    }
    neighbours
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn interactions(rows: &[(&str, &str, &str, i64)]) -> Vec<Interaction> {
        rows.iter()
            .map(|(u, i, e, t)| Interaction {
                user_id: u.to_string(),
                item_id: i.to_string(),
                event_type: e.to_string(),
                timestamp: *t,
            })
            .collect()
    }

    fn ids(model: &Model, items: Vec<ItemIndex>) -> Vec<&str> {
        items.into_iter().map(|i| model.item_id(i)).collect()
    }

    /// Users (all at one time, each item once, so a user's weight for each of their items is
    /// their idf, `ln(1 + 4 items / their distinct items)`):
    /// u1: A B · u2: A B C · u3: B C · u4: C D · u5: A
    fn tiny() -> Model {
        Model::co_occurrence(&interactions(&[
            ("u1", "A", "view", 100),
            ("u1", "B", "view", 100),
            ("u2", "A", "view", 100),
            ("u2", "B", "purchase", 100),
            ("u2", "C", "view", 100),
            ("u3", "B", "view", 100),
            ("u3", "C", "view", 100),
            ("u4", "C", "view", 100),
            ("u4", "D", "view", 100),
            ("u5", "A", "view", 100),
        ]))
    }

    #[test]
    fn scores_are_exactly_the_asymmetric_cosine_of_idf_weighted_co_occurrence() {
        let model = tiny();
        let a = model.index_of("A").unwrap();
        let neighbours: Vec<(&str, f32)> = model.neighbours[a as usize]
            .iter()
            .map(|(i, s)| (model.item_id(*i), *s))
            .collect();
        // Squared weights of users with 1, 2 and 3 items.
        let idf2 = |n: f32| (1.0 + 4.0 / n).ln().powi(2);
        let (one, two, three) = (idf2(1.0), idf2(2.0), idf2(3.0));
        // Squared norms: A's users are u1, u2, u5; B's (and C's) are two with 2 items and u2.
        let (norm_a, norm_b) = (two + three + one, two + three + two);
        let similarity = |co: f32| co / (norm_a.powf(0.6) * norm_b.powf(0.4));
        assert_eq!(neighbours.len(), 2, "A never co-occurs with D");
        // A and B meet in u1 and u2; A and C in u2 only.
        assert_eq!(neighbours[0].0, "B");
        assert!((neighbours[0].1 - similarity(two + three)).abs() < 1e-6);
        assert_eq!(neighbours[1].0, "C");
        assert!((neighbours[1].1 - similarity(three)).abs() < 1e-6);
        // The other way round, A is the candidate: its larger norm costs it less.
        let b = model.index_of("B").unwrap();
        let (_, a_from_b) = model.neighbours[b as usize]
            .iter()
            .find(|(i, _)| *i == a)
            .unwrap();
        let expected = (two + three) / (norm_b.powf(0.6) * norm_a.powf(0.4));
        assert!((a_from_b - expected).abs() < 1e-6);
        assert!(*a_from_b > neighbours[0].1);
    }

    #[test]
    fn a_user_gets_what_their_history_predicts_then_popular_items() {
        let model = tiny();
        // u5 saw A: B (two shared users) before C (one); D never met A and comes from popularity.
        assert_eq!(
            ids(&model, model.recommend("u5", 3, |_| true)),
            ["B", "C", "D"]
        );
        // u3 saw B and C: A is a neighbour of both, D of C only.
        assert_eq!(ids(&model, model.recommend("u3", 5, |_| true)), ["A", "D"]);
        // count is honoured.
        assert_eq!(ids(&model, model.recommend("u5", 1, |_| true)), ["B"]);
    }

    #[test]
    fn seen_items_are_never_recommended() {
        let model = tiny();
        for user in ["u1", "u2", "u3", "u4", "u5"] {
            let seen: Vec<&str> = model.users[user]
                .history
                .iter()
                .map(|(i, _)| model.item_id(*i))
                .collect();
            let recommended = ids(&model, model.recommend(user, 10, |_| true));
            assert!(
                recommended.iter().all(|r| !seen.contains(r)),
                "{user}: {recommended:?} vs {seen:?}"
            );
        }
    }

    #[test]
    fn unknown_users_get_the_most_popular_items() {
        let model = tiny();
        // A, B, C each have 3 users (ties broken by id), D has 1.
        assert_eq!(
            ids(&model, model.recommend("stranger", 10, |_| true)),
            ["A", "B", "C", "D"]
        );
        assert_eq!(
            ids(&model, model.recommend("stranger", 2, |_| true)),
            ["A", "B"]
        );
    }

    #[test]
    fn filters_apply_to_predicted_and_popular_items_alike() {
        let model = tiny();
        let c = model.index_of("C").unwrap();
        assert_eq!(
            ids(&model, model.recommend("u5", 3, |i| i != c)),
            ["B", "D"]
        );
        assert_eq!(
            ids(&model, model.recommend("stranger", 3, |i| i != c)),
            ["A", "B", "D"]
        );
    }

    #[test]
    fn recent_history_counts_more_than_old_history() {
        let day = 24 * 3600;
        // X co-occurs with P (via v1), Y with Q (via v2). The user touched P 90 days ago, Q today.
        let model = Model::co_occurrence(&interactions(&[
            ("v1", "P", "view", 100 * day),
            ("v1", "X", "view", 100 * day),
            ("v2", "Q", "view", 100 * day),
            ("v2", "Y", "view", 100 * day),
            ("user", "P", "view", 10 * day),
            ("user", "Q", "view", 100 * day),
        ]));
        assert_eq!(
            ids(&model, model.recommend("user", 2, |_| true)),
            ["Y", "X"]
        );
    }

    #[test]
    fn years_old_history_still_shapes_similarity() {
        let year = 365 * 24 * 3600;
        // Five shoppers paired P with X three years ago; one paired P with Y today.
        let mut rows: Vec<(String, &str, &str, i64)> = Vec::new();
        for v in 1..=5 {
            rows.push((format!("v{v}"), "P", "view", 0));
            rows.push((format!("v{v}"), "X", "view", 0));
        }
        rows.push(("w".into(), "P", "view", 3 * year));
        rows.push(("w".into(), "Y", "view", 3 * year));
        rows.push(("me".into(), "P", "view", 3 * year));
        let rows: Vec<(&str, &str, &str, i64)> = rows
            .iter()
            .map(|(u, i, e, t)| (u.as_str(), *i, *e, *t))
            .collect();
        let model = Model::co_occurrence(&interactions(&rows));
        // Counted from the newest event in the data, the five would weigh nothing and Y would win.
        assert_eq!(ids(&model, model.recommend("me", 1, |_| true)), ["X"]);
        // A shopper whose last visit was three years ago is scored from that visit: P leads to Y.
        assert_eq!(ids(&model, model.recommend("v1", 1, |_| true)), ["Y"]);
    }

    #[test]
    fn related_items_are_the_neighbours_then_popular_items_never_the_item_itself() {
        let model = tiny();
        // A's neighbours: B (2/3), C (1/3); D fills in from popularity.
        assert_eq!(
            ids(&model, model.related("A", 3, |_| true)),
            ["B", "C", "D"]
        );
        // D's only neighbour is C; popularity adds A and B, and skips D itself.
        assert_eq!(
            ids(&model, model.related("D", 10, |_| true)),
            ["C", "A", "B"]
        );
        let b = model.index_of("B").unwrap();
        assert_eq!(ids(&model, model.related("A", 2, |i| i != b)), ["C", "D"]);
        // An item the data never saw: popular items.
        assert_eq!(ids(&model, model.related("new", 2, |_| true)), ["A", "B"]);
    }

    #[test]
    fn ranking_orders_the_given_items_by_the_users_scores() {
        let model = tiny();
        let given = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // u3 saw B and C: A is a neighbour of both, B and C of each other (seen items are ranked
        // too), D of C only; "zz" is unknown and goes last.
        let items = given(&["zz", "D", "B", "A", "C"]);
        let order: Vec<&str> = model
            .rank("u3", &items)
            .into_iter()
            .map(|p| items[p].as_str())
            .collect();
        assert_eq!(order, ["A", "B", "C", "D", "zz"]);
        // A stranger has no scores: by popularity (Σ of the users' weights: A's u5 has one item and
        // weighs most; B and C tie), unknown last.
        let items = given(&["zz", "D", "C", "A"]);
        let order: Vec<&str> = model
            .rank("stranger", &items)
            .into_iter()
            .map(|p| items[p].as_str())
            .collect();
        assert_eq!(order, ["A", "C", "D", "zz"]);
    }

    #[test]
    fn a_recorded_event_changes_the_next_recommendations() {
        let mut model = tiny();
        // u4 saw C and D: A scores 1/3 from C, B 2/3.
        assert_eq!(ids(&model, model.recommend("u4", 1, |_| true)), ["B"]);
        assert_eq!(model.record("u4", "B", "purchase"), Ok(true));
        // B is seen now; A gains 2/3 from B.
        assert_eq!(ids(&model, model.recommend("u4", 5, |_| true)), ["A"]);
        assert_eq!(
            ids(&model, model.items_with_events("u4", &["purchase"])),
            ["B"]
        );
        // A new user starts a history; an unknown item is not recorded.
        assert_eq!(model.record("newcomer", "D", "click"), Ok(true));
        assert_eq!(ids(&model, model.recommend("newcomer", 1, |_| true)), ["C"]);
        assert_eq!(model.record("newcomer", "unknown", "click"), Ok(false));
    }

    /// Live events may add a bounded number of users and event types, and past the bound are
    /// refused: event types never alias (with 16-bit indices, the 65,536th new type became
    /// `purchase` again and `not-purchased` hid what was only viewed).
    #[test]
    fn live_users_and_event_types_are_bounded_and_never_alias() {
        let mut model = tiny();
        for k in 0..MAX_LIVE_EVENT_TYPES {
            assert_eq!(model.record("u1", "C", &format!("type-{k}")), Ok(true));
        }
        assert_eq!(
            model.record("u1", "D", "one-too-many"),
            Err(Full::EventTypes)
        );
        // Known types still go in, and mean what they meant.
        assert_eq!(model.record("u1", "D", "view"), Ok(true));
        assert_eq!(
            ids(&model, model.items_with_events("u1", &["purchase"])),
            Vec::<&str>::new()
        );
        assert_eq!(model.record("u1", "D", "purchase"), Ok(true));
        assert_eq!(
            ids(&model, model.items_with_events("u1", &["purchase"])),
            ["D"]
        );

        for k in 0..MAX_LIVE_USERS {
            assert_eq!(model.record(&format!("new-{k}"), "A", "view"), Ok(true));
        }
        assert_eq!(model.record("one-more", "A", "view"), Err(Full::Users));
        // Users the model knows keep recording.
        assert_eq!(model.record("new-7", "B", "view"), Ok(true));
        assert_eq!(model.record("u2", "C", "view"), Ok(true));
    }

    #[test]
    fn items_with_events_finds_a_users_purchases() {
        let model = tiny();
        let purchased = ids(&model, model.items_with_events("u2", &["purchase"]));
        assert_eq!(purchased, ["B"]);
        assert!(model.items_with_events("u1", &["purchase"]).is_empty());
    }

    /// Two groups of 40 users and 30 items each, every user with 8 items of their own group
    /// (a fixed pseudo-random pick), an hour apart.
    pub(crate) fn two_groups() -> Vec<Interaction> {
        let mut rows = Vec::new();
        let mut state = 7u64;
        for user in 0..80u64 {
            let group = user % 2;
            let mut items = Vec::new();
            while items.len() < 8 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let item = (state >> 33) % 30;
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            for (hour, item) in items.into_iter().enumerate() {
                rows.push(Interaction {
                    user_id: format!("u{user}"),
                    item_id: format!("g{group}-{item}"),
                    event_type: "view".into(),
                    timestamp: 1_700_000_000 + 3600 * hour as i64,
                });
            }
        }
        rows
    }

    fn factors(weight: f32) -> Model {
        let mut model = Model::co_occurrence(&two_groups());
        // Two factors, one a group: enough for the structure, too few to learn its noise.
        let config = Config {
            factors: 2,
            regularization: 5.0,
            alpha: 10.0,
            iterations: 15,
        };
        model.blend_factors(config, weight);
        model
    }

    #[test]
    fn blended_recommendations_stay_in_the_users_group_unseen_and_filtered() {
        for weight in [0.5, 1.0] {
            let model = factors(weight);
            assert_eq!(
                model.kind(),
                Kind::Blended {
                    config: model.blend.as_ref().map(|b| b.config).unwrap(),
                    weight
                }
            );
            for user in 0..80 {
                let id = format!("u{user}");
                let own = format!("g{}-", user % 2);
                let picked = ids(&model, model.recommend(&id, 10, |_| true));
                assert_eq!(picked.len(), 10);
                assert!(
                    picked.iter().all(|i| i.starts_with(&own)),
                    "{id}: {picked:?}"
                );
                let seen: Vec<&str> = ids(
                    &model,
                    model.users[&id].counts.iter().map(|c| c.0).collect(),
                );
                assert!(picked.iter().all(|i| !seen.contains(i)), "{id}: {picked:?}");
                // A filter that lets only odd items through is obeyed.
                let odd = |i: ItemIndex| model.item_id(i).ends_with(['1', '3', '5', '7', '9']);
                let filtered = model.recommend(&id, 5, odd);
                assert!(filtered.iter().all(|&i| odd(i)));
            }
        }
    }

    #[test]
    fn the_shortlist_gives_the_order_ranking_everything_would() {
        let model = factors(0.65);
        for user in 0..80 {
            let user = &model.users[&format!("u{user}")];
            let Scored::Dense(scores) = model.scored(user) else {
                panic!("a blended model scores every item");
            };
            let scored = Scored::Dense(scores);
            for count in [1, 3, 10] {
                let short = model.best(Some(user), &scored, count, |_| true);
                // Ranking every item: what `best` does when the shortlist is too short.
                let unseen = unseen_by(Some(user));
                let mut all: Vec<(ItemIndex, f32)> =
                    scored.all().into_iter().filter(|c| unseen(c.0)).collect();
                all.sort_by(|a, b| {
                    rank_order(&model.popularity, &model.item_ids, a.0, b.0, a.1, b.1)
                });
                let full: Vec<ItemIndex> = all.iter().take(count).map(|c| c.0).collect();
                assert_eq!(short, full);
            }
        }
    }

    #[test]
    fn a_recorded_event_moves_a_blended_users_factors() {
        let mut model = factors(1.0);
        let before = model.users["u0"].vector.clone().unwrap();
        let group_1 = |model: &Model| {
            ids(model, model.recommend("u0", 5, |_| true))
                .iter()
                .filter(|i| i.starts_with("g1-"))
                .count()
        };
        assert_eq!(group_1(&model), 0);
        // u0 is in group 0; twelve views of group 1 pull their factors towards it.
        for item in 0..12 {
            assert_eq!(model.record("u0", &format!("g1-{item}"), "view"), Ok(true));
        }
        assert_ne!(model.users["u0"].vector.as_deref(), Some(&*before));
        assert!(group_1(&model) > 0);
        let picked = ids(&model, model.recommend("u0", 30, |_| true));
        assert!(picked.iter().all(|i| !["g1-0", "g1-11"].contains(i)));
        // A user first seen live gets a vector from their events alone.
        assert_eq!(model.record("new", "g0-3", "view"), Ok(true));
        assert!(model.users["new"].vector.is_some());
        let picked = ids(&model, model.recommend("new", 5, |_| true));
        assert!(picked.iter().all(|i| i.starts_with("g0-")), "{picked:?}");
    }

    #[test]
    fn ranking_and_related_items_work_on_a_blended_model() {
        let model = factors(0.5);
        let given: Vec<String> = ["g1-3", "nope", "g0-4", "g0-5"].map(String::from).to_vec();
        let order = model.rank("u0", &given);
        // The two group-0 items first (u0 is group 0), the unknown id last.
        assert_eq!(order.len(), 4);
        assert!(
            order[..2].iter().all(|&i| given[i].starts_with("g0-")),
            "{order:?}"
        );
        assert_eq!(order[3], 1);
        let related = ids(&model, model.related("g0-4", 5, |_| true));
        assert!(related.iter().all(|i| i.starts_with("g0-") && *i != "g0-4"));
    }
}
