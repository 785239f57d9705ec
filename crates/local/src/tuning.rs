//! Choosing the model for the data at hand, as a data scientist would: hold out each user's
//! newest events, try the candidates on what is left, keep what predicts the held-out part best.
//!
//! The candidates are item co-occurrence alone, and co-occurrence blended with matrix factors at
//! several weights: few factors or many, each at two confidence scales (`alpha` 1 and 10: sparse
//! ratings data and dense consumption data want different ones). Co-occurrence wins on data with
//! strong item-to-item structure, factors on data where users fall into groups; most real data
//! wants some of both. Ties go to less of the factors, and a blend at weight 0 is co-occurrence
//! alone, which then trains no factors at all.
//!
//! The split is `evaluate`'s: the newest fifth of each user's events held out, only items new to
//! the user counting. On large data the choice is made on an even sample of the users, so it costs
//! about what a dataset of `MAX_TUNING_INTERACTIONS` costs to train.

use std::collections::{HashMap, HashSet};

use personalize_braze_core::dataset::Interaction;

use crate::cooccurrence::Model;
use crate::evaluation;
use crate::factors::Config;

/// Below this, a held-out part is too small to choose by: co-occurrence alone.
const MIN_INTERACTIONS: usize = 1_000;
/// Fewer users with something to find than this, and the choice would be noise.
const MIN_VALIDATION_USERS: usize = 30;
/// Validation users scored, at most (evenly spread over them).
const MAX_VALIDATION_USERS: usize = 10_000;
/// About this many interactions (of whole users) are used to choose, at most.
const MAX_TUNING_INTERACTIONS: usize = 150_000;
/// The share of each user's newest events held out, as `evaluate` does.
const HOLDOUT: f64 = 0.2;
/// NDCG is measured at this depth, as Personalize's solution metrics are.
const DEPTH: usize = 10;
/// The factors' shares tried, in order: ties keep the earlier (less factors).
const WEIGHTS: [f32; 6] = [0.0, 0.35, 0.5, 0.65, 0.8, 1.0];
const ALPHAS: [f32; 2] = [1.0, 10.0];
/// Few factors: broad tastes, which generalise when the data has a handful of clear groups.
const FEW_FACTORS: usize = 16;

/// The most factors per user and item: as many as training 1 million interactions in a few
/// seconds allows.
fn factors_for(interactions: usize) -> usize {
    match interactions {
        0..=150_000 => 128,
        150_001..=400_000 => 64,
        _ => 32,
    }
}

/// The factor models tried: few and many factors, each at both confidence scales.
fn candidates(interactions: usize) -> Vec<Config> {
    let mut sizes = vec![FEW_FACTORS, factors_for(interactions)];
    sizes.dedup();
    sizes
        .into_iter()
        .flat_map(|factors| {
            ALPHAS.map(|alpha| Config {
                factors,
                regularization: 10.0,
                alpha,
                iterations: 15,
            })
        })
        .collect()
}

/// Trains on the interactions: co-occurrence, with the factors blended in that predict each
/// user's newest events best, when any do.
pub fn train(interactions: &[Interaction]) -> Model {
    let mut model = Model::co_occurrence(interactions);
    if let Some((config, weight)) = choose(interactions) {
        model.blend_factors(config, weight);
    }
    model
}

/// The factors and their weight that predict the users' newest events best, or `None` when
/// co-occurrence alone does (or the data is too small to tell).
pub fn choose(interactions: &[Interaction]) -> Option<(Config, f32)> {
    if interactions.len() < MIN_INTERACTIONS {
        return None;
    }
    let (training, test) = holdout(interactions);
    if test.len() < MIN_VALIDATION_USERS {
        return None;
    }
    let stride = test.len().div_ceil(MAX_VALIDATION_USERS);
    let users: Vec<_> = test.iter().step_by(stride).collect();

    let mut model = Model::co_occurrence(training);
    let mut best: Option<(f64, Config, f32)> = None;
    for config in candidates(interactions.len()) {
        model.blend_factors(config, 0.0);
        let sums = in_parallel(&users, |user, truth| {
            // Items training never saw cannot be recommended, yet count in the ideal list.
            let truth: HashSet<u32> = truth
                .iter()
                .enumerate()
                .map(|(n, id)| model.index_of(id).unwrap_or(u32::MAX - n as u32))
                .collect();
            let lists = model.recommend_blends(user, DEPTH, &WEIGHTS);
            let mut ndcg = [0.0f64; WEIGHTS.len()];
            for (sum, list) in ndcg.iter_mut().zip(lists) {
                *sum = evaluation::ndcg_at_k(&list, &truth, DEPTH).unwrap_or(0.0);
            }
            ndcg
        });
        for (sum, weight) in sums.iter().zip(WEIGHTS) {
            let ndcg = sum / users.len() as f64;
            if best.is_none_or(|(b, _, _)| ndcg > b) {
                best = Some((ndcg, config, weight));
            }
        }
    }
    best.filter(|(_, _, weight)| *weight > 0.0)
        .map(|(_, config, weight)| (config, weight))
}

/// Σ over the users of `score`'s NDCG at each weight, the users shared among the cores.
fn in_parallel<F>(users: &[&(&str, HashSet<String>)], score: F) -> [f64; WEIGHTS.len()]
where
    F: Fn(&str, &HashSet<String>) -> [f64; WEIGHTS.len()] + Sync,
{
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = users.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = users
            .chunks(chunk)
            .map(|part| {
                let score = &score;
                scope.spawn(move || {
                    let mut sums = [0.0f64; WEIGHTS.len()];
                    for (user, truth) in part {
                        for (sum, ndcg) in sums.iter_mut().zip(score(user, truth)) {
                            *sum += ndcg;
                        }
                    }
                    sums
                })
            })
            .collect();
        let mut sums = [0.0f64; WEIGHTS.len()];
        for worker in workers {
            // A worker that panicked has no sums to give; its users count as misses.
            if let Ok(part) = worker.join() {
                for (sum, ndcg) in sums.iter_mut().zip(part) {
                    *sum += ndcg;
                }
            }
        }
        sums
    })
}

/// `evaluation::split`'s holdout over borrowed interactions, on an even sample of the users when
/// there are more than `MAX_TUNING_INTERACTIONS`: the training part, and each tested user's new
/// items, sorted by user.
fn holdout(interactions: &[Interaction]) -> (Vec<&Interaction>, Vec<(&str, HashSet<String>)>) {
    let mut by_user: HashMap<&str, Vec<&Interaction>> = HashMap::new();
    for interaction in interactions {
        by_user
            .entry(&interaction.user_id)
            .or_default()
            .push(interaction);
    }
    let mut users: Vec<(&str, Vec<&Interaction>)> = by_user.into_iter().collect();
    users.sort_unstable_by_key(|(user, _)| *user);
    let keep_every = interactions.len().div_ceil(MAX_TUNING_INTERACTIONS).max(1);

    let mut training = Vec::new();
    let mut test = Vec::new();
    for (user, mut events) in users.into_iter().step_by(keep_every) {
        // Oldest first; ties keep file order (the sort is stable).
        events.sort_by_key(|e| e.timestamp);
        let first_test = evaluation::first_held_out(events.len(), HOLDOUT);
        let (seen, held) = events.split_at(first_test);
        let seen_items: HashSet<&str> = seen.iter().map(|e| e.item_id.as_str()).collect();
        let truth: HashSet<String> = held
            .iter()
            .filter(|e| !seen_items.contains(e.item_id.as_str()))
            .map(|e| e.item_id.clone())
            .collect();
        training.extend_from_slice(seen);
        if !truth.is_empty() {
            test.push((user, truth));
        }
    }
    (training, test)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cooccurrence::{Kind, tests::two_groups};

    #[test]
    fn too_little_data_is_not_tuned() {
        // 640 interactions: fewer than tuning needs to tell the candidates apart.
        assert_eq!(choose(&two_groups()), None);
        assert_eq!(train(&two_groups()).kind(), Kind::CoOccurrence);
    }
}
