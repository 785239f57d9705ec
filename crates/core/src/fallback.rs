//! What to answer when the recommender cannot: a generic list rather than an aborted message.
//!
//! Two sources, tried in the deployment's order (`FALLBACK=last-good,popular`):
//! - `last-good`: the last list this environment answered for the same question (the same user
//!   or seed item, recommender, filter and promotion), if it is recent enough. Bounded in memory
//!   like the item cache.
//! - `popular`: a list kept warm in memory (a popularity campaign refreshed in the background, a
//!   configured list, or local mode's popularity model).
//!
//! Neither calls the recommender again: both answer from memory, and the answer is then joined
//! with the catalog like any other. A request may turn fallbacks off (`fallback=off`) or choose
//! one source. A fallback cannot apply a Personalize filter: with a filter in the request only
//! `last-good` (for the same filter) is tried, unless the deployment allows unfiltered fallbacks.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::lru::Lru;
use crate::recommender::{RecommendationQuery, Subject};
use crate::upstream::UpstreamError;

pub use crate::recommender::{FallbackChoice as Choice, FallbackSource as Source};

/// The deployment's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Sources in the order tried; empty is off (the default).
    pub order: Vec<Source>,
    /// Whether `popular` may answer a request that has a filter.
    pub unfiltered: bool,
    /// How long a user's answer stays usable as `last-good`.
    pub last_good_ttl: Duration,
    /// How many answers `last-good` keeps, least recently used out first.
    pub last_good_entries: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            order: Vec::new(),
            unfiltered: false,
            last_good_ttl: Duration::from_secs(24 * 3600),
            last_good_entries: 10_000,
        }
    }
}

/// The share of the request's budget the recommender gets when a fallback may follow: the rest
/// is for joining the fallback list with the catalog.
pub const RECOMMENDER_SHARE: f64 = 0.7;

/// Answers the recommender gave, and the popular list: what fallbacks answer from.
pub struct Fallbacks {
    policy: Policy,
    last_good: Mutex<Lru<(Instant, Arc<[String]>)>>,
    popular: RwLock<Arc<[String]>>,
}

impl Fallbacks {
    pub fn new(policy: Policy) -> Fallbacks {
        Fallbacks {
            last_good: Mutex::new(Lru::default()),
            popular: RwLock::new(Arc::from(Vec::new())),
            policy,
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether the deployment has fallbacks at all.
    pub fn enabled(&self) -> bool {
        !self.policy.order.is_empty()
    }

    /// Replaces the popular list (the background refresh, or a configured list).
    pub fn set_popular(&self, ids: Vec<String>) {
        *self.popular.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(ids);
    }

    pub fn popular(&self) -> Arc<[String]> {
        self.popular
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The sources to try for this request, in order: none when fallbacks are off (by the
    /// deployment or the request), or when the failure is the caller's (a refused request).
    pub fn sources(
        &self,
        choice: Choice,
        query: &RecommendationQuery,
        error: &UpstreamError,
    ) -> Vec<Source> {
        if !falls_back(error) {
            return Vec::new();
        }
        let filtered = query.refinement.filter.is_some();
        let allowed = |s: &Source| match s {
            Source::Popular => !filtered || self.policy.unfiltered,
            Source::LastGood => true,
        };
        match choice {
            Choice::Off => Vec::new(),
            Choice::Only(source) if self.policy.order.contains(&source) && allowed(&source) => {
                vec![source]
            }
            Choice::Only(_) => Vec::new(),
            Choice::Deployment => self.policy.order.iter().copied().filter(allowed).collect(),
        }
    }

    /// Whether a fallback could answer this request if the recommender failed: the recommender
    /// then gets only its share of the budget.
    pub fn may_answer(&self, choice: Choice) -> bool {
        match choice {
            Choice::Off => false,
            Choice::Only(source) => self.policy.order.contains(&source),
            Choice::Deployment => self.enabled(),
        }
    }

    /// Keeps a successful answer's ids for `last-good`.
    pub fn remember(&self, query: &RecommendationQuery, ids: Vec<String>) {
        if !self.policy.order.contains(&Source::LastGood) || ids.is_empty() {
            return;
        }
        let key = key(query);
        let mut store = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        let weight = key.len() + ids.iter().map(|id| id.len() + 24).sum::<usize>();
        store.insert(key, (Instant::now(), Arc::from(ids)), weight);
        let entries = self.policy.last_good_entries;
        store.shrink_to(entries, usize::MAX);
    }

    /// The ids a source answers with for this request, if it has any.
    pub fn ids(&self, source: Source, query: &RecommendationQuery) -> Option<Arc<[String]>> {
        match source {
            Source::Popular => Some(self.popular()).filter(|ids| !ids.is_empty()),
            Source::LastGood => {
                let key = key(query);
                let mut store = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
                let (at, ids) = store.get(&key)?.clone();
                if at.elapsed() > self.policy.last_good_ttl {
                    store.remove(&key);
                    return None;
                }
                Some(ids)
            }
        }
    }
}

/// Failures a fallback answers for: the recommender throttled, failed, ran past its share of
/// the budget, or is missing. A request the recommender refused is the caller's to fix.
pub fn falls_back(error: &UpstreamError) -> bool {
    matches!(
        error,
        UpstreamError::Throttled(_)
            | UpstreamError::Unavailable(_)
            | UpstreamError::TimedOut
            | UpstreamError::Misconfigured(_)
    )
}

/// The question an answer answered: everything but the count, which the answer is trimmed to.
fn key(query: &RecommendationQuery) -> String {
    let mut key = String::new();
    let mut part = |text: &str| {
        key.push_str(text);
        key.push('\u{1f}');
    };
    match &query.subject {
        Subject::User(user) => {
            part("u");
            part(user);
        }
        Subject::RelatedTo { item_id, user_id } => {
            part("i");
            part(item_id);
            part(user_id.as_deref().unwrap_or(""));
        }
    }
    part(query.recommender.as_deref().unwrap_or(""));
    part(query.refinement.filter.as_deref().unwrap_or(""));
    for (name, values) in &query.refinement.filter_values {
        part(name);
        part(&values.join("\u{1e}"));
    }
    if let Some(promotion) = &query.promotion {
        part(&promotion.name);
        for (name, values) in &promotion.filter_values {
            part(name);
            part(&values.join("\u{1e}"));
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommender::Refinement;

    fn user(id: &str) -> RecommendationQuery {
        RecommendationQuery {
            subject: Subject::User(id.to_owned()),
            count: 3,
            ..RecommendationQuery::default()
        }
    }

    fn filtered(id: &str, values: &[&str]) -> RecommendationQuery {
        RecommendationQuery {
            refinement: Refinement {
                filter: Some("by-category".into()),
                filter_values: vec![(
                    "CATEGORY".into(),
                    values.iter().map(|v| v.to_string()).collect(),
                )],
                ..Refinement::default()
            },
            ..user(id)
        }
    }

    fn both() -> Fallbacks {
        Fallbacks::new(Policy {
            order: vec![Source::LastGood, Source::Popular],
            ..Policy::default()
        })
    }

    #[test]
    fn sources_follow_the_deployment_the_request_and_the_failure() {
        let f = both();
        let throttled = UpstreamError::Throttled("x".into());
        let q = user("u1");
        assert_eq!(
            f.sources(Choice::Deployment, &q, &throttled),
            [Source::LastGood, Source::Popular]
        );
        assert_eq!(
            f.sources(Choice::Only(Source::Popular), &q, &throttled),
            [Source::Popular]
        );
        assert!(f.sources(Choice::Off, &q, &throttled).is_empty());
        assert!(
            f.sources(
                Choice::Deployment,
                &q,
                &UpstreamError::Rejected("bad filter".into())
            )
            .is_empty()
        );
        assert_eq!(
            f.sources(
                Choice::Deployment,
                &q,
                &UpstreamError::Misconfigured("no campaign".into())
            )
            .len(),
            2
        );
        // A filter: last-good only, unless the deployment allows unfiltered answers.
        let q = filtered("u1", &["shoes"]);
        assert_eq!(
            f.sources(Choice::Deployment, &q, &throttled),
            [Source::LastGood]
        );
        assert!(
            f.sources(Choice::Only(Source::Popular), &q, &throttled)
                .is_empty()
        );
        let loose = Fallbacks::new(Policy {
            unfiltered: true,
            ..both().policy.clone()
        });
        assert_eq!(loose.sources(Choice::Deployment, &q, &throttled).len(), 2);
        // Off by default.
        let off = Fallbacks::new(Policy::default());
        assert!(!off.may_answer(Choice::Deployment));
        assert!(
            off.sources(Choice::Only(Source::Popular), &user("u1"), &throttled)
                .is_empty()
        );
    }

    #[test]
    fn last_good_is_per_question_bounded_and_expires() {
        let f = Fallbacks::new(Policy {
            order: vec![Source::LastGood],
            last_good_entries: 2,
            last_good_ttl: Duration::from_secs(60),
            ..Policy::default()
        });
        f.remember(&user("u1"), vec!["a".into(), "b".into()]);
        f.remember(&filtered("u1", &["shoes"]), vec!["s".into()]);
        assert_eq!(&*f.ids(Source::LastGood, &user("u1")).unwrap(), ["a", "b"]);
        assert_eq!(
            &*f.ids(Source::LastGood, &filtered("u1", &["shoes"]))
                .unwrap(),
            ["s"]
        );
        assert!(
            f.ids(Source::LastGood, &filtered("u1", &["bags"]))
                .is_none()
        );
        assert!(f.ids(Source::LastGood, &user("u2")).is_none());
        // A third answer pushes the least recently used (u1's, read before the filtered one) out.
        f.remember(&user("u3"), vec!["c".into()]);
        assert!(f.ids(Source::LastGood, &user("u1")).is_none());
        assert!(
            f.ids(Source::LastGood, &filtered("u1", &["shoes"]))
                .is_some()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_last_good_answer_past_its_time_is_gone() {
        let f = Fallbacks::new(Policy {
            order: vec![Source::LastGood],
            last_good_ttl: Duration::from_secs(60),
            ..Policy::default()
        });
        f.remember(&user("u1"), vec!["a".into()]);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(f.ids(Source::LastGood, &user("u1")).is_none());
    }

    #[test]
    fn popular_is_empty_until_set() {
        let f = both();
        assert!(f.ids(Source::Popular, &user("u1")).is_none());
        f.set_popular(vec!["p1".into(), "p2".into()]);
        assert_eq!(
            &*f.ids(Source::Popular, &user("anyone")).unwrap(),
            ["p1", "p2"]
        );
    }
}
