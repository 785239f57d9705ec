//! The one flow: ask the recommender for ranked ids, join them with the catalog, keep the
//! recommender's order, drop ids the catalog lacks, trim to `count`; all within a time budget.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::{Catalog, Item};
use crate::config::PERSONALIZE_MAX_RESULTS;
use crate::recommender::{RecommendationQuery, Recommender};
use crate::upstream::UpstreamError;

pub struct Service<R, C> {
    recommender: R,
    catalog: C,
    budget: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recommended {
    pub items: Vec<Arc<Item>>,
    pub recommendation_id: Option<String>,
}

/// How long each upstream call took, for the request's log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub recommender: Option<Duration>,
    pub catalog: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("recommender {0}")]
    Recommender(UpstreamError),
    #[error("catalog {0}")]
    Catalog(UpstreamError),
}

impl ServiceError {
    pub fn upstream(&self) -> &UpstreamError {
        match self {
            ServiceError::Recommender(e) | ServiceError::Catalog(e) => e,
        }
    }
}

/// Ids the catalog lacks get dropped, so ask for a margin more: a fifth, at least 5.
pub fn over_fetch(count: u32) -> u32 {
    (count + (count / 5).max(5)).min(PERSONALIZE_MAX_RESULTS)
}

impl<R: Recommender, C: Catalog> Service<R, C> {
    pub fn new(recommender: R, catalog: C, budget: Duration) -> Self {
        Service {
            recommender,
            catalog,
            budget,
        }
    }

    pub fn recommender(&self) -> &R {
        &self.recommender
    }

    pub async fn recommend(
        &self,
        query: RecommendationQuery,
        timings: &mut Timings,
    ) -> Result<Recommended, ServiceError> {
        let deadline = Instant::now() + self.budget;
        match tokio::time::timeout_at(deadline, self.join(query, deadline, timings)).await {
            Ok(result) => result,
            Err(_elapsed) if timings.recommender.is_none() => {
                Err(ServiceError::Recommender(UpstreamError::TimedOut))
            }
            Err(_elapsed) => Err(ServiceError::Catalog(UpstreamError::TimedOut)),
        }
    }

    async fn join(
        &self,
        query: RecommendationQuery,
        deadline: Instant,
        timings: &mut Timings,
    ) -> Result<Recommended, ServiceError> {
        let count = query.count as usize;
        let ask = RecommendationQuery {
            count: over_fetch(query.count),
            ..query
        };

        let started = Instant::now();
        let ranked = self.recommender.recommend(&ask).await;
        timings.recommender = Some(started.elapsed());
        let ranked = ranked.map_err(ServiceError::Recommender)?;
        if ranked.item_ids.is_empty() {
            return Ok(Recommended {
                items: Vec::new(),
                recommendation_id: ranked.recommendation_id,
            });
        }

        let started = Instant::now();
        let found = self.catalog.items(&ranked.item_ids, deadline).await;
        timings.catalog = Some(started.elapsed());
        let mut found = found.map_err(ServiceError::Catalog)?;

        // `remove` also drops a repeated id's second appearance.
        let items = ranked
            .item_ids
            .iter()
            .filter_map(|id| found.remove(id))
            .take(count)
            .collect();
        Ok(Recommended {
            items,
            recommendation_id: ranked.recommendation_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::UrlTemplates;
    use crate::recommender::Recommendations;

    /// Answers `ids` after `delay`.
    struct SlowRecommender {
        ids: Vec<&'static str>,
        delay: Duration,
    }

    impl Recommender for SlowRecommender {
        fn has_filter(&self, _: &str) -> bool {
            false
        }

        async fn recommend(
            &self,
            query: &RecommendationQuery,
        ) -> Result<Recommendations, UpstreamError> {
            tokio::time::sleep(self.delay).await;
            Ok(Recommendations {
                item_ids: self
                    .ids
                    .iter()
                    .take(query.count as usize)
                    .map(|s| s.to_string())
                    .collect(),
                recommendation_id: Some("rid".into()),
            })
        }
    }

    /// Knows every id except those starting with `x`, and answers after `delay`.
    struct SlowCatalog {
        delay: Duration,
    }

    impl Catalog for SlowCatalog {
        async fn items(
            &self,
            ids: &[String],
            _deadline: Instant,
        ) -> Result<HashMap<String, Arc<Item>>, UpstreamError> {
            tokio::time::sleep(self.delay).await;
            Ok(ids
                .iter()
                .filter(|id| !id.starts_with('x'))
                .map(|id| {
                    (
                        id.clone(),
                        Arc::new(Item::new(id.as_str(), [], &UrlTemplates::default())),
                    )
                })
                .collect())
        }
    }

    fn service(recommender_ms: u64, catalog_ms: u64) -> Service<SlowRecommender, SlowCatalog> {
        Service::new(
            SlowRecommender {
                ids: vec!["a", "x1", "b", "a", "c", "d"],
                delay: Duration::from_millis(recommender_ms),
            },
            SlowCatalog {
                delay: Duration::from_millis(catalog_ms),
            },
            Duration::from_millis(1500),
        )
    }

    fn query(count: u32) -> RecommendationQuery {
        RecommendationQuery {
            user_id: "u".into(),
            count,
            ..RecommendationQuery::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_order_drops_unknown_and_repeated_ids_and_trims() {
        let mut timings = Timings::default();
        let found = service(100, 50)
            .recommend(query(3), &mut timings)
            .await
            .unwrap();
        let ids: Vec<&str> = found.items.iter().map(|i| i.id()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(found.recommendation_id.as_deref(), Some("rid"));
        assert_eq!(timings.recommender, Some(Duration::from_millis(100)));
        assert_eq!(timings.catalog, Some(Duration::from_millis(50)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_recommender_times_out_at_the_budget() {
        let started = Instant::now();
        let err = service(5_000, 0)
            .recommend(query(3), &mut Timings::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Recommender(UpstreamError::TimedOut)),
            "{err:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_covers_both_calls_together() {
        let started = Instant::now();
        let err = service(1_000, 1_000)
            .recommend(query(3), &mut Timings::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Catalog(UpstreamError::TimedOut)),
            "{err:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    #[test]
    fn over_fetch_adds_a_margin_within_personalize_limits() {
        assert_eq!(over_fetch(1), 6);
        assert_eq!(over_fetch(10), 15);
        assert_eq!(over_fetch(25), 30);
        assert_eq!(over_fetch(100), 120);
        assert_eq!(over_fetch(500), 500);
    }
}
