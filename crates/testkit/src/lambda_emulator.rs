//! A Lambda Runtime API of our own, just enough for the runtime in the binary: it hands out queued
//! events on `GET /2018-06-01/runtime/invocation/next`, takes the answers on
//! `POST …/{id}/response` (or `…/{id}/error`), notes when the first poll came (the end of the
//! function's init), and counts the `next` polls waiting at once, so a caller sees the runtime
//! poll concurrently when `AWS_LAMBDA_MAX_CONCURRENCY` says so (Lambda Managed Instances).
//! The end-to-end tests and `examples/cpu-bench.rs` both drive the binary through it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::Notify;

#[derive(Default)]
struct Runtime {
    /// Events not yet handed out: (request id, event JSON).
    queue: Mutex<VecDeque<(String, String)>>,
    queued: Notify,
    /// `next` polls waiting now, and the most there ever were at once.
    waiting: AtomicUsize,
    most_waiting: AtomicUsize,
    /// When the first `next` poll came.
    first_poll: OnceLock<Instant>,
    /// Request id → the function's answer (`error: …` for an error report).
    answers: Mutex<HashMap<String, String>>,
    answered: Notify,
}

pub struct Emulator {
    pub address: String,
    runtime: Arc<Runtime>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(runtime): State<Arc<Runtime>>) -> impl IntoResponse {
    runtime.first_poll.get_or_init(Instant::now);
    let now = runtime.waiting.fetch_add(1, Ordering::SeqCst) + 1;
    runtime.most_waiting.fetch_max(now, Ordering::SeqCst);
    let (id, event) = loop {
        let queued = runtime.queued.notified();
        if let Some(next) = runtime.queue.lock().unwrap().pop_front() {
            break next;
        }
        queued.await;
    };
    runtime.waiting.fetch_sub(1, Ordering::SeqCst);
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(30);
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline.as_millis().to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:personalize-braze"
            .parse()
            .unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
            .parse()
            .unwrap(),
    );
    headers.insert("content-type", "application/json".parse().unwrap());
    (headers, event)
}

async fn answer(State(runtime): State<Arc<Runtime>>, Path(id): Path<String>, body: String) {
    runtime.answers.lock().unwrap().insert(id, body);
    runtime.answered.notify_waiters();
}

async fn error(State(runtime): State<Arc<Runtime>>, Path(id): Path<String>, body: String) {
    let report = format!("error: {body}");
    runtime.answers.lock().unwrap().insert(id, report);
    runtime.answered.notify_waiters();
}

impl Emulator {
    pub async fn start() -> Emulator {
        let runtime = Arc::new(Runtime::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(answer))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .with_state(runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Emulator {
            address,
            runtime,
            server,
        }
    }

    pub fn invoke(&self, id: &str, event: &str) {
        let mut queue = self.runtime.queue.lock().unwrap();
        queue.push_back((id.to_owned(), event.to_owned()));
        drop(queue);
        self.runtime.queued.notify_waiters();
    }

    /// The answers to `ids`, once all have come (within 20 s).
    pub async fn answers(&self, ids: &[String]) -> Vec<String> {
        let started = Instant::now();
        loop {
            let answered = self.runtime.answered.notified();
            {
                let answers = self.runtime.answers.lock().unwrap();
                if ids.iter().all(|id| answers.contains_key(id)) {
                    return ids.iter().map(|id| answers[id].clone()).collect();
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no answers");
            let _ = tokio::time::timeout(Duration::from_millis(200), answered).await;
        }
    }

    /// When the function first asked for an event, once it has.
    #[allow(dead_code)] // The benchmark's figure (examples/cpu-bench.rs), not the tests'.
    pub fn first_poll(&self) -> Option<Instant> {
        self.runtime.first_poll.get().copied()
    }

    /// Waits until `n` polls wait at once (or 10 s pass); the most seen.
    pub async fn pollers(&self, n: usize) -> usize {
        let started = Instant::now();
        while self.runtime.most_waiting.load(Ordering::SeqCst) < n
            && started.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A little longer, in case more than `n` would come.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.runtime.most_waiting.load(Ordering::SeqCst)
    }
}
