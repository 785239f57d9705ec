//! A stand-in for Braze's REST API, the one call braze-sync makes: `POST /users/track`.
//!
//! Like Braze, it wants `Authorization: Bearer KEY` (401 otherwise) and at most 75 attribute
//! objects per request (400 otherwise), and it can hold a rate limit of its own, answering 429
//! with `X-RateLimit-Reset` and `Retry-After` when a window is full. Switches make it answer
//! 5xx, or 400 for any request carrying chosen users. It records when each request arrived and,
//! unless told not to (benchmarks), every attribute object it accepted.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

/// One accepted request.
#[derive(Debug, Clone)]
pub struct Request {
    /// `external_id` → the object as sent (only when recording).
    pub objects: Vec<(String, Value)>,
    pub count: usize,
}

#[derive(Default)]
struct Switches {
    /// The next this many requests get a 500.
    server_errors: usize,
    /// Any request with one of these users is a 400.
    refuse: HashSet<String>,
    /// At most this many requests per window, else 429.
    limit: Option<(usize, Duration)>,
}

#[derive(Default)]
struct Shared {
    switches: Switches,
    accepted: Vec<Request>,
    /// Every request's arrival, answered or not.
    arrivals: Vec<Instant>,
    rate_limited: usize,
    server_errored: usize,
    refused: usize,
    /// Accepted objects and requests, and the largest request, counted even when not recorded.
    objects: u64,
    requests: u64,
    largest: usize,
}

#[derive(Clone)]
pub struct FakeBraze {
    pub endpoint: String,
    shared: Arc<Mutex<Shared>>,
}

struct AppState {
    key: String,
    record: bool,
    shared: Arc<Mutex<Shared>>,
}

impl FakeBraze {
    /// Serves on `listener` until the process ends. `record: false` keeps counts only.
    pub fn serve(listener: tokio::net::TcpListener, key: &str, record: bool) -> FakeBraze {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = Arc::new(AppState {
            key: key.to_owned(),
            record,
            shared: shared.clone(),
        });
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/users/track", post(track))
            .route("/stats", axum::routing::get(stats))
            .with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeBraze { endpoint, shared }
    }

    /// Starts on a free loopback port.
    pub async fn start(key: &str) -> FakeBraze {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakeBraze::serve(listener, key, true)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        f(&mut self.shared.lock().unwrap())
    }

    pub fn fail_next(&self, requests: usize) {
        self.with(|s| s.switches.server_errors = requests);
    }

    pub fn refuse_users(&self, users: &[&str]) {
        self.with(|s| s.switches.refuse = users.iter().map(|u| u.to_string()).collect());
    }

    pub fn limit(&self, requests: usize, window: Duration) {
        self.with(|s| s.switches.limit = Some((requests, window)));
    }

    pub fn accepted(&self) -> Vec<Request> {
        self.with(|s| s.accepted.clone())
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        self.with(|s| s.arrivals.clone())
    }

    /// (429s, 500s, 400s) answered.
    pub fn refusals(&self) -> (usize, usize, usize) {
        self.with(|s| (s.rate_limited, s.server_errored, s.refused))
    }

    /// Every accepted object by user, in arrival order.
    pub fn by_user(&self) -> HashMap<String, Vec<Value>> {
        let mut users: HashMap<String, Vec<Value>> = HashMap::new();
        for request in self.accepted() {
            for (user, object) in request.objects {
                users.entry(user).or_default().push(object);
            }
        }
        users
    }
}

#[derive(Deserialize)]
struct Track {
    #[serde(default)]
    attributes: Vec<Value>,
}

/// What a benchmark needs of a body: the users, the rest skipped unread.
#[derive(Deserialize)]
struct TrackIds {
    #[serde(default)]
    attributes: Vec<ExternalId>,
}

#[derive(Deserialize)]
struct ExternalId {
    #[serde(default)]
    external_id: String,
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn track(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = Instant::now();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(state.key.as_str()) {
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid API Key"}),
        );
    }
    let (ids, attributes) = if state.record {
        let Ok(track) = serde_json::from_slice::<Track>(&body) else {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid JSON body"}),
            );
        };
        let ids = track
            .attributes
            .iter()
            .map(|a| {
                a.get("external_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        (ids, track.attributes)
    } else {
        let Ok(track) = serde_json::from_slice::<TrackIds>(&body) else {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"message": "Invalid JSON body"}),
            );
        };
        let ids: Vec<String> = track
            .attributes
            .into_iter()
            .map(|a| a.external_id)
            .collect();
        (ids, Vec::new())
    };
    let mut shared = state.shared.lock().unwrap();
    shared.arrivals.push(now);
    if let Some((requests, window)) = shared.switches.limit {
        let in_window = shared
            .arrivals
            .iter()
            .rev()
            .skip(1)
            .take_while(|&&t| now.duration_since(t) < window)
            .count();
        if in_window >= requests {
            shared.rate_limited += 1;
            let reset = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + window.as_secs().max(1);
            let mut response = answer(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"message": "Too many requests"}),
            );
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", requests.into());
            headers.insert("x-ratelimit-remaining", 0.into());
            headers.insert("x-ratelimit-reset", reset.into());
            headers.insert(header::RETRY_AFTER, window.as_secs().max(1).into());
            return response;
        }
    }
    if shared.switches.server_errors > 0 {
        shared.switches.server_errors -= 1;
        shared.server_errored += 1;
        return answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": "Internal error"}),
        );
    }
    if ids.len() > 75 {
        shared.refused += 1;
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"message": format!("{} attribute objects; at most 75 per request", ids.len())}),
        );
    }
    if ids.iter().any(|id| shared.switches.refuse.contains(id)) {
        shared.refused += 1;
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"message": "Invalid attribute value"}),
        );
    }
    let count = ids.len();
    shared.objects += count as u64;
    shared.requests += 1;
    shared.largest = shared.largest.max(count);
    let objects = if state.record {
        ids.into_iter().zip(attributes).collect()
    } else {
        Vec::new()
    };
    shared.accepted.push(Request { objects, count });
    if !state.record {
        // A benchmark's millions of requests: keep counts, not history (but the arrivals a rate
        // limit needs).
        shared.accepted.clear();
        if let Some((_, window)) = shared.switches.limit {
            shared.arrivals.retain(|&t| now.duration_since(t) < window);
        } else {
            shared.arrivals.clear();
        }
    }
    answer(
        StatusCode::CREATED,
        json!({"message": "success", "attributes_processed": count}),
    )
}

async fn stats(State(state): State<Arc<AppState>>) -> Response {
    let shared = state.shared.lock().unwrap();
    answer(
        StatusCode::OK,
        json!({
            "requests": shared.requests,
            "objects": shared.objects,
            "largest_request": shared.largest,
            "rate_limited": shared.rate_limited,
            "refused": shared.refused,
        }),
    )
}
