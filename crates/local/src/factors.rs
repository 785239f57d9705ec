//! Matrix factorisation for implicit feedback: every user and item becomes a vector of `factors`
//! numbers whose dot product predicts whether the user touches the item.
//!
//! The loss is Hu, Koren and Volinsky's ("Collaborative Filtering for Implicit Feedback Datasets",
//! 2008): every (user, item) cell counts, an observed one with confidence `alpha · events` and
//! target 1, an unobserved one with weight 1 and target 0, plus `regularization · |vector|²`.
//! Alternating least squares fixes the items and solves every user, then the other way round; each
//! solve is a few conjugate-gradient steps from the previous vector (Takács, Pilászy and Tikk,
//! 2011), so an iteration costs `O(events · factors + rows · factors²)` instead of a matrix
//! inversion per row. The unobserved cells enter through one Gram matrix per half-iteration.

use std::thread;

/// What to train: the field's usual knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub factors: usize,
    pub regularization: f32,
    /// Confidence in an observed cell per event on it.
    pub alpha: f32,
    pub iterations: usize,
}

/// Conjugate-gradient steps per row and half-iteration: warm starts make a few enough.
const CG_STEPS: usize = 3;
/// Steps for a vector solved from nothing (a user folded in after training).
const FOLD_IN_STEPS: usize = 12;

/// Trained item vectors (row-major, `factors` a row), and what folding a user in needs.
pub struct Factors {
    factors: usize,
    alpha: f32,
    items: Vec<f32>,
    /// The same numbers factor by factor (`factors` rows of one number an item): scoring every
    /// item is then `factors` passes over contiguous memory, which vector instructions stream.
    items_by_factor: Vec<f32>,
    /// `ItemsᵀItems + regularization · I`: the unobserved cells' part of every user's system.
    item_gram: Vec<f32>,
}

impl Factors {
    /// Trains on `user_items` (each user's distinct items with their event counts) over `items`
    /// items. Returns the item side and every user's vector, in `user_items`' order.
    pub fn train(
        user_items: &[Vec<(u32, f32)>],
        items: usize,
        config: &Config,
    ) -> (Factors, Vec<Box<[f32]>>) {
        let f = config.factors;
        let mut item_users: Vec<Vec<(u32, f32)>> = vec![Vec::new(); items];
        for (user, row) in user_items.iter().enumerate() {
            for &(item, value) in row {
                item_users[item as usize].push((user as u32, value));
            }
        }
        // Small random starts, the same every run: `implicit`'s `rand() · 0.01`.
        let mut random = SplitMix(0x5eed);
        let mut user_vectors: Vec<f32> = (0..user_items.len() * f)
            .map(|_| random.unit() * 0.01)
            .collect();
        let mut item_vectors: Vec<f32> = (0..items * f).map(|_| random.unit() * 0.01).collect();
        let solve = |x: &mut [f32], rows: &[Vec<(u32, f32)>], other: &[f32], gram: &[f32]| {
            let mut scratch = Scratch::new(f);
            for (vector, row) in x.chunks_exact_mut(f).zip(rows) {
                conjugate_gradient(
                    vector,
                    gram,
                    row,
                    other,
                    config.alpha,
                    CG_STEPS,
                    &mut scratch,
                );
            }
        };
        for _ in 0..config.iterations {
            let items_gram = gram(&item_vectors, f, config.regularization);
            in_parallel(&mut user_vectors, user_items, f, |x, rows| {
                solve(x, rows, &item_vectors, &items_gram)
            });
            let users_gram = gram(&user_vectors, f, config.regularization);
            in_parallel(&mut item_vectors, &item_users, f, |x, rows| {
                solve(x, rows, &user_vectors, &users_gram)
            });
        }
        let item_gram = gram(&item_vectors, f, config.regularization);
        let users = user_vectors
            .chunks_exact(f)
            .map(|v| v.to_vec().into_boxed_slice())
            .collect();
        let mut items_by_factor = vec![0.0; item_vectors.len()];
        for (item, vector) in item_vectors.chunks_exact(f).enumerate() {
            for (k, value) in vector.iter().enumerate() {
                items_by_factor[k * items + item] = *value;
            }
        }
        let factors = Factors {
            factors: f,
            alpha: config.alpha,
            items: item_vectors,
            items_by_factor,
            item_gram,
        };
        (factors, users)
    }

    /// The vector of a user with these (item, events) after training, items held fixed.
    pub fn fold_in(&self, row: &[(u32, f32)]) -> Box<[f32]> {
        let mut vector = vec![0.0; self.factors];
        conjugate_gradient(
            &mut vector,
            &self.item_gram,
            row,
            &self.items,
            self.alpha,
            FOLD_IN_STEPS,
            &mut Scratch::new(self.factors),
        );
        vector.into_boxed_slice()
    }

    pub fn score(&self, user: &[f32], item: u32) -> f32 {
        let start = item as usize * self.factors;
        dot(user, &self.items[start..start + self.factors])
    }

    /// The user's score for every item, in item order, into `out`.
    pub fn score_all(&self, user: &[f32], out: &mut Vec<f32>) {
        let items = self.items.len() / self.factors.max(1);
        out.clear();
        out.resize(items, 0.0);
        for (weight, column) in user
            .iter()
            .zip(self.items_by_factor.chunks_exact(items.max(1)))
        {
            axpy(*weight, column, out);
        }
    }
}

/// Conjugate gradient's working vectors, kept across the rows one thread solves.
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

impl Scratch {
    fn new(f: usize) -> Scratch {
        Scratch {
            r: vec![0.0; f],
            p: vec![0.0; f],
            ap: vec![0.0; f],
        }
    }
}

/// Solves `(gram + Σ (c−1)·y·yᵀ) x = Σ c·y` over the row's cells `(y, c = alpha · value)` by
/// conjugate gradient, starting from `x`.
fn conjugate_gradient(
    x: &mut [f32],
    gram: &[f32],
    row: &[(u32, f32)],
    other: &[f32],
    alpha: f32,
    steps: usize,
    scratch: &mut Scratch,
) {
    let f = x.len();
    let vector = |index: u32| &other[index as usize * f..(index as usize + 1) * f];
    let Scratch { r, p, ap } = scratch;
    // r = b − A·x
    multiply(gram, x, r);
    r.iter_mut().for_each(|v| *v = -*v);
    for &(index, value) in row {
        let y = vector(index);
        let confidence = alpha * value;
        let weight = confidence - (confidence - 1.0) * dot(y, x);
        axpy(weight, y, r);
    }
    p.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    for _ in 0..steps {
        if rs_old < 1e-20 {
            break;
        }
        multiply(gram, p, ap);
        for &(index, value) in row {
            let y = vector(index);
            axpy((alpha * value - 1.0) * dot(y, p), y, ap);
        }
        let step = rs_old / dot(p, ap);
        if !step.is_finite() {
            break;
        }
        axpy(step, p, x);
        axpy(-step, ap, r);
        let rs_new = dot(r, r);
        let keep = rs_new / rs_old;
        p.iter_mut()
            .zip(r.iter())
            .for_each(|(p, r)| *p = r + keep * *p);
        rs_old = rs_new;
    }
}

/// `VᵀV + regularization · I` for row-major `vectors` of width `f`.
fn gram(vectors: &[f32], f: usize, regularization: f32) -> Vec<f32> {
    let mut gram = vec![0.0f32; f * f];
    for v in vectors.chunks_exact(f) {
        for (i, &a) in v.iter().enumerate() {
            axpy(a, v, &mut gram[i * f..(i + 1) * f]);
        }
    }
    for i in 0..f {
        gram[i * f + i] += regularization;
    }
    gram
}

/// Runs `work` over the rows in one chunk per core; each chunk owns its rows' vectors.
fn in_parallel<W>(vectors: &mut [f32], rows: &[Vec<(u32, f32)>], f: usize, work: W)
where
    W: Fn(&mut [f32], &[Vec<(u32, f32)>]) + Sync,
{
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = rows.len().div_ceil(threads).max(1);
    thread::scope(|scope| {
        for (x, rows) in vectors
            .chunks_mut(per_thread * f)
            .zip(rows.chunks(per_thread))
        {
            let work = &work;
            scope.spawn(move || work(x, rows));
        }
    });
}

/// `out = m · v` for a square row-major `m`.
fn multiply(m: &[f32], v: &[f32], out: &mut [f32]) {
    for (o, row) in out.iter_mut().zip(m.chunks_exact(v.len())) {
        *o = dot(row, v);
    }
}

/// `y += a · x`
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// A dot product in eight lanes, which the compiler turns into vector instructions.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a_chunks, a_tail) = a.as_chunks::<8>();
    let (b_chunks, b_tail) = b.as_chunks::<8>();
    let mut lanes = [0.0f32; 8];
    for (x, y) in a_chunks.iter().zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// SplitMix64: a small, fixed-seed generator for the starting vectors.
struct SplitMix(u64);

impl SplitMix {
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two groups of users, each touching only its own four items: two factors (one a group)
    /// must put a user's unseen group item far above every item of the other group.
    #[test]
    fn factors_separate_two_groups() {
        let mut rows = Vec::new();
        for user in 0..40u32 {
            let group = user % 2;
            // Each user misses one item of their group, a different one by user.
            let missing = (user / 2) % 4;
            rows.push(
                (0..4)
                    .filter(|i| *i != missing)
                    .map(|i| (group * 4 + i, 1.0))
                    .collect::<Vec<_>>(),
            );
        }
        let config = Config {
            factors: 2,
            regularization: 1.0,
            alpha: 10.0,
            iterations: 15,
        };
        let (factors, users) = Factors::train(&rows, 8, &config);
        for (user, vector) in users.iter().enumerate() {
            let group = user as u32 % 2;
            let missing = group * 4 + (user as u32 / 2) % 4;
            let other_best = (0..4)
                .map(|i| factors.score(vector, (1 - group) * 4 + i))
                .fold(f32::MIN, f32::max);
            assert!(
                factors.score(vector, missing) > other_best + 0.3,
                "user {user}: own {} other {other_best}",
                factors.score(vector, missing)
            );
        }
        // Folding user 0 (group 0, missing item 0) in from their items ranks item 0 above
        // every item of the other group, as training did.
        let folded = factors.fold_in(&rows[0]);
        let mut all = Vec::new();
        factors.score_all(&folded, &mut all);
        let best_other = all[4..].iter().copied().fold(f32::MIN, f32::max);
        assert!(all[0] > best_other, "{all:?}");
    }

    #[test]
    fn dot_matches_the_plain_sum_at_every_length() {
        for n in [0, 1, 7, 8, 9, 31, 64] {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.25).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-3, "{n}");
        }
    }
}
