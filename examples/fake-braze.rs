//! The project's fake Braze `/users/track` (the one the end-to-end tests use) as a process, for
//! benchmarking braze-sync without sending anything anywhere:
//!
//!   cargo run --release --example fake-braze -- [--port 9200] [--key KEY] [--limit 3000/3s]
//!
//! It checks the Bearer key and the 75-object limit; with `--limit` it sends Braze's
//! `X-RateLimit-Limit`, `-Remaining` and `-Reset` on every answer and answers 429 (with
//! `Retry-After`) past the limit, as Braze does past a workspace's rate limit; it names objects over
//! Braze's 255-character limit in a 201's `errors`; and it counts what it accepts without keeping
//! it: `GET /stats` gives requests, users, the largest request, 429s and 400s.

use std::process::ExitCode;

use braze_sync::limiter::RateLimit;
use personalize_braze_testkit::fake_braze::FakeBraze;

const USAGE: &str = "usage: fake-braze [--port N] [--key KEY] [--limit N/Ds]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut port = 9200u16;
    let mut key = "fake-key".to_owned();
    let mut limit = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let parsed = match (arg.as_str(), args.next()) {
            ("--port", Some(v)) => v.parse().map(|v| port = v).is_ok(),
            ("--key", Some(v)) => {
                key = v;
                true
            }
            ("--limit", Some(v)) => match RateLimit::parse(&v) {
                Ok(rate) => {
                    limit = Some(rate);
                    true
                }
                Err(_) => false,
            },
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
    if let Some(rate) = limit {
        fake.limit(rate.requests as usize, rate.window);
    }
    println!("fake Braze on {}", fake.endpoint);
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
