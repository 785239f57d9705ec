//! A stand-in for the Personalize runtime that speaks its REST-JSON protocol: `POST /recommendations`
//! and `POST /personalize-ranking`, errors as `x-amzn-ErrorType` with the real status codes.
//! It records what it received and can be switched, per test, into misbehaving.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Rank the catalog's ids for the user.
    Normal,
    /// `ThrottlingException`, as the runtime sends when a campaign's TPS is exceeded.
    Throttle,
    /// HTTP 500 `InternalServerError`.
    ServerError,
    /// Answer normally, after this long.
    Slow(Duration),
    /// Every third id is one the catalog does not have.
    UnknownIds,
    /// An empty `itemList`.
    Empty,
    /// `ResourceNotFoundException`, as for a deleted campaign.
    MissingCampaign,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

struct Shared {
    mode: Mode,
    ids: Arc<Vec<String>>,
    /// `None` when not recording (under load, where it would only grow).
    received: Option<Vec<Received>>,
}

pub struct FakePersonalize {
    pub endpoint: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakePersonalize {
    /// Serves on a free loopback port; `ids` is the catalog it ranks from.
    pub async fn start(ids: Vec<String>) -> FakePersonalize {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakePersonalize::serve(listener, ids, true)
    }

    /// Serves on `listener`; records what it receives only if `record`.
    pub fn serve(
        listener: tokio::net::TcpListener,
        ids: Vec<String>,
        record: bool,
    ) -> FakePersonalize {
        let shared = Arc::new(Mutex::new(Shared {
            mode: Mode::Normal,
            ids: Arc::new(ids),
            received: record.then(Vec::new),
        }));
        let app = Router::new()
            .route("/recommendations", post(recommendations))
            .route("/personalize-ranking", post(ranking))
            .with_state(shared.clone());
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakePersonalize {
            endpoint,
            shared,
            server,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().unwrap().mode = mode;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared
            .lock()
            .unwrap()
            .received
            .clone()
            .unwrap_or_default()
    }

    /// What `Normal` mode answers for `user_id`: a per-user walk through the catalog.
    pub fn ranking(&self, user_id: &str, n: usize) -> Vec<String> {
        rank(&self.shared.lock().unwrap().ids, user_id, n)
    }
}

impl Drop for FakePersonalize {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// FNV-1a: a stable hash, so expectations can be computed in the tests.
fn fnv(parts: &[&str]) -> u64 {
    parts
        .iter()
        .flat_map(|p| p.bytes().chain([0]))
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        })
}

fn rank(ids: &[String], user_id: &str, n: usize) -> Vec<String> {
    // The user's hash picks the start; a step coprime with the catalog size never repeats an id.
    let len = ids.len();
    let step = [7, 5, 3, 1]
        .into_iter()
        .find(|s| gcd(*s, len) == 1)
        .unwrap_or(1);
    let start = fnv(&[user_id]) as usize;
    (0..n.min(len))
        .map(|k| ids[(start + k * step) % len].clone())
        .collect()
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let mut response = (status, json!({ "message": message }).to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    // The real service appends a namespace after a colon; the SDK must cope with it.
    headers.insert(
        "x-amzn-ErrorType",
        format!("{error_type}:http://internal.amazon.com/coral/com.amazonaws.personalize/")
            .parse()
            .unwrap(),
    );
    headers.insert(
        "x-amzn-RequestId",
        "8f8a7e52-0000-4000-8000-fakefakefake".parse().unwrap(),
    );
    response
}

fn ok(body: Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

/// Records the request; `None` when its body is not JSON.
fn receive(
    shared: &Mutex<Shared>,
    path: &str,
    headers: &HeaderMap,
    body: &str,
) -> (Option<Value>, Mode, Arc<Vec<String>>) {
    let body: Option<Value> = serde_json::from_str(body).ok();
    let mut shared = shared.lock().unwrap();
    if let Some(received) = &mut shared.received {
        received.push(Received {
            path: path.to_owned(),
            authorization: headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: body.clone().unwrap_or_default(),
        });
    }
    (body, shared.mode.clone(), shared.ids.clone())
}

fn not_json() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "SerializationException",
        "body is not JSON",
    )
}

async fn apply_mode(mode: &Mode, arn: &str) -> Option<Response> {
    match mode {
        Mode::Throttle => Some(error(
            StatusCode::BAD_REQUEST,
            "ThrottlingException",
            "Rate exceeded",
        )),
        Mode::ServerError => Some(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "We encountered an internal error. Please try again.",
        )),
        Mode::MissingCampaign => Some(error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Resource {arn} does not exist."),
        )),
        Mode::Slow(delay) => {
            tokio::time::sleep(*delay).await;
            None
        }
        Mode::Normal | Mode::UnknownIds | Mode::Empty => None,
    }
}

async fn recommendations(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (Some(body), mode, ids) = receive(&shared, "/recommendations", &headers, &body) else {
        return not_json();
    };
    let arn = match (
        body["campaignArn"].as_str(),
        body["recommenderArn"].as_str(),
    ) {
        (Some(arn), None) | (None, Some(arn)) => arn.to_owned(),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidInputException",
                "Provide exactly one of campaignArn or recommenderArn.",
            );
        }
    };
    let num_results = body["numResults"].as_u64().unwrap_or(25) as usize;
    if !(1..=500).contains(&num_results) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInputException",
            "numResults must be 1..500.",
        );
    }
    let Some(user_id) = body["userId"].as_str() else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInputException",
            "userId is required.",
        );
    };
    if let Some(response) = apply_mode(&mode, &arn).await {
        return response;
    }

    let mut ranked = match mode {
        Mode::Empty => Vec::new(),
        _ => rank(&ids, user_id, num_results),
    };
    if mode == Mode::UnknownIds {
        for (k, id) in ranked.iter_mut().enumerate().filter(|(k, _)| k % 3 == 0) {
            *id = format!("ghost-{k}");
        }
    }
    let count = ranked.len().max(1) as f64;
    let item_list: Vec<Value> = ranked
        .iter()
        .enumerate()
        .map(|(k, id)| json!({ "itemId": id, "score": (count - k as f64) / count }))
        .collect();
    ok(json!({ "itemList": item_list, "recommendationId": format!("RID-{user_id}") }))
}

async fn ranking(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (Some(body), mode, _) = receive(&shared, "/personalize-ranking", &headers, &body) else {
        return not_json();
    };
    let (Some(arn), Some(user_id), Some(input)) = (
        body["campaignArn"].as_str(),
        body["userId"].as_str(),
        body["inputList"].as_array(),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInputException",
            "campaignArn, userId and inputList are required.",
        );
    };
    if input.is_empty() || input.len() > 500 {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInputException",
            "inputList must hold 1..500 ids.",
        );
    }
    if let Some(response) = apply_mode(&mode, arn).await {
        return response;
    }
    let mut ids: Vec<String> = input
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    ids.sort_by_key(|id| fnv(&[user_id, id]));
    let ranked: Vec<Value> = ids
        .iter()
        .map(|id| json!({ "itemId": id, "score": 0.5 }))
        .collect();
    ok(json!({ "personalizedRanking": ranked, "recommendationId": format!("RID-{user_id}") }))
}
