//! Offline evaluation: split interactions by time, ask a recommender for each test user's top `k`
//! given only the training part, and score the answers against what the user did next.
//!
//! The metrics are the ones Personalize reports for a solution version, computed per user and
//! averaged over users who have something to find (a non-empty truth set):
//! - precision@k: relevant items in the top k, divided by k;
//! - NDCG@k: Σ 1/log2(1 + position) over relevant positions, divided by the same sum for an ideal
//!   list (all relevant items first, at most k of them);
//! - MRR@k: 1 / the position of the first relevant item in the top k, 0 if none;
//! - coverage: distinct items recommended to anyone, divided by the catalog's distinct items.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use personalize_braze_core::dataset::Interaction;

/// How the interactions are divided into what a recommender may see and what it should predict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Split {
    /// The newest `fraction` of each user's events (at least one, never all) are the test part.
    /// Users with a single event are training only.
    Holdout { fraction: f64 },
    /// Events at or after this Unix time are the test part. Users with no earlier event are
    /// still tested (as cold users).
    Cutoff { timestamp: i64 },
}

/// Where a user's held-out part starts among their `events` events, oldest first: the newest
/// `fraction` (at least one, never all); a user with a single event is training only.
pub fn first_held_out(events: usize, fraction: f64) -> usize {
    if events < 2 {
        events
    } else {
        let test = ((events as f64) * fraction).round() as usize;
        events - test.clamp(1, events - 1)
    }
}

/// The training interactions and, per test user, the distinct items of their test events.
/// Unless `keep_seen`, items the user already had in training are not part of their truth set
/// (users left with nothing to find are not tested): the embedded model never recommends an
/// item the user has seen, and a message rarely should.
#[derive(Debug, Default)]
pub struct Divided {
    pub training: Vec<Interaction>,
    /// Sorted by user id, so runs are repeatable.
    pub test: Vec<(String, HashSet<String>)>,
}

pub fn split(interactions: Vec<Interaction>, split: Split, keep_seen: bool) -> Divided {
    let mut by_user: HashMap<String, Vec<Interaction>> = HashMap::new();
    for interaction in interactions {
        by_user
            .entry(interaction.user_id.clone())
            .or_default()
            .push(interaction);
    }
    let mut divided = Divided::default();
    for (user, mut events) in by_user {
        // Oldest first; ties keep file order (the sort is stable).
        events.sort_by_key(|e| e.timestamp);
        let first_test = match split {
            Split::Holdout { fraction } => first_held_out(events.len(), fraction),
            Split::Cutoff { timestamp } => events.partition_point(|e| e.timestamp < timestamp),
        };
        let test_events = events.split_off(first_test);
        let mut truth: HashSet<String> = test_events.into_iter().map(|e| e.item_id).collect();
        if !keep_seen {
            for event in &events {
                truth.remove(&event.item_id);
            }
        }
        divided.training.extend(events);
        if !truth.is_empty() {
            divided.test.push((user, truth));
        }
    }
    divided.training.sort_by_key(|e| e.timestamp);
    divided.test.sort_by(|a, b| a.0.cmp(&b.0));
    divided
}

/// Relevant items in the top `k`, divided by `k`. A repeated id counts once.
pub fn precision_at_k(recommended: &[String], truth: &HashSet<String>, k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    hits(recommended, truth, k).count() as f64 / k as f64
}

/// DCG of the top `k` over the DCG of an ideal list; `None` when there is nothing to find.
pub fn ndcg_at_k<T: Eq + Hash>(recommended: &[T], truth: &HashSet<T>, k: usize) -> Option<f64> {
    let ideal: f64 = (0..truth.len().min(k)).map(gain).sum();
    if ideal == 0.0 {
        return None;
    }
    let dcg: f64 = hits(recommended, truth, k).map(gain).sum();
    Some(dcg / ideal)
}

/// 1 / the (1-based) position of the first relevant item in the top `k`; 0 when there is none.
pub fn reciprocal_rank_at_k(recommended: &[String], truth: &HashSet<String>, k: usize) -> f64 {
    hits(recommended, truth, k)
        .next()
        .map_or(0.0, |position| 1.0 / (position + 1) as f64)
}

/// The gain of a hit at 0-based `position`: 1 / log2(position + 2).
fn gain(position: usize) -> f64 {
    1.0 / ((position + 2) as f64).log2()
}

/// 0-based positions of relevant items within the top `k`, each item counted at its first place.
fn hits<'a, T: Eq + Hash>(
    recommended: &'a [T],
    truth: &'a HashSet<T>,
    k: usize,
) -> impl Iterator<Item = usize> + 'a {
    let mut seen = HashSet::new();
    recommended
        .iter()
        .take(k)
        .enumerate()
        .filter(move |(_, id)| truth.contains(*id) && seen.insert(*id))
        .map(|(position, _)| position)
}

/// Averages over the users scored so far.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Users whose answers were scored.
    pub users: usize,
    /// Users whose request failed (a live backend refusing or timing out); not in the averages.
    pub failed: usize,
    pub precision_at_k: f64,
    pub ndcg_at_k: f64,
    pub mrr_at_k: f64,
    pub coverage: f64,
}

/// Accumulates per-user results into [`Scores`].
pub struct Tally<'a> {
    k: usize,
    catalog: &'a HashSet<String>,
    recommended: HashSet<&'a str>,
    sums: [f64; 3],
    users: usize,
    failed: usize,
}

impl<'a> Tally<'a> {
    /// `catalog` is every item id that could be recommended, for coverage.
    pub fn new(k: usize, catalog: &'a HashSet<String>) -> Self {
        Tally {
            k,
            catalog,
            recommended: HashSet::new(),
            sums: [0.0; 3],
            users: 0,
            failed: 0,
        }
    }

    /// Scores one user's answer; ids outside `catalog` count for precision but not coverage.
    pub fn add(&mut self, recommended: &[String], truth: &HashSet<String>) {
        for id in recommended.iter().take(self.k) {
            if let Some(id) = self.catalog.get(id) {
                self.recommended.insert(id.as_str());
            }
        }
        let Some(ndcg) = ndcg_at_k(recommended, truth, self.k) else {
            return;
        };
        self.users += 1;
        self.sums[0] += precision_at_k(recommended, truth, self.k);
        self.sums[1] += ndcg;
        self.sums[2] += reciprocal_rank_at_k(recommended, truth, self.k);
    }

    pub fn fail(&mut self) {
        self.failed += 1;
    }

    pub fn scores(&self) -> Scores {
        let mean = |sum: f64| {
            if self.users == 0 {
                0.0
            } else {
                sum / self.users as f64
            }
        };
        Scores {
            users: self.users,
            failed: self.failed,
            precision_at_k: mean(self.sums[0]),
            ndcg_at_k: mean(self.sums[1]),
            mrr_at_k: mean(self.sums[2]),
            coverage: if self.catalog.is_empty() {
                0.0
            } else {
                self.recommended.len() as f64 / self.catalog.len() as f64
            },
        }
    }
}

/// A [`Tally`] over all users and one per segment: the value of a user field (`TIER`, …) from
/// the users dataset, so a model that serves one segment worse shows it.
pub struct Segmented<'a> {
    pub all: Tally<'a>,
    by: std::collections::BTreeMap<String, Tally<'a>>,
    segment_of: &'a HashMap<String, String>,
    k: usize,
    catalog: &'a HashSet<String>,
}

/// The segment of a user the users dataset has no value for.
pub const NO_SEGMENT: &str = "(none)";

impl<'a> Segmented<'a> {
    /// `segment_of` maps user ids to their segment; empty, there are no segments.
    pub fn new(
        k: usize,
        catalog: &'a HashSet<String>,
        segment_of: &'a HashMap<String, String>,
    ) -> Self {
        Segmented {
            all: Tally::new(k, catalog),
            by: std::collections::BTreeMap::new(),
            segment_of,
            k,
            catalog,
        }
    }

    fn segment(&mut self, user: &str) -> Option<&mut Tally<'a>> {
        if self.segment_of.is_empty() {
            return None;
        }
        let name = self
            .segment_of
            .get(user)
            .map(String::as_str)
            .unwrap_or(NO_SEGMENT);
        let (k, catalog) = (self.k, self.catalog);
        Some(
            self.by
                .entry(name.to_owned())
                .or_insert_with(|| Tally::new(k, catalog)),
        )
    }

    pub fn add(&mut self, user: &str, recommended: &[String], truth: &HashSet<String>) {
        self.all.add(recommended, truth);
        if let Some(tally) = self.segment(user) {
            tally.add(recommended, truth);
        }
    }

    pub fn fail(&mut self, user: &str) {
        self.all.fail();
        if let Some(tally) = self.segment(user) {
            tally.fail();
        }
    }

    /// Scores over everyone, and per segment (in segment order).
    pub fn scores(&self) -> (Scores, Vec<(String, Scores)>) {
        (
            self.all.scores(),
            self.by
                .iter()
                .map(|(name, tally)| (name.clone(), tally.scores()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn precision_counts_hits_over_k_even_when_the_list_is_shorter() {
        let truth = set(&["b", "d", "z"]);
        assert!(close(
            precision_at_k(&list(&["a", "b", "c", "d"]), &truth, 4),
            0.5
        ));
        // k larger than the list: still divided by k, as Personalize does.
        assert!(close(precision_at_k(&list(&["b", "d"]), &truth, 10), 0.2));
        // Only the top k count.
        assert!(close(
            precision_at_k(&list(&["a", "c", "b"]), &truth, 2),
            0.0
        ));
        // A repeated id is one hit.
        assert!(close(
            precision_at_k(&list(&["b", "b", "b"]), &truth, 3),
            1.0 / 3.0
        ));
        assert!(close(precision_at_k(&[], &truth, 5), 0.0));
    }

    #[test]
    fn ndcg_matches_a_hand_computation() {
        // Hits at positions 2 and 4 (1-based): 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068.
        // Ideal with 3 relevant items and k = 4: 1 + 1/log2(3) + 1/log2(4) = 1 + 0.63093 + 0.5.
        let ndcg = ndcg_at_k(&list(&["a", "b", "c", "d"]), &set(&["b", "d", "z"]), 4).unwrap();
        let expected = (0.630_929_753_571_457_4 + 0.430_676_558_073_393) / 2.130_929_753_571_457;
        assert!(close(ndcg, expected), "{ndcg} vs {expected}");
        assert!(close(ndcg, 0.498_189_257_466), "{ndcg}");

        // Every relevant item first: 1, whatever follows.
        assert_eq!(
            ndcg_at_k(&list(&["b", "a", "c"]), &set(&["b"]), 3),
            Some(1.0)
        );
        // The ideal list is cut at k: two relevant, k = 1, hit at 1 → 1.
        assert_eq!(
            ndcg_at_k(&list(&["b", "d"]), &set(&["b", "d"]), 1),
            Some(1.0)
        );
        // A repeated hit adds no gain.
        let repeated = ndcg_at_k(&list(&["b", "b"]), &set(&["b", "d"]), 2).unwrap();
        assert!(close(repeated, 1.0 / (1.0 + 1.0 / 3f64.log2())));
    }

    #[test]
    fn an_empty_truth_set_has_no_ndcg_and_is_left_out_of_the_averages() {
        assert_eq!(ndcg_at_k(&list(&["a"]), &set(&[]), 10), None);
        let catalog = set(&["a", "b", "c", "d"]);
        let mut tally = Tally::new(2, &catalog);
        tally.add(&list(&["a", "b"]), &set(&[]));
        tally.add(&list(&["c", "a"]), &set(&["a"]));
        let scores = tally.scores();
        assert_eq!(scores.users, 1);
        assert!(close(scores.precision_at_k, 0.5));
        assert!(close(scores.mrr_at_k, 0.5));
        assert!(close(scores.ndcg_at_k, 1.0 / 3f64.log2()));
        // Coverage counts what was shown to everyone, the empty-truth user included: a, b, c.
        assert!(close(scores.coverage, 0.75));
    }

    #[test]
    fn reciprocal_rank_is_the_first_hit_within_k() {
        let truth = set(&["c", "e"]);
        assert!(close(
            reciprocal_rank_at_k(&list(&["a", "b", "c", "e"]), &truth, 25),
            1.0 / 3.0
        ));
        assert!(close(
            reciprocal_rank_at_k(&list(&["a", "b", "c"]), &truth, 2),
            0.0
        ));
        assert!(close(reciprocal_rank_at_k(&list(&["e"]), &truth, 25), 1.0));
    }

    #[test]
    fn segments_score_their_own_users_and_the_rest_fall_in_none() {
        let catalog = set(&["a", "b", "c"]);
        let segment_of = HashMap::from([
            ("gold-1".to_owned(), "gold".to_owned()),
            ("bronze-1".to_owned(), "bronze".to_owned()),
        ]);
        let mut tally = Segmented::new(1, &catalog, &segment_of);
        tally.add("gold-1", &list(&["a"]), &set(&["a"]));
        tally.add("bronze-1", &list(&["b"]), &set(&["c"]));
        tally.add("stranger", &list(&["c"]), &set(&["c"]));
        tally.fail("gold-1");
        let (all, by) = tally.scores();
        assert!(close(all.precision_at_k, 2.0 / 3.0));
        let by: HashMap<String, Scores> = by.into_iter().collect();
        assert!(close(by["gold"].precision_at_k, 1.0));
        assert_eq!(by["gold"].failed, 1);
        assert!(close(by["bronze"].precision_at_k, 0.0));
        assert!(close(by[NO_SEGMENT].precision_at_k, 1.0));

        let none = HashMap::new();
        let mut plain = Segmented::new(1, &catalog, &none);
        plain.add("anyone", &list(&["a"]), &set(&["a"]));
        assert!(plain.scores().1.is_empty());
    }

    #[test]
    fn averages_are_over_users_and_coverage_over_the_catalog() {
        let catalog = set(&["a", "b", "c", "d", "e"]);
        let mut tally = Tally::new(2, &catalog);
        tally.add(&list(&["a", "b", "c"]), &set(&["a"])); // p 0.5, rr 1, ndcg 1
        tally.add(&list(&["b", "x"]), &set(&["c"])); // p 0, rr 0, ndcg 0
        tally.fail();
        let scores = tally.scores();
        assert_eq!((scores.users, scores.failed), (2, 1));
        assert!(close(scores.precision_at_k, 0.25));
        assert!(close(scores.mrr_at_k, 0.5));
        assert!(close(scores.ndcg_at_k, 0.5));
        // Only the top 2 count, and unknown ids do not: a, b of five.
        assert!(close(scores.coverage, 0.4));
    }

    fn event(user: &str, item: &str, timestamp: i64) -> Interaction {
        Interaction {
            user_id: user.into(),
            item_id: item.into(),
            event_type: "view".into(),
            timestamp,
        }
    }

    #[test]
    fn holdout_takes_each_users_newest_events_and_keeps_one_for_training() {
        let events = vec![
            event("u1", "a", 40),
            event("u1", "b", 10),
            event("u1", "c", 30),
            event("u1", "d", 20),
            event("u1", "e", 50),
            event("u2", "a", 5),
            event("u2", "b", 6),
            event("u3", "a", 1),
        ];
        let divided = split(events, Split::Holdout { fraction: 0.4 }, false);
        // u1: 5 events, 40% → the 2 newest (a at 40, e at 50). u2: 2 events, 0.8 rounds to 1.
        // u3: one event, training only.
        assert_eq!(
            divided.test,
            vec![
                ("u1".to_string(), set(&["a", "e"])),
                ("u2".to_string(), set(&["b"]))
            ]
        );
        let training: Vec<_> = divided
            .training
            .iter()
            .map(|e| (e.user_id.as_str(), e.item_id.as_str()))
            .collect();
        assert_eq!(
            training,
            [
                ("u3", "a"),
                ("u2", "a"),
                ("u1", "b"),
                ("u1", "d"),
                ("u1", "c")
            ]
        );
        // Even a fraction of 1 leaves one training event.
        let all = split(
            vec![event("u", "a", 1), event("u", "b", 2)],
            Split::Holdout { fraction: 1.0 },
            false,
        );
        assert_eq!(all.training.len(), 1);
    }

    #[test]
    fn cutoff_tests_everything_from_the_cutoff_on_including_cold_users() {
        let events = vec![
            event("u1", "a", 10),
            event("u1", "b", 20),
            event("u2", "c", 25),
            event("u3", "d", 5),
        ];
        let divided = split(events, Split::Cutoff { timestamp: 20 }, false);
        assert_eq!(
            divided.test,
            vec![
                ("u1".to_string(), set(&["b"])),
                ("u2".to_string(), set(&["c"]))
            ]
        );
        assert_eq!(divided.training.len(), 2);
    }

    #[test]
    fn items_seen_in_training_leave_the_truth_set_unless_kept() {
        let events = vec![
            event("u1", "a", 1),
            event("u1", "b", 2),
            event("u1", "a", 3),
            event("u2", "c", 1),
            event("u2", "c", 2),
        ];
        let cutoff = Split::Cutoff { timestamp: 2 };
        let new_only = split(events.clone(), cutoff, false);
        assert_eq!(new_only.test, vec![("u1".to_string(), set(&["b"]))]);
        let kept = split(events, cutoff, true);
        assert_eq!(
            kept.test,
            vec![
                ("u1".to_string(), set(&["a", "b"])),
                ("u2".to_string(), set(&["c"]))
            ]
        );
    }
}
