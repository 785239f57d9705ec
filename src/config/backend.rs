//! Which backend serves, and with what: AWS mode's ARNs, filters, promotions and item source, or
//! local mode's data directory, filter expressions and promotions. Any one AWS-mode setting
//! means AWS mode; settings of the other mode are refused by name rather than ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use personalize_braze_aws::personalize::arn::{ArnKind, PersonalizeArn, TargetKind, parse_arn};
use personalize_braze_core::env::{Env, invalid};
use personalize_braze_core::limits::MAX_METADATA_COLUMNS;
use personalize_braze_core::recommender::Promotion;
use personalize_braze_local::filter::LocalFilter;

use super::ConfigError;

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
    pub(super) fn has_filter(&self, name: &str) -> bool {
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

/// The backend the environment describes.
pub(super) fn from_env(var: &impl Fn(&str) -> Option<String>) -> Result<Backend, ConfigError> {
    if AWS_SETTINGS.iter().any(|name| var(name).is_some()) {
        aws_backend(var)
    } else {
        local_backend(var)
    }
}

fn local_backend(var: &impl Fn(&str) -> Option<String>) -> Result<Backend, ConfigError> {
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
    let promotions = var("LOCAL_PROMOTIONS").unwrap_or_else(|| DEFAULT_LOCAL_PROMOTIONS.to_owned());
    let default_percent = promotion_percent(&var)?;
    Ok(Backend::Local {
        data_dir: PathBuf::from(var("DATA_DIR").unwrap_or_else(|| "examples/data".to_owned())),
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
    })
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
    Ok(Env::new(var).number("PROMOTION_PERCENT", 20, 1, 100)? as u8)
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
