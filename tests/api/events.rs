//! The `events/` fixtures (what `sam local invoke -e` and `cargo lambda invoke` send), decoded by
//! lambda_http exactly as in Lambda and answered by the real router.

use crate::support::*;
use axum::body::Body;
use axum::http::StatusCode;

fn catalog() -> Table {
    Table::from([
        row("a", &[("name", s("Alpha")), ("price", n("10.00"))]),
        row("b", &[("name", s("Beta")), ("price", n("0.5"))]),
        row("c", &[("name", s("Gamma")), ("price", n("1200"))]),
    ])
}

/// Decodes an API Gateway / function URL event the way lambda_http does inside Lambda.
fn event(json: &str) -> axum::http::Request<Body> {
    let request = lambda_http::request::from_str(json).expect("a valid API Gateway event");
    request.map(Body::new)
}

fn fixture(name: &str) -> String {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn rest_api_event_with_its_stage_prefix_is_routed() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["b", "a", "c", "x"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let request = event(&fixture("rest-api-get.json"));
    // lambda_http puts the stage in front of the path unless told otherwise; either must route.
    assert!(
        request.uri().path().ends_with("/recommendations"),
        "{}",
        request.uri()
    );
    let answer = send(&app, request).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        r#"[{"id":"b","name":"Beta","price":0.5},{"id":"a","name":"Alpha","price":10.00},{"id":"c","name":"Gamma","price":1200}]"#
    );
    assert_eq!(recorded.personalize()[0].user_id(), Some("user-42"));
    assert_eq!(recorded.personalize()[0].num_results(), Some(8));
}

#[tokio::test]
async fn rest_api_event_with_repeated_filter_values() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = send(&app, event(&fixture("rest-api-filtered.json"))).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let sent = &recorded.personalize()[0];
    assert_eq!(sent.filter_arn(), Some(FILTER_ARN));
    assert_eq!(
        sent.filter_values().unwrap()["CATEGORY"],
        r#""shoes","men's \"formal\"""#
    );
    assert_eq!(sent.context().unwrap()["DEVICE"], "mobile");
}

#[tokio::test]
async fn http_api_event_answers_the_object_form() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["c", "a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = send(&app, event(&fixture("http-api-get.json"))).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        r#"{"items":[{"id":"c","name":"Gamma","price":1200},{"id":"a","name":"Alpha","price":10.00}],"recommendation_id":"RID-1","recommender":"shop"}"#
    );
    assert_eq!(answer.header("cache-control"), Some("private, max-age=300"));
}

#[tokio::test]
async fn http_api_named_stage_in_the_raw_path_is_routed() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let json = fixture("http-api-get.json")
        .replace(
            r#""rawPath": "/recommendations""#,
            r#""rawPath": "/live/recommendations""#,
        )
        .replace(r#""stage": "$default""#, r#""stage": "live""#);
    let answer = send(&app, event(&json)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    // Only the stage is stripped: another first segment is still an unknown route.
    let json = json.replace("/live/recommendations", "/other/recommendations");
    assert_eq!(send(&app, event(&json)).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_request_event_gets_a_400_and_no_upstream_call() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    let answer = send(&app, event(&fixture("rest-api-bad-request.json"))).await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let json = answer.json();
    assert_eq!(json["error"]["code"], "invalid_parameter");
    assert_eq!(json["error"]["parameter"], "user_id");
    assert_eq!(personalize.num_calls(), 0);
}

#[tokio::test]
async fn rest_api_events_for_the_other_endpoints_are_routed() {
    use aws_sdk_personalizeevents::operation::put_events::PutEventsOutput;
    use aws_sdk_personalizeruntime::operation::get_personalized_ranking::GetPersonalizedRankingOutput;
    use aws_sdk_personalizeruntime::types::PredictedItem;
    use aws_smithy_mocks::mock;

    let recorded = Recorded::default();
    let related = personalize_returns(&["sku-1001", "a", "b"], &recorded);
    let ranking = mock!(aws_sdk_personalizeruntime::Client::get_personalized_ranking)
        .then_compute_output(|input| {
            let ranked = input.input_list().iter().rev();
            GetPersonalizedRankingOutput::builder()
                .set_personalized_ranking(Some(
                    ranked
                        .map(|id| PredictedItem::builder().item_id(id).build())
                        .collect(),
                ))
                .build()
        });
    let put_events = mock!(aws_sdk_personalizeevents::Client::put_events)
        .then_output(|| PutEventsOutput::builder().build());
    let catalog = Table::from([
        row("a", &[("name", s("Alpha"))]),
        row("b", &[("name", s("Beta"))]),
        row("sku-1001", &[("name", s("Source"))]),
        row("sku-1002", &[("name", s("Two"))]),
    ]);
    let dynamodb = dynamodb_serves(catalog, &[], &recorded);
    let setup = Setup {
        related_items: Some(CAMPAIGN_ARN),
        ranking: Some(CAMPAIGN_ARN),
        event_tracker: Some("tracker"),
        ..Setup::default()
    };
    let app = app_with_events(setup, &[&related, &ranking], &[&dynamodb], &[&put_events]);

    let answer = send(&app, event(&fixture("rest-api-related-items.json"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.ids(), ["a", "b"]);
    assert_eq!(recorded.personalize()[0].item_id(), Some("sku-1001"));

    let answer = send(&app, event(&fixture("rest-api-rankings-post.json"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        r#"{"items":[{"id":"sku-1002","name":"Two"},{"id":"sku-1001","name":"Source"}],"recommendation_id":null}"#
    );

    let answer = send(&app, event(&fixture("rest-api-events-post.json"))).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body, r#"{"accepted":2}"#);
    assert_eq!(put_events.num_calls(), 1, "one user, one session: one call");
}
