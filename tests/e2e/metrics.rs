//! The metrics each request line carries, read back with our EMF reader after a scripted run
//! against DynamoDB Local and the fake Personalize, and compared with what the fakes did.

use std::collections::BTreeMap;
use std::time::Duration;

use super::emf::{self, Line};
use super::endpoints::full_stack;
use super::fake_personalize::Mode;
use super::http::HttpClient;
use super::local_mode::{sample_data, start as start_local};

/// What one step of the script expects of its line: route, status, and the route-dimension
/// metrics that must have exactly these values. Latencies are checked separately.
struct Expect {
    route: &'static str,
    status: u64,
    metrics: &'static [(&'static str, f64)],
}

/// The upstream flags every route that calls one writes: 0 unless the step's metrics say 1.
const UPSTREAM: [&str; 4] = [
    "UpstreamThrottled",
    "UpstreamUnavailable",
    "UpstreamTimeout",
    "Misconfigured",
];

fn check(line: &Line, expect: &Expect) {
    assert_eq!(line.route(), expect.route, "{:?}", line.root);
    assert_eq!(line.status(), expect.status, "{:?}", line.root);
    let mut wanted: BTreeMap<&str, f64> = expect.metrics.iter().copied().collect();
    if !["/health", "other"].contains(&expect.route) {
        for name in UPSTREAM {
            wanted.entry(name).or_insert(0.0);
        }
    }
    let status = expect.status;
    wanted.insert("Requests", 1.0);
    wanted.insert("Errors4xx", f64::from((400..500).contains(&status)));
    wanted.insert("Errors5xx", f64::from(status >= 500));

    let mut found = line.by_route();
    let latency = found.remove("Latency").expect("every line has Latency");
    for part in ["RecommenderLatency", "CatalogLatency"] {
        if let Some(ms) = found.remove(part) {
            assert!(
                (0.0..=latency).contains(&ms),
                "{part} {ms} ms within Latency {latency} ms"
            );
        }
    }
    assert_eq!(found, wanted, "{}", expect.route);

    // The alarm metrics again, without the route.
    for (name, value) in line.across_routes() {
        assert_eq!(Some(&value), line.by_route().get(name), "{name}");
        assert!(
            [
                "Requests",
                "Latency",
                "Errors4xx",
                "Errors5xx",
                "UpstreamThrottled",
                "UpstreamUnavailable",
                "UpstreamTimeout",
                "Misconfigured",
                "FallbackAnswers"
            ]
            .contains(&name),
            "{name} is written across routes"
        );
    }
    assert!(line.data.iter().all(|d| d.namespace == "Shop/Test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_line_is_emf_with_what_the_fakes_did() {
    // With last-good fallbacks: a step below is answered by one.
    let stack = full_stack(&[
        ("METRICS_NAMESPACE", "Shop/Test"),
        ("FALLBACK", "last-good"),
    ])
    .await;
    let http = HttpClient::new();
    let fake = &stack.fake;
    // Each step: what to do, and what its line must say.
    let mut expected: Vec<Expect> = Vec::new();

    assert_eq!(stack.get("/health").await.status, 200);
    expected.push(Expect {
        route: "/health",
        status: 200,
        metrics: &[],
    });

    // Cold cache: the 10 ids asked for (5 and the margin) are all fetched from DynamoDB.
    let answer = stack.get("/recommendations?user_id=ivy&count=5").await;
    assert_eq!(answer.ids().len(), 5, "{}", answer.body);
    expected.push(Expect {
        route: "/recommendations",
        status: 200,
        metrics: &[
            ("ItemsReturned", 5.0),
            ("EmptyAnswers", 0.0),
            ("CatalogMisses", 0.0),
            ("ItemCacheHits", 0.0),
            ("ItemCacheMisses", 10.0),
            ("FallbackAnswers", 0.0),
        ],
    });
    // Warm: all 10 from the cache.
    stack.get("/recommendations?user_id=ivy&count=5").await;
    expected.push(Expect {
        route: "/recommendations",
        status: 200,
        metrics: &[
            ("ItemsReturned", 5.0),
            ("EmptyAnswers", 0.0),
            ("CatalogMisses", 0.0),
            ("ItemCacheHits", 10.0),
            ("ItemCacheMisses", 0.0),
            ("FallbackAnswers", 0.0),
        ],
    });
    // Every third id (0, 3, 6, 9) is unknown: 4 misses of the cache and of the catalog.
    fake.set_mode(Mode::UnknownIds);
    let answer = stack.get("/recommendations?user_id=ivy&count=5").await;
    assert_eq!(answer.ids().len(), 5, "{}", answer.body);
    expected.push(Expect {
        route: "/recommendations",
        status: 200,
        metrics: &[
            ("ItemsReturned", 5.0),
            ("EmptyAnswers", 0.0),
            ("CatalogMisses", 4.0),
            ("ItemCacheHits", 6.0),
            ("ItemCacheMisses", 4.0),
            ("FallbackAnswers", 0.0),
        ],
    });
    fake.set_mode(Mode::Empty);
    assert_eq!(
        stack.get("/related-items?item_id=item-00001").await.body,
        "[]"
    );
    expected.push(Expect {
        route: "/related-items",
        status: 200,
        metrics: &[
            ("ItemsReturned", 0.0),
            ("EmptyAnswers", 1.0),
            ("CatalogMisses", 0.0),
            ("FallbackAnswers", 0.0),
        ],
    });
    fake.set_mode(Mode::Throttle);
    assert_eq!(
        stack
            .get("/recommendations?user_id=ivy&fallback=off")
            .await
            .status,
        503
    );
    expected.push(Expect {
        route: "/recommendations",
        status: 503,
        metrics: &[("UpstreamThrottled", 1.0)],
    });
    // The same question as ivy's last answer (the unknown-ids one): last-good answers it from
    // the cache, and the line says both that Personalize throttled and that a fallback answered.
    let fallback = stack.get("/recommendations?user_id=ivy&count=5").await;
    assert_eq!(fallback.status, 200, "{}", fallback.body);
    expected.push(Expect {
        route: "/recommendations",
        status: 200,
        metrics: &[
            ("ItemsReturned", 5.0),
            ("EmptyAnswers", 0.0),
            ("CatalogMisses", 0.0),
            ("ItemCacheHits", 5.0),
            ("ItemCacheMisses", 0.0),
            ("FallbackAnswers", 1.0),
            ("UpstreamThrottled", 1.0),
        ],
    });
    fake.set_mode(Mode::MissingCampaign);
    assert_eq!(
        stack.get("/rankings?user_id=ivy&item_ids=a,b").await.status,
        500
    );
    expected.push(Expect {
        route: "/rankings",
        status: 500,
        metrics: &[("Misconfigured", 1.0)],
    });
    fake.set_mode(Mode::Normal);
    assert_eq!(stack.get("/recommendations?count=5").await.status, 400);
    expected.push(Expect {
        route: "/recommendations",
        status: 400,
        metrics: &[],
    });

    // Events: two recorded; then one session of three fails at PutEvents.
    let two = r#"[{"user_id":"ann","event_type":"click","item_id":"item-00001"},
                  {"user_id":"ann","event_type":"click","item_id":"item-00002"}]"#;
    assert_eq!(stack.post("/events", two).await.status, 202);
    expected.push(Expect {
        route: "/events",
        status: 202,
        metrics: &[("EventsAccepted", 2.0), ("EventsRejected", 0.0)],
    });
    fake.set_mode(Mode::FailSession("bea".into()));
    let three = r#"[{"user_id":"ann","event_type":"click","item_id":"item-00001"},
                    {"user_id":"bea","event_type":"click","item_id":"item-00002"},
                    {"user_id":"cid","event_type":"click","item_id":"item-00003"}]"#;
    assert_eq!(stack.post("/events", three).await.status, 503);
    expected.push(Expect {
        route: "/events",
        status: 503,
        metrics: &[
            ("EventsAccepted", 2.0),
            ("EventsRejected", 1.0),
            ("UpstreamUnavailable", 1.0),
        ],
    });
    fake.set_mode(Mode::Normal);

    // Wrong method and unknown path: their own route names, never the path asked for.
    assert_eq!(stack.post("/recommendations", "{}").await.status, 405);
    expected.push(Expect {
        route: "/recommendations",
        status: 405,
        metrics: &[],
    });
    let answer = http
        .get(&format!("{}/wp-admin/ivy", stack.service.base_url))
        .await;
    assert_eq!(answer.status, 404);
    expected.push(Expect {
        route: "other",
        status: 404,
        metrics: &[],
    });

    // Slower than the request budget: a timeout.
    fake.set_mode(Mode::Slow(Duration::from_millis(5_500)));
    assert_eq!(
        stack
            .get("/recommendations?user_id=ivy&fallback=off")
            .await
            .status,
        503
    );
    expected.push(Expect {
        route: "/recommendations",
        status: 503,
        metrics: &[("UpstreamTimeout", 1.0)],
    });

    let log = stack.service.log();
    let lines = emf::request_lines(&log);
    assert_eq!(lines.len(), expected.len(), "one line per request:\n{log}");
    for (line, expect) in lines.iter().zip(&expected) {
        check(line, expect);
    }
    // The fallback's line names its source, and counts it by source too.
    let by_source: Vec<_> = lines
        .iter()
        .flat_map(|line| &line.data)
        .filter(|d| d.dimensions.contains_key("fallback"))
        .collect();
    assert_eq!(by_source.len(), 1, "{by_source:?}");
    assert_eq!(by_source[0].dimensions["fallback"], "last-good");
    assert_eq!(
        (by_source[0].name.as_str(), by_source[0].value),
        ("FallbackAnswers", 1.0)
    );
    let fallback_line = lines
        .iter()
        .find(|l| l.root.contains_key("fallback"))
        .unwrap();
    assert_eq!(fallback_line.root["fallback"], "last-good");
    // The timed-out request's line says how long the recommender was given.
    let timed_out = lines.last().unwrap().by_route();
    assert!(timed_out["Latency"] >= 5_000.0, "{timed_out:?}");
    assert!(!log.contains("ivy"), "no user id at info");
}

/// Local mode writes the same lines, in the default namespace; it has no item cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_writes_the_same_lines() {
    let service = start_local(vec![("DATA_DIR", sample_data())]).await;
    let url = format!(
        "{}/recommendations?user_id=user-00001&count=3",
        service.base_url
    );
    let answer = HttpClient::new().get(&url).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let lines = emf::request_lines(&service.log());
    assert_eq!(lines.len(), 1);
    let metrics = lines[0].by_route();
    assert_eq!(metrics["ItemsReturned"], 3.0);
    assert_eq!(metrics["CatalogMisses"], 0.0);
    assert!(metrics.contains_key("RecommenderLatency"));
    assert!(!metrics.contains_key("ItemCacheHits"), "{metrics:?}");
    assert!(
        lines[0]
            .data
            .iter()
            .all(|d| d.namespace == "PersonalizeBraze")
    );
}
