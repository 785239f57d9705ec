//! personalize-setup as a user runs it, against the project's fake Personalize control plane
//! (every request checked against AWS's model of the service) and moto's S3 holding the
//! datasets: plan, apply, the comparison and the parameters line; reruns that change nothing, a
//! run killed midway, newer data gated before it serves, a failed import, and teardown.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use personalize_braze_testkit::binaries;
use personalize_braze_testkit::fake_personalize_control::FakePersonalizeControl;
use serde_json::json;

use super::braze_sync::s3;

/// The example file, its datasets in a bucket of the test's own, fast polling.
struct World {
    fake: FakePersonalizeControl,
    moto: &'static str,
    dir: PathBuf,
    file: PathBuf,
    bucket: String,
}

impl World {
    async fn start(name: &str) -> World {
        let fake = FakePersonalizeControl::start().await;
        let moto = super::processes::shared_moto();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("setup-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let bucket = format!("setup-{name}");
        let client = s3(moto);
        client.create_bucket().bucket(&bucket).send().await.unwrap();
        for file in ["interactions.csv", "items.csv", "users.csv"] {
            put(
                moto,
                &bucket,
                &format!("datasets/{file}"),
                &examples.join("data").join(file),
            )
            .await;
        }
        let text = std::fs::read_to_string(examples.join("setup/personalize.toml"))
            .unwrap()
            .replace("s3://shop-personalize/", &format!("s3://{bucket}/"))
            .replace(
                "schemas/",
                &format!("{}/", examples.join("setup/schemas").display()),
            )
            .replace("../data/", &format!("{}/", examples.join("data").display()));
        let file = dir.join("personalize.toml");
        std::fs::write(&file, text).unwrap();
        World {
            fake,
            moto,
            dir,
            file,
            bucket,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binaries::path("personalize-setup"));
        command
            .args(args)
            .env("AWS_ENDPOINT_URL_PERSONALIZE", &self.fake.endpoint)
            .env("AWS_ENDPOINT_URL_S3", self.moto)
            .env("AWS_ACCESS_KEY_ID", "AKIDTESTTESTTEST")
            .env("AWS_SECRET_ACCESS_KEY", "test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        command
    }

    async fn run(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    fn file(&self) -> &str {
        self.file.to_str().unwrap()
    }

    async fn apply(&self, extra: &[&str]) -> Output {
        let mut args = vec!["apply", self.file(), "--poll", "0.01"];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    /// The operations the fake received from `from` on that changed something.
    fn changes_since(&self, from: usize) -> Vec<String> {
        self.fake.operations()[from..]
            .iter()
            .filter(|op| {
                ["Create", "Update", "Delete"]
                    .iter()
                    .any(|verb| op.starts_with(verb))
            })
            .cloned()
            .collect()
    }
}

async fn put(moto: &str, bucket: &str, key: &str, file: &Path) {
    let body = aws_sdk_s3::primitives::ByteStream::from_path(file)
        .await
        .unwrap();
    s3(moto)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body)
        .send()
        .await
        .unwrap();
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn succeeded(output: &Output) -> (String, String) {
    let (stdout, stderr) = text(output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

const GROUP: &str = "arn:aws:personalize:us-east-1:123456789012:dataset-group/shop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_then_apply_gives_a_serving_personalize_and_the_stacks_parameters() {
    let world = World::start("apply").await;

    // Plan: reads only, and says everything it would do, with the cost.
    let (stdout, stderr) = succeeded(&world.run(&["plan", world.file()]).await);
    assert!(
        world.changes_since(0).is_empty(),
        "{:?}",
        world.fake.operations()
    );
    for expected in [
        "+ create dataset group shop (custom)",
        "+ create the Interactions dataset",
        "+ import s3://setup-apply/datasets/interactions.csv into the Interactions dataset",
        "+ create solution shop-for-you-",
        "+ train the first version of shop-for-you-",
        "+ create campaign shop-for-you on shop-for-you's newest version: billed for 1 TPS every hour it exists (720 TPS-hours a month), used or not",
        "+ create filter gold-only-premium: INCLUDE ItemID WHERE Items.CATEGORY IN (\"premium\") IF CurrentUser.TIER = \"gold\"",
        "+ create event tracker shop-events",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in:\n{stderr}");
    }
    assert!(stdout.contains("nothing was changed"), "{stdout}");

    // Apply: everything, in dependency order, each request valid for the real service.
    let (stdout, _) = succeeded(&world.apply(&[]).await);
    let creates = world.changes_since(0);
    let position = |op: &str| {
        creates
            .iter()
            .position(|o| o == op)
            .unwrap_or_else(|| panic!("no {op} in {creates:?}"))
    };
    assert!(position("CreateDatasetGroup") < position("CreateSchema"));
    assert!(position("CreateDataset") < position("CreateDatasetImportJob"));
    assert!(position("CreateDatasetImportJob") < position("CreateSolution"));
    assert!(position("CreateSolutionVersion") < position("CreateCampaign"));
    assert_eq!(
        creates
            .iter()
            .filter(|o| *o == "CreateDatasetImportJob")
            .count(),
        3
    );
    assert_eq!(creates.iter().filter(|o| *o == "CreateCampaign").count(), 2);
    assert_eq!(creates.iter().filter(|o| *o == "CreateFilter").count(), 3);

    // Versions compared, the embedded model beside them.
    assert!(stdout.contains("shop-for-you-"), "{stdout}");
    assert!(
        stdout.contains("| NDCG@5 | NDCG@10 | NDCG@25 | precision@5 |"),
        "{stdout}"
    );
    assert!(stdout.contains("(serving)"), "{stdout}");
    assert!(
        stdout.contains("| embedded model (evaluate, 20% holdout) |"),
        "{stdout}"
    );

    // The parameters line, every ARN a real one of the fake's.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("sam deploy --parameter-overrides "))
        .unwrap_or_else(|| panic!("{stdout}"));
    let tracking = world
        .fake
        .arns()
        .into_iter()
        .find(|a| a.contains(":event-tracker/"))
        .and_then(|arn| world.fake.resource(&arn))
        .and_then(|t| t["trackingId"].as_str().map(str::to_owned))
        .unwrap();
    assert_eq!(
        line,
        format!(
            "sam deploy --parameter-overrides \
             PersonalizeArn=arn:aws:personalize:us-east-1:123456789012:campaign/shop-for-you \
             RelatedItemsArn=arn:aws:personalize:us-east-1:123456789012:campaign/shop-similar \
             Filters=arn:aws:personalize:us-east-1:123456789012:filter/not-purchased,\
             arn:aws:personalize:us-east-1:123456789012:filter/by-category,\
             arn:aws:personalize:us-east-1:123456789012:filter/gold-only-premium \
             EventTrackerId={tracking}"
        )
    );
    let campaign = world
        .fake
        .resource("arn:aws:personalize:us-east-1:123456789012:campaign/shop-for-you")
        .unwrap();
    assert_eq!(campaign["status"], "ACTIVE");
    assert_eq!(campaign["minProvisionedTPS"], 1);

    // A rerun, and a plan after it, change nothing.
    let before = world.fake.operations().len();
    let samconfig = world.dir.join("samconfig.toml");
    let (stdout, _) = succeeded(
        &world
            .apply(&["--samconfig", samconfig.to_str().unwrap()])
            .await,
    );
    let section = std::fs::read_to_string(&samconfig).unwrap();
    let overrides = line.trim_start_matches("sam deploy --parameter-overrides ");
    assert_eq!(
        section,
        format!(
            "version = 0.1\n\n[default.deploy.parameters]\nparameter_overrides = {overrides:?}\n"
        )
    );
    assert!(
        world.changes_since(before).is_empty(),
        "{:?}",
        world.changes_since(before)
    );
    assert!(stdout.contains(line), "{stdout}");
    let (stdout, _) = succeeded(&world.run(&["plan", world.file()]).await);
    assert!(stdout.contains("plan: nothing to do"), "{stdout}");
    assert!(world.changes_since(before).is_empty());

    // The operator policy in crates/setup/iam.yaml allows every operation setup called.
    let policy = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/setup/iam.yaml"),
    )
    .unwrap();
    let mut called: Vec<String> = world.fake.operations();
    called.sort();
    called.dedup();
    for operation in called {
        assert!(
            policy.contains(&format!("personalize:{operation}")),
            "crates/setup/iam.yaml does not allow personalize:{operation}"
        );
    }
    let _ = &world.dir;
    let _ = &world.bucket;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_data_trains_a_new_version_which_serves_only_if_no_worse() {
    let world = World::start("gate").await;
    succeeded(&world.apply(&[]).await);
    let serving = |world: &World| {
        world
            .fake
            .resource("arn:aws:personalize:us-east-1:123456789012:campaign/shop-for-you")
            .unwrap()["solutionVersionArn"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = serving(&world);

    // A new interactions file: a new import, a new version, worse: the campaign stays.
    let mut data = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/interactions.csv"),
    )
    .unwrap();
    data.push_str("user-00001,sku-10002,view,1790000000\n");
    let changed = world.dir.join("interactions.csv");
    std::fs::write(&changed, data).unwrap();
    put(
        world.moto,
        &world.bucket,
        "datasets/interactions.csv",
        &changed,
    )
    .await;
    let before = world.fake.operations().len();
    let plan = world.run(&["plan", world.file()]).await;
    let (_, stderr) = succeeded(&plan);
    assert!(
        stderr.contains("the object changed since the last import"),
        "{stderr}"
    );
    assert!(
        stderr.contains("+ train a new version of shop-for-you-"),
        "{stderr}"
    );

    let output = world.apply(&[]).await;
    let (_, stderr) = succeeded(&output);
    let changes = world.changes_since(before);
    assert_eq!(
        changes
            .iter()
            .filter(|o| *o == "CreateDatasetImportJob")
            .count(),
        1,
        "{changes:?}"
    );
    assert_eq!(
        changes
            .iter()
            .filter(|o| *o == "CreateSolutionVersion")
            .count(),
        2,
        "{changes:?}"
    );
    assert!(
        !changes
            .iter()
            .any(|o| o == "CreateDatasetGroup" || o == "CreateSolution"),
        "{changes:?}"
    );
    // The default metrics rise with each version: the new one is no worse, and serves.
    assert!(
        stderr.contains("~ campaign shop-for-you: moves to the newest version"),
        "{stderr}"
    );
    let second = serving(&world);
    assert_ne!(first, second);

    // Another file, and this time the new version is made worse than the serving one.
    let mut data = std::fs::read_to_string(&changed).unwrap();
    data.push_str("user-00002,sku-10003,view,1790000001\n");
    std::fs::write(&changed, data).unwrap();
    put(
        world.moto,
        &world.bucket,
        "datasets/interactions.csv",
        &changed,
    )
    .await;
    world.fake.set_metrics(
        &second,
        json!({"normalized_discounted_cumulative_gain_at_10": 0.9}),
    );
    let (_, stderr) = succeeded(&world.apply(&[]).await);
    assert!(
        stderr.contains("! campaign shop-for-you stays on its version"),
        "{stderr}"
    );
    assert_eq!(serving(&world), second);
    // --promote moves it anyway.
    let (_, stderr) = succeeded(&world.apply(&["--promote"]).await);
    assert!(stderr.contains("; --promote)"), "{stderr}");
    assert_ne!(serving(&world), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_stops_with_personalizes_reason_and_a_killed_run_goes_on() {
    let world = World::start("failure").await;
    world.fake.fail_next(
        "datasetImportJob",
        "Input CSV is missing the following columns: [TIMESTAMP]",
    );
    let output = world.apply(&[]).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Input CSV is missing the following columns: [TIMESTAMP]. Fix the file"),
        "{stderr}"
    );
    assert!(
        !world
            .fake
            .operations()
            .contains(&"CreateSolution".to_owned())
    );
    // Rerun with the same file: the same failure, named again; nothing new started.
    let before = world.fake.operations().len();
    let again = world.apply(&[]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        world.changes_since(before).is_empty(),
        "{:?}",
        world.changes_since(before)
    );

    // Failed training: Personalize's reason, and nothing served.
    let training = World::start("training").await;
    training.fake.fail_next(
        "solutionVersion",
        "Not enough interactions to train a model",
    );
    let output = training.apply(&[]).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("training shop-for-you-")
            && stderr.contains("failed: Not enough interactions to train a model"),
        "{stderr}"
    );
    assert!(
        !training
            .fake
            .operations()
            .contains(&"CreateCampaign".to_owned())
    );
    let again = training.apply(&[]).await;
    let (_, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr.contains("Not enough interactions to train a model"),
        "{stderr}"
    );

    // A fresh group, killed while it waits on training, then run again: it goes on.
    let killed = World::start("killed").await;
    let mut child = killed
        .command(&["apply", killed.file(), "--poll", "0.5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !killed
        .fake
        .operations()
        .contains(&"CreateSolutionVersion".to_owned())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "apply never started training"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    succeeded(&killed.apply(&[]).await);
    let ops = killed.fake.operations();
    for op in [
        "CreateDatasetGroup",
        "CreateSolution",
        "CreateSolutionVersion",
    ] {
        let first_solution = ops.iter().filter(|o| *o == op).count();
        assert!(first_solution >= 1, "{op}: {ops:?}");
    }
    assert_eq!(
        ops.iter().filter(|o| *o == "CreateDatasetGroup").count(),
        1,
        "{ops:?}"
    );
    // Two solutions in the file, each trained once.
    assert_eq!(
        ops.iter().filter(|o| *o == "CreateSolutionVersion").count(),
        2,
        "{ops:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_asks_then_removes_what_setup_made_and_nothing_else() {
    let world = World::start("teardown").await;
    succeeded(&world.apply(&[]).await);
    // A filter someone made in the console, in the same group.
    let theirs = world.fake.existing(
        "filter",
        json!({
            "name": "console-filter",
            "filterArn": "arn:aws:personalize:us-east-1:123456789012:filter/console-filter",
            "datasetGroupArn": GROUP,
            "filterExpression": "EXCLUDE ItemID WHERE Items.CATEGORY IN (\"x\")",
            "status": "ACTIVE"
        }),
    );

    // A batch job on the serving version, and the braze-sync command for its output.
    let input = format!("s3://{}/batch/users.jsonl", world.bucket);
    let output = format!("s3://{}/batch/out/", world.bucket);
    let (stdout, _) = succeeded(
        &world
            .run(&[
                "batch",
                world.file(),
                "--solution",
                "shop-for-you",
                "--input",
                &input,
                "--output",
                &output,
                "--poll",
                "0.01",
            ])
            .await,
    );
    assert!(
        stdout.contains(&format!(
            "braze-sync {output}users.jsonl.out --table ITEMS_TABLE"
        )),
        "{stdout}"
    );
    let job = world
        .fake
        .calls()
        .into_iter()
        .find(|c| c.operation == "CreateBatchInferenceJob")
        .unwrap();
    assert_eq!(job.body["jobInput"]["s3DataSource"]["path"], input.as_str());
    assert_eq!(job.body["numResults"], 25);

    // Without a terminal and without --yes: refused, nothing deleted.
    let before = world.fake.operations().len();
    let refused = world.run(&["teardown", world.file()]).await;
    let (_, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nothing was deleted"), "{stderr}");
    assert!(world.changes_since(before).is_empty());

    let (_, stderr) = succeeded(
        &world
            .run(&["teardown", world.file(), "--yes", "--poll", "0.01"])
            .await,
    );
    let deletes = world.changes_since(before);
    assert!(
        deletes.first().is_some_and(|op| op == "DeleteCampaign"),
        "{deletes:?}"
    );
    assert!(
        stderr.contains("= filter console-filter was not created by setup: left"),
        "{stderr}"
    );
    assert!(
        stderr.contains("= dataset group shop holds what setup did not create: left"),
        "{stderr}"
    );
    let left = world.fake.arns();
    assert_eq!(left, {
        let mut expected = vec![GROUP.to_owned(), theirs];
        expected.sort();
        expected
    });
}

#[test]
fn the_iam_template_deploys_least_privilege() {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/setup/iam.yaml");
    let deployed = super::template::deploy(&template, &[("BucketName", "shop-personalize")]);
    let role = super::template::one_of_type(&deployed, "AWS::IAM::Role");
    let trust = &role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(
        trust["Principal"],
        json!({"Service": "personalize.amazonaws.com"})
    );
    assert_eq!(
        trust["Condition"]["StringEquals"]["aws:SourceAccount"],
        "123456789012"
    );
    let statements = |policy: &serde_json::Value| -> Vec<serde_json::Value> {
        policy["Statement"].as_array().cloned().unwrap_or_default()
    };
    let role_statements = statements(&role["Properties"]["Policies"][0]["PolicyDocument"]);
    let operator = super::template::one_of_type(&deployed, "AWS::IAM::ManagedPolicy");
    let operator_statements = statements(&operator["Properties"]["PolicyDocument"]);
    for statement in role_statements.iter().chain(&operator_statements) {
        let actions: Vec<&str> = match &statement["Action"] {
            serde_json::Value::String(one) => vec![one.as_str()],
            many => many
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect(),
        };
        assert!(
            !actions.iter().any(|a| a.contains('*')),
            "a wildcard action: {statement}"
        );
        let resources = statement["Resource"].to_string();
        if resources.contains("\"*\"") {
            // Only account-wide listings, which take no resource.
            assert!(
                actions.iter().all(|a| a.starts_with("personalize:List")),
                "{statement}"
            );
        }
    }
    // The role reads the datasets and batch input, and writes only batch output.
    let writes: Vec<&serde_json::Value> = role_statements
        .iter()
        .filter(|s| s["Action"] == "s3:PutObject")
        .collect();
    assert_eq!(writes.len(), 1);
    assert!(
        writes[0]["Resource"]
            .to_string()
            .contains("shop-personalize/batch/*"),
        "{}",
        writes[0]
    );
    // The operator hands the role to Personalize and to nothing else.
    let pass = operator_statements
        .iter()
        .find(|s| s["Action"] == "iam:PassRole")
        .unwrap();
    assert_eq!(
        pass["Condition"]["StringEquals"]["iam:PassedToService"],
        "personalize.amazonaws.com"
    );
}
