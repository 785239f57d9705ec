//! The project's fake Braze `/users/track` (the one the end-to-end tests use) as a process, for
//! benchmarking braze-sync without sending anything anywhere:
//!
//!   cargo run --release --example fake-braze -- [--port 9200] [--key KEY]
//!
//! It checks the Bearer key and the 75-object limit, and counts what it accepts (`GET /stats`)
//! without keeping it.

#[path = "../tests/e2e/fake_braze.rs"]
#[allow(dead_code)] // The tests' switches and records are not used here.
mod fake_braze;

use std::process::ExitCode;

use fake_braze::FakeBraze;

const USAGE: &str = "usage: fake-braze [--port N] [--key KEY]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut port = 9200u16;
    let mut key = "fake-key".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let parsed = match (arg.as_str(), args.next()) {
            ("--port", Some(v)) => v.parse().map(|v| port = v).is_ok(),
            ("--key", Some(v)) => {
                key = v;
                true
            }
            _ => false,
        };
        if !parsed {
            eprintln!("fake-braze: bad argument {arg:?}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    }
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fake-braze: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fake = FakeBraze::serve(listener, &key, false);
    println!("fake Braze on {}", fake.endpoint);
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
