//! `Recommender` over Amazon Personalize: GetRecommendations (for a user, or related to an item),
//! GetPersonalizedRanking, and PutEvents on an event tracker. Each is enabled by its own setting.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_personalizeevents as events;
use aws_sdk_personalizeruntime::Client;
use aws_sdk_personalizeruntime::types::{PredictedItem, Promotion};
use futures_util::future::join_all;
use tokio::time::Instant;

pub mod arn;

pub use arn::{PersonalizeArn, TargetKind};

use personalize_braze_core::item::{Item, UrlTemplates};
use personalize_braze_core::limits::MAX_RESULTS_WITH_METADATA;
use personalize_braze_core::recommender::{
    Event, Operation, PromotionQuery, RankingQuery, RecommendationQuery, Recommendations,
    Recommender, Recorded, Refinement, Subject,
};
use personalize_braze_core::upstream::UpstreamError;

use crate::errors::upstream_error;

/// A campaign or recommender, and a client for its region.
#[derive(Clone)]
pub struct Target {
    pub client: Client,
    pub arn: PersonalizeArn,
}

#[derive(Default)]
pub struct Personalize {
    /// `RECOMMENDERS` (or `PERSONALIZE_ARN`): `GET /recommendations`, by name; the default first.
    recommenders: Vec<(String, Target)>,
    /// `RELATED_ITEMS_ARN`: `GET /related-items`.
    related_items: Option<Target>,
    /// `RANKING_ARN`: `GET|POST /rankings`.
    ranking: Option<Target>,
    /// `EVENT_TRACKER_ID`: `POST /events`.
    events: Option<(events::Client, String)>,
    /// Filter name → filter ARN, from `FILTERS`.
    filters: BTreeMap<String, String>,
    /// Promotion name → filter ARN and share, from `PROMOTIONS`.
    promotions: BTreeMap<String, personalize_braze_core::recommender::Promotion<String>>,
    /// `ITEM_METADATA_COLUMNS`, when Personalize is also the catalog.
    metadata: Option<(Vec<String>, UrlTemplates)>,
}

impl Personalize {
    pub fn new(filters: BTreeMap<String, String>) -> Self {
        Personalize {
            filters,
            ..Personalize::default()
        }
    }

    /// A recommender for `/recommendations`, by name; the first one added is the default.
    pub fn with_recommender(mut self, name: impl Into<String>, target: Target) -> Self {
        self.recommenders.push((name.into(), target));
        self
    }

    /// Makes the recommender `name` the default (it must have been added).
    pub fn with_default_recommender(mut self, name: &str) -> Self {
        if let Some(i) = self.recommenders.iter().position(|(n, _)| n == name) {
            let default = self.recommenders.remove(i);
            self.recommenders.insert(0, default);
        }
        self
    }

    pub fn with_promotions(
        mut self,
        promotions: BTreeMap<String, personalize_braze_core::recommender::Promotion<String>>,
    ) -> Self {
        self.promotions = promotions;
        self
    }

    pub fn with_related_items(mut self, target: Target) -> Self {
        self.related_items = Some(target);
        self
    }

    pub fn with_ranking(mut self, target: Target) -> Self {
        self.ranking = Some(target);
        self
    }

    pub fn with_event_tracker(mut self, client: events::Client, tracking_id: String) -> Self {
        self.events = Some((client, tracking_id));
        self
    }

    /// Ask for these item columns with every answer, and build the items from them.
    pub fn with_metadata(mut self, columns: Vec<String>, templates: UrlTemplates) -> Self {
        self.metadata = Some((columns, templates));
        self
    }

    /// The request fields a refinement fills: `filterArn`, `filterValues`, `context`.
    fn refine(&self, refinement: &Refinement) -> Result<Refined, UpstreamError> {
        let filter_arn =
            match &refinement.filter {
                None => None,
                Some(name) => Some(self.filters.get(name).cloned().ok_or_else(|| {
                    UpstreamError::Misconfigured(format!("no filter named {name}"))
                })?),
            };
        let filter_values = (filter_arn.is_some() && !refinement.filter_values.is_empty())
            .then(|| quoted_filter_values(&refinement.filter_values));
        let context =
            (!refinement.context.is_empty()).then(|| refinement.context.iter().cloned().collect());
        Ok(Refined {
            filter_arn,
            filter_values,
            context,
        })
    }

    /// Ids (and, with metadata columns, the items) from Personalize's answer, best first.
    fn answer(
        &self,
        predicted: Option<Vec<PredictedItem>>,
        recommendation_id: Option<String>,
    ) -> Recommendations {
        let predicted = predicted.unwrap_or_default();
        let items = self.metadata.as_ref().map(|(_, templates)| {
            predicted
                .iter()
                .filter_map(|p| {
                    let id = p.item_id.as_deref()?;
                    let columns = p.metadata.iter().flatten();
                    let columns = columns.map(|(c, v)| (c.as_str(), v.as_str()));
                    let item = Item::from_columns(id, columns, templates);
                    Some((id.to_owned(), Arc::new(item)))
                })
                .collect::<HashMap<_, _>>()
        });
        let promoted = predicted
            .iter()
            .filter_map(|p| Some((p.item_id.clone()?, p.promotion_name.clone()?)))
            .collect();
        Recommendations {
            item_ids: predicted.into_iter().filter_map(|p| p.item_id).collect(),
            recommendation_id,
            items,
            promoted,
        }
    }

    /// The request's `promotions`: the one named, with its filter's values.
    fn promotion(&self, query: &PromotionQuery) -> Result<Promotion, UpstreamError> {
        let promotion = self.promotions.get(&query.name).ok_or_else(|| {
            UpstreamError::Misconfigured(format!("no promotion named {}", query.name))
        })?;
        Ok(Promotion::builder()
            .name(&query.name)
            .percent_promoted_items(promotion.percent.into())
            .filter_arn(&promotion.filter)
            .set_filter_values(
                (!query.filter_values.is_empty())
                    .then(|| quoted_filter_values(&query.filter_values)),
            )
            .build())
    }

    fn metadata_columns(&self) -> Option<HashMap<String, Vec<String>>> {
        self.metadata
            .as_ref()
            .map(|(columns, _)| HashMap::from([("ITEMS".to_owned(), columns.clone())]))
    }
}

struct Refined {
    filter_arn: Option<String>,
    filter_values: Option<HashMap<String, String>>,
    context: Option<HashMap<String, String>>,
}

fn not_configured(setting: &str) -> UpstreamError {
    UpstreamError::Misconfigured(format!("{setting} is not set"))
}

impl Recommender for Personalize {
    fn has_filter(&self, name: &str) -> bool {
        self.filters.contains_key(name)
    }

    fn has_recommender(&self, name: &str) -> bool {
        self.recommenders.iter().any(|(n, _)| n == name)
    }

    fn default_recommender(&self) -> Option<&str> {
        self.recommenders.first().map(|(name, _)| name.as_str())
    }

    fn has_promotion(&self, name: &str) -> bool {
        self.promotions.contains_key(name)
    }

    fn supports(&self, operation: Operation) -> bool {
        match operation {
            Operation::Recommendations => !self.recommenders.is_empty(),
            Operation::RelatedItems => self.related_items.is_some(),
            Operation::Rankings => self.ranking.is_some(),
            Operation::Events => self.events.is_some(),
        }
    }

    async fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> Result<Recommendations, UpstreamError> {
        let target = match &query.subject {
            Subject::User(_) => {
                let chosen = match &query.recommender {
                    Some(name) => self.recommenders.iter().find(|(n, _)| n == name),
                    None => self.recommenders.first(),
                };
                let (_, target) = chosen.ok_or_else(|| match &query.recommender {
                    Some(name) => {
                        UpstreamError::Misconfigured(format!("no recommender named {name}"))
                    }
                    None => not_configured("PERSONALIZE_ARN (or RECOMMENDERS)"),
                })?;
                target
            }
            Subject::RelatedTo { .. } => self
                .related_items
                .as_ref()
                .ok_or_else(|| not_configured("RELATED_ITEMS_ARN"))?,
        };
        let mut count = query.count;
        if self.metadata.is_some() {
            count = count.min(MAX_RESULTS_WITH_METADATA);
        }
        let mut request = target
            .client
            .get_recommendations()
            .num_results(count as i32)
            .set_metadata_columns(self.metadata_columns());
        request = match &query.subject {
            Subject::User(user_id) => request.user_id(user_id),
            Subject::RelatedTo { item_id, user_id } => {
                request.item_id(item_id).set_user_id(user_id.clone())
            }
        };
        request = match target.arn.kind {
            TargetKind::Campaign => request.campaign_arn(&target.arn.arn),
            TargetKind::Recommender => request.recommender_arn(&target.arn.arn),
        };
        let refined = self.refine(&query.refinement)?;
        if let Some(promotion) = &query.promotion {
            request = request.promotions(self.promotion(promotion)?);
        }
        let output = request
            .set_filter_arn(refined.filter_arn)
            .set_filter_values(refined.filter_values)
            .set_context(refined.context)
            .send()
            .await
            .map_err(|e| upstream_error(&e))?;
        Ok(self.answer(output.item_list, output.recommendation_id))
    }

    async fn rank(&self, query: &RankingQuery) -> Result<Recommendations, UpstreamError> {
        let target = self
            .ranking
            .as_ref()
            .ok_or_else(|| not_configured("RANKING_ARN"))?;
        let refined = self.refine(&query.refinement)?;
        let output = target
            .client
            .get_personalized_ranking()
            .campaign_arn(&target.arn.arn)
            .user_id(&query.user_id)
            .set_input_list(Some(query.item_ids.clone()))
            .set_metadata_columns(self.metadata_columns())
            .set_filter_arn(refined.filter_arn)
            .set_filter_values(refined.filter_values)
            .set_context(refined.context)
            .send()
            .await
            .map_err(|e| upstream_error(&e))?;
        Ok(self.answer(output.personalized_ranking, output.recommendation_id))
    }

    /// One PutEvents call per (user, session): the API takes one of each per call. Each call
    /// runs as a task of its own, so one still going at the deadline (or when the request goes
    /// away) completes anyway rather than be cut off halfway, recorded or not. Every event
    /// carries its id, so a caller told that some failed may send them all again.
    async fn record(&self, batch: &[Event], deadline: Instant) -> Recorded {
        let Some((client, tracking_id)) = &self.events else {
            return Recorded::none(not_configured("EVENT_TRACKER_ID"));
        };
        let mut calls: Vec<(&Option<String>, &str, Vec<events::types::Event>)> = Vec::new();
        for event in batch {
            let converted = match to_sdk_event(event) {
                Ok(converted) => converted,
                Err(e) => return Recorded::none(e),
            };
            match calls
                .iter_mut()
                .find(|(user, session, _)| **user == event.user_id && *session == event.session_id)
            {
                Some((_, _, list)) => list.push(converted),
                None => calls.push((&event.user_id, &event.session_id, vec![converted])),
            }
        }
        let accepted = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = calls
            .into_iter()
            .map(|(user_id, session_id, list)| {
                let events = list.len();
                let call = client
                    .put_events()
                    .tracking_id(tracking_id)
                    .set_user_id(user_id.clone())
                    .session_id(session_id)
                    .set_event_list(Some(list))
                    .send();
                let accepted = accepted.clone();
                tokio::spawn(async move {
                    call.await.map_err(|e| upstream_error(&e))?;
                    accepted.fetch_add(events, Ordering::Relaxed);
                    Ok::<(), UpstreamError>(())
                })
            })
            .collect();
        let error = match tokio::time::timeout_at(deadline, join_all(tasks)).await {
            Err(_elapsed) => Some(UpstreamError::TimedOut),
            Ok(results) => results
                .into_iter()
                .filter_map(|result| match result {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(e) => Some(UpstreamError::Unavailable(format!("a PutEvents call: {e}"))),
                })
                // A failure worth retrying decides the answer, so the caller sends the body again.
                .reduce(|kept, e| {
                    if !kept.is_transient() && e.is_transient() {
                        e
                    } else {
                        kept
                    }
                }),
        };
        Recorded {
            accepted: accepted.load(Ordering::Relaxed),
            error,
        }
    }
}

fn to_sdk_event(event: &Event) -> Result<events::types::Event, UpstreamError> {
    events::types::Event::builder()
        .event_id(&event.event_id)
        .event_type(&event.event_type)
        .sent_at(aws_smithy_types::DateTime::from_secs_f64(event.sent_at))
        .set_item_id(event.item_id.clone())
        .set_event_value(event.event_value)
        .set_properties(event.properties.clone())
        .set_recommendation_id(event.recommendation_id.clone())
        .set_impression((!event.impression.is_empty()).then(|| event.impression.clone()))
        .set_metric_attribution(
            event
                .attribution_source
                .as_ref()
                .map(|source| {
                    events::types::MetricAttribution::builder()
                        .event_attribution_source(source)
                        .build()
                })
                .transpose()
                .map_err(|e| UpstreamError::Misconfigured(format!("building an event: {e}")))?,
        )
        .build()
        // Only a missing required field fails, and both are always set.
        .map_err(|e| UpstreamError::Misconfigured(format!("building an event: {e}")))
}

/// A filter's (or promotion's) `filterValues`: each placeholder's values quoted.
fn quoted_filter_values(values: &[(String, Vec<String>)]) -> HashMap<String, String> {
    values
        .iter()
        .map(|(param, values)| (param.clone(), quote_filter_values(values)))
        .collect()
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
