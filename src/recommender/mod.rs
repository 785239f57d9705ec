//! The `Recommender` port: ranked item ids for a user.

pub mod cooccurrence;
pub mod filter;
pub mod local;
pub mod personalize;
pub mod popularity;

use std::future::Future;

use crate::upstream::UpstreamError;

/// What the service asks a recommender for. Already validated by the API layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecommendationQuery {
    pub user_id: String,
    /// How many ids to return (the service adds its over-fetch margin before asking).
    pub count: u32,
    /// A filter *name*; the recommender knows what it stands for.
    pub filter: Option<String>,
    /// Filter placeholder (`CATEGORY` for `$CATEGORY`) → its raw, unescaped values.
    pub filter_values: Vec<(String, Vec<String>)>,
    pub context: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recommendations {
    /// Best first.
    pub item_ids: Vec<String>,
    pub recommendation_id: Option<String>,
}

pub trait Recommender: Send + Sync + 'static {
    /// Whether `filter=name` means something to this recommender.
    fn has_filter(&self, name: &str) -> bool;

    fn recommend(
        &self,
        query: &RecommendationQuery,
    ) -> impl Future<Output = Result<Recommendations, UpstreamError>> + Send;
}
