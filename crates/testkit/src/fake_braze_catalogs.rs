//! A stand-in for Braze's Catalogs API, as Braze documents it:
//! - `GET /catalogs` lists catalogs with their fields; `POST /catalogs` creates one (its first
//!   field `id`, a string; fields of the types Braze has); `POST /catalogs/{name}/fields` adds
//!   fields.
//! - `GET /catalogs/{name}/items` pages through the items, 50 a page, the next page in a `Link`
//!   header; `PUT` (replace or create), `PATCH` (edit existing; unknown ids are skipped, as an
//!   asynchronous job does) and `DELETE` take up to 50 items and answer `202 {"message":"success"}`.
//!
//! It refuses, as Braze does, with `400 {"errors":[{"id":…,"message":…,"parameters":…,
//! "parameter_values":…}],"message":"Invalid Request"}`: over 50 items
//! (`request-includes-too-many-items`), not an array of objects (`item-array-invalid`), an item
//! without an id (`items-missing-ids`), ids that are not letters, digits, `-` and `_`
//! (`invalid-ids`), longer than 250 characters (`ids-too-large`) or repeated
//! (`ids-not-unique`), fields the catalog lacks (`invalid-fields`), a value over 5,000
//! characters (`items-too-large`) or of the wrong type (`unable-to-coerce-value`); 404
//! `catalog-not-found`; 401 without the key. Every answer carries `X-RateLimit-*` headers for
//! its limit (16,000 requests a minute unless a test sets another), and over it, 429.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

pub const MAX_ITEMS_PER_REQUEST: usize = 50;
pub const MAX_ID_CHARS: usize = 250;
pub const MAX_VALUE_CHARS: usize = 5000;
const TYPES: [&str; 6] = ["boolean", "number", "string", "array", "time", "object"];

#[derive(Debug, Clone)]
pub struct Catalog {
    pub fields: Vec<(String, String)>,
    pub items: BTreeMap<String, Map<String, Value>>,
}

struct Shared {
    key: String,
    catalogs: BTreeMap<String, Catalog>,
    /// Requests per window, and the requests of the current window.
    limit: (usize, Duration),
    window: (Instant, usize),
    /// Item requests (PUT, PATCH, DELETE) answered 2xx, with how many items each carried.
    item_requests: Vec<(Method, usize)>,
    rate_limited: usize,
}

pub struct FakeBrazeCatalogs {
    pub endpoint: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeBrazeCatalogs {
    pub async fn start(key: &str) -> FakeBrazeCatalogs {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakeBrazeCatalogs::serve(listener, key)
    }

    /// Serves on `listener` (a process of its own, for benchmarks).
    pub fn serve(listener: tokio::net::TcpListener, key: &str) -> FakeBrazeCatalogs {
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared {
            key: key.to_owned(),
            catalogs: BTreeMap::new(),
            limit: (16_000, Duration::from_secs(60)),
            window: (Instant::now(), 0),
            item_requests: Vec::new(),
            rate_limited: 0,
        }));
        let app = Router::new()
            .route("/catalogs", get(list_catalogs).post(create_catalog))
            .route("/catalogs/{name}/fields", post(add_fields))
            .route(
                "/catalogs/{name}/items",
                get(list_items)
                    .put(write_items)
                    .patch(write_items)
                    .delete(write_items),
            )
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeBrazeCatalogs {
            endpoint,
            shared,
            server,
        }
    }

    /// At most `requests` per `window`; over it, 429.
    pub fn set_limit(&self, requests: usize, window: Duration) {
        let mut shared = self.shared.lock().unwrap();
        shared.limit = (requests, window);
        shared.window = (Instant::now(), 0);
    }

    pub fn catalog(&self, name: &str) -> Option<Catalog> {
        self.shared.lock().unwrap().catalogs.get(name).cloned()
    }

    /// Item requests answered 2xx: their method and item count.
    pub fn item_requests(&self) -> Vec<(Method, usize)> {
        self.shared.lock().unwrap().item_requests.clone()
    }

    pub fn rate_limited(&self) -> usize {
        self.shared.lock().unwrap().rate_limited
    }
}

impl Drop for FakeBrazeCatalogs {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The key and the rate limit, as every endpoint checks them first; the headers to answer with.
#[allow(clippy::result_large_err)] // a test server: the refusal is the answer itself
fn admit(shared: &mut Shared, headers: &HeaderMap) -> Result<HeaderMap, Response> {
    let expected = format!("Bearer {}", shared.key);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            [("content-type", "application/json")],
            json!({"message": "Invalid API key"}).to_string(),
        )
            .into_response());
    }
    let (limit, window) = shared.limit;
    if shared.window.0.elapsed() >= window {
        shared.window = (Instant::now(), 0);
    }
    shared.window.1 += 1;
    let used = shared.window.1;
    let reset = SystemTime::now() + window.saturating_sub(shared.window.0.elapsed());
    let reset = reset.duration_since(UNIX_EPOCH).unwrap().as_secs() + 1;
    let mut out = HeaderMap::new();
    out.insert("x-ratelimit-limit", HeaderValue::from(limit));
    out.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(limit.saturating_sub(used)),
    );
    out.insert("x-ratelimit-reset", HeaderValue::from(reset));
    if used > limit {
        shared.rate_limited += 1;
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            [("content-type", "application/json")],
            json!({"message": "API rate limit exceeded"}).to_string(),
        )
            .into_response();
        response.headers_mut().extend(out);
        return Err(response);
    }
    Ok(out)
}

fn answer(status: StatusCode, headers: HeaderMap, body: Value) -> Response {
    let mut response = (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    response.headers_mut().extend(headers);
    response
}

fn invalid(headers: HeaderMap, id: &str, message: &str, values: Vec<Value>) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        headers,
        json!({
            "errors": [{"id": id, "message": message, "parameters": ["items"], "parameter_values": values}],
            "message": "Invalid Request"
        }),
    )
}

fn not_found(headers: HeaderMap, name: &str) -> Response {
    answer(
        StatusCode::NOT_FOUND,
        headers,
        json!({
            "errors": [{"id": "catalog-not-found", "message": "Could not find catalog",
                        "parameters": ["catalog_name"], "parameter_values": [name]}],
            "message": "Invalid Request"
        }),
    )
}

fn describe(name: &str, catalog: &Catalog) -> Value {
    json!({
        "name": name,
        "description": "",
        "fields": catalog.fields.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
        "num_items": catalog.items.len(),
    })
}

async fn list_catalogs(State(shared): State<Arc<Mutex<Shared>>>, headers: HeaderMap) -> Response {
    let mut shared = shared.lock().unwrap();
    let out = match admit(&mut shared, &headers) {
        Ok(out) => out,
        Err(response) => return response,
    };
    let catalogs: Vec<Value> = shared
        .catalogs
        .iter()
        .map(|(name, c)| describe(name, c))
        .collect();
    answer(
        StatusCode::OK,
        out,
        json!({"catalogs": catalogs, "message": "success"}),
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 250
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn fields_of(value: &Value) -> Result<Vec<(String, String)>, String> {
    let fields = value.as_array().ok_or("fields must be an array")?;
    fields
        .iter()
        .map(|f| {
            let name = f["name"]
                .as_str()
                .filter(|n| valid_name(n))
                .ok_or("invalid-fields")?;
            let kind = f["type"]
                .as_str()
                .filter(|t| TYPES.contains(t))
                .ok_or("invalid-fields")?;
            Ok((name.to_owned(), kind.to_owned()))
        })
        .collect::<Result<Vec<_>, &str>>()
        .map_err(str::to_owned)
}

async fn create_catalog(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut shared = shared.lock().unwrap();
    let out = match admit(&mut shared, &headers) {
        Ok(out) => out,
        Err(response) => return response,
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let Some([catalog]) = body["catalogs"].as_array().map(Vec::as_slice) else {
        return invalid(
            out,
            "too-many-catalog-atoms",
            "Only one catalog is created at a time",
            vec![],
        );
    };
    let name = catalog["name"].as_str().unwrap_or_default().to_owned();
    if !valid_name(&name) {
        return invalid(
            out,
            "invalid-catalog-name",
            "Catalog name is invalid",
            vec![json!(name)],
        );
    }
    if shared.catalogs.contains_key(&name) {
        return invalid(
            out,
            "catalog-name-already-exists",
            "A catalog with that name already exists",
            vec![json!(name)],
        );
    }
    let fields = match fields_of(&catalog["fields"]) {
        Ok(fields)
            if fields
                .first()
                .is_some_and(|(n, t)| n == "id" && t == "string") =>
        {
            fields
        }
        _ => {
            return invalid(
                out,
                "id-not-first-column",
                "The first field must be id, a string",
                vec![],
            );
        }
    };
    let created = Catalog {
        fields,
        items: BTreeMap::new(),
    };
    let described = describe(&name, &created);
    shared.catalogs.insert(name, created);
    answer(
        StatusCode::CREATED,
        out,
        json!({"catalogs": [described], "message": "success"}),
    )
}

async fn add_fields(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut shared = shared.lock().unwrap();
    let out = match admit(&mut shared, &headers) {
        Ok(out) => out,
        Err(response) => return response,
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let Some(catalog) = shared.catalogs.get_mut(&name) else {
        return not_found(out, &name);
    };
    match fields_of(&body["fields"]) {
        Ok(fields) => {
            for field in fields {
                if !catalog.fields.iter().any(|(n, _)| *n == field.0) {
                    catalog.fields.push(field);
                }
            }
            answer(StatusCode::CREATED, out, json!({"message": "success"}))
        }
        Err(_) => invalid(
            out,
            "invalid-fields",
            "Fields must be named and typed",
            vec![],
        ),
    }
}

async fn list_items(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut shared = shared.lock().unwrap();
    let out = match admit(&mut shared, &headers) {
        Ok(out) => out,
        Err(response) => return response,
    };
    let Some(catalog) = shared.catalogs.get(&name) else {
        return not_found(out, &name);
    };
    use std::ops::Bound::{Excluded, Unbounded};
    // Cursors are item ids: letters, digits, - and _, nothing to decode.
    let cursor = query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("cursor="));
    let from = match cursor {
        Some(cursor) => Excluded(cursor.to_owned()),
        None => Unbounded,
    };
    let mut rest = catalog.items.range::<String, _>((from, Unbounded));
    let page: Vec<(&String, &Map<String, Value>)> =
        rest.by_ref().take(MAX_ITEMS_PER_REQUEST).collect();
    let more = rest.next().is_some();
    let items: Vec<Value> = page
        .iter()
        .map(|(id, fields)| {
            let mut item = Map::new();
            item.insert("id".into(), json!(id));
            item.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            Value::Object(item)
        })
        .collect();
    let last = page.last().map(|(id, _)| (*id).clone());
    let mut response = answer(
        StatusCode::OK,
        out,
        json!({"items": items, "message": "success"}),
    );
    if more && let Some(last) = last {
        let link =
            format!("<https://rest.braze.test/catalogs/{name}/items?cursor={last}>; rel=\"next\"");
        response
            .headers_mut()
            .insert("link", HeaderValue::from_str(&link).unwrap());
    }
    response
}

/// `PUT`, `PATCH` and `DELETE /catalogs/{name}/items`.
async fn write_items(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut shared = shared.lock().unwrap();
    let out = match admit(&mut shared, &headers) {
        Ok(out) => out,
        Err(response) => return response,
    };
    let Some(catalog) = shared.catalogs.get(&name) else {
        return not_found(out, &name);
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let Some(items) = body["items"].as_array() else {
        return invalid(
            out,
            "item-array-invalid",
            "items must be an array of objects",
            vec![],
        );
    };
    if items.len() > MAX_ITEMS_PER_REQUEST {
        return invalid(
            out,
            "request-includes-too-many-items",
            "Request includes too many items",
            vec![],
        );
    }
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let Some(object) = item.as_object() else {
            return invalid(
                out,
                "item-array-invalid",
                "items must be an array of objects",
                vec![],
            );
        };
        let id = match object.get("id") {
            None => return invalid(out, "items-missing-ids", "Items must have ids", vec![]),
            Some(Value::String(id)) => id.clone(),
            Some(other) => {
                return invalid(
                    out,
                    "ids-not-strings",
                    "Item ids must be strings",
                    vec![other.clone()],
                );
            }
        };
        if id.chars().count() > MAX_ID_CHARS {
            return invalid(
                out,
                "ids-too-large",
                "Item ids can't be more than 250 characters",
                vec![json!(id)],
            );
        }
        if !valid_name(&id) {
            return invalid(
                out,
                "invalid-ids",
                "Item ids can only include letters, numbers, hyphens, and underscores",
                vec![json!(id)],
            );
        }
        if ids.contains(&id) {
            return invalid(
                out,
                "ids-not-unique",
                "Item ids must be unique in the request",
                vec![json!(id)],
            );
        }
        if method != Method::DELETE {
            for (field, value) in object.iter().filter(|(k, _)| *k != "id") {
                let Some((_, kind)) = catalog.fields.iter().find(|(n, _)| n == field) else {
                    return invalid(
                        out,
                        "invalid-fields",
                        "Some of the fields given do not exist in the catalog",
                        vec![json!(field)],
                    );
                };
                if value
                    .as_str()
                    .is_some_and(|s| s.chars().count() > MAX_VALUE_CHARS)
                {
                    return invalid(
                        out,
                        "items-too-large",
                        "Item values can't exceed 5,000 characters",
                        vec![json!(id)],
                    );
                }
                let fits = match (kind.as_str(), value) {
                    (_, Value::Null) => true,
                    ("number", v) => v.is_number(),
                    ("boolean", v) => v.is_boolean(),
                    ("string" | "time", v) => v.is_string(),
                    ("array", v) => v.is_array(),
                    ("object", v) => v.is_object(),
                    _ => false,
                };
                if !fits {
                    return invalid(
                        out,
                        "unable-to-coerce-value",
                        "Item types can't be converted",
                        vec![json!(field)],
                    );
                }
            }
        }
        ids.push(id);
    }
    let catalog = shared.catalogs.get_mut(&name).expect("checked above");
    for (item, id) in items.iter().zip(&ids) {
        let mut fields = item.as_object().cloned().unwrap_or_default();
        fields.remove("id");
        if method == Method::PUT {
            catalog.items.insert(id.clone(), fields);
        } else if method == Method::PATCH {
            if let Some(existing) = catalog.items.get_mut(id) {
                existing.extend(fields);
            }
        } else {
            catalog.items.remove(id);
        }
    }
    shared.item_requests.push((method, items.len()));
    answer(StatusCode::ACCEPTED, out, json!({"message": "success"}))
}
