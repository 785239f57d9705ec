//! `Recommender` over Amazon Personalize's GetRecommendations.

use std::collections::BTreeMap;

use aws_sdk_personalizeruntime::Client;

use super::{RecommendationQuery, Recommendations, Recommender};
use crate::config::{PersonalizeArn, TargetKind};
use crate::upstream::UpstreamError;

pub struct Personalize {
    client: Client,
    target: PersonalizeArn,
    /// Filter name → filter ARN, from `FILTERS`.
    filters: BTreeMap<String, String>,
}

impl Personalize {
    pub fn new(client: Client, target: PersonalizeArn, filters: BTreeMap<String, String>) -> Self {
        Personalize {
            client,
            target,
            filters,
        }
    }
}

impl Recommender for Personalize {
    fn has_filter(&self, name: &str) -> bool {
        self.filters.contains_key(name)
    }

    async fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> Result<Recommendations, UpstreamError> {
        let mut request = self
            .client
            .get_recommendations()
            .user_id(&query.user_id)
            .num_results(query.count as i32);
        request = match self.target.kind {
            TargetKind::Campaign => request.campaign_arn(&self.target.arn),
            TargetKind::Recommender => request.recommender_arn(&self.target.arn),
        };
        if let Some(name) = &query.filter {
            let arn = self
                .filters
                .get(name)
                .ok_or_else(|| UpstreamError::Misconfigured(format!("no filter named {name}")))?;
            request = request.filter_arn(arn);
            for (param, values) in &query.filter_values {
                request = request.filter_values(param, quote_filter_values(values));
            }
        }
        for (key, value) in &query.context {
            request = request.context(key, value);
        }

        let output = request
            .send()
            .await
            .map_err(|e| UpstreamError::from_sdk(&e))?;
        Ok(Recommendations {
            item_ids: output
                .item_list
                .unwrap_or_default()
                .into_iter()
                .filter_map(|item| item.item_id)
                .collect(),
            recommendation_id: output.recommendation_id,
        })
    }
}

/// Personalize wants each filter value in double quotes, several separated by commas:
/// `"shoes","boots"`. Backslash and quote are escaped so a value cannot leave its quotes.
pub fn quote_filter_values(values: &[String]) -> String {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_quoted_and_escaped() {
        let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(quote_filter_values(&values(&["shoes"])), r#""shoes""#);
        assert_eq!(
            quote_filter_values(&values(&["shoes", "boots"])),
            r#""shoes","boots""#
        );
        assert_eq!(
            quote_filter_values(&values(&[r#"a" OR "1"="1"#, r"back\slash\"])),
            r#""a\" OR \"1\"=\"1","back\\slash\\""#
        );
    }
}
