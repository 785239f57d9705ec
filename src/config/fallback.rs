//! `FALLBACK` and its settings: what answers when Personalize cannot.

use std::time::Duration;

use personalize_braze_core::env::{Env, invalid};
use personalize_braze_core::fallback::{Policy, Source};

use super::{Backend, ConfigError, PersonalizeArn};

/// The fallback settings, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fallback {
    pub policy: Policy,
    /// `FALLBACK_POPULAR_IDS`: the popular list, as given.
    pub popular_ids: Vec<String>,
    /// `FALLBACK_POPULAR_ARN`: a popularity campaign or recommender (`aws-popularity-count`,
    /// Trending-Now) the popular list is read from, and refreshed every `refresh`.
    pub popular_arn: Option<PersonalizeArn>,
    pub refresh: Duration,
}

pub fn from_env<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    backend: &Backend,
) -> Result<Fallback, ConfigError> {
    let mut order = Vec::new();
    if let Some(text) = env.get("FALLBACK")
        && text.trim() != "off"
    {
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let source = Source::parse(name).ok_or_else(|| {
                invalid(
                    "FALLBACK",
                    &text,
                    "expected off, or popular and last-good in the order to try, e.g. last-good,popular",
                )
            })?;
            if order.contains(&source) {
                return Err(invalid("FALLBACK", &text, format!("{name} is named twice")));
            }
            order.push(source);
        }
    }
    let popular_ids: Vec<String> = env
        .get("FALLBACK_POPULAR_IDS")
        .map(|ids| {
            ids.split(',')
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if let Some(long) = popular_ids
        .iter()
        .find(|id| id.chars().count() > personalize_braze_core::limits::MAX_ID_CHARS)
    {
        return Err(invalid(
            "FALLBACK_POPULAR_IDS",
            long,
            "an item id is at most 256 characters",
        ));
    }
    let popular_arn = env.parsed("FALLBACK_POPULAR_ARN", |arn| {
        PersonalizeArn::parse(arn).map_err(str::to_owned)
    })?;
    if popular_arn.is_some() && !popular_ids.is_empty() {
        return Err(invalid(
            "FALLBACK_POPULAR_ARN",
            &popular_arn
                .as_ref()
                .map(|a| a.arn.clone())
                .unwrap_or_default(),
            "give FALLBACK_POPULAR_ARN or FALLBACK_POPULAR_IDS, not both",
        ));
    }
    if order.contains(&Source::Popular)
        && matches!(backend, Backend::Aws(_))
        && popular_arn.is_none()
        && popular_ids.is_empty()
    {
        return Err(ConfigError::Missing {
            var: "FALLBACK_POPULAR_ARN",
            hint: "FALLBACK includes popular: set FALLBACK_POPULAR_ARN (a popularity campaign or recommender) or FALLBACK_POPULAR_IDS (item ids)",
        });
    }
    let ttl = env.number("FALLBACK_LAST_GOOD_TTL", 86_400, 60, 7 * 86_400)?;
    let entries = env.number("FALLBACK_LAST_GOOD_SIZE", 10_000, 1, 1_000_000)?;
    let refresh = env.number("FALLBACK_REFRESH", 300, 10, 86_400)?;
    Ok(Fallback {
        policy: Policy {
            order,
            unfiltered: env.flag("FALLBACK_UNFILTERED", false)?,
            last_good_ttl: Duration::from_secs(ttl.into()),
            last_good_entries: entries as usize,
        },
        popular_ids,
        popular_arn,
        refresh: Duration::from_secs(refresh.into()),
    })
}
