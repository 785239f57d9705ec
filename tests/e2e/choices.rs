//! Choosing what answers, end to end: named recommenders (an A/B test's variants), promotions,
//! events attributed to a variant, and diversity over the DynamoDB catalog. Each is checked on
//! what the fake Personalize received and on what the service answered.

use std::collections::HashMap;

use super::catalog::{self, CATALOG_SIZE, expected_list};
use super::endpoints::full_stack;
use super::http::HttpClient;
use super::local_mode::{sample_data, start};
use super::{CAMPAIGN_ARN, RECOMMENDER_ARN, Stack};

const TRENDING_ARN: &str = "arn:aws:personalize:eu-west-1:123456789012:campaign/trending";
const PROMOTION_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:filter/by-category";

/// Two variants: a campaign named by its resource name, and a recommender given a name.
async fn two_recommenders(extra: &[(&str, &str)]) -> Stack {
    let recommenders = format!("{CAMPAIGN_ARN},picks={RECOMMENDER_ARN},{TRENDING_ARN}");
    let mut vars = vec![
        ("PERSONALIZE_ARN", ""),
        ("RECOMMENDERS", recommenders.as_str()),
    ];
    vars.extend_from_slice(extra);
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Stack::start(&vars).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_named_recommender_is_asked_by_its_arn_and_named_in_the_answer() {
    let stack = two_recommenders(&[]).await;

    for (query, arn_field, arn, name) in [
        ("", "campaignArn", CAMPAIGN_ARN, "shop"),
        (
            "&recommender=picks",
            "recommenderArn",
            RECOMMENDER_ARN,
            "picks",
        ),
        (
            "&recommender=trending",
            "campaignArn",
            TRENDING_ARN,
            "trending",
        ),
    ] {
        let answer = stack
            .get(&format!(
                "/recommendations?user_id=ada&count=3&format=object{query}"
            ))
            .await;
        assert_eq!(answer.status, 200, "{query}: {}", answer.body);
        let json = answer.json();
        assert_eq!(json["recommender"], name, "{query}");
        let ids: Vec<String> = stack.fake.ranking("ada", 8)[..3].to_vec();
        // The items byte for byte (a JSON value would round the long price).
        let items = format!(r#"{{"items":{}"#, expected_list(&ids));
        assert!(answer.body.starts_with(&items), "{query}: {}", answer.body);
        let received = stack.fake.received();
        let body = &received.last().unwrap().body;
        assert_eq!(body[arn_field], arn, "{query}: {body}");
        assert_eq!(
            body.as_object().unwrap().len(),
            3,
            "ARN, user, count: {body}"
        );
    }

    // An unknown name is the caller's mistake: a 400 naming the parameter, Personalize untouched.
    let asked = stack.fake.received().len();
    let answer = stack
        .get("/recommendations?user_id=ada&recommender=top-pics")
        .await;
    assert_eq!(answer.status, 400, "{}", answer.body);
    assert_eq!(answer.json()["error"]["parameter"], "recommender");
    assert_eq!(stack.fake.received().len(), asked);
    assert!(!stack.service.log().contains("ERROR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_recommender_can_be_any_of_them() {
    let stack = two_recommenders(&[("DEFAULT_RECOMMENDER", "picks")]).await;

    let answer = stack
        .get("/recommendations?user_id=ada&format=object")
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["recommender"], "picks");
    assert_eq!(
        stack.fake.received()[0].body["recommenderArn"],
        RECOMMENDER_ARN
    );
}

/// The conversion a variant's message caused, sent back with the variant as its attribution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_their_attribution_source_to_put_events() {
    let stack = full_stack(&[]).await;

    let answer = stack
        .post(
            "/events",
            r#"{"user_id":"ada","event_type":"purchase","item_id":"item-00001",
                "recommendation_id":"RID-ada","attribution_source":"braze-variant-b"}"#,
        )
        .await;

    assert_eq!(answer.status, 202, "{}", answer.body);
    let received = stack.fake.received();
    let event = &received[0].body["eventList"][0];
    assert_eq!(
        event["metricAttribution"]["eventAttributionSource"], "braze-variant-b",
        "{event}"
    );
    assert_eq!(event["recommendationId"], "RID-ada");

    let bad = stack
        .post(
            "/events",
            r#"{"user_id":"ada","event_type":"purchase","attribution_source":"variant ✓"}"#,
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["error"]["parameter"], "attribution_source");
    assert_eq!(
        stack.fake.received().len(),
        1,
        "nothing sent for a bad body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_is_sent_with_its_values_and_its_items_are_marked() {
    let promotions = format!("new-bags={PROMOTION_ARN}@25");
    let stack = Stack::start(&[("PROMOTIONS", promotions.as_str())]).await;

    let answer = stack
        .get(r#"/recommendations?user_id=ada&count=8&promotion=new-bags&promotion_CATEGORY=bags,%22odd%22"#)
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = &stack.fake.received()[0].body;
    assert_eq!(
        body["promotions"],
        serde_json::json!([{
            "name": "new-bags",
            "percentPromotedItems": 25,
            "filterArn": PROMOTION_ARN,
            "filterValues": { "CATEGORY": r#""bags","\"odd\"""# },
        }]),
        "{body}"
    );
    // The fake promotes every fourth item from the first: positions 0 and 4 of the 8.
    let items = answer.json();
    let marked: Vec<usize> = items
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, item)| item.get("promotion").is_some())
        .map(|(k, item)| {
            assert_eq!(item["promotion"], "new-bags");
            k
        })
        .collect();
    assert_eq!(marked, [0, 4]);

    // Unknown promotions and values without one are 400s naming the parameter.
    for (query, parameter) in [
        ("promotion=summer", "promotion"),
        ("promotion_CATEGORY=bags", "promotion_CATEGORY"),
    ] {
        let answer = stack
            .get(&format!("/recommendations?user_id=ada&{query}"))
            .await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert_eq!(answer.json()["error"]["parameter"], parameter);
    }
    assert_eq!(stack.fake.received().len(), 1);
}

/// The ids of `ranked` that `diversify=FIELD:N` keeps, worked out from the catalog by hand.
fn diversified(ranked: &[String], field: &str, n: usize, count: usize) -> Vec<String> {
    let by_id: HashMap<String, Option<String>> = (0..CATALOG_SIZE)
        .map(catalog::item)
        .map(|item| {
            let value = item.attributes.get(field).map(|v| format!("{v:?}"));
            (item.id, value)
        })
        .collect();
    let mut taken: HashMap<Option<String>, usize> = HashMap::new();
    let mut kept = Vec::new();
    for id in ranked {
        let group = taken.entry(by_id[id].clone()).or_default();
        if *group < n && kept.len() < count {
            *group += 1;
            kept.push(id.clone());
        }
    }
    kept
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diversify_keeps_n_per_value_in_rank_order_reading_far_down_the_ranking() {
    let stack = Stack::start(&[]).await;

    // Four categories: two of each fill eight.
    let answer = stack
        .get("/recommendations?user_id=ada&count=8&diversify=category:2")
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(stack.fake.received()[0].body["numResults"], 500);
    let ranked = stack.fake.ranking("ada", 500);
    let expected = diversified(&ranked, "category", 2, 8);
    assert_eq!(expected.len(), 8);
    assert_eq!(answer.body, expected_list(&expected));
    let mut per_category: HashMap<String, usize> = HashMap::new();
    for item in answer.json().as_array().unwrap() {
        *per_category
            .entry(item["category"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_category.len(), 4);
    assert!(per_category.values().all(|n| *n == 2), "{per_category:?}");

    // `in_stock` is true, false, or missing: three groups of at most 2, so 6 items, not 10.
    let answer = stack
        .get("/recommendations?user_id=ada&count=10&diversify=in_stock:2")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let expected = diversified(&ranked, "in_stock", 2, 10);
    assert_eq!(expected.len(), 6);
    assert_eq!(answer.body, expected_list(&expected));

    for query in [
        "count=4&diversify=category:5",
        "diversify=category",
        "diversify=:2",
    ] {
        let answer = stack
            .get(&format!("/recommendations?user_id=ada&{query}"))
            .await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        assert_eq!(answer.json()["error"]["parameter"], "diversify");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_items_and_rankings_diversify_too() {
    let stack = full_stack(&[]).await;

    let answer = stack
        .get("/related-items?item_id=item-00042&count=4&diversify=category:1")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let related: Vec<String> = stack
        .fake
        .related("item-00042", 500)
        .into_iter()
        .filter(|id| id != "item-00042")
        .collect();
    assert_eq!(
        answer.body,
        expected_list(&diversified(&related, "category", 1, 4))
    );

    let given: Vec<String> = (0..12).map(|i| format!("item-{i:05}")).collect();
    let answer = stack
        .get(&format!(
            "/rankings?user_id=uma&item_ids={}&diversify=category:2",
            given.join(",")
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let ordered = stack.fake.personal_order("uma", &given);
    assert_eq!(
        answer.body,
        expected_list(&diversified(&ordered, "category", 2, 12))
    );
}

/// Local mode has the same choices without AWS: `embedded` and `popularity`, the sample data's
/// `category` promotion, and diversity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_offers_the_same_choices() {
    let service = start(vec![("DATA_DIR", sample_data())]).await;
    let http = HttpClient::new();
    let get = |query: &str| {
        let url = format!(
            "{}/recommendations?user_id=user-00001&{query}",
            service.base_url
        );
        let http = &http;
        async move { http.get(&url).await }
    };

    let embedded = get("count=10&format=object").await;
    let popular = get("count=10&format=object&recommender=popularity").await;
    assert_eq!(embedded.json()["recommender"], "embedded");
    assert_eq!(popular.json()["recommender"], "popularity");
    assert_ne!(embedded.json()["items"], popular.json()["items"]);

    // 20% of ten: two bags, in the 1st and 6th places, marked.
    let promoted = get("count=10&promotion=category&promotion_CATEGORY=bags").await;
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    let items = promoted.json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 10);
    let marked: Vec<usize> = (0..10)
        .filter(|&k| items[k].get("promotion").is_some())
        .collect();
    assert_eq!(marked, [0, 5]);
    for k in marked {
        assert_eq!(items[k]["category"], "bags");
        assert_eq!(items[k]["promotion"], "category");
    }

    let diverse = get("count=8&diversify=category:1").await;
    let categories: Vec<String> = diverse
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["category"].as_str().unwrap().to_owned())
        .collect();
    let mut distinct = categories.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(categories.len(), 8, "the sample data has eight categories");
    assert_eq!(distinct.len(), 8, "{categories:?}");

    let unknown = get("recommender=personalize").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["parameter"], "recommender");
}
