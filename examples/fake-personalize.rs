//! The project's fake Personalize runtime (the one the end-to-end tests use) as a process, for
//! load tests and for trying AWS mode on a laptop:
//!
//!   cargo run --release --example fake-personalize -- [--port 9100] [--items examples/data/items.csv] [--latency-ms 0] [--throttle-half true]
//!
//! `--throttle-half true` throttles every other call, as a campaign past its TPS does.
//!
//! Then start the service with `PERSONALIZE_ARN=arn:aws:personalize:us-east-1:000000000000:campaign/fake`
//! and `AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME=http://127.0.0.1:9100` (plus `RELATED_ITEMS_ARN`,
//! `RANKING_ARN`, `EVENT_TRACKER_ID` with `AWS_ENDPOINT_URL_PERSONALIZE_EVENTS` for the other
//! endpoints). It answers `metadataColumns` from the items file's columns, so
//! `ITEM_METADATA_SOURCE=personalize ITEM_METADATA_COLUMNS=NAME,PRICE` works without a table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use personalize_braze_core::dataset::read_items;
use personalize_braze_testkit::fake_personalize::{FakePersonalize, Mode};

const USAGE: &str =
    "usage: fake-personalize [--port N] [--items FILE] [--latency-ms N] [--throttle-half true]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut port = 9100u16;
    let mut items = PathBuf::from("examples/data/items.csv");
    let mut latency = Duration::ZERO;
    let mut throttle_half = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        let parsed = match (arg.as_str(), value) {
            ("--port", Some(v)) => v.parse().map(|v| port = v).is_ok(),
            ("--items", Some(v)) => {
                items = PathBuf::from(v);
                true
            }
            ("--throttle-half", Some(v)) => v.parse().map(|t| throttle_half = t).is_ok(),
            ("--latency-ms", Some(v)) => v
                .parse()
                .map(|ms| latency = Duration::from_millis(ms))
                .is_ok(),
            _ => false,
        };
        if !parsed {
            eprintln!("fake-personalize: bad argument {arg:?}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    }
    let records = match read_items(&items) {
        Ok(records) => records,
        Err(e) => {
            eprintln!("fake-personalize: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ids = records.iter().map(|r| r.id.clone()).collect();
    let metadata = records
        .into_iter()
        .map(|r| (r.id, r.fields.into_iter().collect()))
        .collect();
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fake-personalize: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fake = FakePersonalize::serve(listener, ids, false);
    fake.set_metadata(metadata);
    if !latency.is_zero() {
        fake.set_mode(Mode::Slow(latency));
    }
    if throttle_half {
        fake.set_mode(Mode::ThrottleHalf);
    }
    println!("fake Personalize runtime on {}", fake.endpoint);
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
