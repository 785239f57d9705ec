//! End to end: the built service binary, the real SDK clients inside it, Amazon's DynamoDB
//! engine (DynamoDB Local) holding the catalog, and the project's fake Personalize runtime.
//! Nothing here is in-process with the service; everything crosses real HTTP on loopback.
//! With them, `template`: what template.yaml deploys, through the real SAM transform.
//!
//! This target needs Java 17 and Python (which `tests/run` provides), so it is built only with
//! the `e2e` feature: plain `cargo test` runs everything else.

mod braze_catalog;
mod braze_sync;
mod braze_sync_real;
mod catalog;
mod choices;
mod endpoints;
mod evaluate;
mod fallback;
mod import_currents;
mod loader;
mod local_mode;
mod metrics;
mod openapi;
mod processes;
mod runtime_api;
mod setup;
mod template;
mod template_operations;

use personalize_braze_testkit::{emf, fake_braze, fake_personalize, http, lambda_emulator};

use std::time::{Duration, Instant};

use catalog::{IMAGE_TEMPLATE, URL_TEMPLATE, all_ids, expected_list, shared_catalog_table};
use fake_personalize::{FakePersonalize, Mode};
use http::HttpClient;
use processes::{DynamoDbLocal, ServiceProcess};

const CAMPAIGN_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/shop";
const RECOMMENDER_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:recommender/top-picks";
const FILTER_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:filter/by-category";

struct Stack {
    fake: FakePersonalize,
    service: ServiceProcess,
    http: HttpClient,
}

impl Stack {
    /// The service over the shared catalog and a fresh fake Personalize; `vars` add or override.
    async fn start(vars: &[(&str, &str)]) -> Stack {
        let (dynamodb, table) = tokio::task::spawn_blocking(shared_catalog_table)
            .await
            .unwrap();
        let fake = FakePersonalize::start(all_ids()).await;
        let mut env = vec![
            ("PERSONALIZE_ARN", CAMPAIGN_ARN),
            ("ITEMS_TABLE", table),
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
            (
                "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME",
                fake.endpoint.as_str(),
            ),
            (
                "AWS_ENDPOINT_URL_PERSONALIZE_EVENTS",
                fake.endpoint.as_str(),
            ),
            (
                "FILTERS",
                "by-category=arn:aws:personalize:us-east-1:123456789012:filter/by-category",
            ),
            ("ITEM_URL_TEMPLATE", URL_TEMPLATE),
            ("IMAGE_URL_TEMPLATE", IMAGE_TEMPLATE),
            // These tests check answers, not latency, on a 2-core machine shared with a JVM and
            // parallel tests; the budget itself has its own test, which sets 500 ms.
            ("REQUEST_BUDGET_MS", "5000"),
        ];
        for (name, value) in vars {
            env.retain(|(n, _)| n != name);
            env.push((name, value));
        }
        let service = ServiceProcess::launch(&env).await;
        Stack {
            fake,
            service,
            http: HttpClient::new(),
        }
    }

    async fn get(&self, path_and_query: &str) -> http::Answer {
        self.http
            .get(&format!("{}{path_and_query}", self.service.base_url))
            .await
    }

    async fn post(&self, path: &str, body: &str) -> http::Answer {
        self.http
            .post(&format!("{}{path}", self.service.base_url), body)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_the_catalog_attributes_exactly_in_personalize_order() {
    let stack = Stack::start(&[]).await;

    let answer = stack.get("/recommendations?user_id=alice").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, expected_list(&stack.fake.ranking("alice", 10)));
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("private, max-age=300"));

    let received = stack.fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/recommendations");
    assert!(
        received[0].authorization.starts_with("AWS4-HMAC-SHA256 "),
        "requests are SigV4-signed"
    );
    let body = &received[0].body;
    assert_eq!(body["campaignArn"], CAMPAIGN_ARN);
    assert_eq!(body["userId"], "alice");
    assert_eq!(body["numResults"], 15);
    assert!(
        body.get("recommenderArn").is_none() && body.get("filterArn").is_none(),
        "{body}"
    );
}

/// With neither `SSL_CERT_FILE` nor `SSL_CERT_DIR` set, as on Lambda (`ServiceProcess` clears the
/// environment), the SDK's TLS roots load from the system's CA bundle file without a word. The
/// same SDK warns when a certificate path does not load, which the second service shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_roots_load_from_the_system_ca_bundle_without_a_warning() {
    let warning = "root CA certificate";
    let stack = Stack::start(&[]).await;
    assert_eq!(
        stack.get("/recommendations?user_id=alice").await.status,
        200
    );
    let log = stack.service.log();
    assert!(!log.contains(warning), "{log}");

    // The bundle too, or the SDK has no roots at all (which a debug build asserts against).
    let bundle = openssl_probe::probe()
        .cert_file
        .expect("a system CA bundle");
    let unloadable = Stack::start(&[
        ("SSL_CERT_FILE", bundle.to_str().unwrap()),
        ("SSL_CERT_DIR", "/nonexistent/certs"),
    ])
    .await;
    assert_eq!(
        unloadable
            .get("/recommendations?user_id=alice")
            .await
            .status,
        200
    );
    let log = unloadable.service.log();
    assert!(log.contains(warning), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recommender_arn_is_sent_as_recommender_arn() {
    let stack = Stack::start(&[("PERSONALIZE_ARN", RECOMMENDER_ARN)]).await;

    let answer = stack.get("/recommendations?user_id=bob&count=2").await;

    assert_eq!(answer.body, expected_list(&stack.fake.ranking("bob", 2)));
    let body = &stack.fake.received()[0].body;
    assert_eq!(body["recommenderArn"], RECOMMENDER_ARN);
    assert!(body.get("campaignArn").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_count_fetches_the_catalog_in_several_batches() {
    let stack = Stack::start(&[("MAX_COUNT", "300")]).await;

    // 300 + 60 over-fetched ids: four BatchGetItem calls of at most 100 keys against DynamoDB.
    let answer = stack.get("/recommendations?user_id=carol&count=300").await;

    assert_eq!(
        answer.status,
        200,
        "{}",
        &answer.body[..answer.body.len().min(300)]
    );
    assert_eq!(answer.ids().len(), 300);
    assert_eq!(
        answer.body,
        expected_list(&stack.fake.ranking("carol", 300))
    );
    assert_eq!(stack.fake.received()[0].body["numResults"], 360);
    assert_eq!(
        stack
            .get("/recommendations?user_id=carol&count=301")
            .await
            .status,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_are_dropped_and_the_list_is_still_full() {
    let stack = Stack::start(&[]).await;
    stack.fake.set_mode(Mode::UnknownIds);

    let answer = stack.get("/recommendations?user_id=dave").await;

    // The fake replaces every third of the 15 ids with one the catalog lacks: 10 real ones remain.
    let known: Vec<String> = stack
        .fake
        .ranking("dave", 15)
        .into_iter()
        .enumerate()
        .filter(|(k, _)| k % 3 != 0)
        .map(|(_, id)| id)
        .collect();
    assert_eq!(known.len(), 10);
    assert_eq!(answer.body, expected_list(&known));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_context_reach_personalize_quoted_and_escaped() {
    let stack = Stack::start(&[]).await;

    let answer = stack
        .get(
            "/recommendations?user_id=erin&count=3&filter=by-category\
             &filter_CATEGORY=shoes,men%27s%20%22formal%22&filter_CATEGORY=back%5Cslash\
             &context_DEVICE=mobile&context_SEASON=winter",
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = &stack.fake.received()[0].body;
    assert_eq!(body["filterArn"], FILTER_ARN);
    assert_eq!(
        body["filterValues"],
        serde_json::json!({ "CATEGORY": r#""shoes","men's \"formal\"","back\\slash""# })
    );
    assert_eq!(
        body["context"],
        serde_json::json!({ "DEVICE": "mobile", "SEASON": "winter" })
    );
}

/// An INCLUDE filter without its value is refused by Personalize (`InvalidInputException`),
/// which reaches Braze as a 400 `rejected_by_recommender`, never a 500. An empty list of values
/// (`filter_CATEGORY=,`) is no value, in AWS mode as in local mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_include_filter_without_its_value_is_rejected_the_same_in_both_modes() {
    let stack = Stack::start(&[]).await;
    let local = ServiceProcess::launch(&[(
        "DATA_DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data"),
    )])
    .await;
    let http = HttpClient::new();
    for query in [
        "filter=by-category",
        "filter=by-category&filter_CATEGORY=",
        "filter=by-category&filter_CATEGORY=,",
        "filter=by-category&filter_CATEGORY=%20,%20",
    ] {
        let aws = stack
            .get(&format!("/recommendations?user_id=ivy&{query}"))
            .await;
        assert_eq!(aws.status, 400, "{query}: {}", aws.body);
        assert_eq!(
            aws.json()["error"]["code"],
            "rejected_by_recommender",
            "{query}"
        );
        let url = format!(
            "{}/recommendations?user_id=user-00001&{query}",
            local.base_url
        );
        let answer = http.get(&url).await;
        assert_eq!(answer.status, 400, "local mode, {query}: {}", answer.body);
        assert_eq!(answer.json()["error"]["code"], "rejected_by_recommender");
    }
    // No request ever carried an empty value; with one, the filter is satisfied.
    assert!(
        stack
            .fake
            .received()
            .iter()
            .all(|r| r.body.get("filterValues").is_none()),
        "an empty list counts as not given"
    );
    let answer = stack
        .get("/recommendations?user_id=ivy&filter=by-category&filter_CATEGORY=shoes")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_recommendations_is_an_empty_list() {
    let stack = Stack::start(&[]).await;
    stack.fake.set_mode(Mode::Empty);

    let answer = stack
        .get("/recommendations?user_id=frank&format=object")
        .await;

    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        r#"{"items":[],"recommendation_id":"RID-frank","recommender":"shop"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_upstream_failures_are_503_with_retry_after() {
    let stack = Stack::start(&[]).await;
    for (mode, code) in [
        (Mode::Throttle, "upstream_throttled"),
        (Mode::ServerError, "upstream_unavailable"),
    ] {
        stack.fake.set_mode(mode.clone());

        let answer = stack.get("/recommendations?user_id=gina").await;

        assert_eq!(answer.status, 503, "{mode:?}: {}", answer.body);
        assert_eq!(answer.header("retry-after"), Some("1"), "{mode:?}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{mode:?}");
        assert_eq!(answer.json()["error"]["code"], code, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_personalize_gets_a_503_before_the_budget_ends() {
    let stack = Stack::start(&[("REQUEST_BUDGET_MS", "500")]).await;
    stack.fake.set_mode(Mode::Slow(Duration::from_secs(5)));

    let started = Instant::now();
    let answer = stack.get("/recommendations?user_id=hank").await;
    let elapsed = started.elapsed();

    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.json()["error"]["code"], "upstream_timeout");
    assert_eq!(answer.header("retry-after"), Some("1"));
    // The fake would answer after 5 s: an answer well before that is the budget's doing, however
    // loaded the machine. And the service itself says it waited for the budget, not less.
    assert!(
        elapsed < Duration::from_secs(4),
        "answered after {elapsed:?}"
    );
    let lines = emf::request_lines(&stack.service.log());
    let latency = lines[0].by_route()["Latency"];
    assert!(latency >= 500.0, "the request line says {latency} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_campaign_is_a_500_that_leaks_nothing_and_is_logged_loudly() {
    let stack = Stack::start(&[]).await;
    stack.fake.set_mode(Mode::MissingCampaign);

    let answer = stack.get("/recommendations?user_id=ivy").await;

    assert_eq!(answer.status, 500, "{}", answer.body);
    assert_eq!(answer.json()["error"]["code"], "misconfigured");
    for secret in ["arn:", "8f8a7e52", "ResourceNotFound", "does not exist"] {
        assert!(
            !answer.body.contains(secret),
            "body leaks {secret}: {}",
            answer.body
        );
    }
    let log = stack.service.log();
    let line = log
        .lines()
        .find(|l| l.contains(r#""level":"ERROR""#))
        .unwrap_or_else(|| panic!("no ERROR line in the log:\n{log}"));
    assert!(line.contains("ResourceNotFoundException"), "{line}");
    assert!(!log.contains("ivy"), "user ids stay out of info-level logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_400_and_personalize_is_never_called() {
    let stack = Stack::start(&[]).await;

    let answer = stack.get("/recommendations?count=5").await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["parameter"], "user_id");

    let answer = stack
        .get("/recommendations?user_id=jo&filter=unknown")
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["parameter"], "filter");
    assert!(stack.fake.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_are_all_answered_correctly() {
    let stack = std::sync::Arc::new(Stack::start(&[]).await);

    let tasks: Vec<_> = (0..50)
        .map(|n| {
            let stack = stack.clone();
            tokio::spawn(async move {
                let user = format!("user-{n}");
                let answer = stack
                    .get(&format!("/recommendations?user_id={user}&count=12"))
                    .await;
                (user, answer)
            })
        })
        .collect();

    for task in tasks {
        let (user, answer) = task.await.unwrap();
        assert_eq!(answer.status, 200, "{user}: {}", answer.body);
        assert_eq!(
            answer.body,
            expected_list(&stack.fake.ranking(&user, 12)),
            "{user}"
        );
    }
    assert_eq!(stack.fake.received().len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_going_away_turns_into_503s() {
    // Its own DynamoDB Local, because this test stops it.
    let mut dynamodb = tokio::task::spawn_blocking(DynamoDbLocal::start)
        .await
        .unwrap();
    let client = catalog::client(&dynamodb.endpoint).await;
    catalog::create_table(&client, "small").await;
    catalog::put_items(
        &client,
        "small",
        (0..40).map(|i| catalog::item(i).attributes).collect(),
    )
    .await;
    let fake = FakePersonalize::start((0..40).map(|i| catalog::item(i).id).collect()).await;
    let env = [
        ("PERSONALIZE_ARN", CAMPAIGN_ARN.to_owned()),
        ("ITEMS_TABLE", "small".to_owned()),
        ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.endpoint.clone()),
        (
            "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME",
            fake.endpoint.clone(),
        ),
        ("ITEM_URL_TEMPLATE", URL_TEMPLATE.to_owned()),
        ("IMAGE_URL_TEMPLATE", IMAGE_TEMPLATE.to_owned()),
    ];
    let service = ServiceProcess::launch(&env).await;
    let http = HttpClient::new();
    let url = format!("{}/recommendations?user_id=kim&count=5", service.base_url);

    let before = http.get(&url).await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(before.body, expected_list(&fake.ranking("kim", 5)));

    dynamodb.stop();
    // The same request again needs no DynamoDB call: its items are in the function's cache.
    let warm = http.get(&url).await;
    assert_eq!((warm.status, &warm.body), (200, &before.body));

    // Another user's items are not all cached, so DynamoDB must be asked.
    let after = http
        .get(&format!(
            "{}/recommendations?user_id=lou&count=20",
            service.base_url
        ))
        .await;

    assert_eq!(after.status, 503, "{}", after.body);
    assert_eq!(after.json()["error"]["code"], "upstream_unavailable");
    assert_eq!(after.header("retry-after"), Some("1"));
}

/// The fake must be something the real SDK accepts: every answer and error it sends is parsed here
/// by `aws-sdk-personalizeruntime` itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_sdk_parses_everything_the_fake_sends() {
    use aws_sdk_personalizeruntime::error::ProvideErrorMetadata;

    let fake = FakePersonalize::start(all_ids()).await;
    let config = aws_sdk_personalizeruntime::Config::builder()
        .behavior_version(aws_sdk_personalizeruntime::config::BehaviorVersion::latest())
        .region(aws_sdk_personalizeruntime::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_personalizeruntime::config::Credentials::new(
            "AKIDTEST", "secret", None, None, "tests",
        ))
        .endpoint_url(&fake.endpoint)
        .retry_config(aws_sdk_personalizeruntime::config::retry::RetryConfig::disabled())
        .build();
    let client = aws_sdk_personalizeruntime::Client::from_conf(config);

    let output = client
        .get_recommendations()
        .campaign_arn(CAMPAIGN_ARN)
        .user_id("lee")
        .num_results(4)
        .send()
        .await
        .expect("GetRecommendations");
    let ids: Vec<String> = output
        .item_list()
        .iter()
        .filter_map(|i| i.item_id().map(str::to_owned))
        .collect();
    assert_eq!(ids, fake.ranking("lee", 4));
    assert_eq!(output.recommendation_id(), Some("RID-lee"));
    let scores: Vec<f64> = output
        .item_list()
        .iter()
        .filter_map(|i| i.score())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] > w[1]),
        "best first: {scores:?}"
    );

    let input = ["item-00003", "item-00001", "item-00002"];
    let ranking = client
        .get_personalized_ranking()
        .campaign_arn(CAMPAIGN_ARN)
        .user_id("lee")
        .set_input_list(Some(input.iter().map(|s| s.to_string()).collect()))
        .send()
        .await
        .expect("GetPersonalizedRanking");
    let mut ranked: Vec<&str> = ranking
        .personalized_ranking()
        .iter()
        .filter_map(|i| i.item_id())
        .collect();
    ranked.sort();
    assert_eq!(
        ranked,
        ["item-00001", "item-00002", "item-00003"],
        "the same ids, reordered"
    );
    assert_eq!(fake.received()[1].path, "/personalize-ranking");

    let too_many = client
        .get_recommendations()
        .campaign_arn(CAMPAIGN_ARN)
        .user_id("lee")
        .num_results(501)
        .send()
        .await;
    let err = too_many.expect_err("numResults over 500 is refused");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_input_exception()),
        "{err:?}"
    );

    for (mode, code, status) in [
        (Mode::Throttle, "ThrottlingException", 400),
        (Mode::ServerError, "InternalServerError", 500),
        (Mode::MissingCampaign, "ResourceNotFoundException", 404),
    ] {
        fake.set_mode(mode.clone());
        let err = client
            .get_recommendations()
            .campaign_arn(CAMPAIGN_ARN)
            .user_id("lee")
            .send()
            .await
            .expect_err("an error mode");
        assert_eq!(err.code(), Some(code), "{mode:?}: {err:?}");
        assert_eq!(
            err.raw_response().map(|r| r.status().as_u16()),
            Some(status),
            "{mode:?}"
        );
        if mode == Mode::MissingCampaign {
            assert!(
                err.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception())
            );
        }
    }
}
