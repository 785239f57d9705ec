//! Typed configuration, read from the environment once at start and validated there, by the
//! environment rule every binary shares (`personalize_braze_core::env`: empty is unset, an error
//! names its variable). By concern: [`backend`] (AWS mode's resources or local mode's files),
//! then here the choices a request falls back to, the limits and caches, logging, and the runtime.

mod backend;
mod fallback;

use std::time::Duration;

use personalize_braze_api::metrics;
pub use personalize_braze_aws::personalize::arn::{PersonalizeArn, TargetKind};
use personalize_braze_core::env::{Env, invalid};
use personalize_braze_core::item::UrlTemplates;
use personalize_braze_core::limits::{MAX_RESULTS, MAX_RESULTS_WITH_METADATA};
pub use personalize_braze_core::recommender::Promotion;
use personalize_braze_local::embedded::LOCAL_RECOMMENDERS;

pub use backend::{Aws, Backend, DEFAULT_LOCAL_FILTERS, DEFAULT_LOCAL_PROMOTIONS, ItemSource};
pub use fallback::Fallback;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backend: Backend,
    pub default_filter: Option<String>,
    /// The recommender `/recommendations` asks when a request names none: `DEFAULT_RECOMMENDER`,
    /// else the first of `RECOMMENDERS` (AWS mode) or `embedded` (local mode).
    pub default_recommender: Option<String>,
    pub default_count: u32,
    pub max_count: u32,
    /// Ids one ranking takes (Personalize's `inputList` limit).
    pub max_ranking_items: usize,
    pub cache_max_age: u32,
    pub url_templates: UrlTemplates,
    pub request_budget: Duration,
    /// How long item metadata is cached in the function (AWS mode); 0 turns the cache off.
    pub item_cache_ttl: Duration,
    /// At most this many items are cached (and as many ids the catalog lacks).
    pub item_cache_size: usize,
    /// Cached items take at most this many bytes.
    pub item_cache_bytes: usize,
    pub port: u16,
    pub log_format: LogFormat,
    /// What to log: `RUST_LOG` (any tracing filter), else the level Lambda's `LoggingConfig`
    /// sets (`AWS_LAMBDA_LOG_LEVEL`), else `info`.
    pub log_filter: String,
    /// The CloudWatch namespace of the request lines' metrics (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// `AWS_LAMBDA_RUNTIME_API` is set: serve Lambda invocations, not a local port.
    pub in_lambda: bool,
    /// How the async runtime runs (`RUNTIME_FLAVOR`); see [`RuntimeFlavor`].
    pub runtime_flavor: RuntimeFlavor,
    /// What answers when the recommender cannot (`FALLBACK`, off by default).
    pub fallback: Fallback,
}

/// The Tokio runtime the binary runs on.
///
/// By default, Lambda taking one invocation at a time gets `CurrentThread`: the invocation,
/// its upstream calls and their connections all run on one thread, so no I/O wakes a second
/// thread (benches/cpu.sh measures the difference per invocation). Lambda Managed Instances
/// (`AWS_LAMBDA_MAX_CONCURRENCY` above 1) and the local listener get `MultiThread`, one worker
/// per vCPU (`TOKIO_WORKER_THREADS` sets another number), so concurrent requests use every core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeFlavor {
    CurrentThread,
    MultiThread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// A setting that cannot be used, naming its variable (the environment rule every binary shares).
pub use personalize_braze_core::env::EnvError as ConfigError;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let var = |name: &str| env.get(name);

        let backend = backend::from_env(&var)?;

        let default_recommender = default_recommender(&var, &backend)?;
        let default_filter = default_filter(&var, &backend)?;

        // Personalize sends (and ranks) at most 50 items with their metadata.
        let count_cap = match &backend {
            Backend::Aws(Aws {
                items: ItemSource::Personalize { .. },
                ..
            }) => MAX_RESULTS_WITH_METADATA,
            _ => MAX_RESULTS,
        };
        let max_count = env.number("MAX_COUNT", 100.min(count_cap), 1, count_cap)?;
        let default_count = env.number("DEFAULT_COUNT", 10, 1, max_count)?;
        let cache_max_age = env.number("CACHE_MAX_AGE", 300, 0, 14_400)?;
        let budget_ms = env.number("REQUEST_BUDGET_MS", 1500, 50, 29_000)?;
        let item_cache_ttl = env.number("ITEM_CACHE_TTL", 300, 0, 86_400)?;
        let item_cache_size = env.number("ITEM_CACHE_SIZE", 10_000, 1, 1_000_000)?;
        let item_cache_mb = env.number("ITEM_CACHE_MB", 32, 1, 8_192)?;
        // 0: any free port; the start line on stderr names it.
        let port = env.number("PORT", 9000, 0, u16::MAX as u32)? as u16;

        let url_templates = env.url_templates()?;
        let (log_format, log_filter, metrics_namespace) = logging(&env)?;
        let (in_lambda, runtime_flavor) = runtime(&env)?;
        let fallback = fallback::from_env(&env, &backend)?;

        Ok(Config {
            backend,
            default_filter,
            default_recommender,
            default_count,
            max_count,
            max_ranking_items: count_cap as usize,
            cache_max_age,
            url_templates,
            request_budget: Duration::from_millis(budget_ms.into()),
            item_cache_ttl: Duration::from_secs(item_cache_ttl.into()),
            item_cache_size: item_cache_size as usize,
            item_cache_bytes: item_cache_mb as usize * 1024 * 1024,
            port,
            log_format,
            log_filter,
            metrics_namespace,
            in_lambda,
            runtime_flavor,
            fallback,
        })
    }
}

/// `DEFAULT_RECOMMENDER`, which must be one of the backend's, else its first.
fn default_recommender(
    var: &impl Fn(&str) -> Option<String>,
    backend: &Backend,
) -> Result<Option<String>, ConfigError> {
    Ok(match backend {
        Backend::Aws(aws) => {
            let first = aws.recommenders.first().map(|(name, _)| name.clone());
            match var("DEFAULT_RECOMMENDER") {
                Some(name) if aws.recommenders.iter().any(|(n, _)| *n == name) => Some(name),
                Some(name) => {
                    return Err(invalid(
                        "DEFAULT_RECOMMENDER",
                        &name,
                        "not a recommender name in RECOMMENDERS (or PERSONALIZE_ARN)",
                    ));
                }
                None => first,
            }
        }
        Backend::Local { .. } => match var("DEFAULT_RECOMMENDER") {
            Some(name) if LOCAL_RECOMMENDERS.contains(&name.as_str()) => Some(name),
            Some(name) => {
                return Err(invalid(
                    "DEFAULT_RECOMMENDER",
                    &name,
                    "local mode's recommenders are embedded and popularity",
                ));
            }
            None => Some(LOCAL_RECOMMENDERS[0].to_owned()),
        },
    })
}

/// `DEFAULT_FILTER`, which must be one of the backend's filters.
fn default_filter(
    var: &impl Fn(&str) -> Option<String>,
    backend: &Backend,
) -> Result<Option<String>, ConfigError> {
    let default_filter = var("DEFAULT_FILTER");
    if let Some(name) = &default_filter
        && !backend.has_filter(name)
    {
        let source = match backend {
            Backend::Aws(_) => "FILTERS",
            Backend::Local { .. } => "LOCAL_FILTERS",
        };
        return Err(invalid(
            "DEFAULT_FILTER",
            name,
            format!("not a filter name in {source}"),
        ));
    }
    Ok(default_filter)
}

/// What the logs look like: `LOG_FORMAT`, the filter (`RUST_LOG`, else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL`, else `info`) and the metrics' namespace.
fn logging<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<(LogFormat, String, String), ConfigError> {
    let log_filter = match (env.get("RUST_LOG"), env.get("AWS_LAMBDA_LOG_LEVEL")) {
        (Some(filter), _) => filter,
        (None, Some(level)) => lambda_log_level(&level)?.to_owned(),
        (None, None) => "info".to_owned(),
    };
    let log_format = match env.get("LOG_FORMAT").as_deref() {
        None | Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => return Err(invalid("LOG_FORMAT", other, "expected json or text")),
    };
    let metrics_namespace = env
        .get("METRICS_NAMESPACE")
        .unwrap_or_else(|| metrics::DEFAULT_NAMESPACE.to_owned());
    metrics::check_namespace(&metrics_namespace)
        .map_err(|reason| invalid("METRICS_NAMESPACE", &metrics_namespace, reason))?;
    Ok((log_format, log_filter, metrics_namespace))
}

/// Whether Lambda runs the binary, and the async runtime that fits (see [`RuntimeFlavor`]).
fn runtime<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<(bool, RuntimeFlavor), ConfigError> {
    let in_lambda = env.get("AWS_LAMBDA_RUNTIME_API").is_some();
    let lambda_concurrency = env.number("AWS_LAMBDA_MAX_CONCURRENCY", 1, 1, u32::MAX)?;
    let runtime_flavor = match env.get("RUNTIME_FLAVOR").as_deref().map(str::trim) {
        None if in_lambda && lambda_concurrency == 1 => RuntimeFlavor::CurrentThread,
        None => RuntimeFlavor::MultiThread,
        Some("current_thread") => RuntimeFlavor::CurrentThread,
        Some("multi_thread") => RuntimeFlavor::MultiThread,
        Some(other) => {
            return Err(invalid(
                "RUNTIME_FLAVOR",
                other,
                "expected current_thread or multi_thread",
            ));
        }
    };
    Ok((in_lambda, runtime_flavor))
}

/// Lambda's log levels (as `LoggingConfig` sets them) as a tracing filter; FATAL has no
/// tracing level of its own and logs as ERROR.
fn lambda_log_level(level: &str) -> Result<&'static str, ConfigError> {
    match level.to_ascii_uppercase().as_str() {
        "TRACE" => Ok("trace"),
        "DEBUG" => Ok("debug"),
        "INFO" => Ok("info"),
        "WARN" => Ok("warn"),
        "ERROR" | "FATAL" => Ok("error"),
        _ => Err(invalid(
            "AWS_LAMBDA_LOG_LEVEL",
            level,
            "expected TRACE, DEBUG, INFO, WARN, ERROR or FATAL",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const CAMPAIGN: &str = "arn:aws:personalize:eu-west-1:123456789012:campaign/shop";
    const FILTER: &str = "arn:aws:personalize:eu-west-1:123456789012:filter/no-purchased";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn fallbacks_are_off_unless_set_and_popular_needs_a_source_in_aws_mode() {
        use personalize_braze_core::fallback::Source;
        let local = config(&[]).unwrap();
        assert!(local.fallback.policy.order.is_empty());
        let both = config(&[("FALLBACK", "last-good, popular")]).unwrap();
        assert_eq!(
            both.fallback.policy.order,
            [Source::LastGood, Source::Popular]
        );
        assert_eq!(
            config(&[("FALLBACK", "off")])
                .unwrap()
                .fallback
                .policy
                .order,
            []
        );

        let aws = [("PERSONALIZE_ARN", CAMPAIGN), ("ITEMS_TABLE", "items")];
        let with = |more: &[(&str, &str)]| {
            let mut vars = aws.to_vec();
            vars.extend_from_slice(more);
            config(&vars)
        };
        let missing = with(&[("FALLBACK", "popular")]).unwrap_err().to_string();
        assert!(missing.contains("FALLBACK_POPULAR_ARN"), "{missing}");
        let ids = with(&[("FALLBACK", "popular"), ("FALLBACK_POPULAR_IDS", "a, b,,c")]).unwrap();
        assert_eq!(ids.fallback.popular_ids, ["a", "b", "c"]);
        let arn = "arn:aws:personalize:eu-west-1:123456789012:campaign/popular";
        let warm = with(&[("FALLBACK", "popular"), ("FALLBACK_POPULAR_ARN", arn)]).unwrap();
        assert_eq!(warm.fallback.popular_arn.unwrap().arn, arn);
        assert_eq!(warm.fallback.refresh, Duration::from_secs(300));
        for (vars, says) in [
            (
                vec![("FALLBACK", "popular,maybe")],
                "expected off, or popular and last-good",
            ),
            (
                vec![("FALLBACK", "popular,popular")],
                "popular is named twice",
            ),
            (
                vec![("FALLBACK_POPULAR_ARN", arn), ("FALLBACK_POPULAR_IDS", "a")],
                "not both",
            ),
            (vec![("FALLBACK_POPULAR_ARN", "popular")], "not an ARN"),
            (vec![("FALLBACK_LAST_GOOD_TTL", "5")], "60..=604800"),
            (
                vec![("FALLBACK_UNFILTERED", "yes")],
                "expected true or false",
            ),
        ] {
            let e = with(&vars).unwrap_err().to_string();
            assert!(e.contains(says), "{vars:?}: {e}");
        }
    }

    #[test]
    fn lambda_one_at_a_time_runs_on_one_thread_and_everything_else_on_workers() {
        let flavor = |vars: &[(&str, &str)]| config(vars).unwrap().runtime_flavor;
        let lambda = ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
        assert_eq!(flavor(&[lambda]), RuntimeFlavor::CurrentThread);
        assert_eq!(
            flavor(&[lambda, ("AWS_LAMBDA_MAX_CONCURRENCY", "1")]),
            RuntimeFlavor::CurrentThread
        );
        assert_eq!(
            flavor(&[lambda, ("AWS_LAMBDA_MAX_CONCURRENCY", "16")]),
            RuntimeFlavor::MultiThread
        );
        assert_eq!(flavor(&[]), RuntimeFlavor::MultiThread);
        assert_eq!(
            flavor(&[lambda, ("RUNTIME_FLAVOR", "multi_thread")]),
            RuntimeFlavor::MultiThread
        );
        assert_eq!(
            flavor(&[("RUNTIME_FLAVOR", "current_thread")]),
            RuntimeFlavor::CurrentThread
        );
        for (name, value) in [
            ("RUNTIME_FLAVOR", "single"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "0"),
            ("AWS_LAMBDA_MAX_CONCURRENCY", "many"),
        ] {
            let error = config(&[lambda, (name, value)]).unwrap_err();
            assert!(error.to_string().starts_with(name), "{error}");
        }
    }

    #[test]
    fn the_log_level_follows_the_deployment_unless_rust_log_says_otherwise() {
        let level = |vars: &[(&str, &str)]| config(vars).map(|c| c.log_filter);
        assert_eq!(
            level(&[("AWS_LAMBDA_LOG_LEVEL", "ERROR")]).unwrap(),
            "error"
        );
        assert_eq!(
            level(&[("AWS_LAMBDA_LOG_LEVEL", "fatal")]).unwrap(),
            "error"
        );
        assert_eq!(
            level(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]).unwrap(),
            "debug"
        );
        let both = [
            ("AWS_LAMBDA_LOG_LEVEL", "ERROR"),
            ("RUST_LOG", "personalize_braze=debug"),
        ];
        assert_eq!(level(&both).unwrap(), "personalize_braze=debug");
        let err = level(&[("AWS_LAMBDA_LOG_LEVEL", "LOUD")]).unwrap_err();
        assert!(err.to_string().contains("AWS_LAMBDA_LOG_LEVEL"), "{err}");
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = config(&[("PERSONALIZE_ARN", CAMPAIGN), ("ITEMS_TABLE", "items")]).unwrap();
        assert_eq!(c.default_count, 10);
        assert_eq!(c.max_count, 100);
        assert_eq!(c.max_ranking_items, 500);
        assert_eq!(c.cache_max_age, 300);
        assert_eq!(c.request_budget, Duration::from_millis(1500));
        assert_eq!(c.port, 9000);
        assert_eq!(c.item_cache_ttl, Duration::from_secs(300));
        assert_eq!(c.item_cache_size, 10_000);
        assert_eq!(c.item_cache_bytes, 32 * 1024 * 1024);
        assert_eq!(c.log_filter, "info");
        let Backend::Aws(Aws {
            recommenders,
            related_items: None,
            ranking: None,
            event_tracker_id: None,
            items,
            filters,
            promotions,
        }) = c.backend
        else {
            panic!("AWS mode with recommendations only: {:?}", c.backend)
        };
        assert!(filters.is_empty() && promotions.is_empty());
        let [(name, personalize)] = &recommenders[..] else {
            panic!("one recommender: {recommenders:?}")
        };
        assert_eq!(name, "shop", "named by its resource name");
        assert_eq!(c.default_recommender.as_deref(), Some("shop"));
        assert_eq!(personalize.kind, TargetKind::Campaign);
        assert_eq!(personalize.region, "eu-west-1");
        assert_eq!(
            items,
            ItemSource::DynamoDb {
                table: "items".into()
            }
        );
    }

    #[test]
    fn the_arn_decides_campaign_or_recommender() {
        let arn = "arn:aws:personalize:us-east-1:123456789012:recommender/top-picks";
        let c = config(&[("PERSONALIZE_ARN", arn), ("ITEMS_TABLE", "t")]).unwrap();
        let Backend::Aws(Aws { recommenders, .. }) = c.backend else {
            panic!("AWS mode")
        };
        assert_eq!(recommenders[0].1.kind, TargetKind::Recommender);
    }

    #[test]
    fn filters_parse_and_the_default_must_be_one_of_them() {
        let filter_list = format!("no-purchased={FILTER}, by_category = {FILTER}");
        let c = config(&[
            ("PERSONALIZE_ARN", CAMPAIGN),
            ("ITEMS_TABLE", "t"),
            ("FILTERS", &filter_list),
            ("DEFAULT_FILTER", "by_category"),
        ])
        .unwrap();
        let Backend::Aws(Aws { filters, .. }) = &c.backend else {
            panic!("AWS mode")
        };
        assert_eq!(filters.len(), 2);
        assert_eq!(filters["no-purchased"], FILTER);
        assert_eq!(c.default_filter.as_deref(), Some("by_category"));

        let err = config(&[
            ("PERSONALIZE_ARN", CAMPAIGN),
            ("ITEMS_TABLE", "t"),
            ("FILTERS", &filter_list),
            ("DEFAULT_FILTER", "nope"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("DEFAULT_FILTER=\"nope\" is invalid"),
            "{err}"
        );
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        let base = [("PERSONALIZE_ARN", CAMPAIGN), ("ITEMS_TABLE", "t")];
        let cases: &[(&str, &str)] = &[
            ("PERSONALIZE_ARN", "arn:aws:s3:::bucket"),
            ("PERSONALIZE_ARN", FILTER),
            ("MAX_COUNT", "501"),
            ("MAX_COUNT", "ten"),
            ("DEFAULT_COUNT", "0"),
            ("CACHE_MAX_AGE", "-1"),
            ("REQUEST_BUDGET_MS", "10"),
            ("ITEM_URL_TEMPLATE", "https://shop.example/p/"),
            ("FILTERS", "just-a-name"),
            ("FILTERS", &format!("x={CAMPAIGN}")),
            ("LOG_FORMAT", "xml"),
            (
                "RELATED_ITEMS_ARN",
                "arn:aws:personalize:eu-west-1:1:dataset/x",
            ),
            (
                "RANKING_ARN",
                "arn:aws:personalize:eu-west-1:123456789012:recommender/r",
            ),
            ("EVENT_TRACKER_ID", "has spaces in it"),
            ("ITEM_METADATA_SOURCE", "s3"),
        ];
        for (name, value) in cases {
            let mut vars: Vec<(&str, &str)> =
                base.iter().filter(|(k, _)| k != name).copied().collect();
            vars.push((name, value));
            let err = config(&vars).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn bare_filter_arns_are_named_after_their_resource() {
        let other = "arn:aws:personalize:eu-west-1:123456789012:filter/by_category";
        let c = config(&[
            ("PERSONALIZE_ARN", CAMPAIGN),
            ("ITEMS_TABLE", "t"),
            ("FILTERS", &format!("{FILTER},{other}")),
        ])
        .unwrap();
        let Backend::Aws(Aws { filters, .. }) = &c.backend else {
            panic!("AWS mode")
        };
        assert_eq!(filters["no-purchased"], FILTER);
        assert_eq!(filters["by_category"], other);
    }

    #[test]
    fn default_count_cannot_exceed_max_count() {
        let err = config(&[
            ("PERSONALIZE_ARN", CAMPAIGN),
            ("ITEMS_TABLE", "t"),
            ("MAX_COUNT", "20"),
            ("DEFAULT_COUNT", "25"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("1..=20"), "{err}");
    }

    #[test]
    fn the_table_is_required_with_personalize() {
        let err = config(&[("PERSONALIZE_ARN", CAMPAIGN)]).unwrap_err();
        assert!(
            err.to_string().starts_with("ITEMS_TABLE is required"),
            "{err}"
        );
    }

    const RELATED: &str = "arn:aws:personalize:eu-west-1:123456789012:campaign/sims";
    const RANKING: &str = "arn:aws:personalize:eu-west-1:123456789012:campaign/ranking";

    #[test]
    fn each_endpoint_has_its_own_setting_and_any_one_means_aws_mode() {
        let c = config(&[
            ("RELATED_ITEMS_ARN", RELATED),
            ("RANKING_ARN", RANKING),
            ("EVENT_TRACKER_ID", "3f1e2d4c-aaaa-bbbb-cccc-1234567890ab"),
            ("ITEMS_TABLE", "items"),
        ])
        .unwrap();
        let Backend::Aws(Aws {
            recommenders,
            related_items,
            ranking,
            event_tracker_id,
            ..
        }) = c.backend
        else {
            panic!("AWS mode")
        };
        assert_eq!(recommenders, []);
        assert_eq!(c.default_recommender, None);
        assert_eq!(related_items.unwrap().arn, RELATED);
        assert_eq!(ranking.unwrap().arn, RANKING);
        assert_eq!(
            event_tracker_id.as_deref(),
            Some("3f1e2d4c-aaaa-bbbb-cccc-1234567890ab")
        );

        // Events alone need no table.
        let c = config(&[("EVENT_TRACKER_ID", "tracker")]).unwrap();
        let Backend::Aws(Aws { items, .. }) = c.backend else {
            panic!("AWS mode")
        };
        assert_eq!(items, ItemSource::Unused);
        // Any ARN does.
        let err = config(&[("RELATED_ITEMS_ARN", RELATED)]).unwrap_err();
        assert!(
            err.to_string().starts_with("ITEMS_TABLE is required"),
            "{err}"
        );
    }

    #[test]
    fn metadata_from_personalize_needs_columns_and_caps_the_count_at_50() {
        let base = [
            ("PERSONALIZE_ARN", CAMPAIGN),
            ("ITEM_METADATA_SOURCE", "personalize"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = base.to_vec();
            vars.extend_from_slice(extra);
            config(&vars)
        };
        let c = with(&[("ITEM_METADATA_COLUMNS", "NAME, PRICE,IMAGE_URL")]).unwrap();
        let Backend::Aws(Aws { items, .. }) = &c.backend else {
            panic!("AWS mode")
        };
        assert_eq!(
            *items,
            ItemSource::Personalize {
                columns: vec!["NAME".into(), "PRICE".into(), "IMAGE_URL".into()]
            }
        );
        assert_eq!(c.max_count, 50, "the default follows Personalize's cap");
        assert_eq!(c.max_ranking_items, 50, "so does inputList");

        for (extra, var) in [
            (&[][..], "ITEM_METADATA_COLUMNS is required"),
            (
                &[("ITEM_METADATA_COLUMNS", "A,B,C,D,E,F,G,H,I,J,K")][..],
                "ITEM_METADATA_COLUMNS=",
            ),
            (
                &[("ITEM_METADATA_COLUMNS", "NAME,price-eur")][..],
                "ITEM_METADATA_COLUMNS=",
            ),
            (
                &[("ITEM_METADATA_COLUMNS", "NAME"), ("MAX_COUNT", "51")][..],
                "MAX_COUNT=",
            ),
        ] {
            let err = with(extra).unwrap_err().to_string();
            assert!(err.starts_with(var), "{extra:?}: {err}");
        }
        let err = config(&[("ITEM_METADATA_SOURCE", "personalize")]).unwrap_err();
        assert!(
            err.to_string().starts_with("ITEM_METADATA_SOURCE="),
            "{err}"
        );
    }

    #[test]
    fn no_personalize_arn_means_local_mode_with_the_sample_data() {
        let c = config(&[]).unwrap();
        assert_eq!(c.default_recommender.as_deref(), Some("embedded"));
        let Backend::Local {
            data_dir,
            filters,
            promotions,
        } = c.backend
        else {
            panic!("local mode")
        };
        assert_eq!(promotions.keys().collect::<Vec<_>>(), ["category"]);
        assert_eq!(promotions["category"].percent, 20);
        assert_eq!(data_dir, PathBuf::from("examples/data"));
        assert_eq!(
            filters.keys().collect::<Vec<_>>(),
            ["by-category", "not-purchased"]
        );

        let c = config(&[
            ("DATA_DIR", "/data"),
            (
                "LOCAL_FILTERS",
                r#"no-bags=EXCLUDE ItemID WHERE Items.CATEGORY IN ("bags", "totes")"#,
            ),
            ("DEFAULT_FILTER", "no-bags"),
        ])
        .unwrap();
        let Backend::Local {
            data_dir, filters, ..
        } = c.backend
        else {
            panic!("local mode")
        };
        assert_eq!(data_dir, PathBuf::from("/data"));
        assert_eq!(filters.len(), 1);
        assert_eq!(c.default_filter.as_deref(), Some("no-bags"));
    }

    #[test]
    fn local_mode_configuration_errors_name_the_variable() {
        for (vars, expected) in [
            (vec![("FILTERS", FILTER)], "FILTERS="),
            (
                vec![("LOCAL_FILTERS", "x=INCLUDE everything")],
                "LOCAL_FILTERS=",
            ),
            (vec![("DEFAULT_FILTER", "nope")], "DEFAULT_FILTER="),
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    const PICKS: &str = "arn:aws:personalize:us-east-1:123456789012:recommender/picks";

    #[test]
    fn recommenders_are_named_in_order_and_the_default_is_the_first_or_the_named_one() {
        let list = format!("{CAMPAIGN}, top = {PICKS}");
        let c = config(&[("RECOMMENDERS", &list), ("ITEMS_TABLE", "t")]).unwrap();
        let Backend::Aws(Aws { recommenders, .. }) = &c.backend else {
            panic!("RECOMMENDERS alone is AWS mode")
        };
        let names: Vec<&str> = recommenders.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["shop", "top"]);
        assert_eq!(recommenders[1].1.kind, TargetKind::Recommender);
        assert_eq!(c.default_recommender.as_deref(), Some("shop"));

        // PERSONALIZE_ARN comes first; DEFAULT_RECOMMENDER may pick any.
        let c = config(&[
            ("PERSONALIZE_ARN", PICKS),
            ("RECOMMENDERS", CAMPAIGN),
            ("DEFAULT_RECOMMENDER", "shop"),
            ("ITEMS_TABLE", "t"),
        ])
        .unwrap();
        assert_eq!(c.default_recommender.as_deref(), Some("shop"));

        for (vars, expected) in [
            (vec![("RECOMMENDERS", FILTER)], "RECOMMENDERS="),
            (vec![("RECOMMENDERS", "top=")], "RECOMMENDERS="),
            (
                vec![("RECOMMENDERS", &format!("{CAMPAIGN},{CAMPAIGN}") as &str)],
                "RECOMMENDERS=",
            ),
            (
                vec![("PERSONALIZE_ARN", CAMPAIGN), ("RECOMMENDERS", CAMPAIGN)],
                "RECOMMENDERS=",
            ),
            (
                vec![(
                    "RECOMMENDERS",
                    "a b=arn:aws:personalize:us-east-1:1:campaign/x",
                )],
                "RECOMMENDERS=",
            ),
            (
                vec![("RECOMMENDERS", CAMPAIGN), ("DEFAULT_RECOMMENDER", "top")],
                "DEFAULT_RECOMMENDER=",
            ),
        ] {
            let mut vars = vars.clone();
            vars.push(("ITEMS_TABLE", "t"));
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{vars:?}: {err}");
        }
    }

    #[test]
    fn promotions_take_a_filter_and_a_share() {
        let other = "arn:aws:personalize:eu-west-1:123456789012:filter/new-arrivals";
        let list = format!("summer={FILTER}@35,{other}");
        let c = config(&[
            ("PERSONALIZE_ARN", CAMPAIGN),
            ("ITEMS_TABLE", "t"),
            ("PROMOTIONS", &list),
        ])
        .unwrap();
        let Backend::Aws(Aws { promotions, .. }) = &c.backend else {
            panic!("AWS mode")
        };
        assert_eq!(
            promotions["summer"],
            Promotion {
                filter: FILTER.to_owned(),
                percent: 35
            }
        );
        assert_eq!(promotions["new-arrivals"].percent, 20, "the default share");

        for (list, percent) in [
            (format!("x={FILTER}@0"), None),
            (format!("x={FILTER}@101"), None),
            (format!("x={CAMPAIGN}@10"), None),
            (format!("x={FILTER}"), Some("0")),
            (format!("-x={FILTER}"), None),
        ] {
            let mut vars = vec![
                ("PERSONALIZE_ARN", CAMPAIGN),
                ("ITEMS_TABLE", "t"),
                ("PROMOTIONS", list.as_str()),
            ];
            if let Some(percent) = percent {
                vars.push(("PROMOTION_PERCENT", percent));
            }
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with("PROMOTION"), "{list}: {err}");
        }
    }

    #[test]
    fn local_mode_has_two_recommenders_and_its_own_promotions() {
        let c = config(&[
            ("DEFAULT_RECOMMENDER", "popularity"),
            (
                "LOCAL_PROMOTIONS",
                r#"sale=INCLUDE ItemID WHERE Items.CATEGORY IN ("a@b") @ 40;hats=INCLUDE ItemID WHERE Items.CATEGORY IN ("hats")"#,
            ),
        ])
        .unwrap();
        assert_eq!(c.default_recommender.as_deref(), Some("popularity"));
        let Backend::Local { promotions, .. } = &c.backend else {
            panic!("local mode")
        };
        assert_eq!(promotions["sale"].percent, 40);
        assert_eq!(promotions["hats"].percent, 20);

        for (vars, expected) in [
            (
                vec![("DEFAULT_RECOMMENDER", "personalize")],
                "DEFAULT_RECOMMENDER=",
            ),
            (vec![("RECOMMENDERS", "x")], "RECOMMENDERS="),
            (vec![("PROMOTIONS", FILTER)], "PROMOTIONS="),
            (
                vec![("LOCAL_PROMOTIONS", "x=INCLUDE nothing@10")],
                "LOCAL_PROMOTIONS=",
            ),
        ] {
            let err = config(&vars).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{vars:?}: {err}");
        }
    }
}
