//! `GET /recommendations` query string → a validated `RecommendationQuery`.
//!
//! Rules (DESIGN.md): an empty value counts as not given, so a blank Liquid variable falls
//! back to the default; a parameter that may appear once and appears twice is an error;
//! unknown parameters are ignored (Braze and proxies add their own).

use std::borrow::Cow;

use crate::recommender::RecommendationQuery;

/// Personalize's limits on the request fields these parameters fill.
const MAX_USER_ID_CHARS: usize = 256;
const MAX_FILTER_PARAMS: usize = 25;
const MAX_FILTER_NAME_CHARS: usize = 50;
const MAX_FILTER_VALUES_CHARS: usize = 1000;
const MAX_CONTEXT_ENTRIES: usize = 150;
const MAX_CONTEXT_KEY_CHARS: usize = 150;
const MAX_CONTEXT_VALUE_CHARS: usize = 1000;

/// Count limits and the default filter, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub default_count: u32,
    pub max_count: u32,
    pub default_filter: Option<String>,
}

/// The response shape the caller asked for with `format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A bare JSON array: `recommendations[0].name` in Liquid.
    List,
    /// `{"items":[…],"recommendation_id":…}`, so Braze adds `__http_status_code__`.
    Object,
}

/// A parameter the caller got wrong; the message names it and says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidParameter {
    pub parameter: String,
    pub message: String,
}

fn invalid(parameter: impl Into<String>, message: impl Into<String>) -> InvalidParameter {
    InvalidParameter {
        parameter: parameter.into(),
        message: message.into(),
    }
}

pub fn parse_recommendations(
    query: Option<&str>,
    limits: &Limits,
    has_filter: impl Fn(&str) -> bool,
) -> Result<(RecommendationQuery, Format), InvalidParameter> {
    let mut user_id = None;
    let mut count = None;
    let mut filter = None;
    let mut format = None;
    let mut filter_values: Vec<(String, Vec<String>)> = Vec::new();
    let mut context: Vec<(String, String)> = Vec::new();

    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if value.is_empty() {
            continue;
        }
        match name.as_ref() {
            "user_id" => once(&mut user_id, "user_id", value)?,
            "count" => once(&mut count, "count", value)?,
            "filter" => once(&mut filter, "filter", value)?,
            "format" => once(&mut format, "format", value)?,
            _ => {
                if let Some(param) = name.strip_prefix("filter_") {
                    add_filter_values(&mut filter_values, &name, param, &value)?;
                } else if let Some(key) = name.strip_prefix("context_") {
                    add_context(&mut context, &name, key, value.into_owned())?;
                }
            }
        }
    }

    let user_id = user_id.ok_or_else(|| invalid("user_id", "user_id is required"))?;
    check_user_id(&user_id)?;
    let count = match count {
        None => limits.default_count,
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=limits.max_count).contains(&n) => n,
            _ => {
                return Err(invalid(
                    "count",
                    format!("count must be an integer from 1 to {}", limits.max_count),
                ));
            }
        },
    };
    let format = match format.as_deref() {
        None | Some("list") => Format::List,
        Some("object") => Format::Object,
        Some(_) => return Err(invalid("format", "format must be list or object")),
    };
    let filter = match filter {
        Some(name) if !has_filter(&name) => {
            return Err(invalid(
                "filter",
                format!("filter {name:?} is not a configured filter name"),
            ));
        }
        Some(name) => Some(name),
        None => limits.default_filter.clone(),
    };
    if filter.is_none()
        && let Some((param, _)) = filter_values.first()
    {
        return Err(invalid(
            format!("filter_{param}"),
            format!("filter_{param} needs a filter: add filter=NAME"),
        ));
    }

    let query = RecommendationQuery {
        user_id,
        count,
        filter,
        filter_values,
        context,
    };
    Ok((query, format))
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

fn check_user_id(user_id: &str) -> Result<(), InvalidParameter> {
    if user_id.chars().count() > MAX_USER_ID_CHARS {
        return Err(invalid(
            "user_id",
            format!("user_id must be at most {MAX_USER_ID_CHARS} characters"),
        ));
    }
    if user_id.chars().any(char::is_control) {
        return Err(invalid(
            "user_id",
            "user_id must not contain control characters",
        ));
    }
    Ok(())
}

/// Letters, digits and `_`: what a Personalize filter placeholder or context key can be.
fn is_identifier(name: &str, max_chars: usize) -> bool {
    !name.is_empty()
        && name.len() <= max_chars
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `filter_CATEGORY=shoes,boots` (or repeated) → `CATEGORY: ["shoes", "boots"]`.
fn add_filter_values(
    all: &mut Vec<(String, Vec<String>)>,
    parameter: &str,
    param: &str,
    value: &str,
) -> Result<(), InvalidParameter> {
    if !is_identifier(param, MAX_FILTER_NAME_CHARS) {
        return Err(invalid(
            parameter,
            format!(
                "{parameter}: the part after filter_ must be 1 to {MAX_FILTER_NAME_CHARS} letters, digits or _"
            ),
        ));
    }
    let index = match all.iter().position(|(p, _)| p == param) {
        Some(i) => i,
        None if all.len() == MAX_FILTER_PARAMS => {
            return Err(invalid(
                parameter,
                format!("{parameter}: at most {MAX_FILTER_PARAMS} filter_ parameters are allowed"),
            ));
        }
        None => {
            all.push((param.to_owned(), Vec::new()));
            all.len() - 1
        }
    };
    let values = &mut all[index].1;
    values.extend(
        value
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned),
    );
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
        return Err(invalid(
            parameter,
            format!(
                "{parameter}: the part after context_ must be 1 to {MAX_CONTEXT_KEY_CHARS} letters, digits or _"
            ),
        ));
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

    fn limits() -> Limits {
        Limits {
            default_count: 10,
            max_count: 100,
            default_filter: None,
        }
    }

    fn parse(query: &str) -> Result<(RecommendationQuery, Format), InvalidParameter> {
        parse_recommendations(Some(query), &limits(), |name| {
            name == "no-purchased" || name == "cat"
        })
    }

    fn error(query: &str) -> InvalidParameter {
        parse(query).expect_err(query)
    }

    #[test]
    fn minimal_query_takes_the_defaults() {
        let (q, format) = parse("user_id=u1").unwrap();
        assert_eq!(q.user_id, "u1");
        assert_eq!(q.count, 10);
        assert_eq!(q.filter, None);
        assert_eq!(format, Format::List);
    }

    #[test]
    fn everything_at_once() {
        let (q, format) = parse(
            "user_id=u%201&count=25&filter=cat&filter_CATEGORY=shoes,%20boots&filter_CATEGORY=hats\
             &filter_BRAND=acme&context_DEVICE=mobile&format=object&cb=123",
        )
        .unwrap();
        assert_eq!(q.user_id, "u 1");
        assert_eq!(q.count, 25);
        assert_eq!(q.filter.as_deref(), Some("cat"));
        assert_eq!(
            q.filter_values,
            vec![
                (
                    "CATEGORY".to_owned(),
                    vec!["shoes".to_owned(), "boots".to_owned(), "hats".to_owned()]
                ),
                ("BRAND".to_owned(), vec!["acme".to_owned()]),
            ]
        );
        assert_eq!(q.context, vec![("DEVICE".to_owned(), "mobile".to_owned())]);
        assert_eq!(format, Format::Object);
    }

    #[test]
    fn empty_values_count_as_not_given() {
        let (q, format) = parse("user_id=u&count=&filter=&format=&context_DEVICE=").unwrap();
        assert_eq!((q.count, q.filter, format), (10, None, Format::List));
        assert!(q.context.is_empty());
        assert_eq!(error("user_id=").parameter, "user_id");
    }

    #[test]
    fn the_default_filter_applies_when_none_is_given() {
        let limits = Limits {
            default_filter: Some("no-purchased".into()),
            ..limits()
        };
        let (q, _) = parse_recommendations(Some("user_id=u"), &limits, |_| true).unwrap();
        assert_eq!(q.filter.as_deref(), Some("no-purchased"));
        let (q, _) =
            parse_recommendations(Some("user_id=u&filter=cat"), &limits, |_| true).unwrap();
        assert_eq!(q.filter.as_deref(), Some("cat"));
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let long_user = format!("user_id={}", "x".repeat(257));
        let long_context = format!("user_id=u&context_K={}", "v".repeat(1001));
        let long_filter = format!("user_id=u&filter=cat&filter_P={}", "v".repeat(999));
        let cases: &[(&str, &str, &str)] = &[
            ("", "user_id", "user_id is required"),
            ("count=3", "user_id", "user_id is required"),
            (&long_user, "user_id", "at most 256 characters"),
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
            ("user_id=u&format=xml", "format", "list or object"),
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
    fn user_ids_may_be_any_printable_text_up_to_256_characters() {
        let id = "ü".repeat(256);
        let query = format!(
            "user_id={}",
            form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        );
        assert_eq!(parse(&query).unwrap().0.user_id, id);
    }
}
