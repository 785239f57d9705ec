//! `/related-items`, `/rankings`, `/events` and metadata from Personalize, end to end: the
//! service binary, its real SDK clients, DynamoDB Local and the fake Personalize (which also
//! plays the events service).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use super::Stack;
use super::catalog::{self, IMAGE_TEMPLATE, URL_TEMPLATE, expected_list};
use super::fake_personalize::{FakePersonalize, Mode};

const RELATED_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/similar";
const RANKING_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/ranking";
const TRACKER: &str = "5b1c8f0e-tracker";

/// Every endpoint enabled.
pub(super) async fn full_stack(extra: &[(&str, &str)]) -> Stack {
    let mut vars = vec![
        ("RELATED_ITEMS_ARN", RELATED_ARN),
        ("RANKING_ARN", RANKING_ARN),
        ("EVENT_TRACKER_ID", TRACKER),
    ];
    vars.extend_from_slice(extra);
    Stack::start(&vars).await
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// "More like this" for a cart: one GetRecommendations per seed, the lists merged round-robin
/// without the seeds or repeats, `count` applying to the merged list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_items_for_several_seeds_merge_their_lists_round_robin() {
    let stack = full_stack(&[]).await;
    let seeds = ["item-00042", "item-00007", "item-00100"];

    let answer = stack
        .get(&format!(
            "/related-items?item_ids={}&count=7",
            seeds.join(",")
        ))
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let received = stack.fake.received();
    let mut asked: Vec<&str> = received
        .iter()
        .map(|r| r.body["itemId"].as_str().unwrap())
        .collect();
    asked.sort();
    assert_eq!(asked, ["item-00007", "item-00042", "item-00100"]);
    assert!(
        received.iter().all(|r| r.body["numResults"] == 12),
        "7 plus the margin each"
    );
    // Expected by hand from the fake's lists: rank by rank across the seeds, in the seeds' order.
    let lists: Vec<Vec<String>> = seeds.iter().map(|s| stack.fake.related(s, 12)).collect();
    let mut expected: Vec<String> = Vec::new();
    for rank in 0..12 {
        for list in &lists {
            let id = &list[rank];
            if !seeds.contains(&id.as_str()) && !expected.contains(id) {
                expected.push(id.clone());
            }
        }
    }
    expected.truncate(7);
    assert_eq!(answer.body, expected_list(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_items_come_from_the_related_campaign_and_never_include_the_item() {
    let stack = full_stack(&[]).await;

    let answer = stack.get("/related-items?item_id=item-00042&count=5").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    // The fake puts the item itself first, as a careless campaign might; 5 + 5 are asked for.
    let related = stack.fake.related("item-00042", 10);
    assert_eq!(related[0], "item-00042");
    assert_eq!(answer.body, expected_list(&related[1..6]));
    let body = &stack.fake.received()[0].body;
    assert_eq!(body["campaignArn"], RELATED_ARN);
    assert_eq!(body["itemId"], "item-00042");
    assert_eq!(body["numResults"], 10);
    assert!(body.get("userId").is_none(), "{body}");

    let answer = stack
        .get("/related-items?item_id=item-00042&user_id=zoe&count=2&format=object&filter=by-category&filter_CATEGORY=hats")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["recommendation_id"], "RID-item-00042");
    let body = &stack.fake.received()[1].body;
    assert_eq!(body["userId"], "zoe");
    assert_eq!(body["filterValues"]["CATEGORY"], r#""hats""#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rankings_answer_the_given_items_in_personal_order_by_get_and_post() {
    let stack = full_stack(&[]).await;

    let given = strings(&["item-00003", "ghost-1", "item-00001", "item-00002"]);
    let answer = stack
        .get("/rankings?user_id=uma&item_ids=item-00003,ghost-1,item-00001,item-00002")
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let mut expected = stack.fake.personal_order("uma", &given);
    expected.retain(|id| id != "ghost-1");
    assert_eq!(answer.body, expected_list(&expected));
    let body = &stack.fake.received()[0].body;
    assert_eq!(body["campaignArn"], RANKING_ARN);
    assert_eq!(body["userId"], "uma");
    assert_eq!(body["inputList"].as_array().unwrap().len(), 4);

    // 500 ids, a fifth unknown to the catalog, as a body; count keeps the best 20 known.
    let given: Vec<String> = (0..500)
        .map(|i| match i % 5 {
            0 => format!("ghost-{i}"),
            _ => format!("item-{:05}", i * 3),
        })
        .collect();
    let body = serde_json::json!({ "user_id": "uma", "item_ids": given, "count": 20 });
    let answer = stack.post("/rankings", &body.to_string()).await;

    assert_eq!(
        answer.status,
        200,
        "{}",
        &answer.body[..answer.body.len().min(300)]
    );
    let expected: Vec<String> = stack
        .fake
        .personal_order("uma", &given)
        .into_iter()
        .filter(|id| !id.starts_with("ghost"))
        .take(20)
        .collect();
    assert_eq!(answer.body, expected_list(&expected));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(
        stack.fake.received()[1].body["inputList"]
            .as_array()
            .unwrap()
            .len(),
        500
    );
}

/// An empty id in any list is the caller's mistake: a 400 naming it, before any AWS call (as a
/// BatchGetItem key it came back as a 500 and an ERROR log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_ids_in_any_list_are_400s_that_reach_no_upstream() {
    let stack = full_stack(&[]).await;
    let long = "x".repeat(257);
    let cases = [
        (
            r#"{"user_id":"u","item_ids":[""]}"#.to_owned(),
            "/rankings",
            "item_ids",
        ),
        (
            r#"{"user_id":"u","item_ids":["a"," ",""]}"#.to_owned(),
            "/rankings",
            "item_ids",
        ),
        (
            format!(r#"{{"user_id":"u","item_ids":["{long}"]}}"#),
            "/rankings",
            "item_ids",
        ),
        (
            r#"{"user_id":"u","event_type":"click","impression":["a",""]}"#.to_owned(),
            "/events",
            "impression",
        ),
        (
            format!(r#"{{"user_id":"u","event_type":"click","item_id":"{long}"}}"#),
            "/events",
            "item_id",
        ),
    ];
    for (body, route, parameter) in &cases {
        let answer = stack.post(route, body).await;
        assert_eq!(answer.status, 400, "{route} {body}: {}", answer.body);
        assert_eq!(answer.json()["error"]["parameter"], *parameter, "{body}");
    }
    assert!(stack.fake.received().is_empty());
    let log = stack.service.log();
    assert!(!log.contains(r#""level":"ERROR""#), "{log}");
}

/// Braze retries a webhook whose answer is a 5xx with the same body. When one session's
/// PutEvents fails, the others' events are already recorded; the retry must not have
/// Personalize train on them twice. So every event carries an id, the same in both posts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_failed_body_sent_again_carries_the_same_event_ids() {
    let stack = full_stack(&[]).await;
    stack.fake.set_mode(Mode::FailSession("bea".into()));
    let body = r#"[
        {"user_id":"ann","event_type":"click","item_id":"item-00001"},
        {"user_id":"ann","event_type":"purchase","item_id":"item-00001","sent_at":1795000000},
        {"user_id":"bea","event_type":"click","item_id":"item-00002"},
        {"user_id":"cid","event_id":"order-77","event_type":"purchase","item_id":"item-00003"}
    ]"#;

    // Event ids per post, keyed by session, type and item, from what the fake received.
    let mut ids_by_post: Vec<HashMap<String, String>> = Vec::new();
    for _ in 0..2 {
        let before = stack.fake.received().len();
        let answer = stack.post("/events", body).await;
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(answer.header("retry-after"), Some("1"));
        let json = answer.json();
        assert_eq!(json["error"]["code"], "upstream_unavailable", "{json}");
        assert_eq!(json["accepted"], 3, "ann's two and cid's one: {json}");

        let mut ids = HashMap::new();
        let mut sessions = Vec::new();
        for received in &stack.fake.received()[before..] {
            assert_eq!(received.path, "/events");
            let session = received.body["sessionId"].as_str().unwrap().to_owned();
            for event in received.body["eventList"].as_array().unwrap() {
                let id = event["eventId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("an event without an eventId: {event}"));
                let key = format!("{session}/{}/{}", event["eventType"], event["itemId"]);
                // The SDK retries bea's call: the same id each time.
                if let Some(earlier) = ids.insert(key.clone(), id.to_owned()) {
                    assert_eq!(earlier, id, "{key}");
                }
            }
            sessions.push(session);
        }
        sessions.sort();
        sessions.dedup();
        assert_eq!(
            sessions,
            ["ann", "bea", "cid"],
            "every call ran to completion"
        );
        ids_by_post.push(ids);
    }
    assert_eq!(ids_by_post[0].len(), 4, "{:?}", ids_by_post[0]);
    assert_eq!(
        ids_by_post[0], ids_by_post[1],
        "each event has the same id in both posts"
    );
    assert_eq!(ids_by_post[0][r#"cid/"purchase"/"item-00003""#], "order-77");
    let distinct: std::collections::HashSet<&String> = ids_by_post[0].values().collect();
    assert_eq!(distinct.len(), 4, "distinct events, distinct ids");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_the_event_tracker_and_answer_202() {
    let stack = full_stack(&[]).await;

    let answer = stack
        .post(
            "/events",
            r#"{"user_id":"vic","event_type":"click","item_id":"item-00007",
                "recommendation_id":"RID-vic","sent_at":"1795000000",
                "properties":{"channel":"email"},"impression":"item-00007,item-00008"}"#,
        )
        .await;

    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.json()["accepted"], 1);
    let received = stack.fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/events");
    assert!(received[0].authorization.starts_with("AWS4-HMAC-SHA256 "));
    let body = &received[0].body;
    assert_eq!(body["trackingId"], TRACKER);
    assert_eq!(body["userId"], "vic");
    assert_eq!(body["sessionId"], "vic");
    let event = &body["eventList"][0];
    assert_eq!(event["eventType"], "click");
    assert_eq!(event["itemId"], "item-00007");
    assert_eq!(event["recommendationId"], "RID-vic");
    assert_eq!(event["sentAt"].as_f64(), Some(1_795_000_000.0));
    assert_eq!(event["properties"], r#"{"channel":"email"}"#);
    assert_eq!(
        event["impression"],
        serde_json::json!(["item-00007", "item-00008"])
    );

    let answer = stack.post("/events", r#"{"user_id":"vic"}"#).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["error"]["parameter"], "event_type");
    assert_eq!(stack.fake.received().len(), 1, "a bad body sends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_maps_upstream_failures_like_recommendations() {
    let stack = full_stack(&[]).await;
    let event = r#"{"user_id":"wes","event_type":"click"}"#;
    for (mode, status, code) in [
        (Mode::Throttle, 503, "upstream_throttled"),
        (Mode::ServerError, 503, "upstream_unavailable"),
        (Mode::MissingCampaign, 500, "misconfigured"),
    ] {
        stack.fake.set_mode(mode.clone());
        let answers = [
            stack.get("/related-items?item_id=item-00001").await,
            stack.get("/rankings?user_id=wes&item_ids=item-00001").await,
            stack.post("/events", event).await,
        ];
        for (route, answer) in ["related-items", "rankings", "events"].iter().zip(answers) {
            let what = format!("{route} {mode:?}");
            assert_eq!(answer.status, status, "{what}: {}", answer.body);
            assert_eq!(answer.json()["error"]["code"], code, "{what}");
            assert_eq!(
                answer.header("retry-after").is_some(),
                status == 503,
                "{what}"
            );
            assert!(!answer.body.contains("arn:"), "{what}: {}", answer.body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_left_unconfigured_says_which_variable_enables_it() {
    // PERSONALIZE_ARN only.
    let stack = Stack::start(&[]).await;
    for (answer, variable) in [
        (
            stack.get("/related-items?item_id=item-00001").await,
            "RELATED_ITEMS_ARN",
        ),
        (
            stack.get("/rankings?user_id=u&item_ids=item-00001").await,
            "RANKING_ARN",
        ),
        (
            stack
                .post("/events", r#"{"user_id":"u","event_type":"v"}"#)
                .await,
            "EVENT_TRACKER_ID",
        ),
    ] {
        assert_eq!(answer.status, 404, "{variable}");
        let json = answer.json();
        assert_eq!(json["error"]["code"], "not_enabled");
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(variable),
            "{json}"
        );
    }
    assert!(stack.fake.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_from_personalize_needs_no_dynamodb_and_keeps_the_shape() {
    let stack = full_stack(&[
        ("ITEM_METADATA_SOURCE", "personalize"),
        ("ITEM_METADATA_COLUMNS", "NAME,PRICE,CATEGORY"),
        ("ITEMS_TABLE", ""),
        // Nothing listens here: a DynamoDB call would fail the request.
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9"),
    ])
    .await;
    let mut metadata = HashMap::new();
    let mut expected = HashMap::new();
    for i in 0..catalog::CATALOG_SIZE {
        let item = catalog::item(i);
        let text = |name: &str| match &item.attributes[name] {
            AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        let (name, price, category) = (text("name"), text("price"), text("category"));
        let quoted = |s: &str| serde_json::to_string(s).unwrap();
        expected.insert(
            item.id.clone(),
            format!(
                r#"{{"id":{},"url":{},"name":{},"price":{price},"image":{},"category":{}}}"#,
                quoted(&item.id),
                quoted(&URL_TEMPLATE.replace("{id}", &item.id)),
                quoted(&name),
                quoted(&IMAGE_TEMPLATE.replace("{id}", &item.id)),
                quoted(&category),
            ),
        );
        metadata.insert(
            item.id,
            HashMap::from([
                ("NAME".to_owned(), name),
                ("PRICE".to_owned(), price),
                ("CATEGORY".to_owned(), category),
                ("SECRET_COST".to_owned(), "1.00".to_owned()),
            ]),
        );
    }
    stack.fake.set_metadata(metadata);

    let answer = stack.get("/recommendations?user_id=xia&count=50").await;

    assert_eq!(
        answer.status,
        200,
        "{}",
        &answer.body[..answer.body.len().min(300)]
    );
    let ids = stack.fake.ranking("xia", 50);
    let parts: Vec<&str> = ids.iter().map(|id| expected[id].as_str()).collect();
    assert_eq!(answer.body, format!("[{}]", parts.join(",")));
    assert!(!answer.body.contains("1.00"), "only the asked-for columns");
    let body = &stack.fake.received()[0].body;
    assert_eq!(body["numResults"], 50, "the cap with metadata");
    assert_eq!(
        body["metadataColumns"],
        serde_json::json!({ "ITEMS": ["NAME", "PRICE", "CATEGORY"] })
    );

    // Related items and rankings take the same path.
    let answer = stack.get("/related-items?item_id=item-00010&count=3").await;
    let related: Vec<String> = stack.fake.related("item-00010", 8)[1..4].to_vec();
    let parts: Vec<&str> = related.iter().map(|id| expected[id].as_str()).collect();
    assert_eq!(answer.body, format!("[{}]", parts.join(",")));
    let given = strings(&["item-00001", "item-00002", "item-00003"]);
    let answer = stack
        .get("/rankings?user_id=xia&item_ids=item-00001,item-00002,item-00003")
        .await;
    let ranked = stack.fake.personal_order("xia", &given);
    let parts: Vec<&str> = ranked.iter().map(|id| expected[id].as_str()).collect();
    assert_eq!(answer.body, format!("[{}]", parts.join(",")));
}

/// The fake's PutEvents answers are what the real events SDK accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_events_sdk_parses_what_the_fake_sends() {
    use aws_sdk_personalizeevents::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_personalizeevents::error::ProvideErrorMetadata;
    use aws_sdk_personalizeevents::types::Event;

    let fake = FakePersonalize::start(vec!["a".into()]).await;
    let config = aws_sdk_personalizeevents::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "tests"))
        .endpoint_url(&fake.endpoint)
        .retry_config(aws_sdk_personalizeevents::config::retry::RetryConfig::disabled())
        .build();
    let client = aws_sdk_personalizeevents::Client::from_conf(config);
    let event = Event::builder()
        .event_type("click")
        .sent_at(aws_smithy_types::DateTime::from_secs(1_795_000_000))
        .build()
        .unwrap();
    let send = || {
        client
            .put_events()
            .tracking_id(TRACKER)
            .session_id("s")
            .event_list(event.clone())
            .send()
    };

    send().await.expect("PutEvents");
    fake.set_mode(Mode::Throttle);
    let err = send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("ThrottlingException"));
    let err = client
        .put_events()
        .tracking_id(TRACKER)
        .session_id("s")
        .set_event_list(Some(vec![event; 11]))
        .send()
        .await
        .expect_err("11 events");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_input_exception()),
        "{err:?}"
    );
}
