//! The binary inside Lambda's own loop, driven through the Runtime API emulator: one invocation
//! at a time by default, side by side when `AWS_LAMBDA_MAX_CONCURRENCY` says so (Lambda Managed
//! Instances).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::lambda_emulator::Emulator;
use super::local_mode::sample_data;
use super::processes::{die_with_parent, log_file};

/// The binary as Lambda starts it: local mode over the sample data, the runtime pointed at
/// `emulator`, and the variables Lambda sets.
fn function(emulator: &Emulator, extra: &[(&str, &str)]) -> (Child, PathBuf) {
    let (log, file) = log_file("lambda");
    let mut command = Command::new(env!("CARGO_BIN_EXE_personalize-braze"));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &emulator.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "personalize-braze")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("DATA_DIR", sample_data())
        .env("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true")
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let child = die_with_parent(&mut command)
        .spawn()
        .expect("start the binary");
    (child, log)
}

fn event() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/events/rest-api-get.json"
    ))
    .unwrap()
}

/// Invokes the function `n` times at once; every answer is an API Gateway 200 with 3 items.
async fn invoke_all(emulator: &Emulator, n: usize) {
    let ids: Vec<String> = (0..n).map(|k| format!("request-{k}")).collect();
    for id in &ids {
        emulator.invoke(id, &event());
    }
    for answer in emulator.answers(&ids).await {
        let response: serde_json::Value = serde_json::from_str(&answer).expect(&answer);
        assert_eq!(response["statusCode"], 200, "{answer}");
        let items: serde_json::Value =
            serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(items.as_array().unwrap().len(), 3, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_managed_concurrency_the_runtime_serves_invocations_side_by_side() {
    let emulator = Emulator::start().await;
    let (mut child, log) = function(&emulator, &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);

    assert_eq!(
        emulator.pollers(4).await,
        4,
        "four invocations may wait at once"
    );
    invoke_all(&emulator, 12).await;
    // Each request line names its own invocation, side by side as they ran.
    let log = std::fs::read_to_string(log).unwrap();
    for k in 0..12 {
        let id = format!(r#""lambda_request_id":"request-{k}""#);
        assert_eq!(log.matches(&id).count(), 1, "{id} in\n{log}");
    }

    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_it_the_runtime_takes_one_invocation_at_a_time() {
    let emulator = Emulator::start().await;
    let (mut child, _) = function(&emulator, &[]);

    assert_eq!(emulator.pollers(1).await, 1, "one poll at a time");
    invoke_all(&emulator, 3).await;

    child.kill().unwrap();
    child.wait().unwrap();
}
