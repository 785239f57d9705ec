//! The HTTP contract, through the real router and the real SDK clients (HTTP layer mocked).
//! Each test asserts on what the adapters sent upstream as well as on what Braze gets back.

use std::time::Duration;

use crate::support::*;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::mock;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use personalize_braze::config::TargetKind;
use personalize_braze_core::item::UrlTemplates;

fn catalog() -> Table {
    Table::from([
        row(
            "a",
            &[
                ("name", s("First \"Item\", with commas")),
                ("price", n("39.99")),
                ("url", s("https://shop.example/p/a")),
                ("image", s("https://cdn.example/a.jpg")),
            ],
        ),
        row(
            "b",
            &[
                ("name", s("Zweites Stück")),
                ("price", n("19.90")),
                ("category", s("shoes")),
            ],
        ),
        row(
            "c",
            &[
                ("name", s("Third")),
                ("price", n("0.5")),
                ("in_stock", AttributeValue::Bool(true)),
            ],
        ),
        row("d", &[("name", s("Fourth")), ("price", n("1200"))]),
    ])
}

#[tokio::test]
async fn answers_items_in_personalize_order_with_exact_attributes() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["c", "gone", "a", "b"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = get(&app, "/recommendations?user_id=user-42").await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("private, max-age=300"));
    assert_eq!(
        answer.body,
        concat!(
            r#"[{"id":"c","name":"Third","price":0.5,"in_stock":true},"#,
            r#"{"id":"a","url":"https://shop.example/p/a","name":"First \"Item\", with commas","price":39.99,"image":"https://cdn.example/a.jpg"},"#,
            r#"{"id":"b","name":"Zweites Stück","price":19.90,"category":"shoes"}]"#
        )
    );

    let sent = recorded.personalize();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].campaign_arn(), Some(CAMPAIGN_ARN));
    assert_eq!(sent[0].recommender_arn(), None);
    assert_eq!(sent[0].user_id(), Some("user-42"));
    assert_eq!(
        sent[0].num_results(),
        Some(15),
        "10 by default plus the over-fetch margin"
    );
    assert_eq!(sent[0].filter_arn(), None);
    assert_eq!(recorded.dynamodb_keys(), vec![vec!["c", "gone", "a", "b"]]);
}

#[tokio::test]
async fn a_recommender_arn_is_sent_as_recommender_arn() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let setup = Setup {
        arn: Some((RECOMMENDER_ARN, TargetKind::Recommender)),
        ..Setup::default()
    };
    let app = app(setup, &[&personalize], &[&dynamodb]);

    assert_eq!(get(&app, "/recommendations?user_id=u").await.ids(), ["a"]);
    let sent = recorded.personalize();
    assert_eq!(sent[0].recommender_arn(), Some(RECOMMENDER_ARN));
    assert_eq!(sent[0].campaign_arn(), None);
}

#[tokio::test]
async fn ids_missing_from_the_catalog_are_dropped_and_the_list_still_fills() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["x1", "a", "x2", "b", "c", "d"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = get(&app, "/recommendations?user_id=u&count=3").await;

    assert_eq!(answer.ids(), ["a", "b", "c"]);
    assert_eq!(
        recorded.personalize()[0].num_results(),
        Some(8),
        "3 plus a margin of 5"
    );
}

#[tokio::test]
async fn filters_and_context_reach_personalize_escaped() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    // filter_CATEGORY=shoes,a"b and filter_CATEGORY=c\d , url-encoded as Liquid's url_param_escape would.
    let answer = get(
        &app,
        "/recommendations?user_id=u&filter=by-category&filter_CATEGORY=shoes%2Ca%22b\
         &filter_CATEGORY=c%5Cd&context_DEVICE=mobile&context_TIME_OF_DAY=morning",
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let sent = &recorded.personalize()[0];
    assert_eq!(sent.filter_arn(), Some(FILTER_ARN));
    let values = sent.filter_values().unwrap();
    assert_eq!(values.len(), 1);
    assert_eq!(values["CATEGORY"], r#""shoes","a\"b","c\\d""#);
    let context = sent.context().unwrap();
    assert_eq!(context.len(), 2);
    assert_eq!(context["DEVICE"], "mobile");
    assert_eq!(context["TIME_OF_DAY"], "morning");
}

#[tokio::test]
async fn the_default_filter_applies_unless_another_is_named() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let setup = Setup {
        default_filter: Some("not-purchased"),
        ..Setup::default()
    };
    let app = app(setup, &[&personalize], &[&dynamodb]);

    get(&app, "/recommendations?user_id=u").await;
    get(
        &app,
        "/recommendations?user_id=u&filter=by-category&filter_CATEGORY=hats",
    )
    .await;

    let sent = recorded.personalize();
    assert_eq!(sent[0].filter_arn(), Some(EXCLUDE_ARN));
    assert_eq!(sent[0].filter_values(), None);
    assert_eq!(sent[1].filter_arn(), Some(FILTER_ARN));
    assert_eq!(sent[1].filter_values().unwrap()["CATEGORY"], r#""hats""#);
}

#[tokio::test]
async fn large_counts_are_fetched_in_chunks_of_at_most_100_keys() {
    let ids: Vec<String> = (0..150).map(|i| format!("item-{i:03}")).collect();
    let table: Table = ids
        .iter()
        .filter(|id| !id.ends_with('7')) // 15 of the 150 are missing from the catalog
        .map(|id| row(id, &[("price", n("1.10"))]))
        .collect();
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let recorded = Recorded::default();
    let personalize = personalize_returns(&id_refs, &recorded);
    let dynamodb = dynamodb_serves(table, &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = get(&app, "/recommendations?user_id=u&count=100").await;

    assert_eq!(recorded.personalize()[0].num_results(), Some(120));
    let calls = recorded.dynamodb_keys();
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|keys| keys.len() <= 100),
        "{:?}",
        calls.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let mut asked: Vec<String> = calls.concat();
    asked.sort();
    assert_eq!(asked, ids, "every id asked for exactly once");

    let expected: Vec<String> = ids
        .iter()
        .filter(|id| !id.ends_with('7'))
        .take(100)
        .cloned()
        .collect();
    assert_eq!(answer.ids(), expected);
    assert!(answer.body.contains(r#""price":1.10"#));
}

#[tokio::test]
async fn unprocessed_keys_are_retried_until_they_arrive() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a", "b", "c", "d"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &["b", "d"], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = get(&app, "/recommendations?user_id=u").await;

    assert_eq!(answer.ids(), ["a", "b", "c", "d"]);
    assert_eq!(
        recorded.dynamodb_keys(),
        vec![vec!["a", "b", "c", "d"], vec!["b", "d"]]
    );
}

/// On a paused clock: no wall-clock bound for a loaded machine to break.
#[tokio::test(start_paused = true)]
async fn unprocessed_keys_that_never_drain_give_503_within_the_budget() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a", "b"], &recorded);
    let log = recorded.dynamodb.clone();
    let stuck = mock!(aws_sdk_dynamodb::Client::batch_get_item).then_compute_output(move |input| {
        log.lock().unwrap().push(input.clone());
        aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput::builder()
            .set_unprocessed_keys(input.request_items().cloned())
            .build()
    });
    let setup = Setup {
        budget: Duration::from_millis(300),
        ..Setup::default()
    };
    let app = app(setup, &[&personalize], &[&stuck]);

    let started = tokio::time::Instant::now();
    let answer = get(&app, "/recommendations?user_id=u").await;

    // The catalog stops retrying when the next wait would not fit: within the budget, however the
    // jitter falls.
    assert!(
        started.elapsed() <= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json()["error"]["code"], "upstream_throttled");
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(
        recorded.dynamodb_keys().len() > 2,
        "retried with backoff before giving up"
    );
}

#[tokio::test]
async fn url_and_image_templates_fill_what_items_lack() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a", "d"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let setup = Setup {
        templates: UrlTemplates {
            url: Some("https://shop.example/p/{id}".into()),
            image: Some("https://cdn.example/{id}.jpg".into()),
        },
        ..Setup::default()
    };
    let app = app(setup, &[&personalize], &[&dynamodb]);

    let json = get(&app, "/recommendations?user_id=u").await.json();

    assert_eq!(
        json[0]["url"], "https://shop.example/p/a",
        "stored url wins"
    );
    assert_eq!(json[1]["url"], "https://shop.example/p/d");
    assert_eq!(json[1]["image"], "https://cdn.example/d.jpg");
}

#[tokio::test]
async fn format_object_wraps_items_with_the_recommendation_id() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["b"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = get(&app, "/recommendations?user_id=u&format=object").await;

    assert_eq!(
        answer.body,
        r#"{"items":[{"id":"b","name":"Zweites Stück","price":19.90,"category":"shoes"}],"recommendation_id":"RID-1","recommender":"shop"}"#
    );
}

#[tokio::test]
async fn format_ids_answers_the_ids_of_the_items_the_catalog_has() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["b", "gone", "a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = get(&app, "/recommendations?user_id=u&format=ids").await;

    // Joined as any answer: an id the catalog lacks is not one a catalog_items lookup could use.
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, r#"["b","a"]"#)
    );
    assert_eq!(answer.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn no_recommendations_is_an_empty_list_without_a_catalog_call() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&[], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = get(&app, "/recommendations?user_id=u").await;

    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "[]")
    );
    assert_eq!(answer.header("cache-control"), Some("private, max-age=300"));
    assert_eq!(dynamodb.num_calls(), 0);
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_parameter_and_nothing_is_called() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    for (uri, parameter) in [
        ("/recommendations", "user_id"),
        ("/recommendations?user_id=a%0Ab", "user_id"),
        ("/recommendations?user_id=u&count=0", "count"),
        ("/recommendations?user_id=u&count=101", "count"),
        ("/recommendations?user_id=u&filter=nope", "filter"),
        (
            "/recommendations?user_id=u&filter=arn:aws:personalize:us-east-1:1:filter/x",
            "filter",
        ),
        (
            "/recommendations?user_id=u&filter_CATEGORY=x",
            "filter_CATEGORY",
        ),
        ("/recommendations?user_id=u&format=csv", "format"),
    ] {
        let answer = get(&app, uri).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{uri}");
        let json = answer.json();
        assert_eq!(json["error"]["code"], "invalid_parameter", "{uri}");
        assert_eq!(json["error"]["parameter"], parameter, "{uri}");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(parameter),
            "{uri}"
        );
    }
    assert_eq!(personalize.num_calls() + dynamodb.num_calls(), 0);
}

/// Each upstream failure, as the real SDK parses it off the wire, and what Braze must see.
#[tokio::test]
async fn upstream_failures_map_to_retryable_503s_or_loud_500s() {
    let recorded = Recorded::default();
    let cases: &[(&str, u16, &str, StatusCode, &str)] = &[
        (
            "personalize",
            400,
            "ThrottlingException",
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_throttled",
        ),
        (
            "personalize",
            500,
            "InternalServerError",
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
        ),
        (
            "personalize",
            503,
            "ServiceUnavailable",
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
        ),
        (
            "personalize",
            404,
            "ResourceNotFoundException",
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured",
        ),
        (
            "personalize",
            403,
            "AccessDeniedException",
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured",
        ),
        (
            "personalize",
            400,
            "InvalidInputException",
            StatusCode::BAD_REQUEST,
            "rejected_by_recommender",
        ),
        (
            "dynamodb",
            400,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_throttled",
        ),
        (
            "dynamodb",
            500,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
        ),
        (
            "dynamodb",
            400,
            "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured",
        ),
        (
            "dynamodb",
            400,
            "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured",
        ),
    ];
    for (upstream, status, error_type, expected, code) in cases {
        let status = *status;
        let (for_personalize, for_dynamodb) = (error_type.to_string(), error_type.to_string());
        let failing_personalize = mock!(aws_sdk_personalizeruntime::Client::get_recommendations)
            .then_http_response(move || http_error(status, &for_personalize));
        let failing_dynamodb = mock!(aws_sdk_dynamodb::Client::batch_get_item)
            .then_http_response(move || http_error(status, &for_dynamodb));
        let working_personalize = personalize_returns(&["a"], &recorded);
        let working_dynamodb = dynamodb_serves(catalog(), &[], &recorded);
        let app = if *upstream == "personalize" {
            app(
                Setup::default(),
                &[&failing_personalize],
                &[&working_dynamodb],
            )
        } else {
            app(
                Setup::default(),
                &[&working_personalize],
                &[&failing_dynamodb],
            )
        };

        let answer = get(&app, "/recommendations?user_id=u").await;

        let what = format!("{upstream} {status} {code}");
        assert_eq!(answer.status, *expected, "{what}: {}", answer.body);
        assert_eq!(answer.json()["error"]["code"], *code, "{what}");
        assert_eq!(answer.header("cache-control"), Some("no-store"), "{what}");
        let retry_after = answer.header("retry-after");
        assert_eq!(
            retry_after.is_some(),
            *expected == StatusCode::SERVICE_UNAVAILABLE,
            "{what}"
        );
        for secret in ["arn:", "REQ-0000", "secret detail", "Exception", "panicked"] {
            assert!(
                !answer.body.contains(secret),
                "{what} leaked {secret}: {}",
                answer.body
            );
        }
    }
}

#[tokio::test]
async fn health_unknown_routes_and_wrong_methods_answer_json() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let health = get(&app, "/health").await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    let missing = get(&app, "/recommendation?user_id=u").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "not_found");

    let post = send(
        &app,
        Request::post("/recommendations?user_id=u")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.json()["error"]["code"], "method_not_allowed");
    assert_eq!(personalize.num_calls(), 0);
}

/// Personalize may repeat an id, and 150 ids need two BatchGetItem calls: the catalog asks for
/// each id once, at most 100 at a time (the mock fails the test otherwise, as DynamoDB would).
#[tokio::test]
async fn repeated_ids_are_fetched_once_and_at_most_100_at_a_time() {
    let recorded = Recorded::default();
    let mut ids: Vec<String> = (0..150).map(|i| format!("i{i}")).collect();
    ids.extend(["i0".to_owned(), "i1".to_owned(), "i149".to_owned()]);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let personalize = personalize_returns(&ids, &recorded);
    let table = Table::from([
        row("i1", &[("name", s("One"))]),
        row("i149", &[("name", s("Last"))]),
    ]);
    let dynamodb = dynamodb_serves(table, &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = get(&app, "/recommendations?user_id=u&count=100").await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.ids(), ["i1", "i149"]);
    let calls = recorded.dynamodb_keys();
    assert_eq!(calls.len(), 2);
    let mut asked = calls.concat();
    asked.sort();
    let asked_len = asked.len();
    asked.dedup();
    assert_eq!(
        (asked_len, asked.len()),
        (150, 150),
        "every distinct id, once"
    );
}
