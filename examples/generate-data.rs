//! Writes a sample dataset in Amazon Personalize's CSV schemas (`items.csv`, `interactions.csv`).
//!
//! cargo run --release --example generate-data -- [--items 600] [--users 3000]
//!     [--interactions 40000] [--seed 7] [--out examples/data]
//!
//! The same arguments always give the same files.

#[path = "sample_data/mod.rs"]
mod sample_data;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut spec = sample_data::Spec {
        items: 600,
        users: 3000,
        interactions: 40_000,
        seed: 7,
    };
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
