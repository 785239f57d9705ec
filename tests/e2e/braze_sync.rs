//! braze-sync, the built binary, end to end: batch output files nobody wrote by hand, the items
//! from DynamoDB Local (or the sample CSV), S3 from a real S3 implementation (moto), and our own
//! fake Braze counting what lands, how fast, and how often.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use super::catalog::{IMAGE_TEMPLATE, URL_TEMPLATE, all_ids, expected_list, shared_catalog_table};
use super::fake_braze::FakeBraze;
use super::processes::{die_with_parent, unique_name};

pub(super) const KEY: &str = "braze-test-key";

/// A batch output file: `users` lines of `ids` ranked ids each, some repeated and some the
/// catalog lacks. Returns the file and each user's ranked ids.
pub(super) fn batch_file(
    name: &str,
    users: usize,
    ids: &[String],
    per_user: usize,
    seed: u64,
) -> (PathBuf, Vec<(String, Vec<String>)>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut text = String::new();
    let mut lines = Vec::with_capacity(users);
    for u in 0..users {
        // Keys Braze allows that JSON must escape.
        let user = if u % 97 == 0 {
            format!("user \"{u}\" ✓")
        } else {
            format!("user-{u}")
        };
        let mut ranked: Vec<String> = (0..per_user)
            .map(|_| ids[rng.usize(..ids.len())].clone())
            .collect();
        if u % 5 == 0 {
            ranked.insert(1, format!("gone-{u}"));
        }
        if u % 7 == 0 {
            let again = ranked[0].clone();
            ranked.insert(2, again);
        }
        let scores: Vec<f64> = (0..ranked.len()).map(|i| 1.0 / (i + 1) as f64).collect();
        let line = json!({"input": {"userId": user}, "output": {"recommendedItems": ranked, "scores": scores}, "error": null});
        text.push_str(&line.to_string());
        text.push('\n');
        lines.push((user, ranked));
    }
    let path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.json.out", unique_name(name)));
    std::fs::write(&path, text).unwrap();
    (path, lines)
}

/// The first `count` distinct ids the catalog has, in rank order: what the endpoint would list.
pub(super) fn joined(ranked: &[String], known: &HashSet<String>, count: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    ranked
        .iter()
        .filter(|id| known.contains(*id) && seen.insert(id.as_str()))
        .take(count)
        .cloned()
        .collect()
}

pub(super) fn command(braze: &FakeBraze, vars: &[(&str, &str)]) -> Command {
    let mut std_command =
        std::process::Command::new(personalize_braze_testkit::binaries::path("braze-sync"));
    std_command
        .env_clear()
        .env("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "test-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BRAZE_REST_ENDPOINT", &braze.endpoint)
        .env("BRAZE_API_KEY", KEY)
        .envs(vars.iter().copied())
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut std_command);
    Command::from(std_command)
}

pub(super) struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Fails, showing both outputs, unless the run exited with `code`.
    pub fn exited(&self, code: i32) -> &Finished {
        assert_eq!(self.code, Some(code), "{}\n{}", self.stdout, self.stderr);
        self
    }

    /// Fails, showing stdout, unless it says `text`.
    pub fn says(&self, text: &str) -> &Finished {
        assert!(
            self.stdout.contains(text),
            "{text:?} not in:\n{}",
            self.stdout
        );
        self
    }
}

pub(super) async fn run(braze: &FakeBraze, vars: &[(&str, &str)], args: &[&str]) -> Finished {
    let output = command(braze, vars)
        .args(args)
        .output()
        .await
        .expect("run braze-sync");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub(super) fn checkpoint(name: &str) -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.checkpoint", unique_name(name)))
        .display()
        .to_string()
}

pub(super) fn sample_ids() -> Vec<String> {
    let items = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/items.csv");
    personalize_braze_core::dataset::read_items(&items)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

pub(super) fn sample_items() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/data/items.csv")
        .display()
        .to_string()
}

/// The most requests that arrived within any `window`.
pub(super) fn busiest_window(arrivals: &[std::time::Instant], window: Duration) -> usize {
    let mut most = 0;
    let mut start = 0;
    for end in 0..arrivals.len() {
        while arrivals[end].duration_since(arrivals[start]) >= window {
            start += 1;
        }
        most = most.max(end - start + 1);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_users_land_with_the_endpoints_lists_in_batches_under_the_rate_limit() {
    let (dynamodb, table) = shared_catalog_table();
    let ids = all_ids();
    let known: HashSet<String> = ids.iter().cloned().collect();
    let (file, users) = batch_file("ten-thousand", 10_000, &ids, 14, 20);
    let braze = FakeBraze::start(KEY).await;

    let cp = checkpoint("ten-thousand");
    let finished = run(
        &braze,
        &[
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
            ("ITEM_URL_TEMPLATE", URL_TEMPLATE),
            ("IMAGE_URL_TEMPLATE", IMAGE_TEMPLATE),
            // Each request's departure, as the limiter counts it.
            ("RUST_LOG", "warn,braze_sync::limiter=debug"),
        ],
        &[
            file.to_str().unwrap(),
            "--table",
            table,
            "--count",
            "10",
            "--fields",
            "all",
            "--rate",
            "60/1s",
            "--checkpoint",
            &cp,
        ],
    )
    .await;
    finished.exited(0);
    finished.says("10000 users sent");

    let requests = braze.accepted();
    assert_eq!(requests.len(), 134, "10,000 users in batches of 75");
    assert!(requests.iter().all(|r| r.count <= 75));
    // The rule holds exactly where the tool controls it: no second holds more than 60 of the
    // moments requests left (the limiter logs each, in microseconds since it started).
    let departures: Vec<std::time::Instant> = {
        let zero = std::time::Instant::now();
        finished
            .stderr
            .lines()
            .filter_map(|line| line.split("departure_us=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .map(|us| zero + Duration::from_micros(us))
            .collect()
    };
    assert_eq!(departures.len(), 134, "{}", finished.stderr);
    let busiest = busiest_window(&departures, Duration::from_secs(1));
    assert!(busiest <= 60, "{busiest} requests left within a second");
    // Arrivals carry the machine's noise (a stalled process reads several requests at once),
    // so they are held to the rule with a margin noise does not cross on its own: a limiter
    // half again too fast fails. And the pace is the limit's: 134 requests at 60 a second.
    let arrivals = braze.arrivals();
    let busiest = busiest_window(&arrivals, Duration::from_secs(1));
    assert!(busiest <= 90, "{busiest} requests arrived within a second");
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    assert!(
        span >= Duration::from_millis(2000),
        "{span:?}: faster than the limit"
    );
    assert_eq!(braze.refusals(), (0, 0, 0));

    let received = braze.by_user();
    assert_eq!(received.len(), 10_000);
    // The endpoint's rendering of every catalog item, once.
    let Value::Array(all) = serde_json::from_str::<Value>(&expected_list(&ids)).unwrap() else {
        panic!("a list")
    };
    let rendered: HashMap<&String, Value> = ids.iter().zip(all).collect();
    for (user, ranked) in &users {
        let objects = &received[user];
        assert_eq!(objects.len(), 1, "{user} sent once");
        let expected: Vec<Value> = joined(ranked, &known, 10)
            .iter()
            .map(|id| rendered[id].clone())
            .collect();
        assert_eq!(
            objects[0]["recommendations"],
            Value::Array(expected),
            "{user}"
        );
        assert_eq!(objects[0]["external_id"], json!(user));
        // A list never creates a profile for an id Braze does not know.
        assert_eq!(objects[0]["_update_existing_only"], json!(true));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn braze_429s_and_5xx_are_waited_out_and_every_user_lands_once() {
    let (file, users) = batch_file("throttled", 2_000, &sample_ids(), 5, 21);
    let braze = FakeBraze::start(KEY).await;
    // Braze allows fewer requests than we were told: it answers 429 with its reset time.
    braze.limit(8, Duration::from_secs(1));
    braze.fail_next(3);
    let cp = checkpoint("throttled");
    let finished = run(
        &braze,
        &[],
        &[
            file.to_str().unwrap(),
            "--items",
            &sample_items(),
            "--rate",
            "100/1s",
            "--concurrency",
            "1",
            "--checkpoint",
            &cp,
        ],
    )
    .await;
    finished.exited(0);
    let (rate_limited, server_errors, _) = braze.refusals();
    assert_eq!(server_errors, 3);
    // Braze's headers drive the waiting: `X-RateLimit-Remaining: 0` pauses every sender until
    // `X-RateLimit-Reset`, so Braze's window is kept though we were told 100 a second. A 429
    // may still come when a window resets between requests, never one per attempt.
    assert!(
        rate_limited <= 2,
        "{rate_limited} 429s: Braze's rate-limit headers were not honoured"
    );
    let arrivals = braze.arrivals();
    let span = arrivals[arrivals.len() - 1].duration_since(arrivals[0]);
    // 30 requests (27 and 3 answered 500) at 8 a second take at least 3 windows.
    assert!(
        span >= Duration::from_secs(3),
        "{span:?}: Braze's window was not kept"
    );
    let received = braze.by_user();
    assert_eq!(received.len(), users.len());
    assert!(received.values().all(|objects| objects.len() == 1));
    finished.says("answered 429");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_midway_resumes_and_sends_only_the_in_flight_batches_twice() {
    let (file, users) = batch_file("killed", 10_000, &sample_ids(), 6, 22);
    let braze = FakeBraze::start(KEY).await;
    let cp = checkpoint("killed");
    let args = [
        file.to_str().unwrap(),
        "--items",
        &sample_items(),
        "--rate",
        "80/1s",
        "--concurrency",
        "4",
        "--checkpoint",
        &cp,
    ];

    let mut first = command(&braze, &[])
        .args(args)
        .spawn()
        .expect("start braze-sync");
    let started = std::time::Instant::now();
    while braze.accepted().len() < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "too slow to start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A second run on the same checkpoint would send the same users: it refuses to start.
    let second = run(&braze, &[], &args).await;
    assert_eq!(second.code, Some(2), "{}\n{}", second.stdout, second.stderr);
    assert!(
        second.stderr.contains("in use by another braze-sync run"),
        "{}",
        second.stderr
    );
    first.start_kill().expect("SIGKILL");
    first.wait().await.unwrap();
    // Requests the fake had whole before the kill may still be being recorded.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = braze.accepted().len();
    assert!(before < 134, "the run finished before the kill");

    let resumed = run(&braze, &[], &args).await;
    resumed.exited(0);
    assert!(resumed.stdout.contains("resumed"), "{}", resumed.stdout);

    let received = braze.by_user();
    assert_eq!(received.len(), users.len(), "every user delivered");
    let twice: Vec<&String> = received
        .iter()
        .filter(|(_, o)| o.len() > 1)
        .map(|(u, _)| u)
        .collect();
    assert!(received.values().all(|o| o.len() <= 2));
    // Only batches in flight at the kill: at most the concurrency's worth, in whole batches.
    assert!(twice.len() <= 4 * 75, "{} users sent twice", twice.len());
    let accepted = braze.accepted();
    let first_run: HashSet<&str> = accepted[..before]
        .iter()
        .flat_map(|r| r.objects.iter().map(|(u, _)| u.as_str()))
        .collect();
    let batches_twice: HashSet<usize> = twice
        .iter()
        .map(|u| users.iter().position(|(user, _)| user == *u).unwrap() / 75)
        .collect();
    for batch in batches_twice {
        let whole = &users[batch * 75..((batch + 1) * 75).min(users.len())];
        assert!(
            whole.iter().all(|(u, _)| first_run.contains(u.as_str())),
            "batch {batch} resent in part"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_line_is_named_by_number_and_nothing_else_is_lost() {
    let (file, users) = batch_file("malformed", 500, &sample_ids(), 5, 23);
    let mut lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines[249] =
        r#"{"input":{"userId":"user-249"},"output":{"recommendedItems":["a","b"]"#.to_owned();
    lines[300] =
        r#"{"input":{"userId":"user-300"},"output":null,"error":"User not found"}"#.to_owned();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let braze = FakeBraze::start(KEY).await;
    let cp = checkpoint("malformed");
    let args = [
        file.to_str().unwrap(),
        "--items",
        &sample_items(),
        "--checkpoint",
        &cp,
    ];

    let finished = run(&braze, &[], &args).await;
    finished.exited(1);
    assert!(
        finished.stderr.contains("line 250: malformed line"),
        "{}",
        finished.stderr
    );
    assert!(
        finished.stderr.contains(
            r#"line 301 (user "user-300"): Personalize could not recommend: User not found"#
        ),
        "{}",
        finished.stderr
    );
    finished.says("498 users sent");
    let received = braze.by_user();
    assert_eq!(received.len(), 498);
    for (i, (user, _)) in users.iter().enumerate() {
        assert_eq!(received.contains_key(user), i != 249 && i != 300, "{user}");
    }

    // Run again: the checkpoint knows every line is done, so nothing is sent twice.
    let again = run(&braze, &[], &args).await;
    assert!(again.stdout.contains("0 users sent"), "{}", again.stdout);
    again.says("500 lines were done");
    assert_eq!(braze.by_user().len(), 498);
    assert!(braze.by_user().values().all(|o| o.len() == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_braze_refuses_are_reported_and_their_batch_mates_land() {
    let (file, users) = batch_file("refused", 300, &sample_ids(), 5, 24);
    let braze = FakeBraze::start(KEY).await;
    braze.refuse_users(&["user-17", "user-160"]);
    let cp = checkpoint("refused");
    let finished = run(
        &braze,
        &[],
        &[
            file.to_str().unwrap(),
            "--items",
            &sample_items(),
            "--checkpoint",
            &cp,
        ],
    )
    .await;
    finished.exited(1);
    for user in ["user-17", "user-160"] {
        assert!(
            finished
                .stderr
                .contains(&format!(r#"(user "{user}"): refused by Braze: HTTP 400"#)),
            "{}",
            finished.stderr
        );
    }
    finished.says("298 users sent");
    let received = braze.by_user();
    assert_eq!(received.len(), users.len() - 2);

    // A wrong key stops the run at once, saying so.
    let wrong = run(
        &braze,
        &[("BRAZE_API_KEY", "not-the-key")],
        &[
            file.to_str().unwrap(),
            "--items",
            &sample_items(),
            "--checkpoint",
            &checkpoint("wrong-key"),
        ],
    )
    .await;
    assert_eq!(wrong.code, Some(3));
    wrong.says("Braze refused the API key (HTTP 401");
    // So does a key without the users.track permission.
    braze.forbid(true);
    let forbidden = run(
        &braze,
        &[],
        &[
            file.to_str().unwrap(),
            "--items",
            &sample_items(),
            "--checkpoint",
            &checkpoint("forbidden"),
        ],
    )
    .await;
    assert_eq!(forbidden.code, Some(3));
    assert!(
        forbidden
            .stdout
            .contains("Braze refused the API key (HTTP 403"),
        "{}",
        forbidden.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_sends_nothing_and_needs_no_key() {
    let (file, _) = batch_file("dry", 200, &sample_ids(), 5, 25);
    let braze = FakeBraze::start(KEY).await;
    let finished = run(
        &braze,
        &[("BRAZE_API_KEY", "")],
        &[
            file.to_str().unwrap(),
            "--items",
            &sample_items(),
            "--dry-run",
        ],
    )
    .await;
    finished.exited(0);
    finished.says("200 users ready to send (dry run");
    assert!(braze.accepted().is_empty());
}

/// An S3 client for moto: path-style addresses, test credentials.
pub(super) fn s3(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "AKIDTESTTESTTEST",
            "test-secret",
            None,
            None,
            "tests",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A bucket of its own in moto, holding `file` at `key`.
pub(super) async fn upload(moto: &str, bucket: &str, key: &str, file: &Path) {
    s3(moto)
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
    upload_object(moto, bucket, key, file).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_input_streams_from_a_real_s3_server() {
    let moto = super::processes::shared_moto();
    let (file, users) = batch_file("s3", 1_000, &sample_ids(), 5, 26);
    upload(moto, "batch-cli", "out/users.json.out", &file).await;
    let braze = FakeBraze::start(KEY).await;
    let cp = checkpoint("s3");
    let finished = run(
        &braze,
        &[("AWS_ENDPOINT_URL_S3", moto)],
        &[
            "s3://batch-cli/out/users.json.out",
            "--items",
            &sample_items(),
            "--checkpoint",
            &cp,
        ],
    )
    .await;
    finished.exited(0);
    assert_eq!(braze.by_user().len(), users.len());
    // The checkpoint names the object and its ETag.
    let header = std::fs::read_to_string(&cp).unwrap();
    assert!(
        header.starts_with(r#"{"input":"s3://batch-cli/out/users.json.out","version":"\""#),
        "{header}"
    );

    let missing = run(
        &braze,
        &[("AWS_ENDPOINT_URL_S3", moto)],
        &["s3://batch-cli/nothing-here", "--items", &sample_items()],
    )
    .await;
    assert_eq!(missing.code, Some(2));
    assert!(
        missing
            .stderr
            .contains("cannot read s3://batch-cli/nothing-here"),
        "{}",
        missing.stderr
    );
}

/// The template's sync function as Lambda runs it: an EventBridge `Object Created` event in, the
/// key from Secrets Manager, the items from DynamoDB, the users into Braze.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_lambda_an_object_created_event_sends_that_object() {
    let moto = super::processes::shared_moto();
    let (dynamodb, table) = shared_catalog_table();
    let (file, users) = batch_file("lambda", 800, &all_ids(), 5, 27);
    upload(moto, "batch-lambda", "out/users.json.out", &file).await;
    let secrets = aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                "AKIDTESTTESTTEST",
                "test-secret",
                None,
                None,
                "tests",
            ))
            .endpoint_url(moto)
            .build(),
    );
    let secret = secrets
        .create_secret()
        .name(unique_name("braze-key"))
        .secret_string(json!({"api_key": KEY}).to_string())
        .send()
        .await
        .expect("create secret");
    let braze = FakeBraze::start(KEY).await;
    let emulator = super::lambda_emulator::Emulator::start().await;
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(unique_name("lambda-tmp"))
        .display()
        .to_string();
    std::fs::create_dir_all(&tmp).unwrap();
    let mut child = command(
        &braze,
        &[
            ("AWS_LAMBDA_RUNTIME_API", &emulator.address),
            // Lambda's /tmp, fresh as in a new execution environment: the checkpoint lives there.
            ("TMPDIR", &tmp),
            ("AWS_LAMBDA_FUNCTION_NAME", "braze-sync"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
            ("AWS_ENDPOINT_URL_S3", moto),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto),
            ("AWS_ENDPOINT_URL_DYNAMODB", dynamodb),
            ("ITEMS_TABLE", table),
            ("BRAZE_API_KEY", ""),
            ("BRAZE_API_KEY_SECRET_ARN", secret.arn().unwrap()),
            ("RECOMMENDATION_COUNT", "3"),
        ],
    )
    .env_remove("BRAZE_API_KEY")
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start braze-sync in Lambda mode");
    let event = json!({
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": "batch-lambda"}, "object": {"key": "out/users.json.out"}}
    });
    emulator.invoke("sync-1", &event.to_string());
    let answers = emulator.answers(&["sync-1".to_owned()]).await;
    let answer: Value =
        serde_json::from_str(&answers[0]).unwrap_or_else(|_| panic!("{}", answers[0]));
    assert_eq!(answer[0]["sent"], json!(800), "{answer}");
    let received = braze.by_user();
    assert_eq!(received.len(), users.len());
    assert!(
        received
            .values()
            .all(|o| o[0]["recommendations"].as_array().unwrap().len() == 3)
    );

    // The key is rotated: Braze takes only the new one, and the secret holds it. The warm
    // environment's first request gets a 401, reads the secret again once, and goes on.
    braze.rotate_key("rotated-key");
    secrets
        .put_secret_value()
        .secret_id(secret.arn().unwrap())
        .secret_string(json!({"api_key": "rotated-key"}).to_string())
        .send()
        .await
        .expect("rotate the secret");
    upload_object(moto, "batch-lambda", "out/day-2.json.out", &file).await;
    let next = json!({
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": "batch-lambda"}, "object": {"key": "out/day-2.json.out"}}
    });
    emulator.invoke("sync-2", &next.to_string());
    let answers = emulator.answers(&["sync-2".to_owned()]).await;
    let _ = child.start_kill();
    let answer: Value =
        serde_json::from_str(&answers[0]).unwrap_or_else(|_| panic!("{}", answers[0]));
    assert_eq!(answer[0]["sent"], json!(800), "{answer}");
    assert!(braze.by_user().values().all(|o| o.len() == 2));
}

/// Puts `file` at `key` in an existing bucket.
async fn upload_object(moto: &str, bucket: &str, key: &str, file: &Path) {
    s3(moto)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(
            aws_sdk_s3::primitives::ByteStream::from_path(file)
                .await
                .unwrap(),
        )
        .send()
        .await
        .expect("put object");
}

/// `--ids-only`: each user's attribute is an array of the ids alone, in the endpoint's order,
/// without repeats or the ids the catalog lacks, for a Braze Catalog to look up at send time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_only_sends_arrays_of_ids() {
    let mut ids = sample_ids();
    ids.push("not-in-the-catalog".to_owned());
    let (file, users) = batch_file("ids-only", 150, &ids, 6, 31);
    let braze = FakeBraze::start(KEY).await;
    let finished = run(
        &braze,
        &[],
        &[
            file.to_str().unwrap(),
            "--items",
            &sample_items(),
            "--ids-only",
            "--checkpoint",
            &checkpoint("ids-only"),
        ],
    )
    .await;
    finished.exited(0);
    let received = braze.by_user();
    let known: HashSet<String> = sample_ids().into_iter().collect();
    let mut checked = 0;
    for (user, listed) in &users {
        // Known ids, each once (the file repeats some, as real output can).
        let mut seen = HashSet::new();
        let expected: Vec<&String> = listed
            .iter()
            .filter(|id| known.contains(*id) && seen.insert(id.as_str()))
            .collect();
        if expected.is_empty() {
            continue;
        }
        let objects = &received[user];
        assert_eq!(objects.len(), 1, "{user}");
        let sent: Vec<&str> = objects[0]["recommendations"]
            .as_array()
            .unwrap_or_else(|| panic!("{user}: {}", objects[0]))
            .iter()
            .map(|id| id.as_str().expect("an id, not an object"))
            .collect();
        assert_eq!(sent, expected, "{user}");
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
}
