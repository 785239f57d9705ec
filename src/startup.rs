//! The one wiring: the app a `Config` describes, built from SDK clients (or local files). `main`
//! calls it with the real SDK's clients, the handler tests with `aws-smithy-mocks` clients, and the
//! benches with in-memory backends, so every one of them exercises the same assembly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use axum::Router;

use crate::api::query::Limits;
use crate::api::{App, router};
use crate::catalog::cache::{CacheBudget, CachedCatalog};
use crate::catalog::dynamodb::DynamoDbCatalog;
use crate::catalog::file::FileCatalog;
use crate::catalog::{Catalog, NoCatalog};
use crate::config::{Aws, Backend, Config, ItemSource, LogFormat};
use crate::dataset::{self, DataError};
use crate::metrics::RequestLog;
use crate::recommender::Recommender;
use crate::recommender::cooccurrence::Model;
use crate::recommender::local::LocalRecommender;
use crate::recommender::personalize::{Personalize, PersonalizeArn, Target};
use crate::service::Service;

/// Where AWS mode gets its SDK clients.
pub trait Clients {
    /// A Personalize runtime client for a campaign or recommender in `region`.
    fn personalize(&self, region: &str) -> aws_sdk_personalizeruntime::Client;
    /// A PutEvents client, in `region` when the configuration names one.
    fn events(&self, region: Option<&str>) -> aws_sdk_personalizeevents::Client;
    fn dynamodb(&self) -> aws_sdk_dynamodb::Client;
}

/// The real SDK's clients, with timeouts and retries that fit the request budget.
pub struct SdkClients {
    sdk: SdkConfig,
    timeouts: TimeoutConfig,
    retries: RetryConfig,
}

impl SdkClients {
    /// Credentials and region from the usual places (environment, `~/.aws`, the Lambda role).
    pub async fn load(request_budget: Duration) -> SdkClients {
        // Stalled-stream protection watches each body's throughput for the life of the call, a
        // cost on every request (benches/cpu.sh) that buys nothing here: bodies are a few KB and
        // the attempt timeout below already ends any call that stalls.
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .load()
            .await;
        // Retries must fit the request budget: a hung attempt gets half of it, and the SDK's
        // default backoff (1 s to start) is cut to 50 ms doubling to 250 ms, so three attempts at
        // a throttled or unreachable upstream end well inside the budget with its own error.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(500))
            .operation_attempt_timeout(request_budget / 2)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_millis(250));
        SdkClients {
            sdk,
            timeouts,
            retries,
        }
    }
}

/// The SDK's configuration for a batch run (braze-sync, the loader): no 1.5 s budget to fit, but
/// nothing may hang. A connection gets 3 s, an attempt 10 s up to the answer's headers (a body
/// streamed from S3 is watched by the SDK's stalled-stream protection, on here), and a throttled
/// or failing call five attempts, backing off from 100 ms to 5 s.
pub async fn batch_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(5)),
        )
        .load()
        .await
}

impl Clients for SdkClients {
    fn personalize(&self, region: &str) -> aws_sdk_personalizeruntime::Client {
        aws_sdk_personalizeruntime::Client::from_conf(
            aws_sdk_personalizeruntime::config::Builder::from(&self.sdk)
                .region(Region::new(region.to_owned()))
                .timeout_config(self.timeouts.clone())
                .retry_config(self.retries.clone())
                .build(),
        )
    }

    fn events(&self, region: Option<&str>) -> aws_sdk_personalizeevents::Client {
        let mut events = aws_sdk_personalizeevents::config::Builder::from(&self.sdk)
            .timeout_config(self.timeouts.clone())
            .retry_config(self.retries.clone());
        if let Some(region) = region {
            events = events.region(Region::new(region.to_owned()));
        }
        aws_sdk_personalizeevents::Client::from_conf(events.build())
    }

    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .timeout_config(self.timeouts.clone())
                .retry_config(self.retries.clone())
                .build(),
        )
    }
}

/// Where the TLS stack should take its root certificates from: the system's CA bundle file,
/// unless `SSL_CERT_FILE` or `SSL_CERT_DIR` already says (`None` then, and when there is no
/// bundle). `main` sets `SSL_CERT_FILE` to it before anything starts.
///
/// Left alone, rustls-native-certs reads the bundle *and* every file of the system's certificate
/// directory: on Debian the same roots again, one file each, on Amazon Linux the bundle's OpenSSL
/// "trusted" twin, which holds no more. That was 7 ms of a 12 ms init on Debian
/// (`benches/cpu.sh`, cold start). `update-ca-certificates` and `update-ca-trust` write every root
/// the system trusts into the bundle, so it alone is the same trust.
pub fn ca_bundle(
    ssl_cert_file_set: bool,
    ssl_cert_dir_set: bool,
    probed: Option<PathBuf>,
) -> Option<PathBuf> {
    if ssl_cert_file_set || ssl_cert_dir_set {
        return None;
    }
    probed
}

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
    let model = Model::train(&interactions);
    let stats = model.stats(interactions.len());
    let try_user = model.example_user().unwrap_or("any-user").to_owned();
    drop(interactions);

    let catalog = FileCatalog::new(&items, &config.url_templates);
    let mut recommender = LocalRecommender::new(model, &items, filters).with_promotions(promotions);
    if let Some(name) = &config.default_recommender {
        recommender = recommender.with_default_recommender(name);
    }
    let summary = format!(
        "local mode: trained on {} interactions from {} users over {} items, catalog of {} items, from {} in {:.2} s; serving /recommendations (embedded or popularity), /related-items, /rankings and /events",
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

/// The router over any recommender and catalog, with the configuration's limits, budget and
/// caching.
pub fn app<R: Recommender, C: Catalog>(config: &Config, recommender: R, catalog: C) -> Router {
    let service = Service::new(recommender, catalog, config.request_budget);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_bundle_is_used_unless_the_openssl_variables_choose() {
        let bundle = || Some(PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
        assert_eq!(ca_bundle(false, false, bundle()), bundle());
        assert_eq!(ca_bundle(true, false, bundle()), None);
        assert_eq!(ca_bundle(false, true, bundle()), None);
        // No bundle found: rustls-native-certs looks where it always does.
        assert_eq!(ca_bundle(false, false, None), None);
    }
}
