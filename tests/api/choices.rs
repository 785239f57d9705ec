//! Named recommenders, promotions, attribution and diversity, through the real router and SDK
//! clients: what each request makes the adapters send to Personalize, and what Braze gets back.

use std::sync::{Arc, Mutex};

use crate::support::*;
use aws_sdk_personalizeevents::operation::put_events::{PutEventsInput, PutEventsOutput};
use aws_sdk_personalizeruntime::operation::get_recommendations::GetRecommendationsOutput;
use aws_sdk_personalizeruntime::types::PredictedItem;
use aws_smithy_mocks::{Rule, mock};
use axum::body::Body;
use axum::http::{Request, StatusCode};

const TRENDING_ARN: &str = "arn:aws:personalize:eu-west-1:123456789012:campaign/trending";

fn catalog() -> Table {
    (0..40)
        .map(|i| {
            let category = ["shoes", "shoes", "shoes", "hats", "bags"][i % 5];
            let mut attributes = vec![("name", s(&format!("Item {i}")))];
            // Every seventh item has no category at all.
            if i % 7 != 0 {
                attributes.push(("category", s(category)));
            }
            row(&format!("i{i}"), &attributes)
        })
        .collect()
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("i{i}")).collect()
}

fn named(extra: Vec<(&'static str, &'static str)>) -> Setup {
    Setup {
        arn: None,
        related_items: Some(TRENDING_ARN),
        extra,
        ..Setup::default()
    }
}

#[tokio::test]
async fn recommender_names_choose_the_arn_and_the_default_is_the_first() {
    let recommenders = "shop=arn:aws:personalize:us-east-1:123456789012:campaign/shop,\
                        picks=arn:aws:personalize:us-east-1:123456789012:recommender/picks,\
                        arn:aws:personalize:eu-west-1:123456789012:campaign/trending";
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["i1", "i2"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(
        named(vec![("RECOMMENDERS", recommenders)]),
        &[&personalize],
        &[&dynamodb],
    );

    for (query, recommender) in [
        ("", "shop"),
        ("&recommender=picks", "picks"),
        ("&recommender=trending", "trending"),
    ] {
        let answer = get(
            &app,
            &format!("/recommendations?user_id=u&format=object{query}"),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.json()["recommender"], recommender);
    }
    let sent = recorded.personalize();
    let arns: Vec<(Option<&str>, Option<&str>)> = sent
        .iter()
        .map(|s| (s.campaign_arn(), s.recommender_arn()))
        .collect();
    assert_eq!(
        arns,
        [
            (Some(CAMPAIGN_ARN), None),
            (None, Some(RECOMMENDER_ARN)),
            (Some(TRENDING_ARN), None),
        ]
    );

    let answer = get(&app, "/recommendations?user_id=u&recommender=Picks").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.json()["error"]["parameter"], "recommender");
    let answer = get(&app, "/related-items?item_id=i1&recommender=picks").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(recorded.personalize().len(), 3, "no call for a bad request");
}

#[tokio::test]
async fn personalize_arn_and_recommenders_together_name_the_default_explicitly() {
    let recorded = Recorded::default();
    let personalize = personalize_returns(&["i1"], &recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let setup = Setup {
        extra: vec![
            ("RECOMMENDERS", TRENDING_ARN),
            ("DEFAULT_RECOMMENDER", "trending"),
        ],
        ..Setup::default()
    };
    let app = app(setup, &[&personalize], &[&dynamodb]);

    let default = get(&app, "/recommendations?user_id=u&format=object").await;
    let shop = get(
        &app,
        "/recommendations?user_id=u&format=object&recommender=shop",
    )
    .await;

    assert_eq!(default.json()["recommender"], "trending");
    assert_eq!(shop.json()["recommender"], "shop");
    let sent = recorded.personalize();
    assert_eq!(sent[0].campaign_arn(), Some(TRENDING_ARN));
    assert_eq!(sent[1].campaign_arn(), Some(CAMPAIGN_ARN));
}

/// Personalize answering `ids`, the ones in `promoted` marked with `name`, recording requests.
fn personalize_promotes(recorded: &Recorded, promoted: &'static [&'static str]) -> Rule {
    let log = recorded.personalize.clone();
    mock!(aws_sdk_personalizeruntime::Client::get_recommendations).then_compute_output(
        move |input| {
            log.lock().unwrap().push(input.clone());
            let name = input
                .promotions()
                .first()
                .and_then(|p| p.name())
                .map(str::to_owned);
            let items = ids(1..9).into_iter().map(|id| {
                let promotion = name.clone().filter(|_| promoted.contains(&id.as_str()));
                PredictedItem::builder()
                    .item_id(id)
                    .set_promotion_name(promotion)
                    .build()
            });
            GetRecommendationsOutput::builder()
                .set_item_list(Some(items.collect()))
                .build()
        },
    )
}

#[tokio::test]
async fn a_promotion_reaches_personalize_with_quoted_values_and_marks_its_items() {
    let recorded = Recorded::default();
    let personalize = personalize_promotes(&recorded, &["i1", "i4"]);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let promotions = "summer=arn:aws:personalize:us-east-1:123456789012:filter/by-category@30,\
                      arn:aws:personalize:us-east-1:123456789012:filter/new-arrivals";
    let setup = Setup {
        extra: vec![("PROMOTIONS", promotions), ("PROMOTION_PERCENT", "15")],
        ..Setup::default()
    };
    let app = app(setup, &[&personalize], &[&dynamodb]);

    let answer = get(
        &app,
        "/recommendations?user_id=u&count=5&promotion=summer&promotion_CATEGORY=hats%2Ca%22b\
         &filter=not-purchased",
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let sent = &recorded.personalize()[0];
    let [promotion] = sent.promotions() else {
        panic!("one promotion: {:?}", sent.promotions())
    };
    assert_eq!(promotion.name(), Some("summer"));
    assert_eq!(promotion.percent_promoted_items(), Some(30));
    assert_eq!(promotion.filter_arn(), Some(FILTER_ARN));
    assert_eq!(
        promotion.filter_values().unwrap()["CATEGORY"],
        r#""hats","a\"b""#
    );
    assert_eq!(
        sent.filter_arn(),
        Some(EXCLUDE_ARN),
        "the request's own filter"
    );
    assert_eq!(
        answer.body,
        r#"[{"id":"i1","name":"Item 1","category":"shoes","promotion":"summer"},{"id":"i2","name":"Item 2","category":"shoes"},{"id":"i3","name":"Item 3","category":"hats"},{"id":"i4","name":"Item 4","category":"bags","promotion":"summer"},{"id":"i5","name":"Item 5","category":"shoes"}]"#
    );

    // A bare filter ARN is named by its resource name, with PROMOTION_PERCENT's share.
    let answer = get(&app, "/recommendations?user_id=u&promotion=new-arrivals").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let sent = &recorded.personalize()[1];
    assert_eq!(sent.promotions()[0].percent_promoted_items(), Some(15));
    assert_eq!(sent.promotions()[0].filter_values(), None);

    for (query, parameter) in [
        ("promotion=winter", "promotion"),
        ("promotion_CATEGORY=hats", "promotion_CATEGORY"),
        (
            "promotion=summer&promotion_bad-name=x",
            "promotion_bad-name",
        ),
    ] {
        let answer = get(&app, &format!("/recommendations?user_id=u&{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json()["error"]["parameter"], parameter, "{query}");
    }
    assert_eq!(recorded.personalize().len(), 2);
}

#[tokio::test]
async fn an_events_attribution_source_is_its_metric_attribution() {
    let sent: Arc<Mutex<Vec<PutEventsInput>>> = Arc::default();
    let log = sent.clone();
    let put_events =
        mock!(aws_sdk_personalizeevents::Client::put_events).then_compute_output(move |input| {
            log.lock().unwrap().push(input.clone());
            PutEventsOutput::builder().build()
        });
    let setup = Setup {
        event_tracker: Some("tracker"),
        ..Setup::default()
    };
    let app = app_with_events(setup, &[], &[], &[&put_events]);
    let post = |body: &'static str| {
        Request::post("/events")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };

    let answer = send(
        &app,
        post(
            r#"[{"user_id":"u","event_type":"click","item_id":"i1","attribution_source":"variant-a"},
                {"user_id":"u","event_type":"click","item_id":"i2"}]"#,
        ),
    )
    .await;

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let sent = sent.lock().unwrap().clone();
    let events = sent[0].event_list();
    let source = |k: usize| {
        events[k]
            .metric_attribution()
            .map(|m| m.event_attribution_source().to_owned())
    };
    assert_eq!(source(0).as_deref(), Some("variant-a"));
    assert_eq!(source(1), None);

    for bad in [
        r#"{"user_id":"u","event_type":"click","attribution_source":"   "}"#,
        r#"{"user_id":"u","event_type":"click","attribution_source":"é"}"#,
        r#"{"user_id":"u","event_type":"click","attribution_source":7}"#,
    ] {
        let answer = send(&app, post(bad)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(answer.json()["error"]["parameter"], "attribution_source");
    }
}

/// Personalize ranking all 40 items in order, recording requests.
fn personalize_ranks_all(recorded: &Recorded) -> Rule {
    let log = recorded.personalize.clone();
    mock!(aws_sdk_personalizeruntime::Client::get_recommendations).then_compute_output(
        move |input| {
            log.lock().unwrap().push(input.clone());
            let items = ids(0..40)
                .into_iter()
                .map(|id| PredictedItem::builder().item_id(id).build());
            GetRecommendationsOutput::builder()
                .set_item_list(Some(items.collect()))
                .build()
        },
    )
}

#[tokio::test]
async fn diversify_asks_for_more_and_reads_the_catalog_only_as_far_as_it_needs() {
    let recorded = Recorded::default();
    let personalize = personalize_ranks_all(&recorded);
    let dynamodb = dynamodb_serves(catalog(), &[], &recorded);
    let app = app(Setup::default(), &[&personalize], &[&dynamodb]);

    // At most one per category: shoes (i1), hats (i3), bags (i4), and one without (i0).
    let answer = get(
        &app,
        "/recommendations?user_id=u&count=4&diversify=category:1",
    )
    .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.ids(), ["i0", "i1", "i3", "i4"]);
    assert_eq!(recorded.personalize()[0].num_results(), Some(500));
    // The first batch (4 and the margin) held all four.
    assert_eq!(recorded.dynamodb_keys(), [ids(0..9)]);

    // Two per category, ten items: only 2 + 2 + 2 + 2 exist, and the rest of the ranking is read.
    let answer = get(
        &app,
        "/recommendations?user_id=u&count=10&diversify=category:2",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.ids(),
        ["i0", "i1", "i2", "i3", "i4", "i7", "i8", "i9"]
    );
    let keys = recorded.dynamodb_keys();
    assert_eq!(keys[1..], [ids(0..15), ids(15..40)]);

    // N must be from 1 to the count.
    for query in [
        "count=3&diversify=category:4",
        "diversify=category:0",
        "diversify=category",
    ] {
        let answer = get(&app, &format!("/recommendations?user_id=u&{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json()["error"]["parameter"], "diversify");
    }
}

/// A filter with `IF CurrentUser.…` applies to the users whose metadata (the sample's
/// `users.csv`) meets it, and lets everything through for the others, as Personalize's do.
#[tokio::test]
async fn a_current_user_condition_filters_for_gold_members_only() {
    let filters = concat!(
        r#"gold-bags=INCLUDE ItemID WHERE Items.CATEGORY IN ("bags") IF CurrentUser.TIER = "gold";"#,
        r#"no-shoes-50=EXCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") IF CurrentUser.AGE >= 50 AND CurrentUser.TIER NOT IN ("gold");"#,
        r#"no-shoes-60=EXCLUDE ItemID WHERE Items.CATEGORY IN ("shoes") IF CurrentUser.AGE > 60"#
    );
    let app = local_app_with(&[("LOCAL_FILTERS", filters)]);
    let categories = |body: &str| -> Vec<String> {
        let items: serde_json::Value = serde_json::from_str(body).unwrap();
        items
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["category"].as_str().unwrap().to_owned())
            .collect()
    };
    // user-00001 is gold (18), user-00002 silver (55), user-00003 silver (18): users.csv.
    let gold = get(
        &app,
        "/recommendations?user_id=user-00001&count=10&filter=gold-bags",
    )
    .await;
    assert_eq!(gold.status, StatusCode::OK, "{}", gold.body);
    let gold = categories(&gold.body);
    assert_eq!(gold.len(), 10);
    assert!(gold.iter().all(|c| c == "bags"), "{gold:?}");

    let silver = get(
        &app,
        "/recommendations?user_id=user-00002&count=10&filter=gold-bags",
    )
    .await;
    let unfiltered = get(&app, "/recommendations?user_id=user-00002&count=10").await;
    assert_eq!(
        silver.body, unfiltered.body,
        "the condition fails: no filter"
    );
    assert!(categories(&silver.body).iter().any(|c| c != "bags"));

    // AND: 55 and silver, user-00002 loses shoes (all of their list without the filter); past
    // 60 they would not be, so that filter leaves their list alone.
    let unfiltered = get(&app, "/recommendations?user_id=user-00002&count=25").await;
    assert!(categories(&unfiltered.body).iter().all(|c| c == "shoes"));
    let fifty = get(
        &app,
        "/recommendations?user_id=user-00002&count=25&filter=no-shoes-50",
    )
    .await;
    let fifty = categories(&fifty.body);
    assert!(
        !fifty.is_empty() && fifty.iter().all(|c| c != "shoes"),
        "{fifty:?}"
    );
    let sixty = get(
        &app,
        "/recommendations?user_id=user-00002&count=25&filter=no-shoes-60",
    )
    .await;
    assert_eq!(sixty.body, unfiltered.body);
    // A user the users file lacks meets no condition.
    let unknown = get(
        &app,
        "/recommendations?user_id=nobody&count=5&filter=gold-bags",
    )
    .await;
    let unknown_unfiltered = get(&app, "/recommendations?user_id=nobody&count=5").await;
    assert_eq!(unknown.body, unknown_unfiltered.body);
}
