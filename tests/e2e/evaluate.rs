//! The `evaluate` binary on a small hand-made dataset (not the sample), with the embedded
//! backends and with the fake Personalize as the live one.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use crate::CAMPAIGN_ARN;
use crate::fake_personalize::{FakePersonalize, Mode};

/// Training (before t=100): u1 a b, u2 a c, u3 a b. Test: u1 c, u2 b, u3 d.
fn dataset() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("evaluate");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("interactions.csv");
    std::fs::write(
        &path,
        "USER_ID,ITEM_ID,EVENT_TYPE,TIMESTAMP\n\
         u1,a,view,1\nu1,b,view,2\nu2,a,view,3\nu2,c,view,4\nu3,a,view,5\nu3,b,view,6\n\
         u1,c,purchase,100\nu2,b,view,101\nu3,d,view,102\n",
    )
    .unwrap();
    path
}

async fn evaluate(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(personalize_braze_testkit::binaries::path("evaluate"))
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn args(extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--interactions".to_string(),
        dataset().display().to_string(),
        "--cutoff".into(),
        "100".into(),
        "--k".into(),
        "2".into(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn report(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

fn backend<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backend"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn close(value: &Value, expected: f64) -> bool {
    (value.as_f64().unwrap() - expected).abs() < 1e-9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backends_score_as_computed_by_hand() {
    let report = report(&evaluate(args(&[]), vec![]).await);
    assert_eq!(report["test_users"], 3);
    assert_eq!(report["training_interactions"], 6);
    // Each backend, skipping what the user saw, can only offer u1 c, u2 b, u3 c (d is unknown
    // before the cut-off): hits for u1 and u2 at position 1, a miss for u3.
    for name in ["embedded", "popularity"] {
        let scores = &backend(&report, name)["scores"];
        assert_eq!(scores["users"], 3, "{name}");
        assert!(
            close(&scores["precision_at_k"], 1.0 / 3.0),
            "{name}: {scores}"
        );
        assert!(close(&scores["ndcg_at_k"], 2.0 / 3.0), "{name}: {scores}");
        assert!(close(&scores["mrr_at_k"], 2.0 / 3.0), "{name}: {scores}");
        // b and c of a, b, c, d.
        assert!(close(&scores["coverage"], 0.5), "{name}: {scores}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_campaign_is_asked_once_per_test_user_and_scored_the_same_way() {
    let catalog: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let fake = FakePersonalize::start(catalog.clone()).await;
    let env = vec![(
        "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME",
        fake.endpoint.clone(),
    )];
    let output = evaluate(
        args(&["--personalize-arn", CAMPAIGN_ARN, "--tps", "20"]),
        env,
    )
    .await;
    let report = report(&output);

    let received = fake.received();
    assert_eq!(received.len(), 3);
    let mut users: Vec<&str> = received
        .iter()
        .map(|r| r.body["userId"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["u1", "u2", "u3"]);
    assert!(
        received
            .iter()
            .all(|r| r.body["numResults"] == 2 && r.body["campaignArn"] == CAMPAIGN_ARN)
    );

    // The fake's answers (its per-user walk through a, b, c, d), scored by hand at k = 2:
    // u1 gets [b, a] and bought c: a miss. u2 gets [c, b] and bought b: a hit at 2
    // (precision 1/2, NDCG 1/log2(3), reciprocal rank 1/2). u3 gets [d, c] and bought d: a hit
    // at 1 (1/2, 1, 1). Every item of the four was recommended to someone.
    assert_eq!(fake.ranking("u1", 2), ["b", "a"]);
    assert_eq!(fake.ranking("u2", 2), ["c", "b"]);
    assert_eq!(fake.ranking("u3", 2), ["d", "c"]);
    let scores = &backend(&report, "personalize")["scores"];
    assert_eq!(scores["users"], 3, "{scores}");
    assert_eq!(scores["failed"], 0, "{scores}");
    assert!(close(&scores["precision_at_k"], 1.0 / 3.0), "{scores}");
    let ndcg = (1.0 / 3f64.log2() + 1.0) / 3.0;
    assert!(close(&scores["ndcg_at_k"], ndcg), "{scores}");
    assert!(close(&scores["mrr_at_k"], 0.5), "{scores}");
    assert!(close(&scores["coverage"], 1.0), "{scores}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_campaign_counts_failures_and_says_why() {
    let fake = FakePersonalize::start(vec!["a".into(), "b".into()]).await;
    fake.set_mode(Mode::Throttle);
    let env = vec![(
        "AWS_ENDPOINT_URL_PERSONALIZE_RUNTIME",
        fake.endpoint.clone(),
    )];
    let output = evaluate(
        args(&["--personalize-arn", CAMPAIGN_ARN, "--tps", "50"]),
        env,
    )
    .await;
    let report = report(&output);
    let scores = &backend(&report, "personalize")["scores"];
    assert_eq!(scores["failed"], 3);
    assert_eq!(scores["users"], 0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("3 Personalize requests failed") && stderr.contains("throttled"),
        "{stderr}"
    );
    // The embedded backends are unaffected.
    assert_eq!(backend(&report, "popularity")["scores"]["users"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_users_dataset_scores_come_per_segment_too() {
    let users = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("evaluate/users.csv");
    std::fs::write(
        &users,
        "USER_ID,TIER,AGE\nu1,gold,30\nu2,gold,41\nu3,bronze,25\n",
    )
    .unwrap();
    let segmented = report(
        &evaluate(
            args(&["--users", users.to_str().unwrap(), "--by", "TIER"]),
            vec![],
        )
        .await,
    );
    assert_eq!(segmented["segmented_by"], "TIER");
    // u1 and u2 (gold) each find one of two at position 1; u3 (bronze) finds nothing.
    for name in ["embedded", "popularity"] {
        let segments = &backend(&segmented, name)["segments"];
        let gold = &segments["gold"];
        assert_eq!(gold["users"], 2, "{name}: {segments}");
        assert!(close(&gold["precision_at_k"], 0.5), "{name}: {segments}");
        assert!(close(&gold["mrr_at_k"], 1.0), "{name}: {segments}");
        let bronze = &segments["bronze"];
        assert_eq!(bronze["users"], 1, "{name}: {segments}");
        assert!(close(&bronze["mrr_at_k"], 0.0), "{name}: {segments}");
    }
    // By default, the first metadata field; a field nobody has is an error, said plainly.
    let default = report(&evaluate(args(&["--users", users.to_str().unwrap()]), vec![]).await);
    assert_eq!(default["segmented_by"], "TIER");
    let missing = evaluate(
        args(&["--users", users.to_str().unwrap(), "--by", "PLAN"]),
        vec![],
    )
    .await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no user has a PLAN value"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
