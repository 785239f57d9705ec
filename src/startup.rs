//! The one wiring: the app a `Config` describes, built from SDK clients (or local files). `main`
//! calls it with the real SDK's clients, the handler tests with `aws-smithy-mocks` clients, and the
//! benches with in-memory backends, so every one of them exercises the same assembly.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;

use crate::config::{Aws, Backend, Config, ItemSource, LogFormat};
use personalize_braze_api::metrics::RequestLog;
use personalize_braze_api::query::Limits;
use personalize_braze_api::{App, router};
use personalize_braze_aws::dynamodb::DynamoDbCatalog;
use personalize_braze_aws::personalize::{Personalize, PersonalizeArn, Target};
pub use personalize_braze_aws::sdk::{Clients, SdkClients};
use personalize_braze_core::catalog::cache::{CacheBudget, CachedCatalog};
use personalize_braze_core::catalog::{Catalog, NoCatalog};
use personalize_braze_core::dataset::{self, DataError};
use personalize_braze_core::fallback::Fallbacks;
use personalize_braze_core::recommender::{RecommendationQuery, Recommender, Subject};
use personalize_braze_core::service::Service;
use personalize_braze_local::embedded::LocalRecommender;
use personalize_braze_local::file_catalog::FileCatalog;
use personalize_braze_local::popularity::Popularity;
use personalize_braze_local::tuning;

/// How many ids the popular fallback list holds: enough for any `count` once the catalog drops
/// what it lacks.
const POPULAR_IDS: u32 = 150;

/// AWS mode: a Personalize client for each configured endpoint, and the item source. The
/// summary says which endpoints are served from what.
pub fn aws_app(config: &Config, aws: &Aws, clients: &impl Clients) -> (Router, String) {
    let Aws {
        recommenders,
        related_items,
        ranking,
        event_tracker_id,
        items,
        filters,
        promotions,
    } = aws;
    // Each call goes to its ARN's region, which may differ from the function's.
    let target = |arn: &PersonalizeArn| Target {
        client: clients.personalize(&arn.region),
        arn: arn.clone(),
    };
    let mut served = Vec::new();
    let mut recommender = Personalize::new(filters.clone()).with_promotions(promotions.clone());
    for (name, arn) in recommenders {
        recommender = recommender.with_recommender(name, target(arn));
    }
    if let Some(name) = &config.default_recommender {
        recommender = recommender.with_default_recommender(name);
    }
    if !recommenders.is_empty() {
        let named: Vec<String> = recommenders
            .iter()
            .map(|(name, arn)| format!("{name} ({})", arn.arn))
            .collect();
        served.push(format!("/recommendations from {}", named.join(", ")));
    }
    if let Some(arn) = related_items {
        recommender = recommender.with_related_items(target(arn));
        served.push(format!("/related-items from {}", arn.arn));
    }
    if let Some(arn) = ranking {
        recommender = recommender.with_ranking(target(arn));
        served.push(format!("/rankings from {}", arn.arn));
    }
    if let Some(tracking_id) = event_tracker_id {
        // An event tracker lives with its dataset group: in the campaigns' region when one is
        // configured, else in the function's own.
        let region = recommenders
            .iter()
            .map(|(_, arn)| arn)
            .chain([related_items, ranking].into_iter().flatten())
            .next()
            .map(|arn| arn.region.as_str());
        recommender = recommender.with_event_tracker(clients.events(region), tracking_id.clone());
        served.push("/events to its event tracker".to_owned());
    }
    let fallbacks = fallbacks(config);
    if let Some(arn) = &config.fallback.popular_arn {
        let source = Personalize::new(BTreeMap::new()).with_recommender("popular", target(arn));
        keep_popular_warm(fallbacks.clone(), source, config.fallback.refresh);
        served.push(format!("fallbacks' popular list from {}", arn.arn));
    }
    let served = served.join(", ");

    match items {
        ItemSource::DynamoDb { table } => {
            let budget = CacheBudget {
                items: config.item_cache_size,
                bytes: config.item_cache_bytes,
            };
            let catalog = CachedCatalog::new(
                DynamoDbCatalog::new(clients.dynamodb(), table, config.url_templates.clone()),
                budget,
                config.item_cache_ttl,
            );
            let summary = format!("Personalize: {served}; items from DynamoDB table {table}");
            (app_with(config, recommender, catalog, fallbacks), summary)
        }
        ItemSource::Personalize { columns } => {
            let summary = format!(
                "Personalize: {served}; items from Personalize's {} columns",
                columns.join(", ")
            );
            let recommender =
                recommender.with_metadata(columns.clone(), config.url_templates.clone());
            (app_with(config, recommender, NoCatalog, fallbacks), summary)
        }
        ItemSource::Unused => (
            app_with(config, recommender, NoCatalog, fallbacks),
            format!("Personalize: {served}"),
        ),
    }
}

/// Local mode: reads `interactions.csv` and `items.csv` from the data directory and trains the
/// model; filters and promotions are the configuration's. Returns the router, a summary, and a
/// request worth trying.
pub fn local_app(config: &Config, data_dir: &Path) -> Result<(Router, String, String), DataError> {
    let (filters, promotions) = match &config.backend {
        Backend::Local {
            filters,
            promotions,
            ..
        } => (filters.clone(), promotions.clone()),
        Backend::Aws(_) => (BTreeMap::new(), BTreeMap::new()),
    };
    let started = Instant::now();
    let interactions = dataset::read_interactions(&data_dir.join("interactions.csv"))?;
    let items = dataset::read_items(&data_dir.join("items.csv"))?;
    let model = tuning::train(&interactions);
    let stats = model.stats(interactions.len());
    let kind = model.kind();
    // Local mode's popular fallback is its popularity model, unless a list is configured.
    let fallbacks = fallbacks(config);
    if config.fallback.popular_ids.is_empty() {
        let popularity = Popularity::train(&interactions, false);
        fallbacks.set_popular(popularity.top(POPULAR_IDS as usize));
    }
    let try_user = model.example_user().unwrap_or("any-user").to_owned();
    drop(interactions);

    // Users' metadata is optional, as in Personalize: filters' `IF CurrentUser.…` conditions read it.
    let users_file = data_dir.join("users.csv");
    let users = match users_file.exists() {
        true => dataset::read_users(&users_file)?,
        false => Vec::new(),
    };
    let catalog = FileCatalog::new(&items, &config.url_templates);
    let mut recommender = LocalRecommender::new(model, &items, filters)
        .with_promotions(promotions)
        .with_users(&users);
    if let Some(name) = &config.default_recommender {
        recommender = recommender.with_default_recommender(name);
    }
    let summary = format!(
        "local mode: trained {kind} on {} interactions from {} users over {} items, catalog of {} items, {} users with metadata, from {} in {:.2} s; serving /recommendations (embedded or popularity), /related-items, /rankings and /events",
        stats.interactions,
        stats.users,
        stats.items,
        catalog.len(),
        users.len(),
        data_dir.display(),
        started.elapsed().as_secs_f64()
    );
    let app = app_with(config, recommender, catalog, fallbacks);
    let try_path = format!("/recommendations?user_id={try_user}&count=3");
    Ok((app, summary, try_path))
}

/// The router over any recommender and catalog, with the configuration's limits, budget,
/// caching and fallbacks (their popular list as configured).
pub fn app<R: Recommender, C: Catalog>(config: &Config, recommender: R, catalog: C) -> Router {
    app_with(config, recommender, catalog, fallbacks(config))
}

/// The fallbacks `FALLBACK` describes, with `FALLBACK_POPULAR_IDS` as their popular list.
fn fallbacks(config: &Config) -> Arc<Fallbacks> {
    let fallbacks = Fallbacks::new(config.fallback.policy.clone());
    if !config.fallback.popular_ids.is_empty() {
        fallbacks.set_popular(config.fallback.popular_ids.clone());
    }
    Arc::new(fallbacks)
}

/// Reads the popular list from a popularity campaign or recommender now, and again every
/// `every` (sooner after a failure), in the background: a fallback answers from memory and never
/// calls Personalize itself.
fn keep_popular_warm(fallbacks: Arc<Fallbacks>, source: Personalize, every: std::time::Duration) {
    tokio::spawn(async move {
        let query = RecommendationQuery {
            // A popularity recipe ranks the same for everyone; Personalize still wants a user.
            subject: Subject::User("fallback-popular-list".to_owned()),
            count: POPULAR_IDS,
            recommender: Some("popular".to_owned()),
            ..RecommendationQuery::default()
        };
        loop {
            let wait = match source.recommend(&query).await {
                Ok(answer) => {
                    tracing::info!(ids = answer.item_ids.len(), "fallbacks' popular list read");
                    fallbacks.set_popular(answer.item_ids);
                    every
                }
                Err(e) => {
                    tracing::warn!(error = %e, "fallbacks' popular list could not be read; trying again in 10 s");
                    std::time::Duration::from_secs(10).min(every)
                }
            };
            tokio::time::sleep(wait).await;
        }
    });
}

fn app_with<R: Recommender, C: Catalog>(
    config: &Config,
    recommender: R,
    catalog: C,
    fallbacks: Arc<Fallbacks>,
) -> Router {
    let service =
        Service::new(recommender, catalog, config.request_budget).with_fallbacks(fallbacks);
    let limits = Limits {
        default_count: config.default_count,
        max_count: config.max_count,
        max_ranking_items: config.max_ranking_items,
        default_filter: config.default_filter.clone(),
    };
    let log = match config.log_format {
        LogFormat::Json => RequestLog::Emf {
            namespace: config.metrics_namespace.clone(),
        },
        LogFormat::Text => RequestLog::Text,
    };
    router(Arc::new(App::new(
        service,
        limits,
        config.cache_max_age,
        log,
    )))
}
