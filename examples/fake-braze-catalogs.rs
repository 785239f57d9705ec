//! The project's fake Braze Catalogs API (the one the end-to-end tests use) as a process, for
//! benchmarking `load-items --braze-catalog` without sending anything anywhere:
//!
//!   cargo run --release --example fake-braze-catalogs -- [--port 9300] [--key KEY]
//!
//! It keeps Braze's limits (50 items a request, ids, values, field types) and its shared rate
//! limit for the asynchronous item endpoints, 16,000 requests a minute, with the `X-RateLimit-*`
//! headers and 429 past it.

use std::process::ExitCode;

use personalize_braze_testkit::fake_braze_catalogs::FakeBrazeCatalogs;

const USAGE: &str = "usage: fake-braze-catalogs [--port N] [--key KEY]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut port = 9300u16;
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
            eprintln!("fake-braze-catalogs: bad argument {arg:?}\n{USAGE}");
            return ExitCode::FAILURE;
        }
    }
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("fake-braze-catalogs: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let fake = FakeBrazeCatalogs::serve(listener, &key);
    println!("fake Braze Catalogs API on {}", fake.endpoint);
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
