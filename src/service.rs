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
    use super::*;

    #[test]
    fn over_fetch_adds_a_margin_within_personalize_limits() {
        assert_eq!(over_fetch(1), 6);
        assert_eq!(over_fetch(10), 15);
        assert_eq!(over_fetch(25), 30);
        assert_eq!(over_fetch(100), 120);
        assert_eq!(over_fetch(500), 500);
    }
}
