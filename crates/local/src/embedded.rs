//! `Recommender` for local mode: the co-occurrence model trained at start, with local filters
//! and promotions. `/recommendations` has two named recommenders, `embedded` (the model) and
//! `popularity` (the baseline), so A/B tests work without AWS. Related items are an item's
//! neighbours, rankings use the user's scores, and events join the user's history in memory
//! (until the process ends).

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use crate::cooccurrence::{ItemIndex, Model};
use crate::filter::{Action, Dataset, LocalFilter};
use tokio::time::Instant;

use personalize_braze_core::dataset::{ItemRecord, UserRecord};
use personalize_braze_core::recommender::{
    Event, Promotion, PromotionQuery, RankingQuery, RecommendationQuery, Recommendations,
    Recommender, Recorded, Refinement, Subject,
};
use personalize_braze_core::upstream::UpstreamError;

/// The names local mode's `recommender=` takes: the model trained at start, and plain popularity
/// (the same list for everyone, without what each user has seen) as the baseline to test it against.
pub const LOCAL_RECOMMENDERS: [&str; 2] = ["embedded", "popularity"];

pub struct LocalRecommender {
    /// Written only by `record`, which is rare next to reads.
    model: RwLock<Model>,
    filters: BTreeMap<String, LocalFilter>,
    promotions: BTreeMap<String, Promotion<LocalFilter>>,
    /// `embedded` or `popularity`: what `/recommendations` answers with by default.
    default_recommender: &'static str,
    /// Items-file fields for each model item (column names upper-cased), for `Items.FIELD` filters.
    item_fields: Vec<Vec<(String, String)>>,
    /// Users-file fields by user id (column names upper-cased), for `IF CurrentUser.FIELD`.
    user_fields: HashMap<String, Vec<(String, String)>>,
}

impl LocalRecommender {
    pub fn new(model: Model, items: &[ItemRecord], filters: BTreeMap<String, LocalFilter>) -> Self {
        let by_id: HashMap<&str, &ItemRecord> = items.iter().map(|r| (r.id.as_str(), r)).collect();
        let item_fields = model
            .item_ids()
            .iter()
            .map(|id| {
                by_id
                    .get(id.as_str())
                    .map(|r| {
                        r.fields
                            .iter()
                            .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        LocalRecommender {
            model: RwLock::new(model),
            filters,
            promotions: BTreeMap::new(),
            default_recommender: LOCAL_RECOMMENDERS[0],
            item_fields,
            user_fields: HashMap::new(),
        }
    }

    /// The users file's metadata, which filters' `IF CurrentUser.FIELD` conditions test.
    pub fn with_users(mut self, users: &[UserRecord]) -> Self {
        self.user_fields = users
            .iter()
            .map(|user| {
                let fields = user
                    .fields
                    .iter()
                    .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
                    .collect();
                (user.id.clone(), fields)
            })
            .collect();
        self
    }

    /// Whether `filter` applies to this user: always, unless its `IF CurrentUser` condition fails.
    fn applies_to(&self, filter: &LocalFilter, user_id: Option<&str>) -> bool {
        if filter.condition.is_empty() {
            return true;
        }
        let fields = user_id.and_then(|id| self.user_fields.get(id));
        filter.condition.iter().all(|test| {
            let value = fields.and_then(|fields| {
                fields
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(&test.field))
                    .map(|(_, value)| value.as_str())
            });
            test.holds(value)
        })
    }

    pub fn with_promotions(mut self, promotions: BTreeMap<String, Promotion<LocalFilter>>) -> Self {
        self.promotions = promotions;
        self
    }

    /// Makes `name` (one of `LOCAL_RECOMMENDERS`) the default; another name changes nothing.
    pub fn with_default_recommender(mut self, name: &str) -> Self {
        if let Some(known) = LOCAL_RECOMMENDERS.iter().find(|n| **n == name) {
            self.default_recommender = known;
        }
        self
    }

    /// The model as it is now. A panic while recording leaves it usable, so poisoning is ignored.
    fn model(&self) -> RwLockReadGuard<'_, Model> {
        self.model.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn field_matches(&self, item: ItemIndex, field: &str, values: &[String]) -> bool {
        self.item_fields[item as usize]
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(field))
            .is_some_and(|(_, value)| value.split('|').any(|v| values.iter().any(|w| w == v)))
    }
}

impl LocalRecommender {
    /// Which items a refinement lets through, for this user (if any).
    fn allowed<'a>(
        &'a self,
        model: &Model,
        refinement: &Refinement,
        user_id: Option<&str>,
    ) -> Result<impl Fn(ItemIndex) -> bool + 'a, UpstreamError> {
        let filter = match &refinement.filter {
            None => None,
            Some(name) => Some(self.filters.get(name).ok_or_else(|| {
                UpstreamError::Misconfigured(format!("no local filter named {name}"))
            })?),
        };
        self.passing(model, filter, &refinement.filter_values, user_id)
    }

    /// Which items a filter (with its placeholders' values) lets through, for this user.
    fn passing<'a>(
        &'a self,
        model: &Model,
        filter: Option<&'a LocalFilter>,
        filter_values: &[(String, Vec<String>)],
        user_id: Option<&str>,
    ) -> Result<impl Fn(ItemIndex) -> bool + 'a, UpstreamError> {
        let resolved = match filter {
            Some(filter) if self.applies_to(filter, user_id) => filter
                .resolve(filter_values)
                .map_err(UpstreamError::Rejected)?,
            _ => None,
        };
        let excluded: Vec<ItemIndex> = match (&resolved, user_id) {
            (Some(r), Some(user_id)) if *r.dataset == Dataset::InteractionEventType => {
                let types: Vec<&str> = r.values.iter().map(String::as_str).collect();
                model.items_with_events(user_id, &types)
            }
            _ => Vec::new(),
        };
        Ok(move |item: ItemIndex| match &resolved {
            None => true,
            Some(r) => match r.dataset {
                Dataset::InteractionEventType => !excluded.contains(&item),
                Dataset::Items(field) => {
                    let matches = self.field_matches(item, field, &r.values);
                    (r.action == Action::Include) == matches
                }
            },
        })
    }
}

impl Recommender for LocalRecommender {
    fn has_filter(&self, name: &str) -> bool {
        self.filters.contains_key(name)
    }

    fn has_recommender(&self, name: &str) -> bool {
        LOCAL_RECOMMENDERS.contains(&name)
    }

    fn default_recommender(&self) -> Option<&str> {
        Some(self.default_recommender)
    }

    fn has_promotion(&self, name: &str) -> bool {
        self.promotions.contains_key(name)
    }

    async fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> Result<Recommendations, UpstreamError> {
        let model = self.model();
        let user_id = query.subject.user_id();
        let allowed = self.allowed(&model, &query.refinement, user_id)?;
        let count = query.count as usize;
        let user_id = match &query.subject {
            Subject::RelatedTo { item_id, .. } => {
                let items = model.related(item_id, count, allowed);
                return Ok(ids_of(&model, items, None));
            }
            Subject::User(user_id) => user_id,
        };
        let popularity = match query
            .recommender
            .as_deref()
            .unwrap_or(self.default_recommender)
        {
            "embedded" => false,
            "popularity" => true,
            other => {
                return Err(UpstreamError::Misconfigured(format!(
                    "no local recommender named {other}"
                )));
            }
        };
        let pick = |count: usize, allowed: &dyn Fn(ItemIndex) -> bool| match popularity {
            false => model.recommend(user_id, count, allowed),
            true => model.popular_for(user_id, count, allowed),
        };
        let Some(promotion) = &query.promotion else {
            return Ok(ids_of(&model, pick(count, &allowed), None));
        };
        let (name, rule) = self.promotion(promotion)?;
        let promotable = self.passing(
            &model,
            Some(&rule.filter),
            &promotion.filter_values,
            Some(user_id),
        )?;
        // Promoted items pass the request's filter too, and come in the recommender's order.
        let promoted = pick(count, &|item| allowed(item) && promotable(item));
        let others = pick(count, &allowed);
        let items = interleave(promoted, others, rule.percent, count);
        Ok(ids_of(&model, items.0, Some((name, &items.1))))
    }

    async fn rank(&self, query: &RankingQuery) -> Result<Recommendations, UpstreamError> {
        let model = self.model();
        let allowed = self.allowed(&model, &query.refinement, Some(&query.user_id))?;
        let item_ids = model
            .rank(&query.user_id, &query.item_ids)
            .into_iter()
            .map(|position| &query.item_ids[position])
            // A filter drops what it excludes; ids the model does not know pass, as with Personalize.
            .filter(|id| model.index_of(id).is_none_or(&allowed))
            .cloned()
            .collect();
        Ok(Recommendations {
            item_ids,
            ..Recommendations::default()
        })
    }

    /// Events with a user and an item join that user's history; the rest change nothing here.
    /// Recording an interaction twice changes nothing, so a replayed body is harmless here too.
    /// Past the model's live limits (new users, new event types) the rest of the body is refused.
    async fn record(&self, events: &[Event], _deadline: Instant) -> Recorded {
        let mut model = self.model.write().unwrap_or_else(PoisonError::into_inner);
        for (taken, event) in events.iter().enumerate() {
            if let (Some(user_id), Some(item_id)) = (&event.user_id, &event.item_id)
                && let Err(full) = model.record(user_id, item_id, &event.event_type)
            {
                return Recorded {
                    accepted: taken,
                    error: Some(UpstreamError::Full(full.to_string())),
                };
            }
        }
        Recorded::all(events)
    }
}

impl LocalRecommender {
    fn promotion(
        &self,
        query: &PromotionQuery,
    ) -> Result<(&str, &Promotion<LocalFilter>), UpstreamError> {
        self.promotions
            .get_key_value(&query.name)
            .map(|(name, rule)| (name.as_str(), rule))
            .ok_or_else(|| {
                UpstreamError::Misconfigured(format!("no local promotion named {}", query.name))
            })
    }
}

/// The model's items as ids; with a promotion, the promoted ones marked with its name.
fn ids_of(
    model: &Model,
    items: Vec<ItemIndex>,
    promotion: Option<(&str, &[ItemIndex])>,
) -> Recommendations {
    let promoted = promotion
        .map(|(name, promoted)| {
            promoted
                .iter()
                .map(|&i| (model.item_id(i).to_owned(), name.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Recommendations {
        item_ids: items
            .into_iter()
            .map(|i| model.item_id(i).to_owned())
            .collect(),
        promoted,
        ..Recommendations::default()
    }
}

/// `count` items with `percent` of every prefix promoted: promoted items (in the recommender's
/// order) take evenly spaced slots from the first (at 20%: the 1st, 6th, 11th, …), the others fill
/// the rest in their order, each item once. When too few items can be promoted, the others take
/// their slots, and the other way round. Returns the list and the items placed as promoted.
fn interleave(
    promoted: Vec<ItemIndex>,
    others: Vec<ItemIndex>,
    percent: u8,
    count: usize,
) -> (Vec<ItemIndex>, Vec<ItemIndex>) {
    let percent = usize::from(percent.clamp(1, 100));
    // The slot (0-based) of the j-th (0-based) promoted item.
    let slot = |j: usize| j * 100 / percent;
    let (mut promoted, mut others) = (promoted.into_iter(), others.into_iter());
    let (mut list, mut placed) = (Vec::with_capacity(count), Vec::new());
    while list.len() < count {
        let promoted_slot = list.len() == slot(placed.len());
        let mut next_promoted = || {
            let item = promoted.find(|item| !list.contains(item));
            item.inspect(|&item| placed.push(item))
        };
        let item = if promoted_slot {
            next_promoted().or_else(|| others.find(|item| !list.contains(item)))
        } else {
            others
                .find(|item| !list.contains(item))
                .or_else(next_promoted)
        };
        match item {
            Some(item) => list.push(item),
            None => break,
        }
    }
    (list, placed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use personalize_braze_core::dataset::Interaction;

    fn recommender() -> LocalRecommender {
        let rows = [
            ("u1", "A", "view"),
            ("u1", "B", "view"),
            ("u2", "A", "view"),
            ("u2", "B", "purchase"),
            ("u2", "C", "view"),
            ("u3", "B", "view"),
            ("u3", "C", "view"),
            ("u4", "C", "view"),
            ("u4", "D", "view"),
            ("u5", "A", "purchase"),
        ];
        let interactions: Vec<Interaction> = rows
            .iter()
            .map(|(u, i, e)| Interaction {
                user_id: u.to_string(),
                item_id: i.to_string(),
                event_type: e.to_string(),
                timestamp: 1,
            })
            .collect();
        let items: Vec<ItemRecord> = [
            ("A", "shoes"),
            ("B", "hats|sale"),
            ("C", "shoes"),
            ("D", "bags"),
        ]
        .iter()
        .map(|(id, category)| ItemRecord {
            id: id.to_string(),
            fields: vec![("Category".to_owned(), category.to_string())],
        })
        .collect();
        let filters = BTreeMap::from([
            (
                "by-category".to_owned(),
                LocalFilter::parse("INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)").unwrap(),
            ),
            (
                "no-bags".to_owned(),
                LocalFilter::parse(r#"EXCLUDE ItemID WHERE Items.CATEGORY IN ("bags")"#).unwrap(),
            ),
        ]);
        LocalRecommender::new(crate::tuning::train(&interactions), &items, filters)
    }

    async fn ask(
        r: &LocalRecommender,
        user: &str,
        filter: Option<&str>,
        values: &[(&str, &[&str])],
    ) -> Result<Vec<String>, UpstreamError> {
        let query = RecommendationQuery {
            subject: Subject::User(user.into()),
            count: 10,
            refinement: Refinement {
                filter: filter.map(str::to_owned),
                filter_values: values
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                    .collect(),
                context: Vec::new(),
            },
            ..RecommendationQuery::default()
        };
        r.recommend(&query).await.map(|r| r.item_ids)
    }

    #[tokio::test]
    async fn item_filters_include_or_exclude_by_field_with_multi_values() {
        let r = recommender();
        assert_eq!(
            ask(&r, "stranger", None, &[]).await.unwrap(),
            ["A", "B", "C", "D"]
        );
        assert_eq!(
            ask(&r, "stranger", Some("no-bags"), &[]).await.unwrap(),
            ["A", "B", "C"]
        );
        let shoes = ask(
            &r,
            "stranger",
            Some("by-category"),
            &[("CATEGORY", &["shoes"])],
        )
        .await
        .unwrap();
        assert_eq!(shoes, ["A", "C"]);
        let sale = ask(
            &r,
            "stranger",
            Some("by-category"),
            &[("CATEGORY", &["sale", "bags"])],
        )
        .await
        .unwrap();
        assert_eq!(sale, ["B", "D"], "B is hats|sale");
    }

    #[tokio::test]
    async fn an_include_filter_without_its_value_is_rejected() {
        let r = recommender();
        let err = ask(&r, "u5", Some("by-category"), &[]).await.unwrap_err();
        assert!(
            matches!(err, UpstreamError::Rejected(ref m) if m.contains("filter_CATEGORY")),
            "{err:?}"
        );
    }

    /// Past the live limits, a body is recorded up to the event that needs room, and the answer
    /// says why the rest was not (a 507 naming the limit).
    #[tokio::test]
    async fn events_past_the_live_limits_are_refused_after_those_that_fit() {
        use crate::cooccurrence::MAX_LIVE_EVENT_TYPES;
        let r = recommender();
        let event = |event_type: String| Event {
            event_id: format!("id-{event_type}"),
            user_id: Some("u1".into()),
            session_id: "u1".into(),
            event_type,
            item_id: Some("C".into()),
            event_value: None,
            sent_at: 1.0,
            properties: None,
            recommendation_id: None,
            impression: Vec::new(),
            attribution_source: None,
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let fill: Vec<Event> = (0..MAX_LIVE_EVENT_TYPES - 1)
            .map(|k| event(format!("type-{k}")))
            .collect();
        assert_eq!(r.record(&fill, deadline).await.accepted, fill.len());

        let body = [
            event("last".into()),
            event("view".into()),
            event("new".into()),
            event("view".into()),
        ];
        let recorded = r.record(&body, deadline).await;
        assert_eq!(recorded.accepted, 2, "the last new type and a known one");
        assert!(
            matches!(&recorded.error, Some(UpstreamError::Full(m)) if m.contains("event types")),
            "{:?}",
            recorded.error
        );
    }

    #[tokio::test]
    async fn purchases_can_be_excluded_by_event_type() {
        let mut r = recommender();
        r.filters.insert(
            "not-purchased".into(),
            LocalFilter::parse(r#"EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")"#)
                .unwrap(),
        );
        // u2 purchased B: excluded whatever else applies (it is also seen, so never shown).
        let ids = ask(&r, "u2", Some("not-purchased"), &[]).await.unwrap();
        assert!(!ids.contains(&"B".to_owned()));
        assert_eq!(ids, ["D"]);
    }

    #[test]
    fn promoted_items_take_evenly_spaced_slots_from_the_first() {
        let others: Vec<ItemIndex> = (10..30).collect();
        // 20%: slots 0, 5, 10; the others in their order around them.
        let (list, placed) = interleave(vec![1, 2, 3, 4], others.clone(), 20, 12);
        assert_eq!(list, [1, 10, 11, 12, 13, 2, 14, 15, 16, 17, 3, 18]);
        assert_eq!(placed, [1, 2, 3]);
        // 30%: slots 0, 3, 6, 10 (j·100/30 rounded down).
        let (list, _) = interleave(vec![1, 2, 3, 4], others.clone(), 30, 11);
        assert_eq!(list, [1, 10, 11, 2, 12, 13, 3, 14, 15, 16, 4]);
        // Too few promotable items: the others take their slots.
        let (list, placed) = interleave(vec![1], others.clone(), 50, 4);
        assert_eq!((list, placed), (vec![1, 10, 11, 12], vec![1]));
        // An item in both lists appears once, where it comes first.
        let (list, placed) = interleave(vec![10, 1], vec![10, 11, 12, 13], 50, 4);
        assert_eq!((list, placed), (vec![10, 11, 1, 12], vec![10, 1]));
        // Nothing else left: promoted items fill the list, still marked.
        let (list, placed) = interleave(vec![1, 2, 3], vec![10], 25, 4);
        assert_eq!((list, placed), (vec![1, 10, 2, 3], vec![1, 2, 3]));
    }

    #[tokio::test]
    async fn popularity_and_promotions_answer_by_name() {
        let promotions = BTreeMap::from([(
            "hats".to_owned(),
            Promotion {
                filter: LocalFilter::parse("INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)")
                    .unwrap(),
                percent: 50,
            },
        )]);
        let r = recommender().with_promotions(promotions);
        assert!(r.has_recommender("popularity") && r.has_recommender("embedded"));
        assert_eq!(r.default_recommender(), Some("embedded"));
        let ask = |recommender: Option<&str>, promotion: Option<&str>| {
            let query = RecommendationQuery {
                subject: Subject::User("u5".into()),
                count: 3,
                recommender: recommender.map(str::to_owned),
                promotion: promotion.map(|category| PromotionQuery {
                    name: "hats".into(),
                    filter_values: vec![("CATEGORY".into(), vec![category.into()])],
                }),
                ..RecommendationQuery::default()
            };
            let r = &r;
            async move { r.recommend(&query).await.unwrap() }
        };
        // u5 saw A. Popularity without A: B and C (three events each; ties by id), then D.
        let popular = ask(Some("popularity"), None).await;
        assert_eq!(popular.item_ids, ["B", "C", "D"]);
        assert!(popular.promoted.is_empty());
        // The model: B before C (co-occurrence with A), D from popularity.
        assert_eq!(ask(None, None).await.item_ids, ["B", "C", "D"]);
        // Half the list from "bags" (D), placed first and marked.
        let promoted = ask(None, Some("bags")).await;
        assert_eq!(promoted.item_ids, ["D", "B", "C"]);
        assert_eq!(
            promoted.promoted,
            HashMap::from([("D".to_owned(), "hats".to_owned())])
        );
        let err = r
            .recommend(&RecommendationQuery {
                subject: Subject::User("u5".into()),
                count: 3,
                recommender: Some("personalize".into()),
                ..RecommendationQuery::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Misconfigured(_)), "{err:?}");
    }
}
