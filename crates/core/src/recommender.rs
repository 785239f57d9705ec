//! The `Recommender` port: what Personalize does for a message, in our own terms. Ranked item
//! ids for a user or for an item, a personal order for a given list, and events fed back.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::time::Instant;

use crate::item::Item;
use crate::upstream::UpstreamError;

/// A promotion (`promotion=NAME`): a share of the list taken by items its filter lets through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion<F> {
    /// A filter ARN (AWS mode) or a filter expression (local mode).
    pub filter: F,
    /// Personalize's `percentPromotedItems`: 1 to 100.
    pub percent: u8,
}

/// Who or what recommendations are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `GET /recommendations`: items for this user.
    User(String),
    /// `GET /related-items`: items like this one. The user, when given, is who filters on
    /// interactions (`EXCLUDE … Interactions…`) apply to.
    RelatedTo {
        item_id: String,
        user_id: Option<String>,
    },
}

impl Subject {
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Subject::User(user_id) => Some(user_id),
            Subject::RelatedTo { user_id, .. } => user_id.as_deref(),
        }
    }
}

impl Default for Subject {
    fn default() -> Self {
        Subject::User(String::new())
    }
}

/// A filter and context, as every read endpoint takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refinement {
    /// A filter *name*; the recommender knows what it stands for.
    pub filter: Option<String>,
    /// Filter placeholder (`CATEGORY` for `$CATEGORY`) → its raw, unescaped values.
    pub filter_values: Vec<(String, Vec<String>)>,
    pub context: Vec<(String, String)>,
}

/// What the service asks a recommender for. Already validated by the API layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecommendationQuery {
    pub subject: Subject,
    /// How many ids to return (the service adds its over-fetch margin before asking).
    pub count: u32,
    pub refinement: Refinement,
    /// For a user: which named recommender answers (`recommender=`); `None` is the default.
    pub recommender: Option<String>,
    /// For a user: a promotion by name, and the values of its filter's placeholders.
    pub promotion: Option<PromotionQuery>,
    /// `fallback=`: what may answer if the recommender cannot. The service's alone: recommenders
    /// never see a difference.
    pub fallback: FallbackChoice,
}

/// `promotion=NAME&promotion_CATEGORY=bags`: a share of the list (the promotion's) from the
/// items its filter lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromotionQuery {
    pub name: String,
    /// Placeholder → its raw, unescaped values, as for a filter.
    pub filter_values: Vec<(String, Vec<String>)>,
}

/// `GET|POST /rankings`: put these items in the user's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RankingQuery {
    pub user_id: String,
    /// Distinct ids, 1 to 500 of them.
    pub item_ids: Vec<String>,
    pub refinement: Refinement,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recommendations {
    /// Best first.
    pub item_ids: Vec<String>,
    pub recommendation_id: Option<String>,
    /// Item metadata, when the recommender returns it with the ids
    /// (`ITEM_METADATA_SOURCE=personalize`); the service then does not ask the catalog.
    pub items: Option<HashMap<String, Arc<Item>>>,
    /// Ids a promotion placed in the list → the promotion's name.
    pub promoted: HashMap<String, String>,
}

/// One interaction to feed back (`POST /events`). Already validated by the API layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Personalize trains on the first event with a given id only, so every event carries one:
    /// the caller's, or one derived from what the caller sent. A retried webhook then sends the
    /// same ids, and is not counted twice.
    pub event_id: String,
    pub user_id: Option<String>,
    pub session_id: String,
    pub event_type: String,
    pub item_id: Option<String>,
    pub event_value: Option<f32>,
    /// Unix time in seconds, fractions allowed.
    pub sent_at: f64,
    /// A JSON object, as text.
    pub properties: Option<String>,
    pub recommendation_id: Option<String>,
    pub impression: Vec<String>,
    /// Where the event came from, for Personalize's metric attribution (`eventAttributionSource`):
    /// an A/B test's variant, say, so its reports compare them.
    pub attribution_source: Option<String>,
}

/// The things a recommender can be asked; each endpoint needs one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Recommendations,
    RelatedItems,
    Rankings,
    Events,
}

pub trait Recommender: Send + Sync + 'static {
    /// Whether `filter=name` means something to this recommender.
    fn has_filter(&self, _name: &str) -> bool {
        false
    }

    /// Whether `recommender=name` means something on `/recommendations`.
    fn has_recommender(&self, _name: &str) -> bool {
        false
    }

    /// The name of the recommender `/recommendations` asks when a request names none, if its
    /// recommenders have names.
    fn default_recommender(&self) -> Option<&str> {
        None
    }

    /// Whether `promotion=name` means something on `/recommendations`.
    fn has_promotion(&self, _name: &str) -> bool {
        false
    }

    /// Whether this recommender, as configured, can do `operation`.
    fn supports(&self, _operation: Operation) -> bool {
        true
    }

    fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> impl Future<Output = Result<Recommendations, UpstreamError>> + Send;

    /// The query's items in the user's order.
    fn rank(
        &self,
        _query: &RankingQuery,
    ) -> impl Future<Output = Result<Recommendations, UpstreamError>> + Send {
        async {
            Err(UpstreamError::Misconfigured(
                "this recommender does not rank".into(),
            ))
        }
    }

    /// Feeds interactions back, so later recommendations reflect them. Stops waiting at
    /// `deadline`, but calls already sent run to completion; the answer says how many events the
    /// recommender took.
    fn record(
        &self,
        _events: &[Event],
        _deadline: Instant,
    ) -> impl Future<Output = Recorded> + Send {
        async {
            Recorded::none(UpstreamError::Misconfigured(
                "this recommender takes no events".into(),
            ))
        }
    }
}

/// How feeding back a batch of events went. Events whose call failed may be sent again: their
/// ids keep the recommender from training on any of them twice.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Events the recommender acknowledged.
    pub accepted: usize,
    /// Why the others were not, if any were not.
    pub error: Option<UpstreamError>,
}

impl Recorded {
    /// Every event taken.
    pub fn all(events: &[Event]) -> Recorded {
        Recorded {
            accepted: events.len(),
            error: None,
        }
    }

    /// None taken, for this reason.
    pub fn none(error: UpstreamError) -> Recorded {
        Recorded {
            accepted: 0,
            error: Some(error),
        }
    }
}

/// A source of fallback answers (`crate::fallback` keeps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackSource {
    Popular,
    LastGood,
}

impl FallbackSource {
    /// The name in settings, parameters, the answer's `fallback` field, the header and metrics.
    pub fn name(self) -> &'static str {
        match self {
            FallbackSource::Popular => "popular",
            FallbackSource::LastGood => "last-good",
        }
    }

    pub fn parse(name: &str) -> Option<FallbackSource> {
        match name {
            "popular" => Some(FallbackSource::Popular),
            "last-good" => Some(FallbackSource::LastGood),
            _ => None,
        }
    }
}

/// What a request asks of fallbacks (`fallback=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FallbackChoice {
    /// The deployment's order.
    #[default]
    Deployment,
    /// None: the request fails as it would without fallbacks (503).
    Off,
    /// This source alone, if the deployment has it.
    Only(FallbackSource),
}
