//! Shared test wiring: the real router with real SDK clients whose HTTP layer is mocked by
//! `aws-smithy-mocks`, plus helpers to send requests and read answers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_personalizeruntime::operation::get_recommendations::{
    GetRecommendationsInput, GetRecommendationsOutput,
};
use aws_sdk_personalizeruntime::types::PredictedItem;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use personalize_braze::config::{Backend, Config, TargetKind};
use personalize_braze::startup::{self, Clients};
use personalize_braze_core::item::UrlTemplates;
use tower::ServiceExt;

pub const CAMPAIGN_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/shop";
pub const RECOMMENDER_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:recommender/picks";
pub const FILTER_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:filter/by-category";
pub const EXCLUDE_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:filter/not-purchased";
pub const TABLE: &str = "items";

pub type Table = HashMap<String, HashMap<String, AttributeValue>>;

/// An item row as DynamoDB stores it.
pub fn row(
    id: &str,
    attributes: &[(&str, AttributeValue)],
) -> (String, HashMap<String, AttributeValue>) {
    let mut map: HashMap<String, AttributeValue> = attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    map.insert("id".into(), AttributeValue::S(id.into()));
    (id.to_owned(), map)
}

pub fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub fn n(v: &str) -> AttributeValue {
    AttributeValue::N(v.into())
}

/// What the mocked upstreams received, for assertions on the requests the adapters built.
#[derive(Clone, Default)]
pub struct Recorded {
    pub personalize: Arc<Mutex<Vec<GetRecommendationsInput>>>,
    pub dynamodb: Arc<Mutex<Vec<BatchGetItemInput>>>,
}

impl Recorded {
    pub fn personalize(&self) -> Vec<GetRecommendationsInput> {
        self.personalize.lock().unwrap().clone()
    }

    /// Key ids of each BatchGetItem call, in call order.
    pub fn dynamodb_keys(&self) -> Vec<Vec<String>> {
        self.dynamodb
            .lock()
            .unwrap()
            .iter()
            .map(requested_ids)
            .collect()
    }
}

pub fn requested_ids(input: &BatchGetItemInput) -> Vec<String> {
    input
        .request_items()
        .and_then(|r| r.get(TABLE))
        .map(|k| {
            k.keys()
                .iter()
                .filter_map(|key| key.get("id").and_then(|v| v.as_s().ok()).cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// GetRecommendations answering `ids` in that order, recording each request.
pub fn personalize_returns(ids: &[&str], recorded: &Recorded) -> Rule {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let log = recorded.personalize.clone();
    mock!(aws_sdk_personalizeruntime::Client::get_recommendations).then_compute_output(
        move |input| {
            log.lock().unwrap().push(input.clone());
            GetRecommendationsOutput::builder()
                .set_item_list(Some(
                    ids.iter()
                        .map(|id| PredictedItem::builder().item_id(id).score(0.5).build())
                        .collect(),
                ))
                .recommendation_id("RID-1")
                .build()
        },
    )
}

/// BatchGetItem served from `table`, recording each request. `unprocessed` ids are held back
/// as `UnprocessedKeys` the first time they are asked for. A request DynamoDB would refuse with
/// a ValidationException (over 100 keys, a key twice, an empty key) fails the test.
pub fn dynamodb_serves(table: Table, unprocessed: &[&str], recorded: &Recorded) -> Rule {
    let log = recorded.dynamodb.clone();
    let held_back: Mutex<Vec<String>> =
        Mutex::new(unprocessed.iter().map(|s| s.to_string()).collect());
    mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(move |input| {
        let ids = requested_ids(input);
        assert!(
            ids.len() <= 100,
            "BatchGetItem takes at most 100 keys, not {}",
            ids.len()
        );
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "BatchGetItem refuses a key twice: {ids:?}"
        );
        assert!(ids.iter().all(|id| !id.is_empty()), "an empty key: {ids:?}");
        log.lock().unwrap().push(input.clone());
        let mut held_back = held_back.lock().unwrap();
        let mut found = Vec::new();
        let mut later = Vec::new();
        for id in requested_ids(input) {
            if let Some(pos) = held_back.iter().position(|h| *h == id) {
                held_back.remove(pos);
                later.push(HashMap::from([("id".to_owned(), s(&id))]));
            } else if let Some(item) = table.get(&id) {
                found.push(item.clone());
            }
        }
        let mut output = BatchGetItemOutput::builder().responses(TABLE, found);
        if !later.is_empty() {
            output = output.unprocessed_keys(
                TABLE,
                KeysAndAttributes::builder()
                    .set_keys(Some(later))
                    .build()
                    .unwrap(),
            );
        }
        output.build()
    })
}

/// A canned HTTP answer in the services' REST-JSON / JSON-1.0 error format.
pub fn http_error(status: u16, error_type: &str) -> aws_smithy_runtime_api::http::Response {
    let body = format!(r#"{{"__type":"{error_type}","message":"secret detail {CAMPAIGN_ARN}"}}"#);
    let mut response = aws_smithy_runtime_api::http::Response::new(
        status.try_into().unwrap(),
        aws_smithy_types::body::SdkBody::from(body),
    );
    response
        .headers_mut()
        .insert("x-amzn-ErrorType", error_type.to_owned());
    response
        .headers_mut()
        .insert("x-amzn-RequestId", "REQ-0000-SECRET");
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}

pub struct Setup {
    /// `PERSONALIZE_ARN`; `None` leaves /recommendations off.
    pub arn: Option<(&'static str, TargetKind)>,
    pub related_items: Option<&'static str>,
    pub ranking: Option<&'static str>,
    pub event_tracker: Option<&'static str>,
    /// `ITEM_METADATA_COLUMNS`, for `ITEM_METADATA_SOURCE=personalize`.
    pub metadata_columns: Option<&'static [&'static str]>,
    pub filters: Vec<(&'static str, &'static str)>,
    pub default_filter: Option<&'static str>,
    pub budget: Duration,
    pub templates: UrlTemplates,
    /// Any other variables, as `NAME=value` would set them.
    pub extra: Vec<(&'static str, &'static str)>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            arn: Some((CAMPAIGN_ARN, TargetKind::Campaign)),
            related_items: None,
            ranking: None,
            event_tracker: None,
            metadata_columns: None,
            filters: vec![("by-category", FILTER_ARN), ("not-purchased", EXCLUDE_ARN)],
            default_filter: None,
            budget: Duration::from_millis(1500),
            templates: UrlTemplates::default(),
            extra: Vec::new(),
        }
    }
}

/// The real router over real SDK clients; `personalize` and `dynamodb` rules answer their calls.
pub fn app(setup: Setup, personalize: &[&Rule], dynamodb: &[&Rule]) -> axum::Router {
    app_with_events(setup, personalize, dynamodb, &[])
}

/// SDK clients whose HTTP layer the rules answer, without retries.
struct MockClients {
    personalize: aws_sdk_personalizeruntime::Client,
    events: aws_sdk_personalizeevents::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients for MockClients {
    fn personalize(&self, _region: &str) -> aws_sdk_personalizeruntime::Client {
        self.personalize.clone()
    }

    fn events(&self, _region: Option<&str>) -> aws_sdk_personalizeevents::Client {
        self.events.clone()
    }

    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.dynamodb.clone()
    }
}

/// `app`, with `events` rules answering PutEvents: the app `startup` builds from the
/// configuration `setup` describes, exactly as `main` does, but over mocked clients.
pub fn app_with_events(
    setup: Setup,
    personalize: &[&Rule],
    dynamodb: &[&Rule],
    events: &[&Rule],
) -> axum::Router {
    let clients = MockClients {
        personalize: mock_client!(
            aws_sdk_personalizeruntime,
            RuleMode::MatchAny,
            personalize,
            |c| c.retry_config(aws_sdk_personalizeruntime::config::retry::RetryConfig::disabled())
        ),
        dynamodb: mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, dynamodb, |c| c
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())),
        events: mock_client!(aws_sdk_personalizeevents, RuleMode::MatchAny, events, |c| c
            .retry_config(
                aws_sdk_personalizeevents::config::retry::RetryConfig::disabled()
            )),
    };
    let config = setup.config();
    let Backend::Aws(aws) = &config.backend else {
        panic!("the setup describes AWS mode: {:?}", config.backend)
    };
    startup::aws_app(&config, aws, &clients).0
}

impl Setup {
    /// The configuration, as environment variables would give it.
    fn config(&self) -> Config {
        let mut vars: Vec<(&str, String)> = vec![
            ("ITEMS_TABLE", TABLE.to_owned()),
            ("REQUEST_BUDGET_MS", self.budget.as_millis().to_string()),
            // Each test counts the calls its requests make: nothing is served from the cache.
            ("ITEM_CACHE_TTL", "0".to_owned()),
        ];
        let arns = [
            ("PERSONALIZE_ARN", self.arn.map(|(arn, _)| arn)),
            ("RELATED_ITEMS_ARN", self.related_items),
            ("RANKING_ARN", self.ranking),
            ("EVENT_TRACKER_ID", self.event_tracker),
            ("DEFAULT_FILTER", self.default_filter),
        ];
        for (name, value) in arns {
            if let Some(value) = value {
                vars.push((name, value.to_owned()));
            }
        }
        if let Some(columns) = self.metadata_columns {
            vars.push(("ITEM_METADATA_SOURCE", "personalize".to_owned()));
            vars.push(("ITEM_METADATA_COLUMNS", columns.join(",")));
        }
        if !self.filters.is_empty() {
            let filters: Vec<String> = self
                .filters
                .iter()
                .map(|(name, arn)| format!("{name}={arn}"))
                .collect();
            vars.push(("FILTERS", filters.join(",")));
        }
        for (name, value) in &self.extra {
            vars.push((name, value.to_string()));
        }
        for (name, template) in [
            ("ITEM_URL_TEMPLATE", &self.templates.url),
            ("IMAGE_URL_TEMPLATE", &self.templates.image),
        ] {
            if let Some(template) = template {
                vars.push((name, template.clone()));
            }
        }
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        })
        .unwrap_or_else(|e| panic!("the setup is a valid configuration: {e}"))
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ids of a list-form answer, in order.
    pub fn ids(&self) -> Vec<String> {
        self.json()
            .as_array()
            .unwrap_or_else(|| panic!("not a JSON array: {}", self.body))
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

pub async fn read(response: Response<Body>) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

pub async fn get(app: &axum::Router, uri: &str) -> Answer {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub async fn send(app: &axum::Router, request: Request<Body>) -> Answer {
    read(app.clone().oneshot(request).await.unwrap()).await
}

/// Local mode over the sample data, as `cargo run` serves it.
pub fn local_app() -> axum::Router {
    local_app_with(&[])
}

/// Local mode over the sample data, with these settings.
pub fn local_app_with(vars: &[(&str, &str)]) -> axum::Router {
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let Backend::Local { data_dir, .. } = &config.backend else {
        panic!("no AWS setting is local mode: {:?}", config.backend)
    };
    let data_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(data_dir);
    startup::local_app(&config, &data_dir).unwrap().0
}
