//! The binary inside Lambda's own loop: a Lambda Runtime API of our own, just enough for the
//! runtime in the binary. It hands out queued API Gateway events on
//! `GET /2018-06-01/runtime/invocation/next`, takes the answers on `POST …/{id}/response` (or
//! `…/{id}/error`), and counts the `next` polls waiting at once, so a test sees the runtime poll
//! concurrently when `AWS_LAMBDA_MAX_CONCURRENCY` says so (Lambda Managed Instances).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::Notify;

use super::local_mode::sample_data;
use super::processes::{die_with_parent, log_file};

#[derive(Default)]
struct Runtime {
    /// Events not yet handed out: (request id, event JSON).
    queue: Mutex<VecDeque<(String, String)>>,
    queued: Notify,
    /// `next` polls waiting now, and the most there ever were at once.
    waiting: AtomicUsize,
    most_waiting: AtomicUsize,
    /// Request id → the function's answer (`error: …` for an error report).
    answers: Mutex<HashMap<String, String>>,
    answered: Notify,
}

pub(super) struct Emulator {
    pub(super) address: String,
    runtime: Arc<Runtime>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(runtime): State<Arc<Runtime>>) -> impl IntoResponse {
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
    pub(super) async fn start() -> Emulator {
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

    pub(super) fn invoke(&self, id: &str, event: &str) {
        let mut queue = self.runtime.queue.lock().unwrap();
        queue.push_back((id.to_owned(), event.to_owned()));
        drop(queue);
        self.runtime.queued.notify_waiters();
    }

    /// The answers to `ids`, once all have come (within 20 s).
    pub(super) async fn answers(&self, ids: &[String]) -> Vec<String> {
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

    /// Waits until `n` polls wait at once (or 10 s pass); the most seen.
    async fn pollers(&self, n: usize) -> usize {
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

/// The binary as Lambda starts it: local mode over the sample data, the runtime pointed at
/// `emulator`, and the variables Lambda sets.
fn function(emulator: &Emulator, extra: &[(&str, &str)]) -> (Child, PathBuf) {
    let (log, file) = log_file("lambda");
    let mut command = Command::new(env!("CARGO_BIN_EXE_personalize-braze"));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &emulator.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "personalize-braze")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("DATA_DIR", sample_data())
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let child = die_with_parent(&mut command)
        .spawn()
        .expect("start the binary");
    (child, log)
}

fn event() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/rest-api-get.json"
    ))
    .unwrap()
}

/// Invokes the function `n` times at once; every answer is an API Gateway 200 with 3 items.
async fn invoke_all(emulator: &Emulator, n: usize) {
    let ids: Vec<String> = (0..n).map(|k| format!("request-{k}")).collect();
    for id in &ids {
        emulator.invoke(id, &event());
    }
    for answer in emulator.answers(&ids).await {
        let response: serde_json::Value = serde_json::from_str(&answer).expect(&answer);
        assert_eq!(response["statusCode"], 200, "{answer}");
        let items: serde_json::Value =
            serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(items.as_array().unwrap().len(), 3, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_managed_concurrency_the_runtime_serves_invocations_side_by_side() {
    let emulator = Emulator::start().await;
    let (mut child, log) = function(&emulator, &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);

    assert_eq!(
        emulator.pollers(4).await,
        4,
        "four invocations may wait at once"
    );
    invoke_all(&emulator, 12).await;
    // Each request line names its own invocation, side by side as they ran.
    let log = std::fs::read_to_string(log).unwrap();
    for k in 0..12 {
        let id = format!(r#""lambda_request_id":"request-{k}""#);
        assert_eq!(log.matches(&id).count(), 1, "{id} in\n{log}");
    }

    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_it_the_runtime_takes_one_invocation_at_a_time() {
    let emulator = Emulator::start().await;
    let (mut child, _) = function(&emulator, &[]);

    assert_eq!(emulator.pollers(1).await, 1, "one poll at a time");
    invoke_all(&emulator, 3).await;

    child.kill().unwrap();
    child.wait().unwrap();
}
