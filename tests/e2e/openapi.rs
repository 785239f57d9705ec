//! `openapi.yaml` and the router agree: every documented route and method is served, every route
//! and method the router serves is documented, and any other method on a documented path is a 405
//! whose `Allow` lists exactly the documented methods. (Schemathesis, in `tests/contract/run`,
//! then checks the answers against the document.)

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use personalize_braze::config::{Backend, Config};
use personalize_braze::startup;
use personalize_braze_api::ROUTES;
use serde_json::Value;
use tower::ServiceExt;

/// openapi.yaml as JSON, read by the Python the template tests use (PyYAML comes with the SAM CLI).
fn document() -> Value {
    let python = std::env::var("SAM_PYTHON").expect("SAM_PYTHON is set by tests/run");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let output = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("openapi.yaml is YAML")
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((path.clone(), method.to_uppercase()));
        }
    }
    operations
}

#[tokio::test]
async fn the_document_and_the_router_list_the_same_routes_and_methods() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented = documented(&doc);
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|(path, allow)| {
            allow
                .split(", ")
                .map(|method| (path.to_string(), method.to_owned()))
        })
        .collect();
    assert_eq!(documented, routed);

    // The router itself, in local mode over the sample data: documented methods are served,
    // others are 405s naming the documented ones.
    let config = Config::from_lookup(|_| None).unwrap();
    let Backend::Local { data_dir, .. } = &config.backend else {
        panic!("no AWS setting: local mode");
    };
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(data_dir);
    let (router, _, _) = startup::local_app(&config, &data_dir).unwrap();
    for (path, _) in ROUTES {
        let allowed: Vec<&str> = documented
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, m)| m.as_str())
            .collect();
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri(path)
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let response = router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            if allowed.contains(&method.as_str()) {
                assert!(
                    status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}: {status}"
                );
            } else {
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                let allow = response.headers()["allow"].to_str().unwrap();
                let mut listed: Vec<&str> = allow.split(", ").collect();
                listed.sort();
                let mut expected = allowed.clone();
                expected.sort();
                assert_eq!(listed, expected, "Allow on {path}");
            }
        }
    }
}

/// Every error code the document lists is one the service can answer, and the other way round:
/// the codes in the error module are the document's.
#[test]
fn the_documented_error_codes_are_the_services() {
    let doc = document();
    let documented: BTreeSet<&str> =
        doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/api/src/error.rs"),
    )
    .unwrap();
    // Codes are the string literals in `describe`'s answers: `StatusCode::…,\n "code",`.
    let in_code: BTreeSet<&str> = source
        .split("StatusCode::")
        .skip(1)
        .filter_map(|after| {
            let literal = after.split_once(",\n")?.1.trim_start();
            let code = literal.strip_prefix('"')?.split('"').next()?;
            code.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_')
                .then_some(code)
        })
        .collect();
    assert_eq!(documented, in_code);
}

/// A URL longer than the HTTP layer takes gets the 414 the document lists for every operation
/// (the fuzzer found it undocumented once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_url_gets_the_documented_414() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["responses"].get("414").is_some(),
                "{method} {path} does not document 414"
            );
        }
    }
    let service =
        super::local_mode::start(vec![("DATA_DIR", super::local_mode::sample_data())]).await;
    // Written by hand: HTTP clients refuse to build a URL this long.
    let address = service.base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /recommendations?user_id=user-00001&pad={} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n",
        "x".repeat(70_000)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer}");
}
