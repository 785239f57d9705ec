//! `/related-items`, `/rankings`, `/events` and metadata from Personalize, through the real
//! router and the real SDK clients (HTTP layer mocked): what each sends upstream, what Braze
//! gets back, and the 404 that names the setting an endpoint needs.

use std::sync::{Arc, Mutex};

use crate::support::*;
use aws_sdk_personalizeevents::operation::put_events::{PutEventsInput, PutEventsOutput};
use aws_sdk_personalizeruntime::operation::get_personalized_ranking::{
    GetPersonalizedRankingInput, GetPersonalizedRankingOutput,
};
use aws_sdk_personalizeruntime::operation::get_recommendations::GetRecommendationsOutput;
use aws_sdk_personalizeruntime::types::PredictedItem;
use aws_smithy_mocks::{Rule, mock};
use axum::body::Body;
use axum::http::{Request, StatusCode};

const RELATED_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/sims";
const RANKING_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/ranking";
const TRACKER: &str = "tracker-0001";

fn catalog() -> Table {
    Table::from([
        row("a", &[("name", s("Alpha")), ("price", n("10"))]),
        row("b", &[("name", s("Bravo")), ("price", n("20.50"))]),
        row("c", &[("name", s("Charlie"))]),
        row("d", &[("name", s("Delta"))]),
    ])
}

fn everything() -> Setup {
    Setup {
        related_items: Some(RELATED_ARN),
        ranking: Some(RANKING_ARN),
        event_tracker: Some(TRACKER),
        ..Setup::default()
    }
}

/// GetPersonalizedRanking answering the input list reversed, recording each request.
fn ranking_reverses(log: &Arc<Mutex<Vec<GetPersonalizedRankingInput>>>) -> Rule {
    let log = log.clone();
    mock!(aws_sdk_personalizeruntime::Client::get_personalized_ranking).then_compute_output(
        move |input| {
            log.lock().unwrap().push(input.clone());
            let ranked = input
                .input_list()
                .iter()
                .rev()
                .map(|id| PredictedItem::builder().item_id(id).build())
                .collect();
            GetPersonalizedRankingOutput::builder()
                .set_personalized_ranking(Some(ranked))
                .recommendation_id("RID-rank")
                .build()
        },
    )
}

fn put_events_accepts(log: &Arc<Mutex<Vec<PutEventsInput>>>) -> Rule {
    let log = log.clone();
    mock!(aws_sdk_personalizeevents::Client::put_events).then_compute_output(move |input| {
        log.lock().unwrap().push(input.clone());
        PutEventsOutput::builder().build()
    })
}

async fn post(app: &axum::Router, uri: &str, body: impl Into<Body>) -> Answer {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    send(app, request).await
}

#[tokio::test]
async fn related_items_ask_the_related_campaign_for_the_item_and_drop_it_from_the_answer() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["b", "a", "c", "d"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(everything(), &[&personalize], &[&dynamodb]);

    let answer = get(
        &app,
        "/related-items?item_id=b&count=2&user_id=u7&filter=by-category&filter_CATEGORY=shoes&context_DEVICE=web",
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.ids(), ["a", "c"], "b is the item itself");
    assert_eq!(answer.header("cache-control"), Some("private, max-age=300"));
    let sent = &recorded.personalize()[0];
    assert_eq!(sent.campaign_arn(), Some(RELATED_ARN));
    assert_eq!(sent.item_id(), Some("b"));
    assert_eq!(sent.user_id(), Some("u7"));
    assert_eq!(sent.num_results(), Some(7), "2 plus the margin");
    assert_eq!(sent.filter_arn(), Some(FILTER_ARN));
    assert_eq!(
        sent.filter_values()
            .unwrap()
            .get("CATEGORY")
            .map(String::as_str),
        Some(r#""shoes""#)
    );
    assert_eq!(
        sent.context().unwrap().get("DEVICE").map(String::as_str),
        Some("web")
    );
    assert_eq!(sent.metadata_columns(), None);

    // Without a user, no userId is sent at all, and the answer is the same for every caller:
    // shared caches may keep it. With one, only the caller's own cache may.
    let answer = get(&app, "/related-items?item_id=b").await;
    assert_eq!(recorded.personalize()[1].user_id(), None);
    assert_eq!(answer.header("cache-control"), Some("public, max-age=300"));
}

#[tokio::test]
async fn rankings_come_back_in_personal_order_without_unknown_ids_by_get_or_post() {
    let recorded = Recorded::default();
    let log = Arc::new(Mutex::new(Vec::new()));
    let ranking = ranking_reverses(&log);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(everything(), &[&ranking], &[&dynamodb]);

    let answer = get(
        &app,
        "/rankings?user_id=u1&item_ids=a,gone,c,b&format=object",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let json = answer.json();
    let ids: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "c", "a"], "reversed, and `gone` dropped");
    assert_eq!(json["recommendation_id"], "RID-rank");
    assert_eq!(answer.header("cache-control"), Some("private, max-age=300"));
    {
        let sent = &log.lock().unwrap()[0];
        assert_eq!(sent.campaign_arn(), Some(RANKING_ARN));
        assert_eq!(sent.user_id(), Some("u1"));
        assert_eq!(sent.input_list(), ["a", "gone", "c", "b"]);
    }

    // A long list as a JSON body; ids with commas stay whole. POSTs are not cached.
    let mut ids: Vec<String> = (0..498).map(|i| format!("x{i}")).collect();
    ids.extend(["a".into(), "d,1".into()]);
    let body = serde_json::json!({ "user_id": "u1", "item_ids": ids, "count": 1, "context_DEVICE": "ios" });
    let answer = post(&app, "/rankings", body.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.ids(),
        ["a"],
        "count keeps the best one the catalog has"
    );
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let sent = &log.lock().unwrap()[1];
    assert_eq!(sent.input_list().len(), 500);
    assert_eq!(sent.input_list()[499], "d,1");
    assert_eq!(
        sent.context().unwrap().get("DEVICE").map(String::as_str),
        Some("ios")
    );
}

#[tokio::test]
async fn ranking_input_is_validated_and_bodies_are_bounded() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let ranking = ranking_reverses(&log);
    let app = app(everything(), &[&ranking], &[]);

    let too_many: Vec<String> = (0..501).map(|i| format!("i{i}")).collect();
    let cases = [
        ("/rankings?user_id=u", None, "item_ids"),
        ("/rankings?item_ids=a", None, "user_id"),
        (
            "/rankings",
            Some(serde_json::json!({"user_id": "u", "item_ids": too_many}).to_string()),
            "item_ids",
        ),
        ("/rankings", Some("{not json".to_owned()), "body"),
        // An empty id would reach BatchGetItem as a key, and come back as a 500.
        (
            "/rankings",
            Some(r#"{"user_id":"u","item_ids":["a",""]}"#.to_owned()),
            "item_ids",
        ),
        (
            "/rankings",
            Some(format!(
                r#"{{"user_id":"u","item_ids":["{}"]}}"#,
                "x".repeat(257)
            )),
            "item_ids",
        ),
        (
            "/rankings",
            Some(r#"{"user_id":"u","item_ids":["a"],"filter":"nope"}"#.to_owned()),
            "filter",
        ),
    ];
    for (uri, body, parameter) in cases {
        let answer = match &body {
            None => get(&app, uri).await,
            Some(body) => post(&app, uri, body.clone()).await,
        };
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri} {body:?}");
        assert_eq!(answer.json()["error"]["parameter"], parameter, "{body:?}");
    }

    let huge = format!(
        r#"{{"user_id":"u","item_ids":["{}"]}}"#,
        "x".repeat(300 * 1024)
    );
    let answer = post(&app, "/rankings", huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["error"]["code"], "body_too_large");
    assert_eq!(ranking.num_calls(), 0);
}

/// PutEvents takes one user and one session a call: a user in two sessions is two calls, and
/// anonymous visitors sharing a session are one call without a user.
#[tokio::test]
async fn events_are_grouped_by_user_and_session_not_by_user_alone() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let put_events = put_events_accepts(&log);
    let app = app_with_events(everything(), &[], &[], &[&put_events]);

    let body = r#"[
        {"user_id":"u1","session_id":"s1","event_type":"click","item_id":"a"},
        {"user_id":"u1","session_id":"s2","event_type":"click","item_id":"b"},
        {"session_id":"anon-1","event_type":"view","item_id":"c"},
        {"user_id":"u1","session_id":"s1","event_type":"view","item_id":"d"},
        {"session_id":"anon-1","event_type":"view","item_id":"e"}
    ]"#;
    let answer = post(&app, "/events", body).await;

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body, r#"{"accepted":5}"#);
    let mut calls: Vec<(Option<String>, String, Vec<String>)> = log
        .lock()
        .unwrap()
        .iter()
        .map(|call| {
            let items = call
                .event_list()
                .iter()
                .map(|e| e.item_id().unwrap_or_default().to_owned())
                .collect();
            (
                call.user_id().map(str::to_owned),
                call.session_id().unwrap_or_default().to_owned(),
                items,
            )
        })
        .collect();
    calls.sort();
    let strings = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        calls,
        [
            (None, "anon-1".to_owned(), strings(&["c", "e"])),
            (Some("u1".to_owned()), "s1".to_owned(), strings(&["a", "d"])),
            (Some("u1".to_owned()), "s2".to_owned(), strings(&["b"])),
        ]
    );
}

#[tokio::test]
async fn events_become_one_put_events_call_per_user_and_session() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let put_events = put_events_accepts(&log);
    let app = app_with_events(everything(), &[], &[], &[&put_events]);

    let body = r#"[
        {"event_id":"e-1","user_id":"u1","event_type":"click","item_id":"a","recommendation_id":"RID-1",
         "sent_at":1795000000,"properties":{"channel":"email"}},
        {"user_id":"u2","event_type":"purchase","item_id":"b","event_value":"19.5",
         "impression":["a","b"],"sent_at":"2026-11-28T12:00:00Z"},
        {"user_id":"u1","event_type":"view","item_id":"c","sent_at":1795000001}
    ]"#;
    let answer = post(&app, "/events", body).await;

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    assert_eq!(answer.body, r#"{"accepted":3}"#);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let mut sent = log.lock().unwrap().clone();
    sent.sort_by_key(|call| call.user_id().map(str::to_owned));
    assert_eq!(sent.len(), 2);
    let u1 = &sent[0];
    assert_eq!(u1.tracking_id(), Some(TRACKER));
    assert_eq!(
        (u1.user_id(), u1.session_id()),
        (Some("u1"), Some("u1")),
        "the session defaults to the user"
    );
    let events = u1.event_list();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type(), "click");
    assert_eq!(events[0].event_id(), Some("e-1"));
    assert_eq!(events[0].item_id(), Some("a"));
    assert_eq!(events[0].recommendation_id(), Some("RID-1"));
    assert_eq!(events[0].properties(), Some(r#"{"channel":"email"}"#));
    assert_eq!(events[0].sent_at().secs(), 1_795_000_000);
    assert_eq!(events[1].event_type(), "view");
    let u2 = &sent[1].event_list()[0];
    assert_eq!(u2.event_value(), Some(19.5));
    assert_eq!(u2.impression(), ["a", "b"]);
    assert_eq!(u2.sent_at().secs(), 1_795_867_200);
}

#[tokio::test]
async fn bad_events_are_400s_naming_the_field_and_nothing_is_sent() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let put_events = put_events_accepts(&log);
    let app = app_with_events(everything(), &[], &[], &[&put_events]);

    for (body, field) in [
        (r#"{"user_id":"u"}"#, "event_type"),
        (
            r#"[{"user_id":"u","event_type":"v"},{"user_id":"u","event_type":"v","sent_at":"soon"}]"#,
            "events[1].sent_at",
        ),
        (r#"{"user":"u","event_type":"v"}"#, "user"),
        ("", "body"),
        (
            r#"{"user_id":"u","event_type":"v","impression":["a",""]}"#,
            "impression",
        ),
    ] {
        let answer = post(&app, "/events", body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.json()["error"]["parameter"], field, "{body}");
    }
    let answer = get(&app, "/events").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.body.contains("Use POST"), "{}", answer.body);
    assert_eq!(answer.header("allow"), Some("POST"));
    let delete = Request::delete("/rankings").body(Body::empty()).unwrap();
    let answer = send(&app, delete).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.header("allow"), Some("GET, POST"));
    assert!(answer.body.contains("Use GET or POST"), "{}", answer.body);
    assert_eq!(put_events.num_calls(), 0);
}

/// POST bodies must be declared JSON: a form or `text/plain` body (what a web page can post
/// cross-site without asking) is a 415 in the usual error shape, and nothing is sent.
#[tokio::test]
async fn post_bodies_not_declared_json_are_415s() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let put_events = put_events_accepts(&log);
    let ranking_log = Arc::new(Mutex::new(Vec::new()));
    let ranking = ranking_reverses(&ranking_log);
    let app = app_with_events(everything(), &[&ranking], &[], &[&put_events]);
    let event = r#"{"user_id":"u","event_type":"click","item_id":"a"}"#;
    let ranking_body = r#"{"user_id":"u","item_ids":["a","b"]}"#;

    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonp"),
    ] {
        for (uri, body) in [("/events", event), ("/rankings", ranking_body)] {
            let mut request = Request::post(uri);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let answer = send(&app, request.body(Body::from(body)).unwrap()).await;
            assert_eq!(
                answer.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{uri} {content_type:?}"
            );
            let json = answer.json();
            assert_eq!(json["error"]["code"], "unsupported_media_type");
            assert!(
                json["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("Content-Type: application/json"),
                "{json}"
            );
        }
    }
    assert_eq!(put_events.num_calls(), 0);
    assert_eq!(ranking.num_calls(), 0);

    // Parameters and case do not matter.
    let request = Request::post("/events")
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Body::from(event))
        .unwrap();
    assert_eq!(send(&app, request).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn put_events_failures_map_like_every_upstream_failure() {
    for (status, error_type, expected) in [
        (400, "ThrottlingException", StatusCode::SERVICE_UNAVAILABLE),
        (500, "InternalServerError", StatusCode::SERVICE_UNAVAILABLE),
        (400, "InvalidInputException", StatusCode::BAD_REQUEST),
        (
            404,
            "ResourceNotFoundException",
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
    ] {
        let error_type = error_type.to_owned();
        let failing = mock!(aws_sdk_personalizeevents::Client::put_events)
            .then_http_response(move || http_error(status, &error_type));
        let app = app_with_events(everything(), &[], &[], &[&failing]);
        let answer = post(&app, "/events", r#"{"user_id":"u","event_type":"v"}"#).await;
        assert_eq!(answer.status, expected, "{status}: {}", answer.body);
        assert_eq!(
            answer.header("retry-after").is_some(),
            expected == StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(!answer.body.contains("arn:") && !answer.body.contains("REQ-0000"));
    }
}

#[tokio::test]
async fn an_endpoint_without_its_setting_is_a_404_naming_the_setting() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let only_related = Setup {
        arn: None,
        related_items: Some(RELATED_ARN),
        ..Setup::default()
    };
    let app = app(only_related, &[&personalize], &[&dynamodb]);

    for (method, uri, setting) in [
        ("GET", "/recommendations?user_id=u", "PERSONALIZE_ARN"),
        ("GET", "/rankings?user_id=u&item_ids=a", "RANKING_ARN"),
        ("POST", "/rankings", "RANKING_ARN"),
        ("POST", "/events", "EVENT_TRACKER_ID"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(r#"{"user_id":"u","event_type":"v"}"#))
            .unwrap();
        let answer = send(&app, request).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        let json = answer.json();
        assert_eq!(json["error"]["code"], "not_enabled", "{uri}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("set {setting}")), "{message}");
    }
    assert_eq!(personalize.num_calls(), 0);
    assert_eq!(get(&app, "/related-items?item_id=z").await.ids(), ["a"]);
}

#[tokio::test]
async fn metadata_from_personalize_skips_dynamodb_and_keeps_the_shape() {
    let recorded = Recorded::default();
    let log = recorded.personalize.clone();
    let personalize = mock!(aws_sdk_personalizeruntime::Client::get_recommendations)
        .then_compute_output(move |input| {
            log.lock().unwrap().push(input.clone());
            let item = |id: &str, name: &str, price: &str| {
                PredictedItem::builder()
                    .item_id(id)
                    .metadata("NAME", name)
                    .metadata("PRICE", price)
                    .build()
            };
            GetRecommendationsOutput::builder()
                .item_list(item("a", "Alpha \"A\"", "10.50"))
                .item_list(item("b", "Bravo", "n/a"))
                .recommendation_id("RID-m")
                .build()
        });
    let setup = Setup {
        ranking: Some(RANKING_ARN),
        metadata_columns: Some(&["NAME", "PRICE"]),
        templates: personalize_braze_core::item::UrlTemplates {
            url: Some("https://shop.example/p/{id}".into()),
            image: None,
        },
        ..Setup::default()
    };
    // No DynamoDB rule: a BatchGetItem call would fail the request.
    let app = app(setup, &[&personalize], &[]);

    // MAX_COUNT is 50 here; the over-fetch margin would ask for 60.
    let answer = get(&app, "/recommendations?user_id=u&count=50").await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body,
        concat!(
            r#"[{"id":"a","url":"https://shop.example/p/a","name":"Alpha \"A\"","price":10.50},"#,
            r#"{"id":"b","url":"https://shop.example/p/b","name":"Bravo","price":"n/a"}]"#
        )
    );
    let sent = &recorded.personalize()[0];
    assert_eq!(
        sent.num_results(),
        Some(50),
        "Personalize's cap with metadata"
    );
    assert_eq!(
        sent.metadata_columns().unwrap().get("ITEMS").unwrap(),
        &["NAME".to_owned(), "PRICE".to_owned()]
    );

    // Rankings with metadata take at most 50 ids, as GetPersonalizedRanking does.
    let ids: Vec<String> = (0..51).map(|i| format!("i{i}")).collect();
    let answer = get(
        &app,
        &format!("/rankings?user_id=u&item_ids={}", ids.join(",")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.json()["error"]["parameter"], "item_ids");
    assert!(answer.body.contains("at most 50"), "{}", answer.body);
}

/// The limits the README states, each at its edge: the last value taken and the first refused.
#[tokio::test]
async fn the_readme_limits_hold_at_their_edges() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["a", "b"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let log = Arc::new(Mutex::new(Vec::new()));
    let put_events = put_events_accepts(&log);
    let setup = Setup {
        extra: vec![("CACHE_MAX_AGE", "900")],
        ..everything()
    };
    let app = app_with_events(setup, &[&personalize], &[&dynamodb], &[&put_events]);
    let status = |answer: &Answer| (answer.status, answer.json()["error"]["parameter"].clone());

    // 150 context keys, then 151.
    let context = |n: usize| {
        (0..n)
            .map(|i| format!("&context_K{i}=v"))
            .collect::<String>()
    };
    let answer = get(&app, &format!("/recommendations?user_id=u{}", context(150))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // A non-default CACHE_MAX_AGE reaches the header.
    assert_eq!(answer.header("cache-control"), Some("private, max-age=900"));
    let answer = get(&app, &format!("/recommendations?user_id=u{}", context(151))).await;
    assert_eq!(
        status(&answer),
        (StatusCode::BAD_REQUEST, "context_K150".into())
    );

    // 25 filter_ parameters, then 26.
    let filters = |n: usize| {
        (0..n)
            .map(|i| format!("&filter_P{i}=v"))
            .collect::<String>()
    };
    let query = |n| {
        format!(
            "/recommendations?user_id=u&filter=not-purchased{}",
            filters(n)
        )
    };
    assert_eq!(get(&app, &query(25)).await.status, StatusCode::OK);
    assert_eq!(
        status(&get(&app, &query(26)).await),
        (StatusCode::BAD_REQUEST, "filter_P25".into())
    );

    // 25 impressions, then 26.
    let impressions = |n: usize| {
        (0..n)
            .map(|i| format!("i{i}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let event = |n| {
        format!(
            r#"{{"user_id":"u","event_type":"view","impression":"{}"}}"#,
            impressions(n)
        )
    };
    assert_eq!(
        post(&app, "/events", event(25)).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        status(&post(&app, "/events", event(26)).await),
        (StatusCode::BAD_REQUEST, "impression".into())
    );

    // A body over 256 KiB on /events, as on /rankings.
    let big = format!(
        r#"{{"user_id":"u","event_type":"{}"}}"#,
        "v".repeat(256 * 1024)
    );
    let answer = post(&app, "/events", big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.json()["error"]["code"], "body_too_large");
    assert_eq!(
        put_events.num_calls(),
        1,
        "only the 25-impression event was sent"
    );

    // GET-only routes say so in Allow.
    for path in ["/recommendations", "/related-items", "/health"] {
        let answer = post(&app, path, "{}").await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(answer.header("allow"), Some("GET"), "{path}");
    }
}
