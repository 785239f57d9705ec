//! Writes a sample dataset in Amazon Personalize's CSV schemas (`items.csv`, `interactions.csv`,
//! `users.csv`).
//!
//! cargo run --release --example generate-data -- [--items 600] [--users 3000]
//!     [--interactions 40000] [--seed 7] [--days 90] [--skew 1.1] [--session 6] [--walk 0]
//!     [--out examples/data]
//!
//! `--days`: the history's span; `--skew`: the Zipf exponent of popularity within a category;
//! `--session`: the longest session; `--walk`: the percent chance that a session's next view is
//! an item next to the previous one (sessions walking between related items).
//!
//! The same arguments always give the same files.

#[path = "sample_data/mod.rs"]
mod sample_data;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut spec = sample_data::Spec::default();
    let mut out = PathBuf::from("examples/data");
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [flag, value] = pair else {
            eprintln!("generate-data: {} needs a value", pair[0]);
            return ExitCode::FAILURE;
        };
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag} needs a whole number, not {value:?}"))
        };
        let parsed = match flag.as_str() {
            "--items" => number().map(|n| spec.items = n.max(1)),
            "--users" => number().map(|n| spec.users = n.max(1)),
            "--interactions" => number().map(|n| spec.interactions = n.max(1)),
            "--seed" => number().map(|n| spec.seed = n as u64),
            "--days" => number().map(|n| spec.days = n.max(1) as i64),
            "--session" => number().map(|n| spec.session = n.max(1)),
            "--walk" => number().map(|n| spec.walk = n.min(100) as u32),
            "--skew" => value
                .parse::<f64>()
                .ok()
                .filter(|s| *s > 0.0 && *s != 1.0 && s.is_finite())
                .map(|s| spec.skew = s)
                .ok_or_else(|| {
                    format!("--skew needs a positive number other than 1, not {value:?}")
                }),
            "--out" => {
                out = PathBuf::from(value);
                Ok(())
            }
            _ => Err(format!("unknown flag {flag}")),
        };
        if let Err(e) = parsed {
            eprintln!("generate-data: {e}");
            return ExitCode::FAILURE;
        }
    }
    match sample_data::write(&spec, &out) {
        Ok((items, users, interactions)) => {
            println!(
                "wrote {items} items and {interactions} interactions from {users} users to {}",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("generate-data: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
