//! Query strings (and `POST /rankings` bodies) → validated queries for `/recommendations`,
//! `/related-items` and `/rankings`.
//!
//! Rules: an empty value counts as not given, so a blank Liquid variable falls back to the
//! default (a `filter_` list with nothing in it too); a parameter that may appear once and appears
//! twice is an error; a value that is not percent-encoded UTF-8 is an error, never replaced;
//! unknown parameters are ignored (Braze and proxies add their own).

pub use crate::parameter::{InvalidParameter, invalid};
use std::borrow::Cow;

use personalize_braze_core::encoding::form_decode;
use personalize_braze_core::fallback::{Choice, Source};
use personalize_braze_core::limits::{
    MAX_CONTEXT_ENTRIES, MAX_CONTEXT_KEY_CHARS, MAX_CONTEXT_VALUE_CHARS, MAX_FILTER_NAME_CHARS,
    MAX_FILTER_PARAMS, MAX_FILTER_VALUES_CHARS, MAX_ID_CHARS, MAX_SEEDS,
};

/// `diversify=FIELD:N`: an attribute name takes at most this many characters (DynamoDB's limit).
pub const MAX_DIVERSIFY_FIELD_CHARS: usize = 255;
use personalize_braze_core::recommender::{
    PromotionQuery, RankingQuery, RecommendationQuery, Refinement, Subject,
};
use personalize_braze_core::service::Diversify;

/// Count limits and the default filter, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub default_count: u32,
    pub max_count: u32,
    /// Ids one ranking takes: 500, or 50 when Personalize returns item metadata.
    pub max_ranking_items: usize,
    pub default_filter: Option<String>,
}

/// The response shape the caller asked for with `format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A bare JSON array: `recommendations[0].name` in Liquid.
    List,
    /// `{"items":[…],"recommendation_id":…}`, so Braze adds `__http_status_code__`.
    Object,
    /// The ids alone, `["sku-1","sku-2"]`: for a Braze Catalog's `catalog_items` to look up.
    Ids,
}

/// How to answer: the response's shape, and which of the ranked items it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub format: Format,
    /// `diversify=FIELD:N`.
    pub diversify: Option<Diversify>,
}

/// What the names a request may use (`filter=`, `recommender=`, `promotion=`) mean here. A
/// closure is the filters alone, with no named recommenders or promotions.
pub trait Names {
    fn has_filter(&self, name: &str) -> bool;

    fn has_recommender(&self, _name: &str) -> bool {
        false
    }

    /// What `/recommendations` answers with when `recommender=` is not given.
    fn default_recommender(&self) -> Option<&str> {
        None
    }

    fn has_promotion(&self, _name: &str) -> bool {
        false
    }
}

impl<F: Fn(&str) -> bool> Names for F {
    fn has_filter(&self, name: &str) -> bool {
        self(name)
    }
}

/// Parameters as they arrive, from a query string or a JSON body, before an endpoint's rules.
#[derive(Debug, Default)]
pub struct Params {
    user_id: Option<String>,
    item_id: Option<String>,
    count: Option<String>,
    filter: Option<String>,
    format: Option<String>,
    recommender: Option<String>,
    promotion: Option<String>,
    diversify: Option<String>,
    fallback: Option<String>,
    item_ids: Option<Vec<String>>,
    filter_values: Vec<(String, Vec<String>)>,
    promotion_values: Vec<(String, Vec<String>)>,
    context: Vec<(String, String)>,
}

impl Params {
    /// `user_id=…&count=…`; `item_ids` is a comma-separated list and may repeat.
    pub fn from_query(query: Option<&str>) -> Result<Params, InvalidParameter> {
        let mut params = Params::default();
        for pair in query.unwrap_or_default().split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            // A name that does not decode is no name of ours: ignored like any unknown one.
            let Some(name) = form_decode(name) else {
                continue;
            };
            if !is_parameter(&name) {
                continue;
            }
            let value = form_decode(value).ok_or_else(|| {
                invalid(
                    name.as_ref(),
                    format!(
                        "{name} is not valid percent-encoded UTF-8: encode each byte as %XX \
                         (Liquid's url_param_escape does)"
                    ),
                )
            })?;
            if name == "item_ids" {
                let ids = comma_list(&value).map(str::to_owned);
                params.item_ids.get_or_insert_default().extend(ids);
            } else {
                params.add(&name, value)?;
            }
        }
        Ok(params)
    }

    /// A JSON object with the query string's names: `{"user_id": "u", "item_ids": ["a", "b"]}`.
    /// Values are strings (`count` may be a number); `item_ids` and `filter_*` may be arrays,
    /// whose entries are taken whole (commas included). As in a query string, names this
    /// service does not know are ignored, whatever their value.
    pub fn from_json(body: &[u8]) -> Result<Params, InvalidParameter> {
        let fields = match super::json::parse(body, "body") {
            Ok(serde_json::Value::Object(fields)) => fields,
            Ok(_) => return Err(invalid("body", "body must be a JSON object")),
            Err(e) => return Err(e.invalid("a JSON object")),
        };
        let mut params = Params::default();
        for (name, value) in fields {
            use serde_json::Value::{Array, Null, Number, String as Text};
            if !is_parameter(&name) {
                continue;
            }
            match value {
                Null => {}
                Text(text) if name == "item_ids" => {
                    params.item_ids = Some(comma_list(&text).map(str::to_owned).collect());
                }
                Text(text) => params.add(&name, Cow::Owned(text))?,
                // `35.0` is the integer 35, as JSON Schema has it.
                Number(n) if name == "count" => {
                    let whole = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15);
                    let text = whole.map_or_else(|| n.to_string(), |f| format!("{f:.0}"));
                    params.add(&name, Cow::Owned(text))?
                }
                Array(values)
                    if name == "item_ids"
                        || name.starts_with("filter_")
                        || name.starts_with("promotion_") =>
                {
                    let strings = values
                        .into_iter()
                        .map(|v| match v {
                            Text(text) => Ok(text),
                            _ => Err(invalid(&name, format!("{name} must hold only strings"))),
                        })
                        .collect::<Result<Vec<String>, _>>()?;
                    let values = strings.iter().map(|v| v.trim()).filter(|v| !v.is_empty());
                    if let Some(param) = name.strip_prefix("filter_") {
                        add_filter_values(&mut params.filter_values, &name, param, values)?;
                    } else if let Some(param) = name.strip_prefix("promotion_") {
                        add_filter_values(&mut params.promotion_values, &name, param, values)?;
                    } else {
                        params.item_ids = Some(strings);
                    }
                }
                _ => return Err(invalid(&name, format!("{name} must be a string"))),
            }
        }
        Ok(params)
    }

    /// One name=value pair; empty values count as not given, unknown names are ignored. A
    /// `context_` name is the document's whatever its value: one it does not allow is a 400 even
    /// when empty, as it is with a value.
    fn add(&mut self, name: &str, value: Cow<'_, str>) -> Result<(), InvalidParameter> {
        if value.is_empty() {
            return match name.strip_prefix("context_") {
                Some(key) if !is_identifier(key, MAX_CONTEXT_KEY_CHARS) => {
                    Err(bad_context_key(name))
                }
                _ => Ok(()),
            };
        }
        match name {
            "user_id" => once(&mut self.user_id, name, value),
            "item_id" => once(&mut self.item_id, name, value),
            "count" => once(&mut self.count, name, value),
            "filter" => once(&mut self.filter, name, value),
            "format" => once(&mut self.format, name, value),
            "recommender" => once(&mut self.recommender, name, value),
            "promotion" => once(&mut self.promotion, name, value),
            "diversify" => once(&mut self.diversify, name, value),
            "fallback" => once(&mut self.fallback, name, value),
            _ => {
                if let Some(param) = name.strip_prefix("filter_") {
                    add_filter_values(&mut self.filter_values, name, param, comma_list(&value))
                } else if let Some(param) = name.strip_prefix("promotion_") {
                    let values = comma_list(&value);
                    add_filter_values(&mut self.promotion_values, name, param, values)
                } else if let Some(key) = name.strip_prefix("context_") {
                    add_context(&mut self.context, name, key, value.into_owned())
                } else {
                    Ok(())
                }
            }
        }
    }

    fn count(&self, default: Option<u32>, max: u32) -> Result<Option<u32>, InvalidParameter> {
        match &self.count {
            None => Ok(default),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(invalid(
                    "count",
                    format!("count must be an integer from 1 to {max}"),
                )),
            },
        }
    }

    fn format(&self) -> Result<Format, InvalidParameter> {
        match self.format.as_deref() {
            None | Some("list") => Ok(Format::List),
            Some("object") => Ok(Format::Object),
            Some("ids") => Ok(Format::Ids),
            Some(_) => Err(invalid("format", "format must be list, object or ids")),
        }
    }

    /// The format and `diversify=FIELD:N`, N from 1 to `count` (the items the answer may hold).
    fn shape(&self, count: u32) -> Result<Shape, InvalidParameter> {
        let diversify = match &self.diversify {
            None => None,
            Some(text) => {
                let rule = text
                    .rsplit_once(':')
                    .filter(|(field, _)| {
                        !field.is_empty()
                            && field.chars().count() <= MAX_DIVERSIFY_FIELD_CHARS
                            && !field.chars().any(char::is_control)
                    })
                    .map(|(field, n)| (field, n.parse::<u32>()));
                match rule {
                    Some((field, Ok(n))) if (1..=count).contains(&n) => Some(Diversify {
                        field: field.to_owned(),
                        per_value: n as usize,
                    }),
                    Some((_, Ok(_))) => {
                        return Err(invalid(
                            "diversify",
                            format!("diversify: N must be from 1 to the count ({count})"),
                        ));
                    }
                    _ => {
                        return Err(invalid(
                            "diversify",
                            format!(
                                "diversify must be FIELD:N (an item attribute of 1 to \
                                 {MAX_DIVERSIFY_FIELD_CHARS} characters, at most N items for \
                                 each of its values), e.g. category:2"
                            ),
                        ));
                    }
                }
            }
        };
        Ok(Shape {
            format: self.format()?,
            diversify,
        })
    }

    /// `fallback=off|popular|last-good`: what may answer if the recommender cannot.
    fn fallback(&self) -> Result<Choice, InvalidParameter> {
        match self.fallback.as_deref() {
            None => Ok(Choice::Deployment),
            Some("off") => Ok(Choice::Off),
            Some(name) => Source::parse(name)
                .map(Choice::Only)
                .ok_or_else(|| invalid("fallback", "fallback must be off, popular or last-good")),
        }
    }

    /// `recommender=` and `promotion=` mean something on `/recommendations` only.
    fn refuse_user_only(&self, route: &str) -> Result<(), InvalidParameter> {
        let given = [
            ("recommender", self.recommender.is_some()),
            ("promotion", self.promotion.is_some()),
        ];
        let promotion_value = self.promotion_values.first().map(|(p, _)| p);
        match (given.iter().find(|(_, given)| *given), promotion_value) {
            (Some((name, _)), _) => Err(invalid(
                *name,
                format!("{name} applies to /recommendations, not {route}"),
            )),
            (None, Some(param)) => Err(invalid(
                format!("promotion_{param}"),
                format!("promotion_{param} applies to /recommendations, not {route}"),
            )),
            (None, None) => Ok(()),
        }
    }

    /// `recommender=NAME` (or the default), and `promotion=NAME` with its `promotion_*` values.
    fn recommender_and_promotion(
        &mut self,
        names: &impl Names,
    ) -> Result<(Option<String>, Option<PromotionQuery>), InvalidParameter> {
        let recommender = match self.recommender.take() {
            Some(name) if !names.has_recommender(&name) => {
                return Err(invalid(
                    "recommender",
                    format!("recommender {name:?} is not a configured recommender name"),
                ));
            }
            Some(name) => Some(name),
            None => names.default_recommender().map(str::to_owned),
        };
        let promotion = match self.promotion.take() {
            Some(name) if !names.has_promotion(&name) => {
                return Err(invalid(
                    "promotion",
                    format!("promotion {name:?} is not a configured promotion name"),
                ));
            }
            Some(name) => Some(PromotionQuery {
                name,
                filter_values: std::mem::take(&mut self.promotion_values),
            }),
            None => match self.promotion_values.first() {
                Some((param, _)) => {
                    return Err(invalid(
                        format!("promotion_{param}"),
                        format!("promotion_{param} needs a promotion: add promotion=NAME"),
                    ));
                }
                None => None,
            },
        };
        Ok((recommender, promotion))
    }

    /// The filter (or `default_filter`), its values and the context.
    fn refinement(
        &mut self,
        default_filter: Option<&String>,
        names: &impl Names,
    ) -> Result<Refinement, InvalidParameter> {
        let filter = match self.filter.take() {
            Some(name) if !names.has_filter(&name) => {
                return Err(invalid(
                    "filter",
                    format!("filter {name:?} is not a configured filter name"),
                ));
            }
            Some(name) => Some(name),
            None => default_filter.cloned(),
        };
        if filter.is_none()
            && let Some((param, _)) = self.filter_values.first()
        {
            return Err(invalid(
                format!("filter_{param}"),
                format!("filter_{param} needs a filter: add filter=NAME"),
            ));
        }
        Ok(Refinement {
            filter,
            filter_values: std::mem::take(&mut self.filter_values),
            context: std::mem::take(&mut self.context),
        })
    }
}

/// `GET /recommendations?user_id=…`.
pub fn parse_recommendations(
    query: Option<&str>,
    limits: &Limits,
    names: impl Names,
) -> Result<(RecommendationQuery, Shape), InvalidParameter> {
    let mut params = Params::from_query(query)?;
    let user_id = required_id(params.user_id.take(), "user_id")?;
    let count = params.count(Some(limits.default_count), limits.max_count)?;
    let count = count.unwrap_or(limits.default_count);
    let shape = params.shape(count)?;
    let refinement = params.refinement(limits.default_filter.as_ref(), &names)?;
    let (recommender, promotion) = params.recommender_and_promotion(&names)?;
    let query = RecommendationQuery {
        subject: Subject::User(user_id),
        count,
        refinement,
        recommender,
        promotion,
        fallback: params.fallback()?,
    };
    Ok((query, shape))
}

/// `GET /related-items?item_id=…[&user_id=…]`, or `item_ids=a,b,c` for items related to several
/// (up to `MAX_SEEDS`). The answer's subject is the first seed; the seeds are all of them.
/// `DEFAULT_FILTER` is for `/recommendations` only: a filter on a user's interactions means little
/// without a user.
pub fn parse_related_items(
    query: Option<&str>,
    limits: &Limits,
    names: impl Names,
) -> Result<(RecommendationQuery, Vec<String>, Shape), InvalidParameter> {
    let mut params = Params::from_query(query)?;
    params.refuse_user_only("/related-items")?;
    let seeds = match (params.item_id.take(), params.item_ids.take()) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "item_ids",
                "give item_id (one item) or item_ids (several), not both",
            ));
        }
        (Some(item_id), None) => vec![required_id(Some(item_id), "item_id")?],
        (None, Some(mut ids)) => {
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            ids.retain(|id| seen.insert(id.clone()));
            if ids.is_empty() || ids.len() > MAX_SEEDS {
                return Err(invalid(
                    "item_ids",
                    format!("item_ids must hold 1 to {MAX_SEEDS} distinct item ids"),
                ));
            }
            for id in &ids {
                check_id(id, "item_ids")?;
            }
            ids
        }
        (None, None) => return Err(invalid("item_id", "item_id (or item_ids) is required")),
    };
    let user_id = params.user_id.take();
    if let Some(user_id) = &user_id {
        check_id(user_id, "user_id")?;
    }
    let count = params.count(Some(limits.default_count), limits.max_count)?;
    let count = count.unwrap_or(limits.default_count);
    let shape = params.shape(count)?;
    let refinement = params.refinement(None, &names)?;
    let query = RecommendationQuery {
        subject: Subject::RelatedTo {
            item_id: seeds[0].clone(),
            user_id,
        },
        count,
        refinement,
        fallback: params.fallback()?,
        ..RecommendationQuery::default()
    };
    Ok((query, seeds, shape))
}

/// `GET /rankings?user_id=…&item_ids=a,b,c` or the same as a JSON body. `count`, when given,
/// keeps the best few; otherwise every known item comes back.
pub fn parse_rankings(
    mut params: Params,
    limits: &Limits,
    names: impl Names,
) -> Result<(RankingQuery, Option<u32>, Shape), InvalidParameter> {
    params.refuse_user_only("/rankings")?;
    if params.fallback.is_some() {
        return Err(invalid(
            "fallback",
            "fallback applies to /recommendations and /related-items, not /rankings",
        ));
    }
    let max_items = limits.max_ranking_items;
    let user_id = required_id(params.user_id.take(), "user_id")?;
    let mut item_ids = params
        .item_ids
        .take()
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| invalid("item_ids", "item_ids is required: the items to rank"))?;
    let mut seen = std::collections::HashSet::with_capacity(item_ids.len());
    item_ids.retain(|id| seen.insert(id.clone()));
    if item_ids.len() > max_items {
        return Err(invalid(
            "item_ids",
            format!(
                "item_ids holds {} ids; at most {max_items} can be ranked",
                item_ids.len()
            ),
        ));
    }
    for id in &item_ids {
        check_id(id, "item_ids")?;
    }
    let count = params.count(None, max_items as u32)?;
    let shape = params.shape(count.unwrap_or(item_ids.len() as u32))?;
    let refinement = params.refinement(None, &names)?;
    let query = RankingQuery {
        user_id,
        item_ids,
        refinement,
    };
    Ok((query, count, shape))
}

/// The names any endpoint takes; the rest are ignored (Braze and proxies add their own).
fn is_parameter(name: &str) -> bool {
    matches!(
        name,
        "user_id"
            | "item_id"
            | "item_ids"
            | "count"
            | "filter"
            | "format"
            | "recommender"
            | "promotion"
            | "diversify"
            | "fallback"
    ) || name.starts_with("filter_")
        || name.starts_with("promotion_")
        || name.starts_with("context_")
}

/// `a, b,,c` → `a`, `b`, `c`: comma-separated values, trimmed, empty ones skipped.
pub fn comma_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|v| !v.is_empty())
}

fn once(
    slot: &mut Option<String>,
    name: &str,
    value: Cow<'_, str>,
) -> Result<(), InvalidParameter> {
    if slot.is_some() {
        return Err(invalid(name, format!("{name} is given more than once")));
    }
    *slot = Some(value.into_owned());
    Ok(())
}

fn required_id(value: Option<String>, name: &str) -> Result<String, InvalidParameter> {
    let value = value.ok_or_else(|| invalid(name, format!("{name} is required")))?;
    check_id(&value, name)?;
    Ok(value)
}

/// User and item ids: Personalize takes 1 to 256 characters, and an empty id is no DynamoDB key
/// either; control characters are refused here, where they are surely a template mistake.
pub fn check_id(id: &str, name: &str) -> Result<(), InvalidParameter> {
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS {
        return Err(invalid(
            name,
            format!("{name} must be 1 to {MAX_ID_CHARS} characters long"),
        ));
    }
    if id.chars().any(char::is_control) {
        return Err(invalid(
            name,
            format!("{name} must not contain control characters"),
        ));
    }
    Ok(())
}

/// Letters, digits and `_`: what a Personalize filter placeholder or context key can be.
fn bad_context_key(parameter: &str) -> InvalidParameter {
    invalid(
        parameter,
        format!(
            "{parameter}: the part after context_ must be 1 to {MAX_CONTEXT_KEY_CHARS} letters, digits or _"
        ),
    )
}

fn is_identifier(name: &str, max_chars: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_chars
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `filter_CATEGORY=shoes,boots` (or repeated) → `CATEGORY: ["shoes", "boots"]`; the same for
/// a promotion's `promotion_CATEGORY`.
fn add_filter_values<'v>(
    all: &mut Vec<(String, Vec<String>)>,
    parameter: &str,
    param: &str,
    values: impl Iterator<Item = &'v str>,
) -> Result<(), InvalidParameter> {
    if !is_identifier(param, MAX_FILTER_NAME_CHARS) {
        let prefix = &parameter[..parameter.len() - param.len()];
        return Err(invalid(
            parameter,
            format!(
                "{parameter}: the part after {prefix} must be 1 to {MAX_FILTER_NAME_CHARS} letters, digits or _"
            ),
        ));
    }
    let mut values = values.peekable();
    let index = match all.iter().position(|(p, _)| p == param) {
        Some(i) => i,
        // `filter_CATEGORY=,` or `[""]`: nothing in it, so not given.
        None if values.peek().is_none() => return Ok(()),
        None if all.len() == MAX_FILTER_PARAMS => {
            return Err(invalid(
                parameter,
                format!(
                    "{parameter}: at most {MAX_FILTER_PARAMS} {} parameters are allowed",
                    &parameter[..parameter.len() - param.len()]
                ),
            ));
        }
        None => {
            all.push((param.to_owned(), Vec::new()));
            all.len() - 1
        }
    };
    let values_of_param = &mut all[index].1;
    values_of_param.extend(values.map(str::to_owned));
    let values = &*values_of_param;
    // Each value costs its quotes, its escapes and a separating comma once quoted.
    let quoted: usize = values
        .iter()
        .map(|v| {
            v.chars()
                .map(|c| if c == '"' || c == '\\' { 2 } else { 1 })
                .sum::<usize>()
                + 3
        })
        .sum();
    if quoted.saturating_sub(1) > MAX_FILTER_VALUES_CHARS {
        return Err(invalid(
            parameter,
            format!(
                "{parameter} is too long: at most {MAX_FILTER_VALUES_CHARS} characters once quoted"
            ),
        ));
    }
    Ok(())
}

/// `context_DEVICE=mobile` → `DEVICE: "mobile"`.
fn add_context(
    all: &mut Vec<(String, String)>,
    parameter: &str,
    key: &str,
    value: String,
) -> Result<(), InvalidParameter> {
    if !is_identifier(key, MAX_CONTEXT_KEY_CHARS) {
        return Err(bad_context_key(parameter));
    }
    if value.chars().count() > MAX_CONTEXT_VALUE_CHARS {
        return Err(invalid(
            parameter,
            format!("{parameter} must be at most {MAX_CONTEXT_VALUE_CHARS} characters"),
        ));
    }
    if all.iter().any(|(k, _)| k == key) {
        return Err(invalid(
            parameter,
            format!("{parameter} is given more than once"),
        ));
    }
    if all.len() == MAX_CONTEXT_ENTRIES {
        return Err(invalid(
            parameter,
            format!("{parameter}: at most {MAX_CONTEXT_ENTRIES} context_ parameters are allowed"),
        ));
    }
    all.push((key.to_owned(), value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use personalize_braze_core::limits::MAX_RANKING_ITEMS;

    fn limits() -> Limits {
        Limits {
            default_count: 10,
            max_count: 100,
            max_ranking_items: MAX_RANKING_ITEMS,
            default_filter: None,
        }
    }

    fn parse(query: &str) -> Result<(RecommendationQuery, Shape), InvalidParameter> {
        parse_recommendations(Some(query), &limits(), |name: &str| {
            name == "no-purchased" || name == "cat"
        })
    }

    fn error(query: &str) -> InvalidParameter {
        parse(query).expect_err(query)
    }

    /// Bytes that are not percent-encoded UTF-8 are refused, naming the parameter; before, they
    /// became U+FFFD and reached Personalize as another user.
    #[test]
    fn values_that_are_not_percent_encoded_utf8_are_refused() {
        for query in [
            "user_id=%FF",
            "user_id=caf%E9",
            "user_id=%ZZ",
            "user_id=ab%F",
        ] {
            let e = error(query);
            assert_eq!(e.parameter, "user_id", "{query}");
            assert!(
                e.message.contains("percent-encoded UTF-8"),
                "{query}: {e:?}"
            );
        }
        let e = error("user_id=u&filter=cat&filter_CATEGORY=%C3");
        assert_eq!(e.parameter, "filter_CATEGORY");
        // Names and values that are not ours are ignored, however they are encoded.
        let (q, _) = parse("user_id=caf%C3%A9+au+lait&cb=%FF&%FF=1&utm=%ZZ").unwrap();
        assert_eq!(q.subject, Subject::User("café au lait".into()));
    }

    /// `filter_CATEGORY=,` holds no value: it counts as not given, as `filter_CATEGORY=` does,
    /// in a query string and in a JSON body alike.
    #[test]
    fn a_filter_list_with_nothing_in_it_counts_as_not_given() {
        for query in [
            "user_id=u&filter=cat&filter_CATEGORY=,",
            "user_id=u&filter=cat&filter_CATEGORY=%20,%20",
        ] {
            let (q, _) = parse(query).unwrap();
            assert_eq!(q.refinement.filter_values, vec![], "{query}");
        }
        let (q, _) = parse("user_id=u&filter=cat&filter_CATEGORY=,&filter_CATEGORY=hats").unwrap();
        assert_eq!(
            q.refinement.filter_values,
            vec![("CATEGORY".to_owned(), vec!["hats".to_owned()])]
        );
        for body in [
            r#"{"user_id":"u","item_ids":["a"],"filter":"cat","filter_CATEGORY":[]}"#,
            r#"{"user_id":"u","item_ids":["a"],"filter":"cat","filter_CATEGORY":[""," "]}"#,
        ] {
            let params = Params::from_json(body.as_bytes()).unwrap();
            let (q, _, _) = parse_rankings(params, &limits(), |n: &str| n == "cat").unwrap();
            assert_eq!(q.refinement.filter_values, vec![], "{body}");
        }
        // Without a filter, an empty list is not a value that needs one.
        assert!(parse("user_id=u&filter_CATEGORY=,").is_ok());
    }

    #[test]
    fn a_name_twice_in_a_json_body_is_refused_like_a_repeated_parameter() {
        for body in [
            r#"{"user_id":"a","item_ids":["x"],"user_id":"b"}"#,
            r#"{"user_id":"a","item_ids":["x"],"count":2,"count":"3"}"#,
        ] {
            let e = Params::from_json(body.as_bytes()).unwrap_err();
            assert!(
                e.message.ends_with("is given more than once"),
                "{body}: {e:?}"
            );
            assert!(
                ["user_id", "count"].contains(&e.parameter.as_str()),
                "{e:?}"
            );
        }
        // Unknown names are ignored, but not twice either: the caller's body is ambiguous.
        let e = Params::from_json(br#"{"user_id":"a","x":1,"x":2}"#).unwrap_err();
        assert_eq!(e.parameter, "x");
    }

    #[test]
    fn minimal_query_takes_the_defaults() {
        let (q, format) = parse("user_id=u1").unwrap();
        assert_eq!(q.subject, Subject::User("u1".into()));
        assert_eq!(q.count, 10);
        assert_eq!(q.refinement.filter, None);
        assert_eq!(format.format, Format::List);
    }

    #[test]
    fn everything_at_once() {
        let (q, format) = parse(
            "user_id=u%201&count=25&filter=cat&filter_CATEGORY=shoes,%20boots&filter_CATEGORY=hats\
             &filter_BRAND=acme&context_DEVICE=mobile&format=object&cb=123",
        )
        .unwrap();
        assert_eq!(q.subject, Subject::User("u 1".into()));
        assert_eq!(q.count, 25);
        assert_eq!(q.refinement.filter.as_deref(), Some("cat"));
        assert_eq!(
            q.refinement.filter_values,
            vec![
                (
                    "CATEGORY".to_owned(),
                    vec!["shoes".to_owned(), "boots".to_owned(), "hats".to_owned()]
                ),
                ("BRAND".to_owned(), vec!["acme".to_owned()]),
            ]
        );
        assert_eq!(
            q.refinement.context,
            vec![("DEVICE".to_owned(), "mobile".to_owned())]
        );
        assert_eq!(format.format, Format::Object);
    }

    #[test]
    fn empty_values_count_as_not_given() {
        let (q, format) = parse("user_id=u&count=&filter=&format=&context_DEVICE=").unwrap();
        assert_eq!(
            (q.count, q.refinement.filter, format.format),
            (10, None, Format::List)
        );
        assert!(q.refinement.context.is_empty());
        assert_eq!(error("user_id=").parameter, "user_id");
        // A context key the document does not allow is refused with or without its value.
        let long = format!("context_{}", "K".repeat(151));
        for query in [
            format!("user_id=u&{long}="),
            format!("user_id=u&diversify=&{long}=x"),
        ] {
            assert_eq!(error(&query).parameter, long, "{query}");
        }
        assert_eq!(error("user_id=u&context_=").parameter, "context_");
    }

    #[test]
    fn the_default_filter_applies_when_none_is_given() {
        let limits = Limits {
            default_filter: Some("no-purchased".into()),
            ..limits()
        };
        let (q, _) = parse_recommendations(Some("user_id=u"), &limits, |_: &str| true).unwrap();
        assert_eq!(q.refinement.filter.as_deref(), Some("no-purchased"));
        let (q, _) =
            parse_recommendations(Some("user_id=u&filter=cat"), &limits, |_: &str| true).unwrap();
        assert_eq!(q.refinement.filter.as_deref(), Some("cat"));
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let long_user = format!("user_id={}", "x".repeat(257));
        let long_context = format!("user_id=u&context_K={}", "v".repeat(1001));
        let long_filter = format!("user_id=u&filter=cat&filter_P={}", "v".repeat(999));
        let cases: &[(&str, &str, &str)] = &[
            ("", "user_id", "user_id is required"),
            ("count=3", "user_id", "user_id is required"),
            (&long_user, "user_id", "1 to 256 characters long"),
            ("user_id=a%0Ab", "user_id", "control characters"),
            ("user_id=a%00", "user_id", "control characters"),
            ("user_id=a&user_id=b", "user_id", "more than once"),
            ("user_id=u&count=0", "count", "from 1 to 100"),
            ("user_id=u&count=101", "count", "from 1 to 100"),
            ("user_id=u&count=ten", "count", "from 1 to 100"),
            ("user_id=u&count=-1", "count", "from 1 to 100"),
            (
                "user_id=u&filter=arn:aws:personalize:x",
                "filter",
                "not a configured filter name",
            ),
            ("user_id=u&format=xml", "format", "list, object or ids"),
            (
                "user_id=u&filter_CATEGORY=shoes",
                "filter_CATEGORY",
                "needs a filter",
            ),
            ("user_id=u&filter=cat&filter_=x", "filter_", "after filter_"),
            (
                "user_id=u&filter=cat&filter_A-B=x",
                "filter_A-B",
                "after filter_",
            ),
            (&long_filter, "filter_P", "too long"),
            ("user_id=u&context_=x", "context_", "after context_"),
            (&long_context, "context_K", "at most 1000"),
            (
                "user_id=u&context_K=a&context_K=b",
                "context_K",
                "more than once",
            ),
        ];
        for (query, parameter, message) in cases {
            let err = error(query);
            assert_eq!(&err.parameter, parameter, "{query}");
            assert!(err.message.contains(message), "{query}: {}", err.message);
            assert!(
                err.message.contains(parameter),
                "{query}: message must name the parameter"
            );
        }
    }

    #[test]
    fn related_items_take_an_item_an_optional_user_and_no_default_filter() {
        let limits = Limits {
            default_filter: Some("no-purchased".into()),
            ..limits()
        };
        let related =
            |query: &str| parse_related_items(Some(query), &limits, |name: &str| name == "cat");
        let (q, seeds, format) = related("item_id=sku%201&count=4&format=object").unwrap();
        assert_eq!(seeds, ["sku 1"]);
        assert_eq!(
            q.subject,
            Subject::RelatedTo {
                item_id: "sku 1".into(),
                user_id: None
            }
        );
        assert_eq!((q.count, format.format), (4, Format::Object));
        assert_eq!(
            q.refinement.filter, None,
            "DEFAULT_FILTER is for /recommendations"
        );
        let (q, _, _) = related("item_id=a&user_id=u&filter=cat&filter_C=x&context_D=m").unwrap();
        assert_eq!(q.subject.user_id(), Some("u"));
        assert_eq!(q.refinement.filter.as_deref(), Some("cat"));
        for (query, parameter) in [
            ("user_id=u", "item_id"),
            ("item_id=a%0A", "item_id"),
            ("item_id=a&user_id=b%00", "user_id"),
            ("item_id=a&item_id=b", "item_id"),
            ("item_id=a&count=101", "count"),
            ("item_id=a&filter=nope", "filter"),
            ("item_id=a&item_ids=b,c", "item_ids"),
            ("item_ids=,", "item_ids"),
            ("item_ids=a,b,c,d,e,f,g,h,i,j,k", "item_ids"),
            ("item_ids=a,b%07c", "item_ids"),
        ] {
            assert_eq!(related(query).unwrap_err().parameter, parameter, "{query}");
        }
        // Several seeds, repeats dropped, the first the subject; ten is the most.
        let (q, seeds, _) = related("item_ids=a,%20b,a,c&user_id=u").unwrap();
        assert_eq!(seeds, ["a", "b", "c"]);
        assert_eq!(
            q.subject,
            Subject::RelatedTo {
                item_id: "a".into(),
                user_id: Some("u".into())
            }
        );
        assert!(related("item_ids=a,b,c,d,e,f,g,h,i,j,a").is_ok());
    }

    fn rankings(
        params: Result<Params, InvalidParameter>,
    ) -> Result<(RankingQuery, Option<u32>, Shape), InvalidParameter> {
        parse_rankings(params?, &limits(), |name: &str| name == "cat")
    }

    #[test]
    fn rankings_take_ids_from_a_query_string_or_a_json_body() {
        let (q, count, format) = rankings(Params::from_query(Some(
            "user_id=u&item_ids=a,b,%20c&item_ids=a,d",
        )))
        .unwrap();
        assert_eq!(q.user_id, "u");
        assert_eq!(
            q.item_ids,
            ["a", "b", "c", "d"],
            "split, trimmed, repeats dropped"
        );
        assert_eq!((count, format.format), (None, Format::List));

        let body = br#"{"user_id":"u","item_ids":["a,1","b"],"count":1,"format":"object",
            "filter":"cat","filter_CATEGORY":["shoes","hats, caps"],"context_DEVICE":"mobile",
            "cb":null,"utm":{"source":"braze"},"n":7}"#;
        let (q, count, format) = rankings(Params::from_json(body)).unwrap();
        assert_eq!(q.item_ids, ["a,1", "b"], "array entries are whole ids");
        assert_eq!((count, format.format), (Some(1), Format::Object));
        assert_eq!(
            q.refinement.filter_values,
            [(
                "CATEGORY".to_owned(),
                vec!["shoes".to_owned(), "hats, caps".to_owned()]
            )]
        );
        assert_eq!(
            q.refinement.context,
            [("DEVICE".to_owned(), "mobile".to_owned())]
        );

        let (q, _, _) =
            rankings(Params::from_json(br#"{"user_id":"u","item_ids":"a, b"}"#)).unwrap();
        assert_eq!(q.item_ids, ["a", "b"]);
        // 2.0 is the integer 2 (JSON Schema agrees); 2.5 is not a count.
        let (_, count, _) = rankings(Params::from_json(
            br#"{"user_id":"u","item_ids":"a","count":2.0}"#,
        ))
        .unwrap();
        assert_eq!(count, Some(2));
        let e = rankings(Params::from_json(
            br#"{"user_id":"u","item_ids":"a","count":2.5}"#,
        ))
        .unwrap_err();
        assert_eq!(e.parameter, "count");
    }

    #[test]
    fn rankings_name_each_bad_parameter() {
        let many: Vec<String> = (0..501).map(|i| format!("i{i}")).collect();
        let too_many = format!("user_id=u&item_ids={}", many.join(","));
        let cases: Vec<(Result<Params, InvalidParameter>, &str, &str)> = vec![
            (
                Params::from_query(Some("item_ids=a")),
                "user_id",
                "required",
            ),
            (
                Params::from_query(Some("user_id=u")),
                "item_ids",
                "required",
            ),
            (
                Params::from_query(Some("user_id=u&item_ids=,,")),
                "item_ids",
                "required",
            ),
            (
                Params::from_query(Some(&too_many)),
                "item_ids",
                "at most 500",
            ),
            (
                Params::from_query(Some("user_id=u&item_ids=a%0Ab")),
                "item_ids",
                "control",
            ),
            (
                Params::from_query(Some("user_id=u&item_ids=a&count=501")),
                "count",
                "1 to 500",
            ),
            (Params::from_json(b"[1,2]"), "body", "JSON object"),
            (
                Params::from_json(b"{\"user_id\":7,\"item_ids\":[\"a\"]}"),
                "user_id",
                "string",
            ),
            (
                Params::from_json(br#"{"user_id":"u","item_ids":["a",2]}"#),
                "item_ids",
                "only strings",
            ),
            (
                Params::from_json(br#"{"user_id":"u","item_ids":["a"],"count":"x"}"#),
                "count",
                "1 to 500",
            ),
        ];
        for (params, parameter, message) in cases {
            let err = rankings(params).unwrap_err();
            assert_eq!(err.parameter, parameter, "{err:?}");
            assert!(err.message.contains(message), "{}", err.message);
        }
    }

    #[test]
    fn user_ids_may_be_any_printable_text_up_to_256_characters() {
        let id = "ü".repeat(256);
        let query = format!(
            "user_id={}",
            form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        );
        assert_eq!(parse(&query).unwrap().0.subject, Subject::User(id));
    }
}
