//! A stand-in for Braze's REST API, the one call braze-sync makes: `POST /users/track`.
//!
//! Like Braze, it wants `Authorization: Bearer KEY` (401 otherwise; 403 for a key without the
//! permission), at most 75 attribute objects per request (400 otherwise), and answers 404 for a
//! path it does not serve. It can hold a rate limit of its own: then every answer carries
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (epoch seconds), and a
//! request over the limit gets 429. A 2xx names refused objects as Braze does, in an `errors`
//! array (`{type, input_array, index}`) of a 201, the others processed: objects whose keys or
//! string values are over 255 characters, and switched-on users. Other switches make it answer
//! 5xx or another status to everything, or 400 for any request carrying chosen users. It records
//! when each request arrived and, unless told not to (benchmarks), every attribute object it
//! accepted.

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
    /// Every request gets this status (a wrong endpoint, a proxy in the way).
    answer_all: Option<StatusCode>,
    /// Any request with one of these users is a 400.
    refuse: HashSet<String>,
    /// These users are refused inside a 201's `errors`, the rest processed.
    refuse_in_201: HashSet<String>,
    /// A 201's `errors` names each refused object twice (Braze's indexes are checked, not
    /// trusted).
    name_twice: bool,
    /// The key is right but lacks the users.track permission.
    forbidden: bool,
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
    state: Arc<AppState>,
}

struct AppState {
    key: Mutex<String>,
    record: bool,
    shared: Arc<Mutex<Shared>>,
}

impl FakeBraze {
    /// Serves on `listener` until the process ends. `record: false` keeps counts only.
    pub fn serve(listener: tokio::net::TcpListener, key: &str, record: bool) -> FakeBraze {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = Arc::new(AppState {
            key: Mutex::new(key.to_owned()),
            record,
            shared: shared.clone(),
        });
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .route("/users/track", post(track))
            .route("/stats", axum::routing::get(stats))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeBraze {
            endpoint,
            shared,
            state,
        }
    }

    /// The key Braze accepts from now on (a rotation).
    pub fn rotate_key(&self, key: &str) {
        *self.state.key.lock().unwrap() = key.to_owned();
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

    pub fn refuse_in_201(&self, users: &[&str], name_twice: bool) {
        self.with(|s| {
            s.switches.refuse_in_201 = users.iter().map(|u| u.to_string()).collect();
            s.switches.name_twice = name_twice;
        });
    }

    pub fn answer_all(&self, status: Option<u16>) {
        self.with(|s| s.switches.answer_all = status.and_then(|s| StatusCode::from_u16(s).ok()));
    }

    pub fn forbid(&self, forbidden: bool) {
        self.with(|s| s.switches.forbidden = forbidden);
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
    if bearer != Some(state.key.lock().unwrap().as_str()) {
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
    // Braze's window: the requests of the last `window`, this one among them.
    let window = shared.switches.limit.map(|(requests, window)| {
        let in_window: Vec<Instant> = shared
            .arrivals
            .iter()
            .rev()
            .take_while(|&&t| now.duration_since(t) < window)
            .copied()
            .collect();
        let oldest = in_window.last().copied().unwrap_or(now);
        let reset_in = window.saturating_sub(now.duration_since(oldest));
        let reset = (SystemTime::now() + reset_in)
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            .ceil() as u64;
        (requests, in_window.len(), reset, reset_in)
    });
    let with_window = |mut response: Response| {
        if let Some((requests, used, reset, _)) = window {
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", requests.into());
            headers.insert(
                "x-ratelimit-remaining",
                requests.saturating_sub(used).into(),
            );
            headers.insert("x-ratelimit-reset", reset.into());
        }
        response
    };
    if let Some((requests, used, _, reset_in)) = window
        && used > requests
    {
        shared.rate_limited += 1;
        let mut response = with_window(answer(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"message": "Too many requests"}),
        ));
        response.headers_mut().insert(
            header::RETRY_AFTER,
            reset_in
                .as_secs_f64()
                .ceil()
                .max(1.0)
                .to_string()
                .parse()
                .unwrap(),
        );
        return response;
    }
    if let Some(status) = shared.switches.answer_all {
        return with_window(answer(status, json!({"message": "switched answer"})));
    }
    if shared.switches.forbidden {
        return with_window(answer(
            StatusCode::FORBIDDEN,
            json!({"message": "Access Denied: the key lacks users.track"}),
        ));
    }
    if shared.switches.server_errors > 0 {
        shared.switches.server_errors -= 1;
        shared.server_errored += 1;
        return with_window(answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"message": "Internal error"}),
        ));
    }
    if ids.len() > 75 {
        shared.refused += 1;
        return with_window(answer(
            StatusCode::BAD_REQUEST,
            json!({"message": format!("{} attribute objects; at most 75 per request", ids.len())}),
        ));
    }
    if ids.iter().any(|id| shared.switches.refuse.contains(id)) {
        shared.refused += 1;
        return with_window(answer(
            StatusCode::BAD_REQUEST,
            json!({"message": "Invalid attribute value"}),
        ));
    }
    // Objects Braze refuses one by one: a key or string over 255 characters, or a switched-on
    // user. The rest of the request is processed.
    let mut errors = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        let too_long = attributes.get(index).is_some_and(breaks_braze_limits);
        if too_long || shared.switches.refuse_in_201.contains(id) {
            let kind = if too_long {
                "Value exceeds 255 characters"
            } else {
                "Invalid value for custom attribute"
            };
            let error = json!({"type": kind, "input_array": "attributes", "index": index});
            if shared.switches.name_twice {
                errors.push(error.clone());
            }
            errors.push(error);
        }
    }
    let refused: HashSet<usize> = errors
        .iter()
        .filter_map(|e| e["index"].as_u64().map(|i| i as usize))
        .collect();
    let count = ids.len() - refused.len();
    shared.objects += count as u64;
    shared.requests += 1;
    shared.largest = shared.largest.max(ids.len());
    let objects = if state.record {
        ids.into_iter()
            .zip(attributes)
            .enumerate()
            .filter(|(i, _)| !refused.contains(i))
            .map(|(_, object)| object)
            .collect()
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
    let mut body = json!({"message": "success", "attributes_processed": count});
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    with_window(answer(StatusCode::CREATED, body))
}

/// Braze's rule for nested custom attributes: keys and string values up to 255 characters.
fn breaks_braze_limits(object: &Value) -> bool {
    fn long(value: &Value) -> bool {
        match value {
            Value::String(s) => s.chars().count() > 255,
            Value::Array(values) => values.iter().any(long),
            Value::Object(map) => map.iter().any(|(k, v)| k.chars().count() > 255 || long(v)),
            _ => false,
        }
    }
    long(object)
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
