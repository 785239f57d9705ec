//! Typed configuration, read from the environment once at start and validated there.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use personalize_braze_api::metrics;
use personalize_braze_aws::personalize::arn::{ArnKind, parse_arn};
pub use personalize_braze_aws::personalize::arn::{PersonalizeArn, TargetKind};
use personalize_braze_core::item::UrlTemplates;
use personalize_braze_core::limits::{
    MAX_METADATA_COLUMNS, MAX_RESULTS, MAX_RESULTS_WITH_METADATA,
};
pub use personalize_braze_core::recommender::Promotion;
use personalize_braze_local::embedded::LOCAL_RECOMMENDERS;
use personalize_braze_local::filter::LocalFilter;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// Amazon Personalize, each endpoint enabled by its own setting; item metadata from a
    /// DynamoDB table or from Personalize itself.
    Aws(Aws),
    /// No AWS at all: a recommender trained at start and a catalog, from CSV files in `data_dir`.
    Local {
        data_dir: PathBuf,
        /// Filter name → expression, from `LOCAL_FILTERS`.
        filters: BTreeMap<String, LocalFilter>,
        /// Promotion name → expression and share, from `LOCAL_PROMOTIONS`.
        promotions: BTreeMap<String, Promotion<LocalFilter>>,
    },
}

/// AWS mode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aws {
    /// `RECOMMENDERS` (or `PERSONALIZE_ARN`, the one-recommender case): the campaigns and
    /// recommenders `GET /recommendations?recommender=NAME` chooses from, by name, in order.
    pub recommenders: Vec<(String, PersonalizeArn)>,
    /// `RELATED_ITEMS_ARN`: `GET /related-items`.
    pub related_items: Option<PersonalizeArn>,
    /// `RANKING_ARN` (a campaign): `GET|POST /rankings`.
    pub ranking: Option<PersonalizeArn>,
    /// `EVENT_TRACKER_ID`: `POST /events`.
    pub event_tracker_id: Option<String>,
    pub items: ItemSource,
    /// Filter name (what a caller sends as `filter=`) → filter ARN, from `FILTERS`.
    pub filters: BTreeMap<String, String>,
    /// Promotion name (what a caller sends as `promotion=`) → filter ARN and share, from
    /// `PROMOTIONS`.
    pub promotions: BTreeMap<String, Promotion<String>>,
}

/// Where item metadata comes from in AWS mode (`ITEM_METADATA_SOURCE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemSource {
    /// `ITEMS_TABLE`, read with BatchGetItem and cached in the function.
    DynamoDb { table: String },
    /// Personalize answers with these item columns (`ITEM_METADATA_COLUMNS`); no table at all.
    Personalize { columns: Vec<String> },
    /// Only `EVENT_TRACKER_ID` is set: no endpoint returns items.
    Unused,
}

/// The AWS-mode settings; any one of them set means AWS mode.
const AWS_SETTINGS: [&str; 5] = [
    "PERSONALIZE_ARN",
    "RECOMMENDERS",
    "RELATED_ITEMS_ARN",
    "RANKING_ARN",
    "EVENT_TRACKER_ID",
];

impl Backend {
    fn has_filter(&self, name: &str) -> bool {
        match self {
            Backend::Aws(aws) => aws.filters.contains_key(name),
            Backend::Local { filters, .. } => filters.contains_key(name),
        }
    }
}

/// Local mode's filters when `LOCAL_FILTERS` is not set; they suit the sample data.
pub const DEFAULT_LOCAL_FILTERS: &str = r#"not-purchased=EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase");by-category=INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)"#;

/// Local mode's promotions when `LOCAL_PROMOTIONS` is not set: a fifth of the list from one
/// category (`promotion=category&promotion_CATEGORY=bags`), as a seasonal campaign would.
pub const DEFAULT_LOCAL_PROMOTIONS: &str =
    r#"category=INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)@20"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is required{hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let backend = if AWS_SETTINGS.iter().any(|name| var(name).is_some()) {
            aws_backend(&var)?
        } else {
            if let Some(value) = var("FILTERS") {
                return Err(invalid(
                    "FILTERS",
                    &value,
                    "filter ARNs need PERSONALIZE_ARN; in local mode use LOCAL_FILTERS",
                ));
            }
            if let Some(value) = var("ITEM_METADATA_SOURCE") {
                return Err(invalid(
                    "ITEM_METADATA_SOURCE",
                    &value,
                    "needs a Personalize ARN; local mode reads items from DATA_DIR",
                ));
            }
            if let Some(value) = var("PROMOTIONS") {
                return Err(invalid(
                    "PROMOTIONS",
                    &value,
                    "promotion filter ARNs need PERSONALIZE_ARN; in local mode use LOCAL_PROMOTIONS",
                ));
            }
            let filters = var("LOCAL_FILTERS").unwrap_or_else(|| DEFAULT_LOCAL_FILTERS.to_owned());
            let promotions =
                var("LOCAL_PROMOTIONS").unwrap_or_else(|| DEFAULT_LOCAL_PROMOTIONS.to_owned());
            let default_percent = promotion_percent(&var)?;
            Backend::Local {
                data_dir: PathBuf::from(
                    var("DATA_DIR").unwrap_or_else(|| "examples/data".to_owned()),
                ),
                filters: parse_local_filters("LOCAL_FILTERS", &filters)?
                    .into_iter()
                    .map(|(name, filter, _)| (name, filter))
                    .collect(),
                promotions: parse_local_filters("LOCAL_PROMOTIONS", &promotions)?
                    .into_iter()
                    .map(|(name, filter, percent)| {
                        let percent = check_percent(
                            "LOCAL_PROMOTIONS",
                            &promotions,
                            percent.as_deref(),
                            default_percent,
                        )?;
                        Ok((name, Promotion { filter, percent }))
                    })
                    .collect::<Result<_, ConfigError>>()?,
            }
        };

        let default_recommender = match &backend {
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
        };

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

        // Personalize sends (and ranks) at most 50 items with their metadata.
        let count_cap = match &backend {
            Backend::Aws(Aws {
                items: ItemSource::Personalize { .. },
                ..
            }) => MAX_RESULTS_WITH_METADATA,
            _ => MAX_RESULTS,
        };
        let max_count = number(&var, "MAX_COUNT", 100.min(count_cap), 1, count_cap)?;
        let default_count = number(&var, "DEFAULT_COUNT", 10, 1, max_count)?;
        let cache_max_age = number(&var, "CACHE_MAX_AGE", 300, 0, 14_400)?;
        let budget_ms = number(&var, "REQUEST_BUDGET_MS", 1500, 50, 29_000)?;
        let item_cache_ttl = number(&var, "ITEM_CACHE_TTL", 300, 0, 86_400)?;
        let item_cache_size = number(&var, "ITEM_CACHE_SIZE", 10_000, 1, 1_000_000)?;
        let item_cache_mb = number(&var, "ITEM_CACHE_MB", 32, 1, 8_192)?;
        // 0: any free port; the start line on stderr names it.
        let port = number(&var, "PORT", 9000, 0, u16::MAX as u32)? as u16;

        let url_templates = UrlTemplates {
            url: template(&var, "ITEM_URL_TEMPLATE")?,
            image: template(&var, "IMAGE_URL_TEMPLATE")?,
        };
        let log_filter = match (var("RUST_LOG"), var("AWS_LAMBDA_LOG_LEVEL")) {
            (Some(filter), _) => filter,
            (None, Some(level)) => lambda_log_level(&level)?.to_owned(),
            (None, None) => "info".to_owned(),
        };
        let log_format = match var("LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => return Err(invalid("LOG_FORMAT", other, "expected json or text")),
        };
        let metrics_namespace =
            var("METRICS_NAMESPACE").unwrap_or_else(|| metrics::DEFAULT_NAMESPACE.to_owned());
        metrics::check_namespace(&metrics_namespace)
            .map_err(|reason| invalid("METRICS_NAMESPACE", &metrics_namespace, reason))?;

        let in_lambda = var("AWS_LAMBDA_RUNTIME_API").is_some();
        let lambda_concurrency = number(&var, "AWS_LAMBDA_MAX_CONCURRENCY", 1, 1, u32::MAX)?;
        let runtime_flavor = match var("RUNTIME_FLAVOR").as_deref().map(str::trim) {
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
        })
    }
}

fn aws_backend(var: &impl Fn(&str) -> Option<String>) -> Result<Backend, ConfigError> {
    let arn = |name: &'static str| {
        var(name)
            .map(|value| {
                let value = value.trim();
                PersonalizeArn::parse(value).map_err(|reason| invalid(name, value, reason))
            })
            .transpose()
    };
    let recommenders = recommenders(var)?;
    let related_items = arn("RELATED_ITEMS_ARN")?;
    let ranking = arn("RANKING_ARN")?;
    if let Some(ranking) = &ranking
        && ranking.kind != TargetKind::Campaign
    {
        return Err(invalid(
            "RANKING_ARN",
            &ranking.arn,
            "GetPersonalizedRanking takes a campaign ARN (a Personalized-Ranking campaign)",
        ));
    }
    let event_tracker_id = match var("EVENT_TRACKER_ID") {
        Some(id) if id.len() > 256 || id.contains(char::is_whitespace) => {
            return Err(invalid(
                "EVENT_TRACKER_ID",
                &id,
                "expected the tracking ID of an event tracker (no spaces, at most 256 characters)",
            ));
        }
        id => id,
    };
    let serves_items = !recommenders.is_empty() || related_items.is_some() || ranking.is_some();
    let items = match var("ITEM_METADATA_SOURCE").as_deref() {
        None | Some("dynamodb") if !serves_items => match var("ITEMS_TABLE") {
            Some(table) => ItemSource::DynamoDb { table },
            None => ItemSource::Unused,
        },
        None | Some("dynamodb") => ItemSource::DynamoDb {
            table: var("ITEMS_TABLE").ok_or(ConfigError::Missing {
                var: "ITEMS_TABLE",
                hint: " with a Personalize ARN (the DynamoDB table holding item metadata), \
                       unless ITEM_METADATA_SOURCE=personalize",
            })?,
        },
        Some("personalize") => ItemSource::Personalize {
            columns: metadata_columns(var("ITEM_METADATA_COLUMNS"))?,
        },
        Some(other) => {
            return Err(invalid(
                "ITEM_METADATA_SOURCE",
                other,
                "expected dynamodb or personalize",
            ));
        }
    };
    let filters = match var("FILTERS") {
        Some(value) => named_arns("FILTERS", &value, "filter")?
            .into_iter()
            .map(|(name, arn)| Ok((name, filter_arn("FILTERS", arn)?)))
            .collect::<Result<_, ConfigError>>()?,
        None => BTreeMap::new(),
    };
    let default_percent = promotion_percent(var)?;
    let promotions = match var("PROMOTIONS") {
        Some(value) => named_arns("PROMOTIONS", &value, "promotion")?
            .into_iter()
            .map(|(name, entry)| {
                let (arn, percent) = with_percent(&entry);
                let filter = filter_arn("PROMOTIONS", arn.to_owned())?;
                let percent = check_percent("PROMOTIONS", &value, percent, default_percent)?;
                Ok((name, Promotion { filter, percent }))
            })
            .collect::<Result<_, ConfigError>>()?,
        None => BTreeMap::new(),
    };
    Ok(Backend::Aws(Aws {
        recommenders,
        related_items,
        ranking,
        event_tracker_id,
        items,
        filters,
        promotions,
    }))
}

/// `RECOMMENDERS=name=arn,…` (or bare ARNs named by their resource name), after
/// `PERSONALIZE_ARN` when that is set too; the first is the default unless `DEFAULT_RECOMMENDER`
/// says otherwise. Campaigns and recommenders may be mixed.
fn recommenders(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, PersonalizeArn)>, ConfigError> {
    let mut all: Vec<(String, PersonalizeArn)> = Vec::new();
    if let Some(value) = var("PERSONALIZE_ARN") {
        let value = value.trim();
        let arn = PersonalizeArn::parse(value)
            .map_err(|reason| invalid("PERSONALIZE_ARN", value, reason))?;
        all.push((resource_name(value).to_owned(), arn));
    }
    if let Some(value) = var("RECOMMENDERS") {
        for (name, arn) in named_arns("RECOMMENDERS", &value, "recommender")? {
            let parsed = PersonalizeArn::parse(&arn)
                .map_err(|reason| invalid("RECOMMENDERS", &value, format!("{arn}: {reason}")))?;
            if all.iter().any(|(n, _)| *n == name) {
                return Err(invalid(
                    "RECOMMENDERS",
                    &value,
                    format!("recommender {name} is named twice (PERSONALIZE_ARN counts too)"),
                ));
            }
            all.push((name, parsed));
        }
    }
    Ok(all)
}

/// `…:filter/not-purchased` → `not-purchased`.
fn resource_name(arn: &str) -> &str {
    arn.rsplit_once('/')
        .map(|(_, name)| name)
        .unwrap_or_default()
}

/// `name=value,…` or bare values named by their resource name (the part after the last `/`), in
/// the order given; names are letters, digits, `-` and `_`, each once. ARNs contain neither `,`
/// nor `=`, so the split is unambiguous.
fn named_arns(
    var: &'static str,
    value: &str,
    what: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut all: Vec<(String, String)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, arn) = match entry.split_once('=') {
            Some((name, arn)) => (name.trim(), arn.trim()),
            None => (
                resource_name(entry.split('@').next().unwrap_or(entry)),
                entry,
            ),
        };
        check_name(var, value, what, name)?;
        if all.iter().any(|(n, _)| n == name) {
            return Err(invalid(var, value, format!("{what} {name} is named twice")));
        }
        all.push((name.to_owned(), arn.to_owned()));
    }
    Ok(all)
}

/// A filter ARN (of `FILTERS` or `PROMOTIONS`), or why not.
fn filter_arn(var: &'static str, arn: String) -> Result<String, ConfigError> {
    match parse_arn(&arn) {
        Ok((ArnKind::Filter, _)) => Ok(arn),
        Ok(_) => Err(invalid(var, &arn, "not a filter ARN")),
        Err(reason) => Err(invalid(var, &arn, reason)),
    }
}

/// `PROMOTION_PERCENT`: the share of the list a promotion takes when its entry gives none.
fn promotion_percent(var: &impl Fn(&str) -> Option<String>) -> Result<u8, ConfigError> {
    Ok(number(var, "PROMOTION_PERCENT", 20, 1, 100)? as u8)
}

/// `FILTER@25` → (`FILTER`, `Some("25")`); without `@DIGITS` at the end, no share is given.
fn with_percent(entry: &str) -> (&str, Option<&str>) {
    match entry.rsplit_once('@') {
        Some((filter, percent))
            if !percent.trim().is_empty() && percent.trim().bytes().all(|b| b.is_ascii_digit()) =>
        {
            (filter.trim(), Some(percent.trim()))
        }
        _ => (entry.trim(), None),
    }
}

/// A promotion's share: the one given (1 to 100), else `default`.
fn check_percent(
    var: &'static str,
    value: &str,
    percent: Option<&str>,
    default: u8,
) -> Result<u8, ConfigError> {
    match percent.map(str::parse::<u8>) {
        None => Ok(default),
        Some(Ok(p)) if (1..=100).contains(&p) => Ok(p),
        Some(_) => Err(invalid(
            var,
            value,
            format!(
                "{}%: a promotion takes 1 to 100 percent of the list",
                percent.unwrap_or_default()
            ),
        )),
    }
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

/// `ITEM_METADATA_COLUMNS=NAME,PRICE,…`: Items-dataset columns, 1 to 10 of them.
fn metadata_columns(value: Option<String>) -> Result<Vec<String>, ConfigError> {
    let value = value.ok_or(ConfigError::Missing {
        var: "ITEM_METADATA_COLUMNS",
        hint: " with ITEM_METADATA_SOURCE=personalize (the Items dataset columns to return)",
    })?;
    let columns: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if columns.is_empty() || columns.len() > MAX_METADATA_COLUMNS {
        return Err(invalid(
            "ITEM_METADATA_COLUMNS",
            &value,
            format!("expected 1 to {MAX_METADATA_COLUMNS} column names"),
        ));
    }
    if let Some(bad) = columns
        .iter()
        .find(|c| !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(invalid(
            "ITEM_METADATA_COLUMNS",
            &value,
            format!("{bad:?} is not a column name (letters, digits and _)"),
        ));
    }
    Ok(columns)
}

/// `LOCAL_FILTERS=name=EXPRESSION;name=EXPRESSION` (and `LOCAL_PROMOTIONS`, whose expressions
/// may end in `@PERCENT`): `;` separates, since expressions hold commas. Each expression is parsed,
/// without its share.
fn parse_local_filters(
    var: &'static str,
    value: &str,
) -> Result<Vec<(String, LocalFilter, Option<String>)>, ConfigError> {
    let what = if var == "LOCAL_FILTERS" {
        "filter"
    } else {
        "promotion"
    };
    let mut filters: Vec<(String, LocalFilter, Option<String>)> = Vec::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, expression)) = entry.split_once('=') else {
            return Err(invalid(
                var,
                value,
                format!("entry {entry:?} is not name=EXPRESSION"),
            ));
        };
        let name = name.trim();
        check_name(var, value, what, name)?;
        let (expression, percent) = match what {
            "promotion" => with_percent(expression),
            _ => (expression.trim(), None),
        };
        let filter = LocalFilter::parse(expression)
            .map_err(|reason| invalid(var, value, format!("{what} {name}: {reason}")))?;
        if filters.iter().any(|(n, _, _)| n == name) {
            return Err(invalid(var, value, format!("{what} {name} is named twice")));
        }
        filters.push((name.to_owned(), filter, percent.map(str::to_owned)));
    }
    Ok(filters)
}

fn check_name(var: &'static str, value: &str, what: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid(
            var,
            value,
            format!("{what} name {name:?} must be letters, digits, - or _"),
        ));
    }
    // Personalize names a promotion in the request: 1 to 63 characters, from a letter or digit.
    if what == "promotion"
        && (name.len() > 63 || !name.starts_with(|c: char| c.is_ascii_alphanumeric()))
    {
        return Err(invalid(
            var,
            value,
            format!(
                "promotion name {name:?} must start with a letter or digit and be at most 63 characters"
            ),
        ));
    }
    Ok(())
}

fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn number(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u32,
    min: u32,
    max: u32,
) -> Result<u32, ConfigError> {
    let Some(text) = var(name) else {
        return Ok(default);
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            name,
            &text,
            format!("expected an integer in {min}..={max}"),
        )),
    }
}

fn template(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    match var(name) {
        Some(t) if !t.contains("{id}") => Err(invalid(name, &t, "must contain {id}")),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
