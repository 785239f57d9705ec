//! Local mode's start-up cost at scale: reads and trains on 1 million interactions, reporting
//! time and peak memory (goal: under 5 s and 500 MB on a 2-core machine).
//!
//! cargo run --release --example train-bench [-- --interactions 1000000]
//!
//! The dataset is generated (deterministically) into target/bench-data/N the first time.

#[path = "sample_data/mod.rs"]
mod sample_data;

use std::path::PathBuf;
use std::time::Instant;

use personalize_braze_core::dataset;
use personalize_braze_local::tuning;

fn peak_rss_mb() -> f64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0 // kilobytes on Linux
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let interactions: usize = match args.iter().position(|a| a == "--interactions") {
        Some(i) => args
            .get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--interactions N"),
        None => 1_000_000,
    };
    let spec = sample_data::Spec {
        items: 5_000,
        users: (interactions / 50).max(1),
        interactions,
        seed: 11,
        ..sample_data::Spec::default()
    };
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-data/{interactions}"));
    if !dir.join("interactions.csv").exists() {
        let (items, users, written) =
            sample_data::write(&spec, &dir).expect("generate the dataset");
        println!(
            "generated {written} interactions, {users} users, {items} items in {}",
            dir.display()
        );
    }

    let started = Instant::now();
    let data =
        dataset::read_interactions(&dir.join("interactions.csv")).expect("read interactions");
    let read = started.elapsed();
    let started = Instant::now();
    let model = tuning::train(&data);
    let trained = started.elapsed();
    let stats = model.stats(data.len());

    let started = Instant::now();
    let users: Vec<String> = (1..=1000).map(|u| format!("user-{u:05}")).collect();
    let mut returned = 0;
    for user in &users {
        returned += model.recommend(user, 25, |_| true).len();
    }
    let per_request = started.elapsed() / users.len() as u32;

    // Related items for 1000 items, and each of the 1000 users ranking 500 items.
    let items: Vec<&String> = model.item_ids().iter().take(1000).collect();
    let started = Instant::now();
    for item in &items {
        returned += model.related(item, 25, |_| true).len();
    }
    let per_related = started.elapsed() / items.len() as u32;
    let to_rank: Vec<String> = model.item_ids().iter().take(500).cloned().collect();
    let started = Instant::now();
    for user in &users {
        returned += model.rank(user, &to_rank).len();
    }
    let per_ranking = started.elapsed() / users.len() as u32;

    println!(
        "{} interactions, {} users, {} items\n\
         read CSV:   {:.2} s\n\
         train:      {:.2} s\n\
         total:      {:.2} s\n\
         peak RSS:   {:.0} MB\n\
         recommend:  {:.1} µs per user at count=25\n\
         related:    {:.1} µs per item at count=25\n\
         rank:       {:.1} µs per user for 500 items ({returned} ids in all)",
        stats.interactions,
        stats.users,
        stats.items,
        read.as_secs_f64(),
        trained.as_secs_f64(),
        (read + trained).as_secs_f64(),
        peak_rss_mb(),
        per_request.as_secs_f64() * 1e6,
        per_related.as_secs_f64() * 1e6,
        per_ranking.as_secs_f64() * 1e6,
    );
}
