//! Our own cost per request: the real router, query parsing, service join and JSON body, with
//! in-memory backends so no network time hides in the figure. Issue target: ≤ 15 µs at count 25.
//!
//! Run: `cargo bench --bench request_path`

use std::path::Path;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use personalize_braze::config::Config;
use personalize_braze::startup;
use personalize_braze_api::metrics::{Metric, RequestLine};
use personalize_braze_core::catalog::cache::{CacheBudget, CachedCatalog};
use personalize_braze_core::dataset::read_items;
use personalize_braze_core::item::UrlTemplates;
use personalize_braze_core::recommender::{
    Event, RankingQuery, RecommendationQuery, Recommendations, Recommender, Recorded,
};
use personalize_braze_core::upstream::UpstreamError;
use personalize_braze_local::file_catalog::FileCatalog;
use tower::ServiceExt;

/// Answers like Personalize would, instantly: the first `count` ids of a fixed ranking, each
/// request starting at a different place so answers differ per user.
struct Ranked(Vec<String>);

impl Recommender for Ranked {
    async fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> Result<Recommendations, UpstreamError> {
        let start = query.subject.user_id().map_or(0, str::len) * 7 % self.0.len();
        Ok(Recommendations {
            item_ids: self
                .0
                .iter()
                .cycle()
                .skip(start)
                .take(query.count as usize)
                .cloned()
                .collect(),
            recommendation_id: Some("RID-b3a7c1f0-2d4e-4c59-9f1a-0e6d8c2b5a41".into()),
            ..Recommendations::default()
        })
    }

    /// The given order, as a campaign with no opinion would answer.
    async fn rank(&self, query: &RankingQuery) -> Result<Recommendations, UpstreamError> {
        Ok(Recommendations {
            item_ids: query.item_ids.clone(),
            ..Recommendations::default()
        })
    }

    async fn record(&self, events: &[Event], _: tokio::time::Instant) -> Recorded {
        Recorded::all(events)
    }
}

fn router() -> Router {
    let (catalog, ids) = sample_catalog();
    app(Ranked(ids), catalog)
}

/// The same, with the catalog behind the item cache a warm AWS-mode function has (every item
/// cached after the first request), so a request pays for cache hits instead of a map lookup.
fn cached_router() -> Router {
    let (catalog, ids) = sample_catalog();
    let budget = CacheBudget {
        items: 10_000,
        bytes: 32 << 20,
    };
    let cached = CachedCatalog::new(catalog, budget, Duration::from_secs(3600));
    app(Ranked(ids), cached)
}

fn sample_catalog() -> (FileCatalog, Vec<String>) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/items.csv");
    let records = read_items(&data).expect("the sample items load");
    let templates = UrlTemplates {
        url: Some("https://shop.example.com/p/{id}".into()),
        image: Some("https://cdn.example.com/img/{id}.jpg".into()),
    };
    let catalog = FileCatalog::new(&records, &templates);
    (catalog, records.iter().map(|r| r.id.clone()).collect())
}

/// The router `startup` builds, with the default configuration (10 items by default, at most 100,
/// a 1.5 s budget).
fn app<C: personalize_braze_core::catalog::Catalog>(recommender: Ranked, catalog: C) -> Router {
    let config = Config::from_lookup(|_| None).expect("the defaults are a configuration");
    startup::app(&config, recommender, catalog)
}

async fn request(router: &Router, uri: &str) -> usize {
    send(
        router,
        Request::get(uri).body(Body::empty()).unwrap(),
        StatusCode::OK,
    )
    .await
}

async fn post(router: &Router, uri: &str, body: &str, status: StatusCode) -> usize {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    send(router, request, status).await
}

async fn send(router: &Router, request: Request<Body>, status: StatusCode) -> usize {
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), status);
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len()
}

fn request_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let router = router();
    let mut group = c.benchmark_group("request_path");
    for (name, uri) in [
        ("list/count=10", "/recommendations?user_id=user-42&count=10"),
        ("list/count=25", "/recommendations?user_id=user-42&count=25"),
        (
            "object/count=10",
            "/recommendations?user_id=user-42&count=10&format=object",
        ),
        (
            "object/count=25",
            "/recommendations?user_id=user-42&count=25&format=object",
        ),
        (
            "related/count=25",
            "/related-items?item_id=sku-10001&count=25",
        ),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| request(&router, uri))
        });
    }

    let cached = cached_router();
    group.bench_function("list/count=25+item-cache", |b| {
        b.to_async(&runtime)
            .iter(|| request(&cached, "/recommendations?user_id=user-42&count=25"))
    });

    // Rankings of 25 sample ids by query string, and of 500 (a fifth unknown) by JSON body.
    let ids: Vec<String> = (0..500)
        .map(|i| match i % 5 {
            0 => format!("gone-{i}"),
            _ => format!("sku-{}", 10001 + i % 600),
        })
        .collect();
    let uri = format!(
        "/rankings?user_id=user-42&item_ids={}",
        ids[1..26].join(",")
    );
    group.bench_function("rankings/25-ids", |b| {
        b.to_async(&runtime).iter(|| request(&router, &uri))
    });
    let body = serde_json::json!({ "user_id": "user-42", "item_ids": ids }).to_string();
    group.bench_function("rankings/500-ids-post", |b| {
        b.to_async(&runtime)
            .iter(|| post(&router, "/rankings", &body, StatusCode::OK))
    });
    // Parsing and validating a webhook's 10 events (the recommender double takes them at once).
    let event = r#"{"user_id":"user-42","event_type":"click","item_id":"sku-10001","sent_at":"2026-11-28T10:00:00Z","properties":{"channel":"email"}}"#;
    let events = format!("[{}]", [event; 10].join(","));
    group.bench_function("events/10", |b| {
        b.to_async(&runtime)
            .iter(|| post(&router, "/events", &events, StatusCode::ACCEPTED))
    });

    // The same request with its production request line written: the EMF JSON line goes to
    // stdout, pointed at /dev/null while the iterations run (criterion prints between samples).
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("list/count=25+request-line", |b| {
            b.to_async(&runtime).iter_custom(|iterations| {
                let router = &router;
                async move {
                    let _quiet = StdoutToDevNull::new();
                    let started = std::time::Instant::now();
                    for _ in 0..iterations {
                        request(router, "/recommendations?user_id=user-42&count=25").await;
                    }
                    started.elapsed()
                }
            })
        });
    });

    // The request line alone: a typical AWS-mode line formatted into a reused buffer.
    let mut line = RequestLine::new("/recommendations", 200);
    line.lambda_request_id = Some("8476a536-e9f4-11e8-9739-2dfe598c3fcd");
    line.api_request_id = Some("c6af9ac6-7b61-11e6-9a41-93e8deadbeef");
    line.trace_id = Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
    for metric in Metric::ALL {
        line.count(metric, 3);
    }
    let mut out = Vec::with_capacity(2048);
    group.bench_function("request-line/emf", |b| {
        b.iter(|| {
            out.clear();
            line.write_emf("PersonalizeBraze/prod", SystemTime::now(), &mut out);
            out.len()
        })
    });
    group.finish();
}

/// Points stdout at /dev/null until dropped.
struct StdoutToDevNull {
    saved: libc::c_int,
}

impl StdoutToDevNull {
    fn new() -> Self {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: plain descriptor calls on descriptors this process owns; checked below.
        unsafe {
            let saved = libc::dup(1);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            assert!(saved >= 0 && null >= 0, "cannot redirect stdout");
            libc::dup2(null, 1);
            libc::close(null);
            StdoutToDevNull { saved }
        }
    }
}

impl Drop for StdoutToDevNull {
    fn drop(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: restores the descriptor saved in `new`.
        unsafe {
            libc::dup2(self.saved, 1);
            libc::close(self.saved);
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = request_path
}
criterion_main!(benches);
