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
use personalize_braze::catalog::cache::CachedCatalog;
use personalize_braze::catalog::dynamodb::DynamoDbCatalog;
use personalize_braze::catalog::file::FileCatalog;
use personalize_braze::config::{Backend, Config, LogFormat, PersonalizeArn};
use personalize_braze::dataset::{self, DataError};
use personalize_braze::recommender::cooccurrence::Model;
use personalize_braze::recommender::filter::LocalFilter;
use personalize_braze::recommender::local::LocalRecommender;
use personalize_braze::recommender::personalize::Personalize;
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
        Backend::Aws {
            personalize,
            items_table,
            filters,
        } => {
            let app = aws_app(&config, personalize, items_table, filters).await;
            let summary = format!(
                "Personalize {}, DynamoDB table {items_table}",
                personalize.arn
            );
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
        default_filter: config.default_filter.clone(),
    }
}

async fn aws_app(
    config: &Config,
    personalize: &PersonalizeArn,
    items_table: &str,
    filters: &BTreeMap<String, String>,
) -> Router {
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

    let personalize_client = aws_sdk_personalizeruntime::Client::from_conf(
        aws_sdk_personalizeruntime::config::Builder::from(&sdk)
            // The ARN's region is where the campaign lives, whatever the function's region is.
            .region(aws_config::Region::new(personalize.region.clone()))
            .timeout_config(timeouts.clone())
            .retry_config(retries.clone())
            .build(),
    );
    let dynamodb_client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .timeout_config(timeouts)
            .retry_config(retries)
            .build(),
    );
    let service = Service::new(
        Personalize::new(personalize_client, personalize.clone(), filters.clone()),
        CachedCatalog::new(
            DynamoDbCatalog::new(dynamodb_client, items_table, config.url_templates.clone()),
            config.item_cache_size,
            config.item_cache_ttl,
        ),
        config.request_budget,
    );
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
        "local mode: trained on {} interactions from {} users over {} items, catalog of {} items, from {} in {:.2} s",
        stats.interactions,
        stats.users,
        stats.items,
        catalog.len(),
        data_dir.display(),
        started.elapsed().as_secs_f64()
    );
    let service = Service::new(recommender, catalog, config.request_budget);
    let app = router(Arc::new(App::new(
        service,
        limits(config),
        config.cache_max_age,
    )));
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
