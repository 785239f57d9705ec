//! A stand-in for the Personalize runtime and its events service, speaking their REST-JSON
//! protocol: `POST /recommendations` (for a user, or related to an item; with metadata columns),
//! `POST /personalize-ranking` and `POST /events` (PutEvents), errors as `x-amzn-ErrorType` with
//! the real status codes. It records what it received and can be switched, per test, into
//! misbehaving. One server plays both services: point both endpoint variables at it.
//!
//! It refuses, with `InvalidInputException`, what the real service refuses: `filterValues`
//! without a filter, or not in the quoted form (`"\"a\",\"b\""`), or over the limits; a filter
//! ARN ending in `/by-category` is `INCLUDE … WHERE Items.CATEGORY IN ($CATEGORY)` and needs its
//! value; over 150 `context` entries or values over 1000 characters; event `properties` that are
//! not a JSON object of at most 1024 characters, and over 25 `impression` ids; `promotions` of
//! more than one, or with a bad name, share, filter or filter values; a `metricAttribution`
//! without a printable `eventAttributionSource` of at most 1024 characters.
//!
//! A promotion marks every `100 / percentPromotedItems`-th item of the list (from the first)
//! with its `promotionName`, as if those were the items its filter promotes.

use std::collections::HashMap;
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
    /// `ThrottlingException` for every other call, the rest answered normally: a campaign
    /// just past its provisioned TPS in a big send.
    ThrottleHalf,
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
    /// PutEvents for this session fails with HTTP 500, every time; everything else is normal.
    FailSession(String),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub authorization: String,
    pub body: Value,
}

/// Item id → Items-dataset column → value, for `metadataColumns`.
pub type Metadata = HashMap<String, HashMap<String, String>>;

struct Shared {
    mode: Mode,
    ids: Arc<Vec<String>>,
    metadata: Arc<Metadata>,
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
            metadata: Arc::default(),
            received: record.then(Vec::new),
        }));
        let app = Router::new()
            .route("/recommendations", post(recommendations))
            .route("/personalize-ranking", post(ranking))
            .route("/events", post(put_events))
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

    /// The columns `metadataColumns` can ask for, per item.
    pub fn set_metadata(&self, metadata: Metadata) {
        self.shared.lock().unwrap().metadata = Arc::new(metadata);
    }

    /// What `Normal` mode answers for `user_id`: a per-user walk through the catalog.
    pub fn ranking(&self, user_id: &str, n: usize) -> Vec<String> {
        rank(&self.shared.lock().unwrap().ids, user_id, n)
    }

    /// What `Normal` mode answers for items related to `item_id`: the item itself first (a
    /// careless client would pass it on), then a walk through the catalog.
    pub fn related(&self, item_id: &str, n: usize) -> Vec<String> {
        related(&self.shared.lock().unwrap().ids, item_id, n)
    }

    /// The order `GetPersonalizedRanking` puts `ids` in for `user_id`.
    pub fn personal_order(&self, user_id: &str, ids: &[String]) -> Vec<String> {
        personal_order(user_id, ids)
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

fn related(ids: &[String], item_id: &str, n: usize) -> Vec<String> {
    let mut ranked = rank(ids, &format!("related to {item_id}"), n + 1);
    ranked.retain(|id| id != item_id);
    if ids.iter().any(|id| id == item_id) {
        ranked.insert(0, item_id.to_owned());
    }
    ranked.truncate(n);
    ranked
}

fn personal_order(user_id: &str, ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort_by_key(|id| fnv(&[user_id, id]));
    ids
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

fn invalid_input(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "InvalidInputException", message)
}

/// What GetRecommendations and GetPersonalizedRanking refuse in `filterArn`, `filterValues`
/// and `context`, as the real service does.
fn refinement_problem(body: &Value) -> Option<String> {
    let filter = body["filterArn"].as_str();
    if let Some(values) = body.get("filterValues") {
        let Some(values) = values.as_object() else {
            return Some("filterValues must be a map.".into());
        };
        if filter.is_none() {
            return Some("filterValues need a filterArn.".into());
        }
        if values.len() > 25 {
            return Some("filterValues takes at most 25 entries.".into());
        }
        for (key, value) in values {
            let valid_key = (1..=50).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            let Some(value) = value.as_str().filter(|_| valid_key) else {
                return Some(format!("filterValues entry {key} is invalid."));
            };
            if value.chars().count() > 1000 || !is_quoted_list(value) {
                return Some(format!(
                    "filterValues {key} must be quoted values, comma-separated, at most 1000 characters."
                ));
            }
        }
    }
    let category = body["filterValues"].get("CATEGORY");
    if filter.is_some_and(|arn| arn.ends_with("/by-category")) && category.is_none() {
        return Some("The filter expression needs a value for $CATEGORY.".into());
    }
    if let Some(context) = body.get("context") {
        let Some(context) = context.as_object() else {
            return Some("context must be a map.".into());
        };
        if context.len() > 150 {
            return Some("context takes at most 150 entries.".into());
        }
        let too_long = |v: &Value| v.as_str().is_none_or(|v| v.chars().count() > 1000);
        if context
            .iter()
            .any(|(key, value)| key.len() > 150 || too_long(value))
        {
            return Some("context keys are at most 150 and values 1000 characters.".into());
        }
    }
    None
}

/// The request's promotion, as its name and how often an item is promoted (every n-th), or what
/// the real service would refuse in it.
fn promotion(body: &Value) -> Result<Option<(String, usize)>, String> {
    let Some(promotions) = body.get("promotions") else {
        return Ok(None);
    };
    let [promotion] = promotions.as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err("promotions takes one promotion.".into());
    };
    let name = promotion["name"].as_str().unwrap_or_default();
    let valid_name = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(format!("promotion name {name:?} is invalid."));
    }
    let percent = promotion["percentPromotedItems"].as_u64().unwrap_or(0);
    if !(1..=100).contains(&percent) {
        return Err("percentPromotedItems must be 1..100.".into());
    }
    let filter = promotion["filterArn"].as_str().unwrap_or_default();
    if !filter.starts_with("arn:aws:personalize:") || !filter.contains(":filter/") {
        return Err("A promotion needs a filterArn.".into());
    }
    // The filter rules of the request apply to the promotion's own filter and values.
    let as_request = json!({ "filterArn": filter, "filterValues": promotion.get("filterValues") });
    let as_request = match promotion.get("filterValues") {
        Some(_) => as_request,
        None => json!({ "filterArn": filter }),
    };
    if let Some(problem) = refinement_problem(&as_request) {
        return Err(format!("promotion {name}: {problem}"));
    }
    Ok(Some((name.to_owned(), (100 / percent) as usize)))
}

/// `"a","b\"c"`: double-quoted values, escapes inside, separated by commas.
fn is_quoted_list(text: &str) -> bool {
    let mut chars = text.chars().peekable();
    loop {
        if chars.next() != Some('"') {
            return false;
        }
        loop {
            match chars.next() {
                Some('\\') => {
                    if chars.next().is_none() {
                        return false;
                    }
                }
                Some('"') => break,
                Some(_) => {}
                None => return false,
            }
        }
        match chars.next() {
            None => return true,
            Some(',') => {}
            Some(_) => return false,
        }
    }
}

/// What PutEvents refuses in one event.
fn event_problem(event: &Value) -> Option<String> {
    if !event["eventType"].is_string() || !event["sentAt"].is_number() {
        return Some("Each event needs eventType and sentAt.".into());
    }
    if let Some(properties) = event.get("properties") {
        let object = properties
            .as_str()
            .filter(|text| text.chars().count() <= 1024)
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .filter(Value::is_object);
        if object.is_none() {
            return Some("properties must be a JSON object of at most 1024 characters.".into());
        }
    }
    if let Some(attribution) = event.get("metricAttribution") {
        let source = attribution["eventAttributionSource"]
            .as_str()
            .unwrap_or_default();
        let printable = source.bytes().all(|b| (0x20..=0x7e).contains(&b));
        if !printable || source.trim().is_empty() || source.len() > 1024 {
            return Some("metricAttribution needs an eventAttributionSource.".into());
        }
    }
    let impressions = event.get("impression").map(|i| i.as_array().map(Vec::len));
    if let Some(count) = impressions
        && count.is_none_or(|n| n > 25)
    {
        return Some("impression takes at most 25 item ids.".into());
    }
    None
}

fn not_json() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "SerializationException",
        "body is not JSON",
    )
}

async fn apply_mode(mode: &Mode, arn: &str) -> Option<Response> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    match mode {
        Mode::ThrottleHalf => {
            let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            n.is_multiple_of(2).then(|| {
                error(
                    StatusCode::BAD_REQUEST,
                    "ThrottlingException",
                    "Rate exceeded",
                )
            })
        }
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
        Mode::Normal | Mode::UnknownIds | Mode::Empty | Mode::FailSession(_) => None,
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
    let columns = match metadata_columns(&body) {
        Ok(columns) => columns,
        Err(response) => return response,
    };
    let max_results = if columns.is_empty() { 500 } else { 50 };
    if !(1..=max_results).contains(&num_results) {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInputException",
            &format!("numResults must be 1..{max_results}."),
        );
    }
    let subject = match (body["userId"].as_str(), body["itemId"].as_str()) {
        (_, Some(item_id)) => Err(item_id),
        (Some(user_id), None) => Ok(user_id),
        (None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidInputException",
                "userId or itemId is required.",
            );
        }
    };
    if let Some(problem) = refinement_problem(&body) {
        return invalid_input(&problem);
    }
    let promotion = match promotion(&body) {
        Ok(promotion) => promotion,
        Err(problem) => return invalid_input(&problem),
    };
    if let Some(response) = apply_mode(&mode, &arn).await {
        return response;
    }

    let mut ranked = match (&mode, subject) {
        (Mode::Empty, _) => Vec::new(),
        (_, Ok(user_id)) => rank(&ids, user_id, num_results),
        (_, Err(item_id)) => related(&ids, item_id, num_results),
    };
    if mode == Mode::UnknownIds {
        for (k, id) in ranked.iter_mut().enumerate().filter(|(k, _)| k % 3 == 0) {
            *id = format!("ghost-{k}");
        }
    }
    let metadata = shared.lock().unwrap().metadata.clone();
    let count = ranked.len().max(1) as f64;
    let item_list: Vec<Value> = ranked
        .iter()
        .enumerate()
        .map(|(k, id)| {
            let mut item = json!({ "itemId": id, "score": (count - k as f64) / count });
            if !columns.is_empty() {
                item["metadata"] = item_metadata(&metadata, id, &columns);
            }
            if let Some((name, every)) = &promotion
                && k % every == 0
            {
                item["promotionName"] = json!(name);
            }
            item
        })
        .collect();
    let name = subject.unwrap_or_else(|item_id| item_id);
    ok(json!({ "itemList": item_list, "recommendationId": format!("RID-{name}") }))
}

/// `metadataColumns: {"ITEMS": [...]}`, at most 10 columns.
#[allow(clippy::result_large_err)]
fn metadata_columns(body: &Value) -> Result<Vec<String>, Response> {
    let Some(columns) = body.get("metadataColumns") else {
        return Ok(Vec::new());
    };
    let columns: Vec<String> = columns["ITEMS"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if columns.is_empty() || columns.len() > 10 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "InvalidInputException",
            "metadataColumns must map ITEMS to 1..10 column names.",
        ));
    }
    Ok(columns)
}

/// The asked-for columns the item has; a column it lacks is left out.
fn item_metadata(metadata: &Metadata, id: &str, columns: &[String]) -> Value {
    let item = metadata.get(id);
    let fields: serde_json::Map<String, Value> = columns
        .iter()
        .filter_map(|c| {
            let value = item?.get(c)?;
            Some((c.clone(), Value::String(value.clone())))
        })
        .collect();
    Value::Object(fields)
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
    let columns = match metadata_columns(&body) {
        Ok(columns) => columns,
        Err(response) => return response,
    };
    let max_input = if columns.is_empty() { 500 } else { 50 };
    if input.is_empty() || input.len() > max_input {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidInputException",
            &format!("inputList must hold 1..{max_input} ids."),
        );
    }
    if let Some(problem) = refinement_problem(&body) {
        return invalid_input(&problem);
    }
    if let Some(response) = apply_mode(&mode, arn).await {
        return response;
    }
    let metadata = shared.lock().unwrap().metadata.clone();
    let ids: Vec<String> = input
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let ranked: Vec<Value> = personal_order(user_id, &ids)
        .iter()
        .map(|id| {
            let mut item = json!({ "itemId": id, "score": 0.5 });
            if !columns.is_empty() {
                item["metadata"] = item_metadata(&metadata, id, &columns);
            }
            item
        })
        .collect();
    ok(json!({ "personalizedRanking": ranked, "recommendationId": format!("RID-{user_id}") }))
}

/// PutEvents: `trackingId`, `sessionId`, and 1 to 10 events each with `eventType` and `sentAt`.
async fn put_events(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let (Some(body), mode, _) = receive(&shared, "/events", &headers, &body) else {
        return not_json();
    };
    let invalid = |message: &str| error(StatusCode::BAD_REQUEST, "InvalidInputException", message);
    let (Some(tracking_id), Some(session)) =
        (body["trackingId"].as_str(), body["sessionId"].as_str())
    else {
        return invalid("trackingId and sessionId are required.");
    };
    let events = body["eventList"].as_array().cloned().unwrap_or_default();
    if events.is_empty() || events.len() > 10 {
        return invalid("eventList must hold 1..10 events.");
    }
    if let Some(problem) = events.iter().find_map(event_problem) {
        return invalid(&problem);
    }
    if let Some(response) = apply_mode(&mode, tracking_id).await {
        return response;
    }
    if mode == Mode::FailSession(session.to_owned()) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "We encountered an internal error. Please try again.",
        );
    }
    // The real service answers 200 with an empty body.
    StatusCode::OK.into_response()
}
