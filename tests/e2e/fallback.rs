//! Fallback answers end to end: the service binary, DynamoDB Local and the fake Personalize
//! failing in each way it can (throttling, a 5xx, a stall past the budget, a missing campaign).
//! `off` answers as before; `popular` with the popular list, marked, within the budget;
//! `last-good` with the user's previous answer.

use std::time::{Duration, Instant};

use super::Stack;
use super::catalog::{all_ids, expected_list};
use super::fake_personalize::Mode;

/// The popular list the deployment is given (`FALLBACK_POPULAR_IDS`).
fn popular() -> Vec<String> {
    all_ids().into_iter().skip(40).take(20).collect()
}

fn popular_setting() -> String {
    popular().join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_answers_the_popular_list_marked_and_in_time_or_503_when_off() {
    let ids = popular_setting();
    let stack = Stack::start(&[
        ("FALLBACK", "popular"),
        ("FALLBACK_POPULAR_IDS", &ids),
        ("REQUEST_BUDGET_MS", "1000"),
    ])
    .await;
    let failures = [
        (Mode::Throttle, 503),
        (Mode::ServerError, 503),
        (Mode::Slow(Duration::from_secs(3)), 503),
        (Mode::MissingCampaign, 500),
    ];
    for (mode, status_when_off) in failures {
        stack.fake.set_mode(mode.clone());
        let started = Instant::now();
        let answer = stack.get("/recommendations?user_id=alice&count=3").await;
        let took = started.elapsed();
        assert_eq!(answer.status, 200, "{mode:?}: {}", answer.body);
        assert_eq!(answer.body, expected_list(&popular()[..3]), "{mode:?}");
        assert_eq!(
            answer.header("x-recommendations-fallback"),
            Some("popular"),
            "{mode:?}"
        );
        assert_eq!(
            answer.header("cache-control"),
            Some("private, max-age=30"),
            "{mode:?}"
        );
        // Decided before the budget's end, not after: 1 s, and some room for a busy machine.
        assert!(took < Duration::from_millis(1400), "{mode:?}: {took:?}");

        let object = stack
            .get("/recommendations?user_id=alice&count=3&format=object")
            .await;
        assert_eq!(object.json()["fallback"], "popular", "{mode:?}");
        assert_eq!(object.json()["items"].as_array().unwrap().len(), 3);

        let off = stack
            .get("/recommendations?user_id=alice&count=3&fallback=off")
            .await;
        assert_eq!(off.status, status_when_off, "{mode:?}: {}", off.body);
        assert!(off.header("x-recommendations-fallback").is_none());
    }
    // Back to normal: personal answers, unmarked, cached as long as ever.
    stack.fake.set_mode(Mode::Normal);
    let answer = stack
        .get("/recommendations?user_id=alice&count=3&format=object")
        .await;
    assert_eq!(answer.status, 200);
    assert!(answer.json().get("fallback").is_none(), "{}", answer.body);
    assert_eq!(answer.header("cache-control"), Some("private, max-age=300"));
    // A choice the deployment does not have, and a name that is no choice.
    stack.fake.set_mode(Mode::Throttle);
    let not_here = stack
        .get("/recommendations?user_id=alice&fallback=last-good")
        .await;
    assert_eq!(not_here.status, 503, "{}", not_here.body);
    let bad = stack
        .get("/recommendations?user_id=alice&fallback=maybe")
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .contains("fallback must be off, popular or last-good"),
        "{}",
        bad.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_good_answers_the_users_previous_list_for_the_same_question() {
    let stack = Stack::start(&[("FALLBACK", "last-good")]).await;
    let personal = stack.get("/recommendations?user_id=alice&count=5").await;
    assert_eq!(personal.status, 200);
    let shoes = "/recommendations?user_id=alice&count=5&filter=by-category&filter_CATEGORY=shoes";
    let filtered = stack.get(shoes).await;
    assert_eq!(filtered.status, 200);

    stack.fake.set_mode(Mode::Throttle);
    let again = stack.get("/recommendations?user_id=alice&count=5").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, personal.body);
    assert_eq!(
        again.header("x-recommendations-fallback"),
        Some("last-good")
    );
    // A shorter list of the same question is the start of it.
    let fewer = stack.get("/recommendations?user_id=alice&count=2").await;
    assert_eq!(fewer.ids(), personal.ids()[..2]);
    // The same filter and values: that list; other values, or another user: nothing to give.
    assert_eq!(stack.get(shoes).await.body, filtered.body);
    let bags = stack
        .get("/recommendations?user_id=alice&count=5&filter=by-category&filter_CATEGORY=bags")
        .await;
    assert_eq!(bags.status, 503);
    assert_eq!(stack.get("/recommendations?user_id=bob").await.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_filter_popular_answers_only_where_the_deployment_allows_it() {
    let ids = popular_setting();
    let strict = Stack::start(&[("FALLBACK", "popular"), ("FALLBACK_POPULAR_IDS", &ids)]).await;
    strict.fake.set_mode(Mode::Throttle);
    let filtered =
        "/recommendations?user_id=alice&count=3&filter=by-category&filter_CATEGORY=shoes";
    assert_eq!(strict.get(filtered).await.status, 503);

    let loose = Stack::start(&[
        ("FALLBACK", "popular"),
        ("FALLBACK_POPULAR_IDS", &ids),
        ("FALLBACK_UNFILTERED", "true"),
    ])
    .await;
    loose.fake.set_mode(Mode::Throttle);
    let answer = loose.get(filtered).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, expected_list(&popular()[..3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn related_items_fall_back_to_popular_without_the_seed() {
    let ids = popular_setting();
    let stack =
        super::endpoints::full_stack(&[("FALLBACK", "popular"), ("FALLBACK_POPULAR_IDS", &ids)])
            .await;
    stack.fake.set_mode(Mode::ServerError);
    let seed = &popular()[0];
    let answer = stack
        .get(&format!("/related-items?item_id={seed}&count=3"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body, expected_list(&popular()[1..4]));
    assert_eq!(answer.header("x-recommendations-fallback"), Some("popular"));
    assert_eq!(answer.header("cache-control"), Some("private, max-age=30"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_popular_list_is_read_from_a_popularity_campaign_and_kept_warm() {
    const POPULAR_ARN: &str = "arn:aws:personalize:us-east-1:123456789012:campaign/popular";
    let stack = Stack::start(&[
        ("FALLBACK", "popular"),
        ("FALLBACK_POPULAR_ARN", POPULAR_ARN),
    ])
    .await;
    // The service reads the list at start, in the background.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !stack
        .fake
        .received()
        .iter()
        .any(|r| r.body["campaignArn"] == POPULAR_ARN)
    {
        assert!(Instant::now() < deadline, "the popular list was never read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read = stack
        .fake
        .received()
        .into_iter()
        .find(|r| r.body["campaignArn"] == POPULAR_ARN)
        .unwrap();
    let list_user = read.body["userId"].as_str().unwrap().to_owned();
    // A moment for the answer to land in memory.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stack.fake.set_mode(Mode::Throttle);
    let answer = stack.get("/recommendations?user_id=alice&count=4").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body,
        expected_list(&stack.fake.ranking(&list_user, 4))
    );
    // The fallback answered from memory: the request made the calls a request without a
    // fallback makes (the SDK's own retries of the throttled call), and not one more.
    let calls_for = |user: &str| {
        stack
            .fake
            .received()
            .iter()
            .filter(|r| r.body["userId"] == user)
            .count()
    };
    let with_fallback = calls_for("alice");
    let off = stack
        .get("/recommendations?user_id=bob&count=4&fallback=off")
        .await;
    assert_eq!(off.status, 503);
    assert_eq!(with_fallback, calls_for("bob"));
}
