//! Wiring only: configuration, logging, backends built once per cold start, then serve.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use axum::Router;
use personalize_braze::api::query::Limits;
use personalize_braze::api::{App, router};
use personalize_braze::catalog::cache::{CacheBudget, CachedCatalog};
use personalize_braze::catalog::dynamodb::DynamoDbCatalog;
use personalize_braze::catalog::file::FileCatalog;
use personalize_braze::catalog::{Catalog, NoCatalog};
use personalize_braze::config::{Aws, Backend, Config, ItemSource, LogFormat, PersonalizeArn};
use personalize_braze::dataset::{self, DataError};
use personalize_braze::recommender::Recommender;
use personalize_braze::recommender::cooccurrence::Model;
use personalize_braze::recommender::filter::LocalFilter;
use personalize_braze::recommender::local::LocalRecommender;
use personalize_braze::recommender::personalize::{Personalize, Target};
use personalize_braze::service::Service;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("personalize-braze: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(config.log_format);

    // `summary` says what serves requests; `try_path` is a request worth trying locally.
    let (app, summary, try_path) = match &config.backend {
        Backend::Aws(aws) => {
            let (app, summary) = aws_app(&config, aws).await;
            (app, summary, "/recommendations?user_id=USER_ID".to_owned())
        }
        Backend::Local { data_dir, filters } => {
            let (config, data_dir, filters) = (config.clone(), data_dir.clone(), filters.clone());
            match tokio::task::spawn_blocking(move || local_app(&config, &data_dir, filters)).await
            {
                Ok(Ok(built)) => built,
                Ok(Err(e)) => {
                    eprintln!("personalize-braze: cannot start in local mode: {e}");
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("personalize-braze: loading local data failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };

    if config.in_lambda {
        tracing::info!("{summary}; serving Lambda invocations");
        if let Err(e) = lambda_http::run(app).await {
            tracing::error!(error = %e, "lambda runtime stopped");
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }

    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "personalize-braze: cannot listen on 127.0.0.1:{}: {e}",
                config.port
            );
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        "{summary}; listening on http://127.0.0.1:{port}, try curl 'http://127.0.0.1:{port}{try_path}'",
        port = config.port
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        eprintln!("personalize-braze: server stopped: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn limits(config: &Config) -> Limits {
    Limits {
        default_count: config.default_count,
        max_count: config.max_count,
        max_ranking_items: config.max_ranking_items,
        default_filter: config.default_filter.clone(),
    }
}

/// Personalize clients for each configured endpoint, and the item source; the summary says
/// which endpoints are served from what.
async fn aws_app(config: &Config, aws: &Aws) -> (Router, String) {
    let Aws {
        personalize,
        related_items,
        ranking,
        event_tracker_id,
        items,
        filters,
    } = aws;
    let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
    // Retries must fit the request budget: a hung attempt gets half of it, and the SDK's default
    // backoff (1 s to start) is cut to 50 ms doubling to 250 ms, so three attempts at a throttled
    // or unreachable upstream end well inside the budget with the upstream's own error.
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(500))
        .operation_attempt_timeout(config.request_budget / 2)
        .build();
    let retries = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(250));

    // Each call goes to its ARN's region, which may differ from the function's.
    let target = |arn: &PersonalizeArn| Target {
        client: aws_sdk_personalizeruntime::Client::from_conf(
            aws_sdk_personalizeruntime::config::Builder::from(&sdk)
                .region(aws_config::Region::new(arn.region.clone()))
                .timeout_config(timeouts.clone())
                .retry_config(retries.clone())
                .build(),
        ),
        arn: arn.clone(),
    };
    let mut served = Vec::new();
    let mut recommender = Personalize::new(filters.clone());
    if let Some(arn) = personalize {
        recommender = recommender.with_recommendations(target(arn));
        served.push(format!("/recommendations from {}", arn.arn));
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
        let mut events = aws_sdk_personalizeevents::config::Builder::from(&sdk)
            .timeout_config(timeouts.clone())
            .retry_config(retries.clone());
        if let Some(arn) = [personalize, related_items, ranking]
            .into_iter()
            .flatten()
            .next()
        {
            events = events.region(aws_config::Region::new(arn.region.clone()));
        }
        recommender = recommender.with_event_tracker(
            aws_sdk_personalizeevents::Client::from_conf(events.build()),
            tracking_id.clone(),
        );
        served.push("/events to its event tracker".to_owned());
    }
    let served = served.join(", ");

    match items {
        ItemSource::DynamoDb { table } => {
            let dynamodb = aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&sdk)
                    .timeout_config(timeouts)
                    .retry_config(retries)
                    .build(),
            );
            let budget = CacheBudget {
                items: config.item_cache_size,
                bytes: config.item_cache_bytes,
            };
            let catalog = CachedCatalog::new(
                DynamoDbCatalog::new(dynamodb, table, config.url_templates.clone()),
                budget,
                config.item_cache_ttl,
            );
            let summary = format!("Personalize: {served}; items from DynamoDB table {table}");
            (app(config, recommender, catalog), summary)
        }
        ItemSource::Personalize { columns } => {
            let summary = format!(
                "Personalize: {served}; items from Personalize's {} columns",
                columns.join(", ")
            );
            let recommender =
                recommender.with_metadata(columns.clone(), config.url_templates.clone());
            (app(config, recommender, NoCatalog), summary)
        }
        ItemSource::Unused => (
            app(config, recommender, NoCatalog),
            format!("Personalize: {served}"),
        ),
    }
}

fn app<R: Recommender, C: Catalog>(config: &Config, recommender: R, catalog: C) -> Router {
    let service = Service::new(recommender, catalog, config.request_budget);
    router(Arc::new(App::new(
        service,
        limits(config),
        config.cache_max_age,
    )))
}

/// Reads `interactions.csv` and `items.csv` from the data directory and trains the model.
fn local_app(
    config: &Config,
    data_dir: &Path,
    filters: BTreeMap<String, LocalFilter>,
) -> Result<(Router, String, String), DataError> {
    let started = Instant::now();
    let interactions = dataset::read_interactions(&data_dir.join("interactions.csv"))?;
    let items = dataset::read_items(&data_dir.join("items.csv"))?;
    let model = Model::train(&interactions);
    let stats = model.stats(interactions.len());
    let try_user = model.example_user().unwrap_or("any-user").to_owned();
    drop(interactions);

    let catalog = FileCatalog::new(&items, &config.url_templates);
    let recommender = LocalRecommender::new(model, &items, filters);
    let summary = format!(
        "local mode: trained on {} interactions from {} users over {} items, catalog of {} items, from {} in {:.2} s; serving /recommendations, /related-items, /rankings and /events",
        stats.interactions,
        stats.users,
        stats.items,
        catalog.len(),
        data_dir.display(),
        started.elapsed().as_secs_f64()
    );
    let app = app(config, recommender, catalog);
    let try_path = format!("/recommendations?user_id={try_user}&count=3");
    Ok((app, summary, try_path))
}

/// JSON lines by default (what CloudWatch Logs Insights queries); `LOG_FORMAT=text` for people.
/// `RUST_LOG` sets the level, `info` otherwise.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}
