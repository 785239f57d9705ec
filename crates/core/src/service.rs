//! The one flow: ask the recommender for ranked ids, join them with the catalog, keep the
//! recommender's order, drop ids the catalog lacks, trim to `count`; all within a time budget.
//! Recommendations, related items and rankings all take it; events go straight through.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::time::Instant;

use crate::catalog::{CacheCounts, Catalog};
use crate::fallback::{Fallbacks, RECOMMENDER_SHARE, Source};
use crate::item::{Item, Value};
use crate::join::{RankedIds, window_len};
use crate::limits::MAX_RESULTS;
use crate::recommender::{
    Event, RankingQuery, RecommendationQuery, Recommendations, Recommender, Subject,
};
use crate::upstream::UpstreamError;

pub struct Service<R, C> {
    recommender: R,
    catalog: C,
    budget: Duration,
    fallbacks: Arc<Fallbacks>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recommended {
    pub items: Vec<Arc<Item>>,
    pub recommendation_id: Option<String>,
    /// The named recommender that answered, when recommenders have names.
    pub recommender: Option<String>,
    /// Ids a promotion placed in the list → the promotion's name.
    pub promoted: HashMap<String, String>,
    /// The fallback that answered, when the recommender could not.
    pub fallback: Option<Source>,
}

/// `diversify=FIELD:N`: at most `per_value` items for each value of the item attribute `field`,
/// taken in rank order. Items without the attribute (or with `null`) count as one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diversify {
    pub field: String,
    pub per_value: usize,
}

/// How many items each value of a `Diversify` field has had so far.
struct Groups<'d> {
    rule: &'d Diversify,
    /// The value as JSON text (`None`: no value) → items taken.
    taken: Vec<(Option<String>, usize)>,
}

impl<'d> Groups<'d> {
    fn new(rule: &'d Diversify) -> Self {
        Groups {
            rule,
            taken: Vec::new(),
        }
    }

    /// Whether `item` still fits its group, counting it if so.
    fn admit(&mut self, item: &Item) -> bool {
        let key = match item.get(&self.rule.field) {
            None | Some(Value::Null) => None,
            // Values serialize into a `String` without fail.
            Some(value) => Some(serde_json::to_string(value).unwrap_or_default()),
        };
        match self.taken.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) if *n >= self.rule.per_value => false,
            Some((_, n)) => {
                *n += 1;
                true
            }
            None => {
                self.taken.push((key, 1));
                true
            }
        }
    }
}

/// What the service saw while answering, for the request's line and metrics: how long each
/// upstream call took, and what the catalog lacked or the cache knew.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The recommender's call, if it was made.
    pub recommender: Option<Duration>,
    /// The catalog's part (cache and catalog), if it was asked.
    pub catalog: Option<Duration>,
    /// Ranked ids dropped because the catalog lacked them.
    pub catalog_misses: usize,
    pub cache: CacheCounts,
    /// Events of a valid body the recommender did not record.
    pub events_rejected: usize,
    /// How the recommender failed when a fallback answered instead (the request succeeded, and
    /// its line still says the upstream failed).
    pub recommender_failure: Option<UpstreamError>,
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

/// Events the recommender did not all take: how many it did, and why not the others.
#[derive(Debug, thiserror::Error)]
#[error("{accepted} events recorded, the others not: {error}")]
pub struct PartlyRecorded {
    pub accepted: usize,
    pub error: ServiceError,
}

/// Ids the catalog lacks get dropped, so ask for a margin more: a fifth, at least 5.
pub fn over_fetch(count: u32) -> u32 {
    (window_len(count as usize) as u32).min(MAX_RESULTS)
}

/// How many ids to ask for: the margin, and with `diversify` as many as the recommender gives
/// (Personalize's 500), so the list still fills when the best items crowd into a few groups; the
/// catalog is then read only as far down as the list needs.
pub fn ask_count(count: u32, diversify: Option<&Diversify>) -> u32 {
    match diversify {
        None => over_fetch(count),
        Some(_) => MAX_RESULTS,
    }
}

impl<R: Recommender, C: Catalog> Service<R, C> {
    pub fn new(recommender: R, catalog: C, budget: Duration) -> Self {
        Service {
            recommender,
            catalog,
            budget,
            fallbacks: Arc::new(Fallbacks::new(Default::default())),
        }
    }

    /// Answers from `fallbacks` when the recommender cannot (off unless their policy says).
    pub fn with_fallbacks(mut self, fallbacks: Arc<Fallbacks>) -> Self {
        self.fallbacks = fallbacks;
        self
    }

    pub fn fallbacks(&self) -> &Arc<Fallbacks> {
        &self.fallbacks
    }

    /// When the recommender must have answered: the whole budget, or its share of it when a
    /// fallback may follow, so the fallback list can still be joined in time.
    fn recommender_deadline(&self, started: Instant, query: &RecommendationQuery) -> Instant {
        if self.fallbacks.may_answer(query.fallback) {
            started + self.budget.mul_f64(RECOMMENDER_SHARE)
        } else {
            started + self.budget
        }
    }

    /// What the request ends with once the recommender's part is known: a success is kept for
    /// `last-good`; a recommender failure is answered by the first fallback that has a list,
    /// joined with the catalog by the request's deadline, or else stands.
    async fn settle_with_fallback(
        &self,
        query: &RecommendationQuery,
        result: Result<Recommended, ServiceError>,
        trim: Trim<'_>,
        deadline: Instant,
        observed: &mut Observed,
    ) -> Result<Recommended, ServiceError> {
        let error = match result {
            Ok(found) => {
                let ids = found
                    .items
                    .iter()
                    .map(|item| item.id().to_owned())
                    .collect();
                self.fallbacks.remember(query, ids);
                return Ok(found);
            }
            Err(ServiceError::Recommender(error)) => error,
            Err(other) => return Err(other),
        };
        for source in self.fallbacks.sources(query.fallback, query, &error) {
            let Some(ids) = self.fallbacks.ids(source, query) else {
                continue;
            };
            let ranked = Recommendations {
                item_ids: ids.to_vec(),
                ..Recommendations::default()
            };
            let joined =
                tokio::time::timeout_at(deadline, self.join(ranked, trim, deadline, observed))
                    .await;
            return match joined {
                Ok(Ok(mut found)) => {
                    found.fallback = Some(source);
                    observed.recommender_failure = Some(error);
                    Ok(found)
                }
                Ok(Err(catalog)) => Err(catalog),
                Err(_late) => Err(ServiceError::Catalog(UpstreamError::TimedOut)),
            };
        }
        Err(ServiceError::Recommender(error))
    }

    pub fn recommender(&self) -> &R {
        &self.recommender
    }

    /// Ranked items for a user, or related to an item (never the item itself).
    pub async fn recommend(
        &self,
        query: RecommendationQuery,
        diversify: Option<&Diversify>,
        observed: &mut Observed,
    ) -> Result<Recommended, ServiceError> {
        let count = query.count as usize;
        let source: Vec<String> = match &query.subject {
            Subject::User(_) => Vec::new(),
            Subject::RelatedTo { item_id, .. } => vec![item_id.clone()],
        };
        let ask = RecommendationQuery {
            count: ask_count(query.count, diversify),
            ..query.clone()
        };
        let started = Instant::now();
        let deadline = started + self.budget;
        let asked_by = self.recommender_deadline(started, &query);
        let trim = Trim {
            count,
            exclude: &source,
            diversify,
        };
        let work = self.ask_then_join(
            within(asked_by, self.recommender.recommend(&ask)),
            trim,
            deadline,
            observed,
        );
        let result = settle(tokio::time::timeout_at(deadline, work).await, observed);
        self.settle_with_fallback(&query, result, trim, deadline, observed)
            .await
    }

    /// Items related to several seeds ("more like this" for a cart): each seed's related items
    /// are asked for at once, within the one budget, and merged round-robin (every seed's best,
    /// then every seed's second, …) without the seeds and repeats. A seed whose call failed, or
    /// had not answered at three quarters of the budget, is left out; only when all failed does
    /// the request fail.
    pub async fn related_to_seeds(
        &self,
        query: RecommendationQuery,
        seeds: &[String],
        diversify: Option<&Diversify>,
        observed: &mut Observed,
    ) -> Result<Recommended, ServiceError> {
        let count = query.count as usize;
        let user_id = query.subject.user_id().map(str::to_owned);
        let started = Instant::now();
        let deadline = started + self.budget;
        // A seed still unanswered at three quarters of the budget (or of the recommender's share
        // of it, when a fallback may follow) is given up, so the others' items can still be
        // joined with the catalog in time.
        let asked_by = self.recommender_deadline(started, &query);
        let seeds_deadline = started + (asked_by - started).mul_f64(0.75);
        let asks = seeds.iter().map(|seed| {
            let ask = RecommendationQuery {
                subject: Subject::RelatedTo {
                    item_id: seed.clone(),
                    user_id: user_id.clone(),
                },
                count: ask_count(query.count, diversify),
                refinement: query.refinement.clone(),
                ..RecommendationQuery::default()
            };
            async move {
                let answer =
                    tokio::time::timeout_at(seeds_deadline, self.recommender.recommend(&ask));
                answer.await.unwrap_or(Err(UpstreamError::TimedOut))
            }
        });
        let trim = Trim {
            count,
            exclude: seeds,
            diversify,
        };
        let work = self.ask_then_join(
            futures_util::future::join_all(asks).map(merge_round_robin),
            trim,
            deadline,
            observed,
        );
        let result = settle(tokio::time::timeout_at(deadline, work).await, observed);
        self.settle_with_fallback(&query, result, trim, deadline, observed)
            .await
    }

    /// The query's items in the user's order, at most `count` of them, without those the
    /// catalog lacks.
    pub async fn rank(
        &self,
        query: RankingQuery,
        count: Option<u32>,
        diversify: Option<&Diversify>,
        observed: &mut Observed,
    ) -> Result<Recommended, ServiceError> {
        let count = count.map_or(usize::MAX, |c| c as usize);
        let deadline = Instant::now() + self.budget;
        let work = self.ask_then_join(
            self.recommender.rank(&query),
            Trim {
                count,
                exclude: &[],
                diversify,
            },
            deadline,
            observed,
        );
        settle(tokio::time::timeout_at(deadline, work).await, observed)
    }

    /// Feeds events back to the recommender, within the same budget; says how many it took.
    pub async fn record(
        &self,
        events: &[Event],
        observed: &mut Observed,
    ) -> Result<usize, PartlyRecorded> {
        let started = Instant::now();
        let recorded = self.recommender.record(events, started + self.budget).await;
        observed.recommender = Some(started.elapsed());
        observed.events_rejected = events.len().saturating_sub(recorded.accepted);
        match recorded.error {
            None => Ok(recorded.accepted),
            Some(error) => Err(PartlyRecorded {
                accepted: recorded.accepted,
                error: ServiceError::Recommender(error),
            }),
        }
    }

    /// Awaits the ranked ids (timing the recommender), then joins them with the catalog.
    async fn ask_then_join(
        &self,
        ranked: impl Future<Output = Result<Recommendations, UpstreamError>>,
        trim: Trim<'_>,
        deadline: Instant,
        observed: &mut Observed,
    ) -> Result<Recommended, ServiceError> {
        let started = Instant::now();
        let ranked = ranked.await;
        observed.recommender = Some(started.elapsed());
        let ranked = ranked.map_err(ServiceError::Recommender)?;
        self.join(ranked, trim, deadline, observed).await
    }

    /// Joins ranked ids with the catalog (unless the recommender brought the items), keeps the
    /// recommender's order, drops unknown, repeated and `exclude`d ids, keeps to the diversity
    /// rule, trims to `count`.
    ///
    /// Without `diversify` the catalog is asked once, for all the ids. With it, the ids are read
    /// in rank order, `over_fetch(count)` and then `DIVERSIFY_BATCH` at a time, until the list is
    /// full: the best items may crowd into a few groups, so the list can need ids far down the
    /// ranking. A later batch that fails or would run past nine tenths of the budget ends the
    /// list where it is rather than fail the request.
    async fn join(
        &self,
        mut ranked: Recommendations,
        Trim {
            count,
            exclude,
            diversify,
        }: Trim<'_>,
        deadline: Instant,
        observed: &mut Observed,
    ) -> Result<Recommended, ServiceError> {
        let ids = std::mem::take(&mut ranked.item_ids);
        let brought = ranked.items.take();
        let mut groups = diversify.map(Groups::new);
        let mut ranking = RankedIds::new(&ids);
        let mut items = Vec::with_capacity(count.min(ids.len()));
        let first_batch = match diversify {
            None => ids.len(),
            Some(_) => over_fetch(count.min(MAX_RESULTS as usize) as u32) as usize,
        };
        let late = deadline - self.budget / 10;
        let mut first = true;
        while items.len() < count {
            let batch_len = if first { first_batch } else { DIVERSIFY_BATCH };
            let Some(batch) = ranking.read(batch_len) else {
                break;
            };
            let mut found = match &brought {
                Some(items) => batch
                    .iter()
                    .filter_map(|id| Some((id.clone(), items.get(id)?.clone())))
                    .collect(),
                None if first => self.fetch(batch, deadline, observed).await?,
                None => {
                    match tokio::time::timeout_at(late, self.fetch(batch, late, observed)).await {
                        Ok(Ok(found)) => found,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, kept = items.len(), "a later batch of items for diversify failed; answering with fewer");
                            break;
                        }
                        Err(_late) => break,
                    }
                }
            };
            for id in batch {
                if exclude.contains(id) || !ranking.first_time(id) {
                    continue;
                }
                match found.remove(id) {
                    None => observed.catalog_misses += 1,
                    Some(item) if items.len() < count => {
                        if groups.as_mut().is_none_or(|groups| groups.admit(&item)) {
                            items.push(item);
                        }
                    }
                    Some(_) => {}
                }
            }
            first = false;
        }
        Ok(Recommended {
            items,
            recommendation_id: ranked.recommendation_id,
            recommender: None,
            promoted: ranked.promoted,
            fallback: None,
        })
    }

    /// The catalog's items for `ids`, timed and counted.
    async fn fetch(
        &self,
        ids: &[String],
        deadline: Instant,
        observed: &mut Observed,
    ) -> Result<HashMap<String, Arc<Item>>, ServiceError> {
        let started = Instant::now();
        let found = self
            .catalog
            .items_counted(ids, deadline, &mut observed.cache)
            .await;
        *observed.catalog.get_or_insert_default() += started.elapsed();
        found.map_err(ServiceError::Catalog)
    }
}

/// With `diversify`, ids past the first batch are read from the catalog this many at a time
/// (DynamoDB's BatchGetItem takes 100 keys).
pub const DIVERSIFY_BATCH: usize = 100;

/// What of the ranked list the answer keeps.
#[derive(Clone, Copy)]
struct Trim<'a> {
    count: usize,
    /// Never these ids (the seeds of related items).
    exclude: &'a [String],
    diversify: Option<&'a Diversify>,
}

/// Several seeds' answers as one: round-robin by rank, each id once. Failed seeds are logged and
/// left out; all failed is the first failure. The recommendation id is the first answer's.
fn merge_round_robin(
    answers: Vec<Result<Recommendations, UpstreamError>>,
) -> Result<Recommendations, UpstreamError> {
    let mut lists = Vec::with_capacity(answers.len());
    let mut failure = None;
    for answer in answers {
        match answer {
            Ok(list) => lists.push(list),
            Err(e) => {
                tracing::warn!(error = %e, "one seed's related items failed; answering with the others");
                failure.get_or_insert(e);
            }
        }
    }
    if lists.is_empty() {
        return Err(failure.unwrap_or(UpstreamError::TimedOut));
    }
    let longest = lists.iter().map(|l| l.item_ids.len()).max().unwrap_or(0);
    let mut seen = HashSet::new();
    let mut item_ids = Vec::new();
    for rank in 0..longest {
        for list in &lists {
            if let Some(id) = list.item_ids.get(rank)
                && seen.insert(id.as_str())
            {
                item_ids.push(id.clone());
            }
        }
    }
    // Items brought with the answers (metadata from Personalize) are kept only if every answer
    // brought them, as then the recommender is the catalog.
    let items = lists.iter().all(|l| l.items.is_some()).then(|| {
        lists
            .iter()
            .flat_map(|l| l.items.iter().flatten())
            .map(|(id, item)| (id.clone(), item.clone()))
            .collect()
    });
    Ok(Recommendations {
        item_ids,
        recommendation_id: lists[0].recommendation_id.clone(),
        items,
        promoted: HashMap::new(),
    })
}

/// The recommender's answer by `deadline`, or `TimedOut`.
async fn within<T>(
    deadline: Instant,
    answer: impl Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    tokio::time::timeout_at(deadline, answer)
        .await
        .unwrap_or(Err(UpstreamError::TimedOut))
}

/// A timed-out request blames whichever call was still running.
fn settle<T>(
    result: Result<Result<T, ServiceError>, tokio::time::error::Elapsed>,
    observed: &Observed,
) -> Result<T, ServiceError> {
    match result {
        Ok(result) => result,
        Err(_elapsed) if observed.recommender.is_none() => {
            Err(ServiceError::Recommender(UpstreamError::TimedOut))
        }
        Err(_elapsed) => Err(ServiceError::Catalog(UpstreamError::TimedOut)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::UrlTemplates;
    use crate::recommender::Recorded;

    /// Answers `ids` after `delay`; ranks by reversing the given list. With `metadata`, it
    /// brings the items itself, as Personalize does with metadata columns.
    struct SlowRecommender {
        ids: Vec<&'static str>,
        delay: Duration,
        metadata: bool,
    }

    impl SlowRecommender {
        fn answer(&self, ids: Vec<String>) -> Recommendations {
            let items = self.metadata.then(|| {
                ids.iter()
                    .map(|id| {
                        (
                            id.clone(),
                            Arc::new(Item::new(id.as_str(), [], &UrlTemplates::default())),
                        )
                    })
                    .collect()
            });
            Recommendations {
                item_ids: ids,
                recommendation_id: Some("rid".into()),
                items,
                ..Recommendations::default()
            }
        }
    }

    impl Recommender for SlowRecommender {
        async fn recommend(
            &self,
            query: &RecommendationQuery,
        ) -> Result<Recommendations, UpstreamError> {
            tokio::time::sleep(self.delay).await;
            let ids = self.ids.iter().take(query.count as usize);
            Ok(self.answer(ids.map(|s| s.to_string()).collect()))
        }

        async fn rank(&self, query: &RankingQuery) -> Result<Recommendations, UpstreamError> {
            tokio::time::sleep(self.delay).await;
            Ok(self.answer(query.item_ids.iter().rev().cloned().collect()))
        }

        async fn record(&self, events: &[Event], deadline: Instant) -> Recorded {
            match tokio::time::timeout_at(deadline, tokio::time::sleep(self.delay)).await {
                Ok(()) => Recorded::all(events),
                Err(_) => Recorded::none(UpstreamError::TimedOut),
            }
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
                metadata: false,
            },
            SlowCatalog {
                delay: Duration::from_millis(catalog_ms),
            },
            Duration::from_millis(1500),
        )
    }

    fn query(count: u32) -> RecommendationQuery {
        RecommendationQuery {
            subject: Subject::User("u".into()),
            count,
            ..RecommendationQuery::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_order_drops_unknown_and_repeated_ids_and_trims() {
        let mut observed = Observed::default();
        let found = service(100, 50)
            .recommend(query(3), None, &mut observed)
            .await
            .unwrap();
        let ids: Vec<&str> = found.items.iter().map(|i| i.id()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(found.recommendation_id.as_deref(), Some("rid"));
        assert_eq!(observed.recommender, Some(Duration::from_millis(100)));
        assert_eq!(observed.catalog, Some(Duration::from_millis(50)));
        // "x1" is the one id the catalog lacks; the repeated "a" is not a miss.
        assert_eq!(observed.catalog_misses, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_recommender_times_out_at_the_budget() {
        let started = Instant::now();
        let err = service(5_000, 0)
            .recommend(query(3), None, &mut Observed::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Recommender(UpstreamError::TimedOut)),
            "{err:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    fn with_popular(
        service: Service<SlowRecommender, SlowCatalog>,
    ) -> Service<SlowRecommender, SlowCatalog> {
        let fallbacks = Fallbacks::new(crate::fallback::Policy {
            order: vec![Source::LastGood, Source::Popular],
            ..crate::fallback::Policy::default()
        });
        fallbacks.set_popular(vec!["p1".into(), "x2".into(), "p2".into(), "p3".into()]);
        service.with_fallbacks(Arc::new(fallbacks))
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_recommender_leaves_time_for_the_popular_list() {
        let started = Instant::now();
        let mut observed = Observed::default();
        let found = with_popular(service(5_000, 200))
            .recommend(query(2), None, &mut observed)
            .await
            .unwrap();
        // Given up at 70% of the 1.5 s budget; the popular list joined by 1.25 s.
        assert_eq!(started.elapsed(), Duration::from_millis(1050 + 200));
        assert_eq!(found.fallback, Some(Source::Popular));
        let ids: Vec<&str> = found.items.iter().map(|i| i.id()).collect();
        assert_eq!(
            ids,
            ["p1", "p2"],
            "joined as any list: x2 is not in the catalog"
        );
        assert!(matches!(
            observed.recommender_failure,
            Some(UpstreamError::TimedOut)
        ));
        // A request that turns fallbacks off gets the whole budget, and the error.
        let off = RecommendationQuery {
            fallback: crate::fallback::Choice::Off,
            ..query(2)
        };
        let started = Instant::now();
        let err = with_popular(service(5_000, 0))
            .recommend(off, None, &mut Observed::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Recommender(UpstreamError::TimedOut)),
            "{err:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_good_answer_is_kept_and_given_back_by_last_good() {
        let fast = with_popular(service(10, 0));
        let first = fast
            .recommend(query(3), None, &mut Observed::default())
            .await
            .unwrap();
        assert_eq!(first.fallback, None);
        // The same question, the recommender now too slow: last-good, before popular.
        let fallbacks = fast.fallbacks().clone();
        let slow = service(5_000, 0).with_fallbacks(fallbacks);
        let again = slow
            .recommend(query(2), None, &mut Observed::default())
            .await
            .unwrap();
        assert_eq!(again.fallback, Some(Source::LastGood));
        let ids: Vec<&str> = again.items.iter().map(|i| i.id()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_covers_both_calls_together() {
        let started = Instant::now();
        let err = service(1_000, 1_000)
            .recommend(query(3), None, &mut Observed::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::Catalog(UpstreamError::TimedOut)),
            "{err:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    #[tokio::test(start_paused = true)]
    async fn related_items_never_include_the_source_item() {
        let query = RecommendationQuery {
            subject: Subject::RelatedTo {
                item_id: "b".into(),
                user_id: None,
            },
            count: 3,
            ..RecommendationQuery::default()
        };
        let found = service(0, 0)
            .recommend(query, None, &mut Observed::default())
            .await
            .unwrap();
        let ids: Vec<&str> = found.items.iter().map(|i| i.id()).collect();
        assert_eq!(ids, ["a", "c", "d"]);
    }

    #[tokio::test(start_paused = true)]
    async fn items_brought_by_the_recommender_skip_the_catalog() {
        let mut service = service(10, 60_000);
        service.recommender.metadata = true;
        let mut observed = Observed::default();
        let found = service
            .recommend(query(2), None, &mut observed)
            .await
            .unwrap();
        let ids: Vec<&str> = found.items.iter().map(|i| i.id()).collect();
        // "x1" is an item too: the recommender vouched for it.
        assert_eq!(ids, ["a", "x1"]);
        assert_eq!(observed.catalog, None, "the slow catalog was not asked");
    }

    #[tokio::test(start_paused = true)]
    async fn rankings_keep_the_recommenders_order_drop_unknown_ids_and_trim() {
        let query = RankingQuery {
            user_id: "u".into(),
            item_ids: ["a", "x1", "b", "c"].map(String::from).to_vec(),
            ..RankingQuery::default()
        };
        let ranked = |count| {
            let query = query.clone();
            async move {
                let found = service(0, 0)
                    .rank(query, count, None, &mut Observed::default())
                    .await
                    .unwrap();
                found
                    .items
                    .iter()
                    .map(|i| i.id().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(ranked(None).await, ["c", "b", "a"]);
        assert_eq!(ranked(Some(2)).await, ["c", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn events_get_the_budget_as_their_deadline() {
        let started = Instant::now();
        let err = service(5_000, 0)
            .record(&[], &mut Observed::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.error,
                ServiceError::Recommender(UpstreamError::TimedOut)
            ),
            "{err:?}"
        );
        assert_eq!(err.accepted, 0);
        assert_eq!(started.elapsed(), Duration::from_millis(1500));
    }

    /// Answers each seed's related items from a fixed list; a seed marked `Err` fails, the
    /// `slow` seed answers after a minute.
    struct Seeded {
        lists: HashMap<&'static str, Result<Vec<&'static str>, ()>>,
        slow: Option<&'static str>,
    }

    impl Recommender for Seeded {
        async fn recommend(
            &self,
            query: &RecommendationQuery,
        ) -> Result<Recommendations, UpstreamError> {
            let Subject::RelatedTo { item_id, .. } = &query.subject else {
                panic!("only related items: {query:?}")
            };
            if self.slow == Some(item_id.as_str()) {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            match &self.lists[item_id.as_str()] {
                Ok(ids) => Ok(Recommendations {
                    item_ids: ids.iter().map(|id| id.to_string()).collect(),
                    recommendation_id: Some(format!("rid-{item_id}")),
                    ..Recommendations::default()
                }),
                Err(()) => Err(UpstreamError::Unavailable("down".into())),
            }
        }
    }

    fn seeded(
        lists: &[(&'static str, Result<Vec<&'static str>, ()>)],
        slow: Option<&'static str>,
    ) -> Service<Seeded, SlowCatalog> {
        Service::new(
            Seeded {
                lists: lists.iter().cloned().collect(),
                slow,
            },
            SlowCatalog {
                delay: Duration::ZERO,
            },
            Duration::from_millis(1500),
        )
    }

    async fn related(
        service: &Service<Seeded, SlowCatalog>,
        seeds: &[&str],
        count: u32,
    ) -> Result<Vec<String>, ServiceError> {
        let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
        let query = RecommendationQuery {
            subject: Subject::RelatedTo {
                item_id: seeds[0].clone(),
                user_id: None,
            },
            count,
            ..RecommendationQuery::default()
        };
        let found = service
            .related_to_seeds(query, &seeds, None, &mut Observed::default())
            .await?;
        Ok(found.items.iter().map(|i| i.id().to_owned()).collect())
    }

    #[tokio::test(start_paused = true)]
    async fn several_seeds_merge_round_robin_without_seeds_repeats_or_unknown_ids() {
        let service = seeded(
            &[
                ("s1", Ok(vec!["a", "s2", "b", "c"])),
                ("s2", Ok(vec!["d", "a", "x1", "e"])),
                ("s3", Ok(vec!["f"])),
            ],
            None,
        );
        // By rank: a d f | s2 a | b x1 | c e → without the seeds, repeats and x1 (unknown).
        assert_eq!(
            related(&service, &["s1", "s2", "s3"], 10).await.unwrap(),
            ["a", "d", "f", "b", "c", "e"]
        );
        assert_eq!(
            related(&service, &["s1", "s2", "s3"], 4).await.unwrap(),
            ["a", "d", "f", "b"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_slow_seed_is_left_out_unless_every_seed_failed() {
        let lists = [
            ("s1", Ok(vec!["a", "b"])),
            ("down", Err(())),
            ("slow", Ok(vec!["z"])),
        ];
        let service = seeded(&lists, Some("slow"));
        let started = Instant::now();
        assert_eq!(
            related(&service, &["down", "s1", "slow"], 5).await.unwrap(),
            ["a", "b"]
        );
        // The slow seed is given up at three quarters of the budget, leaving time for the join.
        assert_eq!(started.elapsed(), Duration::from_millis(1125));

        let err = related(&service, &["down", "slow"], 5).await.unwrap_err();
        assert!(
            matches!(
                err,
                ServiceError::Recommender(UpstreamError::Unavailable(_))
            ),
            "{err:?}"
        );
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
